"""Writes to a tenant's connections: create, update, disable and enable, test, rotate credentials.

Every write is audited in its own transaction, and no audit row, log line or message ever holds a
secret: audit data names which secrets changed, never their values. "Test connection" calls the
partner outside any transaction and records what happened in words.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.encryption import SecretUnreadable, secret_rotate
from connectors.auth import (
    AUTH_SECRETS,
    AUTH_SETTINGS,
    CLIENT_AUTH,
    DEFAULT_API_KEY_HEADER,
    DEFAULT_HMAC_HEADER,
    HMAC_ALGORITHMS,
    MASK,
    TokenError,
    authorized_send,
    connection_secrets,
    credentials_seal,
    failure_text,
    secret_mask,
    secrets_redacted,
)
from connectors.exchanges import answer_head, exchange_test_record
from connectors.hook_connections import hook_connections_forget
from connectors.models import AuthMethod, Connection, ConnectionKind, HealthMethod, Transport
from connectors.safety import HostUnresolved, OutboundRefused, guarded_session, host_check, url_check
from governance.services import actor_of, audit_record

log = structlog.get_logger("baton.connectors")

# The same rule as a workflow's connection bindings, which name connections by key.
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
KEY_RULE = "lowercase letters, digits, '-' and '_', starting with a letter or digit (at most 80)"
RESERVED_KEYS = frozenset({"new", "inbox", "edi"})  # the pages' own addresses under /connections/
# Which URL schemes and auth methods each transport takes.
TRANSPORT_SCHEMES: dict[str, tuple[str, ...]] = {
    Transport.HTTPS: ("https", "http"),
    Transport.SFTP: ("sftp",),
    Transport.MQTT: ("mqtts", "mqtt"),
    Transport.SMTP: ("smtp", "smtps"),
}
TRANSPORT_AUTH: dict[str, tuple[str, ...]] = {
    Transport.HTTPS: tuple(AuthMethod.values),
    Transport.SFTP: (AuthMethod.NONE, AuthMethod.BASIC),
    Transport.MQTT: (AuthMethod.NONE, AuthMethod.BASIC),
    Transport.SMTP: (AuthMethod.NONE, AuthMethod.BASIC),
}
DEFAULT_PORTS = {"http": 80, "https": 443, "sftp": 22, "mqtt": 1883, "mqtts": 8883, "smtp": 587, "smtps": 465}
SECRET_MAX_CHARS = 4096
SETTINGS_MAX_CHARS = 16_000
TIMEOUT_LIMITS = {"connect_timeout": (0.1, 60.0), "read_timeout": (0.1, 300.0)}
# Option names that look like secrets: those go in the encrypted fields, not the plain settings.
_SECRET_LIKE = re.compile(r"pass|secret|token|api[_-]?key|private|credential", re.IGNORECASE)
EXCERPT_CHARS = 120
# Secrets sealed beside the auth method's but set elsewhere (an SFTP partner's private key and its
# passphrase, on the EDI partner card: `connectors.edi_transport`); an edit of the connection keeps them.
TRANSPORT_SECRETS = ("private_key", "passphrase")


@dataclass(frozen=True)
class KindDefaults:
    """What a new connection of a kind starts with; everything can be changed."""

    transport: str
    auth_method: str
    example_url: str
    description: str
    health_path: str = ""
    auth_settings: dict[str, str] = field(default_factory=dict)

    @property
    def transport_label(self) -> str:
        return Transport(self.transport).label


KIND_DEFAULTS: dict[str, KindDefaults] = {
    ConnectionKind.ERP: KindDefaults(
        Transport.HTTPS, AuthMethod.OAUTH2, "https://erp.example.com/api", "Orders, customers and invoices.", "/", {"client_auth": "basic"}
    ),
    ConnectionKind.TMS: KindDefaults(
        Transport.HTTPS, AuthMethod.API_KEY, "https://tms.example.com/api", "Loads, tenders and tracking.", "/", {"header": "X-Api-Key"}
    ),
    ConnectionKind.WMS: KindDefaults(
        Transport.HTTPS, AuthMethod.API_KEY, "https://wms.example.com/api", "Inventory, picks and receipts.", "/", {"header": "X-Api-Key"}
    ),
    ConnectionKind.CRM: KindDefaults(
        Transport.HTTPS, AuthMethod.OAUTH2, "https://crm.example.com/api", "Accounts and contacts.", "/", {"client_auth": "basic"}
    ),
    ConnectionKind.CARRIER: KindDefaults(
        Transport.HTTPS,
        AuthMethod.API_KEY,
        "https://api.carrier.example.com",
        "Rates, labels and tracking events.",
        "/",
        {"header": "X-Api-Key"},
    ),
    ConnectionKind.EDI_PARTNER: KindDefaults(Transport.SFTP, AuthMethod.BASIC, "sftp://edi.partner.example:22", "X12 files over SFTP."),
    ConnectionKind.IOT: KindDefaults(Transport.MQTT, AuthMethod.BASIC, "mqtts://broker.example.com:8883", "Positions and temperatures."),
    ConnectionKind.CUSTOMER_WEBHOOK: KindDefaults(
        Transport.HTTPS,
        AuthMethod.HMAC,
        "https://hooks.customer.example/baton",
        "Events your customer receives, signed.",
        "",
        {"header": DEFAULT_HMAC_HEADER, "algorithm": "sha256"},
    ),
    ConnectionKind.EMAIL: KindDefaults(Transport.SMTP, AuthMethod.BASIC, "smtp://smtp.example.com:587", "Mail sent in your brand."),
}


@dataclass(frozen=True)
class ConnectionProblem:
    pointer: str  # "/base_url", "/auth/token_url", "/auth/client_secret", …
    reason: str


class ConnectionInvalid(Exception):
    """The connection cannot be saved as given; every problem by JSON pointer."""

    def __init__(self, problems: list[ConnectionProblem]):
        super().__init__("; ".join(f"{problem.pointer}: {problem.reason}" for problem in problems))
        self.problems = problems


@dataclass
class ConnectionInput:
    """A connection as written by a page or the API. `secrets` holds only new values: a secret left
    out (or blank) keeps the stored one."""

    key: str
    name: str
    kind: str
    base_url: str
    transport: str = Transport.HTTPS
    auth_method: str = AuthMethod.NONE
    health_path: str = ""
    health_method: str = HealthMethod.GET
    connect_timeout: float = 5
    read_timeout: float = 30
    settings: dict[str, Any] = field(default_factory=dict)
    auth_settings: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionTestResult:
    ok: bool
    message: str
    tested_at: Any


def _url_problems(data: ConnectionInput) -> list[ConnectionProblem]:
    schemes = TRANSPORT_SCHEMES.get(data.transport, ())
    url = data.base_url.strip()
    if not url:
        return [ConnectionProblem("/base_url", "is required")]
    if len(url) > 500:
        return [ConnectionProblem("/base_url", "is longer than 500 characters")]
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 – raises on a port that is not a number
    except ValueError:
        return [ConnectionProblem("/base_url", "has a port that is not a number from 0 to 65535")]
    if parts.scheme not in schemes or not parts.hostname:
        return [
            ConnectionProblem("/base_url", f"must be a {' or '.join(s + '://' for s in schemes)} address with a host, like the example")
        ]
    if parts.username or parts.password:
        return [ConnectionProblem("/base_url", "must not hold a user or password: put them in the auth fields, where they are encrypted")]
    if parts.fragment:
        return [ConnectionProblem("/base_url", "must not have a #fragment")]
    return []


def _auth_problems(data: ConnectionInput, stored: set[str]) -> list[ConnectionProblem]:
    method, settings = data.auth_method, data.auth_settings
    problems = []
    for name in AUTH_SECRETS[method]:
        value = data.secrets.get(name, "")
        # Over SFTP the password may be left out: SSH can sign in with the key the EDI partner card takes.
        if not value and name not in stored and not (data.transport == Transport.SFTP and name == "password"):
            problems.append(ConnectionProblem(f"/auth/{name}", "is required"))
        elif value.startswith(MASK):
            problems.append(
                ConnectionProblem(f"/auth/{name}", "is the mask of a secret, not a secret: leave it out to keep the stored one")
            )
        elif len(value) > SECRET_MAX_CHARS:
            problems.append(ConnectionProblem(f"/auth/{name}", f"is longer than {SECRET_MAX_CHARS} characters"))
    header = settings.get("header", "")
    if method in (AuthMethod.API_KEY, AuthMethod.HMAC) and header and not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}", header):
        problems.append(ConnectionProblem("/auth/header", f"'{header}' is not a header name: letters, digits and '-' (at most 100)"))
    if method == AuthMethod.BASIC and not settings.get("username"):
        problems.append(ConnectionProblem("/auth/username", "is required"))
    if method == AuthMethod.BASIC and ":" in settings.get("username", ""):
        problems.append(ConnectionProblem("/auth/username", "must not contain ':'"))
    if method == AuthMethod.HMAC and settings.get("algorithm", HMAC_ALGORITHMS[0]) not in HMAC_ALGORITHMS:
        problems.append(ConnectionProblem("/auth/algorithm", f"must be one of {', '.join(HMAC_ALGORITHMS)}"))
    if method == AuthMethod.OAUTH2:
        token_url = settings.get("token_url", "")
        parts = urlsplit(token_url)
        if not token_url:
            problems.append(ConnectionProblem("/auth/token_url", "is required"))
        elif parts.scheme not in ("https", "http") or not parts.hostname or parts.username or len(token_url) > 500:
            problems.append(ConnectionProblem("/auth/token_url", "must be an https:// address with a host (at most 500 characters)"))
        if not settings.get("client_id"):
            problems.append(ConnectionProblem("/auth/client_id", "is required"))
        if settings.get("client_auth", CLIENT_AUTH[0]) not in CLIENT_AUTH:
            problems.append(ConnectionProblem("/auth/client_auth", f"must be one of {', '.join(CLIENT_AUTH)}"))
    for name, value in settings.items():
        if name in AUTH_SETTINGS[method] and len(str(value)) > 500:
            problems.append(ConnectionProblem(f"/auth/{name}", "is longer than 500 characters"))
    return problems


def connection_problems(data: ConnectionInput, *, stored_secrets: set[str] | None = None) -> list[ConnectionProblem]:
    """Everything wrong with `data`, by JSON pointer; `stored_secrets` names the secrets already
    kept for its auth method (an edit may leave those blank)."""
    problems = []
    if not KEY_PATTERN.match(data.key):
        problems.append(ConnectionProblem("/key", f"use {KEY_RULE}"))
    elif data.key in RESERVED_KEYS:
        problems.append(ConnectionProblem("/key", f"'{data.key}' is reserved: choose another key"))
    if not data.name.strip():
        problems.append(ConnectionProblem("/name", "is required"))
    elif len(data.name.strip()) > 120:
        problems.append(ConnectionProblem("/name", "is longer than 120 characters"))
    if data.kind not in ConnectionKind.values:
        problems.append(ConnectionProblem("/kind", f"must be one of {', '.join(ConnectionKind.values)}"))
    if data.transport not in Transport.values:
        return [*problems, ConnectionProblem("/transport", f"must be one of {', '.join(Transport.values)}")]
    problems += _url_problems(data)
    if data.health_path and (not data.health_path.startswith("/") or "://" in data.health_path or len(data.health_path) > 200):
        problems.append(ConnectionProblem("/health_path", "must be a path starting with '/' (at most 200 characters)"))
    if data.health_method not in HealthMethod.values:
        problems.append(ConnectionProblem("/health_method", "must be GET or HEAD"))
    for name, (low, high) in TIMEOUT_LIMITS.items():
        value = getattr(data, name)
        if not isinstance(value, int | float) or not low <= value <= high:
            problems.append(ConnectionProblem(f"/{name}", f"must be between {low:g} and {high:g} seconds"))
    if not isinstance(data.settings, dict):
        problems.append(ConnectionProblem("/settings", "must be a JSON object"))
    else:
        if len(json.dumps(data.settings)) > SETTINGS_MAX_CHARS:
            problems.append(ConnectionProblem("/settings", f"is larger than {SETTINGS_MAX_CHARS // 1000} KB"))
        for name in data.settings:
            if _SECRET_LIKE.search(str(name)):
                problems.append(
                    ConnectionProblem(
                        f"/settings/{name}", "looks like a secret: settings are stored in plain text, put secrets in the auth fields"
                    )
                )
    if data.auth_method not in AuthMethod.values:
        problems.append(ConnectionProblem("/auth/method", f"must be one of {', '.join(AuthMethod.values)}"))
    elif data.auth_method not in TRANSPORT_AUTH[data.transport]:
        allowed = ", ".join(TRANSPORT_AUTH[data.transport])
        problems.append(ConnectionProblem("/auth/method", f"{data.auth_method} does not work over {data.transport}: use {allowed}"))
    else:
        problems += _auth_problems(data, stored_secrets or set())
    return problems


def _auth_settings_kept(data: ConnectionInput) -> dict[str, str]:
    """The auth method's own settings, stripped, with defaults; other methods' leftovers dropped."""
    kept = {name: str(data.auth_settings.get(name, "") or "").strip() for name in AUTH_SETTINGS[data.auth_method]}
    if data.auth_method == AuthMethod.API_KEY:
        kept["header"] = kept["header"] or DEFAULT_API_KEY_HEADER
    if data.auth_method == AuthMethod.HMAC:
        kept["header"] = kept["header"] or DEFAULT_HMAC_HEADER
        kept["algorithm"] = kept["algorithm"] or HMAC_ALGORITHMS[0]
    if data.auth_method == AuthMethod.OAUTH2:
        kept["client_auth"] = kept["client_auth"] or CLIENT_AUTH[0]
    return kept


def _new_secrets(data: ConnectionInput) -> dict[str, str]:
    return {name: data.secrets[name] for name in AUTH_SECRETS[data.auth_method] if data.secrets.get(name)}


_PLAIN_FIELDS = (
    "name",
    "kind",
    "transport",
    "base_url",
    "health_path",
    "health_method",
    "connect_timeout",
    "read_timeout",
    "settings",
    "auth_method",
)


def _apply(connection: Connection, data: ConnectionInput) -> None:
    connection.name = data.name.strip()
    connection.kind = data.kind
    connection.transport = data.transport
    connection.base_url = data.base_url.strip()
    connection.health_path = data.health_path.strip()
    connection.health_method = data.health_method
    connection.connect_timeout = float(data.connect_timeout)
    connection.read_timeout = float(data.read_timeout)
    connection.settings = data.settings
    connection.auth_method = data.auth_method
    connection.auth_settings = _auth_settings_kept(data)


def connection_create(*, data: ConnectionInput, actor: Any) -> Connection:
    problems = connection_problems(data)
    if problems:
        raise ConnectionInvalid(problems)
    secrets = _new_secrets(data)
    connection = Connection(key=data.key, created_by_email=actor_of(actor).email)
    _apply(connection, data)
    connection.credentials = credentials_seal(secrets)
    connection.credential_masks = {name: secret_mask(value) for name, value in secrets.items()}
    try:
        with transaction.atomic():
            connection.save(force_insert=True)
            audit_record(
                actor=actor,
                action="connection.created",
                target=connection,
                data={
                    "key": connection.key,
                    "kind": connection.kind,
                    "transport": connection.transport,
                    "base_url": connection.base_url,
                    "auth_method": connection.auth_method,
                    "secrets_set": sorted(secrets),
                },
            )
    except IntegrityError as error:
        raise ConnectionInvalid([ConnectionProblem("/key", f"there is already a connection keyed '{data.key}'")]) from error
    log.info("connection created", connection=connection.key, auth_method=connection.auth_method)
    return connection


def connection_update(*, connection: Connection, data: ConnectionInput, actor: Any) -> Connection:
    """Change everything but the key (workflows name the connection by it). Secrets left blank are
    kept; those of an auth method no longer used are dropped."""
    data.key = connection.key
    same_method = data.auth_method == connection.auth_method
    stored = set(connection.credential_masks) if same_method else set()
    problems = connection_problems(data, stored_secrets=stored)
    new = _new_secrets(data)
    kept_names = [name for name in AUTH_SECRETS.get(data.auth_method, ()) if name in stored and name not in new]
    kept_names += [name for name in TRANSPORT_SECRETS if name in connection.credential_masks]
    removed = sorted(set(connection.credential_masks) - set(kept_names) - set(new))
    kept: dict[str, str] = {}
    if not problems and kept_names and (new or removed):  # merging needs the stored values
        try:
            current = connection_secrets(connection)
        except SecretUnreadable:
            problems = [
                ConnectionProblem(f"/auth/{name}", "the stored secret cannot be decrypted with the configured keys: enter it again")
                for name in kept_names
            ]
        else:
            kept = {name: current[name] for name in kept_names if name in current}
    if problems:
        raise ConnectionInvalid(problems)
    before = {name: getattr(connection, name) for name in (*_PLAIN_FIELDS, "auth_settings")}
    _apply(connection, data)
    changed = [name for name, value in before.items() if getattr(connection, name) != value]
    if new or removed:  # otherwise the sealed secrets stay exactly as they were
        connection.credentials = credentials_seal({**kept, **new})
        masks = {name: connection.credential_masks[name] for name in kept_names}
        connection.credential_masks = masks | {name: secret_mask(value) for name, value in new.items()}
    with transaction.atomic():
        # Only what an edit owns: the health counters and test result are written by calls meanwhile.
        connection.save(update_fields=[*_PLAIN_FIELDS, "auth_settings", "credentials", "credential_masks", "updated_at"])
        audit_record(
            actor=actor,
            action="connection.updated",
            target=connection,
            data={"changed": changed, "secrets_changed": sorted(new), "secrets_removed": removed},
        )
    hook_connections_forget()
    log.info("connection updated", connection=connection.key, changed=changed, secrets_changed=sorted(new))
    return connection


def connection_disable(*, connection: Connection, actor: Any, reason: str = "") -> Connection:
    """Stop using the connection; nothing is deleted, so it can be enabled again."""
    with transaction.atomic():
        if connection.enabled:
            connection.enabled = False
            connection.save(update_fields=["enabled", "updated_at"])
            audit_record(actor=actor, action="connection.disabled", target=connection, reason=reason)
    hook_connections_forget()
    return connection


def connection_enable(*, connection: Connection, actor: Any) -> Connection:
    with transaction.atomic():
        if not connection.enabled:
            connection.enabled = True
            connection.save(update_fields=["enabled", "updated_at"])
            audit_record(actor=actor, action="connection.enabled", target=connection)
    return connection


# ---------- Test connection ---------------------------------------------------------------------


def health_url(connection: Connection) -> str:
    base = connection.base_url.strip()
    return base.rstrip("/") + connection.health_path if connection.health_path else base


def _excerpt(response: requests.Response) -> str:
    """The start of the answer's body, for a person to read ("" when there is none)."""
    head = answer_head(response)[:4096]  # streamed: a huge answer is not read whole (the outbound log reads the same head)
    text = " ".join(head.decode(response.encoding or "utf-8", errors="replace").split())
    if not text:
        return ""
    return f": “{text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + '…'}”"


