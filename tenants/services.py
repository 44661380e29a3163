"""Every change to partners, tenants, domains, brands and support access goes through here."""

import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from accounts.models import Role
from accounts.services import user_invite
from governance.services import Actor, audit_record
from tenants.branding import BrandColours, brand_colours_validate
from tenants.db import connection
from tenants.domains import DomainCheckFailed, domain_answers_token
from tenants.hosts import tenant_hosts_forget
from tenants.models import Branding, Domain, Partner, PortalTexts, ProvisioningStep, SupportAccessGrant, Tenant, TenantStatus
from tenants.schema_clone import schema_replay
from tenants.selectors import language_offered, site_for_tenant
from tenants.template_schema import template_snapshot_current

log = structlog.get_logger(__name__)
PROVISIONING = Actor.system("provisioning")

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
HOST_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class TenantError(Exception):
    """A tenant request that cannot be carried out; the message says why in words."""

    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class BrandingInput:
    product_name: str
    primary_color: str = "#1f4e79"
    on_primary_color: str = "#ffffff"
    accent_color: str = "#b4490c"
    email_sender_name: str = ""
    email_sender_address: str = ""
    logo: File | None = field(default=None, compare=False)
    favicon: File | None = field(default=None, compare=False)


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def partner_create(*, name: str, slug: str, branding: BrandingInput, actor: Any) -> Partner:
    if not name.strip():
        raise TenantError("Name is required.", field="name")
    if not SLUG_PATTERN.match(slug):
        raise TenantError(
            f"Slug {slug!r} must be 3–40 characters of lowercase letters, digits and hyphens, starting with a letter.",
            field="slug",
        )
    if Partner.objects.filter(slug=slug).exists():
        raise TenantError(f"Slug {slug!r} is already used by another partner.", field="slug")
    with transaction.atomic():
        partner = Partner.objects.create(name=name.strip(), slug=slug)
        _branding_apply(Branding(partner=partner), branding)
        audit_record(actor=actor, action="partner.created", target=partner, data={"slug": slug})
    return partner


def _validate_request(*, slug: str, name: str, domains: list[str], time_zone: str) -> list[str]:
    if not SLUG_PATTERN.match(slug):
        raise TenantError(
            f"Slug {slug!r} must be 3–40 characters of lowercase letters, digits and hyphens, starting with a letter.",
            field="slug",
        )
    if not name.strip():
        raise TenantError("Name is required.", field="name")
    hosts = [d.strip().lower() for d in domains if d.strip()] or [f"{slug}.{settings.BATON_TENANT_DOMAIN_SUFFIX}"]
    for host in hosts:
        if not HOST_PATTERN.match(host):
            raise TenantError(f"{host!r} is not a valid host name.", field="domains")
        if host in settings.BATON_CONSOLE_HOSTS:
            raise TenantError(f"{host!r} is the console's host and cannot serve a tenant.", field="domains")
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise TenantError(
            f"{time_zone!r} is not a known time zone (use an IANA name such as Europe/Amsterdam).", field="time_zone"
        ) from exc
    return hosts


