"""The customer portal's shipment pages: a customer sees its account's shipments only (another
customer's reference or id is a 404, on the page and its live feed), the list searches by any
reference, filters, sorts and pages by keyset (a changed or foreign cursor gets the error state),
exports every page as CSV, keeps saved views per person, and documents download through signed
links that expire and refuse other accounts and other workspaces."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.services import user_create
from connectors.models import Connection
from connectors.telemetry.services import telemetry_message_apply, telemetry_subscription_create
from governance.models import AuditEvent
from logistics.models import Location, Shipment, StopKind
from logistics.services import (
    OrderLineInput,
    StopInput,
    document_record,
    exception_open,
    location_create,
    order_create,
    shipment_create,
    tracking_event_record,
)
from logistics.shipment_reads import document_link
from portal import shipment_views
from portal.models import SavedView
from tests.conftest import PASSWORD, host_client, signed_in_client
from tests.logistics.conftest import SYSTEM

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def acme(world, db):
    with schema_context(world.acme.schema):
        yield world.acme


@pytest.fixture
def places(acme) -> tuple[Location, Location]:
    origin = location_create(
        code="sp-chicago",
        name="Chicago DC",
        time_zone="America/Chicago",
        city="Chicago",
        latitude="41.8781",
        longitude="-87.6298",
        actor=SYSTEM,
    )
    destination = location_create(
        code="sp-denver",
        name="Denver store",
        time_zone="America/Denver",
        city="Denver",
        latitude="39.7392",
        longitude="-104.9903",
        actor=SYSTEM,
    )
    return origin, destination


def ship(acme, places, reference: str, *, account: int = 0, **extra) -> Shipment:
    origin, destination = places
    return shipment_create(
        customer_account=acme.customer_accounts[account],
        reference=reference,
        carrier_scac="ODFL",
        stops=extra.pop(
            "stops", [StopInput(1, StopKind.PICKUP, origin, at(0), at(2)), StopInput(2, StopKind.DELIVERY, destination, at(20), at(22))]
        ),
        actor=SYSTEM,
        **extra,
    )


def client_for(world, role: str = "customer"):
    return signed_in_client(world.acme.host, world.acme.users[role], world.acme.schema)


def other_customer(acme):
    """A customer user of the second account (the fixtures' customer belongs to the first)."""
    return user_create(
        email=f"other-{uuid.uuid4().hex[:6]}@acme.test",
        role="customer",
        password=PASSWORD,
        actor=SYSTEM,
        customer_account_id=acme.customer_accounts[1].pk,
    )


def body(response) -> str:
    return response.content.decode()


def _unmasked(page: str) -> str:
    """The page without its CSRF tokens, which are masked afresh on every render."""
    return re.sub(r'"X-CSRFToken": "[^"]+"|name="csrfmiddlewaretoken" value="[^"]+"', "", page)


# --- scope ------------------------------------------------------------------------------------


def test_a_customer_lists_only_its_accounts_shipments_and_staff_see_every_customer(world, acme, places):
    ship(acme, places, "SP-MINE-1")
    ship(acme, places, "SP-THEIRS-1", account=1)

    mine = body(client_for(world).get("/shipments/"))
    everyone = body(client_for(world, "planner").get("/shipments/"))

    assert "SP-MINE-1" in mine and "SP-THEIRS-1" not in mine
    assert acme.customer_accounts[1].name not in mine  # no customer column or filter for customers
    assert "SP-MINE-1" in everyone and "SP-THEIRS-1" in everyone and acme.customer_accounts[1].name in everyone


def test_another_customers_shipment_is_not_found_by_reference_or_id_nor_its_live_feed(world, acme, places):
    """Another customer's shipment reads exactly like one that does not exist."""
    yard = location_create(code="sp-secret-yard", name="Secret Yard", actor=SYSTEM)
    theirs = ship(acme, places, "SP-THEIRS-2", account=1, po_number="PO-THEIRS-2", origin=yard)
    customer = client_for(world)

    for typed in (theirs.reference, str(theirs.pk), "PO-THEIRS-2"):
        response = customer.get(f"/shipments/{typed}/")
        nowhere = customer.get("/shipments/SP-NOWHERE/")
        assert response.status_code == 404 == nowhere.status_code, typed
        assert "We can't find this shipment" in body(response) and "Secret Yard" not in body(response)
        assert _unmasked(body(response)).replace(f"“{typed}”", "“SP-NOWHERE”") == _unmasked(body(nowhere))
    feed = customer.get(f"/shipments/{theirs.reference}/timeline.json")
    assert feed.status_code == 404 and json.loads(feed.content) == json.loads(customer.get("/shipments/SP-NOWHERE/timeline.json").content)
    assert "SP-THEIRS-2" not in body(customer.get("/shipments/?q=PO-THEIRS-2"))
    assert client_for(world, "planner").get(f"/shipments/{theirs.pk}/").status_code == 200


def test_a_customer_cannot_widen_its_list_with_the_customer_filter(world, acme, places):
    ship(acme, places, "SP-THEIRS-3", account=1)
    response = client_for(world).get(f"/shipments/?customer={acme.customer_accounts[1].code}")
    assert response.status_code == 200 and "SP-THEIRS-3" not in body(response)


def test_signed_out_visitors_are_sent_to_sign_in(world):
    for path in ("/shipments/", "/shipments/SP-ANY/", "/shipments/export.csv"):
        answer = host_client(world.acme.host).get(path)
        assert answer.status_code == 302 and "/accounts/login/" in answer["Location"], path


# --- search, filters, sorting -------------------------------------------------------------------


def test_search_finds_a_shipment_by_any_of_its_references(world, acme, places):
    order = order_create(
        customer_account=acme.customer_accounts[0], number="SO-88123", lines=[OrderLineInput("SKU-1", 3)], actor=SYSTEM
    ).order
    shipment = ship(
        acme, places, "SP-REF-1", po_number="po 4471", bol_number="BOL-9931", pro_number="PRO-77", container_number="MSCU1234565"
    )
    shipment.orders.add(order)
    ship(acme, places, "SP-REF-2")
    customer = client_for(world)

    for query in ("SP-REF-1", "PO4471", "bol-9931", "PRO-77", "MSCU1234565", "SO-88123"):
        found = body(customer.get("/shipments/", {"q": query}))
        assert "SP-REF-1" in found and "SP-REF-2" not in found, query
    nothing = body(customer.get("/shipments/", {"q": "NO-SUCH-REF"}))
    assert "No shipments match these filters" in nothing and "Clear filters" in nothing


def test_filters_narrow_the_list_by_status_exception_mode_places_and_dates(world, acme, places):
    late = ship(acme, places, "SP-F-LATE", mode="ltl")
    tracking_event_record(shipment=late, status="picked_up", occurred_at=at(1), source="api", actor=SYSTEM)
    exception_open(type="delay", reason="internal: carrier broke down", shipment=late, actor=SYSTEM)
    quiet = ship(acme, places, "SP-F-QUIET")
    other_origin = location_create(code="sp-austin", name="Austin DC", city="Austin", actor=SYSTEM)
    ship(acme, places, "SP-F-AUSTIN", stops=[StopInput(1, StopKind.PICKUP, other_origin), StopInput(2, StopKind.DELIVERY, places[1])])
    customer = client_for(world)

    def listed(**params) -> set[str]:
        text = body(customer.get("/shipments/", params))
        return set(re.findall(r"SP-F-[A-Z]+", text))

    assert listed(status="picked_up") == {"SP-F-LATE"}
    assert listed(status=["picked_up", "pending"]) == {"SP-F-LATE", "SP-F-QUIET", "SP-F-AUSTIN"}
    assert listed(has_exception="1") == {"SP-F-LATE"}
    assert "SP-F-LATE" not in listed(has_exception="0")
    assert listed(mode="ltl") == {"SP-F-LATE"}
    assert listed(origin="Austin") == {"SP-F-AUSTIN"}
    assert listed(destination="sp-denver") == {"SP-F-LATE", "SP-F-QUIET", "SP-F-AUSTIN"}
    today = timezone.localdate().isoformat()
    assert listed(date_field="created", date_from=today, date_to=today) == {"SP-F-LATE", "SP-F-QUIET", "SP-F-AUSTIN"}
    assert listed(date_field="created", date_to="2020-01-01") == set()
    assert listed(date_field="eta", date_from="2026-03-03", date_to="2026-03-03") == set()  # no ETA on any
    assert quiet.pk


def test_a_bad_filter_is_said_next_to_the_form_with_a_400(world, acme):
    customer = client_for(world)
    backwards = customer.get("/shipments/", {"date_from": "2026-03-05", "date_to": "2026-03-01"})
    garbled = customer.get("/shipments/", {"date_from": "yesterday"})
    unknown = customer.get("/shipments/", {"status": "teleported"})
    assert backwards.status_code == 400 and "The end date is before the start date" in body(backwards)
    assert garbled.status_code == 400 and "Write the date as YYYY-MM-DD" in body(garbled)
    assert unknown.status_code == 400 and "One filter needs fixing" in body(unknown)


def test_each_row_shows_status_eta_against_the_promise_and_the_exception_flag(world, acme, places):
    late = ship(acme, places, "SP-ROW-LATE")
    tracking_event_record(shipment=late, status="in_transit", occurred_at=at(3), source="api", eta=at(24), actor=SYSTEM)
    exception_open(type="delay", reason="driver hours ran out", shipment=late, actor=SYSTEM)
    text = body(client_for(world).get("/shipments/"))
    row = text[text.index("SP-ROW-LATE") :]
    row = row[: row.index("</tr>")]
    assert "In transit" in row and "2 h late" in row and "Open" in row, row


def test_sorting_by_eta_and_created(world, acme, places):
    first = ship(acme, places, "SP-S-1")
    second = ship(acme, places, "SP-S-2")
    tracking_event_record(shipment=first, status="in_transit", occurred_at=at(1), source="api", eta=at(30), actor=SYSTEM)
    tracking_event_record(shipment=second, status="in_transit", occurred_at=at(1), source="api", eta=at(10), actor=SYSTEM)
    customer = client_for(world)

    def order(sort: str) -> list[str]:
        return re.findall(r">(SP-S-\d)<", body(customer.get("/shipments/", {"sort": sort})))

    assert order("eta") == ["SP-S-2", "SP-S-1"]
    assert order("-eta") == ["SP-S-1", "SP-S-2"]
    assert order("created_at") == ["SP-S-1", "SP-S-2"]
    assert order("-created_at") == ["SP-S-2", "SP-S-1"]


# --- keyset pages -------------------------------------------------------------------------------


def _links(text: str) -> dict[str, str]:
    return {rel: href.replace("&amp;", "&") for rel, href in re.findall(r'rel="(next|prev)" href="([^"]+)"', text)}


def test_next_and_previous_pages_walk_the_list_by_cursor(world, acme, places, monkeypatch):
    monkeypatch.setattr(shipment_views, "PER_PAGE", 4)
    for index in range(10):
        ship(acme, places, f"SP-P-{index:02d}")
    customer = client_for(world)

    seen: list[list[str]] = []
    path = "/shipments/?q=&sort=created_at"
    pages = []
    while True:
        text = body(customer.get(path))
        pages.append(text)
        seen.append(re.findall(r">(SP-P-\d\d)<", text))
        links = _links(text)
        if "next" not in links:
            break
        path = "/shipments/" + links["next"]
    assert seen == [[f"SP-P-{i:02d}" for i in range(start, min(start + 4, 10))] for start in (0, 4, 8)]
    back = _links(pages[2])["prev"]
    assert re.findall(r">(SP-P-\d\d)<", body(customer.get("/shipments/" + back))) == seen[1]
    first = _links(pages[1])["prev"]
    assert "after=" not in first and "First page" in pages[1]


def test_a_changed_or_foreign_cursor_shows_the_error_state(world, acme, places, monkeypatch):
    monkeypatch.setattr(shipment_views, "PER_PAGE", 2)
    for index in range(3):
        ship(acme, places, f"SP-C-{index}")
    customer = client_for(world)
    cursor = _links(body(customer.get("/shipments/")))["next"].split("after=")[1]

    tampered = customer.get("/shipments/", {"after": cursor[:-3] + "xyz"})
    other_sort = customer.get("/shipments/", {"after": cursor, "sort": "eta"})
    staff_cursor = _links(body(client_for(world, "planner").get("/shipments/")))["next"].split("after=")[1]
    someone_elses = customer.get("/shipments/", {"after": staff_cursor})

    for response in (tampered, other_sort, someone_elses):
        assert response.status_code == 400
        assert "This page of the list can't be shown" in body(response) and "Go to the first page" in body(response)


# --- CSV export -------------------------------------------------------------------------------


def test_the_csv_export_streams_every_page_of_the_filter(world, acme, places, monkeypatch):
    monkeypatch.setattr(shipment_views, "EXPORT_PAGE", 3)
    for index in range(7):
        ship(acme, places, f"SP-X-{index}", po_number=f"PO-X-{index}")
    ship(acme, places, "SP-X-THEIRS", account=1)
    ship(acme, places, "=HYPERLINK(1)")

    response = client_for(world).get("/shipments/export.csv", {"sort": "created_at", "token": "abc123def"})

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="shipments-')
    assert response.cookies[shipment_views.EXPORT_COOKIE].value == "abc123def"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:4] == ["Reference", "Status", "Mode", "Origin"] and "Customer" not in rows[0]
    references = [row[0] for row in rows[1:]]
    assert references == [f"SP-X-{index}" for index in range(7)] + ["'=HYPERLINK(1)"]
    assert rows[1][rows[0].index("PO")] == "PO-X-0"


