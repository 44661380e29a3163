"""The guard against server-side request forgery, for every call Baton makes to a tenant's systems.

A tenant types the address, so without a guard a connection could make Baton call its own
database, Redis, the cloud metadata service (169.254.169.254) or anything else on the private
network. Private, loopback, link-local and other non-public addresses are refused unless
`BATON_OUTBOUND_ALLOW` lists the host by name or the address's network (CIDR).

Two checks: `url_check` resolves the host and refuses it if any of its addresses is refused (a
clear message before connecting), and `guarded_session` checks the address each socket actually
connected to, so a name that resolves differently a moment later (DNS rebinding) or a redirect
cannot reach a refused address either.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefused(Exception):
    """The address is not one Baton may call; the message says which and why."""


class HostUnresolved(Exception):
    """The host name does not resolve."""


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]


def allow_list() -> AllowList:
    """`BATON_OUTBOUND_ALLOW`: host names and CIDRs (or single addresses) that may be private."""
    hosts, networks = set(), []
    for entry in getattr(settings, "BATON_OUTBOUND_ALLOW", []):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return AllowList(frozenset(hosts), tuple(networks))


def _kind_of(address: IPAddress) -> str:
    """Why an address is not public, or "" when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _kind_of(address.ipv4_mapped)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_unspecified or address.is_multicast or address.is_reserved or not address.is_global:
        return "a reserved address"
    return ""


def address_refusal(host: str, address: str) -> str:
    """The reason `host` may not be reached at `address`, or "" when it may."""
    allowed = allow_list()
    if host.lower().rstrip(".") in allowed.hosts:
        return ""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    kind = _kind_of(ip)
    if not kind or any(ip in network for network in allowed.networks):
        return ""
    subject = f"{address} is" if host == address else f"{host} resolves to {address}, which is"
    return f"{subject} {kind}: Baton does not call private, loopback or link-local addresses unless BATON_OUTBOUND_ALLOW lists them."


def host_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (HostUnresolved when none)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise HostUnresolved(f"the host name {host} does not resolve") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def host_check(host: str, port: int) -> list[str]:
    """The host's addresses, once every one of them may be called; OutboundRefused otherwise."""
    addresses = host_addresses(host, port)
    for address in addresses:
        reason = address_refusal(host, address)
        if reason:
            raise OutboundRefused(reason)
    return addresses


def url_check(url: str) -> None:
    """Refuse an http(s) URL whose host is, or resolves to, an address Baton may not call."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused(f"{url} is not an http:// or https:// address with a host.")
    host_check(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def _peer_checked(sock: socket.socket, host: str) -> socket.socket:
    address = str(sock.getpeername()[0])
    reason = address_refusal(host, address)
    if reason:
        sock.close()
        raise OutboundRefused(reason)
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _peer_checked(super()._new_conn(), self.host)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _peer_checked(super()._new_conn(), self.host)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """Every socket it opens is checked against the guard once connected."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


def guarded_session() -> requests.Session:
    """A session whose connections pass the guard; no proxy from the environment (a proxy would
    connect for us, out of the guard's sight)."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
