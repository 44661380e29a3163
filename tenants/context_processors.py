"""Every template knows its site: product name, logo, colours (as CSS custom properties)."""

from tenants.db import connection
from tenants.selectors import site_for_console, site_for_tenant


def brand(request):
    tenant = getattr(request, "tenant", None)
    site = site_for_tenant(tenant) if tenant is not None else site_for_console()
    # allauth puts Django's RequestSite in its views' context as `site`; `baton_site` survives that.
    return {"site": site, "baton_site": site, "is_console": tenant is None, "schema_name": connection.schema_name}
