"""The migrated template schema every tenant is cloned from, and its captured snapshot.

`manage.py baton_migrate` migrates the template on every deploy and captures its DDL once;
provisioning replays that DDL and refuses a snapshot whose migration state differs from the
code's, instead of silently migrating or faking migrations onto a stale base.
"""

import hashlib
from functools import cache

from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_exists

from tenants.db import connection
from tenants.models import TemplateSchemaSnapshot
from tenants.schema_clone import SchemaSnapshot, schema_capture


class TemplateSchemaStale(Exception):
    """The template snapshot does not match the migrations in the code."""


@cache
def code_migration_state() -> str:
    """A fingerprint of every tenant-app migration on disk: changes whenever one is added."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    tenant_apps = {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS}
    names = sorted(f"{app}.{name}" for app, name in loader.disk_migrations if app in tenant_apps)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def template_schema_refresh(*, verbosity: int = 1) -> TemplateSchemaSnapshot:
    """Migrate the template schema and capture its snapshot for the current migration state."""
    name = settings.BATON_TEMPLATE_SCHEMA
    connection.set_schema_to_public()
    if not schema_exists(name):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{name}"')
    call_command("migrate_schemas", schema_name=name, tenant=True, interactive=False, verbosity=verbosity)
    connection.set_schema_to_public()
    state = code_migration_state()
    existing = TemplateSchemaSnapshot.objects.filter(migration_state=state).first()
    if existing:
        return existing
    with transaction.atomic():
        with connection.cursor() as cursor:
            snapshot = schema_capture(cursor, source_schema=name)
        return TemplateSchemaSnapshot.objects.create(migration_state=state, snapshot=snapshot.to_json(), table_count=len(snapshot.tables))


def template_snapshot_current() -> SchemaSnapshot:
    """The snapshot to clone from, or TemplateSchemaStale saying what to run."""
    state = code_migration_state()
    row_id = TemplateSchemaSnapshot.objects.filter(migration_state=state).values_list("pk", flat=True).first()
    if row_id is None:
        raise TemplateSchemaStale(
            "The tenant template schema is missing or older than the code's migrations: "
            "run `python manage.py baton_migrate` before provisioning."
        )
    return _snapshot_parsed(row_id)


@cache
def _snapshot_parsed(row_id: int) -> SchemaSnapshot:
    """Snapshots never change once written, so each process parses one at most once."""
    return SchemaSnapshot.from_json(TemplateSchemaSnapshot.objects.get(pk=row_id).snapshot)
