"""Thin Celery entry points for tenant lifecycle work; the services do the work."""

import time
from contextlib import suppress
from typing import Any

import structlog
from celery import shared_task

from tenants.db import connection

log = structlog.get_logger("baton.tenants")


@shared_task(name="tenants.build", acks_late=True)
def tenant_build_task(tenant_id: int) -> str:
    """Idempotent: a redelivered message finds the tenant no longer provisioning and does nothing."""
    from tenants.services import tenant_build

    return tenant_build(tenant_id=tenant_id).status


@shared_task(name="tenants.archive_sweep")
def archive_sweep() -> list[str]:
    from tenants.services import tenant_archived_drop_due

    return tenant_archived_drop_due()


def ready_tenants_send(task: Any, *args: Any) -> list[str]:
    """The scheduler's fan-out: send `task` to run inside each ready tenant's schema (the
    `_schema_name` header tenant-schemas-celery reads). Only ready tenants get periodic work."""
    from tenants.selectors import ready_schemas

    connection.set_schema_to_public()
    schemas = ready_schemas()
    for schema in schemas:
        task.apply_async(args=list(args), headers={"_schema_name": schema})
    return schemas


# A wake-up whose publish failed says the broker is down: for this long the process sends none
# (each would hold its request for the broker connection's retries, about 6 s), and the sweepers
# and the reaper send them once it is back.
BROKER_DOWN_SECONDS = 5.0
_broker_down_until = 0.0


def schema_wake(task: Any, schema: str, *, token: str, token_seconds: int = 5, gather_seconds: float = 0) -> None:
    """Send `task` into `schema` unless one is already on its way: the sender takes `token` (a
    cache add), the task drops it before it claims work, so work committed after the drop sends a
    new wake-up and work committed before it is claimed. A token whose task was lost expires after
    `token_seconds`; the rows stay in PostgreSQL for the task's sweeper, which also covers a cache
    or broker that is down (nothing is sent then). With `gather_seconds` the task starts that much
    later, so what arrives meanwhile is claimed with it in one batch. Never raises: the caller's
    work is committed already."""
    from django.core.cache import cache

    try:
        if not cache.add(token, 1, timeout=token_seconds):
            return
    except Exception as error:  # noqa: BLE001 - the cache (Redis) is down, and most likely the broker with it
        log.warning("wake token unavailable; the sweeper will wake the task", task=task.name, schema=schema, error=type(error).__name__)
        return
    schema_send(task, schema, gather_seconds=gather_seconds)


def schema_send(task: Any, schema: str, *, gather_seconds: float = 0) -> None:
    """Send `task` into `schema` now, whatever any token says (a sweeper: a token may outlive a
    lost task). Nothing is sent for BROKER_DOWN_SECONDS after a failed publish. Never raises."""
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        return
    try:
        task.apply_async(headers={"_schema_name": schema}, retry=False, countdown=gather_seconds or None)
    except Exception as error:  # noqa: BLE001 - the work is committed: a sweeper or the reaper sends it later
        _broker_down_until = time.monotonic() + BROKER_DOWN_SECONDS
        log.warning("wake-up not sent; the sweeper will", task=task.name, schema=schema, error=f"{type(error).__name__}: {error}")


def schema_wake_token_drop(token: str) -> None:
    """The woken task's first step (see `schema_wake`)."""
    from django.core.cache import cache

    with suppress(Exception):  # without the cache the token expires on its own
        cache.delete(token)


@shared_task(name="tenants.dispatch_tenant_heartbeat")
def dispatch_tenant_heartbeat() -> list[str]:
    return ready_tenants_send(tenant_heartbeat)


@shared_task(name="tenants.tenant_heartbeat")
def tenant_heartbeat() -> str:
    """Runs inside one tenant's schema: proves the schema answers and records when."""
    from django.core.cache import cache
    from django.utils import timezone

    cache.set("tenant-heartbeat", timezone.now().isoformat(), timeout=600)
    return connection.schema_name
