"""Migrate everything in the right order: public, the tenant template (and its snapshot), then tenants."""

import time

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_exists

from tenants.db import connection
from tenants.models import Tenant
from tenants.template_schema import template_schema_refresh


class Command(BaseCommand):
    help = "Migrate the public schema, refresh the tenant template and its snapshot, then migrate every tenant."

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        started = time.perf_counter()
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=max(verbosity - 1, 0))
        snapshot = template_schema_refresh(verbosity=max(verbosity - 1, 0))
        self.stdout.write(f"template schema ready: {snapshot.table_count} tables, state {snapshot.migration_state[:12]}")
        connection.set_schema_to_public()
        schemas = [
            s for s in Tenant.objects.exclude(schema_dropped_at__isnull=False).values_list("schema_name", flat=True) if schema_exists(s)
        ]
        for index, schema in enumerate(schemas, 1):
            call_command("migrate_schemas", schema_name=schema, tenant=True, interactive=False, verbosity=max(verbosity - 1, 0))
            if verbosity:
                self.stdout.write(f"[{index}/{len(schemas)}] {schema} migrated")
        self.stdout.write(
            self.style.SUCCESS(f"migrated public, template and {len(schemas)} tenants in {time.perf_counter() - started:.1f}s")
        )
