"""The outbound log: every HTTP exchange Baton has with a partner, redacted, cut short, kept a while.

What a call sent and what came back is what an operator needs when a partner says "we never got
it" or a step fails with HTTP 400 – but an exchange carries credentials. Before anything is kept:
- headers that authenticate (Authorization, Cookie, X-Api-Key, the connection's own auth header,
  any name with token, secret, signature, key, password or credential in it except
  Idempotency-Key) become "[redacted]";
- so do a URL's user info and its query parameters with secret-looking names;
- so do the values under secret-looking keys (password, secret, token, api_key, client_secret,
  authorization…) of JSON and form bodies, at any depth;
- and every literal occurrence, anywhere in what is kept (a partner echoing the key in its error
  message included), of the connection's decrypted secrets and of the redacted header values (an
  OAuth2 bearer token, a Basic pair, an HMAC signature).
Bodies are then cut at EXCHANGE_BODY_LIMIT bytes, their whole size kept beside them.

The engine makes a round's calls on a thread pool and must not pay an INSERT per call:
`exchanges_batch()` collects the exchanges recorded while it is open – on its own thread and on
any thread calling for the same tenant schema – and writes them with one COPY when it
closes. Outside a batch an exchange is written at once. Keeping the log never fails a call: a
write that fails is logged and the exchange dropped.

Also here: what the log pages and the API read (`exchanges_list`, `exchange_get`) and the
retention purge beat runs daily (`exchanges_purge`, BATON_CONNECTOR_EXCHANGE_DAYS).
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_tenants.utils import schema_context

from config.encryption import SecretUnreadable
from connectors.auth import DEFAULT_API_KEY_HEADER, DEFAULT_HMAC_HEADER, TokenError, connection_secrets
from connectors.models import EXCHANGE_BODY_LIMIT, AuthMethod, Connection, ConnectorExchange, ExchangeOrigin
from connectors.safety import OutboundRefused
from tenants.db import connection as db
from tenants.db import rows_copy

log = structlog.get_logger(__name__)

REDACTED = "[redacted]"
OK = "ok"
FAILED = "failed"  # the pages' and the API's filter for every outcome but ok
# The ConnectorError kinds an exchange can end in (connectors.outbound), for the filters.
FAILURE_KINDS = (
    "HttpClientError",
    "HttpServerError",
    "RateLimited",
    "Timeout",
    "ConnectionError",
    "BadResponse",
    "Refused",
    "AuthFailed",
)
OUTCOMES = (OK, *FAILURE_KINDS)
OUTCOME_LABELS = {
    OK: "OK",
    "HttpClientError": "Refused by the partner (4xx)",
    "HttpServerError": "Partner failed (5xx)",
    "RateLimited": "Rate limited (429)",
    "Timeout": "Timed out",
    "ConnectionError": "Could not connect",
    "BadResponse": "Unexpected answer",
    "Refused": "Refused by the address guard",
    "AuthFailed": "No usable credentials",
}
# A secret shorter than this is not hunted for in text: it would blank ordinary words.
MIN_SECRET_CHARS = 4
# Bodies up to this size are parsed to redact by key; a larger one is redacted by pattern.
PARSE_LIMIT = 256 * 1024

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
SECRET_HEADER_WORDS = ("token", "secret", "signature", "key", "password", "credential")
NOT_SECRET_HEADERS = frozenset({"idempotency-key", "x-idempotency-key"})
SECRET_KEY_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "signature",
    "credential",
    "cookie",
    "sessionid",
)
SECRET_STEMS = ("pass", "secret", "token", "key", "authori", "signature", "credential", "cookie", "session")
SECRET_QUERY_NAMES = frozenset({"key", "sig", "auth", "pwd", "pass", "code"})  # besides SECRET_KEY_WORDS, in URLs only
_JSON_PAIR = re.compile(r'"((?:[^"\\]|\\.){1,200})"(\s*:\s*)"(?:[^"\\]|\\.)*"')
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_STEP_KEY = re.compile(r"^(\d+)(?:\.\d+)?:(.+?)(?:#\d+)?$")


# ---------- redaction -------------------------------------------------------------------------------


def _secret_words_in(text: str) -> bool:
    folded = _NOT_ALNUM.sub("", text.lower())
    return any(word in folded for word in SECRET_KEY_WORDS)


def _has_secret_stem(text: str) -> bool:
    """Whether `text` may hold a secret-looking key: every SECRET_KEY_WORDS word, with or without
    separators inside ("api_key"), contains one of these stems (a quick look before parsing)."""
    lowered = text.lower()
    return any(stem in lowered for stem in SECRET_STEMS)


@functools.lru_cache(maxsize=4096)
def secret_key(name: str) -> bool:
    """Whether a JSON, form or query key names something secret (password, client_secret, X-Api-Key…)."""
    return _secret_words_in(name)


@functools.lru_cache(maxsize=1024)
def secret_header(name: str, auth_header: str = "") -> bool:
    lowered = name.lower()
    if lowered in NOT_SECRET_HEADERS:
        return False
    return lowered in SECRET_HEADERS or lowered == auth_header.lower() or any(word in lowered for word in SECRET_HEADER_WORDS)


def _literals(values: Iterable[str]) -> list[str]:
    """The secrets to hunt for in text, as they may appear there (raw, URL-encoded, JSON-escaped),
    longest first so a secret containing another is replaced whole."""
    found: set[str] = set()
    for value in values:
        if not isinstance(value, str) or len(value) < MIN_SECRET_CHARS:
            continue
        found.update({value, quote(value, safe=""), json.dumps(value)[1:-1]})
    return sorted(found, key=len, reverse=True)


def text_scrubbed(text: str, literals: list[str]) -> str:
    """`text` with every literal secret replaced, and without NUL characters (PostgreSQL text refuses them)."""
    for literal in literals:
        if literal in text:
            text = text.replace(literal, REDACTED)
    return text.replace("\x00", "\ufffd")


def json_redacted(value: Any) -> tuple[Any, bool]:
    """`value` with every value under a secret-looking key replaced, at any depth; and whether any was."""
    if isinstance(value, dict):
        changed = False
        kept: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and secret_key(key) and item not in (None, ""):
                kept[key], changed = REDACTED, True
            else:
                kept[key], deeper = json_redacted(item)
                changed = changed or deeper
        return kept, changed
    if isinstance(value, list):
        items = [json_redacted(item) for item in value]
        return [item for item, _ in items], any(deeper for _, deeper in items)
    return value, False


def _pairs_redacted(text: str) -> str:
    """String values under secret-looking keys in JSON that could not be parsed (cut, or broken)."""

    def replace(match: re.Match[str]) -> str:
        return f'"{match.group(1)}"{match.group(2)}"{REDACTED}"' if secret_key(match.group(1)) else match.group(0)

    return _JSON_PAIR.sub(replace, text)


def _form_redacted(text: str) -> str:
    parts = []
    for part in text.split("&"):
        name, equals, _value = part.partition("=")
        parts.append(f"{name}={REDACTED}" if equals and secret_key(name.replace("+", " ")) else part)
    return "&".join(parts)


def cut(text: str, limit: int = EXCHANGE_BODY_LIMIT) -> str:
    """At most `limit` bytes of UTF-8, never half a character."""
    encoded = text.encode()
    return text if len(encoded) <= limit else encoded[:limit].decode(errors="ignore")


def body_redacted(raw: bytes, *, content_type: str = "", encoding: str | None = None, literals: list[str] | None = None) -> str:
    """A body as the log keeps it: decoded, secrets redacted (by key when it is JSON or a form, then
    every literal secret), cut at EXCHANGE_BODY_LIMIT bytes."""
    if not raw:
        return ""
    text = raw[:PARSE_LIMIT].decode(encoding or "utf-8", errors="replace")
    if not _has_secret_stem(text):  # no secret-looking key anywhere: nothing to redact by key (most bodies)
        return cut(text_scrubbed(text, literals or []))
    kind = content_type.lower()
    parsed = False
    if len(raw) <= PARSE_LIMIT and ("json" in kind or text.lstrip()[:1] in ("{", "[")):
        try:
            document = json.loads(text)
        except ValueError:
            pass
        else:
            parsed = True
            redacted, changed = json_redacted(document)
            if changed:
                text = json.dumps(redacted, ensure_ascii=False)
    if not parsed:
        text = _form_redacted(text) if "x-www-form-urlencoded" in kind else _pairs_redacted(text)
    return cut(text_scrubbed(text, literals or []))


def url_redacted(url: str, literals: list[str] | None = None) -> str:
    """The URL without user info or the values of secret-looking query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text_scrubbed(url, literals or [])
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        kept = []
        for part in query.split("&"):
            name, equals, _value = part.partition("=")
            folded = name.lower()
            secret = equals and (secret_key(name) or folded in SECRET_QUERY_NAMES)
            kept.append(f"{name}={REDACTED}" if secret else part)
        query = "&".join(kept)
    return text_scrubbed(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), literals or [])


