"""The MSP's organisation, its tenants, their hosts and brands, and support access to them."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin


class Partner(models.Model):  # type: ignore[django-manager-missing]  # TenantMixin's manager confuses the stubs
    """The MSP organisation that runs this installation and serves tenants."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Plan(models.TextChoices):
    STARTER = "starter", _("Starter")
    STANDARD = "standard", _("Standard")
    ENTERPRISE = "enterprise", _("Enterprise")


class TenantStatus(models.TextChoices):
    PROVISIONING = "provisioning", _("Provisioning")
    READY = "ready", _("Ready")
    SUSPENDED = "suspended", _("Suspended")
    ARCHIVED = "archived", _("Archived")
    FAILED = "failed", _("Failed")


class Tenant(TenantMixin):
    """A logistics company served by the partner; its data lives in its own schema."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="tenants")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=40, unique=True)
    status = models.CharField(max_length=20, choices=TenantStatus.choices, default=TenantStatus.PROVISIONING)
    status_reason = models.TextField(blank=True)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.STANDARD)
    time_zone = models.CharField(max_length=64, default="UTC")
    # The language of people here who chose none (accounts.User.language) and of visitors who picked
    # none in the switcher: before their browser's Accept-Language. Blank: the browser decides.
    default_language = models.CharField(max_length=8, blank=True, default="")
    admin_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    provisioning_seconds = models.FloatField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    archive_export_path = models.CharField(max_length=500, blank=True)
    drop_after = models.DateTimeField(null=True, blank=True)
    schema_dropped_at = models.DateTimeField(null=True, blank=True)

    # Schemas are cloned from the template snapshot by tenants.services, never by save().
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ready(self) -> bool:
        return self.status == TenantStatus.READY


class Domain(DomainMixin):
    """A host name that serves one tenant (its default <slug>.<suffix> or a custom domain)."""

    # Set by tenants.services.tenant_domain_verify: the host answered /.well-known/baton-domain
    # with the tenant's token, so it reaches this installation and this tenant.
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_checked_at = models.DateTimeField(null=True, blank=True)
    verification_error = models.CharField(max_length=300, blank=True)


class Branding(models.Model):
    """How a tenant's (or the partner console's) pages, emails and PDFs look."""

    partner = models.OneToOneField(Partner, null=True, blank=True, on_delete=models.CASCADE, related_name="branding")
    tenant = models.OneToOneField(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="branding")
    product_name = models.CharField(max_length=80)
    primary_color = models.CharField(max_length=7, default="#1f4e79")
    on_primary_color = models.CharField(max_length=7, default="#ffffff")
    accent_color = models.CharField(max_length=7, default="#b4490c")
    logo = models.FileField(upload_to="brands/logos/", blank=True)
    favicon = models.FileField(upload_to="brands/favicons/", blank=True)
    email_sender_name = models.CharField(max_length=80, blank=True)
    email_sender_address = models.EmailField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="branding_belongs_to_partner_or_tenant",
                condition=models.Q(partner__isnull=False, tenant__isnull=True) | models.Q(partner__isnull=True, tenant__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return self.product_name


class PortalTexts(models.Model):
    """What a tenant's admin writes for their customer portal: plain text, escaped where shown.

    Beside Branding in public, so a host's brand and texts come with its domain row in one query.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="portal_texts")
    welcome_headline = models.CharField(max_length=120, blank=True)
    welcome_message = models.TextField(blank=True)
    support_email = models.EmailField(blank=True)
    support_phone = models.CharField(max_length=40, blank=True)
    support_hours = models.CharField(max_length=120, blank=True)
    notice = models.TextField(blank=True)
    notice_expires_at = models.DateTimeField(null=True, blank=True)
    sign_in_message = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by_email = models.EmailField(blank=True)

    class Meta:
        verbose_name_plural = "portal texts"

    def __str__(self) -> str:
        return f"Portal texts of {self.tenant_id}"


class ProvisioningStep(models.Model):
    """One line of a tenant's provisioning log, shown live in the console."""

    class State(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="provisioning_steps")
    at = models.DateTimeField(auto_now_add=True)
    name = models.CharField(max_length=80)
    state = models.CharField(max_length=10, choices=State.choices)
    detail = models.TextField(blank=True)
    elapsed_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class TemplateSchemaSnapshot(models.Model):
    """The DDL of the migrated template schema, captured once per migration state."""

    migration_state = models.CharField(max_length=64, unique=True)
    snapshot = models.TextField()
    table_count = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"template snapshot {self.migration_state[:12]} ({self.table_count} tables)"


class SupportAccessGrant(models.Model):
    """Time-boxed, reasoned access of one MSP staff member to one tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="support_grants")
    # The staff user lives in the public schema: read staff_email in tenant context, not the FK.
    staff_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="support_grants")
    staff_email = models.EmailField()
    reason = models.TextField()
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(name="support_grant_ends_after_start", condition=models.Q(expires_at__gt=models.F("starts_at")))
        ]

    def __str__(self) -> str:
        return f"Support access for {self.staff_email}"

    @property
    def status(self) -> str:
        from django.utils import timezone

        now = timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.starts_at > now:
            return "scheduled"
        return "active"
