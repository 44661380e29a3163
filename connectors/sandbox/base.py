"""The machinery every sandbox system shares: a threaded HTTP server on loopback, JSON routes,
problem+json errors, `Idempotency-Key` handling and switchable faults.

Idempotency works like the partner APIs it imitates (Stripe's model): the first answer to a key is
stored and a repeated key gets it again, marked `Idempotent-Replayed: true`, with no second effect;
the same key with a different request is refused (422). Keys are scoped to the caller, as Stripe
scopes them to an account: several tenants may share one sandbox (the demo's) and send the same
key (`<run id>:<step>`) for different requests. Injected 5xx answers happen before the
effect and are not stored, so a retry can still succeed; an injected hang happens after the effect,
so a caller that times out and retries with the same key sees exactly one effect.

Admin routes under `/_sandbox/` (faults, effects) are never subject to faults. `GET /health` is an
ordinary route (faults and a system's auth apply), so a connection's "Test connection" shows them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, urlsplit

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"


def utc_now_iso() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Problem(Exception):
    """An RFC 9457 answer: `slug` makes the stable type, `detail` says what, where and why."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.extra = status, slug, title, detail, extra

    def body(self) -> dict[str, Any]:
        return {"type": f"urn:baton:sandbox:{self.slug}", "title": self.title, "status": self.status, "detail": self.detail, **self.extra}


class Fields:
    """Reads a JSON object's fields and collects every problem, so one 422 answer names them all
    (RFC 9457 `invalid-params`, each with the field's path and the reason)."""

    def __init__(self, body: Any, path: str = "", errors: list[dict[str, str]] | None = None):
        self.path = path
        self.errors = [] if errors is None else errors
        self.body: dict[str, Any] = body if isinstance(body, dict) else {}
        if not isinstance(body, dict):
            self.errors.append({"name": path or "body", "reason": "must be a JSON object"})

    def _name(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, reason: str) -> None:
        self.errors.append({"name": self._name(name), "reason": reason})

    def text(self, name: str, *, required: bool = True, choices: tuple[str, ...] = (), default: str = "") -> str:
        value = self.body.get(name, None)
        if value is None or value == "":
            if required:
                self.fail(name, "is required")
            return default
        if not isinstance(value, str):
            self.fail(name, "must be a string")
            return default
        if choices and value not in choices:
            self.fail(name, f"must be one of {', '.join(choices)}")
        return value

    def number(self, name: str, *, integer: bool = False, positive: bool = True) -> float:
        value = self.body.get(name)
        if value is None:
            self.fail(name, "is required")
            return 0
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            self.fail(name, "must be a whole number" if integer else "must be a number")
            return 0
        if positive and value <= 0:
            self.fail(name, "must be greater than 0")
        return value

    def nested(self, name: str) -> Fields:
        if name not in self.body:
            self.fail(name, "is required")
            return Fields({}, self._name(name), self.errors)
        return Fields(self.body[name], self._name(name), self.errors)

    def items(self, name: str) -> list[Fields]:
        value = self.body.get(name)
        if not isinstance(value, list) or not value:
            self.fail(name, "must be a non-empty list")
            return []
        return [Fields(item, f"{self._name(name)}[{index}]", self.errors) for index, item in enumerate(value)]

    def check(self) -> None:
        if self.errors:
            detail = "; ".join(f"{error['name']} {error['reason']}" for error in self.errors)
            raise Problem(422, "invalid-params", "Invalid request", detail, invalid_params=self.errors)


@dataclass
class Faults:
    """What goes wrong, switched at runtime: `latency` (seconds) slows every answer; the next
    `fail_next` requests answer `fail_status`; the next `hang_next` requests get no answer for
    `hang_seconds` (the caller's timeout fires); webhook deliveries are sent twice
    (`duplicate_webhooks`) or held and sent newest first in groups of `reorder_window`
    (`reorder_webhooks`)."""

    latency: float = 0.0
    fail_next: int = 0
    fail_status: int = 503
    hang_next: int = 0
    hang_seconds: float = 60.0
    duplicate_webhooks: bool = False
    reorder_webhooks: bool = False
    reorder_window: int = 2

    def changed(self, changes: dict[str, Any]) -> Faults:
        """A copy with `changes` applied; ValueError naming the first bad field."""
        known = {f.name: f.type for f in fields(self)}
        values = asdict(self)
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(known)}")
            kind = str(known[name])  # "float", "int" or "bool" (annotations are strings here)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (isinstance(value, bool) if kind == "bool" else number and (kind == "float" or isinstance(value, int))):
                expected = {"bool": "true or false", "int": "a whole number", "float": "a number"}[kind]
                raise ValueError(f"fault {name!r} must be {expected}, not {value!r}")
            if not isinstance(value, bool) and value < 0:
                raise ValueError(f"fault {name!r} cannot be negative")
            values[name] = value
        result = Faults(**values)
        if not 500 <= result.fail_status <= 599:
            raise ValueError(f"fail_status must be a 5xx status, not {result.fail_status}")
        if result.reorder_window < 2:
            raise ValueError("reorder_window must be at least 2")
        return result