def _header_secrets(headers: Mapping[str, str], auth_header: str) -> list[str]:
    """The values of the headers that will be redacted, and their credentials without the scheme
    ("Bearer abc…" → "abc…"): literal secrets to hunt for everywhere else."""
    found = []
    for name, value in headers.items():
        if secret_header(name, auth_header) and value:
            found.append(str(value))
            scheme, _space, credentials = str(value).partition(" ")
            if credentials and scheme.isalpha():
                found.append(credentials.strip())
    return found


def headers_redacted(headers: Mapping[str, str], *, auth_header: str = "", literals: list[str] | None = None) -> dict[str, str]:
    return {
        str(name): REDACTED if secret_header(str(name), auth_header) else text_scrubbed(str(value), literals or [])
        for name, value in headers.items()
    }


def _plain_headers(headers: Mapping[str, str | bytes]) -> dict[str, str]:
    return {str(name): value.decode("latin-1") if isinstance(value, bytes) else str(value) for name, value in headers.items()}


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")


def auth_header_of(connection: Connection | None) -> str:
    """The header the connection's auth method puts its credential in, when it has its own."""
    if connection is None:
        return ""
    configured = connection.auth_settings.get("header", "") if isinstance(connection.auth_settings, dict) else ""
    if connection.auth_method == AuthMethod.API_KEY:
        return str(configured or DEFAULT_API_KEY_HEADER)
    if connection.auth_method == AuthMethod.HMAC:
        return str(configured or DEFAULT_HMAC_HEADER)
    return ""


