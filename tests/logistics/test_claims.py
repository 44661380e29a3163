"""Template 5, "Freight claims", end to end: a POD's damage note or a customer's report arrives as an
event through the events inbox, the run files the claim on a real Celery worker, and the carrier's
answers (`claim.updated`) move it through acknowledgement and decision; the Carmack clock
escalates a missed deadline once. The clock's rules are also checked at given moments without the
worker."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
import uuid
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from connectors.inbox import inbound_record
from connectors.models import Connection, ConnectionKind, InboundEvent
from governance.services import Actor
from logistics.claims_flow import claim_clock, damage_from_notes
from logistics.library.claims import TEMPLATE
from logistics.models import Claim, Document, ExceptionCase, Location, Shipment, StopKind
from logistics.services import StopInput, claim_acknowledge, claim_file, document_record, location_create, shipment_create
from tenants.db import connection
from tests.logistics.flows import clone_published, definition_forget, until
from tests.processes import celery_worker, suite_env
from tests.workflows.conftest import publish
from workflows.management.commands.seed_library import LIBRARY
from workflows.models import Definition, Run, StepExecution, TemplateVersion, Timer, WorkflowTemplate
from workflows.selectors import template_version_get
from workflows.validation import definition_validate

SYSTEM = Actor.system("tests-claims")
CARRIER = "FNCE"
EVENTS_KEY = "finance-claims-intake"
_numbers = itertools.count(int(time.time()) % 100_000_000)


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("claims-worker") / "worker.log", env=suite_env()) as process:
        yield process


def _template_version() -> TemplateVersion:
    connection.set_schema_to_public()
    template = WorkflowTemplate.objects.filter(key=TEMPLATE["key"]).first()
    existing = template_version_get(template=template, version=TEMPLATE["version"]) if template else None
    return existing or publish(TEMPLATE)


def _places() -> None:
    for code, name, city in (("clm-dc", "Memphis DC", "Memphis"), ("clm-store", "Dallas store", "Dallas")):
        if not Location.objects.filter(code=code).exists():
            location_create(code=code, name=name, city=city, country="US", actor=SYSTEM)


@pytest.fixture(scope="module")
def flow(world, django_db_setup, django_db_blocker):
    """Acme with an events intake, two locations and the template cloned (the clock checked every
    two seconds instead of daily, so the test sees it loop) and published."""
    with django_db_blocker.unblock():
        version = _template_version()
        with schema_context(world.acme.schema):
            if not Connection.objects.filter(key=EVENTS_KEY).exists():
                Connection.objects.create(
                    key=EVENTS_KEY, name="Claims intake", kind=ConnectionKind.EMAIL, base_url="https://claims.example"
                )
            _places()
            definition = clone_published(
                world.acme,
                version,
                key=f"freight-claims-{uuid.uuid4().hex[:8]}",
                name="Freight claims",
                parameters={"check_every": "PT2S"},
            )
        connection.set_schema_to_public()
    yield definition
    with django_db_blocker.unblock(), schema_context(world.acme.schema):
        definition_forget(world.acme, definition)
        connection.set_schema_to_public()


@pytest.fixture
def tidy(world, committed):
    references: list[str] = []
    yield references.append
    with schema_context(world.acme.schema):
        shipments = Shipment.objects.filter(reference__in=references)
        Claim.objects.filter(shipment__in=shipments).delete()
        ExceptionCase.objects.filter(shipment__in=shipments).delete()
        Document.objects.filter(shipment__in=shipments).delete()
        shipments.delete()
        InboundEvent.objects.filter(connection__key=EVENTS_KEY).delete()


def _shipment(world, prefix: str = "CLM") -> Shipment:
    with schema_context(world.acme.schema):
        dc, store = Location.objects.get(code="clm-dc"), Location.objects.get(code="clm-store")
        return shipment_create(
            customer_account=world.acme.customer_accounts[0],
            reference=f"{prefix}-{next(_numbers)}",
            carrier_scac=CARRIER,
            stops=[StopInput(1, StopKind.PICKUP, dc), StopInput(2, StopKind.DELIVERY, store)],
            actor=SYSTEM,
        )


def _event(world, event_type: str, shipment: Shipment, payload: dict[str, Any]) -> None:
    body: dict[str, Any] = {
        "event_type": event_type,
        "event_id": f"{event_type}-{uuid.uuid4().hex[:12]}",
        "correlation": {"shipment": shipment.reference},
        "payload": payload,
    }
    with schema_context(world.acme.schema):
        intake = Connection.objects.get(key=EVENTS_KEY)
        inbound_record(
            connection=intake,
            channel="api",
            external_id=body["event_id"],
            body=json.dumps(body),
            content_type="application/json",
            headers={},
        )


def _run_of(shipment: Shipment, definition: Definition):
    return Run.objects.filter(definition=definition, correlation__shipment=shipment.reference).order_by("pk")


# --- the rules, without the worker ----------------------------------------------------------------


def test_the_template_is_in_the_library_and_valid():
    assert (TEMPLATE["key"], TEMPLATE["version"]) in [(entry["key"], entry["version"]) for entry in LIBRARY]
    assert definition_validate(TEMPLATE["definition"], placeholders=True) == []


def test_damage_and_shortage_are_read_from_pod_notes_and_piece_counts():
    assert damage_from_notes(["2 cartons crushed", "shrink wrap torn"]) == ("damage", "2 cartons crushed; shrink wrap torn")
    assert damage_from_notes(["1 pallet short"]) == ("shortage", "1 pallet short")
    assert damage_from_notes([], pieces=10, pieces_expected=12) == ("shortage", "10 of 12 pieces delivered")
    assert damage_from_notes(["delivered after hours"], pieces=12, pieces_expected=12) == ("", "")


@pytest.mark.django_db
def test_the_carmack_clock_reminds_once_before_a_deadline_and_escalates_once_per_missed_one(world):
    with schema_context(world.acme.schema):
        _places()
        filed = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
        claim = claim_file(shipment=_shipment(world), kind="damage", amount_claimed="500", filed_at=filed, actor=SYSTEM)
        day = dt.timedelta(days=1)
        assert not claim_clock(claim=claim, actor=SYSTEM, now=filed + 20 * day).remind
        near = claim_clock(claim=claim, actor=SYSTEM, now=filed + 25 * day + dt.timedelta(hours=1))
        assert (near.stage, near.remind, near.escalate) == ("acknowledge", True, False)
        assert not claim_clock(claim=claim, actor=SYSTEM, now=filed + 26 * day + dt.timedelta(hours=1)).remind

        late = claim_clock(claim=claim, actor=SYSTEM, now=filed + 31 * day)
        assert (late.overdue, late.escalate) == (True, True)
        assert late.reason == f"FNCE did not acknowledge claim {claim.number} by 2026-02-04 (Carmack: 30 days); late by 1 days"
        assert not claim_clock(claim=claim, actor=SYSTEM, now=filed + 32 * day).escalate  # once
        case = ExceptionCase.objects.get(pk=late.exception_id)
        assert (case.type, case.severity, case.escalation_level, case.details["claim"]) == ("other", "high", 0, claim.number)

        claim_acknowledge(claim=claim, actor=SYSTEM, at=filed + 33 * day)
        waiting = claim_clock(claim=claim, actor=SYSTEM, now=filed + 60 * day)
        assert (waiting.stage, waiting.due_at, waiting.overdue) == ("decide", "2026-05-05T09:00:00+00:00", False)
        undecided = claim_clock(claim=claim, actor=SYSTEM, now=filed + 121 * day)
        assert (undecided.stage, undecided.escalate) == ("decide", True)
        case.refresh_from_db()
        assert case.escalation_level == 1
        assert not claim_clock(claim=claim, actor=SYSTEM, now=filed + 122 * day).escalate


# --- end to end on the worker ----------------------------------------------------------------------


@pytest.mark.worker
def test_a_pod_damage_note_opens_a_claim_with_its_checklist_and_due_dates_exactly_30_and_120_days_later(world, worker, flow, tidy):
    shipment = _shipment(world)
    tidy(shipment.reference)
    with schema_context(world.acme.schema):
        document_record(kind="bol", content=b"bol", original_name="bol.pdf", shipment=shipment, actor=SYSTEM)
        pod = document_record(
            kind="pod",
            content=f"%PDF POD {shipment.reference}".encode(),
            original_name="pod.pdf",
            shipment=shipment,
            signed_by="M. Ortiz",
            extracted_fields={"consignee": "Dallas store", "pieces": 12, "exceptions": ["3 cartons crushed"], "claim_amount": "840.00"},
            actor=SYSTEM,
        ).document
    _event(world, "document.received", shipment, {"kind": "pod", "document_id": pod.pk, "shipment": shipment.reference})
    run = until(
        world, lambda: _run_of(shipment, flow).filter(status="waiting", current_step="wait_carrier").first(), "the claim's run waiting"
    )
    with schema_context(world.acme.schema):
        claim = Claim.objects.get(shipment=shipment)
        assert (claim.kind, claim.status, str(claim.amount_claimed), claim.carrier_scac) == ("damage", "filed", "840.00", "FNCE")
        assert claim.description == "Noted on the POD: 3 cartons crushed"
        assert claim.acknowledge_due_at - claim.filed_at == dt.timedelta(days=30)
        assert claim.decide_due_at - claim.filed_at == dt.timedelta(days=120)
        opened = StepExecution.objects.get(run=run, step_id="open").output
        assert opened["checklist"] == {"pod": True, "photos": False, "invoice": False, "bol": True}
        assert opened["missing"] == ["photos", "invoice"]
        told = StepExecution.objects.get(run=run, step_id="tell_filed").output
        assert told["to_roles"] == ["customer_service", "finance"] and told["template"] == "claim-filed"
        clock = StepExecution.objects.filter(run=run, step_id="clock").first().output
        assert (clock["stage"], clock["due_at"], clock["overdue"]) == ("acknowledge", claim.acknowledge_due_at.isoformat(), False)
        timer = Timer.objects.filter(run=run, step_id="wait_carrier").order_by("-pk").first()
        assert timer is not None and timer.due_at <= timezone.now() + dt.timedelta(seconds=3)  # checked again soon (every PT2S here)


@pytest.mark.worker
def test_the_carriers_acknowledgement_and_decision_move_the_claim_and_end_the_run(world, worker, flow, tidy):
    shipment = _shipment(world)
    tidy(shipment.reference)
    _event(
        world,
        "claim.reported",
        shipment,
        {"shipment": shipment.reference, "kind": "shortage", "amount": "300.00", "description": "2 of 14 cartons missing"},
    )
    run = until(world, lambda: _run_of(shipment, flow).filter(status="waiting", current_step="wait_carrier").first(), "the claim filed")
    with schema_context(world.acme.schema):
        claim = Claim.objects.get(shipment=shipment)
    _event(world, "claim.updated", shipment, {"claim": claim.number, "status": "acknowledged", "at": timezone.now().isoformat()})
    until(world, lambda: Claim.objects.filter(pk=claim.pk, status="acknowledged").exists(), "the acknowledgement")
    _event(
        world,
        "claim.updated",
        shipment,
        {"claim": claim.number, "status": "decided", "amount_settled": "250.00", "note": "Offer: 250 against invoice"},
    )
    done = until(world, lambda: Run.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).first(), "the run ending")
    assert (done.status, done.current_step) == ("succeeded", "closed")
    with schema_context(world.acme.schema):
        claim.refresh_from_db()
        assert (claim.status, str(claim.amount_settled), claim.decision_note) == ("decided", "250.00", "Offer: 250 against invoice")
        assert claim.acknowledged_at is not None and claim.decided_at is not None
        answers = [execution.output for execution in StepExecution.objects.filter(run=run, step_id="answer").order_by("pk")]
        assert [(answer["status"], answer["acknowledged_late"]) for answer in answers] == [("acknowledged", False), ("decided", False)]
        assert not StepExecution.objects.filter(run=run, step_id="escalate").exists()


@pytest.mark.worker
def test_an_acknowledgement_missing_after_30_days_escalates_once_and_a_late_one_is_recorded_as_late(world, worker, flow, tidy):
    shipment = _shipment(world)
    tidy(shipment.reference)
    filed = timezone.now() - dt.timedelta(days=31)
    _event(
        world,
        "claim.reported",
        shipment,
        {
            "shipment": shipment.reference,
            "kind": "damage",
            "amount": "1200.00",
            "description": "Forklift damage",
            "filed_at": filed.isoformat(),
        },
    )
    run = until(world, lambda: _run_of(shipment, flow).filter(current_step="wait_carrier").first(), "the claim filed")
    escalated = until(world, lambda: StepExecution.objects.filter(run=run, step_id="escalate").first(), "the escalation")
    assert escalated.output["to_roles"] == ["finance", "tenant_admin"] and escalated.output["template"] == "claim-deadline-missed"
    # The clock keeps ticking (every 2 s here) without escalating again.
    until(world, lambda: StepExecution.objects.filter(run=run, step_id="clock").count() >= 3, "two more checks of the clock")
    with schema_context(world.acme.schema):
        claim = Claim.objects.get(shipment=shipment)
        assert StepExecution.objects.filter(run=run, step_id="escalate").count() == 1
        case = ExceptionCase.objects.get(shipment=shipment, type="other", status="open")
        assert case.reason.startswith(f"FNCE did not acknowledge claim {claim.number} by ") and "late by 1 days" in case.reason
        assert case.severity == "high" and case.details["stage"] == "acknowledge"

    _event(world, "claim.updated", shipment, {"claim": claim.number, "status": "acknowledged", "at": timezone.now().isoformat()})
    answer = until(world, lambda: StepExecution.objects.filter(run=run, step_id="answer").first(), "the late acknowledgement")
    assert (answer.output["status"], answer.output["acknowledged_late"]) == ("acknowledged", True)
    with schema_context(world.acme.schema):
        assert Claim.objects.get(pk=claim.pk).status == "acknowledged"
