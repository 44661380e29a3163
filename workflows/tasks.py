"""Thin Celery entry points for the engine; `workflows.engine` does the work.

`advance` runs inside one tenant's schema (tenant-schemas-celery reads the `_schema_name`
header) on the `engine` queue. It claims a batch of ready runs and advances each, so a broker
round trip is paid per batch, not per run or per step. Redelivery is harmless: a run already
advanced is no longer ready, and a run leased to another worker is skipped.

Beat sends `dispatch_fire_timers` every few seconds; it fans out `fire_timers` to each ready
tenant, which fires due timers, reaps runs of dead workers, and wakes `advance` when either
found something.
"""

import os
import socket

from celery import shared_task

from tenants.db import connection

BATCH = 50


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@shared_task(name="workflows.advance", acks_late=True)
def advance() -> int:
    from workflows.engine import runs_advance_ready

    statuses = runs_advance_ready(owner=_owner(), limit=BATCH)
    if len(statuses) == BATCH or "running" in statuses.values():
        advance.apply_async(headers={"_schema_name": connection.schema_name})  # more may be ready
    return len(statuses)


@shared_task(name="workflows.dispatch_fire_timers")
def dispatch_fire_timers() -> list[str]:
    """The scheduler's fan-out: `fire_timers` in every ready tenant's schema."""
    from tenants.models import Tenant, TenantStatus

    connection.set_schema_to_public()
    schemas = list(Tenant.objects.filter(status=TenantStatus.READY).values_list("schema_name", flat=True))
    for schema in schemas:
        fire_timers.apply_async(headers={"_schema_name": schema})
    return schemas


@shared_task(name="workflows.fire_timers")
def fire_timers() -> dict[str, int]:
    """Inside one tenant's schema: fire due timers, reap runs of dead workers, wake the engine."""
    from workflows.engine import runs_reap, timers_fire_due

    fired, reaped = timers_fire_due(), runs_reap()
    if fired or reaped:
        advance.apply_async(headers={"_schema_name": connection.schema_name})
    return {"fired": fired, "reaped": reaped}


@shared_task(name="workflows.demo_traffic")
def demo_traffic() -> list[str]:
    """Development only: one sample milestone run per ready tenant, each time the scheduler calls."""
    import time

    from tenants.models import Tenant, TenantStatus

    connection.set_schema_to_public()
    schemas = list(Tenant.objects.filter(status=TenantStatus.READY).values_list("schema_name", flat=True))
    sequence = int(time.time())
    for schema in schemas:
        demo_tenant_run.apply_async(args=[sequence], headers={"_schema_name": schema})
    return schemas


@shared_task(name="workflows.demo_tenant_run")
def demo_tenant_run(sequence: int) -> int | None:
    from governance.services import Actor
    from workflows.runs import demo_run_start

    run = demo_run_start(actor=Actor.system("demo-traffic"), sequence=sequence)
    return run.pk if run else None
