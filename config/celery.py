"""The Celery app. Tasks carry their tenant's schema (tenant-schemas-celery) and run inside it."""

import contextlib
import os
import time

from celery import bootsteps
from celery.signals import task_prerun
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


@task_prerun.connect
def _bind_task_log_context(task_id=None, task=None, **_kwargs):
    """Worker log lines carry the task and the tenant schema it runs in, like request logs do."""
    import structlog
    from django.db import connection

    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task=getattr(task, "name", ""), task_id=task_id, tenant=getattr(connection, "schema_name", ""))