def _connection_secrets(connection: Connection | None) -> list[str]:
    if connection is None:
        return []
    try:
        return [value for value in connection_secrets(connection).values() if isinstance(value, str)]
    except (SecretUnreadable, ValueError):
        return []


# ---------- what the exchange was -------------------------------------------------------------------


def status_outcome(status: int) -> str:
    """An answer's outcome as `connectors.outbound.answer_result` names it (for a 2xx: ok)."""
    if 200 <= status < 300:
        return OK
    if status == 429:
        return "RateLimited"
    if 400 <= status < 500:
        return "HttpClientError"
    if status >= 500:
        return "HttpServerError"
    return "BadResponse"


def failure_outcome(error: BaseException) -> str:
    """The outcome of a call that got no answer, from what stopped it."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(cause, TokenError | SecretUnreadable) for cause in seen):
        return "AuthFailed"
    if any(isinstance(cause, OutboundRefused) for cause in seen):
        return "Refused"
    if any(isinstance(cause, requests.Timeout) for cause in seen):
        return "Timeout"
    return "ConnectionError"


def step_of(idempotency_key: str) -> tuple[int | None, str]:
    """The run id and step id in a step's idempotency key (`<run>[.<generation>]:<step>[#<visit>]`)."""
    match = _STEP_KEY.match(idempotency_key or "")
    if match is None:
        return None, ""
    return int(match.group(1)), match.group(2)[:200]


