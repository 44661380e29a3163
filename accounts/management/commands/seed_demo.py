"""Seed a demo installation: an MSP partner, Acme and Globex in clearly different brands, a user per
role, and in each tenant connections to the sandbox systems `make run` starts (`connectors.demo`),
the master data the domain templates stand on (`logistics.demo_data`: places, carriers, rules, SLA
policies) and published workflows – milestone notifications, the order release (2.x, tendering
through the sandbox TMS) and every other domain template of the library – for the simulator
(`logistics.simulator`) to drive. Run again, it adds what is missing and moves an older demo's
order release onto 2.x as a new published version."""

import json
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db.models import Q
from django_tenants.utils import schema_context

from accounts.models import Role, User
from accounts.services import user_create, user_mfa_totp_activate
from governance.services import Actor
from logistics.models import CustomerAccount
from tenants.db import connection
from tenants.models import Partner, Tenant
from tenants.selectors import site_for_console, site_for_tenant
from tenants.services import BrandingInput, partner_create, tenant_provision

if TYPE_CHECKING:
    from workflows.models import Definition, TemplateVersion

DEMO_PASSWORD = "baton-demo-2026"
# Demo-only TOTP seed shared by every demo account that needs MFA; `manage.py demo_totp` prints its code.
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SEED = Actor.system("seed_demo")
ORDER_RELEASE = "order-to-shipment-release"

TENANTS = [
    {
        "slug": "acme",
        "name": "Acme Freight",
        "plan": "enterprise",
        "time_zone": "America/Chicago",
        "brand": BrandingInput(
            product_name="Acme Freight Hub",
            primary_color="#0b4f9c",
            on_primary_color="#ffffff",
            accent_color="#b4400a",
            email_sender_name="Acme Freight",
            email_sender_address="hub@acme.localhost",
        ),
        "customers": [("coyote", "Coyote Supplies", "priority"), ("roadrunner", "Roadrunner Foods", "standard")],
    },
    {
        "slug": "globex",
        "name": "Globex Distribution",
        "plan": "standard",
        "time_zone": "Europe/Amsterdam",
        "brand": BrandingInput(
            product_name="Globex Logistics Cloud",
            primary_color="#1e5b32",
            on_primary_color="#ffffff",
            accent_color="#7a2f9c",
            email_sender_name="Globex Logistics",
            email_sender_address="cloud@globex.localhost",
        ),
        "customers": [("initech", "Initech Retail", "critical"), ("hooli", "Hooli Devices", "standard")],
    },
]
STAFF_ROLES = [Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER, Role.CUSTOMER_SERVICE, Role.FINANCE]


