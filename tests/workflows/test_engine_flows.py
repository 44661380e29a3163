"""Incidents, operator actions, compensation, approvals, event waits, parallel branches and child
workflows, advanced in process (the worker tests run the same engine on a real worker)."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from django.core import signing
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tests.workflows.runs_setup import ORDER_SPEC, SYSTEM, definition_published, run_advanced, run_started, run_timeline, version_publish
from workflows.engine import ConnectorError, runs_advance, runs_claim, runs_reap, timers_fire_due
from workflows.models import Approval, BufferedEvent, EventWait, Incident, Run, Timer
from workflows.operations import (
    IncidentFilter,
    OperationRefused,
    approval_decide,
    approval_link_read,
    approval_link_token,
    incident_restart,
    incident_retry,
    incidents_retry,
    run_cancel,
    run_pause,
    run_resume,
)
from workflows.waits import Delivery, event_deliver, events_deliver

pytestmark = pytest.mark.django_db

END = {"id": "done", "kind": "end", "outcome": "succeeded"}


def _with_retry(attempts: int) -> dict:
    spec = copy.deepcopy(ORDER_SPEC)
    for step in spec["steps"]:
        if step["id"] == "tender":
            step["retry"] = {"attempts": attempts, "backoff_seconds": 5}
    return spec


def _refresh(world, run: Run) -> Run:
    with schema_context(world.acme.schema):
        return Run.objects.select_related("definition_version").get(pk=run.pk)


def _incident(world, run: Run) -> Incident:
    with schema_context(world.acme.schema):
        return Incident.objects.select_related("run").get(run=run, status="open")


def _drain(world, owner: str = "worker-1", now=None) -> None:
    """Fire what is due and advance every ready run until nothing is left (children included)."""
    from workflows.engine import run_advance

    with schema_context(world.acme.schema):
        for _ in range(20):
            timers_fire_due(now=now)
            claimed = runs_claim(owner=owner, limit=100, lease_seconds=60)
            if not claimed:
                return
            for run_id in claimed:
                run_advance(run_id=run_id, owner=owner)


def _audit_actions(world, target_id: int) -> list[str]:
    with schema_context(world.acme.schema):
        return list(AuditEvent.objects.filter(target_id=str(target_id)).order_by("pk").values_list("action", flat=True))


# --- incidents ---------------------------------------------------------------------------------------


def test_a_step_that_exhausts_its_attempts_opens_an_incident_with_its_history(world, fake):
    fake.fail_next("tender_load", ConnectorError("carrier down", kind="Unavailable"), times=2)
    definition = definition_published(world.acme, _with_retry(2))
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert run.status == "waiting"
    _drain(world, now=timezone.now() + timedelta(minutes=5))
    run = _refresh(world, run)
    assert run.status == "failed" and run.current_step == "tender"
    incident = _incident(world, run)
    assert (incident.step_id, incident.step_kind, incident.error_class) == ("tender", "connector", "Unavailable")
    assert [attempt["attempt"] for attempt in incident.attempts] == [1, 2]
    assert "carrier down" in incident.attempts[-1]["error"] and "failed after 2 attempts" in incident.error
    assert incident.step_input["action"] == "tender_load" and incident.step_input["payload"]["order"] == "SO-1"


def test_retry_with_an_edited_input_runs_the_failed_step_again_and_audits_the_edit(world, fake):
    definition = definition_published(world.acme)
    fake.fail_next("tender_load", ConnectorError("bad order", kind="Rejected"))
    run = run_advanced(world.acme, run_started(world.acme, definition))
    incident = _incident(world, run)
    with schema_context(world.acme.schema):
        incident_retry(incident=incident, input={**run.input, "order_id": "SO-1-FIXED"}, actor=world.acme.users["planner"], comment="typo")
    run = _refresh(world, run)
    assert (run.status, run.error) == ("running", "") and run.ready_at is not None
    _drain(world)
    run = _refresh(world, run)
    assert run.status == "succeeded"
    assert run_timeline(world.acme, run)[-3:] == [("tender", "failed", 1), ("tender", "succeeded", 2), ("done", "succeeded", 1)]
    assert len(fake.effects) == 1 and fake.effects[0]["payload"]["order"] == "SO-1"  # price step's output is the context
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.get(action="workflow_incident.retried", target_id=str(incident.pk))
        incident.refresh_from_db()
    assert event.data["edited"]["input"] == {"keys": ["order_id"], "before": {"order_id": "SO-1"}, "after": {"order_id": "SO-1-FIXED"}}
    assert (incident.status, incident.resolution, incident.resolved_by_email) == ("resolved", "retried", world.acme.users["planner"].email)
    with schema_context(world.acme.schema), pytest.raises(OperationRefused, match="already resolved"):
        incident_retry(incident=incident, actor=SYSTEM)


def test_a_retried_step_gets_its_attempts_afresh(world, fake):
    fake.fail_next("tender_load", ConnectorError("down", kind="Unavailable"), times=3)
    definition = definition_published(world.acme, _with_retry(2))
    run = run_started(world.acme, definition)
    _drain(world, now=timezone.now() + timedelta(minutes=5))
    with schema_context(world.acme.schema):
        incident_retry(incident=_incident(world, run), actor=SYSTEM)
    _drain(world, now=timezone.now() + timedelta(minutes=10))
    run = _refresh(world, run)
    assert run.status == "succeeded", run.error
    assert [entry for entry in run_timeline(world.acme, run) if entry[0] == "tender"] == [
        ("tender", "failed", 1),
        ("tender", "failed", 2),
        ("tender", "failed", 3),
        ("tender", "succeeded", 4),
    ]


def test_restart_runs_from_the_beginning_on_the_newer_version_with_new_step_keys(world, fake):
    spec = copy.deepcopy(ORDER_SPEC)
    spec["steps"][0]["cases"][0]["when"] = "input.total > input.missing"  # fails: no such key
    definition = definition_published(world.acme, spec)
    run = run_advanced(world.acme, run_started(world.acme, definition))
    incident = _incident(world, run)
    assert run.status == "failed" and "input.total > input.missing" in incident.error
    version_publish(world.acme, definition, ORDER_SPEC)
    with schema_context(world.acme.schema):
        incident_restart(incident=incident, actor=SYSTEM, comment="fixed the rule")
    _drain(world)
    run = _refresh(world, run)
    assert (run.status, run.generation, run.definition_version.number) == ("succeeded", 1, 2)
    assert fake.effects[0]["idempotency_key"] == f"{run.pk}.1:tender"
    assert "workflow_incident.restarted" in _audit_actions(world, incident.pk)


def test_bulk_retry_takes_only_what_the_filter_matches(world, fake):
    definition = definition_published(world.acme)
    other = definition_published(world.acme)
    fake.fail_next("tender_load", ConnectorError("down", kind="Unavailable"), times=3)
    runs = [run_advanced(world.acme, run_started(world.acme, definition)) for _ in range(2)]
    stranger = run_advanced(world.acme, run_started(world.acme, other))
    with schema_context(world.acme.schema):
        outcome = incidents_retry(filter=IncidentFilter(definition=definition.key, error_class="Unavailable"), actor=SYSTEM)
    assert sorted(outcome.retried) == sorted(run.pk for run in runs) and outcome.skipped == {}
    assert _refresh(world, stranger).status == "failed"
    _drain(world)
    assert {_refresh(world, run).status for run in runs} == {"succeeded"}


def test_a_poison_run_does_not_hold_up_the_others_in_its_batch(world, fake):
    fake.fail_next("tender_load", ConnectorError("poison", kind="Poison"), times=1)
    definition = definition_published(world.acme)
    runs = [run_started(world.acme, definition, business_key=f"p-{n}") for n in range(4)]
    _drain(world)
    statuses = [_refresh(world, run).status for run in runs]
    assert statuses.count("failed") == 1 and statuses.count("succeeded") == 3


# --- pause, resume, cancel, compensation ---------------------------------------------------------------

SAGA = {
    "start": "tender",
    "steps": [
        {
            "id": "tender",
            "kind": "connector",
            "connection": "carrier",
            "action": "tender_load",
            "input": {"order": "$.input.order_id"},
            "next": "book",
        },
        {"id": "book", "kind": "connector", "connection": "carrier", "action": "book_dock", "input": {}, "next": "ok"},
        {"id": "ok", "kind": "approval", "assignee_roles": ["planner"], "next": "done", "on_reject": "fail"},
        END,
        {"id": "fail", "kind": "end", "outcome": "failed"},
        {
            "id": "untender",
            "kind": "connector",
            "connection": "carrier",
            "action": "cancel_tender",
            "input": {"order": "$.input.order_id"},
            "next": None,
        },
        {"id": "unbook", "kind": "connector", "connection": "carrier", "action": "release_dock", "input": {}, "next": None},
    ],
    "compensation": {"tender": "untender", "book": "unbook"},
}


def test_pause_keeps_the_engine_away_until_resumed(world, fake):
    definition = definition_published(world.acme)
    run = run_started(world.acme, definition)
    with schema_context(world.acme.schema):
        run_pause(run=run, actor=SYSTEM, reason="check the order")
        assert run.pk not in runs_claim(owner="w", limit=10)
        assert runs_reap() == 0 or _refresh(world, run).paused_at is not None
        with pytest.raises(OperationRefused, match="already paused"):
            run_pause(run=run, actor=SYSTEM)
        run_resume(run=run, actor=SYSTEM)
    _drain(world)
    assert _refresh(world, run).status == "succeeded"
    assert _audit_actions(world, run.pk)[-2:] == ["workflow_run.paused", "workflow_run.resumed"]


def test_cancel_runs_the_compensation_handlers_newest_first(world, fake):
    definition = definition_published(world.acme, SAGA)
    run = run_started(world.acme, definition)
    _drain(world)
    run = _refresh(world, run)
    assert (run.status, run.current_step) == ("waiting", "ok")
    with schema_context(world.acme.schema):
        run_cancel(run=run, actor=world.acme.users["dispatcher"], reason="customer withdrew")
        assert Approval.objects.get(run=run).status == "cancelled"
    assert _refresh(world, run).status == "compensating"
    _drain(world)
    run = _refresh(world, run)
    assert run.status == "compensated" and "customer withdrew" in run.error
    assert [effect["action"] for effect in fake.effects] == ["tender_load", "book_dock", "release_dock", "cancel_tender"]
    assert fake.effects[-1]["idempotency_key"] == f"{run.pk}:untender"
    with schema_context(world.acme.schema), pytest.raises(OperationRefused, match="already compensated"):
        run_cancel(run=run, actor=SYSTEM)


def test_a_failed_outcome_compensates_and_a_run_without_handlers_is_just_cancelled(world, fake):
    definition = definition_published(world.acme, SAGA)
    run = run_started(world.acme, definition)
    _drain(world)
    with schema_context(world.acme.schema):
        approval_decide(
            approval=Approval.objects.get(run=run), decision="rejected", comment="rate too high", actor=world.acme.users["planner"]
        )
    _drain(world)
    assert _refresh(world, run).status == "compensated"
    assert [effect["action"] for effect in fake.effects][-2:] == ["release_dock", "cancel_tender"]

    plain = definition_published(
        world.acme, {"start": "wait", "steps": [{"id": "wait", "kind": "wait_until", "until": "PT1H", "next": "done"}, END]}
    )
    other = run_advanced(world.acme, run_started(world.acme, plain))
    with schema_context(world.acme.schema):
        run_cancel(run=other, actor=SYSTEM)
    other = _refresh(world, other)
    assert other.status == "cancelled" and other.finished_at is not None
    _drain(world, now=timezone.now() + timedelta(hours=2))  # its timer fires harmlessly
    assert _refresh(world, other).status == "cancelled"


def test_a_run_that_fails_inside_a_batch_round_compensates_in_the_same_advance(world, fake):
    """The round that reaches the failed outcome keeps the compensating run: its handlers go on
    in the next rounds instead of the run sitting leased until the reaper frees it."""
    spec = copy.deepcopy(SAGA)
    spec["steps"][1]["next"] = "fail"  # tender, book, then the failed outcome: no wait on the way
    spec["steps"] = [step for step in spec["steps"] if step["id"] not in ("ok", "done")]
    run = run_started(world.acme, definition_published(world.acme, spec))
    with schema_context(world.acme.schema):
        assert runs_claim(owner="worker-1", limit=10, lease_seconds=60) == [run.pk]
        assert runs_advance([run.pk], owner="worker-1") == {run.pk: "compensated"}
    run = _refresh(world, run)
    assert (run.status, run.lease_owner, run.ready_at) == ("compensated", "", None)
    assert [effect["action"] for effect in fake.effects] == ["tender_load", "book_dock", "release_dock", "cancel_tender"]


# --- approvals -----------------------------------------------------------------------------------------

APPROVE = {
    "start": "ok",
    "steps": [
        {
            "id": "ok",
            "kind": "approval",
            "title": "Release the load",
            "assignee_roles": ["planner"],
            "due": "PT1H",
            "escalate_to": ["tenant_admin"],
            "next": "done",
            "on_reject": "rejected",
            "on_changes_requested": "rework",
        },
        END,
        {"id": "rejected", "kind": "end", "outcome": "cancelled"},
        {"id": "rework", "kind": "end", "outcome": "succeeded"},
    ],
}


@pytest.mark.parametrize(
    ("decision", "comment", "last_step", "status"),
    [
        ("approved", "", "done", "succeeded"),
        ("rejected", "no", "rejected", "cancelled"),
        ("changes_requested", "fix rate", "rework", "succeeded"),
    ],
)
def test_an_approval_waits_for_an_assignee_and_follows_the_decision(world, fake, decision, comment, last_step, status):
    definition = definition_published(world.acme, APPROVE)
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert run.status == "waiting" and "approval by planner" in run.waiting_for
    with schema_context(world.acme.schema):
        approval = Approval.objects.get(run=run)
        assert approval.title == "Release the load" and approval.due_at is not None
        assert Timer.objects.get(run=run).kind == "approval_due"
        with pytest.raises(OperationRefused, match="other roles"):
            approval_decide(approval=approval, decision="approved", actor=world.acme.users["finance"])
        approval_decide(approval=approval, decision=decision, comment=comment, actor=world.acme.users["planner"])
        with pytest.raises(OperationRefused, match="already"):
            approval_decide(approval=approval, decision="approved", actor=world.acme.users["tenant_admin"])
    _drain(world)
    run = _refresh(world, run)
    assert (run.status, run_timeline(world.acme, run)[-1][0]) == (status, last_step)
    assert run.context["ok"]["decision"] == decision and run.context["ok"]["decided_by"] == world.acme.users["planner"].email


def test_reject_and_request_changes_need_a_comment(world, fake):
    definition = definition_published(world.acme, APPROVE)
    run = run_advanced(world.acme, run_started(world.acme, definition))
    with schema_context(world.acme.schema):
        approval = Approval.objects.get(run=run)
        for decision in ("rejected", "changes_requested"):
            with pytest.raises(OperationRefused, match="comment"):
                approval_decide(approval=approval, decision=decision, comment=" ", actor=world.acme.users["planner"])


def test_an_approval_past_due_escalates(world, fake):
    definition = definition_published(world.acme, APPROVE)
    run = run_advanced(world.acme, run_started(world.acme, definition))
    with schema_context(world.acme.schema):
        assert timers_fire_due(now=timezone.now() + timedelta(minutes=61)) == 1
    run = run_advanced(world.acme, run)
    with schema_context(world.acme.schema):
        approval = Approval.objects.get(run=run)
        timers = list(Timer.objects.filter(run=run).order_by("pk"))
    assert (approval.status, approval.escalation_level, approval.assignee_roles) == ("pending", 1, ["planner", "tenant_admin"])
    assert approval.due_at > timezone.now() + timedelta(minutes=50) and run.status == "waiting" and "escalated" in run.waiting_for
    assert [(timer.kind, timer.fired_at is None) for timer in timers] == [("approval_due", False), ("approval_due", True)]
    assert "workflow_approval.escalated" in _audit_actions(world, approval.pk)
    with schema_context(world.acme.schema):
        approval_decide(approval=approval, decision="approved", actor=world.acme.users["tenant_admin"])
    _drain(world)
    assert _refresh(world, run).status == "succeeded"


def test_signed_approval_links_are_bound_to_the_workspace_and_refuse_tampering(world, fake):
    definition = definition_published(world.acme, APPROVE)
    run = run_advanced(world.acme, run_started(world.acme, definition))
    with schema_context(world.acme.schema):
        approval = Approval.objects.get(run=run)
        token = approval_link_token(approval=approval, user_id=7, decision="approved")
        link = approval_link_read(token)
        assert (link.approval_id, link.user_id, link.decision) == (approval.pk, 7, "approved")
        with pytest.raises(OperationRefused, match="not valid"):
            approval_link_read(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
        with pytest.raises(OperationRefused, match="expired"):
            approval_link_read(
                signing.dumps({"s": world.acme.schema, "a": 1, "u": 1, "d": "approved"}, salt="baton.workflows.approval-link"), max_age=-1
            )
    with schema_context(world.globex.schema), pytest.raises(OperationRefused, match="another workspace"):
        approval_link_read(token)


# --- event waits -----------------------------------------------------------------------------------------

WAIT_EVENT = {
    "start": "pod",
    "steps": [
        {
            "id": "pod",
            "kind": "wait_event",
            "event_type": "tracking.delivered",
            "correlate": {"shipment": "input.shipment"},
            "timeout": "PT4H",
            "next": "done",
            "on_timeout": "late",
        },
        END,
        {"id": "late", "kind": "end", "outcome": "succeeded"},
    ],
}


def test_a_wait_for_an_event_wakes_on_the_correlated_event_only(world, fake):
    definition = definition_published(world.acme, WAIT_EVENT)
    first = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-1"}))
    second = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-2"}))
    assert first.waiting_for.startswith("waiting for tracking.delivered (shipment SHP-1) until")
    with schema_context(world.acme.schema):
        assert event_deliver(event_type="tracking.delivered", correlation={"shipment": "SHP-9"}, payload={}, event_id="e0") == []
        assert event_deliver(event_type="tracking.picked_up", correlation={"shipment": "SHP-1"}, payload={}, event_id="e1") == []
        woken = event_deliver(
            event_type="tracking.delivered", correlation={"shipment": "SHP-1", "order": "SO-1"}, payload={"pod": "yes"}, event_id="e2"
        )
        assert woken == [first.pk]
        assert event_deliver(event_type="tracking.delivered", correlation={"shipment": "SHP-1"}, payload={}, event_id="e3") == []
    _drain(world)
    first, second = _refresh(world, first), _refresh(world, second)
    assert first.status == "succeeded" and first.context["pod"]["event"] == {"pod": "yes"} and first.context["pod"]["event_id"] == "e2"
    assert second.status == "waiting"
    _drain(world, now=timezone.now() + timedelta(hours=5))
    second = _refresh(world, second)
    assert (second.status, run_timeline(world.acme, second)[-1][0]) == ("succeeded", "late")
    assert second.context["pod"]["timed_out"] is True
    with schema_context(world.acme.schema):
        assert EventWait.objects.get(run=second).status == "timed_out"


def test_a_wait_whose_correlation_has_no_value_opens_an_incident(world, fake):
    definition = definition_published(world.acme, WAIT_EVENT)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={}))
    assert run.status == "failed" and "correlate.shipment" in _incident(world, run).error


# --- parallel branches and child workflows ------------------------------------------------------------------

PARALLEL = {
    "start": "split",
    "steps": [
        {"id": "split", "kind": "parallel", "branches": ["tender", "book"], "join": "merge"},
        {"id": "tender", "kind": "connector", "connection": "carrier", "action": "tender_load", "input": {}, "next": "merge"},
        {"id": "book", "kind": "transform", "mapping": {"dock": "D4"}, "next": "check"},
        {"id": "check", "kind": "approval", "assignee_roles": ["dispatcher"], "next": "merge", "on_reject": "merge"},
        {"id": "merge", "kind": "transform", "mapping": {"dock": "$.context.book.dock", "ref": "$.context.tender.reference"}, "next": None},
    ],
}


def test_parallel_branches_join_when_all_have_arrived_and_merge_their_outputs(world, fake):
    definition = definition_published(world.acme, PARALLEL)
    run = run_started(world.acme, definition)
    _drain(world)
    run = _refresh(world, run)
    with schema_context(world.acme.schema):
        children = list(run.children.order_by("pk"))
    assert run.status == "waiting" and [(child.current_step, child.status) for child in children] == [
        ("merge", "succeeded"),
        ("check", "waiting"),
    ]
    assert {child.trigger for child in children} == {"branch"}
    with schema_context(world.acme.schema):
        approval_decide(approval=Approval.objects.get(run=children[1]), decision="approved", actor=world.acme.users["dispatcher"])
    _drain(world)
    run = _refresh(world, run)
    assert run.status == "succeeded", run.error
    assert run.context["merge"] == {"dock": "D4", "ref": "fake-1"}
    assert set(run.context["split"]["branches"]) == {"tender", "book"}
    assert [step for step, _status, _attempt in run_timeline(world.acme, run)] == ["split", "merge"]


def test_a_child_workflow_runs_and_hands_back_its_context_and_a_failed_child_fails_the_step(world, fake):
    child_definition = definition_published(
        world.acme, {"start": "quote", "steps": [{"id": "quote", "kind": "transform", "mapping": {"rate": "$.input.weight"}, "next": None}]}
    )
    parent_spec = {
        "start": "rate",
        "steps": [
            {
                "id": "rate",
                "kind": "child_workflow",
                "definition": child_definition.key,
                "input": {"weight": "$.input.total"},
                "next": "done",
            },
            END,
        ],
    }
    parent_definition = definition_published(world.acme, parent_spec)
    run = run_started(world.acme, parent_definition)
    _drain(world)
    run = _refresh(world, run)
    assert run.status == "succeeded", run.error
    assert run.context["rate"]["output"] == {"quote": {"rate": 250}}
    with schema_context(world.acme.schema):
        child = Run.objects.get(parent=run)
    assert (child.trigger, child.definition_id, child.status) == ("child", child_definition.pk, "succeeded")

    fake.fail_next("tender_load", ConnectorError("no", kind="Rejected"))
    failing_parent = definition_published(
        world.acme,
        {
            "start": "sub",
            "steps": [{"id": "sub", "kind": "child_workflow", "definition": definition_published(world.acme).key, "next": None}],
        },
    )
    parent = run_started(world.acme, failing_parent)
    _drain(world)
    assert _refresh(world, parent).status == "waiting"  # the child has an open incident an operator may retry
    with schema_context(world.acme.schema):
        child = Run.objects.get(parent=parent)
        run_cancel(run=child, actor=SYSTEM, reason="give up")
    _drain(world)
    parent = _refresh(world, parent)
    assert parent.status == "failed" and "ended cancelled" in _incident(world, parent).error


def test_cancelling_a_parent_cancels_its_unfinished_children(world, fake):
    definition = definition_published(world.acme, PARALLEL)
    run = run_started(world.acme, definition)
    _drain(world)
    with schema_context(world.acme.schema):
        run_cancel(run=Run.objects.get(pk=run.pk), actor=SYSTEM)
        statuses = dict(Run.objects.filter(parent=run).values_list("current_step", "status"))
    assert _refresh(world, run).status == "cancelled"
    assert statuses == {"merge": "succeeded", "check": "cancelled"}


def test_a_loop_back_to_a_connector_step_does_its_effect_again_under_a_new_key(world, fake):
    spec = {
        "start": "tender",
        "steps": [
            {"id": "tender", "kind": "connector", "connection": "carrier", "action": "tender_load", "input": {}, "next": "again"},
            {"id": "again", "kind": "decision", "cases": [{"when": "has(context.second)", "next": "done"}], "default": "second"},
            {"id": "second", "kind": "transform", "mapping": {"try": 2}, "next": "tender"},
            END,
        ],
    }
    definition = definition_published(world.acme, spec)
    run = run_started(world.acme, definition)
    _drain(world)
    run = _refresh(world, run)
    assert run.status == "succeeded"
    assert [effect["idempotency_key"] for effect in fake.effects] == [f"{run.pk}:tender", f"{run.pk}:tender#1"]
    assert [entry for entry in run_timeline(world.acme, run) if entry[0] == "tender"] == [
        ("tender", "succeeded", 1),
        ("tender", "succeeded", 1),
    ]


def test_a_batch_of_events_wakes_each_waiting_run_once_and_the_first_matching_event_wins(world, fake):
    definition = definition_published(world.acme, WAIT_EVENT)
    first = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-B1"}))
    second = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-B2"}))
    third = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-B3"}))
    batch = [
        Delivery("tracking.delivered", {"shipment": "SHP-B2"}, {"n": 1}, "b1"),
        Delivery("tracking.picked_up", {"shipment": "SHP-B1"}, {"n": 2}, "b2"),  # another type: wakes nobody
        Delivery("tracking.delivered", {"shipment": "SHP-B1", "order": "SO-9"}, {"n": 3}, "b3"),
        Delivery("tracking.delivered", {"shipment": "SHP-B2"}, {"n": 4}, "b4"),  # SHP-B2's wait is taken by b1
    ]
    with schema_context(world.acme.schema):
        assert events_deliver(batch) == [[second.pk], [], [first.pk], []]
        assert BufferedEvent.objects.filter(event_id__in=["b1", "b2", "b3", "b4"]).count() == 4
        assert events_deliver(batch) == [[], [], [], []]  # delivered again: nothing waits any more, buffered once
        assert BufferedEvent.objects.filter(event_id__in=["b1", "b2", "b3", "b4"]).count() == 4
    _drain(world)
    first, second, third = _refresh(world, first), _refresh(world, second), _refresh(world, third)
    assert (first.status, first.context["pod"]["event_id"]) == ("succeeded", "b3")
    assert (second.status, second.context["pod"]["event_id"]) == ("succeeded", "b1")
    assert third.status == "waiting"


# --- events that come before the run waits for them ---------------------------------------------------

WAIT_AFTER_HOLD = {
    "start": "hold",
    "steps": [
        {"id": "hold", "kind": "wait_until", "until": "PT1H", "next": "pod"},
        *WAIT_EVENT["steps"],
    ],
}


def test_an_event_that_came_before_the_run_reached_its_wait_is_taken_when_it_gets_there(world, fake):
    definition = definition_published(world.acme, WAIT_AFTER_HOLD)
    with schema_context(world.acme.schema):  # before the run exists: never this run's event
        event_deliver(event_type="tracking.delivered", correlation={"shipment": "SHP-7"}, payload={"old": True}, event_id="before")
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-7"}))
    assert run.status == "waiting" and run.current_step == "hold"
    with schema_context(world.acme.schema):
        delivered = {"event_type": "tracking.delivered", "correlation": {"shipment": "SHP-7"}, "payload": {"pod": "early"}}
        assert event_deliver(**delivered, event_id="early") == []  # nobody waits yet: buffered
        assert event_deliver(**delivered, event_id="early") == []  # a redelivery is buffered once
        assert BufferedEvent.objects.filter(event_id="early").count() == 1
    _drain(world, now=timezone.now() + timedelta(hours=2))
    run = _refresh(world, run)
    assert run.status == "succeeded" and run_timeline(world.acme, run)[-2][0] == "pod"
    assert run.context["pod"]["event_id"] == "early" and run.context["pod"]["event"] == {"pod": "early"}
    with schema_context(world.acme.schema):
        assert EventWait.objects.get(run=run).status == "matched"


def test_an_event_handed_on_with_the_runs_own_event_is_news_to_the_run(world, fake):
    """The dispatcher buffers a batch's events, then starts their runs: a run started by the POD
    must still find the invoice that came in the same batch (and never take its own event)."""
    from workflows.triggers import event_triggers_start

    spec = copy.deepcopy(WAIT_EVENT)
    spec["triggers"] = [{"kind": "event", "event_type": "tracking.delivered"}]
    spec["steps"][0] = {**spec["steps"][0], "event_type": "invoice.received"}
    definition = definition_published(world.acme, spec)
    older = Delivery("invoice.received", {"shipment": "SHP-9"}, {"old": True}, "inv-old")
    with schema_context(world.acme.schema):
        events_deliver([older])  # a batch before: not news to a run started later
        batch = [
            Delivery("invoice.received", {"shipment": "SHP-9"}, {"invoice": "same batch"}, "inv-9"),
            Delivery("tracking.delivered", {"shipment": "SHP-9"}, {"shipment": "SHP-9"}, "pod-9"),
        ]
        assert events_deliver(batch) == [[], []]
        fired = event_triggers_start(
            event_type="tracking.delivered",
            payload={"shipment": "SHP-9"},
            correlation={"shipment": "SHP-9"},
            event_id="pod-9",
            actor=SYSTEM,
            definitions=[definition],
        )
        (run,) = fired.started
    run = run_advanced(world.acme, run)
    assert run.status == "succeeded" and run.context["pod"]["event_id"] == "inv-9"


def test_a_wait_with_earlier_events_takes_one_that_came_before_the_run(world, fake):
    spec = copy.deepcopy(WAIT_EVENT)
    spec["steps"][0] = {**spec["steps"][0], "earlier_events": True}
    definition = definition_published(world.acme, spec)
    with schema_context(world.acme.schema):
        event_deliver(event_type="tracking.delivered", correlation={"shipment": "SHP-10"}, payload={"came": "first"}, event_id="first-10")
        event_deliver(event_type="tracking.delivered", correlation={"shipment": "SHP-11"}, payload={}, event_id="other-11")
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-10"}))
    assert run.status == "succeeded" and run.context["pod"]["event_id"] == "first-10"
    without = definition_published(world.acme, WAIT_EVENT)  # the default: only news
    run = run_advanced(world.acme, run_started(world.acme, without, input={"shipment": "SHP-10"}))
    assert run.status == "waiting"


def test_a_wait_in_a_loop_does_not_take_the_same_buffered_event_twice(world, fake):
    looping = copy.deepcopy(WAIT_EVENT)
    looping["steps"] = [{**step, "next": "again"} if step["id"] == "pod" else step for step in looping["steps"]] + [
        {"id": "again", "kind": "decision", "cases": [{"when": "context.pod.event.round == 1", "next": "pod"}], "default": "done"}
    ]
    definition = definition_published(world.acme, looping)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-8"}))
    with schema_context(world.acme.schema):
        assert event_deliver(event_type="tracking.delivered", correlation={"shipment": "SHP-8"}, payload={"round": 1}, event_id="r1") == [
            run.pk
        ]
    _drain(world)
    run = _refresh(world, run)
    assert run.status == "waiting" and run.current_step == "pod"  # back at the wait: r1 is not taken again
    with schema_context(world.acme.schema):
        assert event_deliver(event_type="tracking.delivered", correlation={"shipment": "SHP-8"}, payload={"round": 2}, event_id="r2") == [
            run.pk
        ]
    _drain(world)
    run = _refresh(world, run)
    assert run.status == "succeeded" and run.context["pod"]["event_id"] == "r2"