@dataclass
class SandboxRequest:
    """One request as the system received it, and what became of it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    idempotency_key: str
    received_at: float
    status: int | None = None
    replayed: bool = False
    fault: str = ""  # "fail" or "hang" when an injected fault answered it


@dataclass
class Effect:
    """Something the system did (confirmed an order, created a tender): once per idempotency key."""

    action: str
    reference: str
    payload: Any
    idempotency_key: str
    at: float


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()


RouteHandler = Callable[[SandboxRequest, re.Match[str]], Answer]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: RouteHandler
    writes: bool = False  # honours Idempotency-Key
    admin: bool = False  # exempt from faults
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(f"^{self.pattern}$"))


@dataclass(frozen=True)
class _Stored:
    fingerprint: str
    status: int
    body: Any


class SandboxSystem:
    """A fake partner system; subclasses declare `name`, `title` and `routes()`. Use as a context
    manager (`with TmsSandbox() as tms: tms.url`) or `serve_forever()` from the command line."""

    name: ClassVar[str]
    title: ClassVar[str]
    sends_webhooks: ClassVar[bool] = False

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"a sandbox listens on loopback only, not {host}")
        self.host, self._port = host, port
        self.faults = Faults()
        self.requests: list[SandboxRequest] = []
        self.effects: list[Effect] = []
        self._lock = threading.RLock()
        self._stored: dict[tuple[str, str], _Stored] = {}  # (caller, Idempotency-Key)
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self.routes() + [Route("GET", "/health", self._health)] + self._admin_routes()

    # --- what a system provides ------------------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def _faults_changed(self, before: Faults) -> None:
        """Hook for systems that hold work while a fault is on (the carrier's held webhooks)."""

    def _caller(self, request: SandboxRequest) -> str:
        """Who is calling, for scoping idempotency keys: the API key sent (`X-Api-Key`), if any.
        Systems with other credentials say it their way (the TMS: the OAuth2 client)."""
        return next((value for name, value in request.headers.items() if name.lower() == "x-api-key"), "")

    def _authorize(self, request: SandboxRequest, route: Route) -> Problem | None:
        """Hook for systems that want credentials (the TMS's OAuth2 bearer tokens); None lets the
        request through. Admin routes are never asked."""
        return None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        system: SandboxSystem = self

        class BoundHandler(_Handler):
            owner = system

        self._closing.clear()
        self._server = ThreadingHTTPServer((self.host, self._port), BoundHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=f"sandbox-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # cuts latency and hangs short
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Run in the foreground until interrupted or `request_stop()` (the command line)."""
        if self._server is None:
            self.start()
        try:
            while not self._closing.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def request_stop(self) -> None:
        """Make `serve_forever()` return (safe from a signal handler)."""
        self._closing.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, f"the {self.name} sandbox is not running"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- faults (Python API; the admin endpoint calls the same) -----------------------------

    def set_faults(self, **changes: Any) -> Faults:
        """Switch faults on or off: `set_faults(fail_next=2)`, `set_faults(latency=0.5)`."""
        with self._lock:
            if not self.sends_webhooks and any(name.endswith("webhooks") and value for name, value in changes.items()):
                raise ValueError(f"the {self.name} sandbox sends no webhooks")
            before, self.faults = self.faults, self.faults.changed(changes)
        self._faults_changed(before)
        return self.faults

    def clear_faults(self) -> Faults:
        with self._lock:
            before, self.faults = self.faults, Faults()
        self._faults_changed(before)
        return self.faults

    # --- what happened (thread-safe) -------------------------------------------------------

    def effects_for(self, action: str) -> list[Effect]:
        with self._lock:
            return [effect for effect in self.effects if effect.action == action]

    def record_effect(self, action: str, reference: str, payload: Any, request: SandboxRequest) -> None:
        """Called by handlers (under the lock) when they change the system's state."""
        self.effects.append(Effect(action, reference, payload, request.idempotency_key, time.time()))

    # --- serving ---------------------------------------------------------------------------

    def _receive(self, request: SandboxRequest) -> tuple[Answer, float, float]:
        """Record the request and decide its answer, the latency to add and how long to hang."""
        with self._lock:
            self.requests.append(request)
            routed = self._route(request)
            admin = not isinstance(routed, Problem) and routed[0].admin
            latency = 0.0 if admin else self.faults.latency
            if not admin and self.faults.fail_next:
                self.faults.fail_next -= 1
                request.fault = "fail"
                answer = self._problem_answer(
                    Problem(
                        self.faults.fail_status, "injected-failure", "Service unavailable", f"the {self.name} sandbox failed on purpose"
                    )
                )
                return self._answered(request, answer), latency, 0.0
            answer = self._perform(request, routed)
            hang = 0.0
            if not admin and self.faults.hang_next:
                self.faults.hang_next -= 1
                request.fault, hang = "hang", self.faults.hang_seconds
            return self._answered(request, answer), latency, hang

    def _answered(self, request: SandboxRequest, answer: Answer) -> Answer:
        request.status = answer.status
        return answer

    def _route(self, request: SandboxRequest) -> tuple[Route, re.Match[str]] | Problem:
        allowed = []
        for route in self._routes:
            match = route.compiled.match(request.path)
            if match:
                if route.method == request.method:
                    return route, match
                allowed.append(route.method)
        if allowed:
            return Problem(
                405, "method-not-allowed", "Method not allowed", f"{request.path} answers {', '.join(allowed)}, not {request.method}"
            )
        return Problem(404, "not-found", "Not found", f"the {self.name} sandbox has nothing at {request.path}")

    def _perform(self, request: SandboxRequest, routed: tuple[Route, re.Match[str]] | Problem) -> Answer:
        try:
            if isinstance(routed, Problem):
                raise routed
            route, match = routed
            refusal = None if route.admin else self._authorize(request, route)
            if refusal is not None:
                raise refusal
            if request.body is _INVALID_JSON:
                raise Problem(400, "invalid-json", "Body is not JSON", "the request body could not be read as JSON")
            if not (route.writes and request.idempotency_key):
                return route.handler(request, match)
            return self._idempotent(request, route, match)
        except Problem as problem:
            return self._problem_answer(problem)

    def _idempotent(self, request: SandboxRequest, route: Route, match: re.Match[str]) -> Answer:
        fingerprint = hashlib.sha256(f"{request.method} {request.path}\n".encode() + request.raw).hexdigest()
        scoped = (self._caller(request), request.idempotency_key)
        stored = self._stored.get(scoped)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise Problem(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    f"the Idempotency-Key {request.idempotency_key!r} was first used for a different request",
                )
            request.replayed = True
            return Answer(stored.status, stored.body, (("Idempotent-Replayed", "true"),))
        try:
            answer = route.handler(request, match)
        except Problem as problem:
            answer = self._problem_answer(problem)
        self._stored[scoped] = _Stored(fingerprint, answer.status, answer.body)
        return answer

    def _problem_answer(self, problem: Problem) -> Answer:
        headers: tuple[tuple[str, str], ...] = (("Content-Type", PROBLEM_JSON),)
        if problem.status in (429, 503):
            headers += (("Retry-After", "1"),)
        return Answer(problem.status, problem.body(), headers)

    def _admin_routes(self) -> list[Route]:
        return [
            Route("GET", "/_sandbox/faults", lambda request, match: Answer(200, asdict(self.faults)), admin=True),
            Route("POST", "/_sandbox/faults", self._faults_posted, admin=True),
            Route("DELETE", "/_sandbox/faults", lambda request, match: Answer(200, asdict(self.clear_faults())), admin=True),
            Route("GET", "/_sandbox/effects", self._effects_listed, admin=True),
        ]

    def _faults_posted(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        if not isinstance(request.body, dict):
            raise Problem(422, "invalid-faults", "Invalid faults", 'send a JSON object such as {"fail_next": 2}')
        try:
            return Answer(200, asdict(self.set_faults(**request.body)))
        except ValueError as error:
            raise Problem(422, "invalid-faults", "Invalid faults", str(error)) from error

    def _health(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        return Answer(200, {"status": "ok", "system": self.name, "title": self.title, "time": utc_now_iso()})

    def _effects_listed(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        return Answer(200, {"effects": [asdict(effect) for effect in self.effects]})


_INVALID_JSON = object()


class _Handler(BaseHTTPRequestHandler):
    owner: SandboxSystem
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # see tests/fake_partner.py: no 40 ms delayed-ACK stalls

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = _INVALID_JSON
            media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if body is _INVALID_JSON and media_type == "application/x-www-form-urlencoded":  # OAuth2 token requests
                body = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
        parts = urlsplit(self.path)
        request = SandboxRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers=dict(self.headers.items()),
            body=body,
            raw=raw,
            idempotency_key=self.headers.get("Idempotency-Key", "").strip(),
            received_at=time.time(),
        )
        answer, latency, hang = self.owner._receive(request)
        if hang:
            self.owner._closing.wait(hang)
            self.close_connection = True  # the caller gave up; this answer is never sent
            return
        if latency:
            self.owner._closing.wait(latency)
        self._write(answer)

    def _write(self, answer: Answer) -> None:
        payload = json.dumps(answer.body).encode()
        headers = dict(answer.headers)
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", headers.pop("Content-Type", JSON))
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Quiet: `requests` on the system says what arrived."""
