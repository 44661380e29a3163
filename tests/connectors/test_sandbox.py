"""The sandbox partner systems over real HTTP on loopback: each system's endpoints, Idempotency-Key,
every switchable fault, and the carrier's pushed webhooks verified with `connectors.signatures`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from connectors.sandbox import SYSTEMS, CarrierSandbox, ErpSandbox, Problem, TmsSandbox, WmsSandbox, sandbox
from connectors.signatures import EASYPOST, STANDARD_WEBHOOKS, SigningSecret, generate_secret
from tests.processes import free_port

TENDER = {
    "shipment_reference": "SH-77",
    "origin": {"city": "Memphis", "country": "US"},
    "destination": {"city": "Dallas", "country": "US"},
    "pickup_date": "2025-07-02",
    "weight_kg": 9_500,
}
RELEASE = {
    "order_number": "SO-1001",
    "ship_to": {"name": "Northwind Retail", "city": "Dallas", "country": "US"},
    "lines": [{"sku": "SKU-PALLET-A", "quantity": 12}, {"sku": "SKU-CARTON-B", "quantity": 40}],
}


def problem(answer: requests.Response) -> dict:
    assert answer.headers["Content-Type"] == "application/problem+json", answer.text
    return answer.json()


# --- a webhook receiver that keeps the raw bytes a signature is computed over -----------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers webhook POSTs with the scripted `statuses` (then 200) and keeps every one received."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/carrier"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"received {len(self.received)} webhooks within {timeout} s, expected {count}")

    def events(self) -> list[dict]:
        with self._lock:
            return [json.loads(item.body) for item in self.received]


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def secret():
    return generate_secret()


@pytest.fixture
def carrier(receiver, secret):
    with CarrierSandbox(webhook_url=receiver.url, webhook_secrets=[secret], webhook_retry_seconds=0.05) as running:
        yield running


# --- ERP ---------------------------------------------------------------------------------------------


@pytest.fixture
def erp():
    with ErpSandbox() as running:
        yield running


def test_erp_lists_orders_by_status_a_page_at_a_time(erp):
    everything = requests.get(f"{erp.url}/api/orders", timeout=5).json()
    assert [order["number"] for order in everything["orders"]] == ["SO-1001", "SO-1002", "SO-1003", "SO-1004"]
    page = requests.get(f"{erp.url}/api/orders", params={"status": "open", "limit": 2}, timeout=5).json()
    assert ([o["number"] for o in page["orders"]], page["count"], page["next_offset"]) == (["SO-1001", "SO-1002"], 3, 2)
    last = requests.get(f"{erp.url}/api/orders", params={"status": "open", "limit": 2, "offset": 2}, timeout=5).json()
    assert ([o["number"] for o in last["orders"]], last["next_offset"]) == (["SO-1003"], None)
    bad = requests.get(f"{erp.url}/api/orders", params={"limit": "ten"}, timeout=5)
    assert bad.status_code == 400 and problem(bad)["detail"] == "limit and offset must be whole numbers"


def test_erp_reads_one_order_and_says_which_one_it_does_not_know(erp):
    order = requests.get(f"{erp.url}/api/orders/SO-1002", timeout=5).json()
    assert order["customer"] == "Contoso Foods" and order["lines"] == [{"line": 1, "sku": "SKU-REEFER-C", "quantity": 6, "uom": "EA"}]
    missing = requests.get(f"{erp.url}/api/orders/SO-9999", timeout=5)
    assert missing.status_code == 404
    assert problem(missing) == {
        "type": "urn:baton:sandbox:order-not-found",
        "title": "Order not found",
        "status": 404,
        "detail": "the ERP has no order SO-9999",
    }


def test_erp_order_confirmation_happens_once_per_idempotency_key(erp):
    url = f"{erp.url}/api/orders/SO-1001/confirmations"
    first = requests.post(url, json={"decision": "accepted", "reference": "BATON-41"}, headers={"Idempotency-Key": "k-1"}, timeout=5)
    again = requests.post(url, json={"decision": "accepted", "reference": "BATON-41"}, headers={"Idempotency-Key": "k-1"}, timeout=5)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and first.json()["confirmation_id"] == "CNF-0001"
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert [effect.reference for effect in erp.effects_for("order_confirmation")] == ["CNF-0001"]
    assert requests.get(f"{erp.url}/api/orders/SO-1001", timeout=5).json()["status"] == "confirmed"

    reused = requests.post(url, json={"decision": "rejected"}, headers={"Idempotency-Key": "k-1"}, timeout=5)
    assert reused.status_code == 422 and problem(reused)["type"] == "urn:baton:sandbox:idempotency-key-reused"
    twice = requests.post(url, json={"decision": "accepted"}, headers={"Idempotency-Key": "k-2"}, timeout=5)
    assert twice.status_code == 409 and problem(twice)["detail"] == "order SO-1001 was already accepted (CNF-0001)"
    assert len(erp.effects) == 1


def test_erp_confirmation_names_every_invalid_field(erp):
    answer = requests.post(f"{erp.url}/api/orders/SO-1002/confirmations", json={"decision": "maybe", "note": 3}, timeout=5)
    body = problem(answer)
    assert answer.status_code == 422 and body["type"] == "urn:baton:sandbox:invalid-params"
    assert body["invalid_params"] == [
        {"name": "decision", "reason": "must be one of accepted, rejected"},
        {"name": "note", "reason": "must be a string"},
    ]
    assert body["detail"] == "decision must be one of accepted, rejected; note must be a string"
    assert erp.effects == []


def test_erp_inventory_snapshot(erp):
    snapshot = requests.get(f"{erp.url}/api/inventory", timeout=5).json()
    assert snapshot["site"] == "ERP-MAIN" and snapshot["as_of"].endswith("Z")
    assert {item["sku"]: item["on_hand"] for item in snapshot["items"]} == {"SKU-CARTON-B": 2300, "SKU-PALLET-A": 140, "SKU-REEFER-C": 48}


NEW_ORDER = {
    "number": "SO-2001",
    "customer": "Coyote Supplies",
    "ship_to": {"name": "Phoenix store", "city": "Phoenix", "country": "US"},
    "lines": [{"sku": "SKU-PALLET-A", "quantity": 4}],
}


def test_erp_takes_a_new_order_once_and_says_when_the_number_is_taken(erp):
    placed = requests.post(f"{erp.url}/api/orders", json=NEW_ORDER, headers={"Idempotency-Key": "o-1"}, timeout=5)
    assert placed.status_code == 201, placed.text
    assert (placed.json()["status"], placed.json()["lines"]) == ("open", [{"line": 1, "sku": "SKU-PALLET-A", "quantity": 4, "uom": "EA"}])
    again = requests.post(f"{erp.url}/api/orders", json=NEW_ORDER, headers={"Idempotency-Key": "o-1"}, timeout=5)
    assert again.headers["Idempotent-Replayed"] == "true" and [e.reference for e in erp.effects_for("order")] == ["SO-2001"]
    taken = requests.post(f"{erp.url}/api/orders", json=NEW_ORDER, headers={"Idempotency-Key": "o-2"}, timeout=5)
    assert taken.status_code == 409 and problem(taken)["detail"] == "the ERP already has an order SO-2001"
    assert requests.get(f"{erp.url}/api/orders/SO-2001", timeout=5).json()["customer"] == "Coyote Supplies"

    bad = requests.post(f"{erp.url}/api/orders", json={"number": "SO-2002", "lines": [{"sku": "A", "quantity": 0}]}, timeout=5)
    assert bad.status_code == 422
    assert problem(bad)["detail"] == (
        "customer is required; ship_to is required; ship_to.name is required; ship_to.city is required; "
        "ship_to.country is required; lines[0].quantity must be greater than 0"
    )


def test_erp_confirms_an_order_named_in_the_body_as_a_connections_fixed_path_sends_it(erp):
    url = f"{erp.url}/api/order-confirmations"
    body = {"order_number": "SO-1002", "decision": "accepted", "reference": "SHP-SO-1002"}
    confirmed = requests.post(url, json=body, headers={"Idempotency-Key": "c-1"}, timeout=5)
    assert confirmed.status_code == 201 and confirmed.json()["order"] == "SO-1002"
    assert requests.get(f"{erp.url}/api/orders/SO-1002", timeout=5).json()["status"] == "confirmed"
    unknown = requests.post(url, json={**body, "order_number": "SO-9"}, timeout=5)
    assert unknown.status_code == 404 and problem(unknown)["detail"] == "the ERP has no order SO-9"
    nameless = requests.post(url, json={"decision": "accepted"}, timeout=5)
    assert nameless.status_code == 422 and problem(nameless)["detail"] == "order_number is required"


def test_erp_imports_a_customer_invoice_once_with_its_own_reference(erp):
    invoice = {"invoice": {"number": "INV-7", "total": "1650.00", "document": {"content_base64": "JVBERi0="}}}
    imported = requests.post(f"{erp.url}/api/invoices", json=invoice, headers={"Idempotency-Key": "i-1"}, timeout=5)
    assert imported.status_code == 201 and imported.json() == {"reference": "AR-00001", "number": "INV-7"}
    assert requests.get(f"{erp.url}/api/invoices/INV-7", timeout=5).json()["reference"] == "AR-00001"
    twice = requests.post(f"{erp.url}/api/invoices", json=invoice, headers={"Idempotency-Key": "i-2"}, timeout=5)
    assert twice.status_code == 409 and problem(twice)["detail"] == "invoice INV-7 was imported already as AR-00001"
    no_pdf = requests.post(f"{erp.url}/api/invoices", json={"invoice": {"number": "INV-8", "total": "1"}}, timeout=5)
    assert (
        no_pdf.status_code == 422
        and problem(no_pdf)["detail"] == "invoice.document is required; invoice.document.content_base64 is required"
    )
    assert requests.get(f"{erp.url}/api/invoices/INV-8", timeout=5).status_code == 404


ADJUSTMENT = {
    "adjustments": [{"sku": "SKU-PALLET-A", "location": "dallas-dc", "quantity": 139, "adjust_by": -1, "unit": "each"}],
    "source_of_truth": "wms",
    "reason": "Inventory sync: within tolerance, adjusted to the source of truth",
}


def test_erp_adjusts_inventory_once_per_key_and_refuses_going_negative_or_a_closed_period(erp):
    url = f"{erp.url}/api/inventory/adjustments"
    adjusted = requests.post(url, json=ADJUSTMENT, headers={"Idempotency-Key": "adj-1"}, timeout=5)
    assert adjusted.status_code == 201 and adjusted.json() == {"adjustment_id": "ADJ-0001", "lines": 1, "on_hand": {"SKU-PALLET-A": 139}}
    again = requests.post(url, json=ADJUSTMENT, headers={"Idempotency-Key": "adj-1"}, timeout=5)
    assert again.headers["Idempotent-Replayed"] == "true"
    [effect] = erp.effects_for("inventory_adjustment")
    assert (effect.reference, effect.payload, effect.idempotency_key) == ("ADJ-0001", ADJUSTMENT, "adj-1")
    stock = {item["sku"]: item["on_hand"] for item in requests.get(f"{erp.url}/api/inventory", timeout=5).json()["items"]}
    assert stock["SKU-PALLET-A"] == 139

    new_sku = requests.post(url, json={"adjustments": [{"sku": "SKU-NEW-D", "adjust_by": 5}]}, timeout=5)
    assert new_sku.status_code == 201 and erp.inventory["SKU-NEW-D"] == 5  # book inventory takes an item it did not hold
    below = requests.post(
        url, json={"adjustments": [{"sku": "SKU-REEFER-C", "adjust_by": -49}, {"sku": "SKU-PALLET-A", "adjust_by": 1}]}, timeout=5
    )
    assert below.status_code == 409 and problem(below)["detail"] == "the ERP cannot adjust below zero: SKU-REEFER-C would be -1"
    assert (erp.inventory["SKU-REEFER-C"], erp.inventory["SKU-PALLET-A"]) == (48, 139)  # refused whole
    bad = requests.post(url, json={"adjustments": [{"sku": "SKU-PALLET-A", "adjust_by": 0}, {"adjust_by": 1.5}]}, timeout=5)
    assert bad.status_code == 422 and problem(bad)["invalid_params"] == [
        {"name": "adjustments[0].adjust_by", "reason": "must not be 0: there is nothing to adjust"},
        {"name": "adjustments[1].sku", "reason": "is required"},
        {"name": "adjustments[1].adjust_by", "reason": "must be a whole number"},
    ]
    assert problem(requests.post(url, json={"adjustments": []}, timeout=5))["detail"] == "adjustments must be a non-empty list"

    erp.inventory_locked = "the period is closed until the month-end count"
    locked = requests.post(url, json=ADJUSTMENT, headers={"Idempotency-Key": "adj-2"}, timeout=5)
    assert locked.status_code == 409 and problem(locked)["detail"] == "the period is closed until the month-end count"
    assert len(erp.effects_for("inventory_adjustment")) == 2 and erp.inventory["SKU-PALLET-A"] == 139


def test_erp_keeps_each_webhook_from_baton_once_and_refuses_one_without_its_headers(erp):
    secret = generate_secret()
    body = json.dumps(
        {"type": "inventory.position", "id": "k1:acme-c0", "timestamp": "2026-03-02T10:00:00+00:00", "data": {"positions": []}}
    )
    headers = {
        "Content-Type": "application/json",
        **STANDARD_WEBHOOKS.sign(body.encode(), secrets=[SigningSecret(secret)], webhook_id="msg_1"),
    }
    first = requests.post(f"{erp.url}/api/events", data=body, headers=headers, timeout=5)
    again = requests.post(f"{erp.url}/api/events", data=body, headers=headers, timeout=5)  # a redelivery: same webhook id
    assert (first.status_code, first.json(), again.json()) == (
        200,
        {"received": "msg_1", "duplicate": False},
        {"received": "msg_1", "duplicate": True},
    )
    [effect] = erp.effects_for("webhook")
    assert (effect.reference, effect.payload["type"], effect.payload["webhook_id"], effect.payload["data"]) == (
        "k1:acme-c0",
        "inventory.position",
        "msg_1",
        {"positions": []},
    )
    unsigned = requests.post(f"{erp.url}/api/events", json={"type": "shipment.milestone", "id": "m2"}, timeout=5)
    assert unsigned.status_code == 422 and problem(unsigned)["detail"] == (
        "data is required; headers webhook-id and webhook-signature are required (Standard Webhooks)"
    )
    assert len(erp.effects_for("webhook")) == 1


# --- TMS ---------------------------------------------------------------------------------------------


def test_tms_tender_needs_an_idempotency_key(  # a strict partner: no key, no tender
):
    with TmsSandbox() as tms:
        answer = requests.post(f"{tms.url}/api/tenders", json=TENDER, timeout=5)
        assert answer.status_code == 400 and problem(answer)["detail"] == "POST /api/tenders needs an Idempotency-Key header"
        assert tms.effects == []


def test_tms_tender_with_the_same_key_gives_the_same_tender_and_one_effect():
    with TmsSandbox() as tms:
        answers = [
            requests.post(f"{tms.url}/api/tenders", json=TENDER, headers={"Idempotency-Key": "run-9:tender"}, timeout=5) for _ in range(3)
        ]
        assert {answer.json()["tender_id"] for answer in answers} == {"TND-000001"}
        assert answers[0].json()["status"] == "pending"
        assert len(tms.effects_for("tender")) == 1
        other = requests.post(f"{tms.url}/api/tenders", json=TENDER, headers={"Idempotency-Key": "run-10:tender"}, timeout=5)
        assert other.json()["tender_id"] == "TND-000002"


def test_tms_tender_status_is_decided_after_the_decision_delay():
    with TmsSandbox(decision_seconds=60) as tms:
        created = requests.post(f"{tms.url}/api/tenders", json=TENDER, headers={"Idempotency-Key": "a"}, timeout=5).json()
        status_url = f"{tms.url}/api/tenders/{created['tender_id']}"
        assert requests.get(status_url, timeout=5).json()["status"] == "pending"
        tms.decision_seconds = 0  # the minute has passed
        decided = requests.get(status_url, timeout=5).json()
        assert (decided["status"], decided["carrier"], decided["pro_number"]) == ("accepted", "SBXF", "PRO000001")


def test_tms_rejects_a_load_heavier_than_a_truck_saying_why():
    with TmsSandbox() as tms:
        created = requests.post(f"{tms.url}/api/tenders", json={**TENDER, "weight_kg": 24_000}, headers={"Idempotency-Key": "b"}, timeout=5)
        decided = requests.get(f"{tms.url}/api/tenders/{created.json()['tender_id']}", timeout=5).json()
        assert (decided["status"], decided["reason"]) == ("rejected", "24000 kg is over the 20000 kg a truck carries")
        assert requests.get(f"{tms.url}/api/tenders/TND-404", timeout=5).status_code == 404


def test_tms_tender_validation_names_nested_fields():
    with TmsSandbox() as tms:
        broken = {**TENDER, "origin": {"country": "US"}, "weight_kg": -1, "equipment": "tanker"}
        answer = requests.post(f"{tms.url}/api/tenders", json=broken, headers={"Idempotency-Key": "c"}, timeout=5)
        assert answer.status_code == 422
        assert problem(answer)["invalid_params"] == [
            {"name": "origin.city", "reason": "is required"},
            {"name": "weight_kg", "reason": "must be greater than 0"},
            {"name": "equipment", "reason": "must be one of dry_van, reefer, flatbed"},
        ]


# --- WMS ---------------------------------------------------------------------------------------------


def test_wms_release_allocates_then_ships_with_a_945_like_confirmation():
    with WmsSandbox(ship_seconds=60) as wms:
        released = requests.post(f"{wms.url}/api/releases", json=RELEASE, headers={"Idempotency-Key": "rel-1"}, timeout=5)
        assert released.status_code == 201
        release_id = released.json()["release_id"]
        assert released.json()["status"] == "released"
        stock = {item["sku"]: item for item in requests.get(f"{wms.url}/api/inventory", timeout=5).json()["items"]}
        assert (stock["SKU-PALLET-A"]["on_hand"], stock["SKU-PALLET-A"]["allocated"], stock["SKU-PALLET-A"]["available"]) == (140, 12, 128)
        early = requests.get(f"{wms.url}/api/releases/{release_id}/shipment-confirmation", timeout=5)
        assert early.status_code == 409 and problem(early)["detail"] == f"release {release_id} is released; it has not shipped yet"

        wms.ship_seconds = 0  # the minute has passed
        confirmation = requests.get(f"{wms.url}/api/releases/{release_id}/shipment-confirmation", timeout=5).json()
        assert confirmation["order_number"] == "SO-1001" and confirmation["tracking_number"] == "SBX0000010001"
        assert confirmation["lines"] == [
            {"line": 1, "sku": "SKU-PALLET-A", "shipped_quantity": 12},
            {"line": 2, "sku": "SKU-CARTON-B", "shipped_quantity": 40},
        ]
        stock = {item["sku"]: item for item in requests.get(f"{wms.url}/api/inventory", timeout=5).json()["items"]}
        assert (stock["SKU-PALLET-A"]["on_hand"], stock["SKU-PALLET-A"]["allocated"]) == (128, 0)
        assert requests.get(f"{wms.url}/api/releases/{release_id}", timeout=5).json()["status"] == "shipped"


def test_wms_refuses_unknown_skus_and_short_stock_naming_the_line():
    with WmsSandbox() as wms:
        lines = [{"sku": "SKU-REEFER-C", "quantity": 30}, {"sku": "SKU-REEFER-C", "quantity": 30}, {"sku": "SKU-NOPE", "quantity": 1}]
        answer = requests.post(f"{wms.url}/api/releases", json={**RELEASE, "lines": lines}, timeout=5)
        assert answer.status_code == 422
        assert problem(answer)["invalid_params"] == [
            {"name": "lines[1].quantity", "reason": "60 SKU-REEFER-C wanted, 48 available"},
            {"name": "lines[2].sku", "reason": "SKU-NOPE is not stocked at DAL1"},
        ]
        assert wms.effects == [] and wms.stock["SKU-REEFER-C"]["allocated"] == 0


def test_wms_release_with_a_repeated_key_allocates_once():
    with WmsSandbox(ship_seconds=60) as wms:
        for _ in range(2):
            requests.post(f"{wms.url}/api/releases", json=RELEASE, headers={"Idempotency-Key": "rel-2"}, timeout=5)
        assert wms.stock["SKU-CARTON-B"]["allocated"] == 40 and len(wms.effects) == 1


def test_wms_receives_goods_into_stock_naming_what_it_does_not_stock():
    with WmsSandbox() as wms:
        receipt = {"reference": "ASN-1", "lines": [{"sku": "SKU-REEFER-C", "quantity": 20}]}
        received = requests.post(f"{wms.url}/api/receipts", json=receipt, headers={"Idempotency-Key": "asn-1"}, timeout=5)
        assert received.status_code == 201 and received.json()["lines"] == [{"sku": "SKU-REEFER-C", "quantity": 20, "on_hand": 68}]
        requests.post(f"{wms.url}/api/receipts", json=receipt, headers={"Idempotency-Key": "asn-1"}, timeout=5)
        assert wms.stock["SKU-REEFER-C"]["on_hand"] == 68 and len(wms.effects_for("receipt")) == 1
        lines = [{"sku": "SKU-REEFER-C", "quantity": 60}]
        assert requests.post(f"{wms.url}/api/releases", json={**RELEASE, "lines": lines}, timeout=5).status_code == 201
        unknown = requests.post(
            f"{wms.url}/api/receipts", json={"reference": "ASN-2", "lines": [{"sku": "SKU-NOPE", "quantity": 1}]}, timeout=5
        )
        assert unknown.status_code == 422 and problem(unknown)["detail"] == "lines[0].sku SKU-NOPE is not stocked at DAL1"


def test_wms_adjusts_on_hand_never_below_what_is_allocated_and_only_what_it_stocks():
    with WmsSandbox(ship_seconds=60) as wms:
        url = f"{wms.url}/api/inventory/adjustments"
        adjusted = requests.post(
            url, json={"adjustments": [{"sku": "SKU-REEFER-C", "adjust_by": -18}]}, headers={"Idempotency-Key": "cc-1"}, timeout=5
        )
        assert adjusted.status_code == 201 and adjusted.json() == {
            "adjustment_id": "CC-00001",
            "site": "DAL1",
            "lines": 1,
            "on_hand": {"SKU-REEFER-C": 30},
        }
        requests.post(
            url, json={"adjustments": [{"sku": "SKU-REEFER-C", "adjust_by": -18}]}, headers={"Idempotency-Key": "cc-1"}, timeout=5
        )
        assert wms.stock["SKU-REEFER-C"]["on_hand"] == 30 and len(wms.effects_for("inventory_adjustment")) == 1
        assert requests.post(f"{wms.url}/api/releases", json={**RELEASE, "lines": [{"sku": "SKU-REEFER-C", "quantity": 25}]}, timeout=5).ok
        short = requests.post(url, json={"adjustments": [{"sku": "SKU-REEFER-C", "adjust_by": -6}]}, timeout=5)
        assert short.status_code == 409
        assert problem(short)["detail"] == "the WMS cannot adjust below what is allocated: SKU-REEFER-C would hold 24, 25 allocated"
        unknown = requests.post(url, json={"adjustments": [{"sku": "SKU-NOPE", "adjust_by": 3}]}, timeout=5)
        assert unknown.status_code == 422 and problem(unknown)["detail"] == "adjustments[0].sku SKU-NOPE is not stocked at DAL1"
        assert wms.stock["SKU-REEFER-C"]["on_hand"] == 30 and "SKU-NOPE" not in wms.stock


# --- faults (the same machinery in every system) --------------------------------------------------------


def test_injected_failures_answer_5xx_with_retry_after_and_do_nothing_until_they_run_out():
    with TmsSandbox() as tms:
        tms.set_faults(fail_next=2)
        answers = [requests.post(f"{tms.url}/api/tenders", json=TENDER, headers={"Idempotency-Key": "k"}, timeout=5) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [503, 503, 201]
        assert answers[0].headers["Retry-After"] == "1" and problem(answers[0])["type"] == "urn:baton:sandbox:injected-failure"
        assert len(tms.effects) == 1 and [request.fault for request in tms.requests] == ["fail", "fail", ""]


def test_injected_failure_status_is_switchable():
    with ErpSandbox() as erp:
        erp.set_faults(fail_next=1, fail_status=502)
        assert requests.get(f"{erp.url}/api/inventory", timeout=5).status_code == 502
        assert requests.get(f"{erp.url}/api/inventory", timeout=5).status_code == 200


def test_latency_slows_every_answer():
    with ErpSandbox() as erp:
        erp.set_faults(latency=0.3)
        started = time.monotonic()
        assert requests.get(f"{erp.url}/api/orders/SO-1001", timeout=5).status_code == 200
        assert time.monotonic() - started >= 0.3


def test_a_hang_times_the_caller_out_after_the_effect_and_a_retry_with_the_same_key_replays_it():
    with TmsSandbox() as tms:
        tms.set_faults(hang_next=1, hang_seconds=5)
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(f"{tms.url}/api/tenders", json=TENDER, headers={"Idempotency-Key": "slow"}, timeout=0.5)
        retried = requests.post(f"{tms.url}/api/tenders", json=TENDER, headers={"Idempotency-Key": "slow"}, timeout=5)
        assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
        assert retried.json()["tender_id"] == "TND-000001" and len(tms.effects) == 1


def test_faults_are_switched_through_the_admin_endpoint_which_is_never_faulted():
    with WmsSandbox() as wms:
        switched = requests.post(f"{wms.url}/_sandbox/faults", json={"fail_next": 1, "latency": 0.05}, timeout=5)
        assert switched.status_code == 200 and (switched.json()["fail_next"], switched.json()["latency"]) == (1, 0.05)
        assert requests.get(f"{wms.url}/_sandbox/faults", timeout=5).json()["fail_next"] == 1  # admin: not failed
        assert requests.get(f"{wms.url}/api/inventory", timeout=5).status_code == 503
        assert requests.get(f"{wms.url}/_sandbox/faults", timeout=5).json()["fail_next"] == 0
        cleared = requests.delete(f"{wms.url}/_sandbox/faults", timeout=5).json()
        assert cleared["latency"] == 0.0 and wms.faults.latency == 0.0


@pytest.mark.parametrize(
    ("faults", "detail"),
    [
        ({"fail_next": "two"}, "fault 'fail_next' must be a whole number, not 'two'"),
        ({"fail_next": -1}, "fault 'fail_next' cannot be negative"),
        ({"fail_status": 404}, "fail_status must be a 5xx status, not 404"),
        ({"explode": True}, "unknown fault 'explode'"),
        ({"duplicate_webhooks": True}, "the erp sandbox sends no webhooks"),
    ],
)
def test_invalid_faults_are_refused_saying_why(faults, detail):
    with ErpSandbox() as erp:
        answer = requests.post(f"{erp.url}/_sandbox/faults", json=faults, timeout=5)
        assert answer.status_code == 422 and problem(answer)["detail"].startswith(detail)


def test_unknown_paths_wrong_methods_and_bad_json_get_problem_answers():
    with ErpSandbox() as erp:
        assert problem(requests.get(f"{erp.url}/api/nothing", timeout=5))["status"] == 404
        wrong = requests.delete(f"{erp.url}/api/orders/SO-1001", timeout=5)
        assert wrong.status_code == 405 and problem(wrong)["detail"] == "/api/orders/SO-1001 answers GET, not DELETE"
        bad = requests.post(f"{erp.url}/api/orders/SO-1001/confirmations", data=b"{nope", timeout=5)
        assert bad.status_code == 400 and problem(bad)["title"] == "Body is not JSON"


def test_effects_are_listed_for_the_demo():
    with ErpSandbox() as erp:
        requests.post(
            f"{erp.url}/api/orders/SO-1003/confirmations", json={"decision": "rejected"}, headers={"Idempotency-Key": "z"}, timeout=5
        )
        (effect,) = requests.get(f"{erp.url}/_sandbox/effects", timeout=5).json()["effects"]
        assert (effect["action"], effect["reference"], effect["idempotency_key"]) == ("order_confirmation", "CNF-0001", "z")


def test_a_sandbox_listens_on_loopback_only_and_names_are_checked():
    with pytest.raises(ValueError, match="loopback only"):
        ErpSandbox(host="0.0.0.0")
    with pytest.raises(ValueError, match="choose one of erp, tms, wms, carrier"), sandbox("crm"):
        pass
    with sandbox("wms") as wms:
        assert requests.get(f"{wms.url}/api/inventory", timeout=5).json()["site"] == "DAL1"


def test_the_command_line_starts_a_system_on_the_given_port():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "connectors.sandbox", "tms", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == (
            f"TMS sandbox (load tenders) on http://127.0.0.1:{port} (faults: http://127.0.0.1:{port}/_sandbox/faults; Ctrl-C stops)"
        )
        answer = requests.post(f"http://127.0.0.1:{port}/api/tenders", json=TENDER, headers={"Idempotency-Key": "cli"}, timeout=5)
        assert answer.json()["tender_id"] == "TND-000001"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0  # SIGTERM stops it cleanly


# --- carrier -------------------------------------------------------------------------------------------


def test_carrier_tracking_lookup(carrier):
    tracker = requests.get(f"{carrier.url}/api/trackers/SBX0000000001", timeout=5).json()
    assert (tracker["object"], tracker["status"], tracker["carrier"]) == ("Tracker", "pre_transit", "SBXF")
    assert tracker["tracking_details"][0]["tracking_location"]["city"] == "MEMPHIS"
    assert requests.get(f"{carrier.url}/api/trackers/NOPE", timeout=5).status_code == 404


def test_carrier_pushes_standard_webhooks_that_verify_with_our_signatures_module(carrier, receiver, secret):
    created = requests.post(f"{carrier.url}/api/trackers", json={"tracking_code": "SBX42"}, headers={"Idempotency-Key": "t"}, timeout=5)
    assert created.status_code == 201
    carrier.advance("SBX42")
    first, second = receiver.wait_for(2)
    for delivery in (first, second):
        verification = STANDARD_WEBHOOKS.verify(delivery.body, delivery.headers, [secret])
        assert verification.valid, verification.detail
        assert verification.webhook_id == json.loads(delivery.body)["id"]
        assert delivery.path == "/hooks/carrier" and delivery.headers["Content-Type"] == "application/json"
    events = receiver.events()
    assert [(event["description"], event["result"]["status"]) for event in events] == [
        ("tracker.created", "pre_transit"),
        ("tracker.updated", "in_transit"),
    ]
    assert events[1]["previous_attributes"] == {"status": "pre_transit"} and events[1]["result"]["tracking_code"] == "SBX42"
    assert not STANDARD_WEBHOOKS.verify(first.body, first.headers, [generate_secret()])


def test_carrier_signs_with_both_secrets_while_rotating(receiver):
    current, previous = generate_secret(), generate_secret()
    rotating = [current, SigningSecret(previous, expires_at=datetime.now(tz=UTC) + timedelta(hours=24))]
    with CarrierSandbox(webhook_url=receiver.url, webhook_secrets=rotating) as carrier:
        carrier.advance("SBX0000000001")
        (delivery,) = receiver.wait_for(1)
    assert len(delivery.headers["webhook-signature"].split()) == 2
    assert STANDARD_WEBHOOKS.verify(delivery.body, delivery.headers, [previous]).valid


def test_carrier_can_sign_like_easypost(receiver):
    with CarrierSandbox(webhook_url=receiver.url, webhook_secrets=["easypost-secret"], webhook_scheme="easypost") as carrier:
        carrier.advance("SBX0000000001")
        (delivery,) = receiver.wait_for(1)
    assert delivery.headers["X-Hmac-Signature"].startswith("hmac-sha256-hex=")
    assert EASYPOST.verify(delivery.body, delivery.headers, ["easypost-secret"]).valid


def test_carrier_webhooks_go_to_tenant_hosts_under_localhost_with_their_host_header(receiver, secret):
    url = receiver.url.replace("127.0.0.1", "acme.localhost")
    with CarrierSandbox(webhook_url=url, webhook_secrets=[secret]) as carrier:
        carrier.advance("SBX0000000001")
        (delivery,) = receiver.wait_for(1)
    assert delivery.headers["Host"] == url.removeprefix("http://").split("/")[0]


@pytest.mark.parametrize(
    ("url", "secrets", "message"),
    [
        ("https://hooks.example.com/carrier", ["s"], "must be http://host"),
        ("http://hooks.example.com/carrier", ["s"], "loopback hosts only, not 'hooks.example.com'"),
        ("http://127.0.0.1:9/carrier", [], "at least one secret"),
        ("http://127.0.0.1:9/carrier", ["whsec_not base64!"], "not base64"),
    ],
)
def test_carrier_webhook_targets_are_checked(url, secrets, message):
    with pytest.raises(ValueError, match=message):
        CarrierSandbox(webhook_url=url, webhook_secrets=secrets)


def test_carrier_webhook_target_can_be_set_through_the_admin_endpoint(receiver, secret):
    with CarrierSandbox() as carrier:
        carrier.advance("SBX0000000001")  # no target yet: the event is kept, not sent
        configured = requests.post(f"{carrier.url}/_sandbox/webhooks", json={"url": receiver.url, "secret": secret}, timeout=5)
        assert configured.json() == {"url": receiver.url, "scheme": "standard-webhooks"}
        requests.post(f"{carrier.url}/_sandbox/trackers/SBX0000000001/advance", timeout=5)
        (delivery,) = receiver.wait_for(1)
        assert STANDARD_WEBHOOKS.verify(delivery.body, delivery.headers, [secret]).valid
        assert len(carrier.events) == 2
        refused = requests.post(f"{carrier.url}/_sandbox/webhooks", json={"url": "http://example.com/", "secret": secret}, timeout=5)
        assert refused.status_code == 422 and "loopback hosts only" in problem(refused)["detail"]


def test_carrier_duplicate_fault_delivers_each_event_twice_with_the_same_webhook_id(carrier, receiver, secret):
    carrier.set_faults(duplicate_webhooks=True)
    carrier.advance("SBX0000000001")
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    assert all(STANDARD_WEBHOOKS.verify(item.body, item.headers, [secret]) for item in (first, second))
    assert sorted(delivery.copy for delivery in carrier.deliveries) == [1, 2]


def test_carrier_reorder_fault_delivers_newer_events_first(carrier, receiver):
    carrier.set_faults(reorder_webhooks=True)
    carrier.advance("SBX0000000001")
    time.sleep(0.2)
    assert receiver.received == []  # held until the window fills
    carrier.advance("SBX0000000001")
    receiver.wait_for(2)
    assert [event["result"]["tracking_details"][-1]["message"] for event in receiver.events()] == [
        "Arrived at destination facility",
        "Departed origin facility",
    ]


def test_switching_reordering_off_releases_the_held_events(carrier, receiver):
    carrier.set_faults(reorder_webhooks=True, reorder_window=3)
    carrier.advance("SBX0000000001")
    carrier.advance("SBX0000000001")
    carrier.clear_faults()
    receiver.wait_for(2)
    assert [event["result"]["status"] for event in receiver.events()] == ["in_transit", "in_transit"]
    assert [event["result"]["tracking_details"][-1]["message"] for event in receiver.events()][0] == "Arrived at destination facility"


def test_carrier_retries_a_failed_delivery_with_the_same_webhook_id_and_a_fresh_signature(receiver, secret):
    receiver.statuses = [500, 503]
    with CarrierSandbox(webhook_url=receiver.url, webhook_secrets=[secret], webhook_retry_seconds=0.05) as carrier:
        carrier.advance("SBX0000000001")
        attempts = receiver.wait_for(3)
    assert len({item.headers["webhook-id"] for item in attempts}) == 1
    assert all(STANDARD_WEBHOOKS.verify(item.body, item.headers, [secret]) for item in attempts)
    assert [(d.attempt, d.http_status) for d in carrier.deliveries] == [(1, 500), (2, 503), (3, 200)]


def test_carrier_gives_up_after_its_attempts_and_records_why(secret):
    port = free_port()  # nothing listens there
    with CarrierSandbox(
        webhook_url=f"http://127.0.0.1:{port}/x", webhook_secrets=[secret], webhook_attempts=2, webhook_retry_seconds=0.05
    ) as carrier:
        carrier.advance("SBX0000000001")
        deliveries = carrier.wait_for_deliveries(2)
        time.sleep(0.2)
    assert [(d.attempt, d.http_status) for d in deliveries] == [(1, None), (2, None)] and len(carrier.deliveries) == 2
    assert "refused" in deliveries[0].error.lower()


def test_carrier_advances_on_its_own_until_delivered(receiver, secret):
    with CarrierSandbox(webhook_url=receiver.url, webhook_secrets=[secret], advance_every=0.05) as carrier:
        receiver.wait_for(4)
        assert carrier.trackers["SBX0000000001"]["status"] == "delivered"
    assert [event["result"]["status"] for event in receiver.events()] == ["in_transit", "in_transit", "out_for_delivery", "delivered"]
    with pytest.raises(Problem, match="already delivered"):
        carrier.advance("SBX0000000001")


def test_events_of_a_carrier_not_yet_started_are_delivered_once_it_starts(receiver, secret):
    carrier = CarrierSandbox(webhook_url=receiver.url, webhook_secrets=[secret])
    carrier.advance("SBX0000000001")
    with carrier:
        (delivery,) = receiver.wait_for(1)
    assert json.loads(delivery.body)["result"]["status"] == "in_transit"


def test_creating_a_known_tracker_answers_the_existing_one_without_an_event(carrier, receiver):
    answer = requests.post(f"{carrier.url}/api/trackers", json={"tracking_code": "SBX0000000001"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["status"] == "pre_transit"
    assert carrier.events == [] and carrier.effects == []


def test_every_system_is_registered():
    assert set(SYSTEMS) == {"erp", "tms", "wms", "carrier"}
