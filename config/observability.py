"""Request ids and structured request logs; health, readiness and Prometheus metrics endpoints
(the web's `/metrics`, and a Celery worker's own when it is scraped on its own)."""

import hmac
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
import structlog
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

log = structlog.get_logger("baton.request")

REQUESTS = Counter("baton_http_requests_total", "HTTP requests", ["method", "status", "surface"])
LATENCY = Histogram("baton_http_request_seconds", "HTTP request latency", ["surface"])
WORKER_HEARTBEAT_KEY = f"baton:{os.environ.get('BATON_CACHE_KEY_PREFIX', '')}:worker:heartbeat"
WORKER_HEARTBEAT_MAX_AGE = 60


class RequestIdMiddleware:
    """Give every request an id (or keep the caller's) and bind it to every log line."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            structlog.contextvars.bind_contextvars(user=user.email)
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        surface = "console" if getattr(request, "tenant", None) is None else "tenant"
        REQUESTS.labels(request.method, str(response.status_code), surface).inc()
        LATENCY.labels(surface).observe(elapsed)
        if not request.path.startswith(("/static/", "/healthz", "/metrics")):
            log.info("request", method=request.method, path=request.path, status=response.status_code, ms=round(elapsed * 1000, 1))
        return response


def healthz(request):
    """Alive: the process answers. Nothing else is checked, so a restart loop isn't triggered by a dependency."""
    return JsonResponse({"status": "ok"})


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


READY_CHECKS = ("database", "broker", "worker")


def readyz(request):
    """Ready: the database answers, the broker answers, and a worker sent a heartbeat lately.

    `?checks=database,broker` narrows it: a web pod's readiness must not hang on the workers,
    or every page would go dark when the workers do.
    """
    wanted = [name for name in request.GET.get("checks", ",".join(READY_CHECKS)).split(",") if name in READY_CHECKS]
    checks: dict[str, str] = {}
    if "database" in wanted:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["database"] = f"failed: {exc}"
    if "broker" in wanted or "worker" in wanted:
        try:
            client = redis_client()
            client.ping()
            if "broker" in wanted:
                checks["broker"] = "ok"
            if "worker" in wanted:
                beat = client.get(WORKER_HEARTBEAT_KEY)
                age = time.time() - float(beat) if beat else None
                checks["worker"] = (
                    "ok"
                    if age is not None and age < WORKER_HEARTBEAT_MAX_AGE
                    else ("no heartbeat yet: start a worker (celery -A config worker)" if age is None else f"last heartbeat {age:.0f}s ago")
                )
        except Exception as exc:  # noqa: BLE001
            checks["broker"] = f"failed: {exc}"
            if "worker" in wanted:
                checks["worker"] = "unknown: broker unreachable"
    ready = bool(checks) and all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


def metrics_token_accepted(authorization: str) -> bool:
    """True without a configured token, else when `authorization` is `Bearer <BATON_METRICS_TOKEN>`."""
    token = settings.BATON_METRICS_TOKEN
    return not token or hmac.compare_digest(authorization.removeprefix("Bearer ").strip(), token)


def metrics_exposition(*, engine_gauges: bool = True) -> bytes:
    """The Prometheus text of every process sharing `PROMETHEUS_MULTIPROC_DIR` (web, Celery worker
    children, beat, the MQTT listener: their counters are files there), or of this process alone
    when it is unset; plus, for the web, the engine and inbox gauges read from the database and
    the circuits' states from Redis, at scrape time."""
    multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if multiprocess_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiprocess_dir)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if engine_gauges:
        from connectors.metrics import CircuitGaugesCollector, InboxGaugesCollector
        from workflows.metrics import EngineGaugesCollector

        scrape = CollectorRegistry()  # per scrape: the gauges are read now, and only here
        scrape.register(EngineGaugesCollector())
        scrape.register(InboxGaugesCollector())
        scrape.register(CircuitGaugesCollector())
        body += generate_latest(scrape)
    return body


def metrics(request):
    """Prometheus text format; needs `Authorization: Bearer <BATON_METRICS_TOKEN>` when a token is set."""
    if not metrics_token_accepted(request.headers.get("Authorization", "")):
        return HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


class _WorkerMetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
        if self.path.split("?")[0] != "/metrics":
            self._answer(404, b"not found\n", "text/plain")
        elif not metrics_token_accepted(self.headers.get("Authorization", "")):
            self._answer(401, b"metrics need a bearer token\n", "text/plain")
        else:
            self._answer(200, metrics_exposition(engine_gauges=False), CONTENT_TYPE_LATEST)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - scrapes are not worth a log line
        pass


def worker_metrics_serve(listen: str) -> ThreadingHTTPServer:
    """Serve `GET /metrics` (same bearer token) from a Celery worker's main process or the MQTT
    listener (`mqtt_listen`) on `listen` (`host:port`), in a daemon thread: where their containers
    do not share a multiprocess directory with a web process (one per pod in Kubernetes), each is
    scraped here. Counters only; the scrape-time gauges are the web's."""
    host, _, port = listen.rpartition(":")
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), _WorkerMetricsHandler)  # noqa: S104 - scraped from other pods
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    return server
