"""The customer portal's shipment pages in a real browser against a real web server: a customer
signs in, searches by PO, filters by status, saves the filter as a view, meets the empty and the
bad-link states, opens a shipment, downloads its POD, watches a milestone recorded meanwhile
appear without a reload, and gets a 404 for another customer's shipment put in the URL.
Screenshots at desktop and phone widths."""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import expect, sync_playwright

from connectors.models import Connection
from connectors.telemetry.services import telemetry_message_apply, telemetry_subscription_create
from logistics.models import Document, Location, Shipment, StopKind
from logistics.services import StopInput, document_record, exception_open, location_create, shipment_create, tracking_event_record
from portal.models import SavedView
from tenants.db import connection
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD
from tests.logistics.conftest import SYSTEM
from tests.processes import web_server


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    """The web server without DEBUG, so a 404 is the page a customer sees, not Django's report."""
    previous = os.environ.get("DEBUG")
    os.environ["DEBUG"] = "0"
    try:
        with web_server(tmp_path_factory.mktemp("shipments-web") / "web.log") as port:
            yield port
    finally:
        if previous is None:
            os.environ.pop("DEBUG", None)
        else:
            os.environ["DEBUG"] = previous


def in_thread(work):
    """Database work while Playwright's event loop runs in this thread (Django refuses sync
    queries there): done in a thread of its own, with its own connection, then closed."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def journey(world, committed):
    """Committed shipments for the browser: two of the customer's account (one well on its way,
    with an exception, a POD, an invoice and a reefer's telemetry) and one of another account."""
    tag = uuid.uuid4().hex[:5].upper()
    now = timezone.now().replace(second=0, microsecond=0)
    mine, theirs = world.acme.customer_accounts[0], world.acme.customer_accounts[1]
    with schema_context(world.acme.schema):
        origin = location_create(
            code=f"br-chi-{tag.lower()}",
            name="Chicago DC",
            time_zone="America/Chicago",
            city="Chicago",
            latitude="41.8781",
            longitude="-87.6298",
            actor=SYSTEM,
        )
        middle = location_create(
            code=f"br-oma-{tag.lower()}",
            name="Omaha cross-dock",
            time_zone="America/Chicago",
            city="Omaha",
            latitude="41.2565",
            longitude="-95.9345",
            actor=SYSTEM,
        )
        destination = location_create(
            code=f"br-den-{tag.lower()}",
            name="Denver store",
            time_zone="America/Denver",
            city="Denver",
            latitude="39.7392",
            longitude="-104.9903",
            actor=SYSTEM,
        )
        stops = [
            StopInput(1, StopKind.PICKUP, origin, now - timedelta(hours=8), now - timedelta(hours=7)),
            StopInput(2, StopKind.DELIVERY, middle, now + timedelta(hours=1), now + timedelta(hours=2)),
            StopInput(3, StopKind.DELIVERY, destination, now + timedelta(hours=10), now + timedelta(hours=12)),
        ]
        moving = shipment_create(
            customer_account=mine, reference=f"BR-{tag}-1", carrier_scac="ODFL", po_number=f"PO-{tag}-1", bol_number=f"BOL{tag}1",
            stops=stops, eta=now + timedelta(hours=12), actor=SYSTEM,
        )  # fmt: skip
        tracking_event_record(
            shipment=moving,
            status="arrived_at_pickup",
            occurred_at=now - timedelta(hours=8, minutes=10),
            source="api",
            stop_sequence=1,
            actor=SYSTEM,
        )
        tracking_event_record(
            shipment=moving,
            status="picked_up",
            occurred_at=now - timedelta(hours=7, minutes=5),
            source="api",
            stop_sequence=1,
            actor=SYSTEM,
        )
        tracking_event_record(
            shipment=moving,
            status="in_transit",
            occurred_at=now - timedelta(hours=2),
            source="api",
            eta=now + timedelta(hours=15),
            location_text="I-80, Iowa",
            actor=SYSTEM,
        )
        exception_open(type="delay", reason="INTERNAL: driver out of hours, margin at risk", shipment=moving, actor=SYSTEM)
        pod = document_record(
            kind="pod", content=b"%PDF-1.4 proof of delivery " + tag.encode(), original_name=f"POD-{tag}.pdf", content_type="application/pdf",
            shipment=moving, signed_by="J. Rivera", actor=SYSTEM,
        ).document  # fmt: skip
        invoice = document_record(
            kind="invoice", content=b"%PDF-1.4 invoice", original_name=f"INV-{tag}.pdf", content_type="application/pdf", shipment=moving,
            extracted_fields={"customer_invoice": f"INV-{tag}", "total": "2481.75", "currency": "USD"}, actor=SYSTEM,
        ).document  # fmt: skip
        reefers = Connection.objects.create(
            key=f"reefers-{tag.lower()}", name="Reefers", kind="iot", transport="mqtt", base_url="mqtt://127.0.0.1:1883"
        )
        telemetry_subscription_create(connection=reefers, topic_filter=f"br{tag.lower()}/+", actor=SYSTEM)
        reading = {
            "device_id": "TRL-9",
            "shipment": moving.reference,
            "lat": 41.59,
            "lon": -93.62,
            "temperature": 3.4,
            "ts": (now - timedelta(minutes=20)).isoformat(),
        }
        telemetry_message_apply(
            connection_id=reefers.pk, topic=f"br{tag.lower()}/TRL-9", payload=json.dumps(reading).encode(), received_at=now
        )
        quiet = shipment_create(
            customer_account=mine, reference=f"BR-{tag}-2", mode="ltl", po_number=f"PO-{tag}-2",
            stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)], actor=SYSTEM,
        )  # fmt: skip
        foreign = shipment_create(
            customer_account=theirs,
            reference=f"BR-{tag}-X",
            stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)],
            actor=SYSTEM,
        )
    connection.set_schema_to_public()
    yield {"tag": tag, "moving": moving, "quiet": quiet, "foreign": foreign, "pod": pod, "invoice": invoice, "now": now}
    with schema_context(world.acme.schema):
        for document in Document.objects.filter(shipment__reference__startswith=f"BR-{tag}-"):
            document.file.delete(save=False)
        Shipment.objects.filter(reference__startswith=f"BR-{tag}-").delete()
        Location.objects.filter(code__endswith=tag.lower()).delete()
        Connection.objects.filter(key=f"reefers-{tag.lower()}").delete()
        SavedView.objects.filter(owner=world.acme.users["customer"]).delete()
    connection.set_schema_to_public()


