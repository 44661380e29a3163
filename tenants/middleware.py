"""Pick the schema and URLconf from the request's host, and refuse tenants that can't be served."""

import structlog
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import set_urlconf
from django.utils import translation
from django.utils.translation import gettext as _

from tenants.db import connection
from tenants.hosts import host_domain
from tenants.models import TenantStatus
from tenants.selectors import _site, site_for_console, visitor_language

ALWAYS_SERVED = ("/healthz", "/readyz", "/metrics", "/static/")


def problem_response(status: int, type_: str, title: str, detail: str) -> JsonResponse:
    return JsonResponse(
        {"type": f"https://baton.dev/problems/{type_}", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


class TenantHostMiddleware:
    """Console hosts get the public schema; a tenant's host its schema; any other host a 404 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        connection.set_schema_to_public()
        try:
            host = request.get_host().split(":")[0].lower()
        except DisallowedHost:
            return self._unknown_host(request, "this host")
        if host in settings.BATON_CONSOLE_HOSTS:
            request.tenant = None
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            set_urlconf(request.urlconf)
            structlog.contextvars.bind_contextvars(tenant="public")
            return self.get_response(request)
        domain = host_domain(host)
        if domain is None:
            return self._unknown_host(request, host)
        tenant = domain.tenant
        tenant.domain_url = host
        structlog.contextvars.bind_contextvars(tenant=tenant.slug)
        if tenant.status != TenantStatus.READY and not request.path.startswith(ALWAYS_SERVED):
            return self._not_serving(request, tenant)
        request.tenant = tenant
        connection.set_tenant(tenant)
        request.urlconf = settings.ROOT_URLCONF
        set_urlconf(request.urlconf)
        return self.get_response(request)

    def _unknown_host(self, request, host: str) -> HttpResponse:
        # Before LocaleMiddleware: the visitor's pick (cookie) or their browser, said here.
        with translation.override(translation.get_language_from_request(request)):
            body = render_to_string("errors/unknown_host.html", {"host": host, "site": site_for_console()}, request=None)
        return HttpResponse(body, status=404)

    def _not_serving(self, request, tenant) -> HttpResponse:
        wants_api = request.path.startswith("/api/")
        if wants_api:  # machines read the problem in English, as every API answer
            with translation.override(settings.LANGUAGE_CODE):
                status, kind, title, detail = self._why_not_serving(tenant)
            return problem_response(status, kind, title, detail)
        with translation.override(visitor_language(request, tenant)):
            status, kind, title, detail = self._why_not_serving(tenant)
            site = _site(getattr(tenant, "branding", None), tenant.domain_url, tenant.slug)
            body = render_to_string(
                "errors/tenant_unavailable.html", {"site": site, "title": title, "detail": detail, "status": tenant.status}
            )
        return HttpResponse(body, status=status)

    @staticmethod
    def _why_not_serving(tenant) -> tuple[int, str, str, str]:
        """Status, problem type, title and detail, in the active language."""
        if tenant.status == TenantStatus.SUSPENDED:
            detail = _("This workspace is suspended.")
            if tenant.status_reason:
                detail += " " + _("Reason: %(reason)s.") % {"reason": tenant.status_reason}
            detail += " " + _("Contact your provider to restore access.")
            return 403, "tenant-suspended", _("%(tenant)s is suspended") % {"tenant": tenant.name}, detail
        if tenant.status == TenantStatus.PROVISIONING:
            return (
                503,
                "tenant-provisioning",
                _("%(tenant)s is being set up") % {"tenant": tenant.name},
                _("This workspace is being set up. Try again in a minute."),
            )
        return (
            404,
            "tenant-unavailable",
            _("%(tenant)s is not available") % {"tenant": tenant.name},
            _("This workspace is no longer available. Contact your provider."),
        )
