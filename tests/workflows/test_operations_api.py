"""The operations API: pause/resume/cancel runs, incidents (read, retry with edits, restart, bulk
retry), approvals (inbox, decisions) and events (wake waiting runs, start event-triggered ones),
with their refusals as problem+json, their audit rows, and tenant isolation."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from governance.models import AuditEvent
from tests.conftest import host_client, signed_in_client
from tests.workflows.runs_setup import ORDER_SPEC, definition_published, run_advanced, run_started, version_publish
from workflows.engine import ConnectorError, run_advance, runs_claim
from workflows.models import Approval, EventWait, Incident, Run

pytestmark = pytest.mark.django_db

END = {"id": "done", "kind": "end", "outcome": "succeeded"}
APPROVAL_SPEC = {
    "start": "ok",
    "steps": [
        {
            "id": "ok",
            "kind": "approval",
            "title": "Release the load",
            "assignee_roles": ["planner"],
            "due": "PT1H",
            "next": "done",
            "on_reject": "no",
        },
        END,
        {"id": "no", "kind": "end", "outcome": "cancelled"},
    ],
}
WAIT_SPEC = {
    "start": "w",
    "steps": [
        {
            "id": "w",
            "kind": "wait_event",
            "event_type": "tracking.delivered",
            "correlate": {"shipment": "input.shipment"},  # a CEL expression
            "timeout": "PT1H",
            "next": "done",
            "on_timeout": "done",
        },
        END,
    ],
}
NOTE = {"channel": "email", "to_roles": ["planner"], "template": "probe"}
PARALLEL_SPEC = {
    "start": "split",
    "steps": [
        {"id": "split", "kind": "parallel", "branches": ["a", "b"], "join": "done"},
        {"id": "a", "kind": "notify", **NOTE, "next": "done"},
        {"id": "b", "kind": "notify", **NOTE, "next": "done"},
        END,
    ],
}
OPERATE, APPROVE, EVENTS = "workflows:operate", "workflows:approve", "events:write"


# --- helpers ------------------------------------------------------------------------------------------


def _key(tenant_world, *scopes) -> dict:
    with schema_context(tenant_world.schema):
        _api_key, secret = api_key_create(name="ops", scopes=list(scopes), actor=tenant_world.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def _session(tenant_world, role: str):
    return signed_in_client(tenant_world.host, tenant_world.users[role], tenant_world.schema)


def _post(client, path: str, body=None, **headers):
    return client.post(path, data=json.dumps({} if body is None else body), content_type="application/json", **headers)


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content[:600]
    return response.json()


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:600]
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def _refresh(world, obj):
    with schema_context(world.acme.schema):
        return type(obj).objects.get(pk=obj.pk)


def _audit(world, action: str, target_id: int) -> AuditEvent:
    with schema_context(world.acme.schema):
        return AuditEvent.objects.get(action=action, target_id=str(target_id))


def _approval_run(world) -> tuple[Run, Approval]:
    run = run_advanced(world.acme, run_started(world.acme, definition_published(world.acme, APPROVAL_SPEC)))
    with schema_context(world.acme.schema):
        return run, Approval.objects.get(run=run)


def _failed_run(world, fake, definition=None, kind: str = "Unavailable") -> tuple[Run, Incident]:
    """A run whose connector step failed for good (no retry policy): failed, with an open incident."""
    fake.fail_next("tender_load", ConnectorError("carrier down", kind=kind))
    run = run_advanced(world.acme, run_started(world.acme, definition or definition_published(world.acme)))
    with schema_context(world.acme.schema):
        return run, Incident.objects.get(run=run, status="open")


def _drain(world) -> None:
    with schema_context(world.acme.schema):
        for _ in range(10):
            claimed = runs_claim(owner="ops-api", limit=100, lease_seconds=60)
            if not claimed:
                return
            for run_id in claimed:
                run_advance(run_id=run_id, owner="ops-api")


# --- runs: pause, resume, cancel --------------------------------------------------------------------------


def test_pause_resume_and_cancel_answer_the_run_and_are_audited(world):
    run, approval = _approval_run(world)
    client, auth = host_client(world.acme.host), _key(world.acme, OPERATE)
    paused = _ok(_post(client, f"/api/v1/runs/{run.pk}/pause", {"reason": "carrier asked to hold"}, **auth))
    assert paused["id"] == run.pk and paused["status"] == "waiting" and paused["paused_at"]
    assert _refresh(world, run).paused_at is not None
    again = _problem(_post(client, f"/api/v1/runs/{run.pk}/pause", **auth), 409)
    assert again["detail"] == f"Run {run.pk} is already paused." and again["type"] == "https://baton.dev/problems/operation-refused"
    resumed = _ok(_post(client, f"/api/v1/runs/{run.pk}/resume", **auth))
    assert resumed["paused_at"] is None
    assert _problem(_post(client, f"/api/v1/runs/{run.pk}/resume", **auth), 409)["detail"] == f"Run {run.pk} is not paused."
    cancelled = _ok(_post(client, f"/api/v1/runs/{run.pk}/cancel", {"reason": "order withdrawn"}, **auth))
    assert cancelled["status"] == "cancelled" and cancelled["error"].endswith(": order withdrawn")
    assert cancelled["approvals"] == [{"id": approval.pk, "status": "cancelled", "due_at": cancelled["approvals"][0]["due_at"]}]
    assert cancelled["pending_timers"] == []  # the approval's due timer no longer matters
    assert _problem(_post(client, f"/api/v1/runs/{run.pk}/cancel", **auth), 409)["detail"] == f"Run {run.pk} is already cancelled."
    finished = _problem(_post(client, f"/api/v1/runs/{run.pk}/pause", **auth), 409)
    assert finished["detail"] == f"Run {run.pk} is cancelled; only unfinished runs can be paused."
    for action, reason in (("paused", "carrier asked to hold"), ("resumed", ""), ("cancelled", "order withdrawn")):
        with schema_context(world.acme.schema):
            event = AuditEvent.objects.get(action=f"workflow_run.{action}", target_id=str(run.pk))
        assert (event.reason, event.actor_kind) == (reason, "api_key") and event.actor_email.startswith("api-key:")


def test_run_operations_need_the_operate_scope_or_an_operating_role(world):
    run, _approval = _approval_run(world)
    path = f"/api/v1/runs/{run.pk}/pause"
    refused = _problem(_post(host_client(world.acme.host), path, **_key(world.acme, "workflows:read", "workflows:run")), 403)
    assert refused["detail"] == "This needs the 'workflows:operate' scope or a staff role that includes it."
    for role in ("finance", "customer_service", "customer"):
        _problem(_post(_session(world.acme, role), path), 403)
    _problem(_post(host_client(world.acme.host), path), 401)
    assert _ok(_post(_session(world.acme, "dispatcher"), path))["paused_at"]
    assert _ok(_post(_session(world.acme, "planner"), f"/api/v1/runs/{run.pk}/resume"))["paused_at"] is None
    with schema_context(world.acme.schema):
        assert AuditEvent.objects.get(action="workflow_run.paused", target_id=str(run.pk)).actor_email == "dispatcher@acme.test"


def test_run_operations_refuse_an_unknown_run_and_a_bad_body(world):
    run, _approval = _approval_run(world)
    client, auth = host_client(world.acme.host), _key(world.acme, OPERATE)
    assert _problem(_post(client, "/api/v1/runs/99999999/cancel", **auth), 404)["detail"] == "There is no run 99999999 in this workspace."
    problem = _problem(_post(client, f"/api/v1/runs/{run.pk}/pause", {"reason": ["a", "b"]}, **auth), 422)
    assert problem["errors"] == [{"pointer": "/reason", "reason": "Not a valid string."}]
    problem = _problem(_post(client, f"/api/v1/runs/{run.pk}/pause", [1], **auth), 422)
    assert problem["errors"] == [{"pointer": "", "reason": "the body must be a JSON object"}]
    assert _refresh(world, run).paused_at is None


def test_the_run_detail_shows_what_it_waits_for_its_timers_approvals_incident_and_children(world, fake):
    run, approval = _approval_run(world)
    client, read = host_client(world.acme.host), _key(world.acme, "workflows:read")
    body = _ok(client.get(f"/api/v1/runs/{run.pk}", **read))
    assert body["waiting_for"].startswith("waiting for approval by planner, due ")
    assert (body["paused_at"], body["parent"], body["children"], body["generation"], body["open_incident"]) == (None, None, [], 0, None)
    assert [(timer["kind"], timer["step"]) for timer in body["pending_timers"]] == [("approval_due", "ok")]
    assert body["approvals"] == [{"id": approval.pk, "status": "pending", "due_at": body["pending_timers"][0]["due_at"]}]
    failed, incident = _failed_run(world, fake)
    assert _ok(client.get(f"/api/v1/runs/{failed.pk}", **read))["open_incident"] == {"id": incident.pk}
    split = run_advanced(world.acme, run_started(world.acme, definition_published(world.acme, PARALLEL_SPEC)))
    with schema_context(world.acme.schema):
        children = list(Run.objects.filter(parent=split).order_by("pk"))
    body = _ok(client.get(f"/api/v1/runs/{split.pk}", **read))
    assert body["status"] == "waiting" and body["children"] == [
        {"id": child.pk, "status": child.status, "trigger": "branch"} for child in children
    ]
    assert len(children) == 2 and _ok(client.get(f"/api/v1/runs/{children[0].pk}", **read))["parent"] == split.pk


# --- incidents ----------------------------------------------------------------------------------------------


def test_incidents_list_filters_and_pages(world, fake):
    tender = definition_published(world.acme)
    other = definition_published(world.acme)
    first, _ = _failed_run(world, fake, tender)
    second, _ = _failed_run(world, fake, tender, kind="Rejected")
    third, _ = _failed_run(world, fake, other)
    client, auth = host_client(world.acme.host), _key(world.acme, OPERATE)

    def listed(query: str) -> list[int]:
        return [incident["run"] for incident in _ok(client.get(f"/api/v1/incidents?{query}", **auth))["results"]]

    assert listed(f"definition={tender.key}") == [second.pk, first.pk]
    assert listed(f"definition={tender.key}&error_class=Unavailable") == [first.pk]
    assert listed("error_class=Unavailable&step=tender")[:2] == [third.pk, first.pk]
    assert listed(f"definition={other.key}&status=open") == [third.pk] and listed(f"definition={other.key}&status=resolved") == []
    future = quote((timezone.now() + timedelta(hours=1)).isoformat())  # "+00:00" must be escaped in a query
    assert listed(f"definition={tender.key}&opened_after={future}") == []
    assert listed(f"definition={tender.key}&opened_before={future}") == [second.pk, first.pk]
    page = _ok(client.get(f"/api/v1/incidents?definition={tender.key}&page_size=1", **auth))
    assert [incident["run"] for incident in page["results"]] == [second.pk] and "cursor=" in page["next"]
    assert [incident["run"] for incident in _ok(client.get(page["next"], **auth))["results"]] == [first.pk]
    row = page["results"][0]
    assert (row["definition"], row["step"], row["step_kind"], row["status"], row["error_class"]) == (
        tender.key,
        "tender",
        "connector",
        "open",
        "Rejected",
    )
    problem = _problem(client.get("/api/v1/incidents?opened_after=yesterday&status=closed", **auth), 422)
    assert {error["pointer"] for error in problem["errors"]} == {"/opened_after", "/status"}
    assert _problem(client.get("/api/v1/incidents", **_key(world.acme, "workflows:read")), 403)
    assert _problem(_session(world.acme, "customer").get("/api/v1/incidents"), 403)


def test_an_incident_reads_with_its_error_attempts_and_step_input(world, fake):
    run, incident = _failed_run(world, fake)
    client, auth = host_client(world.acme.host), _key(world.acme, OPERATE)
    body = _ok(client.get(f"/api/v1/incidents/{incident.pk}", **auth))
    assert (body["run"], body["status"], body["error_class"], body["resolution"]) == (run.pk, "open", "Unavailable", "")
    assert "carrier down" in body["error"] and [attempt["attempt"] for attempt in body["attempts"]] == [1]
    assert body["step_input"]["action"] == "tender_load" and body["step_input"]["payload"]["order"] == "SO-1"
    assert body["links"] == {"self": f"/api/v1/incidents/{incident.pk}", "run": f"/api/v1/runs/{run.pk}"}
    assert _problem(client.get("/api/v1/incidents/99999999", **auth), 404)["detail"] == "There is no incident 99999999 in this workspace."


def test_retrying_an_incident_with_an_edited_input_goes_on_and_audits_the_edit(world, fake):
    run, incident = _failed_run(world, fake)
    client, auth = host_client(world.acme.host), _key(world.acme, OPERATE)
    edited = {**run.input, "order_id": "SO-1-FIXED"}
    body = _ok(_post(client, f"/api/v1/incidents/{incident.pk}/retry", {"input": edited, "comment": "typo"}, **auth))
    assert (body["id"], body["status"], body["error"], body["input"]["order_id"], body["open_incident"]) == (
        run.pk,
        "running",
        "",
        "SO-1-FIXED",
        None,
    )
    incident = _refresh(world, incident)
    assert (incident.status, incident.resolution, incident.comment) == ("resolved", "retried", "typo")
    event = _audit(world, "workflow_incident.retried", incident.pk)
    assert event.reason == "typo" and event.data["edited"]["input"]["after"] == {"order_id": "SO-1-FIXED"}
    assert run_advanced(world.acme, run).status == "succeeded"
    again = _problem(_post(client, f"/api/v1/incidents/{incident.pk}/retry", **auth), 409)
    assert again["detail"] == f"Incident {incident.pk} is already resolved (retried)."


@pytest.mark.parametrize(
    ("body", "pointer", "reason"),
    [
        ({"input": [1]}, "/input", 'Expected a dictionary of items but got type "list".'),
        ({"context": {"blob": "x" * 300_000}}, "/context", "The context is 292 KB; the limit is 256 KB."),
        ({"comment": {"a": 1}}, "/comment", "Not a valid string."),
    ],
)
def test_a_retry_with_a_bad_body_is_a_422_naming_the_field(world, fake, body, pointer, reason):
    run, incident = _failed_run(world, fake)
    problem = _problem(
        _post(host_client(world.acme.host), f"/api/v1/incidents/{incident.pk}/retry", body, **_key(world.acme, OPERATE)), 422
    )
    assert problem["errors"] == [{"pointer": pointer, "reason": reason}]
    assert _refresh(world, incident).status == "open" and _refresh(world, run).status == "failed"


def test_restarting_an_incident_runs_the_newer_version_from_the_beginning(world, fake):
    definition = definition_published(world.acme)
    run, incident = _failed_run(world, fake, definition)
    version_publish(world.acme, definition, ORDER_SPEC)
    client = _session(world.acme, "planner")
    body = _ok(_post(client, f"/api/v1/incidents/{incident.pk}/restart", {"comment": "v2 fixes it"}))
    assert (body["version"], body["generation"], body["current_step"], body["status"]) == (2, 1, "check", "running")
    event = _audit(world, "workflow_incident.restarted", incident.pk)
    assert (event.actor_email, event.reason, event.data["to_version"]) == ("planner@acme.test", "v2 fixes it", 2)
    assert run_advanced(world.acme, run).status == "succeeded"
    assert _problem(_post(client, f"/api/v1/incidents/{incident.pk}/restart"), 409)["detail"].endswith("already resolved (restarted).")


def test_bulk_retry_retries_what_the_filter_matches_and_says_so(world, fake):
    tender = definition_published(world.acme)
    other = definition_published(world.acme)
    runs = [_failed_run(world, fake, tender)[0] for _ in range(2)]
    rejected, _ = _failed_run(world, fake, tender, kind="Rejected")
    stranger, _ = _failed_run(world, fake, other)
    client, auth = host_client(world.acme.host), _key(world.acme, OPERATE)
    body = _ok(
        _post(
            client, "/api/v1/incidents/retry", {"definition": tender.key, "error_class": "Unavailable", "comment": "carrier back"}, **auth
        )
    )
    assert sorted(body["retried"]) == sorted(run.pk for run in runs) and body["skipped"] == []
    assert {_refresh(world, run).status for run in (rejected, stranger)} == {"failed"}
    with schema_context(world.acme.schema):
        bulk = AuditEvent.objects.filter(action="workflow_incidents.bulk_retried").latest("pk")
        assert Incident.objects.filter(run__in=runs, resolution="retried", comment="carrier back").count() == 2
    assert bulk.data["retried"] == 2 and bulk.data["filter"] == {"definition": tender.key, "error_class": "Unavailable"}
    _drain(world)
    assert {_refresh(world, run).status for run in runs} == {"succeeded"}
    assert _ok(_post(client, "/api/v1/incidents/retry", {"definition": tender.key, "error_class": "Unavailable"}, **auth)) == {
        "retried": [],
        "skipped": [],
    }
    problem = _problem(_post(client, "/api/v1/incidents/retry", {"opened_before": "soon", "limit": 0}, **auth), 422)
    assert {error["pointer"] for error in problem["errors"]} == {"/opened_before", "/limit"}
    assert _problem(_post(client, "/api/v1/incidents/retry", {}, **_key(world.acme, "workflows:run")), 403)


# --- approvals -----------------------------------------------------------------------------------------------


def test_the_approvals_inbox_shows_a_person_what_they_may_decide_and_a_key_everything(world):
    _run, approval = _approval_run(world)

    def ids(client, query: str = "", **auth) -> list[int]:
        return [item["id"] for item in _ok(client.get(f"/api/v1/approvals{query}", **auth))["results"]]

    assert approval.pk in ids(_session(world.acme, "planner"))
    assert approval.pk in ids(_session(world.acme, "tenant_admin"))
    assert approval.pk not in ids(_session(world.acme, "dispatcher"))
    key = _key(world.acme, APPROVE)
    assert approval.pk in ids(host_client(world.acme.host), **key)
    assert approval.pk not in ids(host_client(world.acme.host), "?status=approved", **key)
    item = _ok(_session(world.acme, "planner").get(f"/api/v1/approvals/{approval.pk}"))
    assert (item["title"], item["status"], item["assignee_roles"], item["step"], item["can_decide"]) == (
        "Release the load",
        "pending",
        ["planner"],
        "ok",
        True,
    )
    assert _ok(_session(world.acme, "dispatcher").get(f"/api/v1/approvals/{approval.pk}"))["can_decide"] is False
    problem = _problem(host_client(world.acme.host).get("/api/v1/approvals?status=maybe", **key), 422)
    assert problem["errors"][0]["pointer"] == "/status"
    assert _problem(host_client(world.acme.host).get("/api/v1/approvals", **_key(world.acme, OPERATE)), 403)
    assert _problem(_session(world.acme, "customer").get("/api/v1/approvals"), 403)
    assert _problem(host_client(world.acme.host).get("/api/v1/approvals/99999999", **key), 404)


def test_an_approval_decided_through_the_api_wakes_the_run_and_is_audited(world):
    run, approval = _approval_run(world)
    client, key = host_client(world.acme.host), _key(world.acme, APPROVE)
    body = _ok(_post(client, f"/api/v1/approvals/{approval.pk}/decision", {"decision": "approved"}, **key))
    assert (body["status"], body["decided_via"], body["can_decide"]) == ("approved", "api", False)
    assert body["decided_by_email"].startswith("api-key:")
    run = _refresh(world, run)
    assert run.status == "running" and run.ready_at is not None
    assert run_advanced(world.acme, run).status == "succeeded"
    event = _audit(world, "workflow_approval.decided", approval.pk)
    assert (event.actor_kind, event.data["decision"], event.data["via"]) == ("api_key", "approved", "api")
    again = _problem(_post(client, f"/api/v1/approvals/{approval.pk}/decision", {"decision": "rejected", "comment": "late"}, **key), 409)
    assert again["detail"] == f"This approval was already approved by {body['decided_by_email']}."


def test_a_decision_is_refused_without_a_reason_to_reject_or_for_a_role_not_assigned(world):
    run, approval = _approval_run(world)
    path = f"/api/v1/approvals/{approval.pk}/decision"
    planner = _session(world.acme, "planner")
    problem = _problem(_post(planner, path, {"decision": "rejected", "comment": "  "}), 422)
    assert problem["errors"] == [{"pointer": "/comment", "reason": "Say why in a comment: the requester needs it to act on the decision."}]
    assert _problem(_post(planner, path, {"decision": "maybe"}), 422)["errors"][0]["pointer"] == "/decision"
    forbidden = _problem(_post(_session(world.acme, "dispatcher"), path, {"decision": "approved"}), 403)
    assert forbidden["detail"] == "This approval is assigned to other roles."
    assert _problem(_post(_session(world.acme, "customer"), path, {"decision": "approved"}), 403)
    assert _problem(_post(host_client(world.acme.host), path, {"decision": "approved"}, **_key(world.acme, OPERATE)), 403)
    assert _problem(_post(planner, "/api/v1/approvals/99999999/decision", {"decision": "approved"}), 404)
    assert _refresh(world, approval).status == "pending"
    body = _ok(_post(planner, path, {"decision": "rejected", "comment": "rate is over the contract"}))
    assert (body["status"], body["comment"], body["decided_by_email"]) == ("rejected", "rate is over the contract", "planner@acme.test")
    assert run_advanced(world.acme, run).status == "cancelled"


# --- events ------------------------------------------------------------------------------------------------------


def test_an_event_wakes_the_run_waiting_for_it_and_a_redelivery_wakes_nothing(world):
    definition = definition_published(world.acme, WAIT_SPEC)
    waiting = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-1"}))
    other = run_advanced(world.acme, run_started(world.acme, definition, input={"shipment": "SHP-2"}))
    assert waiting.status == "waiting" and waiting.waiting_for.startswith("waiting for tracking.delivered (shipment SHP-1)")
    client, key = host_client(world.acme.host), _key(world.acme, EVENTS)
    event = {
        "event_type": "tracking.delivered",
        "event_id": "carrier:e-1",
        "correlation": {"shipment": "SHP-1"},
        "payload": {"pod": "signed"},
    }
    body = _ok(_post(client, "/api/v1/events", event, **key), 202)
    assert body == {"event_id": "carrier:e-1", "woken_runs": [waiting.pk], "started_runs": [], "duplicate_runs": [], "problems": []}
    assert _refresh(world, other).status == "waiting"
    waiting = run_advanced(world.acme, waiting)
    assert (
        waiting.status == "succeeded"
        and waiting.context["w"]["event"] == {"pod": "signed"}
        and waiting.context["w"]["event_id"] == "carrier:e-1"
    )
    assert _ok(_post(client, "/api/v1/events", event, **key), 202)["woken_runs"] == []
    with schema_context(world.acme.schema):
        assert EventWait.objects.get(run=other).status == "waiting"


def test_an_event_starts_event_triggered_workflows_once_per_event_id_and_reports_problems(world):
    started = definition_published(
        world.acme, {"start": "done", "triggers": [{"kind": "event", "event_type": "opsapi.order_created"}], "steps": [END]}
    )
    broken = definition_published(
        world.acme,
        {
            "start": "done",
            "triggers": [{"kind": "event", "event_type": "opsapi.order_created", "filter": "event.missing.deep == 1"}],
            "steps": [END],
        },
    )
    client, key = host_client(world.acme.host), _key(world.acme, EVENTS)
    event = {"event_type": "opsapi.order_created", "event_id": "erp-77", "correlation": {"order": "SO-77"}, "payload": {"total": 3}}
    body = _ok(_post(client, "/api/v1/events", event, **key), 202)
    with schema_context(world.acme.schema):
        run = Run.objects.get(definition=started)
    assert (body["woken_runs"], body["started_runs"], body["duplicate_runs"]) == ([], [run.pk], [])
    assert (run.trigger, run.input, run.correlation, run.business_key) == ("event", {"total": 3}, {"order": "SO-77"}, "event:erp-77")
    assert [(problem["definition"], problem["trigger_index"]) for problem in body["problems"]] == [(broken.key, 0)]
    assert "event.missing.deep == 1" in body["problems"][0]["reason"]
    again = _ok(_post(client, "/api/v1/events", event, **key), 202)
    assert (again["started_runs"], again["duplicate_runs"]) == ([], [run.pk])


@pytest.mark.parametrize(
    ("change", "pointer", "reason"),
    [
        ({"event_type": "Tracking Delivered"}, "/event_type", "Use a dotted lower-case name such as tracking.delivered."),
        ({"event_id": None}, "/event_id", "This field may not be null."),
        ({"event_id": "e" * 201}, "/event_id", "Ensure this field has no more than 200 characters."),
        ({"correlation": {"invoice": "1"}}, "/correlation", "Unknown correlation key 'invoice'; use order, shipment, po, bol, pro."),
        ({"payload": [1, 2]}, "/payload", 'Expected a dictionary of items but got type "list".'),
        ({"payload": {"blob": "x" * 300_000}}, "/payload", "The payload is 292 KB; the limit is 256 KB."),
    ],
)
def test_a_bad_event_is_a_422_naming_the_field(world, change, pointer, reason):
    event = {"event_type": "tracking.delivered", "event_id": "e-1", "correlation": {"shipment": "S"}, "payload": {}, **change}
    problem = _problem(_post(host_client(world.acme.host), "/api/v1/events", event, **_key(world.acme, EVENTS)), 422)
    assert problem["errors"] == [{"pointer": pointer, "reason": reason}]


def test_a_missing_event_id_and_the_wrong_scope_are_refused(world):
    client = host_client(world.acme.host)
    problem = _problem(_post(client, "/api/v1/events", {"event_type": "tracking.delivered"}, **_key(world.acme, EVENTS)), 422)
    assert problem["errors"] == [{"pointer": "/event_id", "reason": "This field is required."}]
    refused = _problem(
        _post(client, "/api/v1/events", {"event_type": "a.b", "event_id": "1"}, **_key(world.acme, "workflows:run", OPERATE)), 403
    )
    assert refused["detail"] == "This needs the 'events:write' scope or a staff role that includes it."
    assert _problem(_post(_session(world.acme, "customer"), "/api/v1/events", {"event_type": "a.b", "event_id": "1"}), 403)


# --- isolation ------------------------------------------------------------------------------------------------


def _acme_objects(world, fake) -> dict[str, int]:
    run, approval = _approval_run(world)
    failed, incident = _failed_run(world, fake)
    return {"run": run.pk, "approval": approval.pk, "failed": failed.pk, "incident": incident.pk}


def _routes(ids: dict[str, int]) -> list[tuple[str, str, dict, str, int]]:
    """(method, path, body, model, id) of every operations route that names an object."""
    return [
        ("post", f"/api/v1/runs/{ids['run']}/pause", {}, "run", ids["run"]),
        ("post", f"/api/v1/runs/{ids['run']}/resume", {}, "run", ids["run"]),
        ("post", f"/api/v1/runs/{ids['run']}/cancel", {}, "run", ids["run"]),
        ("get", f"/api/v1/incidents/{ids['incident']}", {}, "incident", ids["incident"]),
        ("post", f"/api/v1/incidents/{ids['incident']}/retry", {}, "incident", ids["incident"]),
        ("post", f"/api/v1/incidents/{ids['incident']}/restart", {}, "incident", ids["incident"]),
        ("get", f"/api/v1/approvals/{ids['approval']}", {}, "approval", ids["approval"]),
        ("post", f"/api/v1/approvals/{ids['approval']}/decision", {"decision": "approved"}, "approval", ids["approval"]),
    ]


_MODELS = {"run": Run, "incident": Incident, "approval": Approval}
ALL_SCOPES = (OPERATE, APPROVE, EVENTS, "workflows:read")


def _call(client, method: str, path: str, body: dict, **headers):
    return _post(client, path, body, **headers) if method == "post" else client.get(path, **headers)


def _untouched(world, ids: dict[str, int]) -> None:
    with schema_context(world.acme.schema):
        run = Run.objects.get(pk=ids["run"])
        assert (run.status, run.paused_at) == ("waiting", None)
        assert Approval.objects.get(pk=ids["approval"]).status == "pending"
        assert Incident.objects.get(pk=ids["incident"]).status == "open"
        assert not AuditEvent.objects.filter(action__startswith="workflow_", actor_email__endswith="@globex.test").exists()


def test_another_tenants_host_with_this_tenants_ids_finds_nothing(world, fake):
    ids = _acme_objects(world, fake)
    clients = [
        (host_client(world.globex.host), _key(world.globex, *ALL_SCOPES)),
        (_session(world.globex, "tenant_admin"), {}),
    ]
    checked = 0
    for method, path, body, model, object_id in _routes(ids):
        with schema_context(world.globex.schema):
            taken = _MODELS[model].objects.filter(pk=object_id).exists()  # the same id may name globex's own object
        for client, headers in clients:
            response = _call(client, method, path, body, **headers)
            assert response.status_code != 401, path
            if not taken:
                assert _problem(response, 404)["detail"].endswith("in this workspace."), path
                checked += 1
    assert checked, "every id is taken in globex too: nothing was tried"
    _untouched(world, ids)


def test_this_tenants_key_is_refused_on_another_tenants_host(world, fake):
    ids = _acme_objects(world, fake)
    key = _key(world.acme, *ALL_SCOPES)
    routes = [
        *_routes(ids),
        ("get", "/api/v1/incidents", {}, "", 0),
        ("get", "/api/v1/approvals", {}, "", 0),
        ("post", "/api/v1/incidents/retry", {}, "", 0),
        ("post", "/api/v1/events", {"event_type": "tracking.delivered", "event_id": "x"}, "", 0),
    ]
    for method, path, body, _model, _id in routes:
        problem = _problem(_call(host_client(world.globex.host), method, path, body, **key), 401)
        assert problem["detail"] == "This API key is not valid on this host.", path
        stolen = host_client(world.globex.host)
        stolen.cookies = _session(world.acme, "tenant_admin").cookies
        assert _call(stolen, method, path, body).status_code in (401, 403), path
    _untouched(world, ids)


def test_a_customer_users_session_is_refused_everywhere(world, fake):
    ids = _acme_objects(world, fake)
    customer = _session(world.acme, "customer")
    routes = [
        *_routes(ids),
        ("get", "/api/v1/incidents", {}, "", 0),
        ("get", "/api/v1/approvals", {}, "", 0),
        ("post", "/api/v1/incidents/retry", {}, "", 0),
    ]
    for method, path, body, _model, _id in routes:
        assert _problem(_call(customer, method, path, body), 403)["type"] == "https://baton.dev/problems/permission-denied", path
    _untouched(world, ids)


# --- the OpenAPI schema -----------------------------------------------------------------------------------------


def test_the_operations_api_is_in_the_openapi_schema(world):
    schema = _ok(host_client(world.acme.host).get("/api/schema/?format=json"))
    paths = schema["paths"]
    expected = {
        "/api/v1/runs/{run_id}/pause": ("post", {"200", "403", "404", "409", "422"}),
        "/api/v1/runs/{run_id}/resume": ("post", {"200", "403", "404", "409", "422"}),
        "/api/v1/runs/{run_id}/cancel": ("post", {"200", "403", "404", "409", "422"}),
        "/api/v1/incidents": ("get", {"200", "403", "422"}),
        "/api/v1/incidents/retry": ("post", {"200", "403", "422"}),
        "/api/v1/incidents/{incident_id}": ("get", {"200", "403", "404"}),
        "/api/v1/incidents/{incident_id}/retry": ("post", {"200", "403", "404", "409", "422"}),
        "/api/v1/incidents/{incident_id}/restart": ("post", {"200", "403", "404", "409", "422"}),
        "/api/v1/approvals": ("get", {"200"}),
        "/api/v1/approvals/{approval_id}": ("get", {"200", "403", "404"}),
        "/api/v1/approvals/{approval_id}/decision": ("post", {"200", "403", "404", "409", "422"}),
        "/api/v1/events": ("post", {"202", "403", "422"}),
    }
    for path, (method, responses) in expected.items():
        assert responses <= set(paths[path][method]["responses"]), path
    events = paths["/api/v1/events"]["post"]
    assert "examples" in events["requestBody"]["content"]["application/json"]
    decision = schema["components"]["schemas"]["ApprovalDecisionRequest"]
    assert decision["required"] == ["decision"] and set(decision["properties"]) == {"decision", "comment"}
    detail = schema["components"]["schemas"]["RunDetail"]["properties"]
    assert {"waiting_for", "paused_at", "parent", "children", "generation", "pending_timers", "open_incident", "approvals"} <= set(detail)
    assert {"started_runs", "duplicate_runs", "problems", "woken_runs"} <= set(
        schema["components"]["schemas"]["EventAccepted"]["properties"]
    )


def test_cancelling_a_failed_run_resolves_its_incident_and_a_finished_run_cannot_be_cancelled(world, fake):
    run, incident = _failed_run(world, fake)
    client, auth = host_client(world.acme.host), _key(world.acme, OPERATE)
    body = _ok(_post(client, f"/api/v1/runs/{run.pk}/cancel", {"reason": "duplicate order"}, **auth))
    assert (body["status"], body["open_incident"]) == ("cancelled", None)
    incident = _refresh(world, incident)
    assert (incident.status, incident.resolution, incident.comment) == ("resolved", "cancelled", "duplicate order")
    assert _problem(_post(client, f"/api/v1/runs/{run.pk}/cancel", **auth), 409)["detail"] == f"Run {run.pk} is already cancelled."
    assert _problem(_post(client, f"/api/v1/incidents/{incident.pk}/retry", **auth), 409)["detail"].endswith(
        "already resolved (cancelled)."
    )
