"""Reads of tenants, their hosts and brands."""

from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from tenants.branding import BrandColours, brand_css_variables
from tenants.db import connection
from tenants.models import Branding, Partner, PortalTexts, ProvisioningStep, SupportAccessGrant, Tenant, TenantStatus


@dataclass(frozen=True)
class Site:
    """Where a surface lives and how it looks: used by pages, emails and PDFs alike."""

    base_url: str
    product_name: str
    from_email: str
    css_variables: dict[str, str]
    logo_url: str
    favicon_url: str
    tenant_slug: str = ""

    @property
    def primary(self) -> str:
        return self.css_variables["--brand-primary"]

    @property
    def on_primary(self) -> str:
        return self.css_variables["--brand-on-primary"]

    @property
    def accent(self) -> str:
        return self.css_variables["--brand-accent"]

    @property
    def css_text(self) -> str:
        return "; ".join(f"{name}: {value}" for name, value in self.css_variables.items())


def _base_url(host: str) -> str:
    port = settings.BATON_PUBLIC_PORT
    return f"{settings.BATON_PUBLIC_SCHEME}://{host}" + (f":{port}" if port else "")


def _site(branding: Branding | None, host: str, tenant_slug: str = "") -> Site:
    if branding is None:
        branding = Branding(product_name="Baton")
    colours = BrandColours(branding.primary_color, branding.on_primary_color, branding.accent_color)
    # Mail always comes from the brand's name; from the installation's address unless the brand has its own.
    address = branding.email_sender_address or parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    sender = formataddr((branding.email_sender_name or branding.product_name, address))
    return Site(
        base_url=_base_url(host),
        product_name=branding.product_name,
        from_email=sender,
        css_variables=brand_css_variables(colours),
        logo_url="/brand/logo" if branding.logo else "",
        favicon_url="/brand/favicon" if branding.favicon else "/static/img/favicon.svg",
        tenant_slug=tenant_slug,
    )


def site_for_tenant(tenant: Tenant) -> Site:
    """Reads the brand and domains through the tenant's relations, so what the host middleware
    (select_related) or a list (prefetch_related) already loaded is not queried again."""
    primary = next((domain.domain for domain in tenant.domains.all() if domain.is_primary), None)
    host = primary or f"{tenant.slug}.{settings.BATON_TENANT_DOMAIN_SUFFIX}"
    try:
        branding: Branding | None = tenant.branding
    except Branding.DoesNotExist:
        branding = None
    return _site(branding, host, tenant.slug)


def site_for_console() -> Site:
    branding = Branding.objects.filter(partner__isnull=False).order_by("partner_id").first()
    return _site(branding, settings.BATON_CONSOLE_HOSTS[0])


def site_current() -> Site:
    """The site of the schema this connection is on (a tenant's, or the console's)."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return site_for_tenant(tenant)
    return site_for_console()


def language_offered(code: str | None) -> bool:
    """Whether Baton speaks `code` (settings.LANGUAGES)."""
    return code in dict(settings.LANGUAGES)


def visitor_language(request: Any, tenant: Tenant | None) -> str:
    """The language for someone who chose none in their account: the switcher's cookie, else the
    workspace's default, else the browser's Accept-Language, else English."""
    from django.utils import translation

    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    default = getattr(tenant, "default_language", "") if tenant is not None else ""
    if not language_offered(cookie) and language_offered(default):
        return default
    return translation.get_language_from_request(request)


def tenant_language(tenant: Tenant | None) -> str:
    """The language for people of this workspace who chose none: the tenant admin's default, else
    the installation's (an email has no browser to ask). None: the console, the installation's."""
    language = getattr(tenant, "default_language", "") if tenant is not None else ""
    return language if language_offered(language) else settings.LANGUAGE_CODE


def recipient_language(*, chosen: str, tenant: Tenant | None) -> str:
    """The language of mail to one person: theirs (accounts.User.language), else the workspace's."""
    return chosen if language_offered(chosen) else tenant_language(tenant)


@dataclass(frozen=True)
class PortalCopy:
    """The tenant admin's texts for the customer portal as pages show them (plain text: templates
    escape it and keep its line breaks); the notice is empty once it has expired."""

    welcome_headline: str = ""
    welcome_message: str = ""
    support_email: str = ""
    support_phone: str = ""
    support_hours: str = ""
    notice: str = ""
    notice_expires_at: Any = None
    sign_in_message: str = ""

    @property
    def has_support(self) -> bool:
        return bool(self.support_email or self.support_phone or self.support_hours)


def portal_texts_stored(tenant: Tenant) -> PortalTexts | None:
    """The stored row (what the settings form edits), read through the relation the host
    middleware already loaded."""
    try:
        return tenant.portal_texts
    except PortalTexts.DoesNotExist:
        return None


def portal_copy_for_tenant(tenant: Tenant, *, now: Any = None) -> PortalCopy:
    row = portal_texts_stored(tenant)
    if row is None:
        return PortalCopy()
    notice = row.notice
    if row.notice_expires_at is not None and row.notice_expires_at <= (now or timezone.now()):
        notice = ""
    return PortalCopy(
        welcome_headline=row.welcome_headline,
        welcome_message=row.welcome_message,
        support_email=row.support_email,
        support_phone=row.support_phone,
        support_hours=row.support_hours,
        notice=notice,
        notice_expires_at=row.notice_expires_at if notice else None,
        sign_in_message=row.sign_in_message,
    )


def partners_with_counts() -> QuerySet[Partner]:
    return Partner.objects.annotate(
        tenant_count=Count("tenants"), ready_count=Count("tenants", filter=Q(tenants__status="ready"))
    ).select_related("branding")


def ready_schemas() -> list[str]:
    """Schemas of the tenants that get periodic work (ready ones), in a stable order."""
    return list(Tenant.objects.filter(status=TenantStatus.READY).order_by("schema_name").values_list("schema_name", flat=True))


def tenants_filter(*, query: str = "", status: str = "", partner_slug: str = "") -> QuerySet[Tenant]:
    tenants = Tenant.objects.select_related("partner", "branding").prefetch_related("domains")
    if query:
        tenants = tenants.filter(Q(name__icontains=query) | Q(slug__icontains=query) | Q(domains__domain__icontains=query)).distinct()
    if status:
        tenants = tenants.filter(status=status)
    if partner_slug:
        tenants = tenants.filter(partner__slug=partner_slug)
    return tenants


def tenant_provisioning_log(*, tenant: Tenant) -> QuerySet[ProvisioningStep]:
    return tenant.provisioning_steps.all()


def support_grants_for_tenant(*, tenant: Tenant) -> QuerySet[SupportAccessGrant]:
    return SupportAccessGrant.objects.filter(tenant=tenant).order_by("-created_at")


def support_grant_active(*, grant_id: int, tenant: Tenant) -> SupportAccessGrant | None:
    from django.utils import timezone

    now = timezone.now()
    return SupportAccessGrant.objects.filter(
        pk=grant_id, tenant=tenant, revoked_at__isnull=True, starts_at__lte=now, expires_at__gt=now
    ).first()