class Command(BaseCommand):
    help = "Create the demo partner, tenants and users (idempotent), and write var/demo.json with the logins."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="Do nothing but write var/demo.json if the demo partner exists")

    def handle(self, *args, **options):
        connection.set_schema_to_public()
        call_command("seed_library", verbosity=0)  # idempotent: new library templates reach old demos too
        partner = Partner.objects.filter(slug="relay").first()
        if partner is None or not options["if_empty"]:
            partner = partner or partner_create(
                name="Relay Managed Services",
                slug="relay",
                actor=SEED,
                branding=BrandingInput(product_name="Relay Console", primary_color="#312e81", accent_color="#9d174d"),
            )
            console_logins = self._console_users()
            for spec in TENANTS:
                self._tenant(partner, spec)
        else:
            console_logins = self._console_logins()
        for tenant in Tenant.objects.filter(slug__in=[t["slug"] for t in TENANTS], status="ready").order_by("slug"):
            with schema_context(tenant.schema_name):
                connection.tenant = tenant
                self._demo_connections(tenant)
                self._demo_data(tenant)
                admin = User.objects.filter(email=f"admin@{tenant.slug}.localhost").first()
                if admin is not None:
                    self._demo_workflow(admin)
                    self._domain_workflows(admin)
        connection.set_schema_to_public()
        self._write_demo_file(console_logins)

    def _user(self, email: str, role: str, **extra) -> dict:
        user = User.objects.filter(email=email).first() or user_create(email=email, role=role, password=DEMO_PASSWORD, actor=SEED, **extra)
        if user.requires_mfa:
            user_mfa_totp_activate(user=user, secret=DEMO_TOTP_SECRET, actor=SEED)
        return {"email": email, "password": DEMO_PASSWORD, "role": Role(role).label, "mfa": user.requires_mfa}

    def _console_users(self) -> list[dict]:
        return [self._user(f"{r.value.split('_', 1)[1]}@relay.localhost", r) for r in (Role.MSP_ADMIN, Role.MSP_OPERATOR, Role.MSP_SUPPORT)]

    def _console_logins(self) -> list[dict]:
        return [
            {"email": u.email, "password": DEMO_PASSWORD, "role": u.get_role_display(), "mfa": u.requires_mfa}
            for u in User.objects.order_by("id")
        ]

    def _tenant(self, partner: Partner, spec: dict) -> Tenant:
        tenant = tenant_provision(
            partner=partner,
            name=spec["name"],
            slug=spec["slug"],
            domains=[],
            branding=spec["brand"],
            plan=spec["plan"],
            time_zone=spec["time_zone"],
            actor=SEED,
        )
        with schema_context(tenant.schema_name):
            connection.tenant = tenant
            for code, name, tier in spec["customers"]:
                CustomerAccount.objects.get_or_create(code=code, defaults={"name": name, "service_tier": tier})
            for role in STAFF_ROLES:
                self._user(f"{role.value.replace('tenant_', '')}@{spec['slug']}.localhost", role)
            first_customer = CustomerAccount.objects.get(code=spec["customers"][0][0])
            self._user(f"shipper@{spec['slug']}.localhost", Role.CUSTOMER, customer_account_id=first_customer.pk)
        connection.set_schema_to_public()
        return tenant

    def _demo_connections(self, tenant: Tenant) -> None:
        """The tenant's connections to the sandbox systems, with webhooks, EDI partner and telemetry."""
        from connectors.demo import demo_connections_seed

        seeded = demo_connections_seed(tenant_slug=tenant.slug, actor=SEED)
        if seeded.created:
            self.stdout.write(f"{tenant.slug}: connections {', '.join(seeded.created)} created")
        if seeded.moved:
            self.stdout.write(f"{tenant.slug}: connections {', '.join(seeded.moved)} now point at the sandbox's ports")
        for configured in seeded.configured:
            self.stdout.write(f"{tenant.slug}: {configured} set up")

    def _demo_data(self, tenant: Tenant) -> None:
        """The places, carriers, rules and SLA policies the domain templates need."""
        from logistics.demo_data import demo_data_seed

        seeded = demo_data_seed(time_zone=tenant.time_zone, actor=SEED)
        if seeded.created:
            self.stdout.write(f"{tenant.slug}: master data {len(seeded.created)} records created ({', '.join(seeded.created[:4])}…)")

    def _demo_workflow(self, admin: User) -> None:
        """Clone and publish the milestone and order-release templates, so sample traffic has
        workflows to run: the latest version of each (the order release 2.x: the simulator's
        orders have its shape, locations and weights), the order release's carrier bound to the
        sandbox TMS connection: its tenders go there. An older demo's 1.x definitions are upgraded."""
        from connectors.demo import TENDER_CONNECTION
        from logistics.demo_data import ROUTING_GUIDE
        from workflows.demo import DEMO_CARRIER, DEMO_DEFINITION_KEY, DEMO_ORDER_KEY
        from workflows.models import Definition, TemplateVersion

        demos: tuple[tuple[str, str, str, dict[str, Any], dict[str, str]], ...] = (
            ("customer-milestone-notifications", DEMO_DEFINITION_KEY, "Milestone notifications", {}, {}),
            (
                ORDER_RELEASE,
                DEMO_ORDER_KEY,
                "Order release",
                {"carrier_connection": DEMO_CARRIER, "routing_guide": ROUTING_GUIDE},
                {DEMO_CARRIER: TENDER_CONNECTION},
            ),
        )
        for template_key, key, name, parameters, bindings in demos:
            existing = Definition.objects.filter(key=key).first()
            template_version = TemplateVersion.objects.filter(template__key=template_key).order_by("-major", "-minor", "-patch").first()
            if existing is not None:
                if template_version is not None and template_version.major >= 2:
                    self._demo_upgrade(existing, template_version, admin)
                self._demo_bindings(existing, bindings, admin)
                continue
            if template_version is None:
                continue
            self._clone_published(template_version, key=key, name=name, parameters=parameters, bindings=bindings, admin=admin)

    def _clone_published(
        self, template_version: "TemplateVersion", *, key: str, name: str, parameters: dict[str, Any], bindings: dict[str, str], admin: User
    ) -> "Definition":
        from workflows import services as workflows

        definition = workflows.definition_clone(
            template_version=template_version, key=key, name=name, parameters=parameters, connection_bindings=bindings, actor=admin
        )
        version = definition.versions.get()
        workflows.definition_version_submit(version=version, actor=admin)
        workflows.definition_version_publish(version=version, actor=admin)
        return definition

    def _demo_upgrade(self, definition: "Definition", template_version: "TemplateVersion", admin: User) -> None:
        """A demo definition still on 1.x moves to `template_version` as a new published version
        of the same definition (its runs on 1.x finish on 1.x)."""
        from workflows import services as workflows
        from workflows.validation import DefinitionInvalid

        if not definition.template_version.startswith("1."):
            return
        try:
            version = workflows.definition_upgrade(definition=definition, template_version=template_version, actor=admin)
            workflows.definition_version_submit(version=version, actor=admin)
            workflows.definition_version_publish(version=version, actor=admin)
        except (workflows.WorkflowError, DefinitionInvalid) as error:
            self.stdout.write(f"{definition.key}: not upgraded to {template_version.version}: {error}")
            return
        self.stdout.write(f"{definition.key}: moved to {template_version.template.name} {template_version.version} (v{version.number})")

    def _domain_workflows(self, admin: User) -> None:
        """Every other domain template of the library (`logistics.library`), cloned with its
        default parameters under its own key and published; one that cannot be is reported and
        skipped (it needs parameters the demo does not know)."""
        from logistics.library import domain_templates
        from workflows.models import Definition, TemplateVersion
        from workflows.services import WorkflowError
        from workflows.validation import DefinitionInvalid

        slug = getattr(connection.tenant, "slug", connection.schema_name)
        for template in domain_templates():
            key = template["key"]
            if key == ORDER_RELEASE or Definition.objects.filter(Q(key=key) | Q(template_key=key)).exists():
                continue
            template_version = TemplateVersion.objects.filter(template__key=key).order_by("-major", "-minor", "-patch").first()
            if template_version is None:
                self.stdout.write(f"{slug}: {key} is not in the library yet (seed_library publishes it)")
                continue
            try:
                self._clone_published(template_version, key=key, name=template["name"], parameters={}, bindings={}, admin=admin)
            except (WorkflowError, DefinitionInvalid) as error:
                self.stdout.write(f"{slug}: {key} not cloned: {error}")
                continue
            self.stdout.write(f"{slug}: {template['name']} {template_version.version} published")

    def _demo_bindings(self, definition: "Definition", bindings: dict[str, str], admin: User) -> None:
        """A demo seeded before the sandbox connections: publish its first version again with the
        bindings. A definition someone has changed since (a second version) is theirs: left alone."""
        from connectors.models import Connection
        from workflows import services as workflows

        published = definition.published_version
        if not bindings or published is None or published.number != 1 or definition.versions.count() != 1:
            return
        if all(published.connection_bindings.get(alias) == bound for alias, bound in bindings.items()):
            return
        if Connection.objects.filter(key__in=bindings.values()).count() != len(set(bindings.values())):
            return
        version = workflows.definition_draft_create(
            definition=definition,
            spec=published.spec,
            comment="Demo: connector steps call the sandbox connections",
            actor=admin,
            connection_bindings={**published.connection_bindings, **bindings},
        )
        workflows.definition_version_submit(version=version, actor=admin)
        workflows.definition_version_publish(version=version, actor=admin)

    def _write_demo_file(self, console_logins: list[dict]) -> None:
        tenants = []
        for tenant in Tenant.objects.filter(slug__in=[t["slug"] for t in TENANTS]).order_by("slug"):
            with schema_context(tenant.schema_name):
                logins = [
                    {"email": u.email, "password": DEMO_PASSWORD, "role": u.get_role_display(), "mfa": u.requires_mfa}
                    for u in User.objects.filter(support_grant_id__isnull=True).order_by("id")
                ]
            tenants.append({"name": tenant.name, "status": tenant.status, "url": site_for_tenant(tenant).base_url + "/", "logins": logins})
        demo = {
            "console": {"url": site_for_console().base_url + "/", "logins": console_logins},
            "tenants": tenants,
            "totp_secret": DEMO_TOTP_SECRET,
            "totp_hint": "MFA accounts: add the TOTP secret to an authenticator app, or run `make totp` for the current code.",
        }
        path = settings.VAR_DIR / "demo.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(demo, indent=2))
        self.stdout.write(f"demo ready: {len(tenants)} tenants; logins in {path}")
