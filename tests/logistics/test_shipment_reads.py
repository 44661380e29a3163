"""The shipment read model: a viewer sees only its scope, filters find shipments by any of their
references, keyset pages cover the list exactly once in every sort (ties and missing ETAs
included), cursors cannot be edited or replayed under another search, the detail shows what a
customer may see (never an exception's internals, never the carrier's prices) and document links
are signed, bound to the account and expire."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core import signing
from django.db.models import F

from accounts.models import ApiKey
from accounts.services import api_key_create
from connectors.models import Connection
from connectors.telemetry.services import telemetry_message_apply, telemetry_subscription_create
from logistics import shipment_reads as reads
from logistics.models import DocumentKind, ExceptionStatus, Shipment, StopKind
from logistics.services import (
    OrderLineInput,
    StopInput,
    document_record,
    exception_close,
    exception_open,
    order_create,
    shipment_create,
    tracking_event_record,
)
from tests.logistics.conftest import SYSTEM, hours

pytestmark = pytest.mark.django_db


def ship(acme, places, reference: str, *, account: int = 0, **extra) -> Shipment:
    origin, destination = places
    stops = extra.pop(
        "stops",
        [StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination, hours(40), hours(42))],
    )
    return shipment_create(
        customer_account=acme.customer_accounts[account],
        reference=reference,
        carrier_scac="ODFL",
        origin=origin,
        destination=destination,
        stops=stops,
        actor=SYSTEM,
        **extra,
    )


def staff(acme):
    return acme.users["planner"]


def customer(acme):
    return acme.users["customer"]  # bound to customer_accounts[0]


def all_pages(scope, filters, limit):
    seen, cursor, pages = [], None, 0
    while True:
        page = reads.shipments_page(scope, filters, after=cursor, limit=limit)
        seen += [row.shipment.pk for row in page.rows]
        pages += 1
        assert pages < 100
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


# --- scope ------------------------------------------------------------------------------------


def test_a_customer_sees_only_its_account_and_staff_see_all(acme, places):
    mine = ship(acme, places, "SC-MINE")
    theirs = ship(acme, places, "SC-THEIRS", account=1)
    assert set(reads.shipment_scope(customer(acme)).values_list("pk", flat=True)) >= {mine.pk}
    assert theirs.pk not in set(reads.shipment_scope(customer(acme)).values_list("pk", flat=True))
    assert {mine.pk, theirs.pk} <= set(reads.shipment_scope(staff(acme)).values_list("pk", flat=True))

    key, _secret = api_key_create(
        name="erp", scopes=["shipments:read"], customer_account_id=acme.customer_accounts[1].pk, actor=acme.users["tenant_admin"]
    )
    bound = set(reads.shipment_scope(ApiKey.objects.get(pk=key.pk)).values_list("pk", flat=True))
    assert theirs.pk in bound and mine.pk not in bound
    unbound, _ = api_key_create(name="ops", scopes=["shipments:read"], actor=acme.users["tenant_admin"])
    assert {mine.pk, theirs.pk} <= set(reads.shipment_scope(unbound).values_list("pk", flat=True))


def test_nobody_in_particular_sees_nothing(acme, places):
    from django.contrib.auth.models import AnonymousUser

    ship(acme, places, "SC-ANON")
    assert not reads.shipment_scope(AnonymousUser()).exists()
    assert not reads.shipment_scope(None).exists()


def test_the_detail_of_another_customers_shipment_is_not_found_by_reference_or_id(acme, places):
    theirs = ship(acme, places, "SC-OTHER-1", account=1, bol_number="BOL-OTHER-1")
    scope = reads.shipment_scope(customer(acme))
    for key in ("SC-OTHER-1", str(theirs.pk), "bol-other-1", theirs.pk):
        with pytest.raises(reads.ShipmentNotFound):
            reads.shipment_detail(scope, key)
    assert reads.shipment_detail(reads.shipment_scope(staff(acme)), "bol-other-1").shipment.pk == theirs.pk


# --- filters ----------------------------------------------------------------------------------


def test_any_reference_finds_the_shipment(acme, places):
    target = ship(
        acme,
        places,
        "SC-REF-1",
        bol_number="BOL 7781",
        pro_number="PRO-7781",
        container_number="MSCU1234567",
        load_number="LD-7781",
        po_number="PO-7781",
    )
    other = ship(acme, places, "SC-REF-2", bol_number="BOL-9999")
    order = order_create(
        customer_account=acme.customer_accounts[0],
        number="SO-55120",
        po_number="CUSTPO-55120",
        lines=[OrderLineInput("SKU-1", 1)],
        actor=SYSTEM,
    ).order
    target.orders.add(order)
    scope = reads.shipment_scope(staff(acme))
    for text in ("SC-REF-1", "bol7781", " BOL 7781 ", "pro-7781", "mscu1234567", "LD-7781", "PO-7781", "SO-55120", "CUSTPO-55120"):
        rows = reads.shipments_page(scope, reads.ShipmentFilters(q=text), limit=10).rows
        assert [row.shipment.pk for row in rows] == [target.pk], text
    assert reads.shipments_page(scope, reads.ShipmentFilters(q="BOL-99"), limit=10).rows == []  # exact, not a prefix
    assert [row.shipment.pk for row in reads.shipments_page(scope, reads.ShipmentFilters(q="BOL-9999"), limit=10).rows] == [other.pk]


def test_filters_narrow_by_status_exception_mode_place_customer_and_dates(acme, places):
    origin, destination = places
    moving = ship(acme, places, "SC-F-1", mode="ltl")
    tracking_event_record(shipment=moving, occurred_at=hours(2), source="api", status="in_transit", actor=SYSTEM)
    stuck = ship(acme, places, "SC-F-2")
    exception_open(type="delay", reason="internal: carrier blamed the dock", shipment=stuck, actor=SYSTEM)
    elsewhere = ship(acme, places, "SC-F-3", account=1, stops=[StopInput(1, StopKind.PICKUP, destination)])
    Shipment.objects.filter(pk=elsewhere.pk).update(origin=destination, destination=origin)
    Shipment.objects.filter(pk=moving.pk).update(created_at=hours(-48))

    scope = reads.shipment_scope(staff(acme))

    def found(**filters):
        found_ids = {row.shipment.pk for row in reads.shipments_page(scope, reads.ShipmentFilters(**filters), limit=200).rows}
        return found_ids & {moving.pk, stuck.pk, elsewhere.pk}

    assert found(status=("in_transit",)) == {moving.pk}
    assert found(status=("in_transit", "pending")) == {moving.pk, stuck.pk, elsewhere.pk}
    assert found(has_exception=True) == {stuck.pk}
    assert found(has_exception=False) == {moving.pk, elsewhere.pk}
    assert found(mode="ltl") == {moving.pk}
    assert found(origin="Denver") == {elsewhere.pk}
    assert found(destination="store-denver") == {moving.pk, stuck.pk}
    assert found(customer=str(acme.customer_accounts[1].pk)) == {elsewhere.pk}
    assert found(customer=acme.customer_accounts[1].code) == {elsewhere.pk}
    assert found(created_to=hours(-24)) == {moving.pk}
    assert found(created_from=hours(-24)) == {stuck.pk, elsewhere.pk}
    # A customer cannot widen its scope by naming another account.
    customer_scope = reads.shipment_scope(customer(acme))
    widened = reads.shipments_page(customer_scope, reads.ShipmentFilters(customer=str(acme.customer_accounts[1].pk)), limit=200)
    assert widened.rows == []


def test_bad_filters_say_which_and_why(acme):
    with pytest.raises(reads.ShipmentFiltersInvalid) as bad_sort:
        reads.ShipmentFilters(sort="reference")
    assert bad_sort.value.field == "sort"
    with pytest.raises(reads.ShipmentFiltersInvalid) as bad_status:
        reads.ShipmentFilters.from_params({"status": "in_transit,lost"})
    assert bad_status.value.field == "status" and "'lost'" in bad_status.value.message
    with pytest.raises(reads.ShipmentFiltersInvalid) as bad_date:
        reads.ShipmentFilters.from_params({"created_from": "yesterday"})
    assert bad_date.value.field == "created_from"
    with pytest.raises(reads.ShipmentFiltersInvalid) as backwards:
        reads.ShipmentFilters.from_params({"eta_from": "2026-03-05", "eta_to": "2026-03-01"})
    assert backwards.value.field == "eta_to"
    with pytest.raises(reads.ShipmentFiltersInvalid):
        reads.ShipmentFilters.from_params({"has_exception": "maybe"})
    with pytest.raises(reads.ShipmentFiltersInvalid) as bad_limit:
        reads.shipments_page(reads.shipment_scope(staff(acme)), reads.ShipmentFilters(), limit=201)
    assert bad_limit.value.field == "limit"


def test_dates_are_whole_days_in_the_given_zone_and_to_is_inclusive():
    filters = reads.ShipmentFilters.from_params({"created_from": "2026-03-02", "created_to": "2026-03-02"}, time_zone="America/Chicago")
    assert filters.created_from is not None and filters.created_to is not None
    assert filters.created_from.isoformat() == "2026-03-02T00:00:00-06:00"
    assert filters.created_to - filters.created_from == timedelta(days=1)


# --- keyset pages -----------------------------------------------------------------------------


@pytest.mark.parametrize("sort", reads.SORTS)
def test_pages_cover_every_shipment_once_in_order_with_ties_and_missing_etas(acme, places, sort):
    made = [ship(acme, places, f"SC-P-{index:02d}", eta=hours(index % 5) if index % 4 else None) for index in range(23)]
    tie = made[0].created_at
    Shipment.objects.filter(pk__in=[shipment.pk for shipment in made[:6]]).update(created_at=tie)
    scope = reads.shipment_scope(staff(acme)).filter(reference__startswith="SC-P-")
    filters = reads.ShipmentFilters(sort=sort)
    paged = all_pages(scope, filters, limit=4)
    assert len(paged) == len(set(paged)) == 23
    column = sort.lstrip("-")
    expected = scope.order_by(
        F(column).desc(nulls_first=True) if sort.startswith("-") else F(column).asc(nulls_last=True),
        "-id" if sort.startswith("-") else "id",
    )
    assert paged == list(expected.values_list("pk", flat=True))


def test_a_new_shipment_does_not_shift_the_pages_already_seen(acme, places):
    for index in range(6):
        ship(acme, places, f"SC-S-{index}")
    scope = reads.shipment_scope(staff(acme)).filter(reference__startswith="SC-S-")
    first = reads.shipments_page(scope, reads.ShipmentFilters(), limit=3)
    ship(acme, places, "SC-S-new")  # newest: sorts before the first page
    second = reads.shipments_page(scope, reads.ShipmentFilters(), after=first.next_cursor, limit=3)
    seen = [row.shipment.reference for row in first.rows + second.rows]
    assert len(set(seen)) == 6 and "SC-S-new" not in seen


def test_an_edited_cursor_is_refused(acme, places):
    for index in range(3):
        ship(acme, places, f"SC-T-{index}")
    scope = reads.shipment_scope(staff(acme))
    cursor = reads.shipments_page(scope, reads.ShipmentFilters(), limit=1).next_cursor
    assert cursor
    payload = signing.loads(cursor, salt="logistics.shipment_reads.cursor")
    forged = signing.dumps({**payload, "id": payload["id"] + 1}, salt="not-the-salt")
    for bad in (cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"), forged, "garbage", json.dumps(payload)):
        with pytest.raises(reads.ShipmentCursorInvalid):
            reads.shipments_page(scope, reads.ShipmentFilters(), after=bad, limit=1)


def test_a_cursor_is_refused_under_another_search_sort_or_scope(acme, places):
    for index in range(3):
        ship(acme, places, f"SC-C-{index}")
    staff_scope = reads.shipment_scope(staff(acme))
    cursor = reads.shipments_page(staff_scope, reads.ShipmentFilters(), limit=1).next_cursor
    assert cursor
    for filters in (
        reads.ShipmentFilters(sort="created_at"),
        reads.ShipmentFilters(status=("pending",)),
        reads.ShipmentFilters(q="SC-C-1"),
    ):
        with pytest.raises(reads.ShipmentCursorInvalid, match="another search"):
            reads.shipments_page(staff_scope, filters, after=cursor, limit=1)
    with pytest.raises(reads.ShipmentCursorInvalid):
        reads.shipments_page(reads.shipment_scope(customer(acme)), reads.ShipmentFilters(), after=cursor, limit=1)


# --- rows and detail --------------------------------------------------------------------------


def test_a_row_compares_eta_with_the_promise(acme, places):
    origin, destination = places
    late = ship(acme, places, "SC-R-1")  # delivery appointment ends at hours(42)
    tracking_event_record(shipment=late, occurred_at=hours(5), source="api", status="in_transit", eta=hours(45), actor=SYSTEM)
    planned = ship(
        acme, places, "SC-R-2", eta=hours(30), stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)]
    )
    unpromised = ship(acme, places, "SC-R-3", stops=[StopInput(1, StopKind.PICKUP, origin)])
    scope = reads.shipment_scope(staff(acme)).filter(reference__startswith="SC-R-")
    rows = {row.shipment.reference: row for row in reads.shipments_page(scope, reads.ShipmentFilters(), limit=10).rows}
    assert rows["SC-R-1"].promise == "delivery appointment" and rows["SC-R-1"].promised_at == hours(42)
    assert rows["SC-R-1"].late_by == timedelta(hours=3) and rows["SC-R-1"].is_late
    assert rows["SC-R-2"].promise == "planned delivery" and rows["SC-R-2"].late_by == timedelta(0) and not rows["SC-R-2"].is_late
    assert rows["SC-R-3"].promised_at is None and rows["SC-R-3"].late_by is None
    assert planned.pk and unpromised.pk


def test_the_detail_shows_what_a_customer_may_see(acme, places):
    shipment = ship(acme, places, "SC-D-1", container_number="TGHU7654321")
    tracking_event_record(shipment=shipment, occurred_at=hours(1), source="api", status="arrived_at_pickup", stop_sequence=1, actor=SYSTEM)
    tracking_event_record(shipment=shipment, occurred_at=hours(2), source="api", status="picked_up", stop_sequence=1, actor=SYSTEM)
    tracking_event_record(shipment=shipment, occurred_at=hours(3), source="api", status="in_transit", eta=hours(44), actor=SYSTEM)
    tracking_event_record(
        shipment=shipment, occurred_at=hours(6), source="api", status="in_transit", estimate=True, eta=hours(46), actor=SYSTEM
    )
    tracking_event_record(shipment=shipment, occurred_at=hours(0.5), source="api", status="tendered", actor=SYSTEM)  # older: not applied
    delay = exception_open(
        type="delay", reason="INTERNAL-NOTE driver asleep", details={"note": "INTERNAL-DETAIL"}, shipment=shipment, actor=SYSTEM
    )
    damage = exception_open(type="damage", reason="INTERNAL-NOTE forklift", shipment=shipment, actor=SYSTEM).exception
    exception_close(exception=damage, root_cause="carrier", resolution="INTERNAL-RESOLUTION", actor=SYSTEM)
    pod = document_record(kind=DocumentKind.POD, content=b"%PDF pod", original_name="pod.pdf", shipment=shipment, actor=SYSTEM).document
    document_record(kind=DocumentKind.RATE_CONFIRMATION, content=b"rate 1200 USD", original_name="rc.pdf", shipment=shipment, actor=SYSTEM)
    invoice = document_record(
        kind=DocumentKind.INVOICE,
        content=b"%PDF inv",
        original_name="INV-SC-D-1-9.pdf",
        shipment=shipment,
        extracted_fields={"customer_invoice": "INV-SC-D-1-9", "carrier_invoice": 9, "total": "1450.00", "currency": "USD"},
        actor=SYSTEM,
    ).document
    connection = Connection.objects.create(
        key=f"reefers-{uuid.uuid4().hex[:6]}", name="Reefers", kind="iot", transport="mqtt", base_url="mqtt://127.0.0.1:1883"
    )
    telemetry_subscription_create(connection=connection, topic_filter="fleet/+", actor=SYSTEM)
    message = {"device_id": "TRL-9", "shipment": "SC-D-1", "lat": 41.5, "lon": -93.6, "temperature": 3.5, "ts": hours(7).isoformat()}
    telemetry_message_apply(connection_id=connection.pk, topic="fleet/TRL-9", payload=json.dumps(message).encode(), received_at=hours(7))

    detail = reads.shipment_detail(reads.shipment_scope(customer(acme)), "SC-D-1")

    assert [stop.time_zone for stop in detail.stops] == ["America/Chicago", "America/Denver"]
    pickup, delivery = detail.stops
    assert pickup.arrived_at is not None and pickup.arrived_at.local.utcoffset() == timedelta(hours=-6)
    assert pickup.arrived_at.utc == hours(1) and pickup.departed_at is not None and pickup.departed_at.utc == hours(2)
    assert delivery.planned is not None and delivery.planned.utc == hours(42) and delivery.actual is None
    assert [item.status for item in detail.timeline] == ["arrived_at_pickup", "picked_up", "in_transit"]
    assert detail.timeline[0].occurred.time_zone == "America/Chicago"
    assert [(change.made_at, change.eta) for change in detail.eta_history] == [(hours(3), hours(44)), (hours(6), hours(46))]
    assert detail.shipment.eta == hours(46) and detail.row.late_by == timedelta(hours=4)

    texts = json.dumps([case.__dict__ for case in detail.exceptions], default=str)
    assert "INTERNAL" not in texts
    by_type = {case.type: case for case in detail.exceptions}
    assert by_type["delay"].open and "running late" in by_type["delay"].message
    assert not by_type["damage"].open and by_type["damage"].message == "Resolved: damage."
    assert delay.exception.status == ExceptionStatus.OPEN and detail.row.has_open_exception

    assert [document.pk for document in detail.documents] == [pod.pk]  # no rate confirmation, the invoice apart
    assert [(item.document.pk, item.number, item.total, item.status) for item in detail.invoices] == [
        (invoice.pk, "INV-SC-D-1-9", "1450.00", "issued")
    ]
    assert detail.telemetry is not None
    assert (detail.telemetry.latitude, detail.telemetry.longitude, detail.telemetry.temperature) == (41.5, -93.6, 3.5)
    assert detail.telemetry.position_at == hours(7)


def test_the_detail_costs_a_handful_of_queries(acme, places, django_assert_max_num_queries):
    shipment = ship(acme, places, "SC-Q-1")
    for index in range(10):
        tracking_event_record(
            shipment=shipment, occurred_at=hours(index), source="api", status="in_transit", eta=hours(40 + index), actor=SYSTEM
        )
    scope = reads.shipment_scope(customer(acme))
    with django_assert_max_num_queries(9):
        reads.shipment_detail(scope, "SC-Q-1")


def test_a_page_costs_one_query_whatever_its_size(acme, places, django_assert_num_queries):
    for index in range(12):
        ship(acme, places, f"SC-N-{index}")
    scope = reads.shipment_scope(customer(acme))
    with django_assert_num_queries(1):
        page = reads.shipments_page(scope, reads.ShipmentFilters(), limit=10)
        [(row.shipment.origin, row.shipment.destination, row.shipment.customer_account, row.late_by) for row in page.rows]


# --- document links ---------------------------------------------------------------------------


def test_a_document_link_opens_its_document_until_it_expires(acme, places, monkeypatch):
    shipment = ship(acme, places, "SC-L-1")
    pod = document_record(kind=DocumentKind.POD, content=b"%PDF link", original_name="pod.pdf", shipment=shipment, actor=SYSTEM).document
    link = reads.document_link(pod, customer(acme), ttl=60)
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert reads.document_from_link(token).pk == pod.pk

    import time as time_module

    real_time = time_module.time
    monkeypatch.setattr(signing.time, "time", lambda: real_time() + 61)
    with pytest.raises(reads.DocumentLinkExpired):
        reads.document_from_link(token)


def test_a_document_link_is_refused_when_changed_or_for_another_account(acme, places):
    theirs = ship(acme, places, "SC-L-2", account=1)
    pod = document_record(kind=DocumentKind.POD, content=b"%PDF theirs", original_name="pod.pdf", shipment=theirs, actor=SYSTEM).document
    rate = document_record(
        kind=DocumentKind.RATE_CONFIRMATION, content=b"rc", original_name="rc.pdf", shipment=theirs, actor=SYSTEM
    ).document
    # A link minted for the customer of account 0 (as if a view forgot the scope) opens nothing of account 1.
    foreign = reads.document_link(pod, customer(acme)).rstrip("/").rsplit("/", 1)[1]
    with pytest.raises(reads.DocumentLinkInvalid) as refused:
        reads.document_from_link(foreign)
    assert not isinstance(refused.value, reads.DocumentLinkExpired)
    staff_token = reads.document_link(pod, staff(acme)).rstrip("/").rsplit("/", 1)[1]
    assert reads.document_from_link(staff_token).pk == pod.pk
    with pytest.raises(reads.DocumentLinkInvalid):
        reads.document_from_link(staff_token[:-3] + "xyz")
    with pytest.raises(reads.DocumentLinkInvalid):  # the carrier's price is never downloadable by link
        reads.document_from_link(reads.document_link(rate, staff(acme)).rstrip("/").rsplit("/", 1)[1])
