"""Partners' tracking events reach the tenant's shipments: the batch form of the tracking rules
agrees with `tracking_event_record` event for event; milestones find their shipment by reference
or say why not; delays become `shipment.delay_detected` once per shipment and cause. Then the
real path – signed EasyPost-style webhooks and 214 files through the inbox on a real worker:
the status moves, repeats change nothing, late events never move it backwards, and another
tenant's traffic never touches this tenant's shipment with the same PRO."""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from connectors.inbox import connection_inbound_configure
from connectors.models import Connection, InboundEvent
from connectors.normalize import CanonicalEvent, normalize
from connectors.signatures import EASYPOST
from logistics.models import ExceptionCase, Location, Shipment, Stop, StopKind, TrackingEvent
from logistics.services import StopInput, exception_open, shipment_create, tracking_event_record
from logistics.tracking_inbound import (
    DELAY_EVENT,
    TrackingReport,
    milestones_apply,
    pickups_missed_scan,
    tracking_events_record_many,
)
from tests.conftest import host_client
from tests.logistics.conftest import SYSTEM, hours, make_shipment
from tests.processes import celery_worker
from workflows.models import BufferedEvent

SHUFFLES = 40


@dataclass(frozen=True)
class Report:
    source: str
    occurred_at: datetime
    status: str = ""
    raw_code: str = ""
    raw_reason: str = ""
    eta: datetime | None = None
    dedupe_key: str = ""


# A truckload's day with resends, a delay, estimates, an unmapped code and a sender's own keys.
JOURNEY = [
    Report("x12_214", hours(0), raw_code="X3"),
    Report("x12_214", hours(1), raw_code="AF"),
    Report("x12_214", hours(1), raw_code="AF"),  # resent
    Report("x12_214", hours(3), raw_code="X6"),
    Report("x12_214", hours(5), raw_code="SD", raw_reason="AO"),
    Report("x12_214", hours(6), raw_code="AG", eta=hours(30)),
    Report("carrier_api", hours(7), raw_code="in_transit", dedupe_key="evt-7"),
    Report("carrier_api", hours(7.5), raw_code="in_transit", dedupe_key="evt-7"),  # the sender's key wins
    Report("x12_214", hours(8), raw_code="X2", eta=hours(28)),
    Report("carrier_api", hours(25), raw_code="out_for_delivery", eta=hours(27)),
    Report("telemetry", hours(26), status="arrived_at_delivery"),
    Report("x12_214", hours(27), raw_code="D1"),
    Report("x12_214", hours(28), raw_code="ZZ"),
    Report("api", hours(29), status="teleported"),  # refused by both
]


def _state(shipment: Shipment) -> tuple:
    shipment.refresh_from_db()
    stops = tuple(Stop.objects.filter(shipment=shipment).order_by("sequence").values_list("arrived_at", "departed_at", "dwell"))
    events = tuple(
        TrackingEvent.objects.filter(shipment=shipment)
        .order_by("occurred_at", "dedupe_key")
        .values_list("status", "raw_code", "signal", "estimate", "eta", "dedupe_key", "applied", "stop__sequence", "mapping_version_id")
    )
    current = (
        TrackingEvent.objects.filter(pk=shipment.status_event_id or 0).values_list("dedupe_key", flat=True).first(),
        TrackingEvent.objects.filter(pk=shipment.eta_event_id or 0).values_list("dedupe_key", flat=True).first(),
    )
    fields = (shipment.status, shipment.status_at, shipment.eta, shipment.eta_at, shipment.original_eta, shipment.original_eta_at)
    return (*fields, shipment.delivered_at, stops, events, current)


def _answer(outcome) -> tuple:
    """What an outcome says, without the ids that differ between two shipments."""
    if isinstance(outcome, Exception):
        return ("refused", str(outcome))
    note = re.sub(r"event \d+ \(received [^)]*\)", "event N", outcome.note)
    return (outcome.created, outcome.status_changed, outcome.eta_changed, note, outcome.event.status)


def _one(shipment: Shipment, report: Report):
    try:
        return tracking_event_record(shipment=shipment, actor=SYSTEM, **report.__dict__)
    except Exception as refused:  # noqa: BLE001 - compared with the batch form's answer
        return refused