def tenant_provision(
    *,
    partner: Partner,
    name: str,
    slug: str,
    domains: list[str],
    branding: BrandingInput,
    plan: str,
    actor: Any,
    time_zone: str = "UTC",
    admin_email: str = "",
    run_async: bool = False,
) -> Tenant:
    """Provision a tenant: idempotent on slug, so a retry returns the same tenant.

    The row is written first (status provisioning); the schema is then cloned from the template
    snapshot inline or by a Celery task (`run_async`), so the console can show progress live.
    """
    hosts = _validate_request(slug=slug, name=name, domains=domains, time_zone=time_zone)
    colours = brand_colours_validate(BrandColours(branding.primary_color, branding.on_primary_color, branding.accent_color))
    existing = Tenant.objects.filter(slug=slug).first()
    if existing is not None:
        tenant = _provision_again(existing, partner=partner, actor=actor)
    else:
        taken = Domain.objects.filter(domain__in=hosts).values_list("domain", flat=True).first()
        if taken:
            raise TenantError(f"Host {taken!r} already serves another tenant.", field="domains")
        try:
            with transaction.atomic():
                tenant = Tenant.objects.create(
                    partner=partner,
                    name=name.strip(),
                    slug=slug,
                    schema_name=schema_name_for(slug),
                    plan=plan,
                    time_zone=time_zone,
                    admin_email=admin_email,
                    status=TenantStatus.PROVISIONING,
                )
                for index, host in enumerate(hosts):
                    Domain.objects.create(tenant=tenant, domain=host, is_primary=index == 0)
                _branding_apply(
                    Branding(tenant=tenant),
                    BrandingInput(
                        **{
                            **branding.__dict__,
                            "primary_color": colours.primary,
                            "on_primary_color": colours.on_primary,
                            "accent_color": colours.accent,
                        }
                    ),
                )
                audit_record(
                    actor=actor, action="tenant.provision_requested", target=tenant, tenant_slug=slug, data={"plan": plan, "domains": hosts}
                )
                _step(tenant, "Queued", ProvisioningStep.State.DONE, "Waiting for a worker" if run_async else "")
        except IntegrityError:
            # Someone provisioned the same slug at the same moment: theirs wins, ours returns it.
            tenant = Tenant.objects.get(slug=slug)
            return tenant
    if tenant.status != TenantStatus.PROVISIONING:
        return tenant
    if run_async:
        from tenants.tasks import tenant_build_task

        transaction.on_commit(lambda: tenant_build_task.delay(tenant.pk))
        return tenant
    return tenant_build(tenant_id=tenant.pk)


def _provision_again(tenant: Tenant, *, partner: Partner, actor: Any) -> Tenant:
    if tenant.partner_id != partner.pk:
        raise TenantError(f"Slug {tenant.slug!r} is already used by another partner's tenant.", field="slug")
    if tenant.status == TenantStatus.FAILED:
        with transaction.atomic():
            Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.PROVISIONING, status_reason="")
            audit_record(actor=actor, action="tenant.provision_retried", target=tenant, tenant_slug=tenant.slug)
            _step(tenant, "Retry requested", ProvisioningStep.State.DONE)
        tenant.refresh_from_db()
    elif tenant.status in (TenantStatus.SUSPENDED, TenantStatus.ARCHIVED):
        raise TenantError(f"Tenant {tenant.slug!r} exists and is {tenant.status}; resume it instead of provisioning again.", field="slug")
    return tenant


def _step(tenant: Tenant, name: str, state: str, detail: str = "", elapsed: float | None = None) -> ProvisioningStep:
    return ProvisioningStep.objects.create(
        tenant=tenant, name=name, state=state, detail=detail, elapsed_ms=None if elapsed is None else round(elapsed * 1000)
    )


def tenant_build(*, tenant_id: int) -> Tenant:
    """Clone the template snapshot into the tenant's schema, invite its admin, mark it ready.

    Schema, admin user and status change commit together; on failure nothing is left behind
    but the tenant row, marked failed with the reason, ready to be retried.
    """
    connection.set_schema_to_public()
    started = time.perf_counter()
    # Committed on its own so the console shows the build has begun while it runs.
    waiting = Tenant.objects.filter(pk=tenant_id, status=TenantStatus.PROVISIONING).first()
    if waiting is not None:
        _step(waiting, "Build started", ProvisioningStep.State.DONE, f"cloning the template schema into {waiting.schema_name}")
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
        if tenant.status != TenantStatus.PROVISIONING:
            return tenant
        try:
            snapshot = template_snapshot_current()
            with transaction.atomic():
                with connection.cursor() as cursor:
                    schema_replay(cursor, snapshot=snapshot, target_schema=tenant.schema_name)
                _step(
                    tenant,
                    "Schema cloned",
                    ProvisioningStep.State.DONE,
                    f"{len(snapshot.tables)} tables into {tenant.schema_name}",
                    time.perf_counter() - started,
                )
                if tenant.admin_email:
                    with schema_context(tenant.schema_name):
                        connection.tenant = tenant
                        user_invite(email=tenant.admin_email, role=Role.TENANT_ADMIN, actor=PROVISIONING, site=site_for_tenant(tenant))
                    connection.set_schema_to_public()
                    _step(tenant, "Admin invited", ProvisioningStep.State.DONE, tenant.admin_email)
                elapsed = time.perf_counter() - started
                Tenant.objects.filter(pk=tenant.pk).update(
                    status=TenantStatus.READY, status_reason="", ready_at=timezone.now(), provisioning_seconds=elapsed
                )
                audit_record(
                    actor=PROVISIONING,
                    action="tenant.provisioned",
                    target=tenant,
                    tenant_slug=tenant.slug,
                    data={"seconds": round(elapsed, 3)},
                )
                _step(tenant, "Ready", ProvisioningStep.State.DONE, "", elapsed)
        except Exception as exc:  # noqa: BLE001 - any failure marks the tenant failed with its reason
            connection.set_schema_to_public()
            reason = f"{type(exc).__name__}: {exc}"
            log.error("tenant.provision_failed", tenant=tenant.slug, reason=reason)
            Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.FAILED, status_reason=reason)
            audit_record(actor=PROVISIONING, action="tenant.provision_failed", target=tenant, tenant_slug=tenant.slug, reason=reason)
            _step(tenant, "Failed", ProvisioningStep.State.FAILED, reason, time.perf_counter() - started)
    _drop_leftover_schema(tenant)
    tenant_hosts_forget()
    tenant.refresh_from_db()
    return tenant