def _answer_text(response: requests.Response, url: str, elapsed_ms: int) -> tuple[bool, str]:
    status = f"HTTP {response.status_code}" + (f" {response.reason}" if response.reason else "")
    reached = f"Reached {url} in {elapsed_ms} ms"
    code = response.status_code
    if 200 <= code < 300:
        return True, f"{reached}: {status}"
    if 300 <= code < 400:
        where = response.headers.get("Location", "")
        return (
            False,
            f"{reached}: {status}, a redirect to {where or 'nowhere'}. Redirects are not followed: use that address as the base URL",
        )
    if code in (401, 403):
        return False, f"{reached}, but it refused the credentials: {status}{_excerpt(response)}"
    if code == 404:
        return False, f"{reached}, but there is nothing at that address: {status}. Check the base URL and the health path"
    if code < 500:
        return False, f"{reached}, but it refused the request: {status}{_excerpt(response)}"
    return False, f"{reached}, but it failed: {status}{_excerpt(response)}"


def _probe_http(connection: Connection) -> tuple[bool, str]:
    url = health_url(connection)
    timeouts = {"connect_timeout": connection.connect_timeout, "read_timeout": connection.read_timeout}
    session = guarded_session()
    started = time.monotonic()
    try:
        url_check(url)
        started = time.monotonic()
        with authorized_send(connection, session=session, method=connection.health_method, url=url) as response:
            elapsed_ms = round((time.monotonic() - started) * 1000)
            ok, message = _answer_text(response, url, elapsed_ms)
            exchange_test_record(connection=connection, url=url, message=message, response=response, duration_ms=elapsed_ms)
            return ok, message
    except TokenError as error:
        exchange_test_record(connection=connection, url=url, message=str(error), error=error)
        return False, str(error)
    except (OutboundRefused, HostUnresolved, requests.RequestException) as error:
        message = failure_text(error, **timeouts)
        elapsed_ms = round((time.monotonic() - started) * 1000)
        exchange_test_record(connection=connection, url=url, message=message, error=error, duration_ms=elapsed_ms)
        return False, message
    finally:
        session.close()


