"""Tracking events: raw codes become Baton's statuses through the active mapping, a repeat
changes nothing, and however the events of a shipment are shuffled its final status, ETA and
stop times are the same – the highest-ranked event wins and nothing moves backwards."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from governance.models import AuditEvent
from logistics.models import Shipment, Stop, TrackingEvent
from logistics.services import (
    TrackingEventInvalid,
    mapping_entry_set,
    mapping_version_draft_create,
    mapping_version_publish,
    tracking_event_record,
)
from logistics.vocabulary import TrackingStatus, progression_key, rank
from tests.logistics.conftest import SYSTEM, hours, make_shipment

pytestmark = pytest.mark.django_db
PERMUTATIONS = 300


@dataclass(frozen=True)
class Report:
    """One event as a sender would send it."""

    source: str
    occurred_at: datetime
    status: str = ""
    raw_code: str = ""
    raw_reason: str = ""
    eta: datetime | None = None
    dedupe_key: str = ""


def _record(shipment, report: Report):
    return tracking_event_record(
        shipment=shipment,
        source=report.source,
        occurred_at=report.occurred_at,
        status=report.status,
        raw_code=report.raw_code,
        raw_reason=report.raw_reason,
        eta=report.eta,
        dedupe_key=report.dedupe_key,
        actor=SYSTEM,
    )


# A truckload's day as its carrier reports it: EDI 214 codes, carrier-API statuses, a reason
# code, estimates (AG, X2), an unmapped code, and telemetry of a status Baton already knows.
JOURNEY = [
    Report("x12_214", hours(0), raw_code="X3"),
    Report("x12_214", hours(1), raw_code="AF"),
    Report("x12_214", hours(3), raw_code="X6"),
    Report("x12_214", hours(5), raw_code="SD", raw_reason="AO"),
    Report("x12_214", hours(6), raw_code="AG", eta=hours(30)),
    Report("carrier_api", hours(7), raw_code="in_transit"),
    Report("x12_214", hours(8), raw_code="X2", eta=hours(28)),
    Report("carrier_api", hours(25), raw_code="out_for_delivery", eta=hours(27)),
    Report("telemetry", hours(26), status="arrived_at_delivery"),
    Report("x12_214", hours(27), raw_code="D1"),
    Report("x12_214", hours(28), raw_code="ZZ"),
]


def _state(shipment: Shipment) -> tuple:
    shipment.refresh_from_db()
    stops = tuple(Stop.objects.filter(shipment=shipment).order_by("sequence").values_list("arrived_at", "departed_at", "dwell"))
    return (shipment.status, shipment.status_at, shipment.eta, shipment.original_eta, shipment.delivered_at, stops)


def test_raw_codes_are_translated_through_the_active_mapping_and_kept_beside_the_status(acme, places):
    shipment = make_shipment(acme, places, "SH-MAP")
    outcome = _record(shipment, Report("x12_214", hours(5), raw_code="sd", raw_reason="ao"))
    event = outcome.event
    assert (event.status, event.raw_code, event.raw_reason) == ("delivery_delayed", "sd", "ao")
    assert event.reason_description == "Weather or natural disaster related"
    assert event.signal == "delay" and event.mapping_version.number == 1
    assert outcome.status_changed and shipment.status == "delivery_delayed"
    damaged = _record(shipment, Report("x12_214", hours(6), raw_code="A9")).event
    assert (damaged.status, damaged.signal) == ("on_hold", "damage")
    api = _record(shipment, Report("carrier_api", hours(7), raw_code="available_for_pickup")).event
    assert api.status == "ready_for_pickup"


def test_an_unmapped_code_is_stored_as_unknown_and_moves_nothing(acme, places):
    shipment = make_shipment(acme, places, "SH-UNK")
    outcome = _record(shipment, Report("x12_214", hours(1), raw_code="Q7"))
    assert outcome.created and outcome.event.status == "unknown" and not outcome.status_changed
    assert "code 'Q7' is not in x12_214_status v1: stored as unknown" in outcome.note
    shipment.refresh_from_db()
    assert shipment.status == "pending"


def test_an_event_needs_a_status_or_a_mapped_source(acme, places):
    shipment = make_shipment(acme, places, "SH-BAD")
    with pytest.raises(TrackingEventInvalid, match="needs a status, or a raw code"):
        _record(shipment, Report("telemetry", hours(1), raw_code="MOVING"))
    with pytest.raises(TrackingEventInvalid, match="'teleported' is not a tracking status"):
        _record(shipment, Report("api", hours(1), status="teleported"))
    with pytest.raises(TrackingEventInvalid, match="occurred_at must be a date-time with its UTC offset"):
        _record(shipment, Report("api", datetime(2026, 3, 2, 8), status="in_transit"))


def test_a_repeated_event_changes_nothing_and_says_so(acme, places):
    shipment = make_shipment(acme, places, "SH-DUP")
    first = _record(shipment, Report("x12_214", hours(3), raw_code="X6", eta=hours(20)))
    state = _state(shipment)
    again = _record(shipment, Report("x12_214", hours(3), raw_code="X6", eta=hours(20)))
    assert not again.created and again.event.pk == first.event.pk
    assert not (again.status_changed or again.eta_changed) and "already recorded as event" in again.note
    # A sender's own key wins over the content: a resend with a corrected body is still a repeat.
    keyed = _record(shipment, Report("carrier_api", hours(4), raw_code="in_transit", dedupe_key="evt-1"))
    resent = _record(shipment, Report("carrier_api", hours(9), raw_code="delivered", dedupe_key="evt-1"))
    assert keyed.created and not resent.created
    assert TrackingEvent.objects.filter(shipment=shipment).count() == 2
    assert _state(shipment)[:4] == (state[0], hours(4), state[2], state[3])


def test_an_older_event_is_kept_in_the_timeline_but_does_not_move_the_shipment_back(acme, places):
    shipment = make_shipment(acme, places, "SH-OLD")
    _record(shipment, Report("x12_214", hours(27), raw_code="D1"))
    late = _record(shipment, Report("x12_214", hours(3), raw_code="X6"))
    assert late.created and not late.status_changed
    assert "the shipment stays delivered" in late.note
    shipment.refresh_from_db()
    assert (shipment.status, shipment.status_at) == ("delivered", hours(27))
    assert list(TrackingEvent.objects.filter(shipment=shipment).values_list("status", "applied")) == [
        ("in_transit", False),
        ("delivered", True),
    ]


def test_among_statuses_of_the_same_rank_the_newest_wins(acme, places):
    shipment = make_shipment(acme, places, "SH-SAME")
    _record(shipment, Report("x12_214", hours(5), raw_code="SD"))
    _record(shipment, Report("carrier_api", hours(7), raw_code="in_transit"))
    shipment.refresh_from_db()
    assert shipment.status == "in_transit"  # the delay is over
    _record(shipment, Report("x12_214", hours(6), raw_code="SD", raw_reason="AF"))
    shipment.refresh_from_db()
    assert shipment.status == "in_transit"  # an older delay report changes nothing


def test_estimates_move_the_eta_only_when_newer_and_the_first_promise_is_kept(acme, places):
    shipment = make_shipment(acme, places, "SH-ETA", eta=hours(24))
    assert (shipment.eta, shipment.original_eta) == (hours(24), hours(24))
    first = _record(shipment, Report("x12_214", hours(6), raw_code="AG", eta=hours(30)))
    assert first.eta_changed and not first.status_changed and first.event.estimate
    assert "an estimate: it never changes the status" in first.note
    older = _record(shipment, Report("x12_214", hours(4), raw_code="X2", eta=hours(26)))
    assert not older.eta_changed and "ETA unchanged" in older.note
    shipment.refresh_from_db()
    assert (shipment.status, shipment.eta, shipment.original_eta) == ("pending", hours(30), hours(24))


def test_stop_arrival_departure_and_dwell_come_from_events(acme, places):
    shipment = make_shipment(acme, places, "SH-STOP")
    _record(
        shipment,
        Report(
            "x12_214",
            hours(
                1,
            ),
            raw_code="AF",
        ),
    )
    _record(shipment, Report("x12_214", hours(0.25), raw_code="X3"))
    _record(shipment, Report("x12_214", hours(0.5), raw_code="X8"))  # a later arrival report keeps the first
    pickup, delivery = Stop.objects.filter(shipment=shipment).order_by("sequence")
    assert (pickup.arrived_at, pickup.departed_at, pickup.dwell) == (hours(0.25), hours(1), timedelta(minutes=45))
    assert delivery.arrived_at is None
    assert TrackingEvent.objects.filter(shipment=shipment, stop=pickup).count() == 3


def test_a_person_entering_an_event_is_audited_and_a_feed_is_not(acme, places):
    shipment = make_shipment(acme, places, "SH-AUD")
    _record(shipment, Report("x12_214", hours(1), raw_code="AF"))
    tracking_event_record(shipment=shipment, source="manual", status="in_transit", occurred_at=hours(2), actor=acme.users["dispatcher"])
    audited = AuditEvent.objects.filter(action="tracking_event.recorded", target_id=str(shipment.pk))
    assert [row.actor_email for row in audited] == [acme.users["dispatcher"].email]


def test_the_final_state_is_the_same_for_every_arrival_order(acme, places):
    """The out-of-order property, on a full journey fed in hundreds of seeded shuffles (with
    resends mixed in): the status is the highest-ranked event's, the ETA the newest estimate's,
    the original ETA the first estimate made, and the stops' times the same."""
    shuffle = random.Random(20260302)
    expected = None
    for attempt in range(PERMUTATIONS):
        shipment = make_shipment(acme, places, f"SH-P{attempt}")
        reports = list(JOURNEY)
        shuffle.shuffle(reports)
        for report in reports + shuffle.sample(JOURNEY, 2):
            _record(shipment, report)
        state = _state(shipment)
        expected = expected or state
        assert state == expected, f"arrival order {[report.raw_code or report.status for report in reports]}"
    status, status_at, eta, original_eta, delivered_at, stops = expected
    assert (status, status_at, delivered_at) == ("delivered", hours(27), hours(27))
    assert (eta, original_eta) == (hours(27), hours(30))
    assert stops == ((hours(0), hours(1), timedelta(hours=1)), (hours(26), hours(27), timedelta(hours=1)))


