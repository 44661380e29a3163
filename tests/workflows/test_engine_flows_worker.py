"""Escalation, cancel with compensation and a poison step on a real Celery worker and Redis, with
connector calls going over HTTP to a fake partner on loopback (so effects are seen from outside
the worker)."""

from __future__ import annotations

import time

import pytest
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tests.fake_partner import fake_partner
from tests.processes import celery_worker, suite_env
from tests.workflows.runs_setup import ORDER_SPEC, SYSTEM, definition_published, runs_delete
from workflows.models import Approval, Incident, Run
from workflows.operations import run_cancel
from workflows.runs import run_start
from workflows.tasks import dispatch_fire_timers

pytestmark = pytest.mark.worker


@pytest.fixture(scope="module")
def partner():
    with fake_partner() as server:
        yield server


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker, partner):
    env = {**suite_env(), "BATON_CONNECTOR_HTTP_URL": partner.url}
    with celery_worker(tmp_path_factory.mktemp("flows-worker") / "worker.log", env=env) as process:
        yield process


@pytest.fixture
def cleanup(world, committed):
    definitions = []
    yield definitions.append
    for definition in definitions:
        with schema_context(world.acme.schema):
            Run.objects.filter(definition=definition, parent__isnull=False).delete()
        runs_delete(world.acme, definition)


def _until(world, check, what: str, timeout: float = 60.0, tick=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        with schema_context(world.acme.schema):
            last = check()
        if last:
            return last
        if tick:
            tick()
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen in {timeout} s (last: {last!r})")


def _start(world, definition, **input):
    with schema_context(world.acme.schema):
        run, _created = run_start(definition=definition, input=input, trigger="api", actor=SYSTEM)
    return run


ESCALATING = {
    "start": "ok",
    "steps": [
        {
            "id": "ok",
            "kind": "approval",
            "assignee_roles": ["planner"],
            "due": "PT2S",
            "escalate_to": ["tenant_admin"],
            "next": "done",
            "on_reject": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def test_an_approval_past_due_escalates_on_the_worker(world, worker, cleanup):
    definition = definition_published(world.acme, ESCALATING)
    cleanup(definition)
    run = _start(world, definition)
    approval = _until(world, lambda: Approval.objects.filter(run=run).first(), "the approval request")
    assert approval.escalation_level == 0
    escalated = _until(
        world,
        lambda: Approval.objects.filter(pk=approval.pk, escalation_level=1).first(),
        "the escalation",
        tick=dispatch_fire_timers.apply_async,  # what beat sends every few seconds
    )
    assert escalated.assignee_roles == ["planner", "tenant_admin"] and escalated.status == "pending"
    with schema_context(world.acme.schema):
        assert AuditEvent.objects.filter(action="workflow_approval.escalated", target_id=str(approval.pk)).count() == 1
        assert "escalated" in Run.objects.get(pk=run.pk).waiting_for


SAGA = {
    "start": "tender",
    "steps": [
        {"id": "tender", "kind": "connector", "connection": "carrier", "action": "tender_load", "input": {}, "next": "book"},
        {"id": "book", "kind": "connector", "connection": "carrier", "action": "book_dock", "input": {}, "next": "wait"},
        {"id": "wait", "kind": "wait_until", "until": "PT1H", "next": None},
        {"id": "untender", "kind": "connector", "connection": "carrier", "action": "cancel_tender", "input": {}, "next": None},
        {"id": "unbook", "kind": "connector", "connection": "carrier", "action": "release_dock", "input": {}, "next": None},
    ],
    "compensation": {"tender": "untender", "book": "unbook"},
}


def test_cancel_runs_compensation_on_the_worker_once_per_handler(world, worker, partner, cleanup):
    definition = definition_published(world.acme, SAGA)
    cleanup(definition)
    run = _start(world, definition)
    _until(world, lambda: Run.objects.filter(pk=run.pk, status="waiting").exists(), "the run parking at its wait")
    with schema_context(world.acme.schema):
        run_cancel(run=run, actor=world.acme.users["dispatcher"], reason="order withdrawn")
    done = _until(world, lambda: Run.objects.filter(pk=run.pk, status="compensated").first(), "compensation")
    assert "order withdrawn" in done.error
    for step in ("tender", "book", "unbook", "untender"):
        assert len(partner.effects_for(f"{run.pk}:{step}", tenant=world.acme.schema)) == 1, step
    order = [effect.action for effect in partner.effects if effect.idempotency_key.startswith(f"{run.pk}:")]
    assert order == ["tender_load", "book_dock", "release_dock", "cancel_tender"]


def test_a_poison_step_is_dead_lettered_and_does_not_block_other_runs(world, worker, partner, cleanup):
    poison = {**ORDER_SPEC, "steps": [dict(step) for step in ORDER_SPEC["steps"]]}
    for step in poison["steps"]:
        if step["id"] == "tender":
            step["action"] = "poison"
            step["retry"] = {"attempts": 2, "backoff_seconds": 0.5}
    bad = definition_published(world.acme, poison)
    good = definition_published(world.acme)
    cleanup(bad)
    cleanup(good)
    partner.fail_next(times=1000, status=500, action="poison")
    order = {"order_id": "SO-P", "total": 10, "lines": [{"sku": "P"}]}
    bad_run = _start(world, bad, **order)
    good_runs = [_start(world, good, **{**order, "order_id": f"SO-G{n}"}) for n in range(5)]
    incident = _until(
        world, lambda: Incident.objects.filter(run=bad_run, status="open").first(), "the incident", tick=dispatch_fire_timers.apply_async
    )
    assert "failed after 2 attempts" in incident.error and incident.error_class == "HttpServerError"
    assert [attempt["attempt"] for attempt in incident.attempts] == [1, 2]
    finished = _until(world, lambda: Run.objects.filter(pk__in=[r.pk for r in good_runs], status="succeeded").count() == 5, "the good runs")
    assert finished
    with schema_context(world.acme.schema):
        assert Run.objects.get(pk=bad_run.pk).status == "failed"