def test_the_batch_form_agrees_with_the_service_event_for_event_in_any_order(acme, places):
    shuffle = random.Random(20261128)
    for attempt in range(SHUFFLES):
        alone = make_shipment(acme, places, f"SH-ONE-{attempt}", eta=hours(24) if attempt % 2 else None)
        batched = make_shipment(acme, places, f"SH-MANY-{attempt}", eta=hours(24) if attempt % 2 else None)
        reports = list(JOURNEY)
        shuffle.shuffle(reports)
        one_by_one = [_answer(_one(alone, report)) for report in reports]
        in_batches, start = [], 0
        while start < len(reports):
            size = shuffle.randint(1, 6)
            chunk = [TrackingReport(shipment_id=batched.pk, **report.__dict__) for report in reports[start : start + size]]
            in_batches += [_answer(outcome) for outcome in tracking_events_record_many(chunk, actor=SYSTEM)]
            start += size
        assert in_batches == one_by_one, f"shuffle {attempt}"
        assert _state(batched) == _state(alone), f"shuffle {attempt}"
        assert _state(batched)[0] == "delivered"


def test_a_batch_costs_a_few_statements_whatever_its_size(acme, places):
    shipments = [make_shipment(acme, places, f"SH-Q{index}", pro_number=f"PROQ{index}") for index in range(20)]
    reports = [
        TrackingReport(shipment_id=shipment.pk, source="carrier_api", raw_code=code, occurred_at=hours(step))
        for step, code in enumerate(("pre_transit", "in_transit", "out_for_delivery"))
        for shipment in shipments
    ]
    with CaptureQueriesContext(db) as queries:
        outcomes = tracking_events_record_many(reports, actor=SYSTEM)
    assert all(outcome.created for outcome in outcomes) and len(outcomes) == 60
    assert len(queries.captured_queries) <= 12, [query["sql"][:80] for query in queries.captured_queries]
    assert {shipment.status for shipment in Shipment.objects.filter(pk__in=[s.pk for s in shipments])} == {"out_for_delivery"}


# --- canonical milestones ---------------------------------------------------------------------------


def tracker(code: str, status: str, *, at: datetime, est: datetime | None = None, event_id: str = "", carrier: str = "ODFL") -> dict:
    """An EasyPost-style tracker event, as a carrier webhook sends it."""
    return {
        "object": "Event",
        "id": event_id or f"evt_{uuid.uuid4().hex[:12]}",
        "description": "tracker.updated",
        "result": {
            "object": "Tracker",
            "tracking_code": code,
            "status": status,
            "carrier": carrier,
            "est_delivery_date": est.isoformat() if est else None,
            "tracking_details": [
                {"datetime": at.isoformat(), "message": f"{status} update", "tracking_location": {"city": "Denver", "state": "CO"}}
            ],
        },
    }


def _milestone(body: dict) -> CanonicalEvent:
    (event,) = normalize(mapper="easypost", body=json.dumps(body).encode())
    return event


def test_a_milestone_for_a_shipment_the_tenant_does_not_have_is_noted_and_changes_nothing(acme, places):
    make_shipment(acme, places, "SH-KNOWN", pro_number="PRO-KNOWN")
    (note,) = milestones_apply([_milestone(tracker("PRO-MISSING", "in_transit", at=hours(1)))])
    assert note == {"shipment": None, "note": "no shipment with PRO PRO-MISSING"}
    assert not TrackingEvent.objects.filter(shipment__reference="SH-KNOWN").exists()


def test_references_are_read_normalised_and_a_pro_shared_by_two_carriers_is_told_apart_by_scac(acme, places):
    odfl = make_shipment(acme, places, "SH-ODFL", pro_number="PRO 77")
    saia = shipment_create(
        customer_account=acme.customer_accounts[1], reference="SH-SAIA", carrier_scac="SAIA", pro_number="pro77", actor=SYSTEM
    )
    first, second = milestones_apply(
        [_milestone(tracker("pro77", "in_transit", at=hours(1), carrier="SAIA")), _milestone(tracker("PRO77", "in_transit", at=hours(2)))]
    )
    assert (first["shipment"], second["shipment"]) == ("SH-SAIA", "SH-ODFL")
    odfl.refresh_from_db()
    saia.refresh_from_db()
    assert odfl.status == saia.status == "in_transit"
    (unsure,) = milestones_apply([_milestone(tracker("PRO77", "out_for_delivery", at=hours(3), carrier="FXFE"))])
    assert unsure["note"] == "PRO PRO77 names 2 shipments: add the carrier's SCAC or another reference"


