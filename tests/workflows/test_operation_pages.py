"""Operating runs from the workspace: the run page's actions (pause, resume, cancel, retry with
corrected input or context, restart on the published version), the incidents queue with its bulk
retry, and starting a run by hand from the definition page."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tests.conftest import signed_in_client
from tests.workflows.runs_setup import ORDER_SPEC, definition_published, run_advanced, run_started, version_publish
from workflows import operations
from workflows.engine import ConnectorError
from workflows.models import Incident, Run, Timer

pytestmark = pytest.mark.django_db

APPROVAL_SPEC = {
    "start": "prepare",
    "triggers": [{"kind": "manual"}],
    "steps": [
        {"id": "prepare", "kind": "transform", "mapping": {"order": "$.input.order_id"}, "next": "ok"},
        {
            "id": "ok",
            "kind": "approval",
            "title": "Release the order",
            "assignee_roles": ["planner"],
            "due": "PT1H",
            "escalate_to": ["tenant_admin"],
            "next": "done",
            "on_reject": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
        {"id": "undo", "kind": "notify", "channel": "email", "to_roles": ["planner"], "template": "undo", "next": None},
    ],
    "compensation": {"prepare": "undo"},
}
# ORDER_SPEC with a retried connector: a failing carrier opens an incident with an error class.
RETRY_SPEC = json.loads(json.dumps(ORDER_SPEC))
RETRY_SPEC["steps"][2]["retry"] = {"attempts": 1}
BROKEN_ORDER = {"order_id": "SO-X"}  # no total: the decision step fails


def _client(world, role="dispatcher", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _run(world, run_id: int, tenant="acme") -> Run:
    with schema_context(getattr(world, tenant).schema):
        return Run.objects.select_related("definition", "definition_version").get(pk=run_id)


def _audit(world, action: str, target_id: int | None = None) -> AuditEvent | None:
    with schema_context(world.acme.schema):
        events = AuditEvent.objects.filter(action=action)
        if target_id is not None:
            events = events.filter(target_id=str(target_id))
        return events.first()


def _waiting_run(world, **kwargs) -> Run:
    definition = definition_published(world.acme, APPROVAL_SPEC, key=kwargs.pop("key", "release-check"))
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"order_id": "SO-5"}, **kwargs))
    assert run.status == "waiting"
    return run


def _incident_run(world, key="order-release", input=None) -> Run:
    definition = definition_published(world.acme, key=key)
    run = run_advanced(world.acme, run_started(world.acme, definition, input=input or BROKEN_ORDER))
    assert run.status == "failed"
    return run


# --- the run page -----------------------------------------------------------------------------------


def test_a_waiting_run_shows_what_it_waits_for_its_timer_and_its_approval(world, fake):
    run = _waiting_run(world)
    body = _client(world).get(f"/workflows/runs/{run.pk}/").content.decode().replace("\xa0", " ")  # humanize's spaces
    assert "Waiting at step “ok” (approval)" in body
    assert "it is waiting for approval by planner, due" in body  # run.waiting_for, in words
    # The approval's due timer, with its relative time.
    assert "Pending timers" in body and "Approval due" in body and "59 minutes from now" in body
    # The approval itself, linked to its page.
    with schema_context(world.acme.schema):
        approval = run.approvals.get()
    assert f'href="/workflows/approvals/{approval.pk}/">Release the order</a>' in body
    # An operator may pause and cancel; cancelling says the completed step's handler runs.
    assert f'action="/workflows/runs/{run.pk}/pause/"' in body and f'action="/workflows/runs/{run.pk}/cancel/"' in body
    assert "Cancelling runs the compensation handlers" in body and "<code>undo</code>" in body


def test_people_who_only_look_see_no_run_actions(world, fake):
    run = _waiting_run(world)
    body = _client(world, "finance").get(f"/workflows/runs/{run.pk}/").content.decode()
    assert "Waiting at step" in body and "/pause/" not in body and "/cancel/" not in body
    for action in ("pause", "resume", "cancel", "retry", "restart"):
        assert _client(world, "finance").post(f"/workflows/runs/{run.pk}/{action}/").status_code == 403
        assert _client(world, "customer").post(f"/workflows/runs/{run.pk}/{action}/").status_code == 403
    assert _run(world, run.pk).paused_at is None


def test_pause_and_resume_are_shown_and_audited(world, fake):
    run = _waiting_run(world)
    client = _client(world)
    response = client.post(f"/workflows/runs/{run.pk}/pause/", follow=True)
    body = response.content.decode()
    paused = _run(world, run.pk)
    assert paused.paused_at is not None and paused.paused_by_email == "dispatcher@acme.test"
    assert f"Run #{run.pk} paused" in body and "Paused</strong> by dispatcher@acme.test" in body
    assert f'action="/workflows/runs/{run.pk}/resume/"' in body and f'action="/workflows/runs/{run.pk}/pause/"' not in body
    assert _audit(world, "workflow_run.paused", run.pk).actor_email == "dispatcher@acme.test"
    # Pausing again is refused by the service, and the page says why.
    again = client.post(f"/workflows/runs/{run.pk}/pause/", follow=True).content.decode()
    assert f"Run {run.pk} is already paused." in again
    body = client.post(f"/workflows/runs/{run.pk}/resume/", follow=True).content.decode()
    assert _run(world, run.pk).paused_at is None and f"Run #{run.pk} resumed" in body
    assert _audit(world, "workflow_run.resumed", run.pk) is not None


def test_cancel_with_a_reason_runs_the_compensation_handlers(world, fake):
    run = _waiting_run(world)
    body = (
        _client(world, "planner").post(f"/workflows/runs/{run.pk}/cancel/", {"reason": "customer withdrew"}, follow=True).content.decode()
    )
    cancelled = _run(world, run.pk)
    assert cancelled.status == "compensating" and "customer withdrew" in cancelled.error
    assert "Undoing the completed steps" in body
    event = _audit(world, "workflow_run.cancelled", run.pk)
    assert event.reason == "customer withdrew" and event.actor_email == "planner@acme.test"
    assert run_advanced(world.acme, cancelled).status == "compensated"
    # The approval it waited for is closed, and a second cancel is refused with the reason.
    with schema_context(world.acme.schema):
        assert run.approvals.get().status == "cancelled"
    again = _client(world, "planner").post(f"/workflows/runs/{run.pk}/cancel/", follow=True).content.decode()
    assert f"Run {run.pk} is already compensated." in again


def test_a_failed_run_shows_its_incident_with_attempts_input_and_actions(world, fake):
    run = _incident_run(world)
    body = _client(world).get(f"/workflows/runs/{run.pk}/").content.decode()
    with schema_context(world.acme.schema):
        incident = Incident.objects.get(run=run, status="open")
    assert f"Incident #{incident.pk} at step “check”" in body and "an incident is open" in body
    assert "Error class" in body and f"<code>{incident.error_class}</code>" in body
    assert "1 failed attempt since" in body and "Attempt 1" in body
    assert f'action="/workflows/runs/{run.pk}/retry/"' in body and f'action="/workflows/runs/{run.pk}/restart/"' in body
    assert "Restart on v1" in body and "v1 is the version this run is on" in body
    # The edit form comes prefilled with the run's input as JSON.
    assert "&quot;order_id&quot;: &quot;SO-X&quot;" in body and 'name="edit" value="1"' in body


def test_retry_with_corrected_input_resolves_the_incident_and_the_run_goes_on(world, fake):
    run = _incident_run(world)
    context = json.dumps(_run(world, run.pk).context)
    response = _client(world).post(
        f"/workflows/runs/{run.pk}/retry/",
        {"edit": "1", "input": json.dumps({"order_id": "SO-X", "total": 250}), "context": context, "comment": "added the total"},
    )
    assert response.status_code == 302
    retried = _run(world, run.pk)
    assert retried.status == "running" and retried.ready_at is not None and retried.input["total"] == 250
    with schema_context(world.acme.schema):
        incident = Incident.objects.get(run=run)
    assert incident.status == "resolved" and incident.resolution == "retried" and incident.resolved_by_email == "dispatcher@acme.test"
    event = _audit(world, "workflow_incident.retried", incident.pk)
    assert event.data["edited"]["input"] == {"keys": ["total"], "before": {"total": None}, "after": {"total": 250}}
    assert "context" not in event.data["edited"] and event.reason == "added the total"
    assert run_advanced(world.acme, retried).status == "succeeded"


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("input", '{"order_id": "SO-X",', "Not valid JSON"),
        ("input", "[1, 2]", "Must be a JSON object"),
        ("context", '{"a": 1', "Not valid JSON"),
        ("input", json.dumps({"blob": "x" * 300_000}), "The input is 292 KB; the limit is 256 KB."),
    ],
)
def test_retry_with_bad_json_says_so_next_to_the_field_and_changes_nothing(world, fake, field, text, message):
    run = _incident_run(world)
    data = {"edit": "1", "input": json.dumps(BROKEN_ORDER), "context": "{}", field: text}
    response = _client(world).post(f"/workflows/runs/{run.pk}/retry/", data)
    body = response.content.decode()
    assert response.status_code == 400
    errors = re.search(rf'<ul class="field__errors" id="id_{field}_errors"[^>]*>(.*?)</ul>', body, re.S)
    assert errors and message in errors.group(1)
    assert '<details class="disclosure incident-edit" open>' in body  # the form stays open with the text typed
    assert _run(world, run.pk).status == "failed"
    with schema_context(world.acme.schema):
        assert Incident.objects.get(run=run).status == "open"


def test_a_plain_retry_of_a_connector_incident_retries_the_same_step(world, fake):
    fake.fail_next("tender_load", ConnectorError("carrier down", kind="CarrierDown"))
    definition = definition_published(world.acme, RETRY_SPEC, key="tender-flow")
    run = run_advanced(world.acme, run_started(world.acme, definition))
    with schema_context(world.acme.schema):
        incident = Incident.objects.get(run=run)
    assert incident.error_class == "CarrierDown" and incident.step_id == "tender"
    body = _client(world).post(f"/workflows/runs/{run.pk}/retry/", follow=True).content.decode()
    assert "Retrying step “tender”" in body
    assert run_advanced(world.acme, _run(world, run.pk)).status == "succeeded"
    # Retrying again: there is no open incident any more.
    body = _client(world).post(f"/workflows/runs/{run.pk}/retry/", follow=True).content.decode()
    assert f"Run #{run.pk} has no open incident" in body


def test_restart_moves_the_run_to_the_published_version(world, fake):
    run = _incident_run(world)
    fixed = json.loads(json.dumps(ORDER_SPEC))
    fixed["steps"][0]["cases"][0]["when"] = "has(input.total) && input.total > 1000"
    version_publish(world.acme, _run(world, run.pk).definition, fixed)
    body = _client(world).get(f"/workflows/runs/{run.pk}/").content.decode()
    assert "Restart on v2" in body and "v2 is the published version; this run is on v1." in body
    body = _client(world, "tenant_admin").post(f"/workflows/runs/{run.pk}/restart/", follow=True).content.decode()
    restarted = _run(world, run.pk)
    assert restarted.definition_version.number == 2 and restarted.generation == 1 and restarted.status == "running"
    assert f"Run #{run.pk} restarted from the beginning on v2." in body
    with schema_context(world.acme.schema):
        incident = Incident.objects.get(run=run)
    event = _audit(world, "workflow_incident.restarted", incident.pk)
    assert event.data["from_version"] == 1 and event.data["to_version"] == 2


def test_another_tenants_host_knows_none_of_these_runs(world, fake):
    run = _incident_run(world)
    with schema_context(world.globex.schema):
        assert not Run.objects.filter(pk=run.pk).exists()
    client = _client(world, "tenant_admin", tenant="globex")
    assert client.get(f"/workflows/runs/{run.pk}/").status_code == 404
    for action in ("pause", "resume", "cancel", "retry", "restart"):
        assert client.post(f"/workflows/runs/{run.pk}/{action}/").status_code == 404
    unchanged = _run(world, run.pk)
    assert unchanged.status == "failed" and unchanged.paused_at is None


# --- the incidents queue ------------------------------------------------------------------------------


def _row_runs(body: str) -> list[int]:
    return [int(n) for n in re.findall(r'<a href="/workflows/runs/(\d+)/(?:#incident)?">Run #', body)]


def test_the_incidents_queue_lists_filters_and_counts_open_incidents(world, fake):
    decision = _incident_run(world, key="order-release")
    fake.fail_next("tender_load", ConnectorError("carrier down", kind="CarrierDown"), times=2)
    tender = definition_published(world.acme, RETRY_SPEC, key="tender-flow")
    carrier_a = run_advanced(world.acme, run_started(world.acme, tender, business_key="T-1"))
    carrier_b = run_advanced(world.acme, run_started(world.acme, tender, business_key="T-2"))
    client = _client(world, "finance")  # anyone on staff may look
    body = client.get("/workflows/incidents/").content.decode()
    assert set(_row_runs(body)) >= {decision.pk, carrier_a.pk, carrier_b.pk}
    # Counts by workflow and by error class, as bars that filter.
    assert 'href="?definition=tender-flow"' in body and 'href="?error_class=CarrierDown"' in body
    assert re.search(r'href="\?error_class=CarrierDown".*?bar-chart__count">2<', body, re.S)
    assert "Retry all" not in body  # finance does not operate
    assert _row_runs(client.get("/workflows/incidents/?error_class=CarrierDown").content.decode()) == [carrier_b.pk, carrier_a.pk]
    assert _row_runs(client.get("/workflows/incidents/?definition=order-release").content.decode()) == [decision.pk]
    assert _row_runs(client.get("/workflows/incidents/?step=tender&since=1h").content.decode()) == [carrier_b.pk, carrier_a.pk]
    with schema_context(world.acme.schema):
        Incident.objects.filter(run=decision).update(opened_at=timezone.now() - timedelta(days=2))
    assert decision.pk not in _row_runs(client.get("/workflows/incidents/?since=24h").content.decode())
    assert "No incidents match" in client.get("/workflows/incidents/?step=nothing-like-it").content.decode()
    # htmx filtering swaps only the results.
    partial = client.get("/workflows/incidents/?error_class=CarrierDown", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith("<div") and 'id="incident-results"' in partial and "bar-chart" not in partial
    # The navigation counts open incidents.
    with schema_context(world.acme.schema):
        open_count = Incident.objects.filter(status="open").count()
    assert f'Incidents <span class="badge badge--danger nav-count">{open_count}<' in body


def test_bulk_retry_confirms_the_count_then_retries_and_reports(world, fake):
    fake.fail_next("tender_load", ConnectorError("carrier down", kind="CarrierDown"), times=2)
    tender = definition_published(world.acme, RETRY_SPEC, key="tender-flow")
    runs = [run_advanced(world.acme, run_started(world.acme, tender, business_key=f"T-{n}")) for n in range(2)]
    other = _incident_run(world, key="order-release")
    client = _client(world, "planner")
    body = client.get("/workflows/incidents/?definition=tender-flow").content.decode()
    assert 'href="/workflows/incidents/retry/?definition=tender-flow"' in body and "Retry these 2…" in body
    confirm = client.get("/workflows/incidents/retry/?definition=tender-flow").content.decode()
    assert "2 incidents will be retried" in confirm and "Retry 2 incidents" in confirm
    assert 'name="definition" value="tender-flow"' in confirm
    result = client.post("/workflows/incidents/retry/", {"definition": "tender-flow", "comment": "carrier back"}).content.decode()
    assert "2 incidents retried." in result
    for run in runs:
        assert f'href="/workflows/runs/{run.pk}/"' in result
        assert _run(world, run.pk).status == "running"
    assert _run(world, other.pk).status == "failed"  # not matched, not retried
    event = _audit(world, "workflow_incidents.bulk_retried")
    assert event.data["retried"] == 2 and event.data["filter"] == {"definition": "tender-flow"} and event.reason == "carrier back"
    # The resolved tab shows them, with how and by whom.
    resolved = client.get("/workflows/incidents/?tab=resolved&definition=tender-flow").content.decode()
    assert set(_row_runs(resolved)) == {run.pk for run in runs}
    assert "Retried from the failed step" in resolved and "by planner@acme.test" in resolved and "carrier back" in resolved
    # Nothing left to retry.
    assert "Nothing to retry" in client.get("/workflows/incidents/retry/?definition=tender-flow").content.decode()


def test_bulk_retry_reports_incidents_someone_else_resolved_meanwhile(world, fake):
    fake.fail_next("tender_load", ConnectorError("carrier down", kind="CarrierDown"), times=2)
    tender = definition_published(world.acme, RETRY_SPEC, key="tender-flow")
    first, second = (run_advanced(world.acme, run_started(world.acme, tender, business_key=f"T-{n}")) for n in range(2))
    with schema_context(world.acme.schema):
        raced = Incident.objects.get(run=second)
    real_retry = operations.incident_retry

    def with_a_colleague_first(*, incident, **kwargs):
        """Another operator retries the second incident while the bulk retry works on the first."""
        if incident.run_id == first.pk:
            real_retry(incident=Incident.objects.get(pk=raced.pk), actor=world.acme.users["tenant_admin"], comment="on it")
        return real_retry(incident=incident, **kwargs)

    with mock.patch.object(operations, "incident_retry", with_a_colleague_first):
        result = _client(world, "planner").post("/workflows/incidents/retry/", {"definition": "tender-flow"}).content.decode()
    assert "1 incident retried, 1 skipped." in result and "Skipped, and why" in result
    assert f"incident #{raced.pk}" in result and f"Incident {raced.pk} is already resolved (retried)." in result


def test_bulk_retry_is_for_operators_only(world, fake):
    _incident_run(world)
    assert _client(world, "finance").get("/workflows/incidents/retry/").status_code == 403
    assert _client(world, "customer_service").post("/workflows/incidents/retry/").status_code == 403
    assert _client(world, "customer").get("/workflows/incidents/").status_code == 403


def test_another_tenant_sees_none_of_the_incidents(world, fake):
    run = _incident_run(world, input={"order_id": "SO-SECRET-7"})
    with schema_context(world.acme.schema):
        Run.objects.filter(pk=run.pk).update(business_key="acme-secret-key")
    assert "acme-secret-key" in _client(world).get("/workflows/incidents/").content.decode()
    client = _client(world, "tenant_admin", tenant="globex")
    body = client.get("/workflows/incidents/").content.decode()
    assert "acme-secret-key" not in body and f'href="/workflows/runs/{run.pk}/#incident"' not in body
    client.post("/workflows/incidents/retry/", {})
    assert _run(world, run.pk).status == "failed"


def test_empty_queues_say_what_to_do(world):
    with schema_context(world.acme.schema):
        Incident.objects.all().delete()  # rolled back with the test
    body = _client(world).get("/workflows/incidents/").content.decode()
    assert "No open incidents" in body and "retry, restart or cancel" in body
    assert "No resolved incidents yet" in _client(world).get("/workflows/incidents/?tab=resolved").content.decode()


# --- starting a run by hand ------------------------------------------------------------------------------


def test_an_operator_starts_a_run_by_hand_with_input_business_key_and_correlation(world, fake):
    definition = definition_published(world.acme, APPROVAL_SPEC, key="release-check")
    client = _client(world)
    page = client.get(f"/workflows/{definition.key}/").content.decode()
    assert "Start a run…" in page and "This workflow can be started by hand." in page
    response = client.post(
        f"/workflows/{definition.key}/start/",
        {"input": '{"order_id": "SO-77"}', "business_key": "SO-77", "correlation": "order:SO-77, PO: 4411"},
    )
    assert response.status_code == 302
    run_id = int(re.search(r"/workflows/runs/(\d+)/", response["Location"]).group(1))
    run = _run(world, run_id)
    assert run.trigger == "manual" and run.created_by_email == "dispatcher@acme.test" and run.input == {"order_id": "SO-77"}
    assert run.business_key == "SO-77" and run.correlation == {"order": "SO-77", "po": "4411"}
    assert _audit(world, "workflow_run.started", run_id).data["trigger"] == "manual"
    # The same business key again shows the run it started.
    again = client.post(f"/workflows/{definition.key}/start/", {"input": "{}", "business_key": "SO-77"})
    assert again["Location"] == f"/workflows/runs/{run_id}/"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"input": "{nope"}, "input", "Not valid JSON"),
        ({"input": "[]"}, "input", "Must be a JSON object"),
        ({"input": "{}", "correlation": "invoice:7"}, "correlation", "Unknown correlation key “invoice”"),
        ({"input": "{}", "correlation": "order"}, "correlation", "is not name:value"),
        ({"input": json.dumps({"blob": "x" * 300_000})}, "input", "the limit is 256 KB"),
    ],
)
def test_a_refused_start_says_why_next_to_the_field(world, fake, data, field, message):
    definition = definition_published(world.acme, APPROVAL_SPEC, key="release-check")
    response = _client(world).post(f"/workflows/{definition.key}/start/", data)
    body = response.content.decode()
    assert response.status_code == 400
    errors = re.search(rf'<ul class="field__errors" id="id_{field}_errors"[^>]*>(.*?)</ul>', body, re.S)
    assert errors and message in errors.group(1)
    assert '<details class="disclosure" open>' in body
    with schema_context(world.acme.schema):
        assert not Run.objects.filter(definition=definition).exists()


def test_without_a_manual_trigger_only_tenant_admins_start_runs(world, fake):
    definition = definition_published(world.acme, key="order-release")  # an API trigger only
    assert "Start a run" not in _client(world).get(f"/workflows/{definition.key}/").content.decode()
    assert _client(world).post(f"/workflows/{definition.key}/start/", {"input": "{}"}).status_code == 403
    assert _client(world, "finance").post(f"/workflows/{definition.key}/start/", {"input": "{}"}).status_code == 403
    admin = _client(world, "tenant_admin")
    assert "no manual trigger; as a tenant admin you can start it anyway" in admin.get(f"/workflows/{definition.key}/").content.decode()
    response = admin.post(f"/workflows/{definition.key}/start/", {"input": json.dumps({"order_id": "SO-1", "total": 5})})
    assert response.status_code == 302
    globex = _client(world, "tenant_admin", tenant="globex")
    assert globex.post(f"/workflows/{definition.key}/start/", {"input": "{}"}).status_code == 404


def test_timers_of_a_retrying_step_show_the_next_attempt(world, fake):
    spec = json.loads(json.dumps(ORDER_SPEC))
    spec["steps"][2]["retry"] = {"attempts": 3, "backoff_seconds": 600}
    fake.fail_next("tender_load", ConnectorError("carrier down", kind="CarrierDown"))
    definition = definition_published(world.acme, spec, key="tender-flow")
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert run.status == "waiting"
    body = _client(world).get(f"/workflows/runs/{run.pk}/").content.decode().replace("\xa0", " ")
    assert "Next attempt" in body and "of step <code>tender</code>" in body and "minutes from now" in body
    assert "attempt 2 of 3 at" in body  # what the run waits for
    with schema_context(world.acme.schema):
        assert Timer.objects.filter(run=run, fired_at__isnull=True).count() == 1