def answer_head(response: requests.Response) -> bytes:
    """The answer's body when it was read already; else its first EXCHANGE_BODY_LIMIT + 1 bytes
    (one more, so a longer answer shows as cut), read once however often this is asked."""
    loaded = response.__dict__.get("_content", False)  # requests keeps a read body there
    if loaded is not False:
        return bytes(loaded or b"")
    head = response.__dict__.get("_baton_head")
    if head is None:
        try:
            head = next(response.iter_content(EXCHANGE_BODY_LIMIT + 1), b"")
        except (requests.RequestException, OSError, RuntimeError):
            head = b""
        response.__dict__["_baton_head"] = head
    return bytes(head)


def _answer_size(response: requests.Response, body: bytes) -> int | None:
    if response.__dict__.get("_content", False) is not False or len(body) <= EXCHANGE_BODY_LIMIT:
        return len(body)
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def exchange_record(
    *,
    tenant: str,
    connection: Connection | None,
    connection_key: str,
    action: str,
    method: str,
    url: str,
    request_headers: Mapping[str, str],
    request_body: bytes = b"",
    response: requests.Response | None = None,
    sent: requests.PreparedRequest | None = None,
    outcome: str,
    error: str = "",
    duration_ms: int = 0,
    idempotency_key: str = "",
    origin: str = ExchangeOrigin.STEP,
) -> None:
    """Keep one exchange, redacted: in the open batch for `tenant`, else written now.

    `request_headers` are what the caller set; the headers actually sent (auth included) are
    read from the answer's request, or from `sent` (a failed call's, when requests kept it). Never
    raises: a log that cannot be kept must not fail the call it describes."""
    try:
        row = _exchange_row(
            connection=connection,
            connection_key=connection_key,
            action=action,
            method=method,
            url=url,
            request_headers=request_headers,
            request_body=request_body,
            response=response,
            sent=sent,
            outcome=outcome,
            error=error,
            duration_ms=duration_ms,
            idempotency_key=idempotency_key,
            origin=origin,
        )
    except Exception:  # noqa: BLE001 - the log must never fail the call
        log.warning("connector exchange not recorded", connection=connection_key, action=action, exc_info=True)
        return
    batch = _batch_for(tenant)
    if batch is None or not batch.add(row):
        _write(tenant, [row])


def exchange_test_record(
    *,
    connection: Connection,
    url: str,
    message: str,
    response: requests.Response | None = None,
    error: BaseException | None = None,
    duration_ms: int = 0,
) -> None:
    """Keep a Test connection's exchange (in the current schema): its answer, or what stopped it
    (`message` is what the page said, kept as the error when it is not ok)."""
    outcome = status_outcome(response.status_code) if response is not None else failure_outcome(error or Exception())
    sent = getattr(error, "request", None)
    exchange_record(
        tenant=db.schema_name,
        connection=connection,
        connection_key=connection.key,
        action="",
        method=connection.health_method,
        url=url,
        request_headers={},
        response=response,
        sent=sent if isinstance(sent, requests.PreparedRequest) else None,
        outcome=outcome,
        error="" if outcome == OK else message,
        duration_ms=duration_ms,
        origin=ExchangeOrigin.TEST,
    )