def test_a_milestone_found_by_shipment_number_when_its_pro_is_unknown(acme, places):
    make_shipment(acme, places, "SH-REF")
    event = CanonicalEvent(
        "shipment.milestone",
        "api-1",
        {"pro": "NOT-OURS", "shipment": "SH-REF"},
        {"code": "picked_up", "occurred_at": hours(1).isoformat()},
    )
    (note,) = milestones_apply([event])
    assert note["shipment"] == "SH-REF" and note["status_changed"] and note["status"] == "picked_up"
    (again,) = milestones_apply([event])  # the events API's id is its key
    assert not again["created"] and "already recorded" in again["note"]


def _delivery_window(acme, places, reference: str, *, end: datetime, pro: str, **extra) -> Shipment:
    origin, destination = places
    return shipment_create(
        customer_account=acme.customer_accounts[0],
        reference=reference,
        carrier_scac="ODFL",
        pro_number=pro,
        stops=[
            StopInput(1, StopKind.PICKUP, origin, appointment_start=hours(0), appointment_end=hours(2)),
            StopInput(2, StopKind.DELIVERY, destination, appointment_start=end - timedelta(hours=2), appointment_end=end),
        ],
        actor=SYSTEM,
        **extra,
    )


def _buffered(shipment: Shipment) -> list[tuple[str, dict]]:
    rows = BufferedEvent.objects.filter(event_type=DELAY_EVENT, event_id__startswith=f"delay:{shipment.pk}:")
    return sorted((row.event_id, row.payload) for row in rows)


def test_a_delay_status_and_a_late_eta_are_detected_once_per_shipment_and_cause(acme, places):
    shipment = _delivery_window(acme, places, "SH-LATE", end=hours(30), pro="PRO-LATE")
    (on_time,) = milestones_apply([_milestone(tracker("PRO-LATE", "in_transit", at=hours(3), est=hours(30) + timedelta(minutes=20)))])
    assert on_time["eta_changed"] and "delays" not in on_time  # inside the standard tier's 30 min grace
    (late,) = milestones_apply([_milestone(tracker("PRO-LATE", "in_transit", at=hours(4), est=hours(36)))])
    assert [delay["cause"] for delay in late["delays"]] == ["eta_late"]
    ((event_id, payload),) = _buffered(shipment)
    assert event_id == f"delay:{shipment.pk}:eta_late"
    assert payload["type"] == "delay" and payload["shipment"] == "SH-LATE" and payload["references"]["pro"] == "PRO-LATE"
    assert (payload["promise"], payload["promised_at"], payload["estimated_at"]) == (
        "delivery appointment",
        hours(30).isoformat(),
        hours(36).isoformat(),
    )
    assert payload["late_by_minutes"] == 360 and payload["severity"] == "medium"
    assert payload["customer_account_id"] == acme.customer_accounts[0].pk and "planned_rate" not in payload
    assert payload["reason"] == "ETA 2026-03-03 20:00 UTC is 6 h 00 min after the delivery appointment (2026-03-03 14:00 UTC)"

    # The same cause again is the same event: buffered once.
    milestones_apply([_milestone(tracker("PRO-LATE", "in_transit", at=hours(5), est=hours(40)))])
    assert [event_id for event_id, _payload in _buffered(shipment)] == [f"delay:{shipment.pk}:eta_late"]
    # A failed delivery is another cause (and another kind of exception).
    (failed,) = milestones_apply([_milestone(tracker("PRO-LATE", "failure", at=hours(31)))])
    assert [delay["cause"] for delay in failed["delays"]] == ["delivery_failed"]
    causes = {event_id: payload["type"] for event_id, payload in _buffered(shipment)}
    assert causes == {f"delay:{shipment.pk}:eta_late": "delay", f"delay:{shipment.pk}:delivery_failed": "missed_delivery"}


def test_a_214_delay_names_its_reason_and_an_open_exception_silences_the_same_kind(acme, places):
    shipment = _delivery_window(acme, places, "SH-SD", end=hours(30), pro="PRO-SD")
    delayed = CanonicalEvent(
        "shipment.milestone",
        "x12:CARRIER:1:1:0001:1",
        {"pro": "PRO-SD", "shipment": "SH-SD"},
        {"code": "delivery_delayed", "raw_code": "SD", "raw_detail": "AO", "occurred_at": hours(5).isoformat(), "source": "x12 214"},
    )
    (note,) = milestones_apply([delayed])
    assert [delay["cause"] for delay in note["delays"]] == ["delivery_delayed"]
    ((_id, payload),) = _buffered(shipment)
    assert payload["reason"] == "Delivery delayed reported by ODFL (SD): Weather or natural disaster related"
    # Back in transit, then on hold: a delay exception is open already, so nothing new is told.
    exception_open(type="delay", reason="weather", shipment=shipment, actor=SYSTEM)
    hold = CanonicalEvent(
        "shipment.milestone",
        "x12:CARRIER:2:1:0001:1",
        {"pro": "PRO-SD"},
        {"raw_code": "PR", "occurred_at": hours(9).isoformat(), "source": "x12 214"},
    )
    (held,) = milestones_apply([hold])
    assert held["status"] == "on_hold" and "delays" not in held