def _probe_tcp(connection: Connection) -> tuple[bool, str]:
    """SFTP, MQTT and SMTP: whether the server accepts a connection (logging in comes with the
    transports themselves). The socket goes to an address the guard checked, not to the name."""
    parts = urlsplit(connection.base_url.strip())
    host, port = parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme]
    timeouts = {"connect_timeout": connection.connect_timeout, "read_timeout": connection.read_timeout}
    try:
        addresses = host_check(host, port)
    except (OutboundRefused, HostUnresolved) as error:
        return False, failure_text(error, **timeouts)
    started = time.monotonic()
    failure: OSError | None = None
    for address in addresses:
        try:
            with socket.create_connection((address, port), timeout=connection.connect_timeout):
                elapsed_ms = round((time.monotonic() - started) * 1000)
                label = Transport(connection.transport).label
                return True, f"Reached {host}:{port} in {elapsed_ms} ms (a TCP connection: Baton does not log in over {label} yet)"
        except OSError as error:
            failure = error
    assert failure is not None
    return False, failure_text(failure, **timeouts)


def connection_probe(connection: Connection) -> tuple[bool, str]:
    """Call the partner once with the connection's auth and say what happened; writes nothing."""
    try:
        secrets = connection_secrets(connection)
    except SecretUnreadable:
        return False, "The stored credentials cannot be decrypted with the keys in BATON_ENCRYPTION_KEYS: enter them again"
    ok, message = _probe_http(connection) if connection.transport == Transport.HTTPS else _probe_tcp(connection)
    return ok, secrets_redacted(message, secrets)


def connection_test(*, connection: Connection, actor: Any) -> ConnectionTestResult:
    """Test connection: the call happens outside any transaction; its result is kept on the
    connection and audited."""
    ok, message = connection_probe(connection)
    tested_at = timezone.now()
    with transaction.atomic():
        Connection.objects.filter(pk=connection.pk).update(last_test_at=tested_at, last_test_ok=ok, last_test_message=message)
        audit_record(actor=actor, action="connection.tested", target=connection, data={"ok": ok, "message": message})
    connection.last_test_at, connection.last_test_ok, connection.last_test_message = tested_at, ok, message
    log.info("connection tested", connection=connection.key, ok=ok, message=message)
    return ConnectionTestResult(ok=ok, message=message, tested_at=tested_at)


def connection_credentials_rotate() -> int:
    """Re-encrypt every connection's credentials in the current schema under the first key."""
    rotated = 0
    with transaction.atomic():
        for connection in Connection.objects.select_for_update().exclude(credentials=""):
            connection.credentials = secret_rotate(connection.credentials)
            connection.save(update_fields=["credentials"])
            rotated += 1
    return rotated
