"""Thin Celery entry points for tenant lifecycle work; the services do the work."""

from typing import Any

from celery import shared_task

from tenants.db import connection


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
