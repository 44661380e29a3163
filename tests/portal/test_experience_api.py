"""The Experience API (`/api/v1/shipments…`, `/invoices`, `/subscriptions`) as a customer's system
uses it: a key bound to one customer account sees that account only (another's shipment is 404,
not 403), cursors follow `next` and refuse edits and other searches, every GET has an ETag that
answers If-None-Match with 304, and each key has its own rate limit (429 with Retry-After)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import override_settings
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from logistics import shipment_reads as reads
from logistics.models import DocumentKind, MilestoneSubscription, StopKind
from logistics.services import StopInput, document_record, exception_open, location_create, shipment_create, tracking_event_record
from tests.conftest import host_client, signed_in_client
from tests.logistics.conftest import SYSTEM, hours

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(world):
    with schema_context(world.acme.schema):
        origin = location_create(code="x-chicago", name="Chicago DC", time_zone="America/Chicago", city="Chicago", actor=SYSTEM)
        destination = location_create(code="x-denver", name="Denver store", time_zone="America/Denver", city="Denver", actor=SYSTEM)
        world.acme.places = (origin, destination)  # type: ignore[attr-defined]
    return world.acme


def ship(acme, reference: str, *, account: int = 0, **extra):
    origin, destination = acme.places
    with schema_context(acme.schema):
        return shipment_create(
            customer_account=acme.customer_accounts[account],
            reference=reference,
            origin=origin,
            destination=destination,
            stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination, hours(40), hours(42))],
            actor=SYSTEM,
            **extra,
        )


def key(acme, *scopes: str, account: int | None = 0) -> str:
    with schema_context(acme.schema):
        bound = acme.customer_accounts[account].pk if account is not None else None
        _key, secret = api_key_create(
            name="customer ERP", scopes=list(scopes or ["shipments:read"]), customer_account_id=bound, actor=acme.users["tenant_admin"]
        )
    return secret


def get(acme, secret: str, path: str, **headers):
    return host_client(acme.host).get(path, HTTP_AUTHORIZATION=f"Api-Key {secret}", **headers)


def refs(response) -> list[str]:
    return [row["reference"] for row in response.json()["results"]]


# --- scoping ----------------------------------------------------------------------------------


def test_a_customer_key_sees_only_its_account(acme):
    mine = ship(acme, "XA-MINE-1", bol_number="BOL-MINE")
    theirs = ship(acme, "XA-THEIRS-1", account=1, bol_number="BOL-THEIRS")
    customer = key(acme)
    listed = get(acme, customer, "/api/v1/shipments?limit=200")
    assert listed.status_code == 200 and "XA-MINE-1" in refs(listed) and "XA-THEIRS-1" not in refs(listed)
    assert get(acme, customer, "/api/v1/shipments?q=BOL-THEIRS").json()["results"] == []
    for path in (
        "/api/v1/shipments/XA-THEIRS-1",
        f"/api/v1/shipments/{theirs.pk}",
        "/api/v1/shipments/BOL-THEIRS",
        "/api/v1/shipments/XA-THEIRS-1/tracking-events",
        "/api/v1/shipments/XA-THEIRS-1/documents",
    ):
        response = get(acme, customer, path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/problem+json"
        assert ("BOL-THEIRS" in path or "BOL-THEIRS" not in response.content.decode()) and "XA-THEIRS-1/" not in response.json()["detail"]
    own = get(acme, customer, "/api/v1/shipments/XA-MINE-1")
    assert own.status_code == 200 and own.json()["references"]["bol"] == "BOL-MINE"
    assert mine.pk and get(acme, customer, "/api/v1/shipments/BOL-MINE").json()["reference"] == "XA-MINE-1"


def test_staff_keys_and_sessions_see_every_account_and_customers_sessions_their_own(acme):
    ship(acme, "XB-A-1")
    ship(acme, "XB-B-1", account=1)
    staff = key(acme, account=None)
    assert {"XB-A-1", "XB-B-1"} <= set(refs(get(acme, staff, "/api/v1/shipments?limit=200")))
    only_b = get(acme, staff, f"/api/v1/shipments?customer={acme.customer_accounts[1].code}&limit=200")
    assert "XB-B-1" in refs(only_b) and "XB-A-1" not in refs(only_b)
    planner = signed_in_client(acme.host, acme.users["planner"], acme.schema)
    assert planner.get("/api/v1/shipments/XB-B-1").status_code == 200
    customer = signed_in_client(acme.host, acme.users["customer"], acme.schema)
    assert customer.get("/api/v1/shipments/XB-A-1").status_code == 200
    assert customer.get("/api/v1/shipments/XB-B-1").status_code == 404


def test_a_key_without_the_scope_is_refused(acme):
    ship(acme, "XC-1")
    response = get(acme, key(acme, "tenant:read"), "/api/v1/shipments")
    assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"
    assert "XC-1" not in response.content.decode()
    assert get(acme, key(acme, "tenant:read"), "/api/v1/invoices").status_code == 403
    assert host_client(acme.host).get("/api/v1/shipments").status_code in (401, 403)


# --- filters and pages ------------------------------------------------------------------------


def test_filters_and_sorts_work_through_the_query_string(acme):
    moving = ship(acme, "XD-1", mode="ltl", pro_number="PRO-XD1")
    ship(acme, "XD-2")
    with schema_context(acme.schema):
        tracking_event_record(shipment=moving, occurred_at=hours(2), source="api", status="in_transit", eta=hours(45), actor=SYSTEM)
        exception_open(type="delay", reason="internal", shipment=moving, actor=SYSTEM)
    secret = key(acme)
    assert refs(get(acme, secret, "/api/v1/shipments?status=in_transit&limit=200")) == ["XD-1"]
    assert refs(get(acme, secret, "/api/v1/shipments?status=pending,in_transit&mode=ltl")) == ["XD-1"]
    assert refs(get(acme, secret, "/api/v1/shipments?q=pro-xd1")) == ["XD-1"]
    assert "XD-1" in refs(get(acme, secret, "/api/v1/shipments?has_exception=true&destination=Denver&limit=200"))
    assert "XD-1" not in refs(get(acme, secret, "/api/v1/shipments?has_exception=false&limit=200"))
    row = get(acme, secret, "/api/v1/shipments?q=XD-1").json()["results"][0]
    assert row["late_by_minutes"] == 180 and row["promise"] == "delivery appointment" and row["has_open_exception"] is True
    assert row["origin"]["code"] == "x-chicago" and row["customer_account"]["id"] == acme.customer_accounts[0].pk


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("status=lost", "status"), ("sort=reference", "sort"), ("limit=500", "limit"), ("limit=x", "limit"), ("eta_from=soon", "eta_from")],
)
def test_bad_filters_are_a_problem_naming_the_parameter(acme, query, parameter):
    response = get(acme, key(acme), f"/api/v1/shipments?{query}")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/shipment-query-invalid") and problem["errors"][0]["parameter"] == parameter


@pytest.mark.parametrize("sort", ["-created_at", "eta"])
def test_following_next_visits_every_shipment_once_in_a_stable_order(acme, sort):
    for index in range(9):
        ship(acme, f"XE-{index}", eta=hours(index % 3) if index % 4 else None)
    secret = key(acme)
    seen, url, pages = [], f"/api/v1/shipments?limit=2&sort={sort}", 0
    while url:
        response = get(acme, secret, url)
        assert response.status_code == 200, response.content
        seen += [ref for ref in refs(response) if ref.startswith("XE-")]
        url = response.json()["next"]
        if url:
            assert response["Link"] == f'<{url}>; rel="next"'
            assert parse_qs(urlsplit(url).query)["sort"] == [sort]
        pages += 1
        assert pages < 50
    assert sorted(seen) == [f"XE-{index}" for index in range(9)] and len(seen) == len(set(seen))
    with schema_context(acme.schema):
        scope = reads.shipment_scope(acme.users["customer"]).filter(reference__startswith="XE-")
        expected = [row.shipment.reference for row in reads.shipments_page(scope, reads.ShipmentFilters(sort=sort), limit=50).rows]
    assert seen == expected


def test_a_changed_or_foreign_cursor_is_refused(acme):
    for index in range(3):
        ship(acme, f"XF-{index}")
    secret = key(acme)
    next_url = get(acme, secret, "/api/v1/shipments?limit=1").json()["next"]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    edited = cursor[:-4] + ("abcd" if not cursor.endswith("abcd") else "wxyz")
    for query in (f"cursor={edited}&limit=1", f"cursor={cursor}&limit=1&sort=eta", f"cursor={cursor}&limit=1&status=pending"):
        response = get(acme, secret, f"/api/v1/shipments?{query}")
        assert response.status_code == 400, query
        assert response.json()["type"].endswith("/cursor-invalid")
    other_account = key(acme, account=1)  # the same cursor under another account's scope
    assert get(acme, other_account, f"/api/v1/shipments?cursor={cursor}&limit=1").status_code == 400
    assert get(acme, secret, f"/api/v1/shipments?cursor={cursor}&limit=1").status_code == 200


# --- ETags ------------------------------------------------------------------------------------


def test_an_unchanged_resource_is_304_and_a_change_makes_a_new_etag(acme):
    shipment = ship(acme, "XG-1")
    with schema_context(acme.schema):
        document_record(kind=DocumentKind.POD, content=b"%PDF etag", original_name="pod.pdf", shipment=shipment, actor=SYSTEM)
    secret = key(acme)
    for path in ("/api/v1/shipments?q=XG-1", "/api/v1/shipments/XG-1", "/api/v1/shipments/XG-1/documents", "/api/v1/invoices"):
        first = get(acme, secret, path)
        etag = first["ETag"]
        assert first.status_code == 200 and etag.startswith('"')
        again = get(acme, secret, path, HTTP_IF_NONE_MATCH=etag)  # fresh download URLs do not count as a change
        assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag, path
        assert get(acme, secret, path, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    before = get(acme, secret, "/api/v1/shipments/XG-1/tracking-events")["ETag"]
    with schema_context(acme.schema):
        tracking_event_record(shipment=shipment, occurred_at=hours(1), source="api", status="picked_up", stop_sequence=1, actor=SYSTEM)
    changed = get(acme, secret, "/api/v1/shipments/XG-1/tracking-events", HTTP_IF_NONE_MATCH=before)
    assert changed.status_code == 200 and changed["ETag"] != before
    event = changed.json()["results"][0]
    assert event["status"] == "picked_up" and event["time_zone"] == "America/Chicago"
    assert event["occurred_at_local"].endswith("-06:00") and event["stop_sequence"] == 1
    newer = get(acme, secret, f"/api/v1/shipments/XG-1/tracking-events?since={event['id']}")
    assert newer.json()["results"] == []


# --- rate limit -------------------------------------------------------------------------------


def test_each_key_has_its_own_rate_limit(acme):
    ship(acme, "XH-1")
    busy, quiet = key(acme), key(acme)
    with override_settings(BATON_PLAN_RATE_LIMITS={"standard": 3}):
        assert [get(acme, busy, "/api/v1/shipments").status_code for _ in range(3)] == [200, 200, 200]
        limited = get(acme, busy, "/api/v1/shipments")
        assert limited.status_code == 429 and limited["Content-Type"] == "application/problem+json"
        assert int(limited["Retry-After"]) > 0 and limited.json()["type"].endswith("/rate-limited")
        assert get(acme, quiet, "/api/v1/shipments/XH-1").status_code == 200


# --- documents, invoices, subscriptions -------------------------------------------------------


def test_documents_come_with_a_signed_expiring_url_and_never_the_carriers_price(acme):
    shipment = ship(acme, "XI-1")
    with schema_context(acme.schema):
        pod = document_record(kind=DocumentKind.POD, content=b"%PDF xi", original_name="pod.pdf", shipment=shipment, actor=SYSTEM).document
        document_record(kind=DocumentKind.RATE_CONFIRMATION, content=b"rate", original_name="rc.pdf", shipment=shipment, actor=SYSTEM)
        invoice = document_record(
            kind=DocumentKind.INVOICE,
            content=b"%PDF inv",
            original_name="INV-XI-1-1.pdf",
            shipment=shipment,
            extracted_fields={"customer_invoice": "INV-XI-1-1", "total": "980.00", "currency": "USD"},
            actor=SYSTEM,
        ).document
    secret = key(acme)
    listed = get(acme, secret, "/api/v1/shipments/XI-1/documents").json()["results"]
    assert [(item["id"], item["kind"]) for item in listed] == [(pod.pk, "pod"), (invoice.pk, "invoice")]
    url = listed[0]["download_url"]
    assert url.startswith("http://acme.localhost/")
    token = url.rstrip("/").rsplit("/", 1)[1]
    with schema_context(acme.schema):
        assert reads.document_from_link(token).pk == pod.pk
    assert listed[0]["download_expires_at"]
    invoices = get(acme, secret, "/api/v1/invoices").json()["results"]
    assert [(item["number"], item["shipment"], item["total"], item["status"]) for item in invoices] == [
        ("INV-XI-1-1", "XI-1", "980.00", "issued")
    ]
    assert get(acme, key(acme, account=1), "/api/v1/invoices").json()["results"] == []
    detail = get(acme, secret, "/api/v1/shipments/XI-1").json()
    assert [item["kind"] for item in detail["documents"]] == ["pod"] and detail["invoices"][0]["number"] == "INV-XI-1-1"
    assert "rate" not in {item["kind"] for item in detail["documents"]}


def test_the_detail_never_shows_an_exceptions_internals(acme):
    shipment = ship(acme, "XJ-1")
    with schema_context(acme.schema):
        exception_open(type="damage", reason="INTERNAL forklift driver", details={"note": "INTERNAL"}, shipment=shipment, actor=SYSTEM)
    body = get(acme, key(acme), "/api/v1/shipments/XJ-1")
    assert body.status_code == 200 and "INTERNAL" not in body.content.decode()
    assert body.json()["exceptions"][0]["message"].startswith("Damage was reported")


def test_subscriptions_are_the_callers_own(acme):
    secret = key(acme, "subscriptions:read", "subscriptions:write")
    other = key(acme, "subscriptions:read", "subscriptions:write", account=1)
    body = {"milestones": ["delivered"], "channel": "email", "email": "ops@customer.test", "time_zone": "UTC"}
    created = host_client(acme.host).post(
        "/api/v1/subscriptions", body, content_type="application/json", HTTP_AUTHORIZATION=f"Api-Key {secret}"
    )
    assert created.status_code == 201, created.content
    assert created.json()["customer_account"] == acme.customer_accounts[0].pk
    refused = host_client(acme.host).post(
        "/api/v1/subscriptions",
        {**body, "customer_account": acme.customer_accounts[1].pk},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {secret}",
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["pointer"] == "/customer_account"
    with schema_context(acme.schema):
        assert not MilestoneSubscription.objects.filter(customer_account=acme.customer_accounts[1]).exists()
    mine = get(acme, secret, "/api/v1/subscriptions").json()["results"]
    assert [item["id"] for item in mine] == [created.json()["id"]]
    assert get(acme, other, f"/api/v1/subscriptions?customer_account={acme.customer_accounts[0].pk}").json()["results"] == []
    staff = key(acme, "subscriptions:write", account=None)
    unnamed = host_client(acme.host).post(
        "/api/v1/subscriptions", body, content_type="application/json", HTTP_AUTHORIZATION=f"Api-Key {staff}"
    )
    assert unnamed.status_code == 422 and "Name the customer account" in unnamed.json()["detail"]


def test_the_schema_lists_every_experience_route(acme):
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for route in (
        "/api/v1/shipments",
        "/api/v1/shipments/{reference}",
        "/api/v1/shipments/{reference}/tracking-events",
        "/api/v1/shipments/{reference}/documents",
        "/api/v1/invoices",
        "/api/v1/subscriptions",
    ):
        assert route in paths, route
    assert timedelta(seconds=reads.DOCUMENT_LINK_TTL) == timedelta(minutes=10)
