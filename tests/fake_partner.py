"""A fake trading partner that speaks HTTP on loopback: the edge of the world for engine tests and
the bench.

Connector steps reach it through `connectors.outbound.HttpConnectorPort` in whatever process runs
the engine (a real Celery worker included), so a test sees from outside what the partner received:
every request (`requests`) and every effect it performed (`effects`). Like a real partner API it
honours `Idempotency-Key` (scoped by the `X-Baton-Tenant` header, since run ids repeat across
tenant schemas): a repeated key gets the first answer again and performs nothing. The effect is
recorded when the request arrives, before any delay, so a caller killed while waiting for the
answer leaves exactly the effect a real partner would have made.

Standard library only (`http.server`), so `bench/` can import it without test dependencies.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class PartnerRequest:
    """One request as the partner received it."""

    path: str
    connection: str
    action: str
    headers: dict[str, str]
    body: Any
    idempotency_key: str
    tenant: str
    received_at: float
    status: int | None = None  # the answer's status, once decided
    answered_at: float | None = None  # when the answer was written (None: still waiting, or the caller hung up)
    replayed: bool = False  # a repeated idempotency key: the stored answer, no effect
    answer_headers: dict[str, str] = field(default_factory=dict)  # extra headers of a scripted answer


@dataclass
class PartnerEffect:
    """Something the partner did (tendered a load, booked a dock): once per idempotency key."""

    connection: str
    action: str
    payload: Any
    idempotency_key: str
    tenant: str
    reference: str
    at: float


@dataclass
class _ScriptedAnswer:
    status: int
    body: bytes
    content_type: str
    action: str = ""  # only requests for this action (empty: any)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakePartner:
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port; use as a context manager.

    `delay` (seconds) slows every answer and `delay_next` only the next ones (the effect is
    recorded first); `answer_next` / `fail_next` script the next answers (no effect, nothing
    stored for the key, so a retry with the same key can still succeed)."""

    delay: float = 0.0
    requests: list[PartnerRequest] = field(default_factory=list)
    effects: list[PartnerEffect] = field(default_factory=list)
    _answers: dict[tuple[str, str], tuple[int, bytes]] = field(default_factory=dict)
    _script: list[_ScriptedAnswer] = field(default_factory=list)
    _delays: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closing: threading.Event = field(default_factory=threading.Event, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakePartner:
        partner = self

        class Handler(_PartnerHandler):
            owner = partner

        self._closing.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-partner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # cuts delays short
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakePartner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the partner is not running"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- scripting -------------------------------------------------------------------------

    def answer_next(
        self,
        status: int,
        body: str | bytes | dict[str, Any] = "",
        *,
        times: int = 1,
        content_type: str = "",
        action: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` requests (for `action`, when given) get this answer (with `headers`,
        e.g. Retry-After) instead of being performed."""
        if isinstance(body, dict):
            raw, content_type = json.dumps(body).encode(), content_type or "application/json"
        else:
            raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._script.extend([_ScriptedAnswer(status, raw, content_type or "text/plain", action, dict(headers or {}))] * times)

    def fail_next(self, times: int = 1, status: int = 500, action: str = "") -> None:
        """The next `times` requests (for `action`, when given) fail with `status` (500: the partner's own error)."""
        self.answer_next(status, {"title": "partner unavailable", "status": status}, times=times, action=action)

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """The next `times` answers wait `seconds` (after the effect is recorded)."""
        with self._lock:
            self._delays.extend([seconds] * times)

    # --- what happened (thread-safe) -------------------------------------------------------

    def effects_for(self, key: str, tenant: str | None = None) -> list[PartnerEffect]:
        with self._lock:
            return [e for e in self.effects if e.idempotency_key == key and (tenant is None or e.tenant == tenant)]

    def requests_for(self, key: str, tenant: str | None = None) -> list[PartnerRequest]:
        with self._lock:
            return [r for r in self.requests if r.idempotency_key == key and (tenant is None or r.tenant == tenant)]

    def effect_count(self) -> int:
        with self._lock:
            return len(self.effects)

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def in_flight(self) -> list[PartnerRequest]:
        """Requests received whose answer has not been written yet."""
        with self._lock:
            return [r for r in self.requests if r.answered_at is None]

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> list[PartnerRequest]:
        """Block until at least `count` requests arrived; raises AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"the partner received {self.request_count()} requests within {timeout} s, expected {count}")

    # --- the partner's side ----------------------------------------------------------------

    def _receive(self, request: PartnerRequest) -> tuple[int, bytes, str, float]:
        """Record the request and decide its answer (scripted, replayed, or a new effect) and how
        long to wait before sending it."""
        with self._lock:
            self.requests.append(request)
            delay = self._delays.pop(0) if self._delays else self.delay
            status, body, content_type = self._decide(request)
            return status, body, content_type, delay

    def _decide(self, request: PartnerRequest) -> tuple[int, bytes, str]:
        """Under the lock: the scripted answer, the stored answer for a known key, or a new effect."""
        scripted_at = next((i for i, answer in enumerate(self._script) if answer.action in ("", request.action)), None)
        if scripted_at is not None:
            scripted = self._script.pop(scripted_at)
            request.status, request.answer_headers = scripted.status, scripted.headers
            return scripted.status, scripted.body, scripted.content_type
        scope = (request.tenant, request.idempotency_key)
        if request.idempotency_key and scope in self._answers:
            status, body = self._answers[scope]
            request.status, request.replayed = status, True
            return status, body, "application/json"
        effect = PartnerEffect(
            connection=request.connection,
            action=request.action,
            payload=request.body,
            idempotency_key=request.idempotency_key,
            tenant=request.tenant,
            reference=f"partner-{len(self.effects) + 1}",
            at=time.time(),
        )
        self.effects.append(effect)
        body = json.dumps(
            {"accepted": True, "connection": effect.connection, "action": effect.action, "reference": effect.reference}
        ).encode()
        if request.idempotency_key:
            self._answers[scope] = (200, body)
        request.status = 200
        return 200, body, "application/json"

    def _answered(self, request: PartnerRequest) -> None:
        with self._lock:
            request.answered_at = time.time()


class _PartnerHandler(BaseHTTPRequestHandler):
    owner: FakePartner
    protocol_version = "HTTP/1.1"  # keep-alive, as a pooled client expects
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (~40 ms on Linux), a latency no partner worth testing has.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        received_at = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._write(400, json.dumps({"title": "body is not JSON"}).encode(), "application/json")
            return
        connection, _, action = self.path.strip("/").partition("/")
        request = PartnerRequest(
            path=self.path,
            connection=connection,
            action=action,
            headers={name: value for name, value in self.headers.items()},
            body=body,
            idempotency_key=self.headers.get("Idempotency-Key", ""),
            tenant=self.headers.get("X-Baton-Tenant", ""),
            received_at=received_at,
        )
        status, answer, content_type, delay = self.owner._receive(request)
        if delay:
            self.owner._closing.wait(delay)
        if self._write(status, answer, content_type, request.answer_headers):
            self.owner._answered(request)

    def _write(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> bool:
        """Send the answer; False when the caller hung up (it was killed, or timed out)."""
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return False
        return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Quiet: tests read `requests` instead."""


@contextmanager
def fake_partner(delay: float = 0.0) -> Iterator[FakePartner]:
    """`with fake_partner(delay=3) as partner:` – a running partner, stopped afterwards."""
    with FakePartner(delay=delay) as partner:
        yield partner
