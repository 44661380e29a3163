"""The brand against a real web server: a custom domain verified by asking Baton itself for the
tenant's token over HTTP (on loopback: *.localhost names), and, in a real browser, the portal
texts settings page, what customers see of the texts, the console's domains, and a branded email's
HTML. Screenshots at desktop and phone widths."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from django.template.loader import render_to_string
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import sync_playwright

from governance.services import Actor
from tenants.models import Domain, PortalTexts, Tenant
from tenants.selectors import site_for_tenant
from tenants.services import PortalTextsInput, portal_texts_update, tenant_domain_add, tenant_domain_verify
from tests.browser import CHROMIUM, CHROMIUM_ARGS, SCREENS, screenshot, sign_in
from tests.conftest import PASSWORD, TOTP_SECRET
from tests.processes import web_server

ACTOR = Actor.system("tests-brand")
TEXTS = PortalTextsInput(
    welcome_headline="Your freight, in view",
    welcome_message="Every load we move for you, live.\nQuestions about a delivery? Our desk answers within the hour.",
    support_email="help@acme-freight.test",
    support_phone="+1 312 555 0100",
    support_hours="Mon–Fri 07:00–19:00 CT",
    notice="Planned maintenance Sunday 02:00–03:00 CT: tracking updates arrive after it.",
    sign_in_message="No account yet? Ask your Acme account manager to invite you.",
)


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    previous = os.environ.get("DEBUG")
    os.environ["DEBUG"] = "0"
    try:
        with web_server(tmp_path_factory.mktemp("brand-web") / "web.log") as port:
            yield port
    finally:
        if previous is None:
            os.environ.pop("DEBUG", None)
        else:
            os.environ["DEBUG"] = previous


def test_a_custom_domain_pointing_at_this_installation_is_verified_by_its_token(world, committed, live_port):
    domain = tenant_domain_add(tenant=world.acme.tenant, host="track.acme-freight.localhost", actor=ACTOR)
    try:
        with override_settings(BATON_PUBLIC_PORT=str(live_port)):
            checked = tenant_domain_verify(domain=domain, actor=ACTOR)
        assert checked.verification_error == "" and checked.verified_at is not None
    finally:
        Domain.objects.filter(pk=domain.pk).delete()


def _email_html(tmp_path, world) -> str:
    """An invitation's HTML part as Baton renders it for Acme, as a file the browser can open."""
    tenant = Tenant.objects.select_related("branding").prefetch_related("domains").get(pk=world.acme.tenant.pk)
    site = site_for_tenant(tenant)
    person = SimpleNamespace(full_name="Dana Planner", email="dana@acme.test")
    html = render_to_string(
        "email/invitation.html",
        {"site": site, "user": person, "link": site.base_url + "/accounts/password/reset/key/x-y/", "role_label": "Planner"},
    )
    path = tmp_path / "invitation.html"
    path.write_text(html)
    return path.as_uri()


def test_the_brand_pages_and_email_in_a_browser(world, committed, live_port, tmp_path):
    portal_texts_update(tenant=world.acme.tenant, texts=TEXTS, actor=ACTOR)
    custom = tenant_domain_add(tenant=world.acme.tenant, host="track.acme-freight.example", actor=ACTOR)
    Domain.objects.filter(pk=custom.pk).update(
        verification_checked_at=timezone.now(),
        verification_error="No answer from http://track.acme-freight.example/.well-known/baton-domain (the name does not resolve).",
    )
    email_url = _email_html(tmp_path, world)
    acme = f"http://{world.acme.host}:{live_port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 900})

            page.goto(acme + "/accounts/login/")
            assert "No account yet? Ask your Acme account manager" in page.content()
            assert page.title() == "Sign in · Acme Freight Hub"
            screenshot(page, "brand-sign-in-message")

            sign_in(page, acme, world.acme.users["customer"].email, PASSWORD)
            assert page.locator("#welcome-title").inner_text() == "Your freight, in view"
            assert page.locator(".portal-notice").is_visible() and page.locator(".site-footer .portal-support").is_visible()
            screenshot(page, "brand-customer-home-texts")
            page.context.clear_cookies()

            sign_in(page, acme, world.acme.users["tenant_admin"].email, PASSWORD, TOTP_SECRET)
            page.goto(acme + "/settings/portal-texts/")
            assert page.title() == "Portal texts · Acme Freight Hub"
            screenshot(page, "brand-portal-texts-settings")
            page.fill("#id_welcome_headline", "Freight you can see")
            page.click("button[value=preview]")
            assert "Preview – not saved yet" in page.content() and "Freight you can see" in page.locator(".texts-preview").inner_text()
            screenshot(page, "brand-portal-texts-preview")
            assert page.locator("#id_notice").get_attribute("maxlength") == "300"  # the browser stops at the limit too
            page.fill("#id_support_phone", "call me")
            page.click("button[value=save]")
            assert "Support phone takes digits, spaces and + ( ) - . / only" in page.locator("#id_support_phone_errors").inner_text()
            screenshot(page, "brand-portal-texts-error")
            page.context.clear_cookies()

            console = f"http://localhost:{live_port}"
            sign_in(page, console, world.msp["msp_admin"].email, PASSWORD, TOTP_SECRET)
            page.goto(f"{console}/tenants/{world.acme.tenant.pk}/#domains")
            page.locator("#domains details summary").click()
            assert "track.acme-freight.example" in page.locator("#domains").inner_text() and "Unverified" in page.content()
            assert page.title() == "Acme Freight · Test Console"
            page.locator("#domains").scroll_into_view_if_needed()
            screenshot(page, "brand-console-domains")

            page.goto(email_url)
            assert "You're invited to Acme Freight Hub" in page.content()
            screenshot(page, "brand-email-invitation")
            browser.close()
    finally:
        PortalTexts.objects.filter(tenant=world.acme.tenant).delete()
        Domain.objects.filter(pk=custom.pk).delete()
    assert (SCREENS / "brand-console-domains-phone.png").exists()
