"""Gunicorn settings for Baton's web process (the image's `web` subcommand).

Sized by environment variables (deploy/README.md lists them); access and error logs are JSON
lines (access to stdout, errors to stderr), like the application's own structlog output.
"""

import datetime
import json
import logging
import os

from gunicorn import glogging


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


bind = f"0.0.0.0:{_env_int('PORT', 8000)}"
wsgi_app = "config.wsgi:application"

# Processes x threads per pod; each thread may hold one PostgreSQL connection (CONN_MAX_AGE).
workers = _env_int("WEB_CONCURRENCY", 2)
threads = _env_int("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
# Recycle workers now and then so a slow leak never grows unbounded.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 100)

# A request running longer than this is killed; on SIGTERM, in-flight requests get
# graceful_timeout seconds (keep it below the pod's terminationGracePeriodSeconds).
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)

# TLS ends at the ingress. Django itself trusts X-Forwarded-Proto in production
# (SECURE_PROXY_SSL_HEADER); gunicorn may take the forwarded scheme from any peer, since only
# the ingress (through the Service) reaches the pod. Narrow it with FORWARDED_ALLOW_IPS.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")

# The root filesystem is read-only: heartbeat files in memory, the control socket in /tmp.
worker_tmp_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "/tmp/gunicorn.ctl")

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonErrorFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"timestamp": _now(), "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class JsonLogger(glogging.Logger):
    """Gunicorn's logger with one JSON object per line instead of the Apache format."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if getattr(handler, "_gunicorn", False):
                handler.setFormatter(JsonErrorFormatter())

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        try:
            atoms = self.atoms(resp, req, environ, request_time)
            line = {
                "timestamp": _now(),
                "level": "info",
                "logger": "gunicorn.access",
                "event": "access",
                "remote_addr": atoms["h"],
                "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR", ""),
                "host": environ.get("HTTP_HOST", ""),
                "method": atoms["m"],
                "path": atoms["U"],
                "query": atoms["q"],
                "protocol": atoms["H"],
                "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
                "bytes": atoms["B"],
                "ms": round(atoms["D"] / 1000, 1),
                "referer": atoms["f"],
                "user_agent": atoms["a"],
                "request_id": atoms.get("{x-request-id}o", ""),
                "pid": os.getpid(),
            }
            # No %-args: the message is written as it is.
            self.access_log.info(json.dumps(line))
        except Exception:  # noqa: BLE001 - a log line must never fail a request
            self.exception("access log line failed")


logger_class = JsonLogger


def child_exit(server, worker):
    """Prometheus multiprocess mode: a worker process that exits drops its live gauges (its
    counters stay in PROMETHEUS_MULTIPROC_DIR and keep being counted by /metrics)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
