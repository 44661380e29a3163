"""The customer portal's notification preferences and API keys in a real browser against a real
web server and a real Celery worker: a customer user finds no notification yet, saves one – the
milestones they want, sent at once to their system's webhook on a small local HTTP server (a
missing URL said next to its field first) – is shown the signing secret once, reloads and finds it
kept; a carrier's update then reaches the webhook through the worker, and the recent list shows it
sent. They make an API key for their system, shown once. Screenshots at desktop and phone widths."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from accounts.models import ApiKey
from connectors.deliveries import endpoints_forget
from connectors.models import WebhookEndpoint
from logistics.models import MilestoneSubscription
from logistics.notifications import subscriptions_forget
from tenants.db import connection
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, TOTP_SECRET
from tests.fake_partner import fake_partner
from tests.logistics.flows import clone_published, definition_forget
from tests.logistics.test_notifications import _send, _template_version, until
from tests.logistics.test_tracking_inbound import carrier_remove, carrier_with_shipment
from tests.processes import celery_worker, suite_env, web_server

HOOK_PATH = "/hooks/customer-prefs"


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("prefs-web") / "web.log") as port:
        yield port


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup):
    with celery_worker(tmp_path_factory.mktemp("prefs-worker") / "worker.log", env=suite_env()) as process:
        yield process


@pytest.fixture(scope="module")
def receiver():
    with fake_partner() as partner:
        yield partner


@pytest.fixture
def journey(world, committed):
    """The sending workflow published in Acme and a carrier with a shipment of the customer's
    account, all committed for the browser and the worker; removed afterwards with whatever the
    customer made."""
    account = world.acme.customer_accounts[0]
    pro = f"PRO-P{uuid.uuid4().hex[:8].upper()}"
    with schema_context(world.acme.schema):
        definition = clone_published(
            world.acme, _template_version(), key=f"notify-{uuid.uuid4().hex[:6]}", name="Milestone notices", parameters={}
        )
        subscriptions_forget()
    connection.set_schema_to_public()
    carrier = carrier_with_shipment(world.acme, pro)
    yield carrier, pro
    with schema_context(world.acme.schema):
        MilestoneSubscription.objects.filter(customer_account=account).delete()
        WebhookEndpoint.objects.filter(customer_account=account).delete()
        ApiKey.objects.filter(customer_account_id=account.pk).delete()
        definition_forget(world.acme, definition)
        subscriptions_forget()
        endpoints_forget()
    carrier_remove(carrier)
    connection.set_schema_to_public()


@pytest.mark.browser
@pytest.mark.worker
def test_a_customer_saves_a_webhook_preference_which_is_kept_and_a_milestone_reaches_it(world, live_port, worker, receiver, journey):
    carrier, pro = journey
    base = f"http://{world.acme.host}:{live_port}"
    customer = world.acme.users["customer"]
    hide_toasts = ".toasts{display:none!important}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, customer.email, PASSWORD)
        page.get_by_role("link", name="Notifications").first.click()
        page.wait_for_load_state()
        empty = page.locator("main").inner_text()
        screenshot(page, "portal-notifications-empty")

        page.get_by_role("link", name="Add a notification").click()
        page.wait_for_load_state()
        page.get_by_label("In transit", exact=True).check()
        page.get_by_label("Webhook to a URL").check()
        page.get_by_role("button", name="Save notification").click()
        page.wait_for_load_state()
        refused = page.locator("main").inner_text()
        screenshot(page, "portal-notifications-new-error")
        page.fill("#id_webhook_url", f"{receiver.url}{HOOK_PATH}")
        page.fill("#id_time_zone", "America/Chicago")
        page.get_by_role("button", name="Save notification").click()
        page.wait_for_load_state()
        secret_page = page.locator("main").inner_text()
        hook_secret = page.input_value("#new-secret")
        page.add_style_tag(content=hide_toasts)
        screenshot(page, "portal-notifications-secret")

        page.goto(f"{base}/notifications/")
        page.reload()
        kept = page.locator("main").inner_text()
        grid = page.locator("table.notification-grid tbody tr", has_text="In transit").inner_text()
        screenshot(page, "portal-notifications-saved")
        page.locator("table.notification-grid thead a").first.click()
        page.wait_for_load_state()
        form_checked = page.get_by_label("In transit", exact=True).is_checked()
        webhook_checked = page.get_by_label("Webhook to a URL").is_checked()
        zone = page.input_value("#id_time_zone")
        screenshot(page, "portal-notifications-edit")
        browser.close()

    # Playwright's sync API runs an event loop: the carrier's update is sent between the sessions.
    _send(world, carrier, pro, "in_transit", timezone.now().replace(microsecond=0))
    request = until(lambda: [r for r in receiver.requests if r.path == HOOK_PATH], "no webhook reached the customer's receiver")[0]
    until(lambda: _sent(world), "the notification was not marked sent")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, customer.email, PASSWORD)
        page.goto(f"{base}/notifications/")
        recent = page.locator("section[aria-labelledby=recent-title]").inner_text()
        screenshot(page, "portal-notifications-recent")

        page.goto(f"{base}/account/api-keys/")
        keys_empty = page.locator("main").inner_text()
        screenshot(page, "portal-account-api-keys-empty")
        page.fill("#id_name", "Our TMS")
        page.get_by_label("Read shipments, tracking events, documents and invoices (Experience API)").check()
        page.get_by_role("button", name="Create key").click()
        page.wait_for_load_state()
        key_made = page.locator("main").inner_text()
        secret = page.input_value("#new-secret")
        screenshot(page, "portal-account-api-keys-created")
        page.goto(f"{base}/account/api-keys/")  # opened again (a reload would post the form again)
        keys_later = page.locator("main").inner_text()

        admin = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(admin, base, world.acme.users["tenant_admin"].email, PASSWORD, TOTP_SECRET)
        admin.goto(f"{base}/settings/api-keys/")
        admin.fill("#id_name", "Shipper reporting")
        admin.get_by_label("Read the audit log").check()
        admin.select_option("#id_customer_account", str(world.acme.customer_accounts[0].pk))
        admin.get_by_role("button", name="Create key").click()
        admin.wait_for_load_state()
        bound_refused = admin.locator("main").inner_text()
        screenshot(admin, "tenant-api-keys-customer-bound-error")
        browser.close()

    assert "You get no notifications yet" in empty and "Nothing told yet" in empty
    assert "the account has no webhook endpoint that receives milestones yet" in refused
    assert "Copy the signing secret now" in secret_page and hook_secret.startswith("whsec_")
    assert "Webhook" in kept and f"{receiver.url}{HOOK_PATH}"[:40] in kept and "On" in kept
    assert "✓" in grid
    assert form_checked and webhook_checked and zone == "America/Chicago"
    assert request.body["type"] == "shipment.milestone" and request.headers.get("webhook-signature")
    assert [item["milestone"] for item in request.body["data"]["milestones"]] == ["in_transit"]
    assert "In transit" in recent and "Sent" in recent
    assert "No API keys yet" in keys_empty
    assert "Copy your new key now" in key_made and secret.startswith("bk_")
    assert "Our TMS" in keys_later and secret not in keys_later
    assert "A key bound to a customer account holds Experience API scopes only" in bound_refused
    assert f"Customer key: {world.acme.customer_accounts[0].name}" in bound_refused  # the customer's own key, listed for the admin
    with schema_context(world.acme.schema):
        key = ApiKey.objects.get(name="Our TMS")
        assert key.customer_account_id == world.acme.customer_accounts[0].pk and key.scopes == ["shipments:read"]
    connection.set_schema_to_public()


def _sent(world) -> bool:
    from logistics.models import MilestoneNotification

    with schema_context(world.acme.schema):
        return MilestoneNotification.objects.filter(
            subscription__customer_account=world.acme.customer_accounts[0], milestone="in_transit", status="sent"
        ).exists()
