"""Template 2, carrier exception management: the template is valid and clones with its defaults;
its Baton actions open a prioritised exception once per shipment and type, propose and record a
recovery, draft the customer's update, and refuse to close without a root cause. End to end on a
real worker: a late ETA in a carrier webhook opens exactly one exception within 5 s and starts
the run; choosing a recovery and closing with a root cause completes it, and a closing without
one is asked again."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from connectors.models import InboundEvent
from logistics.actions.exceptions import ROOT_CAUSE_PATTERN, priority_of, root_cause_read
from logistics.library import domain_templates
from logistics.library.carrier_exceptions import TEMPLATE
from logistics.models import ExceptionCase, Location, Shipment, StopKind
from logistics.services import StopInput, shipment_create, tracking_event_record
from logistics.tracking_inbound import pickups_missed_scan_all
from tests.logistics.conftest import SYSTEM, hours
from tests.logistics.flows import clone_published
from tests.logistics.test_tracking_inbound import (
    carrier_remove,
    carrier_with_shipment,
    deliver_webhook,
    tracker,
    until,
)
from tests.processes import celery_worker
from tests.workflows.conftest import publish
from workflows.actions import ActionRefused, action_call
from workflows.engine import cel_evaluate
from workflows.models import ActionReceipt, Approval, BufferedEvent, Definition, DefinitionVersion, Run
from workflows.operations import approval_decide
from workflows.validation import definition_validate, parameters_declared_problems

# --- the template ---------------------------------------------------------------------------------------


def test_the_template_is_in_the_library_valid_and_declares_every_parameter_it_uses():
    assert TEMPLATE in domain_templates()
    assert (TEMPLATE["key"], TEMPLATE["version"], TEMPLATE["category"]) == ("carrier-exception-management", "1.1.0", "exceptions")
    assert definition_validate(TEMPLATE["definition"], placeholders=True) == []
    assert parameters_declared_problems(TEMPLATE["definition"], TEMPLATE["parameters_schema"]) == []
    assert "**Trigger**" in TEMPLATE["documentation"] and "root cause" in TEMPLATE["documentation"]


def _cloned(tenant_world, *, key: str, parameters: dict | None = None) -> Definition:
    return clone_published(tenant_world, publish(TEMPLATE, key=key), key=key, name="Carrier exceptions", parameters=parameters or {})


@pytest.mark.django_db
def test_a_tenant_clones_it_with_the_defaults_and_its_own_roles(world):
    definition = _cloned(
        world.acme, key=f"cem-{uuid.uuid4().hex[:8]}", parameters={"handler_role": "customer_service", "choose_within": "PT30M"}
    )
    with schema_context(world.acme.schema):
        version = DefinitionVersion.objects.get(definition=definition, number=1)
    steps = {step["id"]: step for step in version.spec["steps"]}
    assert steps["choose-recovery"]["assignee_roles"] == ["customer_service"] and steps["choose-recovery"]["due"] == "PT30M"
    assert steps["choose-recovery"]["escalate_to"] == ["tenant_admin"]
    assert steps["customer-update"]["channel"] == "email" and steps["open-exception"]["input"]["high_value_rate"] == 5000
    assert version.parameters["send_customer_update"] is True and version.spec["triggers"][0]["event_type"] == "shipment.delay_detected"


@pytest.mark.parametrize(
    ("comment", "given"),
    [
        ("weather: snow closed I-80", "weather"),
        ("Root cause: carrier – the driver ran out of hours", "carrier"),
        ("no fault, the consignee moved the appointment", "no_fault"),
        ("  CUSTOMS hold", "customs"),
        ("", ""),
        ("fixed it", ""),
        ("the carrier was late", ""),  # the root cause opens the comment
        ("carriers", ""),
    ],
)
def test_the_closing_decision_and_the_close_action_read_the_same_root_cause(comment, given):
    assert root_cause_read(comment) == given
    decided = cel_evaluate(
        f"context['confirm-close'].comment.matches('{ROOT_CAUSE_PATTERN}')", {"context": {"confirm-close": {"comment": comment}}}
    )
    assert bool(decided) == bool(given)


def test_priority_weighs_sla_risk_customer_tier_and_margin():
    now = hours(0)
    plain = Shipment(reference="SH-P", planned_rate=Decimal("1200"), currency="USD")
    late = {"cause": "eta_late", "late_by_minutes": 90, "promised_at": hours(72).isoformat()}
    assert priority_of(delay=late, shipment=plain, tier="standard", high_value_rate=Decimal("5000"), now=now).severity == "low"
    soon = {**late, "promised_at": hours(10).isoformat()}
    assert priority_of(delay=soon, shipment=plain, tier="standard", high_value_rate=Decimal("5000"), now=now).severity == "medium"
    valuable = Shipment(reference="SH-V", planned_rate=Decimal("9000"), actual_rate=Decimal("9400"), currency="USD")
    weighed = priority_of(
        delay={**soon, "late_by_minutes": 600}, shipment=valuable, tier="critical", high_value_rate=Decimal("5000"), now=now
    )
    assert (weighed.severity, weighed.score) == ("critical", 7)
    assert weighed.factors == [
        "late by 10 h 00 min (+2)",
        "the promise falls due within 24 h (+1)",
        "critical customer (+2)",
        "high-value load: 9000 USD (+1)",
        "no margin left: the actual rate is at or above the planned one (+1)",
    ]
    failed = priority_of(delay={"cause": "delivery_failed"}, shipment=plain, tier="priority", high_value_rate=Decimal("5000"), now=now)
    assert (failed.severity, failed.score) == ("medium", 3)


# --- the actions ----------------------------------------------------------------------------------------


def _delay(shipment: Shipment, **changes) -> dict:
    return {
        "type": "delay",
        "cause": "eta_late",
        "reason": "ETA is 6 h after the delivery appointment",
        "shipment_id": shipment.pk,
        "shipment": shipment.reference,
        "promised_at": hours(30).isoformat(),
        "estimated_at": hours(36).isoformat(),
        "late_by_minutes": 360,
        "customer_account_id": shipment.customer_account_id,
        **changes,
    }


def _call(acme, action: str, payload: dict, key: str) -> dict:
    return action_call(tenant=acme.schema, action=action, payload=payload, idempotency_key=key)


@pytest.fixture
def moving(acme, places) -> Shipment:
    """A shipment on its way (picked up), due at its delivery appointment at hours(30)."""
    origin, destination = places
    shipment = shipment_create(
        customer_account=acme.customer_accounts[0],
        reference="SH-EXC",
        carrier_scac="ODFL",
        pro_number="PRO-EXC",
        planned_rate="2400",
        stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination, appointment_end=hours(30))],
        actor=SYSTEM,
    )
    tracking_event_record(shipment=shipment, source="api", status="in_transit", occurred_at=hours(3), actor=SYSTEM)
    return shipment


def test_opening_is_once_per_shipment_and_type_and_a_repeated_step_answers_the_same(acme, moving):
    opened = _call(acme, "exception.open", {"event": _delay(moving)}, "501:open-exception")
    assert opened["created"] and opened["type"] == "delay" and opened["shipment"] == "SH-EXC"
    exception = ExceptionCase.objects.get(pk=opened["exception_id"])
    assert exception.severity == opened["severity"] and exception.sla_due_at is not None
    assert exception.details["priority"]["factors"][0] == "late by 6 h 00 min (+2)"
    assert exception.opened_by_email == "system:workflow-run:501"
    assert _call(acme, "exception.open", {"event": _delay(moving)}, "501:open-exception") == opened  # the receipt answers
    joined = _call(acme, "exception.open", {"event": _delay(moving, cause="delivery_delayed", reason="SD")}, "502:open-exception")
    assert (joined["created"], joined["exception_id"]) == (False, exception.pk)
    exception.refresh_from_db()
    assert [item["cause"] for item in exception.details["also"]] == ["delivery_delayed"]
    assert ExceptionCase.objects.filter(shipment=moving).count() == 1


def test_the_actions_refuse_input_they_cannot_take_with_the_reason(acme, moving):
    with pytest.raises(ActionRefused, match="event.type 'late' is not an exception type"):
        _call(acme, "exception.open", {"event": _delay(moving, type="late")}, "503:open-exception")
    with pytest.raises(ActionRefused, match="There is no shipment 999999 in this workspace"):
        _call(acme, "exception.open", {"event": _delay(moving, shipment_id=999999)}, "504:open-exception")
    with pytest.raises(ActionRefused, match="exception_id must be the id of an exception, not None"):
        _call(acme, "exception.recovery_propose", {"exception_id": None}, "505:propose-recovery")


def test_recovery_is_proposed_chosen_by_the_approvers_words_and_the_approver_owns_it(acme, moving):
    opened = _call(acme, "exception.open", {"event": _delay(moving)}, "511:open-exception")
    proposed = _call(acme, "exception.recovery_propose", {"exception_id": opened["exception_id"], "expedite_premium_percent": 50}, "511:p")
    assert [option["key"] for option in proposed["options"]] == ["expedite", "reschedule"]  # picked up: no re-tender
    assert proposed["options"][0]["cost_estimate"] == "1200.00 USD" and proposed["recommended"] == "reschedule"
    draft = _call(acme, "exception.customer_update_draft", {"exception_id": opened["exception_id"]}, "511:draft-update")["draft"]
    assert draft["subject"] == "Update on shipment SH-EXC" and "New estimated delivery: 2026-03-03 20:00 UTC." in draft["body"]
    assert draft["to"] == [acme.users["customer"].email]
    dispatcher, planner = acme.users["dispatcher"], acme.users["planner"]
    rejected = _call(
        acme,
        "exception.recovery_choose",
        {"exception_id": opened["exception_id"], "decision": "rejected", "comment": "none of these", "decided_by": planner.email},
        "511:record-recovery",
    )
    assert (rejected["chosen"], rejected["owner"]) == (None, planner.email)
    off_list = _call(
        acme,
        "exception.recovery_choose",
        {"exception_id": opened["exception_id"], "decision": "approved", "comment": "re-tender it to SAIA", "decided_by": planner.email},
        "512:record-recovery",
    )
    assert (off_list["chosen"], off_list["off_the_list"]) == ("re-tender", True)
    chosen = _call(
        acme,
        "exception.recovery_choose",
        {
            "exception_id": opened["exception_id"],
            "decision": "approved",
            "comment": "Expedite, team driver",
            "decided_by": dispatcher.email,
        },
        "513:record-recovery",
    )
    assert chosen == {"exception_id": opened["exception_id"], "chosen": "expedite", "off_the_list": False, "owner": dispatcher.email}
    exception = ExceptionCase.objects.get(pk=opened["exception_id"])
    assert (exception.owner_id, exception.status, exception.details["recovery"]["chosen"]) == (dispatcher.pk, "in_progress", "expedite")
    assert exception.details["customer_update"]["subject"] == "Update on shipment SH-EXC"


def test_closing_without_a_root_cause_is_refused_with_the_reason_and_with_one_it_closes(acme, moving):
    opened = _call(acme, "exception.open", {"event": _delay(moving)}, "521:open-exception")
    with pytest.raises(ActionRefused) as refused:
        _call(acme, "exception.close", {"exception_id": opened["exception_id"], "root_cause": "sorted"}, "521:close-exception")
    assert str(refused.value) == (
        f"Closing exception {opened['exception_id']} needs its root cause: start the comment with one of "
        "carrier, shipper, consignee, weather, traffic, equipment, customs, data, system, no_fault, other (got 'sorted')."
    )
    assert ExceptionCase.objects.get(pk=opened["exception_id"]).status == "open"
    assert not ActionReceipt.objects.filter(idempotency_key="521:close-exception").exists()  # a refusal is not an answer to keep
    escalated = _call(acme, "exception.escalate", {"exception_id": opened["exception_id"], "reason": "still stuck"}, "521:escalate")
    assert escalated["escalation_level"] == 1
    closed = _call(acme, "exception.close", {"exception_id": opened["exception_id"], "root_cause": "Weather - snow"}, "521:close-exception")
    assert closed == {"exception_id": opened["exception_id"], "root_cause": "weather", "closed": True, "already_closed": False}
    exception = ExceptionCase.objects.get(pk=opened["exception_id"])
    assert (exception.status, exception.root_cause, exception.resolution) == ("closed", "weather", "Recovery: none chosen.")


# --- end to end on a real worker -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("exceptions-worker") / "worker.log") as process:
        yield process


@pytest.fixture
def flow(world, committed):
    """Template 2 cloned and published in Acme, and a carrier webhook with a shipment due in 10 h."""
    definition = _cloned(world.acme, key=f"cem-{uuid.uuid4().hex[:8]}")
    carrier = carrier_with_shipment(world.acme, f"PRO-E2E-{uuid.uuid4().hex[:4]}", delivery_by=timezone.now() + timedelta(hours=10))
    yield definition, carrier
    with schema_context(world.acme.schema):
        runs = list(Run.objects.filter(definition=definition).values_list("pk", flat=True))
        for run_id in runs:
            ActionReceipt.objects.filter(idempotency_key__startswith=f"{run_id}:").delete()
        Run.objects.filter(pk__in=runs).delete()
        BufferedEvent.objects.filter(event_id__startswith=f"delay:{carrier.shipment_id}:").delete()
        Definition.objects.filter(pk=definition.pk).update(published_version=None)
        DefinitionVersion.objects.filter(definition=definition).delete()
        Definition.objects.filter(pk=definition.pk).delete()
    carrier_remove(carrier)


def _run_at(world, definition, step: str) -> Run | None:
    with schema_context(world.acme.schema):
        run = Run.objects.filter(definition=definition).first()
    return run if run is not None and run.status == "waiting" and run.current_step == step else None


def _decide(world, run: Run, step: str, comment: str) -> None:
    with schema_context(world.acme.schema):
        approval = Approval.objects.get(run=run, step_id=step, status="pending")
        approval_decide(approval=approval, decision="approved", actor=world.acme.users["dispatcher"], comment=comment)


@pytest.mark.worker
def test_a_late_eta_opens_one_exception_within_5_s_and_choosing_and_closing_complete_the_run(world, flow, worker):
    definition, carrier = flow
    with schema_context(world.acme.schema):
        pro = Shipment.objects.get(pk=carrier.shipment_id).pro_number
    now = timezone.now()
    sent_at = time.monotonic()
    sent = deliver_webhook(
        world.acme, carrier.key, carrier.secret, tracker(pro, "in_transit", at=now - timedelta(hours=1), est=now + timedelta(hours=16))
    )
    assert sent.status_code == 202

    def exception_open() -> ExceptionCase | None:
        with schema_context(world.acme.schema):
            return ExceptionCase.objects.filter(shipment_id=carrier.shipment_id, status="open").first()

    exception = until(exception_open, "no exception was opened for the late ETA", timeout=30)
    elapsed = time.monotonic() - sent_at
    with schema_context(world.acme.schema):
        received_at = InboundEvent.objects.get(pk=sent.json()["event_id"]).received_at
    assert elapsed < 5.0 and exception.opened_at - received_at < timedelta(seconds=5), (elapsed, exception.opened_at - received_at)
    assert exception.type == "delay" and exception.reason.startswith("ETA ") and exception.details["late_by_minutes"] == 360

    run = until(lambda: _run_at(world, definition, "choose-recovery"), "the run did not reach the choice of a recovery")
    assert run.business_key == f"event:delay:{carrier.shipment_id}:eta_late" and run.input["shipment_id"] == carrier.shipment_id
    # Later news of the same delay opens nothing more.
    again = deliver_webhook(world.acme, carrier.key, carrier.secret, tracker(pro, "in_transit", at=now, est=now + timedelta(hours=18)))
    until(lambda: _handed(world, again.json()["event_id"]), "the second event was not handed on")
    with schema_context(world.acme.schema):
        assert ExceptionCase.objects.filter(shipment_id=carrier.shipment_id).count() == 1
        assert Run.objects.filter(definition=definition).count() == 1
        proposed = ExceptionCase.objects.get(pk=exception.pk).details
    assert proposed["recovery"]["recommended"] == "reschedule" and proposed["customer_update"]["subject"].startswith("Update on shipment")

    _decide(world, run, "choose-recovery", "expedite – team driver from Denver")
    until(lambda: _run_at(world, definition, "confirm-close"), "the run did not ask for the closing")
    with schema_context(world.acme.schema):
        exception.refresh_from_db()
    assert exception.details["recovery"]["chosen"] == "expedite" and exception.owner_id == world.acme.users["dispatcher"].pk

    _decide(world, run, "confirm-close", "fixed")  # no root cause: asked again
    with schema_context(world.acme.schema):

        def asked_again() -> bool:
            return Approval.objects.filter(run=run, step_id="confirm-close", status="pending").exists()

        until(asked_again, "the closing without a root cause was not asked again")
        assert ExceptionCase.objects.get(pk=exception.pk).status == "in_progress"
    _decide(world, run, "confirm-close", "weather: snow closed I-80")

    def finished() -> Run | None:
        with schema_context(world.acme.schema):
            done = Run.objects.get(pk=run.pk)
        return done if done.status == "succeeded" else None

    until(finished, "the run did not complete after the closing with a root cause")
    with schema_context(world.acme.schema):
        exception.refresh_from_db()
        steps = list(run.steps.order_by("pk").values_list("step_id", flat=True))
    assert (exception.status, exception.root_cause) == ("closed", "weather")
    assert steps[-3:] == ["has-root-cause", "close-exception", "closed"] and "ask-root-cause" in steps


def _handed(world, event_id: int) -> bool:
    with schema_context(world.acme.schema):
        return InboundEvent.objects.get(pk=event_id).status == "delivered"


@pytest.mark.worker
def test_the_beat_scan_turns_a_pickup_that_never_happened_into_a_missed_pickup_exception(world, flow, worker):
    definition, _carrier = flow
    suffix = uuid.uuid4().hex[:6]
    now = timezone.now()
    with schema_context(world.acme.schema):
        dock = Location.objects.create(code=f"dock-{suffix}", name="Memphis DC")
        shipment = shipment_create(
            customer_account=world.acme.customer_accounts[1],
            reference=f"SH-NOSHOW-{suffix}",
            carrier_scac="ODFL",
            stops=[
                StopInput(1, StopKind.PICKUP, dock, appointment_start=now - timedelta(hours=3), appointment_end=now - timedelta(hours=1))
            ],
            actor=SYSTEM,
        )
    try:
        pickups_missed_scan_all.apply_async()  # what beat sends every minute: fanned out to every ready tenant

        def missed() -> ExceptionCase | None:
            with schema_context(world.acme.schema):
                return ExceptionCase.objects.filter(shipment=shipment, type="missed_pickup").first()

        exception = until(missed, "the scan did not open a missed-pickup exception")
        assert exception.reason.startswith("Not picked up by the end of the pickup appointment") and "Memphis DC" in exception.reason
        run = until(lambda: _run_of(world, definition, shipment), "the missed pickup's run did not ask for a recovery")
        assert run.business_key == f"event:delay:{shipment.pk}:pickup_missed"
        with schema_context(world.acme.schema):
            assert ExceptionCase.objects.get(pk=exception.pk).details["recovery"]["recommended"] == "re-tender"
    finally:
        with schema_context(world.acme.schema):
            runs = list(Run.objects.filter(definition=definition, input__shipment_id=shipment.pk).values_list("pk", flat=True))
            for run_id in runs:
                ActionReceipt.objects.filter(idempotency_key__startswith=f"{run_id}:").delete()
            Run.objects.filter(pk__in=runs).delete()
            BufferedEvent.objects.filter(event_id__startswith=f"delay:{shipment.pk}:").delete()
            ExceptionCase.objects.filter(shipment=shipment).delete()
            Shipment.objects.filter(pk=shipment.pk).delete()
            dock.delete()


def _run_of(world, definition, shipment) -> Run | None:
    with schema_context(world.acme.schema):
        run = Run.objects.filter(definition=definition, input__shipment_id=shipment.pk).first()
    return run if run is not None and run.status == "waiting" and run.current_step == "choose-recovery" else None
