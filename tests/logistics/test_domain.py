"""The rest of the domain's writes: master data, shipments and their references, exceptions with
their SLA and root cause, claims on the Carmack clock, freight invoices, inventory variances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from logistics.models import ChargeLine, Document, ExceptionCase, InventoryPosition, SlaPolicy
from logistics.selectors import claims_due, distance_m, exceptions_list, location_calendar, location_contains, shipment_find, shipments_list
from logistics.services import (
    ChargeInput,
    ClaimRefused,
    ExceptionRefused,
    InventoryInvalid,
    InvoiceInvalid,
    MasterDataInvalid,
    OrderLineInput,
    PositionInput,
    ShipmentInvalid,
    StopInput,
    claim_acknowledge,
    claim_file,
    claim_status_set,
    document_record,
    exception_assign,
    exception_close,
    exception_escalate,
    exception_open,
    inventory_snapshot_record,
    inventory_variances_compute,
    invoice_record,
    location_create,
    order_create,
    shipment_create,
)
from tests.logistics.conftest import SYSTEM, T0, hours, make_shipment

pytestmark = pytest.mark.django_db


# --- master data and shipments ---------------------------------------------------------------


def test_a_location_keeps_its_clock_in_the_business_calendars_shape(acme):
    dock = location_create(
        code="dock-rotterdam",
        name="Rotterdam",
        time_zone="Europe/Amsterdam",
        weekly_hours={"mon": [["06:00", "14:00"]], "tue": [], "wed": [], "thu": [], "fri": [], "sat": [], "sun": []},
        holidays=[{"date": "2026-04-27", "name": "King's Day"}],
        latitude="51.9225",
        longitude="4.47917",
        geofence_radius_m=800,
        actor=SYSTEM,
    )
    calendar = location_calendar(dock)
    assert str(calendar.zone) == "Europe/Amsterdam" and calendar.hours[0] == ((360, 840),)
    assert not calendar.opens_on(datetime(2026, 4, 27).date())
    assert location_contains(dock, Decimal("51.9260"), Decimal("4.47917")) is True  # ~390 m north
    assert location_contains(dock, Decimal("51.9300"), Decimal("4.47917")) is False  # ~830 m north
    assert round(distance_m(51.9225, 4.47917, 52.3676, 4.9041)) in range(57_000, 58_000)  # Rotterdam–Amsterdam
    assert location_contains(location_create(code="nowhere", name="No position", actor=SYSTEM), 0, 0) is None
    with pytest.raises(MasterDataInvalid, match=r"/weekly_hours/mon/0/1: closes at 05:00, before it opens"):
        location_create(code="bad", name="Bad", weekly_hours={"mon": [["08:00", "05:00"]]}, actor=SYSTEM)
    with pytest.raises(MasterDataInvalid, match="not a known time zone"):
        location_create(code="bad", name="Bad", time_zone="Mars/Olympus", actor=SYSTEM)
    with pytest.raises(MasterDataInvalid, match="both latitude and longitude"):
        location_create(code="bad", name="Bad", latitude="10", actor=SYSTEM)


def test_a_shipment_takes_its_ends_from_its_stops_and_is_found_by_any_reference(acme, places):
    shipment = make_shipment(
        acme,
        places,
        "SH-100",
        bol_number=" bol 77 ",
        pro_number="pro-123",
        po_number="po9",
        container_number="msku 1234567",
        planned_rate="1250.50",
    )
    assert (shipment.origin, shipment.destination) == places
    assert (shipment.bol_number, shipment.pro_number, shipment.container_number) == ("BOL77", "PRO-123", "MSKU1234567")
    assert shipment.planned_rate == Decimal("1250.50") and shipment.currency == "USD"
    for text in ("SH-100", "bol77", "PRO-123", "PO9", "MSKU 1234567"):
        assert shipment_find(text) == shipment, text
    assert shipment_find("PRO-124") is None
    assert list(shipments_list(customer_account=acme.customer_accounts[1])) == []
    assert AuditEvent.objects.filter(action="shipment.created", target_id=str(shipment.pk)).exists()


def test_a_shipment_with_bad_input_is_refused_naming_the_field(acme, places):
    origin, destination = places
    account = acme.customer_accounts[0]
    cases = [
        ({"reference": " "}, "reference", "needs a reference"),
        ({"reference": "S1", "mode": "teleport"}, "mode", "not a transport mode"),
        ({"reference": "S1", "carrier_scac": "OD1"}, "carrier_scac", "not a SCAC"),
        ({"reference": "S1", "currency": "dollars"}, "currency", "not a currency"),
        ({"reference": "S1", "planned_weight": "heavy"}, "planned_weight", "must be a number"),
        (
            {"reference": "S1", "stops": [StopInput(1, "pickup", origin, hours(2), hours(1))]},
            "stops/1/appointment_end",
            "ends before it starts",
        ),
        ({"reference": "S1", "stops": [StopInput(1, "pickup", origin), StopInput(1, "delivery", destination)]}, "stops/1", "listed twice"),
    ]
    for fields, field_name, reason in cases:
        with pytest.raises(ShipmentInvalid, match=reason) as refused:
            shipment_create(customer_account=account, actor=SYSTEM, **fields)
        assert refused.value.field == field_name
    make_shipment(acme, places, "S2")
    with pytest.raises(ShipmentInvalid, match="exists already"):
        make_shipment(acme, places, "S2")


def test_an_order_sent_twice_is_recorded_once(acme):
    account = acme.customer_accounts[0]
    first = order_create(
        customer_account=account, number="SO-1", lines=[OrderLineInput("SKU-1", "12"), OrderLineInput("SKU-2", 3)], actor=SYSTEM
    )
    again = order_create(customer_account=account, number="SO-1", lines=[], actor=SYSTEM)
    assert first.created and not again.created and again.order.pk == first.order.pk
    assert list(first.order.lines.values_list("line_number", "sku", "quantity")) == [
        (1, "SKU-1", Decimal("12")),
        (2, "SKU-2", Decimal("3")),
    ]


def test_a_document_is_stored_once_by_its_hash(acme, places, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    shipment = make_shipment(acme, places, "SH-DOC")
    pod = document_record(
        kind="pod", content=b"%PDF-1.4 signed", original_name="pod.pdf", shipment=shipment, signed_by="J. Doe", actor=SYSTEM
    )
    again = document_record(kind="pod", content=b"%PDF-1.4 signed", original_name="copy.pdf", shipment=shipment, actor=SYSTEM)
    document = pod.document
    assert pod.created and not again.created and again.document.pk == document.pk
    assert document.file.name == f"documents/{acme.schema}/pod/{document.sha256[:2]}/{document.sha256}.pdf"
    assert document.file.read() == b"%PDF-1.4 signed" and document.size == 15


# --- exceptions ------------------------------------------------------------------------------


def test_an_exception_is_due_by_its_customers_tier_and_opens_once_per_shipment_and_type(acme, places):
    account = acme.customer_accounts[0]
    account.service_tier = "priority"
    account.save()
    SlaPolicy.objects.create(service_tier="priority", resolve_within=timedelta(hours=4))
    shipment = make_shipment(acme, places, "SH-EXC")
    before = timezone.now()
    opened = exception_open(type="delay", reason="SD with AO: weather", severity="high", shipment=shipment, actor=SYSTEM)
    case = opened.exception
    assert opened.created and case.customer_account == account and case.status == "open"
    assert before + timedelta(hours=4) <= case.sla_due_at <= timezone.now() + timedelta(hours=4)
    again = exception_open(type="delay", reason="a second detector", shipment=shipment, actor=SYSTEM)
    assert not again.created and again.exception.pk == case.pk
    other = exception_open(type="damage", reason="A9 at the hub", shipment=shipment, actor=SYSTEM)
    assert other.created
    with pytest.raises(IntegrityError), transaction.atomic():
        ExceptionCase.objects.create(type="delay", reason="x", shipment=shipment, opened_by_email="x", opened_at=timezone.now())
    assert [row.pk for row in exceptions_list(customer_account=account)] == [case.pk, other.exception.pk]


def test_an_exception_is_owned_escalated_and_closed_only_with_its_root_cause(acme, places):
    shipment = make_shipment(acme, places, "SH-RC")
    case = exception_open(type="missed_pickup", reason="no X3 by the window's end", shipment=shipment, actor=SYSTEM).exception
    with pytest.raises(ExceptionRefused, match="cannot own exceptions"):
        exception_assign(exception=case, owner=acme.users["customer"], actor=acme.users["dispatcher"])
    case = exception_assign(exception=case, owner=acme.users["dispatcher"], actor=acme.users["planner"])
    assert (case.status, case.owner) == ("in_progress", acme.users["dispatcher"])
    with pytest.raises(ExceptionRefused, match="Say why"):
        exception_escalate(exception=case, reason="", actor=acme.users["dispatcher"])
    case = exception_escalate(exception=case, reason="carrier silent for 2 h", owner=acme.users["planner"], actor=acme.users["dispatcher"])
    assert (case.escalation_level, case.owner) == (1, acme.users["planner"])
    with pytest.raises(ExceptionRefused, match="needs its root cause: one of carrier, shipper"):
        exception_close(exception=case, root_cause="", actor=acme.users["planner"])
    case = exception_close(exception=case, root_cause="carrier", resolution="re-tendered to RLCA", actor=acme.users["planner"])
    assert (case.status, case.root_cause) == ("closed", "carrier") and case.closed_at is not None
    with pytest.raises(ExceptionRefused, match="is closed"):
        exception_escalate(exception=case, reason="again", actor=acme.users["planner"])
    actions = list(
        AuditEvent.objects.filter(target_type="logistics.exceptioncase", target_id=str(case.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["exception.opened", "exception.assigned", "exception.escalated", "exception.closed"]
    reopened = exception_open(type="missed_pickup", reason="again", shipment=shipment, actor=SYSTEM)
    assert reopened.created  # a closed case does not swallow a new one


# --- claims ----------------------------------------------------------------------------------


def test_a_claim_gets_its_carmack_due_dates_and_checklist(acme, places, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    shipment = make_shipment(acme, places, "SH-CLM")
    document_record(kind="pod", content=b"pod with exceptions noted", original_name="pod.pdf", shipment=shipment, actor=SYSTEM)
    filed = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    claim = claim_file(shipment=shipment, kind="damage", amount_claimed="1840.00", filed_at=filed, actor=acme.users["customer_service"])
    assert claim.acknowledge_due_at == datetime(2026, 2, 14, 10, 0, tzinfo=UTC)
    assert claim.decide_due_at == datetime(2026, 5, 15, 10, 0, tzinfo=UTC)
    assert (claim.number, claim.status, claim.carrier_scac) == ("SH-CLM-C1", "filed", "ODFL")
    assert claim.checklist == {"bol": False, "pod": True, "commercial_invoice": False, "photos": False, "repair_estimate": False}
    assert list(claims_due(now=datetime(2026, 2, 1, tzinfo=UTC))) == []
    assert list(claims_due(now=datetime(2026, 2, 15, tzinfo=UTC))) == [claim]
    claim_acknowledge(claim=claim, at=datetime(2026, 2, 10, tzinfo=UTC), actor=SYSTEM)
    assert list(claims_due(now=datetime(2026, 2, 15, tzinfo=UTC))) == []
    assert list(claims_due(now=datetime(2026, 5, 16, tzinfo=UTC))) == [claim]
    with pytest.raises(ClaimRefused, match="above zero"):
        claim_file(shipment=shipment, kind="damage", amount_claimed="0", actor=SYSTEM)


def test_a_claim_moves_from_filed_through_acknowledged_to_a_decision(acme, places):
    shipment = make_shipment(acme, places, "SH-CLM2")
    claim = claim_file(shipment=shipment, kind="shortage", amount_claimed="300", actor=SYSTEM)
    with pytest.raises(ClaimRefused, match="Say the amount"):
        claim_status_set(claim=claim, status="decided", actor=SYSTEM)
    claim = claim_status_set(claim=claim, status="decided", amount_settled="250", at=T0, actor=SYSTEM)
    assert (claim.status, claim.acknowledged_at, claim.decided_at, claim.amount_settled) == ("decided", T0, T0, Decimal("250"))
    claim = claim_status_set(claim=claim, status="paid", at=hours(48), actor=SYSTEM)
    assert (claim.status, claim.paid_at, claim.decided_at) == ("paid", hours(48), T0)
    with pytest.raises(ClaimRefused, match="A claim that is paid cannot become denied"):
        claim_status_set(claim=claim, status="denied", note="late", actor=SYSTEM)
    denied = claim_file(shipment=shipment, kind="loss", amount_claimed="90", actor=SYSTEM)
    with pytest.raises(ClaimRefused, match="Say why the carrier denied it"):
        claim_status_set(claim=denied, status="denied", actor=SYSTEM)
    denied = claim_status_set(claim=denied, status="denied", note="not tendered to us", actor=SYSTEM)
    assert denied.number == "SH-CLM2-C2" and denied.decision_note == "not tendered to us"
    assert AuditEvent.objects.filter(action="claim.denied", target_id=str(denied.pk)).exists()


# --- freight invoices ------------------------------------------------------------------------


def test_an_invoice_is_recorded_with_its_charge_lines_once(acme, places):
    shipment = make_shipment(acme, places, "SH-INV")
    charges = [ChargeInput("linehaul", "1200.00"), ChargeInput("fuel", "180.25"), ChargeInput("detention", "75", quantity="1.5", rate="50")]
    recorded = invoice_record(
        carrier_scac="odfl", invoice_number="INV-9", charges=charges, shipment=shipment, source="edi_210", actor=SYSTEM
    )
    invoice = recorded.invoice
    assert recorded.created and invoice.total_amount == Decimal("1455.25") and invoice.match_status == "unmatched"
    assert list(ChargeLine.objects.filter(invoice=invoice).values_list("line_number", "charge_code")) == [
        (1, "linehaul"),
        (2, "fuel"),
        (3, "detention"),
    ]
    again = invoice_record(carrier_scac="ODFL", invoice_number="INV-9", charges=charges[:1], actor=SYSTEM)
    assert not again.created and again.invoice.pk == invoice.pk
    odd = invoice_record(carrier_scac="ODFL", invoice_number="INV-10", charges=charges[:1], total_amount="1300", actor=SYSTEM).invoice
    assert odd.total_amount == Decimal("1300") and odd.match_details == {"total_differs_from_lines": {"total": "1300", "lines": "1200.00"}}
    with pytest.raises(InvoiceInvalid, match="'beer' is not a charge code") as refused:
        invoice_record(carrier_scac="ODFL", invoice_number="INV-11", charges=[ChargeInput("beer", "5")], actor=SYSTEM)
    assert refused.value.field == "charges/1/charge_code"


# --- inventory -------------------------------------------------------------------------------


def test_a_snapshot_adds_up_bins_and_refuses_unknown_locations(acme, places):
    dock, _store = places
    recorded = inventory_snapshot_record(
        source_system="wms",
        as_of=T0,
        positions=[PositionInput("SKU-1", "dock-chicago", 5), PositionInput("SKU-1", dock, "2.5"), PositionInput("SKU-2", dock, 0)],
        dedupe_key="846-0001",
        actor=SYSTEM,
    )
    assert recorded.created
    assert sorted(InventoryPosition.objects.filter(snapshot=recorded.snapshot).values_list("sku", "quantity")) == [
        ("SKU-1", Decimal("7.5")),
        ("SKU-2", Decimal("0")),
    ]
    assert not inventory_snapshot_record(source_system="wms", as_of=T0, positions=[], dedupe_key="846-0001", actor=SYSTEM).created
    with pytest.raises(InventoryInvalid, match="Unknown location 'nowhere'"):
        inventory_snapshot_record(source_system="erp", as_of=T0, positions=[PositionInput("SKU-1", "nowhere", 1)], actor=SYSTEM)


def test_variances_per_sku_and_location_between_two_systems(acme, places):
    dock, store = places
    third = location_create(code="dock-reno", name="Reno", actor=SYSTEM)
    erp = inventory_snapshot_record(
        source_system="erp",
        as_of=T0,
        positions=[
            PositionInput("A", dock, 100),
            PositionInput("B", dock, 40),
            PositionInput("C", dock, 10),
            PositionInput("A", store, 5),
            PositionInput("A", third, 9),  # the WMS does not cover Reno
        ],
        actor=SYSTEM,
    ).snapshot
    wms = inventory_snapshot_record(
        source_system="wms",
        as_of=T0,
        positions=[
            PositionInput("A", dock, 98),  # 2 % short: within the percent tolerance
            PositionInput("B", dock, 30),  # 10 short: outside both
            PositionInput("D", dock, 1),  # unknown to the ERP: within the quantity tolerance
            PositionInput("A", store, 5),  # equal: no row
        ],
        actor=SYSTEM,
    ).snapshot
    report = inventory_variances_compute(reference=erp, compared=wms, quantity_tolerance=1, percent_tolerance="2.5", actor=SYSTEM)
    rows = {
        (row.sku, row.location_id): (row.reference_quantity, row.compared_quantity, row.difference, row.status) for row in report.variances
    }
    assert rows == {
        ("A", dock.pk): (Decimal("100"), Decimal("98"), Decimal("-2"), "within_tolerance"),
        ("B", dock.pk): (Decimal("40"), Decimal("30"), Decimal("-10"), "open"),
        ("C", dock.pk): (Decimal("10"), Decimal("0"), Decimal("-10"), "open"),
        ("D", dock.pk): (Decimal("0"), Decimal("1"), Decimal("1"), "within_tolerance"),
    }
    assert report.locations_compared == sorted([dock.pk, store.pk]) and report.locations_skipped == [third.pk]
    again = inventory_variances_compute(reference=erp, compared=wms, actor=SYSTEM)  # no tolerance now
    assert len(again.variances) == 4 and all(row.status == "open" for row in again.variances)
    assert AuditEvent.objects.filter(action="inventory_variances.computed").latest("id").data["outside_tolerance"] == 4
    with pytest.raises(InventoryInvalid, match="two different snapshots"):
        inventory_variances_compute(reference=erp, compared=erp, actor=SYSTEM)


def test_domain_rows_belong_to_their_tenant(acme, places, world, settings, tmp_path):
    """Shipments, documents and exceptions live in the tenant's schema: Globex sees none of Acme's."""
    settings.MEDIA_ROOT = tmp_path
    shipment = make_shipment(acme, places, "SH-MINE")
    document_record(kind="bol", content=b"bol", original_name="bol.pdf", shipment=shipment, actor=SYSTEM)
    exception_open(type="delay", reason="late", shipment=shipment, actor=SYSTEM)
    with schema_context(world.globex.schema):
        assert (shipment_find("SH-MINE"), Document.objects.count(), ExceptionCase.objects.count()) == (None, 0, 0)