def test_the_highest_ranked_status_wins_for_random_sets_of_events(acme, places):
    """Random subsets of the vocabulary at random times, each set fed in two shuffled orders:
    both end at the oracle's answer – the maximum of (rank, occurred_at, key) over non-estimates."""
    shuffle = random.Random(214)
    statuses = [status for status in TrackingStatus.values]
    for attempt in range(PERMUTATIONS // 3):
        minutes = shuffle.sample(range(1, 2000), shuffle.randint(1, 8))
        reports = [
            Report("api", hours(0) + timedelta(minutes=minute), status=shuffle.choice(statuses), dedupe_key=f"k{index}")
            for index, minute in enumerate(minutes)
        ]
        best = max(reports, key=lambda report: progression_key(report.status, report.occurred_at, report.dedupe_key))
        oracle = best.status if rank(best.status) >= rank("pending") else "pending"
        for order in range(2):
            shipment = make_shipment(acme, places, f"SH-R{attempt}-{order}")
            for report in shuffle.sample(reports, len(reports)):
                _record(shipment, report)
            shipment.refresh_from_db()
            assert shipment.status == oracle, [(r.status, r.occurred_at.isoformat()) for r in reports]
            assert rank(shipment.status) == max(rank(report.status) for report in reports + [replace(reports[0], status="pending")])


def test_a_newly_published_mapping_translates_new_events_while_old_events_keep_their_version(acme, places):
    shipment = make_shipment(acme, places, "SH-VER")
    before = _record(shipment, Report("x12_214", hours(3), raw_code="X6")).event
    draft = mapping_version_draft_create(kind="x12_214_status", actor=acme.users["tenant_admin"])
    mapping_entry_set(version=draft, code="X6", description="Held en route", status="on_hold", actor=acme.users["tenant_admin"])
    mapping_version_publish(version=draft, actor=acme.users["tenant_admin"])
    after = _record(shipment, Report("x12_214", hours(4), raw_code="X6")).event
    before.refresh_from_db()
    assert (before.status, before.mapping_version.number) == ("in_transit", 1)
    assert (after.status, after.mapping_version.number) == ("on_hold", 2)
