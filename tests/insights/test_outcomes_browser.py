"""The outcomes page in a real browser against a real web server: a planner sees the five cards
with their charts, changes the period with the picker; an empty workspace and a refused period
say what to do. Screenshots at desktop and phone widths."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from logistics.models import Document, ExceptionCase, FreightInvoice, Location, Order, Shipment
from logistics.services import (
    ChargeInput,
    OrderLineInput,
    StopInput,
    document_record,
    exception_close,
    exception_open,
    invoice_record,
    location_create,
    order_create,
    shipment_create,
    tracking_event_record,
)
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD
from tests.insights.conftest import SYSTEM
from tests.processes import web_server

_serial = itertools.count(1)


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("insights-web") / "web.log") as port:
        yield port


def _week_of_work(tenant_world, origin, destination, *, closed: datetime, factor: float, late: bool, disputed: bool) -> None:
    """One order, shipment, exception, delivery, POD, customer invoice and carrier invoice, around `closed`."""
    account = tenant_world.customer_accounts[0]
    number = next(_serial)
    order = order_create(
        customer_account=account, number=f"BR-{number}", lines=[OrderLineInput(sku="SKU-1", quantity=4)], actor=SYSTEM
    ).order
    Order.objects.filter(pk=order.pk).update(created_at=closed - timedelta(hours=30 * factor))
    promised = closed + timedelta(days=2)
    shipment = shipment_create(
        customer_account=account,
        reference=f"BR-SHP-{number}",
        carrier_scac="ODFL",
        stops=[StopInput(1, "pickup", origin), StopInput(2, "delivery", destination, appointment_end=promised)],
        orders=[order],
        actor=SYSTEM,
    )
    tracking_event_record(shipment=shipment, occurred_at=closed, source="api", status="picked_up", actor=SYSTEM)
    delivered = promised + timedelta(hours=3 if late else -1)
    tracking_event_record(shipment=shipment, occurred_at=delivered, source="api", status="delivered", actor=SYSTEM)
    case = exception_open(type="delay", reason="browser test", shipment=shipment, actor=SYSTEM).exception
    case = exception_close(exception=case, root_cause="traffic", actor=SYSTEM)
    ExceptionCase.objects.filter(pk=case.pk).update(opened_at=closed - timedelta(hours=12 * factor), closed_at=closed)
    for kind, at, fields in (
        ("pod", delivered + timedelta(hours=1), {}),
        ("invoice", delivered + timedelta(hours=1 + 40 * factor), {"customer_invoice": f"INV-BR-{number}"}),
    ):
        document = document_record(
            kind=kind,
            content=f"{kind}-{number}".encode(),
            original_name=f"{kind}.pdf",
            shipment=shipment,
            extracted_fields=fields,
            actor=SYSTEM,
        ).document
        Document.objects.filter(pk=document.pk).update(received_at=at)
    invoice = invoice_record(
        carrier_scac="ODFL",
        invoice_number=f"BR-{number}",
        charges=[ChargeInput(charge_code="linehaul", amount=Decimal("900.00"))],
        shipment=shipment,
        actor=SYSTEM,
    ).invoice
    FreightInvoice.objects.filter(pk=invoice.pk).update(
        received_at=delivered + timedelta(hours=2), match_status="disputed" if disputed else "approved"
    )


@pytest.fixture
def committed_outcomes(world, committed):
    """Eight weeks of work in Acme, slower and worse in the baseline than now; removed afterwards."""
    with schema_context(world.acme.schema):
        origin = location_create(code="br-dc", name="Browser DC", city="Chicago", actor=SYSTEM)
        destination = location_create(code="br-store", name="Browser store", city="Denver", actor=SYSTEM)
        now = timezone.now()
        for week in range(8):
            for slot in range(3):
                days = 4 + week * 7 + slot * 2
                baseline = days > 30
                _week_of_work(
                    world.acme,
                    origin,
                    destination,
                    closed=now - timedelta(days=days),
                    factor=(1.6 if baseline else 0.7) + slot * 0.3 + week * 0.05,
                    late=baseline and slot != 0 or (not baseline and slot == 2 and week == 0),
                    disputed=baseline and slot == 1 or (not baseline and week == 1 and slot == 0),
                )
    yield
    with schema_context(world.acme.schema):
        shipments = Shipment.objects.filter(reference__startswith="BR-SHP-")
        FreightInvoice.objects.filter(shipment__in=shipments).delete()
        ExceptionCase.objects.filter(shipment__in=shipments).delete()
        shipments.delete()
        Order.objects.filter(number__startswith="BR-").delete()
        Location.objects.filter(code__in=["br-dc", "br-store"]).delete()


@pytest.mark.browser
def test_the_outcomes_page_in_a_browser(world, live_port, committed_outcomes):
    base = f"http://{world.acme.host}:{live_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["planner"].email, PASSWORD)
        page.get_by_role("link", name="Outcomes").click()
        page.wait_for_load_state()
        assert page.url.endswith("/insights/outcomes/")
        cards = page.locator("section.outcome-card")
        assert cards.count() == 5
        assert page.locator("svg.outcome-chart").count() == 5
        headline = page.locator("#order_cycle_time").inner_text()
        screenshot(page, "insights-outcomes")

        page.fill("#id_days", "14")
        page.get_by_role("button", name="Show").click()
        page.wait_for_load_state()
        assert "days=14" in page.url
        fortnight = page.locator("#periods").inner_text()
        page.locator("#dispute_rate details.outcome-weeks summary").click()
        weekly = page.locator("#dispute_rate details.outcome-weeks").inner_text()
        screenshot(page, "insights-outcomes-14-days")

        page.goto(f"{base}/insights/outcomes/?baseline_start=2026-02-01&baseline_end=2026-01-05")
        refused = page.locator("main").inner_text()
        screenshot(page, "insights-outcomes-refused")
        browser.close()

        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, f"http://{world.globex.host}:{live_port}", world.globex.users["planner"].email, PASSWORD)
        page.goto(f"http://{world.globex.host}:{live_port}/insights/outcomes/")
        empty = page.locator("main").inner_text()
        screenshot(page, "insights-outcomes-empty")
        browser.close()

    # Other tests' committed orders share Acme's "now", so the browser checks what the page shows,
    # not the figures (tests/insights/test_outcomes.py checks those on a clock of its own).
    assert any(word in headline for word in ("Better", "Worse", "No change")) and "baseline" in headline
    assert "Now: the last 14 days" in fortnight
    assert "week of" in weekly.lower() and "%" in weekly
    assert "The baseline's last day is before its first day." in refused
    assert "No outcomes to measure yet" in empty and "Proof of delivery to invoice" in empty
