"""The milestone notification pages in a real browser against a real web server: a planner finds
no subscription yet (and that notifications are off), subscribes a customer account through the
form (a mistake said next to its field first), then sees the subscription with its notifications
– sent, held for quiet hours, waiting for the digest, failed – and disables it. Screenshots at
desktop and phone widths."""

from __future__ import annotations

import uuid
from datetime import time, timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from logistics.models import MilestoneNotification, MilestoneSubscription, Shipment
from logistics.notifications import subscription_create, subscriptions_forget
from tenants.db import connection
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD
from tests.logistics.conftest import SYSTEM
from tests.logistics.flows import clone_published, definition_forget
from tests.logistics.test_notifications import _template_version
from tests.processes import web_server


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("notifications-web") / "web.log") as port:
        yield port


@pytest.fixture
def tidy(world, committed):
    """Removes the subscriptions, shipments and workflow the test made (committed for the browser)."""
    made: dict[str, list] = {"shipments": [], "definitions": []}
    yield made
    with schema_context(world.acme.schema):
        MilestoneSubscription.objects.filter(customer_account__in=world.acme.customer_accounts).delete()
        Shipment.objects.filter(reference__in=made["shipments"]).delete()
        for definition in made["definitions"]:
            definition_forget(world.acme, definition)
        subscriptions_forget()
    connection.set_schema_to_public()


def _history(world, tidy) -> None:
    """A webhook subscription with a digest, its notifications in every state, and the template
    published (so the pages show notifications on)."""
    version = _template_version()
    account = world.acme.customer_accounts[0]
    with schema_context(world.acme.schema):
        definition = clone_published(world.acme, version, key=f"notify-{uuid.uuid4().hex[:6]}", name="Milestone notices", parameters={})
        tidy["definitions"].append(definition)
        digest = subscription_create(
            customer_account=account,
            milestones=["picked_up", "in_transit", "delivered", "delay"],
            channel="webhook",
            time_zone="America/Chicago",
            digest="daily",
            digest_at=time(17, 0),
            actor=SYSTEM,
        )
        now = timezone.now()
        rows = [
            ("SH-2291", "picked_up", "sent", "", now - timedelta(hours=20), ""),
            ("SH-2291", "in_transit", "pending", "digest", now - timedelta(hours=2), ""),
            (
                "SH-2317",
                "delay",
                "pending",
                "digest",
                now - timedelta(hours=1),
                "ETA 2026-11-28 21:00 UTC is 4 h 30 min after the delivery appointment",
            ),
            ("SH-2342", "delivered", "failed", "", now - timedelta(hours=30), ""),
        ]
        for reference, milestone, status, held, at, reason in rows:
            shipment, _ = Shipment.objects.get_or_create(reference=f"{reference}-{definition.pk}", defaults={"customer_account": account})
            tidy["shipments"].append(shipment.reference)
            MilestoneNotification.objects.create(
                subscription=digest,
                shipment=shipment,
                milestone=milestone,
                occurred_at=at,
                status=status,
                held=held,
                due_at=now + timedelta(hours=3) if status == "pending" else at,
                sent_at=at + timedelta(minutes=1) if status == "sent" else None,
                message_key=f"msg-{uuid.uuid4().hex[:4]}" if status != "pending" else "",
                error=(
                    f"{account.name} has no enabled webhook endpoint for shipment.milestone: add one under Connections → Customer webhooks"
                    if status == "failed"
                    else ""
                ),
                details={"label": milestone.replace("_", " ").capitalize(), "reason": reason},
            )
        subscriptions_forget()
    connection.set_schema_to_public()


@pytest.mark.browser
def test_the_notification_pages_in_a_browser(world, live_port, tidy):
    base = f"http://{world.acme.host}:{live_port}"
    account = world.acme.customer_accounts[0]
    hide_toasts = ".toasts{display:none!important}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["planner"].email, PASSWORD)

        page.goto(f"{base}/logistics/notifications/")
        empty = page.locator("main").inner_text()
        screenshot(page, "logistics-notifications-empty")
        page.get_by_role("link", name="Subscribe a customer account").click()
        page.wait_for_load_state()
        page.select_option("#id_customer_account", str(account.pk))
        page.check("#id_channel_0")  # email
        page.fill("#id_email", "dispatch@coyote.test")
        page.fill("#id_quiet_start", "21:00")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        refused = page.locator("main").inner_text()
        screenshot(page, "logistics-notifications-new-error")
        page.fill("#id_quiet_end", "07:00")
        page.fill("#id_time_zone", "America/Chicago")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        made = page.locator("body").inner_text()
        browser.close()

    # Playwright's sync API runs an event loop: the database is written between the two sessions.
    _history(world, tidy)
    with schema_context(world.acme.schema):
        digest = MilestoneSubscription.objects.get(channel="webhook", customer_account=account)
    connection.set_schema_to_public()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["planner"].email, PASSWORD)
        page.goto(f"{base}/logistics/notifications/")
        listed = page.locator("main").inner_text()
        screenshot(page, "logistics-notifications-list")
        page.goto(f"{base}/logistics/notifications/{digest.pk}/")
        detail = page.locator("main").inner_text()
        screenshot(page, "logistics-notifications-subscription")
        page.get_by_text("Disable…").click()
        page.fill("#disable-reason", "The customer reads the portal instead")
        page.get_by_role("button", name="Disable subscription").click()
        page.wait_for_load_state()
        disabled = page.locator("body").inner_text()
        page.add_style_tag(content=hide_toasts)
        screenshot(page, "logistics-notifications-disabled")
        browser.close()

    assert "No customer is subscribed yet" in empty and "Notifications are off" in empty
    assert "Give both the start and the end of quiet hours, or neither." in refused
    assert "Notifications are off until the Customer milestone notifications workflow is published" in made
    assert "dispatch@coyote.test" in made and "21:00 to 07:00: held until they end" in made
    assert "Notifications are off" not in listed and "Daily digest at 17:00" in listed and "dispatch@coyote.test" in listed
    assert "In the next digest" in detail and "has no enabled webhook endpoint" in detail and "Sent" in detail
    assert "Subscription disabled" in disabled and "The customer reads the portal instead" in disabled
    with schema_context(world.acme.schema):
        assert MilestoneSubscription.objects.get(pk=digest.pk).enabled is False
    connection.set_schema_to_public()
