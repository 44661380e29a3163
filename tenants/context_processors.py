"""Every template knows its site: product name, logo, colours (as CSS custom properties), and on a
tenant host the portal texts its admin wrote."""

from tenants.db import connection
from tenants.selectors import PortalCopy, portal_copy_for_tenant, site_for_console, site_for_tenant


def brand(request):
    tenant = getattr(request, "tenant", None)
    site = site_for_tenant(tenant) if tenant is not None else site_for_console()
    # allauth puts Django's RequestSite in its views' context as `site`; `baton_site` survives that.
    # The tenant admin's portal texts (footer support contact, notice, sign-in message); none on the console.
    portal_texts = portal_copy_for_tenant(tenant) if tenant is not None else PortalCopy()
    return {
        "site": site,
        "baton_site": site,
        "is_console": tenant is None,
        "schema_name": connection.schema_name,
        "portal_texts": portal_texts,
    }
