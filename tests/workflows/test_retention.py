"""Retention: finished runs lose their payloads after the policy's payload period and are deleted
after its metadata period; nothing unfinished (or depended on) is touched; one audit row per
purge that removed something; the policy card sets both periods."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tests.conftest import signed_in_client
from tests.workflows.runs_setup import ORDER, definition_published, run_advanced, run_started
from workflows.models import (
    Approval,
    BufferedEvent,
    EventWait,
    Incident,
    IncidentStatus,
    Run,
    RunStatus,
    StepExecution,
    Timer,
    TimerKind,
    WorkflowPolicy,
)
from workflows.retention import RetentionInvalid, runs_purge, workflow_policy_retention_update
from workflows.services import ApprovalRefused

pytestmark = pytest.mark.django_db

RETENTION = "system:retention"


def _actor():
    from governance.services import Actor

    return Actor.system("retention")


def finished_run(tenant_world, definition, *, days_ago: float, **state) -> Run:
    """A run the engine took to its end (steps with inputs and outputs), finished `days_ago` days ago."""
    run = run_advanced(tenant_world, run_started(tenant_world, definition, input={**ORDER, "secret": "tax id 12-345"}))
    assert run.status == RunStatus.SUCCEEDED
    with schema_context(tenant_world.schema):
        Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days_ago), **state)
        run.refresh_from_db()
    return run


def purge(tenant_world, **kwargs) -> dict:
    with schema_context(tenant_world.schema):
        return runs_purge(actor=_actor(), **kwargs)


def purge_audits(tenant_world) -> list[AuditEvent]:
    with schema_context(tenant_world.schema):
        return list(AuditEvent.objects.filter(action="workflow_runs.purged").order_by("pk"))


def retention_set(tenant_world, payload: int, metadata: int) -> None:
    with schema_context(tenant_world.schema):
        workflow_policy_retention_update(
            payload_retention_days=payload, metadata_retention_days=metadata, actor=tenant_world.users["tenant_admin"]
        )


@pytest.fixture
def acme_definition(world, fake):
    return definition_published(world.acme)


def test_payloads_are_erased_after_the_payload_period_and_the_run_history_kept(world, acme_definition):
    old = finished_run(world.acme, acme_definition, days_ago=31)
    recent = finished_run(world.acme, acme_definition, days_ago=29)
    with schema_context(world.acme.schema):
        Incident.objects.create(
            run=old,
            step_id="tender",
            step_kind="connector",
            error="carrier down",
            step_input={"payload": {"order": "SO-1"}},
            status=IncidentStatus.RESOLVED,
        )
        EventWait.objects.create(run=old, step_id="pod", event_type="shipment.delivered", event_payload={"signed_by": "J. Doe"})
        timeline_before = list(StepExecution.objects.filter(run=old).order_by("pk").values_list("step_id", "status", "attempt", "error"))

    result = purge(world.acme)

    assert (result["payload_purged"]["runs"], result["deleted"]["runs"]) == (1, 0)
    with schema_context(world.acme.schema):
        old.refresh_from_db()
        assert (old.input, old.context, old.status) == ({}, {}, RunStatus.SUCCEEDED)
        assert old.payload_purged_at is not None and old.finished_at is not None
        steps = StepExecution.objects.filter(run=old).order_by("pk")
        assert list(steps.values_list("step_id", "status", "attempt", "error")) == timeline_before  # the timeline stays
        assert all(step.input == {} and step.output == {} for step in steps)
        incident = Incident.objects.get(run=old)
        assert (incident.step_input, incident.error) == ({}, "carrier down")
        assert EventWait.objects.get(run=old).event_payload == {}
        recent.refresh_from_db()
        assert recent.input["secret"] == "tax id 12-345" and recent.context and recent.payload_purged_at is None
        assert all(step.output for step in StepExecution.objects.filter(run=recent, kind="connector"))


def test_runs_are_deleted_with_their_rows_after_the_metadata_period(world, acme_definition):
    retention_set(world.acme, 10, 100)
    gone = finished_run(world.acme, acme_definition, days_ago=101)
    kept = finished_run(world.acme, acme_definition, days_ago=50)
    with schema_context(world.acme.schema):
        Timer.objects.create(run=gone, kind=TimerKind.RETRY, step_id="tender", due_at=timezone.now(), fired_at=timezone.now())
        Approval.objects.create(run=gone, step_id="sign", title="Sign off", status="approved")
        Incident.objects.create(run=gone, step_id="tender", step_kind="connector", error="x", status=IncidentStatus.RESOLVED)
        steps_of_gone = StepExecution.objects.filter(run=gone).count()

    result = purge(world.acme)

    assert result["deleted"] == {
        "runs": 1,
        "step_executions": steps_of_gone,
        "timers": 1,
        "approvals": 1,
        "incidents": 1,
        "first_run_id": gone.pk,
        "last_run_id": gone.pk,
    }
    assert result["payload_purged"]["runs"] == 1 and result["payload_purged"]["first_run_id"] == kept.pk
    with schema_context(world.acme.schema):
        assert not Run.objects.filter(pk=gone.pk).exists()
        assert not StepExecution.objects.filter(run_id=gone.pk).exists()
        kept.refresh_from_db()
        assert kept.payload_purged_at is not None and kept.input == {}


def test_unfinished_runs_and_runs_something_unfinished_depends_on_are_never_touched(world, acme_definition):
    ancient = timezone.now() - timedelta(days=1000)
    with schema_context(world.acme.schema):
        waiting = run_started(world.acme, acme_definition)
        Run.objects.filter(pk=waiting.pk).update(status=RunStatus.WAITING, created_at=ancient, started_at=ancient)
    # A parent finished long ago whose child still runs, and a finished child of a running parent.
    parent_of_running = finished_run(world.acme, acme_definition, days_ago=1000)
    running_child = run_started(world.acme, acme_definition)
    running_parent = run_started(world.acme, acme_definition)
    child_of_running = finished_run(world.acme, acme_definition, days_ago=1000, parent_id=running_parent.pk)
    failed_with_incident = finished_run(world.acme, acme_definition, days_ago=1000, status=RunStatus.FAILED)
    # A finished family: deleted together.
    finished_parent = finished_run(world.acme, acme_definition, days_ago=1000)
    finished_child = finished_run(world.acme, acme_definition, days_ago=1000, parent_id=finished_parent.pk)
    with schema_context(world.acme.schema):
        Run.objects.filter(pk=running_child.pk).update(parent_id=parent_of_running.pk, status=RunStatus.RUNNING)
        Run.objects.filter(pk=running_parent.pk).update(status=RunStatus.WAITING)
        Incident.objects.create(run=failed_with_incident, step_id="tender", step_kind="connector", error="carrier down")

    result = purge(world.acme)

    untouched = (waiting, parent_of_running, running_child, running_parent, child_of_running, failed_with_incident)
    with schema_context(world.acme.schema):
        for run in untouched:
            fresh = Run.objects.get(pk=run.pk)
            assert fresh.payload_purged_at is None and fresh.input == run.input, run
        assert not Run.objects.filter(pk__in=[finished_parent.pk, finished_child.pk]).exists()
    assert result["deleted"]["runs"] == 2  # the parent, and its child with it
    assert result["payload_purged"]["runs"] == 0


def test_a_purge_touches_only_its_own_tenant(world, acme_definition):
    globex_definition = definition_published(world.globex)
    globex_old = finished_run(world.globex, globex_definition, days_ago=500)
    acme_old = finished_run(world.acme, acme_definition, days_ago=500)

    purge(world.acme)

    with schema_context(world.acme.schema):
        assert not Run.objects.filter(pk=acme_old.pk).exists()
    with schema_context(world.globex.schema):
        survivor = Run.objects.get(pk=globex_old.pk)
        assert survivor.input["secret"] == "tax id 12-345" and survivor.payload_purged_at is None
    assert purge_audits(world.globex) == []


def test_one_audit_row_per_purge_and_a_second_purge_removes_nothing_and_writes_none(world, acme_definition):
    retention_set(world.acme, 30, 90)
    erased = [finished_run(world.acme, acme_definition, days_ago=45) for _ in range(3)]
    deleted = finished_run(world.acme, acme_definition, days_ago=120)

    first = purge(world.acme, batch_size=2)  # batches of two runs: still one audit row

    (event,) = purge_audits(world.acme)
    assert (event.actor_email, event.actor_kind, event.target_type) == (RETENTION, "system", "workflows.run")
    assert event.data["payload_purged"]["runs"] == 3 and event.data["deleted"]["runs"] == 1
    assert event.data["payload_purged"]["step_executions"] == sum(len(run_steps(world.acme, run)) for run in erased)
    assert (event.data["payload_purged"]["first_run_id"], event.data["payload_purged"]["last_run_id"]) == (erased[0].pk, erased[-1].pk)
    assert (event.data["deleted"]["first_run_id"], event.data["deleted"]["last_run_id"]) == (deleted.pk, deleted.pk)
    assert (event.data["payload_retention_days"], event.data["metadata_retention_days"]) == (30, 90)
    assert event.data["payload_cutoff"] == first["payload_cutoff"] and event.data["complete"] is True
    assert event.target_label == "payloads of 3 runs erased, 1 run deleted"

    second = purge(world.acme)

    assert second["payload_purged"] == second["deleted"] == {"runs": 0, "first_run_id": None, "last_run_id": None}
    assert len(purge_audits(world.acme)) == 1


def run_steps(tenant_world, run: Run) -> list[StepExecution]:
    with schema_context(tenant_world.schema):
        return list(StepExecution.objects.filter(run=run))


def test_a_purge_out_of_time_stops_between_batches_and_says_so(world, acme_definition):
    finished_run(world.acme, acme_definition, days_ago=45)
    result = purge(world.acme, time_limit=0)
    assert result["complete"] is False and purge_audits(world.acme) == []
    assert purge(world.acme)["complete"] is True


def test_retention_periods_are_checked_and_set_by_tenant_admins_only(world):
    with schema_context(world.acme.schema):
        admin, planner = world.acme.users["tenant_admin"], world.acme.users["planner"]
        with pytest.raises(ApprovalRefused, match="Only a tenant admin can change how long workflow runs are kept."):
            workflow_policy_retention_update(payload_retention_days=10, metadata_retention_days=20, actor=planner)
        with pytest.raises(RetentionInvalid, match=r"Payloads cannot be kept longer than the runs themselves \(20 days\)"):
            workflow_policy_retention_update(payload_retention_days=30, metadata_retention_days=20, actor=admin)
        with pytest.raises(RetentionInvalid, match="Choose between 1 and 3650 days."):
            workflow_policy_retention_update(payload_retention_days=0, metadata_retention_days=20, actor=admin)
        policy = workflow_policy_retention_update(payload_retention_days=7, metadata_retention_days=3650, actor=admin)
        assert (policy.payload_retention_days, policy.metadata_retention_days) == (7, 3650)
        event = AuditEvent.objects.get(action="workflow_policy.retention_updated")
        assert event.data == {
            "payload_retention_days": {"from": 30, "to": 7},
            "metadata_retention_days": {"from": 400, "to": 3650},
        }


def _client(world, role: str):
    return signed_in_client(world.acme.host, world.acme.users[role], world.acme.schema)


def test_the_policy_card_sets_retention_and_says_what_is_wrong(world):
    admin = _client(world, "tenant_admin")
    page = admin.get("/workflows/").content.decode()
    assert 'name="payload_retention_days"' in page and 'value="30"' in page and 'value="400"' in page

    response = admin.post("/workflows/policy/", {"section": "retention", "payload_retention_days": "60", "metadata_retention_days": "20"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Payloads cannot be kept longer than the runs themselves (20 days)" in body and 'value="60"' in body
    response = admin.post("/workflows/policy/", {"section": "retention", "payload_retention_days": "0", "metadata_retention_days": "4000"})
    assert response.status_code == 400 and response.content.decode().count("Choose between 1 and 3650 days.") == 2
    response = admin.post("/workflows/policy/", {"section": "retention", "payload_retention_days": "", "metadata_retention_days": "20"})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    with schema_context(world.acme.schema):
        assert (WorkflowPolicy.objects.get().payload_retention_days, WorkflowPolicy.objects.get().metadata_retention_days) == (30, 400)

    response = admin.post(
        "/workflows/policy/", {"section": "retention", "payload_retention_days": "14", "metadata_retention_days": "180"}, follow=True
    )
    assert "payloads of finished runs are erased after 14 days, the runs deleted after 180 days" in response.content.decode()
    with schema_context(world.acme.schema):
        policy = WorkflowPolicy.objects.get()
        assert (policy.payload_retention_days, policy.metadata_retention_days, policy.require_second_approver) == (14, 180, False)

    planner = _client(world, "planner")
    assert (
        planner.post(
            "/workflows/policy/", {"section": "retention", "payload_retention_days": "1", "metadata_retention_days": "1"}
        ).status_code
        == 403
    )
    assert (
        "Payloads of finished runs are erased after 14 days; the runs are deleted after 180 days."
        in planner.get("/workflows/").content.decode()
    )


def test_buffered_events_go_with_the_payload_period_and_are_counted(world):
    from workflows.waits import event_deliver

    with schema_context(world.acme.schema):
        for event_id in ("old", "fresh"):
            event_deliver(event_type="tracking.delivered", correlation={"shipment": "SHP-1"}, payload={"pod": event_id}, event_id=event_id)
        BufferedEvent.objects.filter(event_id="old").update(received_at=timezone.now() - timedelta(days=31))

    report = purge(world.acme)

    assert report["buffered_events_deleted"] == 1
    with schema_context(world.acme.schema):
        assert list(BufferedEvent.objects.values_list("event_id", flat=True)) == ["fresh"]
    (audit,) = purge_audits(world.acme)
    assert audit.data["buffered_events_deleted"] == 1


def test_action_receipts_go_with_the_metadata_period(world):
    from workflows.models import ActionReceipt

    with schema_context(world.acme.schema):
        for key, age in (("1:old", 401), ("2:fresh", 20)):  # the default metadata period is 400 days
            ActionReceipt.objects.create(
                idempotency_key=key, action="tests.note", result={}, created_at=timezone.now() - timedelta(days=age)
            )

    report = purge(world.acme)

    assert report["action_receipts_deleted"] == 1
    with schema_context(world.acme.schema):
        assert list(ActionReceipt.objects.values_list("idempotency_key", flat=True)) == ["2:fresh"]
    (audit,) = purge_audits(world.acme)
    assert audit.data["action_receipts_deleted"] == 1
