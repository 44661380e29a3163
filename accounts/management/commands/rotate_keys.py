"""Re-encrypt every secret at rest under the first key of BATON_ENCRYPTION_KEYS, in every schema.

Rotate by putting a new key first (keep the old ones after it), run this, then drop the old keys.
"""

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from accounts.services import mfa_secrets_rotate
from connectors.services import connection_credentials_rotate
from tenants.models import Tenant, TenantStatus


class Command(BaseCommand):
    help = "Re-encrypt every stored secret (MFA seeds, connection credentials) under the first encryption key."

    def handle(self, *args, **options):
        schemas = [
            "public",
            *Tenant.objects.exclude(status=TenantStatus.FAILED)
            .filter(schema_dropped_at__isnull=True)
            .exclude(status=TenantStatus.PROVISIONING)
            .values_list("schema_name", flat=True),
        ]
        total = 0
        for index, schema in enumerate(schemas, 1):
            with schema_context(schema):
                count = mfa_secrets_rotate()
                if schema != "public":  # connections live in tenant schemas only
                    count += connection_credentials_rotate()
            total += count
            self.stdout.write(f"[{index}/{len(schemas)}] {schema}: {count} secrets re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"done: {total} secrets in {len(schemas)} schemas"))
