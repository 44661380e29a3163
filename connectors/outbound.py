"""Outbound REST for connector steps (the engine's `ConnectorPort`).

`ConnectionPort` calls the tenant's `Connection` named by the step (its base URL, the action's
method and path, its auth, timeouts, circuit and rate limit), through the guard against
server-side request forgery. A name with no connection falls back to `HttpConnectorPort` – a
loopback fake partner at `BATON_CONNECTOR_HTTP_URL` (`{url}/{connection}/{action}`; tests, bench,
demo) – or, without it, to the engine's in-process fake. Every call carries the step's
idempotency key (`<run id>:<step id>`, the same for every attempt) in `Idempotency-Key`, so a
partner that honours it performs a repeated call once; answers become results or
`ConnectorError`s whose `kind` a step's retry policy can name (`HttpClientError`,
`HttpServerError`, `RateLimited`, `Timeout`, `ConnectionError`, `BadResponse`, `CircuitOpen`,
`Refused`, `AuthFailed`, `ConnectionDisabled`). `ConnectorsConfig.ready` installs it in every process.
Every HTTP attempt (answered, failed, timed out, or refused by the guard or for want of a token)
goes to the outbound log (`connectors.exchanges`), redacted; a round's calls inside
`exchanges_batch()` are written together.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_tenants.utils import schema_context
from prometheus_client import Counter

from config.encryption import SecretUnreadable
from connectors.auth import TokenError, authorized_send
from connectors.exchanges import OK, ExchangeBatch, exchange_record, exchanges_batch
from connectors.guards import OPENED, CircuitPolicy, RateLimit, call_record, circuit_admit, circuit_record, rate_wait
from connectors.models import Connection
from connectors.safety import OutboundRefused, guarded_session
from workflows.engine import ConnectorError

EXCERPT_CHARS = 200
LOOPBACK_NAMES = ("localhost",)


class OutboundCallFailed(ConnectorError):
    """A partner call failed; `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, kind: str, status: int | None = None, excerpt: str = "", retry_after: float | None = None):
        super().__init__(message, kind=kind, retry_after=retry_after)
        self.status = status
        self.excerpt = excerpt


def loopback_url(url: str) -> str:
    """`url` without a trailing slash, if it is http(s) on a loopback host; ImproperlyConfigured otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ImproperlyConfigured(f"BATON_CONNECTOR_HTTP_URL must be an http:// or https:// URL with a host, not {url!r}.")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.lower() in LOOPBACK_NAMES
    if not loopback:
        raise ImproperlyConfigured(
            f"BATON_CONNECTOR_HTTP_URL points at {host}, which is not this machine: only loopback hosts "
            "(127.0.0.1, ::1, localhost) are allowed until real connectors land."
        )
    return url.rstrip("/")


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header as seconds from now: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


OUTBOUND_CALLS = Counter("baton_connector_calls_total", "Outbound connector calls by result (ok or the error kind)", ["result"])
CIRCUITS_OPENED = Counter("baton_connector_circuits_opened_total", "Times a connection's circuit opened (or reopened after a failed probe)")

# Failures that say the partner is unwell (they count towards opening its circuit); a 4xx says
# the call was wrong, not the partner.
CIRCUIT_FAILURES = frozenset({"Timeout", "ConnectionError", "HttpServerError"})


def guarded_call(
    tenant: str, connection: str, circuit: CircuitPolicy, rate: RateLimit, send: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """One outbound call through its connection's circuit breaker and rate limit, counted by
    result, its outcome kept in the connection's health (`connectors.guards`)."""
    try:
        probe = circuit_admit(tenant, connection, circuit)
    except ConnectorError as error:
        OUTBOUND_CALLS.labels(error.kind).inc()
        raise
    try:
        rate_wait(tenant, connection, rate)
        result = send()
    except OutboundCallFailed as error:
        _outcome(tenant, connection, circuit, ok=error.kind not in CIRCUIT_FAILURES, probe=probe, called=True, error=error)
        raise
    except ConnectorError as error:  # refused before calling (rate limit, auth): says nothing about the partner's health
        _outcome(tenant, connection, circuit, ok=False, probe=probe, called=False, error=error)
        raise
    _outcome(tenant, connection, circuit, ok=True, probe=probe, called=True)
    return result


def _outcome(
    tenant: str, connection: str, circuit: CircuitPolicy, *, ok: bool, probe: bool, called: bool, error: ConnectorError | None = None
) -> None:
    OUTBOUND_CALLS.labels(error.kind if error else "ok").inc()
    if called:
        state = call_record(tenant, connection, circuit, circuit_ok=ok, probe=probe, error=str(error) if error else "")
    elif probe:
        state = circuit_record(tenant, connection, circuit, ok=ok, probe=probe)
    else:
        return
    if state == OPENED:
        CIRCUITS_OPENED.inc()


def answer_result(response: requests.Response, where: str) -> dict[str, Any]:
    """A partner's answer as a result, or the OutboundCallFailed its status says."""
    status, excerpt = response.status_code, _excerpt(response.text)
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429:
        raise OutboundCallFailed(
            f"{where} asked to slow down: HTTP 429: {excerpt}", kind="RateLimited", status=status, excerpt=excerpt, retry_after=retry_after
        )
    if 400 <= status < 500:
        raise OutboundCallFailed(
            f"{where} refused the call: HTTP {status}: {excerpt}", kind="HttpClientError", status=status, excerpt=excerpt
        )
    if status >= 500:
        raise OutboundCallFailed(
            f"{where} failed: HTTP {status}: {excerpt}", kind="HttpServerError", status=status, excerpt=excerpt, retry_after=retry_after
        )
    if not 200 <= status < 300:
        raise OutboundCallFailed(f"{where} answered HTTP {status}: {excerpt}", kind="BadResponse", status=status, excerpt=excerpt)
    if status == 204:
        return {}
    try:
        result = response.json()
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise OutboundCallFailed(
            f"{where} answered HTTP {status} without a JSON object: {excerpt or '(empty body)'}",
            kind="BadResponse",
            status=status,
            excerpt=excerpt,
        )
    return result


def _sent_request(error: requests.RequestException) -> requests.PreparedRequest | None:
    """The request a failed call sent (its headers, auth included, for the log), when requests kept it."""
    sent = getattr(error, "request", None)
    return sent if isinstance(sent, requests.PreparedRequest) else None


def _network_failure(error: requests.RequestException, where: str, timeout: str) -> OutboundCallFailed:
    if isinstance(error, requests.Timeout):  # before ConnectionError: ConnectTimeout is both
        return OutboundCallFailed(f"{where} gave no answer within {timeout}", kind="Timeout")
    return OutboundCallFailed(f"{where} could not be reached: {type(error).__name__}", kind="ConnectionError")


class HttpConnectorPort:
    """The loopback fallback: POSTs to `{base_url}/{connection}/{action}` (a fake partner in tests,
    bench and demo) with a pooled session per process and thread (a Celery prefork child must not
    reuse sockets its parent opened). Every call passes the connection's guards."""

    def __init__(self, base_url: str, timeout: float = 10, circuit: CircuitPolicy | None = None, rate: RateLimit | None = None):
        self.base_url = loopback_url(base_url)
        self.timeout = timeout
        self.circuit = circuit or CircuitPolicy(probe_seconds=timeout + 5)
        self.rate = rate or RateLimit(rate=0)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        pid = os.getpid()
        if getattr(self._local, "pid", None) != pid:
            session = requests.Session()
            session.trust_env = False  # no proxy from the environment: the call stays on loopback
            self._local.pid, self._local.session = pid, session
        current: requests.Session = self._local.session
        return current

    def call(self, *, tenant: str, connection: str, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        send = partial(self._post, tenant=tenant, connection=connection, action=action, payload=payload, idempotency_key=idempotency_key)
        return guarded_call(tenant, connection, self.circuit, self.rate, send)

    def _post(self, *, tenant: str, connection: str, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        url = f"{self.base_url}/{quote(connection, safe='')}/{quote(action, safe='')}"
        headers = {
            "Idempotency-Key": idempotency_key,
            "X-Baton-Tenant": tenant,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        body = json.dumps(payload).encode()
        where = f"{connection}/{action}"
        response: requests.Response | None = None
        sent: requests.PreparedRequest | None = None
        failure: ConnectorError | None = None
        started = time.perf_counter()
        try:
            try:
                # No redirects: a partner must not send the call (or its payload) anywhere else.
                response = self._session().post(url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as error:
                sent = _sent_request(error)
                raise _network_failure(error, where, f"{self.timeout:g} s") from error
            return answer_result(response, where)
        except ConnectorError as error:
            failure = error
            raise
        finally:
            exchange_record(
                tenant=tenant,
                connection=None,
                connection_key=connection,
                action=action,
                method="POST",
                url=url,
                request_headers=headers,
                request_body=body,
                response=response,
                sent=sent,
                outcome=failure.kind if failure else OK,
                error=str(failure) if failure else "",
                duration_ms=round((time.perf_counter() - started) * 1000),
                idempotency_key=idempotency_key,
            )


CONNECTIONS_CACHE_SECONDS = 15.0


class ConnectionPort:
    """The engine's `ConnectorPort`: a connector step's (bound) connection name is the key of one
    of the tenant's `Connection`s, which says where and how to call – base URL, the action's
    method and path (`settings["actions"][action]`, default `POST /<action>`), auth headers
    (`connectors.auth`), timeouts, and its own circuit and rate limit (`settings`:
    `circuit_failures`, `circuit_open_seconds`, `rate_per_second`, `burst`). Calls go through the
    guard against server-side request forgery (`connectors.safety`) and never follow redirects.
    A name with no connection goes to `fallback` (the loopback partner, or the in-process fake).

    Connections are read per (tenant, key) and kept for CONNECTIONS_CACHE_SECONDS; `prepare`
    reads a round's connections in the calling thread before the calls go out on other threads,
    and `batch` collects the round's outbound log rows for one INSERT."""

    def __init__(self, fallback: Any, circuit: CircuitPolicy, rate: RateLimit):
        self.fallback = fallback
        self.circuit = circuit
        self.rate = rate
        self._known: dict[tuple[str, str], tuple[float, Connection | None]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def prepare(self, tenant: str, names: Iterable[str]) -> None:
        for name in names:
            self._connection(tenant, name)

    def _connection(self, tenant: str, name: str) -> Connection | None:
        now = time.monotonic()
        with self._lock:
            known = self._known.get((tenant, name))
        if known is not None and now - known[0] < CONNECTIONS_CACHE_SECONDS:
            return known[1]
        with schema_context(tenant):
            found = Connection.objects.filter(key=name).first()
        with self._lock:
            if len(self._known) > 5000:
                self._known.clear()
            self._known[(tenant, name)] = (now, found)
        return found

    def batch(self) -> AbstractContextManager[ExchangeBatch]:
        """`connectors.exchanges.exchanges_batch()`: a round's calls go to the outbound log in one
        INSERT when the block ends. Open it on the thread (and in the tenant schema) that makes
        the round, like `prepare`; the calls may run on any thread in between."""
        return exchanges_batch()

    def forget(self) -> None:
        """Read connections afresh on the next call (tests; after an edit in this process)."""
        with self._lock:
            self._known.clear()

    def _session(self) -> requests.Session:
        pid = os.getpid()
        if getattr(self._local, "pid", None) != pid:
            self._local.pid, self._local.session = pid, guarded_session()
        current: requests.Session = self._local.session
        return current

    def call(self, *, tenant: str, connection: str, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        target = self._connection(tenant, connection)
        if target is None:
            return dict(
                self.fallback.call(tenant=tenant, connection=connection, action=action, payload=payload, idempotency_key=idempotency_key)
            )
        options = target.settings if isinstance(target.settings, dict) else {}
        circuit = CircuitPolicy(
            failures_to_open=int(options.get("circuit_failures", self.circuit.failures_to_open)),
            open_seconds=float(options.get("circuit_open_seconds", self.circuit.open_seconds)),
            probe_seconds=target.connect_timeout + target.read_timeout + 5,
        )
        rate = RateLimit(rate=float(options.get("rate_per_second", self.rate.rate)), burst=int(options.get("burst", self.rate.burst)))
        send = partial(self._send, tenant, target, action, payload, idempotency_key)
        return guarded_call(tenant, connection, circuit, rate, send)

    def _send(self, tenant: str, target: Connection, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        where = f"{target.key} {action}"
        if not target.enabled:
            raise ConnectorError(f"{target.key} is disabled: nothing calls it until it is enabled again", kind="ConnectionDisabled")
        spec = (target.settings.get("actions") or {}).get(action) or {} if isinstance(target.settings, dict) else {}
        method = str(spec.get("method") or "POST").upper()
        url = target.base_url.rstrip("/") + "/" + str(spec.get("path") or action).lstrip("/")
        body = json.dumps(payload).encode()
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json", "Accept": "application/json"}
        response: requests.Response | None = None
        sent: requests.PreparedRequest | None = None
        failure: ConnectorError | None = None
        started = time.perf_counter()
        try:
            try:
                response = authorized_send(target, session=self._session(), method=method, url=url, body=body, headers=headers)
            except OutboundRefused as error:
                raise ConnectorError(f"{where}: {error}", kind="Refused") from error
            except (TokenError, SecretUnreadable) as error:
                raise ConnectorError(f"{where}: {error}", kind="AuthFailed") from error
            except requests.RequestException as error:
                sent = _sent_request(error)
                raise _network_failure(
                    error, where, f"{target.connect_timeout:g} s to connect and {target.read_timeout:g} s to answer"
                ) from error
            return answer_result(response, where)
        except ConnectorError as error:
            failure = error
            raise
        finally:
            exchange_record(
                tenant=tenant,
                connection=target,
                connection_key=target.key,
                action=action,
                method=method,
                url=url,
                request_headers=headers,
                request_body=body,
                response=response,
                sent=sent,
                outcome=failure.kind if failure else OK,
                error=str(failure) if failure else "",
                duration_ms=round((time.perf_counter() - started) * 1000),
                idempotency_key=idempotency_key,
            )
            if response is not None:
                response.close()


def guard_defaults() -> tuple[CircuitPolicy, RateLimit]:
    circuit = CircuitPolicy(
        failures_to_open=settings.BATON_CONNECTOR_CIRCUIT_FAILURES,
        open_seconds=settings.BATON_CONNECTOR_CIRCUIT_OPEN_SECONDS,
        probe_seconds=15,
    )
    return circuit, RateLimit(rate=settings.BATON_CONNECTOR_RATE, burst=settings.BATON_CONNECTOR_BURST)


def port_from_settings(fallback: Any) -> ConnectionPort:
    """The engine's port: tenants' connections, else the loopback partner at
    `BATON_CONNECTOR_HTTP_URL` when set (refused unless loopback), else `fallback`."""
    circuit, rate = guard_defaults()
    url = getattr(settings, "BATON_CONNECTOR_HTTP_URL", "")
    if url:
        fallback = HttpConnectorPort(url, circuit=circuit, rate=rate)
    return ConnectionPort(fallback, circuit, rate)