def test_staff_exports_carry_the_customer_and_a_filter_narrows_them(world, acme, places):
    ship(acme, places, "SP-XS-1", mode="ltl")
    ship(acme, places, "SP-XS-2", account=1)
    response = client_for(world, "planner").get("/shipments/export.csv", {"mode": "ltl"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][1] == "Customer"
    assert [row[0] for row in rows[1:]] == ["SP-XS-1"]
    assert rows[1][1] == acme.customer_accounts[0].name


def test_staff_filter_by_customer_keeps_the_choice_and_escapes_names(world, acme, places):
    from logistics.models import CustomerAccount

    CustomerAccount.objects.create(code="angle", name="<b>Angle & Co</b>")
    ship(acme, places, "SP-CU-1")
    ship(acme, places, "SP-CU-2", account=1)
    chosen = acme.customer_accounts[1]
    page = body(client_for(world, "planner").get("/shipments/", {"customer": chosen.code}))
    assert f'<option value="{chosen.code}" selected>' in page and "SP-CU-2" in page and "SP-CU-1" not in page
    assert '<option value="angle">&lt;b&gt;Angle &amp; Co&lt;/b&gt;</option>' in page
    assert "All customers" in page and 'value="angle" selected' not in page


# --- saved views --------------------------------------------------------------------------------


def test_a_saved_view_keeps_the_filter_without_the_cursor_and_is_the_owners_alone(world, acme):
    customer = client_for(world)
    saved = customer.post("/shipments/saved-views/", {"name": "  Late  LTL ", "query": "mode=ltl&has_exception=1&after=abc&q="})
    assert saved.status_code == 302 and saved["Location"] == "/shipments/?mode=ltl&has_exception=1"
    view = SavedView.objects.get(owner=world.acme.users["customer"])
    assert (view.name, view.query) == ("Late LTL", "mode=ltl&has_exception=1")
    page = body(customer.get("/shipments/?mode=ltl&has_exception=1"))
    assert "Late LTL" in page and 'aria-current="true"' in page
    assert AuditEvent.objects.filter(action="saved_view.saved", target_id=str(view.pk)).exists()

    again = customer.post("/shipments/saved-views/", {"name": "Late LTL", "query": "mode=ftl"})
    assert again.status_code == 302
    assert list(SavedView.objects.filter(owner=world.acme.users["customer"]).values_list("query", flat=True)) == ["mode=ftl"]

    someone = signed_in_client(world.acme.host, other_customer(acme), world.acme.schema)
    assert "Late LTL" not in body(someone.get("/shipments/"))
    assert someone.post(f"/shipments/saved-views/{view.pk}/delete/").status_code == 404
    assert client_for(world, "planner").post(f"/shipments/saved-views/{view.pk}/delete/").status_code == 404
    assert SavedView.objects.filter(pk=view.pk).exists()

    assert customer.post(f"/shipments/saved-views/{view.pk}/delete/").status_code == 302
    assert not SavedView.objects.filter(pk=view.pk).exists()


def test_a_saved_view_needs_a_name(world, acme):
    customer = client_for(world)
    response = customer.post("/shipments/saved-views/", {"name": "   ", "query": "mode=ltl"}, follow=True)
    assert "Give the view a name" in body(response)
    assert not SavedView.objects.filter(owner=world.acme.users["customer"]).exists()
    assert customer.get("/shipments/saved-views/").status_code == 405


# --- one shipment -------------------------------------------------------------------------------


def _journey(acme, places) -> Shipment:
    shipment = ship(acme, places, "SP-D-1", po_number="PO-D-1", eta=at(21))
    tracking_event_record(shipment=shipment, status="arrived_at_pickup", occurred_at=at(0.5), source="api", stop_sequence=1, actor=SYSTEM)
    tracking_event_record(shipment=shipment, status="picked_up", occurred_at=at(1.5), source="api", stop_sequence=1, actor=SYSTEM)
    tracking_event_record(shipment=shipment, status="in_transit", occurred_at=at(4), source="api", eta=at(25), actor=SYSTEM)
    exception_open(
        type="delay",
        reason="INTERNAL-NOTE driver out of hours",
        shipment=shipment,
        details={"note": "INTERNAL-DETAIL margin"},
        actor=SYSTEM,
    )
    document_record(
        kind="pod",
        content=b"%PDF-1.4 pod SP-D-1",
        original_name="pod-SP-D-1.pdf",
        content_type="application/pdf",
        shipment=shipment,
        actor=SYSTEM,
    )
    document_record(kind="rate_confirmation", content=b"%PDF rate", original_name="ratecon-secret.pdf", shipment=shipment, actor=SYSTEM)
    document_record(
        kind="invoice",
        content=b"%PDF-1.4 invoice",
        original_name="invoice-SP-D-1.pdf",
        content_type="application/pdf",
        shipment=shipment,
        extracted_fields={"customer_invoice": "INV-2026-0042", "total": "1234.50", "currency": "USD"},
        actor=SYSTEM,
    )
    connection = Connection.objects.create(
        key=f"reefers-{uuid.uuid4().hex[:6]}", name="Reefers", kind="iot", transport="mqtt", base_url="mqtt://127.0.0.1:1883"
    )
    telemetry_subscription_create(connection=connection, topic_filter="fleet/+", actor=SYSTEM)
    message = {"device_id": "TRL-9", "shipment": "SP-D-1", "lat": 41.2, "lon": -95.9, "temperature": 3.5, "ts": at(5).isoformat()}
    telemetry_message_apply(connection_id=connection.pk, topic="fleet/TRL-9", payload=json.dumps(message).encode(), received_at=at(5))
    return shipment


def test_the_shipment_page_shows_timeline_stops_route_eta_exceptions_documents_and_invoices(world, acme, places):
    _journey(acme, places)
    response = client_for(world).get("/shipments/SP-D-1/")
    text = body(response)

    assert response.status_code == 200
    assert "<title>Shipment SP-D-1 · Acme Freight Hub</title>" in text  # the tenant's brand in the title
    assert "Arrived at pickup" in text and "Picked up" in text and "In transit" in text, text[text.index("<main") :]
    # the pickup in Chicago's time (CST, 08:30) and, where the tenant's zone differs, the viewer's too
    assert "8:30 a.m. CST" in text or "08:30" in text
    assert "Chicago DC" in text and "America/Denver" in text and "No appointment" not in text
    assert "4 h later" in text and "planned" in text  # the ETA moved from the planned 11:00 to 15:00 UTC
    assert "running late" in text and "INTERNAL-NOTE" not in text and "INTERNAL-DETAIL" not in text
    assert "Download Proof of delivery" in text and "ratecon-secret" not in text
    assert "INV-2026-0042" in text and "1,234.50" in text and "Download PDF" in text
    assert '<svg class="route-svg"' in text and "route-svg__position" in text and "3.5 °C" in text


def test_the_shipment_page_without_telemetry_documents_or_events_says_what_to_expect(world, acme, places):
    ship(acme, places, "SP-D-EMPTY")
    text = body(client_for(world).get("/shipments/SP-D-EMPTY/"))
    assert "No milestone yet" in text and "No tracking device reports on this shipment" in text
    assert "No proof of delivery or bill of lading yet" in text and "No invoice yet" in text
    assert "Nothing is wrong with this shipment." in text


def test_the_timeline_feed_sends_new_milestones_once_with_an_etag(world, acme, places):
    shipment = _journey(acme, places)
    customer = client_for(world)
    page = body(customer.get("/shipments/SP-D-1/"))
    since = re.search(r'data-since="(\d+)"', page).group(1)

    quiet = customer.get(f"/shipments/SP-D-1/timeline.json?since={since}")
    assert quiet.status_code == 200 and json.loads(quiet.content)["events"] == []
    unchanged = customer.get(f"/shipments/SP-D-1/timeline.json?since={since}", HTTP_IF_NONE_MATCH=quiet["ETag"])
    assert unchanged.status_code == 304

    tracking_event_record(shipment=shipment, status="out_for_delivery", occurred_at=at(18), source="api", actor=SYSTEM)
    fresh = customer.get(f"/shipments/SP-D-1/timeline.json?since={since}", HTTP_IF_NONE_MATCH=quiet["ETag"])
    payload = json.loads(fresh.content)
    assert fresh.status_code == 200 and fresh["ETag"] != quiet["ETag"]
    assert [event["announce"] for event in payload["events"]] == ["New milestone: Out for delivery"]
    assert "Out for delivery" in payload["events"][0]["html"] and int(payload["since"]) > int(since)
    assert "Out for delivery" in payload["regions"]["shipment-summary"]

    bad = customer.get("/shipments/SP-D-1/timeline.json?since=yesterday")
    assert bad.status_code == 400 and "whole number" in json.loads(bad.content)["error"]


# --- documents ------------------------------------------------------------------------------------


def _pod_link(page: str) -> str:
    return re.search(r'href="(/shipments/documents/[^"]+/)"[^>]*>Download Proof of delivery', page).group(1)


def test_a_pod_downloads_through_its_signed_link_with_its_file_name(world, acme, places):
    _journey(acme, places)
    customer = client_for(world)
    link = _pod_link(body(customer.get("/shipments/SP-D-1/")))

    response = customer.get(link)

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 pod SP-D-1"
    assert response["Content-Disposition"] == 'attachment; filename="pod-SP-D-1.pdf"'
    assert response["Content-Type"] == "application/pdf"
    # the link is the credential: a customer's system follows it without a session
    assert host_client(world.acme.host).get(link).status_code == 200


def test_an_expired_link_is_refused_with_a_page_that_says_what_to_do(world, acme, places, monkeypatch):
    _journey(acme, places)
    customer = client_for(world)
    link = _pod_link(body(customer.get("/shipments/SP-D-1/")))
    later = time.time() + shipment_views.DOCUMENT_LINK_SECONDS + 60
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)

    response = customer.get(link)

    assert response.status_code == 410
    assert "This download link has expired" in body(response) and "Open the shipment again" in body(response)


def test_a_link_of_another_account_or_workspace_or_a_changed_one_is_refused(world, acme, places):
    theirs = ship(acme, places, "SP-DOC-THEIRS", account=1)
    document = document_record(kind="pod", content=b"theirs", original_name="theirs.pdf", shipment=theirs, actor=SYSTEM).document
    staff_link = document_link(document, world.acme.users["planner"])
    their_link = document_link(document, other_customer(acme))
    customer = client_for(world)

    foreign_account = customer.get(staff_link)
    assert foreign_account.status_code == 403 and "for another account" in body(foreign_account)
    assert customer.get(their_link).status_code == 403
    changed = customer.get(their_link[:-6] + "AAAAA/")
    assert changed.status_code == 403 and "does not work here" in body(changed)
    on_globex = signed_in_client(world.globex.host, world.globex.users["tenant_admin"], world.globex.schema).get(their_link)
    assert on_globex.status_code == 403 and b"theirs" not in on_globex.content