def _drop_leftover_schema(tenant: Tenant) -> None:
    """A failed build rolled back its DDL; drop anything a crash outside it may have left."""
    tenant.refresh_from_db()
    if tenant.status == TenantStatus.FAILED and schema_exists(tenant.schema_name):
        _schema_drop(tenant.schema_name)


def _schema_drop(schema_name: str) -> None:
    with connection.cursor() as cursor:
        # Deferred foreign-key checks still queued in this transaction would block the drop.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f'DROP SCHEMA "{schema_name}" CASCADE')


def tenant_suspend(*, tenant: Tenant, reason: str, actor: Any) -> Tenant:
    if tenant.status != TenantStatus.READY:
        raise TenantError(f"Only a ready tenant can be suspended; {tenant.slug} is {tenant.status}.")
    if not reason.strip():
        raise TenantError("Say why the tenant is suspended: its users will see it.", field="reason")
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.SUSPENDED, status_reason=reason.strip())
        audit_record(actor=actor, action="tenant.suspended", target=tenant, tenant_slug=tenant.slug, reason=reason)
    tenant_hosts_forget()
    tenant.refresh_from_db()
    return tenant


def tenant_resume(*, tenant: Tenant, actor: Any, reason: str = "") -> Tenant:
    if tenant.status != TenantStatus.SUSPENDED:
        raise TenantError(f"Only a suspended tenant can be resumed; {tenant.slug} is {tenant.status}.")
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.READY, status_reason="")
        audit_record(actor=actor, action="tenant.resumed", target=tenant, tenant_slug=tenant.slug, reason=reason)
    tenant_hosts_forget()
    tenant.refresh_from_db()
    return tenant


def tenant_archive(*, tenant: Tenant, reason: str, actor: Any) -> Tenant:
    """Stop serving the tenant, export its data, and schedule the schema's drop after the grace period."""
    from tenants.archive import tenant_schema_export

    if tenant.status not in (TenantStatus.READY, TenantStatus.SUSPENDED):
        raise TenantError(f"Only a ready or suspended tenant can be archived; {tenant.slug} is {tenant.status}.")
    if not reason.strip():
        raise TenantError("Say why the tenant is archived.", field="reason")
    export_path = tenant_schema_export(tenant=tenant)
    now = timezone.now()
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(
            status=TenantStatus.ARCHIVED,
            status_reason=reason.strip(),
            archived_at=now,
            archive_export_path=str(export_path),
            drop_after=now + timedelta(days=settings.BATON_ARCHIVE_GRACE_DAYS),
        )
        audit_record(
            actor=actor, action="tenant.archived", target=tenant, tenant_slug=tenant.slug, reason=reason, data={"export": str(export_path)}
        )
    tenant_hosts_forget()
    tenant.refresh_from_db()
    return tenant


