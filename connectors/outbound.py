"""Outbound REST for connector steps: the minimal real `ConnectorPort`, until the connectors app
brings partner profiles, credentials and auth.

`HttpConnectorPort` POSTs a step's payload as JSON to `{base_url}/{connection}/{action}` with the
step's idempotency key (`<run id>:<step id>`, the same for every attempt) in `Idempotency-Key`,
so a partner that honours the header performs a repeated call once. Answers become results or
`ConnectorError`s whose `kind` a step's retry policy can name in `non_retryable`.

Only loopback URLs are accepted: nothing may leave this machine yet. `BATON_CONNECTOR_HTTP_URL`
points it at a fake partner (tests, bench); `ConnectorsConfig.ready` installs it in every process.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import Counter

from connectors.guards import OPENED, CircuitPolicy, RateLimit, circuit_admit, circuit_record, rate_wait
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


class HttpConnectorPort:
    """The engine's `ConnectorPort` over HTTP with a pooled session per process and thread (a
    Celery prefork child must not reuse sockets its parent opened). Every call passes the
    connection's circuit breaker and rate limit first (`connectors.guards`)."""

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
        try:
            probe = circuit_admit(tenant, connection, self.circuit)
        except ConnectorError as error:
            OUTBOUND_CALLS.labels(error.kind).inc()
            raise
        try:
            rate_wait(tenant, connection, self.rate)
            result = self._post(tenant=tenant, connection=connection, action=action, payload=payload, idempotency_key=idempotency_key)
        except OutboundCallFailed as error:
            self._record(tenant, connection, ok=error.kind not in CIRCUIT_FAILURES, probe=probe)
            OUTBOUND_CALLS.labels(error.kind).inc()
            raise
        except ConnectorError as error:  # rate limited before calling: says nothing about the partner
            if probe:
                self._record(tenant, connection, ok=False, probe=True)
            OUTBOUND_CALLS.labels(error.kind).inc()
            raise
        self._record(tenant, connection, ok=True, probe=probe)
        OUTBOUND_CALLS.labels("ok").inc()
        return result

    def _record(self, tenant: str, connection: str, *, ok: bool, probe: bool) -> None:
        if circuit_record(tenant, connection, self.circuit, ok=ok, probe=probe) == OPENED:
            CIRCUITS_OPENED.inc()

    def _post(self, *, tenant: str, connection: str, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        url = f"{self.base_url}/{quote(connection, safe='')}/{quote(action, safe='')}"
        headers = {"Idempotency-Key": idempotency_key, "X-Baton-Tenant": tenant, "Accept": "application/json"}
        where = f"{connection}/{action}"
        try:
            # No redirects: a partner must not send the call (or its payload) anywhere else.
            response = self._session().post(url, json=payload, headers=headers, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout as error:  # before ConnectionError: ConnectTimeout is both
            raise OutboundCallFailed(f"{where} gave no answer within {self.timeout:g} s", kind="Timeout") from error
        except requests.RequestException as error:
            raise OutboundCallFailed(f"{where} could not be reached: {type(error).__name__}", kind="ConnectionError") from error
        status, excerpt = response.status_code, _excerpt(response.text)
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429:
            raise OutboundCallFailed(
                f"{where} asked to slow down: HTTP 429: {excerpt}",
                kind="RateLimited",
                status=status,
                excerpt=excerpt,
                retry_after=retry_after,
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


def port_from_settings() -> HttpConnectorPort | None:
    """The HTTP port when `BATON_CONNECTOR_HTTP_URL` is set (refused unless loopback), else None."""
    url = getattr(settings, "BATON_CONNECTOR_HTTP_URL", "")
    if not url:
        return None
    circuit = CircuitPolicy(
        failures_to_open=settings.BATON_CONNECTOR_CIRCUIT_FAILURES,
        open_seconds=settings.BATON_CONNECTOR_CIRCUIT_OPEN_SECONDS,
        probe_seconds=15,
    )
    return HttpConnectorPort(url, circuit=circuit, rate=RateLimit(rate=settings.BATON_CONNECTOR_RATE, burst=settings.BATON_CONNECTOR_BURST))