def _exchange_row(
    *,
    connection: Connection | None,
    connection_key: str,
    action: str,
    method: str,
    url: str,
    request_headers: Mapping[str, str],
    request_body: bytes,
    response: requests.Response | None,
    sent: requests.PreparedRequest | None,
    outcome: str,
    error: str,
    duration_ms: int,
    idempotency_key: str,
    origin: str,
) -> ConnectorExchange:
    prepared = response.request if response is not None and response.request is not None else sent
    headers = _plain_headers(prepared.headers if prepared is not None else request_headers)
    auth_header = auth_header_of(connection)
    literals = _literals([*_connection_secrets(connection), *_header_secrets(headers, auth_header)])
    run_id, step_id = step_of(idempotency_key)
    row = ConnectorExchange(
        connection=connection,
        connection_key=connection_key[:80],
        origin=origin,
        action=action[:200],
        method=method.upper()[:10],
        url=url_redacted(url, literals),
        request_headers=headers_redacted(headers, auth_header=auth_header, literals=literals),
        request_body=body_redacted(request_body, content_type=_header(headers, "Content-Type"), literals=literals),
        request_size=len(request_body),
        duration_ms=max(0, int(duration_ms)),
        outcome=outcome[:30],
        error=text_scrubbed(_pairs_redacted(error), literals),  # it may quote the answer
        idempotency_key=idempotency_key[:200],
        run_id=run_id,
        step_id=step_id,
        created_at=timezone.now(),
    )
    if response is not None:
        body = answer_head(response)
        row.response_status = response.status_code
        row.response_headers = headers_redacted(response.headers, auth_header=auth_header, literals=literals)
        row.response_body = body_redacted(
            body, content_type=response.headers.get("Content-Type", ""), encoding=response.encoding, literals=literals
        )
        row.response_size = _answer_size(response, body)
    return row


# ---------- batches ---------------------------------------------------------------------------------


class ExchangeBatch:
    """Exchanges recorded for one tenant schema while a batch is open, from any thread."""

    def __init__(self, schema: str):
        self.schema = schema
        self._rows: list[ConnectorExchange] = []
        self._lock = threading.Lock()
        self._open = True

    def add(self, row: ConnectorExchange) -> bool:
        """False once the batch is closed: the caller writes the row itself."""
        with self._lock:
            if not self._open:
                return False
            self._rows.append(row)
            return True

    def close(self) -> list[ConnectorExchange]:
        with self._lock:
            self._open = False
            rows, self._rows = self._rows, []
        return rows

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)


_CURRENT: contextvars.ContextVar[ExchangeBatch | None] = contextvars.ContextVar("connector_exchange_batch", default=None)
# Open batches by schema: the engine's pool threads do not inherit the caller's context, so they
# find the batch of the schema they call for here.
_OPEN: dict[str, list[ExchangeBatch]] = {}
_OPEN_LOCK = threading.Lock()


@contextmanager
def exchanges_batch() -> Iterator[ExchangeBatch]:
    """Collect the exchanges recorded for the current tenant schema – on this thread or any other
    – until the block ends, then write them with one COPY on this
    thread's database connection, in its transaction if it is in one (under a savepoint, so a
    failed write cannot break it). Nested batches join the outer one."""
    schema = db.schema_name
    current = _CURRENT.get()
    if current is not None and current.schema == schema and current.is_open:
        yield current
        return
    batch = ExchangeBatch(schema)
    token = _CURRENT.set(batch)
    with _OPEN_LOCK:
        _OPEN.setdefault(schema, []).append(batch)
    try:
        yield batch
    finally:
        with _OPEN_LOCK:
            still = [other for other in _OPEN.get(schema, []) if other is not batch]
            if still:
                _OPEN[schema] = still
            else:
                _OPEN.pop(schema, None)
        _CURRENT.reset(token)
        _write(schema, batch.close())


def _batch_for(schema: str) -> ExchangeBatch | None:
    current = _CURRENT.get()
    if current is not None and current.schema == schema:
        return current
    with _OPEN_LOCK:
        batches = _OPEN.get(schema)
        return batches[-1] if batches else None


