"""The audit chain's sweep: seals what no writer's commit sealed (a process that died in between)."""

import structlog
from celery import shared_task
from django.db import DatabaseError, connection
from django_tenants.utils import schema_context

from governance.services import audit_seal

log = structlog.get_logger(__name__)
# Per schema: long enough for a crash's backlog, short of the next sweep.
SWEEP_SECONDS = 20.0


@shared_task(name="governance.audit_seal_all")
def audit_seal_all() -> dict[str, int]:
    """From beat: `audit_seal` in every schema that has an audit log (public, each tenant's).
    Returns the rows sealed per schema, where there were any."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'governance_auditevent' ORDER BY 1")
        schemas = [row[0] for row in cursor.fetchall()]
    sealed: dict[str, int] = {}
    for schema in schemas:
        try:
            with schema_context(schema):
                count = audit_seal(seconds=SWEEP_SECONDS)
        except DatabaseError as error:  # a schema dropped meanwhile; the others still get sealed
            log.warning("audit seal failed", schema=schema, error=f"{type(error).__name__}: {error}")
            continue
        if count:
            sealed[schema] = count
    return sealed
