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
from typing import Any

from celery import shared_task
from django.conf import settings

from tenants.db import connection
from tenants.tasks import ready_tenants_send, schema_wake_token_drop


def worker_owner() -> str:
    """The lease owner this worker process claims runs as."""
    return f"{socket.gethostname()}:{os.getpid()}"


@shared_task(name="workflows.advance", acks_late=True)
def advance() -> int:
    from workflows.engine import engine_wake, runs_advance_ready
    from workflows.runs import wake_token_key

    schema = connection.schema_name
    schema_wake_token_drop(wake_token_key(schema))  # before claiming: see tenants.tasks.schema_wake

    batch = settings.BATON_ENGINE_BATCH
    statuses = runs_advance_ready(owner=worker_owner(), limit=batch, lease_seconds=settings.BATON_ENGINE_LEASE_SECONDS)
    if len(statuses) >= batch or {"running", "queued"} & set(statuses.values()):
        # More may be ready. A run started or woken while this worked has sent a wake-up already
        # (the token was dropped above), and then this sends none: both let each advance send two.
        engine_wake(schema)
    return len(statuses)


@shared_task(name="workflows.dispatch_fire_timers")
def dispatch_fire_timers() -> list[str]:
    """The scheduler's fan-out: `fire_timers` in every ready tenant's schema."""
    return ready_tenants_send(fire_timers)


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
    """Development only: sample runs per ready tenant each time the scheduler calls (workflows.demo)."""
    import time

    from workflows.demo import DEMO_TICK_SECONDS

    # One number a tick, consecutive: the sample orders and milestones cycle through all their kinds.
    return ready_tenants_send(demo_tenant_run, int(time.time() // DEMO_TICK_SECONDS))


@shared_task(name="workflows.demo_tenant_run")
def demo_tenant_run(sequence: int) -> dict[str, Any]:
    from governance.services import Actor
    from workflows.demo import demo_carrier_answers, demo_order_start, demo_run_start

    actor = Actor.system("demo-traffic")
    milestone = demo_run_start(actor=actor, sequence=sequence)
    order = demo_order_start(actor=actor, sequence=sequence)
    return {"milestone": milestone.pk if milestone else None, "order": order.pk if order else None, "answered": demo_carrier_answers()}


@shared_task(name="workflows.dispatch_schedules")
def dispatch_schedules() -> list[str]:
    """Beat's fan-out for schedule triggers: `fire_schedules` in every ready tenant's schema."""
    return ready_tenants_send(fire_schedules)


@shared_task(name="workflows.fire_schedules")
def fire_schedules() -> dict[str, int]:
    """Inside one tenant's schema: start the runs its schedules owe. Cursors (SKIP LOCKED) and each
    firing's business key make a repeat or a concurrent call harmless."""
    from governance.services import Actor
    from workflows.triggers import schedules_fire

    fired = schedules_fire(actor=Actor.system("scheduler"))
    return {"started": len(fired.started), "skipped": fired.skipped, "problems": len(fired.problems)}


@shared_task(name="workflows.dispatch_purge")
def dispatch_purge() -> list[str]:
    """Daily, from beat: `purge_runs` in every ready tenant's schema."""
    return ready_tenants_send(purge_runs)


@shared_task(name="workflows.purge_runs")
def purge_runs() -> dict[str, object]:
    """Inside one tenant's schema: apply its retention policy (`workflows.retention.runs_purge`);
    a purge the time limit stopped goes on in a new task."""
    from governance.services import Actor
    from workflows.retention import runs_purge

    result = runs_purge(actor=Actor.system("retention"))
    if not result["complete"]:
        purge_runs.apply_async(headers={"_schema_name": connection.schema_name})
    return result


@shared_task(name="workflows.approval_announce")
def approval_announce(approval_id: int) -> int:
    """Inside one tenant's schema: email the assignees of an approval that was just requested or
    escalated, with signed decision links (`workflows.approval_mail`). Sends once per request or
    escalation level, so a redelivery sends nothing new."""
    from workflows.approval_mail import approvals_announce

    return approvals_announce(approval_id)


@shared_task(name="workflows.notify_email")
def notify_email(run_id: int, step_id: str, key: str) -> int:
    """Inside one tenant's schema: a `notify` step's email (`workflows.notify`), once per step key."""
    from workflows.notify import notify_email_send

    return notify_email_send(run_id, step_id, key)