def _rows(page) -> list[str]:
    return page.locator("#shipment-results tbody td.cell-main a").all_inner_texts()


@pytest.mark.browser
def test_a_customer_follows_its_shipments_in_a_browser(world, live_port, journey, tmp_path):
    base = f"http://{world.acme.host}:{live_port}"
    tag, moving = journey["tag"], journey["moving"]
    hide_toasts = ".toasts{display:none!important}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
        page = context.new_page()
        sign_in(page, base, world.acme.users["customer"].email, PASSWORD)

        page.goto(f"{base}/shipments/")
        listed = _rows(page)
        title = page.title()
        screenshot(page, "portal-shipments-list")

        # search by PO (htmx swaps the results, the URL follows)
        page.fill("#shipments-q", f"PO-{tag}-2")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#shipment-results tbody")).not_to_contain_text(f"BR-{tag}-1")
        searched = _rows(page)
        searched_url = page.url

        # filter by status, then keep the filter as a view
        page.fill("#shipments-q", "")
        page.locator(".status-picker summary").click()
        page.check("#status-in_transit")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#shipment-results tbody")).not_to_contain_text(f"BR-{tag}-2")
        filtered = _rows(page)
        screenshot(page, "portal-shipments-filtered")

        # the CSV of the filter the address bar shows now; the loading note goes once the download starts
        with page.expect_download() as export_info:
            page.get_by_role("link", name="Export CSV").click()
        export_path = tmp_path / "export.csv"
        export_info.value.save_as(export_path)
        expect(page.locator("#export-status")).to_be_hidden(timeout=10_000)
        page.get_by_text("Save this view…").click()
        page.fill("#saved-view-name", f"On the road {tag}")
        page.get_by_role("button", name="Save view").click()
        page.wait_for_load_state()
        saved_nav = page.locator("nav.saved-views").inner_text()
        saved_url = page.url
        page.add_style_tag(content=hide_toasts)
        screenshot(page, "portal-shipments-saved-view")

        # the empty and the bad-link states
        page.goto(f"{base}/shipments/?q=NO-SUCH-{tag}")
        empty = page.locator("main").inner_text()
        screenshot(page, "portal-shipments-empty")
        bad_cursor = page.goto(f"{base}/shipments/?after=not-a-cursor")
        bad_cursor_text = page.locator("main").inner_text()
        screenshot(page, "portal-shipments-bad-cursor")

        # one shipment
        page.goto(f"{base}/shipments/")
        page.get_by_role("link", name=moving.reference, exact=True).click()
        page.wait_for_load_state()
        detail = page.locator("main").inner_text()
        detail_title = page.title()
        screenshot(page, "portal-shipment-detail")

        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download Proof of delivery").click()
        download = download_info.value
        pod_path = tmp_path / download.suggested_filename
        download.save_as(pod_path)

        # a milestone recorded now appears without a reload
        def record():
            with schema_context(world.acme.schema):
                shipment = Shipment.objects.get(pk=moving.pk)
                tracking_event_record(
                    shipment=shipment, status="out_for_delivery", occurred_at=timezone.now(), source="api", stop_sequence=3, actor=SYSTEM
                )

        marker = page.evaluate("() => { window.__notReloaded = true; return true; }")
        in_thread(record)
        expect(page.locator("#timeline-list")).to_contain_text("Out for delivery", timeout=30_000)
        expect(page.locator("#shipment-summary")).to_contain_text("Out for delivery")
        not_reloaded = page.evaluate("() => window.__notReloaded === true")
        announced = page.locator("#live-announce").inner_text()
        screenshot(page, "portal-shipment-live")

        # another customer's shipment in the URL
        missing = page.goto(f"{base}/shipments/{journey['foreign'].reference}/")
        missing_text = page.locator("main").inner_text()
        missing_by_id = page.goto(f"{base}/shipments/{journey['foreign'].pk}/")
        screenshot(page, "portal-shipment-404")

        # a changed download link
        refused = page.goto(f"{base}/shipments/documents/not-a-real-link/")
        refused_text = page.locator("main").inner_text()
        screenshot(page, "portal-document-link-refused")

        # the session cookie carried to another tenant's host
        session = next(cookie for cookie in context.cookies() if cookie["name"] == settings.SESSION_COOKIE_NAME)
        context.add_cookies([{**session, "domain": world.globex.host}])
        elsewhere = page.goto(f"http://{world.globex.host}:{live_port}/shipments/")
        elsewhere_text = page.locator("body").inner_text()
        elsewhere_url = page.url
        browser.close()

    assert f"BR-{tag}-1" in listed and f"BR-{tag}-2" in listed and f"BR-{tag}-X" not in listed
    assert title.startswith("Shipments · Acme Freight Hub")
    assert searched == [f"BR-{tag}-2"] and f"q=PO-{tag}-2" in searched_url
    assert f"BR-{tag}-1" in filtered and f"BR-{tag}-2" not in filtered
    exported = export_path.read_text(encoding="utf-8-sig").splitlines()
    assert exported[0].startswith("Reference,Status,Mode") and [line.split(",")[0] for line in exported[1:]] == [f"BR-{tag}-1"]
    assert f"On the road {tag}" in saved_nav and "status=in_transit" in saved_url
    assert "No shipments match these filters" in empty and "Clear filters" in empty
    assert bad_cursor is not None and bad_cursor.status == 400 and "Go to the first page" in bad_cursor_text
    assert detail_title.startswith(f"Shipment {moving.reference} · Acme Freight Hub")
    assert "Picked up" in detail and "I-80, Iowa" in detail and "running late" in detail and "INTERNAL" not in detail
    assert f"INV-{tag}" in detail and "3.4 °C" in detail
    assert Path(pod_path).read_bytes() == b"%PDF-1.4 proof of delivery " + tag.encode() and download.suggested_filename == f"POD-{tag}.pdf"
    assert marker and not_reloaded and announced == "New milestone: Out for delivery"
    assert (
        missing is not None and missing.status == 404 and "We can't find this shipment" in missing_text and "Milestones" not in missing_text
    )
    assert missing_by_id is not None and missing_by_id.status == 404
    assert refused is not None and refused.status == 403 and "does not work here" in refused_text
    assert elsewhere is not None and (elsewhere.status == 403 or "/accounts/login/" in elsewhere_url), elsewhere_url
    assert tag not in elsewhere_text and "Acme" not in elsewhere_text
