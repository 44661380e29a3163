"""The Celery app. Tasks carry their tenant's schema (tenant-schemas-celery) and run inside it."""

import contextlib
import os
import time
from pathlib import Path

from celery import bootsteps
from celery.signals import task_prerun, worker_init, worker_process_init, worker_process_shutdown, worker_ready
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = CeleryApp("baton")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Write a timestamp to Redis every 10 s so /readyz can tell a worker is alive."""

    requires = {"celery.worker.components:Timer"}

    def start(self, worker):
        from config.observability import WORKER_HEARTBEAT_KEY, redis_client

        client = redis_client()

        def beat():
            with contextlib.suppress(Exception):  # a missed heartbeat shows up in /readyz
                client.set(WORKER_HEARTBEAT_KEY, time.time(), ex=120)

        beat()
        self.tref = worker.timer.call_repeatedly(10, beat)

    def stop(self, worker):
        if getattr(self, "tref", None):
            self.tref.cancel()


app.steps["worker"].add(WorkerHeartbeat)


class WorkerMetrics(bootsteps.StartStopStep):
    """With `BATON_WORKER_METRICS_LISTEN` (`host:port`), serve this worker's Prometheus counters
    (its child processes', from `PROMETHEUS_MULTIPROC_DIR`) on `/metrics`: for installations
    where the worker does not share that directory with a web process, such as a pod of its own."""

    def start(self, worker):
        listen = os.environ.get("BATON_WORKER_METRICS_LISTEN", "")
        if not listen:
            return
        import structlog

        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            structlog.get_logger("baton.metrics").warning(
                "BATON_WORKER_METRICS_LISTEN needs PROMETHEUS_MULTIPROC_DIR: the counters are in the child processes"
            )
            return
        from config.observability import worker_metrics_serve

        self.server = worker_metrics_serve(listen)
        structlog.get_logger("baton.metrics").info("worker metrics served", listen=listen)

    def stop(self, worker):
        if getattr(self, "server", None):
            self.server.shutdown()


app.steps["worker"].add(WorkerMetrics)


@worker_init.connect
def _worker_niceness(**_kwargs):
    """`BATON_WORKER_NICE` (0–19) lowers the CPU priority of a worker for batch work (the engine,
    documents) that shares cores with the web and the inbox's dispatcher; its pool's processes
    inherit it. Where the kernel shares CPU time between sessions first (autogroup scheduling, on
    by default in many kernels), a process's niceness only orders it within its own session: a
    worker that leads its session (a service manager or `setsid` started it) lowers the session's
    weight as well, or its niceness would change nothing."""
    niceness = int(os.environ.get("BATON_WORKER_NICE", "0") or 0)
    if niceness > 0:
        os.nice(niceness)
        if os.getsid(0) == os.getpid():
            with contextlib.suppress(OSError):  # no autogroup in this kernel, or a container's cgroup decides
                Path("/proc/self/autogroup").write_text(str(niceness))


@worker_ready.connect
@worker_process_init.connect
def _heap_settle(**_kwargs):
    """Start-up's objects out of the collector's way (`config.heap`): in the worker once it is
    ready (the solo pool runs tasks there) and in each pool process after the fork."""
    from config.heap import heap_settle

    heap_settle()


@worker_process_shutdown.connect
def _metrics_process_dead(pid=None, **_kwargs):
    """A pool process that exits tells prometheus_client's multiprocess mode, which drops its live
    gauges; its counters stay counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@task_prerun.connect
def _bind_task_log_context(task_id=None, task=None, **_kwargs):
    """Worker log lines carry the task and the tenant schema it runs in, like request logs do."""
    import structlog
    from django.db import connection

    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task=getattr(task, "name", ""), task_id=task_id, tenant=getattr(connection, "schema_name", ""))