def tenant_archived_drop_due(*, now: Any = None) -> list[str]:
    """Drop the schemas of archived tenants whose grace period is over; their export stays."""
    now = now or timezone.now()
    dropped = []
    for tenant in Tenant.objects.filter(status=TenantStatus.ARCHIVED, drop_after__lte=now, schema_dropped_at__isnull=True):
        with transaction.atomic():
            if schema_exists(tenant.schema_name):
                _schema_drop(tenant.schema_name)
            Tenant.objects.filter(pk=tenant.pk).update(schema_dropped_at=now)
            audit_record(
                actor=PROVISIONING,
                action="tenant.schema_dropped",
                target=tenant,
                tenant_slug=tenant.slug,
                data={"export": tenant.archive_export_path},
            )
        dropped.append(tenant.slug)
    return dropped


def _branding_apply(brand: Branding, branding: BrandingInput) -> Branding:
    colours = brand_colours_validate(BrandColours(branding.primary_color, branding.on_primary_color, branding.accent_color))
    brand.product_name = branding.product_name.strip() or "Baton"
    brand.primary_color, brand.on_primary_color, brand.accent_color = colours.primary, colours.on_primary, colours.accent
    brand.email_sender_name = branding.email_sender_name
    brand.email_sender_address = branding.email_sender_address
    if branding.logo is not None:
        brand.logo.save((branding.logo.name or "logo").rsplit("/", 1)[-1], branding.logo, save=False)
    if branding.favicon is not None:
        brand.favicon.save((branding.favicon.name or "favicon").rsplit("/", 1)[-1], branding.favicon, save=False)
    brand.save()
    return brand


def tenant_branding_update(*, tenant: Tenant, branding: BrandingInput, actor: Any) -> Branding:
    with transaction.atomic():
        brand = Branding.objects.select_for_update().get(tenant=tenant)
        before = {"product_name": brand.product_name, "primary_color": brand.primary_color, "accent_color": brand.accent_color}
        _branding_apply(brand, branding)
        after = {"product_name": brand.product_name, "primary_color": brand.primary_color, "accent_color": brand.accent_color}
        audit_record(
            actor=actor, action="tenant.branding_updated", target=tenant, tenant_slug=tenant.slug, data={"before": before, "after": after}
        )
    tenant_hosts_forget()
    return brand


def tenant_domain_add(*, tenant: Tenant, host: str, actor: Any) -> Domain:
    host = host.strip().lower()
    if not HOST_PATTERN.match(host) or host in settings.BATON_CONSOLE_HOSTS:
        raise TenantError(f"{host!r} is not a host name this tenant can use.", field="domain")
    if Domain.objects.filter(domain=host).exists():
        raise TenantError(f"Host {host!r} already serves a tenant.", field="domain")
    with transaction.atomic():
        domain = Domain.objects.create(tenant=tenant, domain=host, is_primary=False)
        audit_record(actor=actor, action="tenant.domain_added", target=tenant, tenant_slug=tenant.slug, data={"domain": host})
    tenant_hosts_forget()
    return domain


def domain_is_installation_host(host: str) -> bool:
    """Hosts under the installation's own suffix reach it by its wildcard: nothing to verify."""
    return host.endswith("." + settings.BATON_TENANT_DOMAIN_SUFFIX)


def tenant_domain_remove(*, domain: Domain, actor: Any, reason: str = "") -> None:
    """Stop serving a host; the primary one stays until another is made primary."""
    tenant = domain.tenant
    if domain.is_primary:
        raise TenantError(f"{domain.domain} is the primary domain: make another domain primary before removing it.", field="domain")
    with transaction.atomic():
        Domain.objects.filter(pk=domain.pk).delete()
        audit_record(
            actor=actor,
            action="tenant.domain_removed",
            target=tenant,
            tenant_slug=tenant.slug,
            reason=reason,
            data={"domain": domain.domain},
        )
    tenant_hosts_forget()