def test_a_delay_reported_after_delivery_is_history_not_a_delay(acme, places):
    shipment = _delivery_window(acme, places, "SH-DONE", end=hours(30), pro="PRO-DONE")
    milestones_apply([_milestone(tracker("PRO-DONE", "delivered", at=hours(29)))])
    # The carrier's tracker lags behind: a newer estimate (far past the appointment) on a delivered load.
    (late,) = milestones_apply([_milestone(tracker("PRO-DONE", "in_transit", at=hours(30), est=hours(40)))])
    assert late["eta_changed"] and late["status"] == "delivered" and "delays" not in late
    assert _buffered(shipment) == []


def test_a_pickup_appointment_that_passed_without_a_pickup_is_a_missed_pickup_once(acme, places):
    waiting = _delivery_window(acme, places, "SH-NOPICK", end=hours(30), pro="PRO-NOPICK")
    picked = _delivery_window(acme, places, "SH-PICKED", end=hours(30), pro="PRO-PICKED")
    milestones_apply([_milestone(tracker("PRO-PICKED", "in_transit", at=hours(1)))])
    assert pickups_missed_scan(now=hours(2.25)) == []  # still inside the 30 min grace
    (missed,) = pickups_missed_scan(now=hours(3))
    assert missed.event_id == f"delay:{waiting.pk}:pickup_missed" and missed.payload["type"] == "missed_pickup"
    assert missed.payload["reason"] == "Not picked up by the end of the pickup appointment (2026-03-02 10:00 UTC) at Chicago DC"
    assert _buffered(picked) == []
    exception_open(type="missed_pickup", reason=missed.payload["reason"], shipment=waiting, actor=SYSTEM)
    assert pickups_missed_scan(now=hours(4)) == []


def test_batch_apply_rate(acme, places, capsys):
    """Not an assertion on time: the figure for the report (events/s of `milestones_apply`)."""
    account = acme.customer_accounts[0]
    origin, destination = places
    shipments = Shipment.objects.bulk_create(
        Shipment(reference=f"SH-RATE-{index}", customer_account=account, carrier_scac="ODFL", pro_number=f"PRORATE{index}")
        for index in range(500)
    )
    Stop.objects.bulk_create(
        Stop(shipment=shipment, sequence=sequence, kind=kind, location=location)
        for shipment in shipments
        for sequence, kind, location in ((1, StopKind.PICKUP, origin), (2, StopKind.DELIVERY, destination))
    )
    statuses = ("pre_transit", "in_transit", "out_for_delivery", "delivered")
    events = [
        _milestone(tracker(f"PRORATE{index}", status, at=hours(step), est=hours(30)))
        for step, status in enumerate(statuses)
        for index in range(len(shipments))
    ]
    random.Random(5).shuffle(events)
    started = time.perf_counter()
    for start in range(0, len(events), 100):
        milestones_apply(events[start : start + 100])
    elapsed = time.perf_counter() - started
    assert Shipment.objects.filter(reference__startswith="SH-RATE-", status="delivered").count() == len(shipments)
    with capsys.disabled():
        print(f"\nmilestones_apply: {len(events)} events in {elapsed:.2f} s = {len(events) / elapsed:.0f} events/s (batches of 100)")


# --- through the inbox, on a real worker ------------------------------------------------------------

worker_test = pytest.mark.worker


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("tracking-worker") / "worker.log") as process:
        yield process


@dataclass
class Carrier:
    """A tenant's carrier webhook endpoint and a shipment on it."""

    tenant: Any
    key: str
    secret: str
    shipment_id: int


