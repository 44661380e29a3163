"""Provision a tenant from the command line and print one JSON object with the outcome."""

import json
import time

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from governance.services import Actor
from tenants.models import Partner
from tenants.services import BrandingInput, TenantError, tenant_provision


class Command(BaseCommand):
    help = "Provision a tenant: prints {tenant_id, slug, status, elapsed_seconds}."

    def add_arguments(self, parser):
        parser.add_argument("--partner", required=True, help="Partner slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", required=True)
        parser.add_argument("--domain", action="append", default=[], help="Host name (repeatable)")
        parser.add_argument("--primary-color", default="#1f4e79")
        parser.add_argument("--accent-color", default="#b4490c")
        parser.add_argument("--logo", help="Path to a logo image")
        parser.add_argument("--plan", default="standard")
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--admin-email", default="")

    def handle(self, *args, **options):
        partner = Partner.objects.filter(slug=options["partner"]).first()
        if partner is None:
            raise CommandError(f"No partner with slug {options['partner']!r}.")
        started = time.perf_counter()
        logo = File(open(options["logo"], "rb")) if options["logo"] else None  # noqa: SIM115 - closed below
        try:
            tenant = tenant_provision(
                partner=partner,
                name=options["name"],
                slug=options["slug"],
                domains=options["domain"],
                branding=BrandingInput(
                    product_name=options["name"], primary_color=options["primary_color"], accent_color=options["accent_color"], logo=logo
                ),
                plan=options["plan"],
                time_zone=options["time_zone"],
                admin_email=options["admin_email"],
                actor=Actor.system("cli"),
            )
        except (TenantError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if logo:
                logo.close()
        result = {
            "tenant_id": tenant.pk,
            "slug": tenant.slug,
            "status": tenant.status,
            "elapsed_seconds": round(time.perf_counter() - started, 3),
        }
        if tenant.status_reason:
            result["reason"] = tenant.status_reason
        self.stdout.write(json.dumps(result))
        if tenant.status != "ready":
            raise SystemExit(1)
