"""A customer switches the portal to German in the user menu of a real browser and reads the
shipment list and a shipment page in German at desktop and phone widths: German words run long,
so nothing may push the page wider than the screen. Screenshots for people to look at."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import expect, sync_playwright

from accounts.models import User
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD
from tests.portal.test_shipments_browser import in_thread, journey, live_port  # noqa: F401 - fixtures

OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


def _fits(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    assert page.evaluate(OVERFLOW) <= 0, f"the page is wider than a {width}px screen"


@pytest.mark.browser
def test_a_customer_switches_to_german_and_reads_its_shipments_in_german(world, live_port, journey):  # noqa: F811
    base = f"http://{world.acme.host}:{live_port}"
    customer = world.acme.users["customer"]
    moving = journey["moving"]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US").new_page()
            page.goto(f"{base}/accounts/login/")
            expect(page.locator(".auth__languages")).to_contain_text("Español")
            screenshot(page, "i18n-sign-in")
            sign_in(page, base, customer.email, PASSWORD)
            page.goto(f"{base}/shipments/")
            expect(page.locator("h1")).to_have_text("Shipments")

            page.locator(".user-menu__button").click()
            expect(page.get_by_role("button", name="English")).to_have_attribute("aria-pressed", "true")
            screenshot(page, "i18n-user-menu")
            page.get_by_role("button", name="Deutsch").click()
            page.wait_for_load_state()
            expect(page.locator("h1")).to_have_text("Sendungen")
            assert page.evaluate("document.documentElement.lang") == "de"
            expect(page.locator("#shipment-results thead")).to_contain_text("Ankunft vs. Zusage")
            for width in (1366, 390):
                _fits(page, width)
            screenshot(page, "i18n-shipments-de")

            page.goto(f"{base}/shipments/{moving.reference}/")
            expect(page.locator("#timeline-title")).to_have_text("Ereignisse")
            expect(page.locator("#timeline-list")).to_contain_text("Abgeholt")
            expect(page.locator("#documents-title")).to_have_text("Dokumente")
            expect(page.locator(".invoice-list")).to_contain_text("2.481,75 USD")
            for width in (1366, 390):
                _fits(page, width)
            screenshot(page, "i18n-shipment-de")
            browser.close()
        assert in_thread(lambda: _language(world, customer.pk)) == "de"  # kept on the account
    finally:
        in_thread(lambda: _reset(world, customer.pk))


def _language(world, user_id: int) -> str:
    with schema_context(world.acme.schema):
        return User.objects.get(pk=user_id).language


def _reset(world, user_id: int) -> None:
    with schema_context(world.acme.schema):
        User.objects.filter(pk=user_id).update(language="")