def carrier_with_shipment(tenant_world, pro: str, *, delivery_by: datetime | None = None) -> Carrier:
    """A carrier webhook connection (EasyPost-style) and a shipment with that PRO, committed;
    `delivery_by` is the delivery appointment's end."""
    key = f"carrier-{uuid.uuid4().hex[:6]}"
    with schema_context(tenant_world.schema):
        connection = Connection.objects.create(key=key, name="Carrier tracking", kind="carrier", base_url="https://carrier.example")
        secret = connection_inbound_configure(connection=connection, scheme="easypost", mapper="easypost", actor=SYSTEM)
        suffix = uuid.uuid4().hex[:6]
        origin = Location.objects.create(code=f"o-{suffix}", name="Chicago DC")
        destination = Location.objects.create(code=f"d-{suffix}", name="Denver store")
        shipment = shipment_create(
            customer_account=tenant_world.customer_accounts[0],
            reference=f"SH-{suffix}",
            carrier_scac="ODFL",
            pro_number=pro,
            stops=[
                StopInput(1, StopKind.PICKUP, origin),
                StopInput(2, StopKind.DELIVERY, destination, appointment_end=delivery_by),
            ],
            actor=SYSTEM,
        )
    return Carrier(tenant_world, key, secret, shipment.pk)


def carrier_remove(carrier: Carrier) -> None:
    with schema_context(carrier.tenant.schema):
        shipment = Shipment.objects.get(pk=carrier.shipment_id)
        locations = [pk for pk in (shipment.origin_id, shipment.destination_id) if pk is not None]
        ExceptionCase.objects.filter(shipment=shipment).delete()
        shipment.delete()
        Location.objects.filter(pk__in=locations).delete()
        InboundEvent.objects.filter(connection__key=carrier.key).delete()
        Connection.objects.filter(key=carrier.key).delete()


def deliver_webhook(tenant_world, key: str, secret: str, body: dict):
    """POST a signed EasyPost-style webhook to the tenant's host."""
    raw = json.dumps(body).encode()
    headers = EASYPOST.sign(raw, secrets=[secret])
    return host_client(tenant_world.host).post(f"/hooks/{key}", data=raw, content_type="application/json", headers=headers)