def tenant_domain_make_primary(*, domain: Domain, actor: Any) -> Domain:
    """The host links in emails, invitations and the console point at. A custom domain must be
    verified first, so no email sends people to a host that does not reach the tenant."""
    tenant = domain.tenant
    if domain.is_primary:
        return domain
    if domain.verified_at is None and not domain_is_installation_host(domain.domain):
        raise TenantError(f"Verify {domain.domain} before making it primary: links in emails would point at it.", field="domain")
    with transaction.atomic():
        before = Domain.objects.select_for_update().filter(tenant=tenant, is_primary=True).values_list("domain", flat=True).first()
        Domain.objects.filter(tenant=tenant, is_primary=True).update(is_primary=False)
        Domain.objects.filter(pk=domain.pk).update(is_primary=True)
        audit_record(
            actor=actor,
            action="tenant.domain_made_primary",
            target=tenant,
            tenant_slug=tenant.slug,
            data={"domain": domain.domain, "before": before},
        )
    tenant_hosts_forget()
    domain.refresh_from_db()
    return domain


def tenant_domain_verify(*, domain: Domain, actor: Any) -> Domain:
    """Ask the host for the tenant's token (see tenants.domains) and record the answer: verified,
    or unverified with the reason. A later failure un-verifies: the host stopped reaching us."""
    tenant = domain.tenant
    now = timezone.now()
    try:
        domain_answers_token(domain.domain, tenant)
    except DomainCheckFailed as failure:
        verified_at, error = None, str(failure)[:300]
    else:
        verified_at, error = domain.verified_at or now, ""
    with transaction.atomic():
        Domain.objects.filter(pk=domain.pk).update(verified_at=verified_at, verification_checked_at=now, verification_error=error)
        audit_record(
            actor=actor,
            action="tenant.domain_verified" if verified_at else "tenant.domain_verification_failed",
            target=tenant,
            tenant_slug=tenant.slug,
            data={"domain": domain.domain, **({"error": error} if error else {})},
        )
    domain.refresh_from_db()
    return domain


@dataclass(frozen=True)
class PortalTextsInput:
    welcome_headline: str = ""
    welcome_message: str = ""
    support_email: str = ""
    support_phone: str = ""
    support_hours: str = ""
    notice: str = ""
    notice_expires_at: Any = None
    sign_in_message: str = ""


