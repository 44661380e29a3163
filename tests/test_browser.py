"""In a real Chromium: each tenant host wears its own brand, and a session is worthless elsewhere."""

import pytest
from playwright.sync_api import sync_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, TOTP_SECRET
from tests.processes import celery_worker, web_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("web") / "web.log") as port:
        yield port


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _rgb(hex_colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)))


def test_acme_sign_in_shows_acme_brand_and_the_session_is_useless_on_globex(world, live_port, browser):
    acme, globex = f"http://acme.localhost:{live_port}", f"http://globex.localhost:{live_port}"
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, acme, world.acme.users["planner"].email, PASSWORD)
    assert page.url.rstrip("/") == acme
    assert "Acme Freight Hub" in page.title()
    header_colour = page.evaluate("getComputedStyle(document.querySelector('.site-header')).backgroundColor")
    assert header_colour == _rgb("#0b4f9c")
    screenshot(page, "tenant-home-acme")

    # The browser keeps cookies per host; present Acme's cookies to Globex as a thief would.
    acme_cookies = context.cookies(acme)
    assert any(c["name"] == "sessionid" for c in acme_cookies)
    context.add_cookies([{**c, "domain": "globex.localhost"} for c in acme_cookies])
    page.goto(globex + "/")
    assert "/accounts/login/" in page.url
    assert "Acme" not in page.content()
    assert page.evaluate("getComputedStyle(document.querySelector('.site-header')).backgroundColor") == _rgb("#1e5b32")
    screenshot(page, "tenant-login-globex")
    context.close()


def test_tenant_admin_signs_in_with_totp(world, live_port, browser):
    acme = f"http://acme.localhost:{live_port}"
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, acme, world.acme.users["tenant_admin"].email, PASSWORD, totp_secret=TOTP_SECRET)
    assert page.url.rstrip("/") == acme, page.url
    page.goto(acme + "/settings/audit/")
    assert page.locator("table").count() == 1
    screenshot(page, "tenant-audit-acme")
    context.close()


def test_unknown_host_page(live_port, browser):
    page = browser.new_page()
    response = page.goto(f"http://nowhere.localhost:{live_port}/")
    assert response.status == 404
    assert "nowhere.localhost" in page.content()
    screenshot(page, "unknown-host")
    page.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup):
    with celery_worker(tmp_path_factory.mktemp("browser-worker") / "worker.log") as process:
        yield process


def test_msp_admin_provisions_a_tenant_and_watches_it_become_ready(world, live_port, browser, worker):
    console = f"http://localhost:{live_port}"
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, console, world.msp["msp_admin"].email, PASSWORD, totp_secret=TOTP_SECRET)
    page.goto(console + "/tenants/")
    assert page.locator("text=Acme Freight").count() >= 1
    screenshot(page, "console-tenants")

    page.goto(console + "/tenants/new/")
    page.fill("input[name=name]", "Pied Piper Freight")
    page.fill("input[name=slug]", "piedpiper")
    page.fill("input[name=product_name]", "Pied Piper Track")
    page.fill("input[name=admin_email]", "richard@piedpiper.test")
    screenshot(page, "console-tenant-new")
    page.click("button:has-text('Provision tenant')")
    page.wait_for_url("**/tenants/*/")
    # The detail page polls the provisioning log; the worker finishes and the page shows it live.
    page.locator("#tenant-status", has_text="Ready").wait_for(timeout=60_000)
    assert page.locator("#provisioning", has_text="Ready").count() == 1
    screenshot(page, "console-tenant-provisioned")

    # The new host serves the new brand straight away.
    page.goto(f"http://piedpiper.localhost:{live_port}/accounts/login/")
    assert "Pied Piper Track" in page.title()
    context.close()
