"""Every page's <title> ends with the product name of the host's brand (the tenant's on its hosts,
the MSP's on the console) and links the brand's favicon – Baton's own when the brand has none:
signed-out pages (sign-in, password reset), allauth and MFA pages, workspace pages, error pages."""

from __future__ import annotations

import re

import pytest
from django.core.files.base import ContentFile

from tenants.services import BrandingInput, tenant_branding_update
from tests.conftest import FIXTURE_ACTOR, host_client, signed_in_client
from tests.console.test_console import _console

pytestmark = pytest.mark.django_db

SIGNED_OUT = ["/accounts/login/", "/accounts/password/reset/", "/no-such-page/"]
STAFF = ["/", "/settings/users/", "/settings/portal-texts/", "/workflows/", "/accounts/2fa/", "/no-such-page/"]
CUSTOMER = ["/", "/shipments/", "/settings/users/"]  # the last: the 403 page
CONSOLE = ["/accounts/login/", "/tenants/", "/partners/", "/no-such-page/"]
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" fill="#0b4f9c"/></svg>'


def _head(body: str) -> tuple[str, str]:
    title = re.search(r"<title>(.*?)</title>", body, re.S)
    icon = re.search(r'<link rel="icon" href="([^"]+)">', body)
    assert title and icon, body[:400]
    return title.group(1).strip(), icon.group(1)


def _assert_branded(response, product: str, favicon: str) -> None:
    assert response.status_code in (200, 403, 404), response.status_code
    title, icon = _head(response.content.decode())
    assert title.endswith(f" · {product}") and len(title) > len(f" · {product}"), title  # the page's own name first
    assert icon == favicon


def test_tenant_pages_carry_the_tenants_name_and_batons_default_favicon(world):
    anonymous = host_client(world.acme.host)
    for path in SIGNED_OUT:
        _assert_branded(anonymous.get(path), "Acme Freight Hub", "/static/img/favicon.svg")
    admin = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    for path in STAFF:
        _assert_branded(admin.get(path), "Acme Freight Hub", "/static/img/favicon.svg")
    customer = signed_in_client(world.acme.host, world.acme.users["customer"], world.acme.schema)
    for path in CUSTOMER:
        _assert_branded(customer.get(path), "Acme Freight Hub", "/static/img/favicon.svg")


def test_a_brands_favicon_and_new_name_show_on_every_page_at_once(world, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    tenant_branding_update(
        tenant=world.acme.tenant,
        branding=BrandingInput(
            product_name="Acme Track", primary_color="#0b4f9c", accent_color="#b4400a", favicon=ContentFile(SVG, name="acme.svg")
        ),
        actor=FIXTURE_ACTOR,
    )
    for path in SIGNED_OUT:
        _assert_branded(host_client(world.acme.host).get(path), "Acme Track", "/brand/favicon")
    admin = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    for path in STAFF:
        _assert_branded(admin.get(path), "Acme Track", "/brand/favicon")
    icon = host_client(world.acme.host).get("/brand/favicon")
    assert icon.status_code == 200 and b"".join(icon.streaming_content) == SVG
    # The other tenant keeps its own.
    _assert_branded(host_client(world.globex.host).get("/accounts/login/"), "Globex Distribution Hub", "/static/img/favicon.svg")


def test_console_pages_carry_the_msps_brand(world):
    client = _console(world)
    for path in CONSOLE:
        _assert_branded(
            client.get(path) if path != "/accounts/login/" else host_client("localhost").get(path),
            "Test Console",
            "/static/img/favicon.svg",
        )
