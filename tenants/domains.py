"""Custom domains: the token a tenant's hosts answer with, and asking a host for it.

A custom domain is verified when a request for `/.well-known/baton-domain` on it reaches this
installation and is answered with the tenant's token (Baton answers it itself on every tenant
host, `portal.brand_views.domain_token_answer`). That proves the DNS (and any proxy in front)
sends the host here, to this tenant – not that someone owns the name, which the MSP checks with
the tenant when adding it.
"""

from __future__ import annotations

import http.client
import socket

from django.conf import settings
from django.utils.crypto import salted_hmac

from tenants.models import Tenant

WELL_KNOWN_PATH = "/.well-known/baton-domain"
CHECK_TIMEOUT_SECONDS = 5
ANSWER_MAX_BYTES = 1024


class DomainCheckFailed(Exception):
    """The host did not answer with the token; the message says what happened, for the operator."""


def domain_token(tenant: Tenant) -> str:
    """Stable per tenant and unguessable without the installation's secret key."""
    return salted_hmac("baton.tenants.domain-token", f"{tenant.pk}:{tenant.slug}").hexdigest()[:32]


def domain_check_url(host: str) -> str:
    port = settings.BATON_PUBLIC_PORT
    return f"{settings.BATON_PUBLIC_SCHEME}://{host}" + (f":{port}" if port else "") + WELL_KNOWN_PATH


def _connect_to(host: str) -> str:
    """Names under .localhost are loopback (RFC 6761); browsers resolve them so, and so does this,
    since the system resolver may not know them."""
    if host == "localhost" or host.endswith(".localhost"):
        return "127.0.0.1"
    return host


def domain_answer(host: str) -> str:
    """What the host answers on the well-known path, over this installation's public scheme and
    port; redirects are not followed. Raises DomainCheckFailed with the reason."""
    secure = settings.BATON_PUBLIC_SCHEME == "https"
    port = int(settings.BATON_PUBLIC_PORT) if settings.BATON_PUBLIC_PORT else (443 if secure else 80)
    kind = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    connection = kind(_connect_to(host), port, timeout=CHECK_TIMEOUT_SECONDS)
    try:
        connection.request("GET", WELL_KNOWN_PATH, headers={"Host": f"{host}:{port}", "User-Agent": "Baton domain check"})
        response = connection.getresponse()
        body = response.read(ANSWER_MAX_BYTES).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException) as error:
        reason = "the name does not resolve" if isinstance(error, socket.gaierror) else f"{type(error).__name__}: {error}"
        raise DomainCheckFailed(f"No answer from {domain_check_url(host)} ({reason}).") from error
    finally:
        connection.close()
    if response.status != 200:
        raise DomainCheckFailed(f"{domain_check_url(host)} answered HTTP {response.status}, not 200 with the token.")
    return body


def domain_answers_token(host: str, tenant: Tenant) -> None:
    answer = domain_answer(host)
    if answer != domain_token(tenant):
        shown = answer[:40] + ("…" if len(answer) > 40 else "")
        raise DomainCheckFailed(
            f"{domain_check_url(host)} answered {shown!r}, not this tenant's token: the host reaches another server or tenant."
        )