def until(check, what: str, timeout: float = 30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(what)


def handed_on(tenant_world, event_id: int) -> InboundEvent | None:
    with schema_context(tenant_world.schema):
        event = InboundEvent.objects.get(pk=event_id)
    return event if event.status == "delivered" else None


def shipment_of(tenant_world, shipment_id: int) -> Shipment:
    with schema_context(tenant_world.schema):
        return Shipment.objects.get(pk=shipment_id)


@pytest.fixture
def acme_carrier(world, committed):
    carrier = carrier_with_shipment(world.acme, "PRO-WIRE-1")
    yield carrier
    carrier_remove(carrier)


@worker_test
def test_webhooks_move_the_shipment_repeats_change_nothing_and_late_events_never_move_it_back(world, acme_carrier, worker):
    carrier = acme_carrier
    sent = deliver_webhook(world.acme, carrier.key, carrier.secret, tracker("PRO-WIRE-1", "in_transit", at=hours(3), event_id="evt_w1"))
    assert sent.status_code == 202
    event = until(lambda: handed_on(world.acme, sent.json()["event_id"]), "the webhook was not handed on by the worker")
    assert event.canonical[0]["applied"]["status_changed"] and shipment_of(world.acme, carrier.shipment_id).status == "in_transit"

    # The carrier repeats its tracker's state under a new event id: recognised, nothing changes.
    again = deliver_webhook(world.acme, carrier.key, carrier.secret, tracker("PRO-WIRE-1", "in_transit", at=hours(3), event_id="evt_w2"))
    repeated = until(lambda: handed_on(world.acme, again.json()["event_id"]), "the repeat was not handed on")
    assert not repeated.canonical[0]["applied"]["created"] and "already recorded" in repeated.canonical[0]["applied"]["note"]
    with schema_context(world.acme.schema):
        assert TrackingEvent.objects.filter(shipment_id=carrier.shipment_id).count() == 1

    delivered = deliver_webhook(world.acme, carrier.key, carrier.secret, tracker("PRO-WIRE-1", "delivered", at=hours(27)))
    until(lambda: handed_on(world.acme, delivered.json()["event_id"]), "the delivery was not handed on")
    late = deliver_webhook(world.acme, carrier.key, carrier.secret, tracker("PRO-WIRE-1", "out_for_delivery", at=hours(25)))
    stale = until(lambda: handed_on(world.acme, late.json()["event_id"]), "the late event was not handed on")
    assert stale.canonical[0]["applied"]["created"] and not stale.canonical[0]["applied"]["status_changed"]
    shipment = shipment_of(world.acme, carrier.shipment_id)
    assert (shipment.status, shipment.status_at, shipment.delivered_at) == ("delivered", hours(27), hours(27))

    unknown = deliver_webhook(world.acme, carrier.key, carrier.secret, tracker("PRO-NOBODY", "in_transit", at=hours(3)))
    kept = until(lambda: handed_on(world.acme, unknown.json()["event_id"]), "the unknown shipment's event was not handed on")
    assert kept.canonical[0]["applied"] == {"shipment": None, "note": "no shipment with PRO PRO-NOBODY"}


class _Numbers:
    """Control numbers for a 214 the carrier sends (and resends under a new number)."""

    def __init__(self, number: int):
        self.number = number

    def next_interchange(self, partner: str) -> int:
        return self.number

    def next_group(self, partner: str) -> int:
        return self.number

    def next_set(self, partner: str) -> int:
        return 1


def _status_214(pro: str, code: str, at: datetime, control: int) -> str:
    from connectors.edi.documents import ShipmentStatus, TrackingMilestone
    from connectors.edi.writer import PartnerSettings, write_interchange

    settings = PartnerSettings(partner="carrier", sender_qualifier="02", sender_id="ODFL", receiver_qualifier="ZZ", receiver_id="BATON")
    milestone = TrackingMilestone(
        shipment_id="ODFL-7781",
        status_code=code,
        date=at.date(),
        time=at.time(),
        time_zone_code="UT",
        city="DALLAS",
        state="TX",
        country="USA",
    )
    document = ShipmentStatus(shipment_id="ODFL-7781", pro_number=pro, scac="ODFL", milestones=[milestone])
    return write_interchange([document], partner=settings, control_numbers=_Numbers(control), now=datetime(2026, 3, 2, tzinfo=UTC))


@worker_test
def test_a_214_sent_again_under_a_new_control_number_changes_nothing(world, acme_carrier, worker):
    from connectors.edi_transport import edi_receive

    carrier = acme_carrier
    with schema_context(world.acme.schema):
        connection = Connection.objects.get(key=carrier.key)
        connection.inbound_mapper = "x12"
        connection.save(update_fields=["inbound_mapper"])
        first = edi_receive(connection=connection, data=_status_214("PRO-WIRE-1", "AF", hours(1), 101), channel="api")
        resent = edi_receive(connection=connection, data=_status_214("PRO-WIRE-1", "AF", hours(1), 102), channel="api")
    ids = [first.event.pk, resent.event.pk]
    assert ids[0] != ids[1]  # two interchanges in the inbox…
    handed = [until(lambda event_id=event_id: handed_on(world.acme, event_id), "the 214 was not handed on") for event_id in ids]
    notes = [event.canonical[0]["applied"] for event in handed]
    assert sorted(note["created"] for note in notes) == [False, True]  # …one event on the shipment
    shipment = shipment_of(world.acme, carrier.shipment_id)
    assert (shipment.status, shipment.status_at) == ("picked_up", hours(1))
    with schema_context(world.acme.schema):
        assert list(TrackingEvent.objects.filter(shipment_id=carrier.shipment_id).values_list("raw_code", "source")) == [("AF", "x12_214")]


@worker_test
def test_another_tenants_webhook_never_touches_this_tenants_shipment_with_the_same_pro(world, acme_carrier, worker, committed):
    globex = carrier_with_shipment(world.globex, "PRO-WIRE-1")
    try:
        sent = deliver_webhook(world.globex, globex.key, globex.secret, tracker("PRO-WIRE-1", "out_for_delivery", at=hours(20)))
        assert sent.status_code == 202
        until(lambda: handed_on(world.globex, sent.json()["event_id"]), "globex's webhook was not handed on")
        assert shipment_of(world.globex, globex.shipment_id).status == "out_for_delivery"
        assert shipment_of(world.acme, acme_carrier.shipment_id).status == "pending"
        with schema_context(world.acme.schema):
            assert not TrackingEvent.objects.filter(shipment_id=acme_carrier.shipment_id).exists()
        # Acme's endpoint and secret mean nothing on Globex's host, and Globex's secret nothing on Acme's endpoint.
        crossed = deliver_webhook(world.globex, acme_carrier.key, acme_carrier.secret, tracker("PRO-WIRE-1", "delivered", at=hours(21)))
        assert crossed.status_code == 404
        forged = deliver_webhook(world.acme, acme_carrier.key, globex.secret, tracker("PRO-WIRE-1", "delivered", at=hours(21)))
        assert forged.status_code == 401
        time.sleep(1.0)
        assert shipment_of(world.acme, acme_carrier.shipment_id).status == "pending"
    finally:
        carrier_remove(globex)
