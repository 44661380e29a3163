"""Request ids and structured request logs; health, readiness and Prometheus metrics endpoints."""

import hmac
import os
import time
import uuid

import redis
import structlog
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

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


def metrics(request):
    """Prometheus text format; needs `Authorization: Bearer <BATON_METRICS_TOKEN>` when a token is set."""
    token = settings.BATON_METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied, token):
            return HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