def _write(schema: str, rows: list[ConnectorExchange]) -> None:
    if not rows:
        return
    try:
        if db.schema_name == schema:
            _insert(rows)
        else:
            with schema_context(schema):
                _insert(rows)
    except Exception:  # noqa: BLE001 - the log must never fail the calls it describes
        log.warning("connector exchanges not written", schema=schema, count=len(rows), exc_info=True)


_COPY_COLUMNS = (
    "connection_id",
    "connection_key",
    "origin",
    "action",
    "method",
    "url",
    "request_headers",
    "request_body",
    "request_size",
    "response_status",
    "response_headers",
    "response_body",
    "response_size",
    "duration_ms",
    "outcome",
    "error",
    "idempotency_key",
    "run_id",
    "step_id",
    "created_at",
)
_JSON_COLUMNS = frozenset({"request_headers", "response_headers"})


def _insert(rows: list[ConnectorExchange]) -> None:
    if db.in_atomic_block:
        with transaction.atomic():  # a savepoint: a failed write leaves the caller's transaction usable
            _copy_rows(rows)
    else:
        with transaction.atomic():
            _copy_rows(rows)


def _copy_rows(rows: list[ConnectorExchange]) -> None:
    """One COPY for the lot (`tenants.db.rows_copy`): a round of the engine writes up to 200 rows."""
    rows_copy(
        "connectors_connectorexchange",
        _COPY_COLUMNS,
        ([json.dumps(getattr(row, name)) if name in _JSON_COLUMNS else getattr(row, name) for name in _COPY_COLUMNS] for row in rows),
    )


# ---------- reads -----------------------------------------------------------------------------------

LIST_DEFERRED = ("request_headers", "request_body", "response_headers", "response_body")


def exchanges_list(*, connection: Connection, outcome: str = "") -> QuerySet[ConnectorExchange]:
    """The connection's exchanges newest first; `outcome` is ok, failed (anything but ok) or a
    failure kind. Headers and bodies are left for the detail."""
    rows = ConnectorExchange.objects.filter(connection=connection).defer(*LIST_DEFERRED)
    if outcome == FAILED:
        rows = rows.exclude(outcome=OK)
    elif outcome:
        rows = rows.filter(outcome=outcome)
    return rows.order_by("-pk")


def exchange_get(*, connection: Connection, exchange_id: int) -> ConnectorExchange | None:
    return ConnectorExchange.objects.filter(connection=connection, pk=exchange_id).first()


def exchanges_exist(*, connection: Connection) -> bool:
    return ConnectorExchange.objects.filter(connection=connection).exists()


def body_pretty(body: str) -> str:
    """A stored body as a person reads it: JSON indented (when it is whole JSON), else as kept."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


# ---------- retention -------------------------------------------------------------------------------

PURGE_CHUNK = 5000
PURGE_TIME_LIMIT_SECONDS = 10 * 60


def exchanges_purge(
    *, now: datetime | None = None, days: int | None = None, chunk: int = PURGE_CHUNK, time_limit: float = PURGE_TIME_LIMIT_SECONDS
) -> dict[str, Any]:
    """Delete the current schema's exchanges older than `days` (BATON_CONNECTOR_EXCHANGE_DAYS),
    `chunk` rows per statement so no delete holds locks for long; `complete` is false when the
    time limit stopped it first (the task then goes on in a new one)."""
    days = settings.BATON_CONNECTOR_EXCHANGE_DAYS if days is None else days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deadline = time.monotonic() + time_limit
    deleted, complete = 0, False
    while time.monotonic() < deadline:
        ids = list(ConnectorExchange.objects.filter(created_at__lt=cutoff).order_by().values_list("pk", flat=True)[:chunk])
        if not ids:
            complete = True
            break
        count, _by_model = ConnectorExchange.objects.filter(pk__in=ids).delete()
        deleted += count
    if deleted:
        log.info("connector exchanges purged", schema=db.schema_name, deleted=deleted, complete=complete, days=days)
    return {"deleted": deleted, "cutoff": cutoff.isoformat(), "days": days, "complete": complete}
