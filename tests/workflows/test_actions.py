"""Baton's own actions on the `baton` connection: applied once per step key, refusals fail the
step with the reason, a failing action leaves nothing behind."""

import pytest
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from governance.services import Actor, audit_record
from tests.workflows.runs_setup import definition_published, run_advanced, run_started, run_timeline
from workflows.actions import ActionRefused, action_call, action_register
from workflows.engine import ConnectorError
from workflows.models import ActionReceipt, Run

pytestmark = pytest.mark.django_db

CALLS: list[dict] = []


def _note(payload, *, idempotency_key):
    """A test action with a real effect: one audit row per application."""
    if not payload.get("text"):
        raise ActionRefused("a note needs a text")
    CALLS.append(payload)
    audit_record(actor=Actor.system("tests"), action="tests.noted", data={"text": payload["text"], "key": idempotency_key})
    if payload.get("explode"):
        raise RuntimeError("the disk is full")
    return {"noted": payload["text"], "count": len(CALLS)}


@pytest.fixture(autouse=True)
def _registered():
    action_register("tests.note", _note, "Keep a note (tests)")
    CALLS.clear()


SPEC = {
    "start": "note",
    "steps": [
        {
            "id": "note",
            "kind": "connector",
            "connection": "baton",
            "action": "tests.note",
            "input": {"text": "$.input.text"},
            "next": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def test_a_step_on_the_baton_connection_applies_the_action_once(world):
    definition = definition_published(world.acme, SPEC)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"text": "hello"}))
    assert run.status == "succeeded" and run.context["note"] == {"noted": "hello", "count": 1}
    with schema_context(world.acme.schema):
        key = f"{run.pk}:note"
        assert ActionReceipt.objects.get(idempotency_key=key).result == {"noted": "hello", "count": 1}
        # The step tried again (a lost commit): the stored answer, no second effect.
        assert action_call(tenant=world.acme.schema, action="tests.note", payload={"text": "hello"}, idempotency_key=key) == {
            "noted": "hello",
            "count": 1,
        }
        assert AuditEvent.objects.filter(action="tests.noted", data__key=key).count() == 1
    assert len(CALLS) == 1


def test_a_refused_input_fails_the_step_with_the_reason(world):
    definition = definition_published(world.acme, SPEC)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"text": ""}))
    assert run.status == "failed" and "a note needs a text" in run.error
    assert run_timeline(world.acme, run)[0][:2] == ("note", "failed")


def test_an_action_that_fails_leaves_no_effect_and_no_receipt(world):
    with schema_context(world.acme.schema):
        with pytest.raises(ConnectorError) as raised:
            action_call(tenant=world.acme.schema, action="tests.note", payload={"text": "x", "explode": True}, idempotency_key="9:note")
        assert raised.value.kind == "ActionFailed" and "the disk is full" in str(raised.value)
        assert not ActionReceipt.objects.filter(idempotency_key="9:note").exists()
        assert not AuditEvent.objects.filter(action="tests.noted", data__key="9:note").exists()
        with pytest.raises(ActionRefused, match="no action 'tests.unknown'"):
            action_call(tenant=world.acme.schema, action="tests.unknown", payload={}, idempotency_key="9:other")


def test_receipts_are_per_tenant(world):
    for tenant in (world.acme, world.globex):
        assert action_call(tenant=tenant.schema, action="tests.note", payload={"text": "same key"}, idempotency_key="1:note")["noted"]
    assert len(CALLS) == 2  # the same key in another workspace is another step


def test_an_action_caught_in_a_deadlock_goes_again_and_applies_once(world):
    """A deadlock rolls the whole action back; it is applied again (the step does not fail), and
    only the attempt that committed left an effect. Any other database error fails the call."""
    import psycopg
    from django.db import OperationalError

    attempts: list[str] = []

    def _deadlocked_once(payload, *, idempotency_key):
        attempts.append(idempotency_key)
        audit_record(actor=Actor.system("tests"), action="tests.noted", data={"text": "deadlock", "key": idempotency_key})
        if len(attempts) == 1:
            raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected("deadlock detected")
        if payload.get("locked"):
            raise OperationalError("could not obtain lock") from psycopg.errors.LockNotAvailable("could not obtain lock")
        return {"attempts": len(attempts)}

    action_register("tests.deadlocked", _deadlocked_once, "Deadlocked once (tests)")
    with schema_context(world.acme.schema):
        assert action_call(tenant=world.acme.schema, action="tests.deadlocked", payload={}, idempotency_key="11:dl") == {"attempts": 2}
        assert AuditEvent.objects.filter(action="tests.noted", data__key="11:dl").count() == 1  # the first attempt's row rolled back
        assert ActionReceipt.objects.filter(idempotency_key="11:dl").count() == 1
        attempts.clear()
        with pytest.raises(ConnectorError, match="could not obtain lock"):
            action_call(tenant=world.acme.schema, action="tests.deadlocked", payload={"locked": True}, idempotency_key="11:lock")
        assert len(attempts) == 2  # the deadlock went again; the lock timeout did not


def _render(payload, *, idempotency_key):
    """A heavy test action (a PDF, say): counted per call."""
    CALLS.append(payload)
    return {"rendered": payload["text"]}


LIGHT = {
    "start": "note",
    "steps": [
        {"id": "note", "kind": "transform", "mapping": {"text": "$.input.text"}, "next": "done"},
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def test_heavy_steps_are_rationed_per_advance_and_the_rest_stay_ready_for_the_next(world, settings):
    from workflows.engine import runs_advance_ready

    settings.BATON_ENGINE_HEAVY_PER_ADVANCE = 1  # one call per round: it runs on this thread, inside the test's transaction
    action_register("tests.render", _render, "Render (tests)", heavy=True)
    heavy = definition_published(world.acme, {**SPEC, "steps": [{**SPEC["steps"][0], "action": "tests.render"}, SPEC["steps"][1]]})
    renders = [run_started(world.acme, heavy, input={"text": f"invoice {n}"}) for n in range(3)]
    light = run_started(world.acme, definition_published(world.acme, LIGHT), input={"text": "a delay"})
    with schema_context(world.acme.schema):
        statuses = runs_advance_ready(owner="worker-1", limit=100)
        assert statuses[light.pk] == "succeeded"  # the light run went ahead of the renders it queued behind
        assert [statuses[run.pk] for run in renders] == ["succeeded", "queued", "queued"]
        waiting = Run.objects.filter(pk__in=[run.pk for run in renders[1:]]).order_by("pk")
        assert all(run.lease_owner == "" and run.ready_at == start.ready_at for run, start in zip(waiting, renders[1:], strict=True))
        assert [call["text"] for call in CALLS] == ["invoice 0"]
        runs_advance_ready(owner="worker-1", limit=100)
        runs_advance_ready(owner="worker-1", limit=100)
        assert {run.status for run in Run.objects.filter(pk__in=[run.pk for run in renders])} == {"succeeded"}
        assert [call["text"] for call in CALLS] == ["invoice 0", "invoice 1", "invoice 2"]