# Field: (label, most characters). Long enough for a paragraph, short enough for a footer or a banner.
PORTAL_TEXT_LIMITS = {
    "welcome_headline": ("Welcome headline", 120),
    "welcome_message": ("Welcome message", 1000),
    "support_email": ("Support email", 254),
    "support_phone": ("Support phone", 40),
    "support_hours": ("Support hours", 120),
    "notice": ("Notice", 300),
    "sign_in_message": ("Sign-in message", 500),
}
SINGLE_LINE = {"welcome_headline", "support_email", "support_phone", "support_hours"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PHONE = re.compile(r"^\+?[0-9 ()./-]{3,40}$")


def _plain(value: str, *, single_line: bool) -> str:
    """Plain text as people typed it: line ends normalised, control characters dropped, and
    newlines kept where the text is a paragraph (pages escape it and keep the breaks)."""
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n")
    if single_line:
        text = " ".join(text.split())
    text = _CONTROL.sub("", text)
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def portal_texts_clean(texts: PortalTextsInput, *, now: Any = None) -> PortalTextsInput:
    """The texts as they will be stored, or TenantError naming the field and the limit."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    cleaned = {name: _plain(getattr(texts, name), single_line=name in SINGLE_LINE) for name in PORTAL_TEXT_LIMITS}
    for name, (label, limit) in PORTAL_TEXT_LIMITS.items():
        if len(cleaned[name]) > limit:
            raise TenantError(f"{label} is {len(cleaned[name])} characters long; at most {limit} fit.", field=name)
    if cleaned["support_email"]:
        try:
            validate_email(cleaned["support_email"])
        except ValidationError as exc:
            raise TenantError(f"{cleaned['support_email']!r} is not an email address.", field="support_email") from exc
    if cleaned["support_phone"] and not _PHONE.match(cleaned["support_phone"]):
        raise TenantError("Support phone takes digits, spaces and + ( ) - . / only, such as +31 20 123 4567.", field="support_phone")
    expires = texts.notice_expires_at
    if expires is not None:
        if not cleaned["notice"]:
            raise TenantError("An expiry needs a notice to expire: write the notice or clear the expiry.", field="notice_expires_at")
        if expires <= (now or timezone.now()):
            raise TenantError("The notice would expire before anyone sees it: choose a time in the future.", field="notice_expires_at")
    return PortalTextsInput(**cleaned, notice_expires_at=expires)


def portal_texts_update(*, tenant: Tenant, texts: PortalTextsInput, actor: Any) -> PortalTexts:
    """Save what the tenant's admin wrote for their customer portal, audited in the current schema
    (the tenant's own log, where its admins read it)."""
    cleaned = portal_texts_clean(texts)
    with transaction.atomic():
        row, _created = PortalTexts.objects.select_for_update().get_or_create(tenant=tenant)
        changed = sorted(name for name in PORTAL_TEXT_LIMITS if getattr(row, name) != getattr(cleaned, name))
        if row.notice_expires_at != cleaned.notice_expires_at:
            changed.append("notice_expires_at")
        for name, value in cleaned.__dict__.items():
            setattr(row, name, value)
        row.updated_by_email = getattr(actor, "email", "") or ""
        row.save()
        audit_record(actor=actor, action="tenant.portal_texts_updated", target=row, tenant_slug=tenant.slug, data={"changed": changed})
    tenant_hosts_forget()
    return row


def tenant_default_language_set(*, tenant: Tenant, language: str, actor: Any) -> Tenant:
    """The language of the workspace's people who chose none, before their browser's; blank hands
    it back to the browser. Audited in the current schema (the tenant's own log)."""
    if language and not language_offered(language):
        raise TenantError(f"Language {language!r} is not offered here.", field="default_language")
    if tenant.default_language != language:
        with transaction.atomic():
            before = tenant.default_language
            tenant.default_language = language
            tenant.save(update_fields=["default_language"])
            audit_record(
                actor=actor,
                action="tenant.default_language_changed",
                target=tenant,
                tenant_slug=tenant.slug,
                data={"from": before, "to": language},
            )
        tenant_hosts_forget()
    return tenant


def support_access_request(*, tenant: Tenant, staff_user: Any, reason: str, hours: float, actor: Any) -> SupportAccessGrant:
    """MSP staff ask for time-boxed access to one tenant; the tenant admin sees it and can revoke it."""
    if not staff_user.is_msp_staff:
        raise TenantError("Only MSP staff can ask for support access.")
    if not reason.strip():
        raise TenantError("Say why you need access: the tenant's admin will read it.", field="reason")
    if not 0 < hours <= settings.BATON_SUPPORT_ACCESS_MAX_HOURS:
        raise TenantError(f"Support access lasts at most {settings.BATON_SUPPORT_ACCESS_MAX_HOURS} hours.", field="hours")
    if tenant.status != TenantStatus.READY:
        raise TenantError(f"{tenant.name} is {tenant.status}; support access needs a ready tenant.")
    now = timezone.now()
    with transaction.atomic():
        grant = SupportAccessGrant.objects.create(
            tenant=tenant,
            staff_user=staff_user,
            staff_email=staff_user.email,
            reason=reason.strip(),
            starts_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        audit_record(
            actor=actor,
            action="support_access.granted",
            target=grant,
            tenant_slug=tenant.slug,
            reason=reason,
            data={"hours": hours, "staff": staff_user.email},
        )
        with schema_context(tenant.schema_name):
            audit_record(
                actor=actor,
                action="support_access.granted",
                target=grant,
                tenant_slug=tenant.slug,
                reason=reason,
                data={"hours": hours, "staff": staff_user.email},
            )
    return grant


def support_access_revoke(*, grant: SupportAccessGrant, actor: Any, reason: str = "") -> SupportAccessGrant:
    if grant.revoked_at is not None:
        return grant
    with transaction.atomic():
        grant.revoked_at = timezone.now()
        grant.revoked_by_email = getattr(actor, "email", "")
        grant.save(update_fields=["revoked_at", "revoked_by_email"])
        tenant = grant.tenant
        audit_record(actor=actor, action="support_access.revoked", target=grant, tenant_slug=tenant.slug, reason=reason)
        # The other side's log gets the row too: the console's if a tenant admin revoked, and vice versa.
        other = "public" if connection.schema_name != "public" else tenant.schema_name
        with schema_context(other):
            audit_record(actor=actor, action="support_access.revoked", target=grant, tenant_slug=tenant.slug, reason=reason)
    return grant
