"""Check the audit hash chain of the public schema or of one tenant."""

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from governance.services import audit_chain_verify, audit_seal
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Seal the committed rows, then say OK or name the first audit row whose hash or link is broken."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Tenant slug (default: the console's public log)")

    def handle(self, *args, **options):
        schema, label = "public", "public"
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
            schema, label = tenant.schema_name, tenant.slug
        with schema_context(schema):
            audit_seal(seconds=60)  # what has committed joins the chain first
            result = audit_chain_verify()
        if result.ok:
            waiting = f"; {result.waiting} in open transactions, not sealed yet" if result.waiting else ""
            self.stdout.write(f"OK: {label} audit chain intact ({result.rows_checked} rows{waiting})")
            return
        raise CommandError(
            f"BROKEN: {label} audit row {result.broken_row_id}: {result.problem} ({result.rows_checked} rows before it are intact)"
        )
