"""Pick the schema and URLconf from the request's host, and refuse tenants that can't be served."""

import structlog
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import set_urlconf

from tenants.db import connection
from tenants.hosts import host_domain
from tenants.models import TenantStatus
from tenants.selectors import _site, site_for_console

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
        body = render_to_string("errors/unknown_host.html", {"host": host, "site": site_for_console()}, request=None)
        return HttpResponse(body, status=404)

    def _not_serving(self, request, tenant) -> HttpResponse:
        wants_api = request.path.startswith("/api/")
        if tenant.status == TenantStatus.SUSPENDED:
            status, kind, title = 403, "tenant-suspended", f"{tenant.name} is suspended"
            detail = (
                "This workspace is suspended. "
                + (f"Reason: {tenant.status_reason}. " if tenant.status_reason else "")
                + "Contact your provider to restore access."
            )
        elif tenant.status == TenantStatus.PROVISIONING:
            status, kind, title = 503, "tenant-provisioning", f"{tenant.name} is being set up"
            detail = "This workspace is being set up. Try again in a minute."
        else:
            status, kind, title = 404, "tenant-unavailable", f"{tenant.name} is not available"
            detail = "This workspace is no longer available. Contact your provider."
        if wants_api:
            return problem_response(status, kind, title, detail)
        site = _site(getattr(tenant, "branding", None), tenant.domain_url, tenant.slug)
        body = render_to_string("errors/tenant_unavailable.html", {"site": site, "title": title, "detail": detail, "status": tenant.status})
        return HttpResponse(body, status=status)
