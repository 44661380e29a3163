"""The batch start: many runs in one request, each started, found by its key or refused on its
own, exactly as the single start would; one insert, one audit row and one wake-up per batch."""

from __future__ import annotations

import json
from functools import partial

import pytest
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from governance.models import AuditEvent
from tests.conftest import host_client, signed_in_client
from tests.workflows.runs_setup import definition_published
from workflows.engine import RUNS_STARTED, FakeConnector, connector_port_set, run_advance, runs_claim
from workflows.models import Run, StepExecution
from workflows.runs import _wake

pytestmark = pytest.mark.django_db

URL = "/api/v1/processes/order-release/runs/batch"
ORDER = {"order_id": "SO-9", "total": 120, "lines": [{"sku": "B-2"}]}


def _key(world, *scopes, tenant: str = "acme") -> dict:
    tenant_world = getattr(world, tenant)
    with schema_context(tenant_world.schema):
        _key, secret = api_key_create(name="erp", scopes=list(scopes), actor=tenant_world.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def _batch(world, runs, auth: dict, url: str = URL, host: str = ""):
    body = runs if not isinstance(runs, list) else {"runs": runs}
    return host_client(host or world.acme.host).post(url, data=json.dumps(body), content_type="application/json", **auth)


def _started(world, runs, auth: dict) -> dict:
    response = _batch(world, runs, auth)
    assert response.status_code == 200, response.content[:600]
    return response.json()


def _single(world, body: dict, auth: dict, idempotency_key: str = ""):
    headers = {**auth, **({"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {})}
    return host_client(world.acme.host).post(
        "/api/v1/processes/order-release/runs", data=json.dumps(body), content_type="application/json", **headers
    )


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def _runs(world, definition) -> list[Run]:
    with schema_context(world.acme.schema):
        return list(Run.objects.filter(definition=definition).select_related("definition_version").order_by("pk"))


@pytest.fixture
def definition(world):
    return definition_published(world.acme, key="order-release")


@pytest.fixture
def auth(world) -> dict:
    return _key(world, "workflows:run")


def test_a_batch_starts_every_run_and_answers_each_in_request_order(world, definition, auth):
    items = [
        {"input": {**ORDER, "order_id": f"SO-{n}"}, "business_key": f"SO-{n}", "correlation": {"order": f" SO-{n} ", "po": 77}}
        for n in range(3)
    ]
    answer = _started(world, items, auth)
    runs = _runs(world, definition)
    assert answer == {
        "runs": [{"index": n, "id": runs[n].pk, "status": "queued", "created": True} for n in range(3)],
        "created": 3,
        "existing": 0,
        "refused": 0,
    }
    for n, run in enumerate(runs):
        assert (run.status, run.trigger, run.business_key, run.current_step, run.definition_version.number) == (
            "queued",
            "api",
            f"SO-{n}",
            "check",
            1,
        )
        assert run.input == items[n]["input"] and run.correlation == {"order": f"SO-{n}", "po": "77"}
        assert run.ready_at is not None and run.created_by_email.startswith("api-key:")
        assert len(run.request_hash) == 64


def test_a_run_started_in_a_batch_is_stored_exactly_like_one_started_singly(world, definition, auth):
    body = {"input": ORDER, "correlation": {"order": "SO-9"}}
    single = _single(world, {**body, "business_key": "one"}, auth, idempotency_key="k-one")
    batched = _started(world, [{**body, "business_key": "two", "idempotency_key": "k-two"}], auth)["runs"][0]
    differ = {"id", "business_key", "idempotency_key", "request_hash", "created_at", "ready_at"}
    with schema_context(world.acme.schema):
        rows = {row["id"]: row for row in Run.objects.filter(pk__in=[single.json()["id"], batched["id"]]).values()}
        compensation_nulls = Run.objects.filter(pk__in=list(rows), compensation_queue__isnull=True).count()
    first, second = rows[single.json()["id"]], rows[batched["id"]]
    assert {k: v for k, v in first.items() if k not in differ} == {k: v for k, v in second.items() if k not in differ}
    assert (second["business_key"], second["idempotency_key"]) == ("two", "k-two")
    assert compensation_nulls == 2  # SQL NULL like Django's insert, not a JSON null


def test_a_refused_run_refuses_only_itself_with_a_pointer_into_its_item(world, definition, auth):
    items = [
        {"input": ORDER},
        {"input": [1, 2]},
        {"input": {}, "correlation": {"invoice": "1"}},
        {"input": {"blob": "x" * 300_000}},
        {"input": {}, "business_key": "b" * 201},
        "not an object",
        {"business_key": "no-input"},
        {"input": {}, "idempotency_key": "k" * 201},
        {"input": {"order_id": "last"}},
    ]
    answer = _started(world, items, auth)
    assert (answer["created"], answer["existing"], answer["refused"]) == (2, 0, 7)
    assert [run["created"] for run in answer["runs"] if "error" not in run] == [True, True]
    errors = {run["index"]: run["error"] for run in answer["runs"] if "error" in run}
    assert {index: (error["status"], error["pointer"]) for index, error in errors.items()} == {
        1: (422, "/runs/1/input"),
        2: (422, "/runs/2/correlation"),
        3: (422, "/runs/3/input"),
        4: (422, "/runs/4/business_key"),
        5: (422, "/runs/5"),
        6: (422, "/runs/6/input"),
        7: (422, "/runs/7/idempotency_key"),
    }
    assert errors[1]["detail"] == 'Expected a dictionary of items but got type "list".'
    assert errors[2]["detail"] == "Unknown correlation key 'invoice'; use order, shipment, po, bol, pro."
    assert errors[3]["detail"].startswith("The input is 292 KB; the limit is 256 KB.")
    assert errors[3]["type"] == "https://baton.dev/problems/run-input-too-large"
    assert errors[4]["detail"] == "Ensure this field has no more than 200 characters."
    assert errors[5]["detail"] == "each run must be a JSON object"
    assert errors[6]["detail"] == "This field is required."
    assert errors[1]["type"] == "https://baton.dev/problems/run-request-invalid"
    assert errors[1]["title"] == "The request cannot be applied."
    assert [run.input for run in _runs(world, definition)] == [ORDER, {"order_id": "last"}]


def test_the_same_key_twice_in_a_batch_with_the_same_body_is_one_run(world, definition, auth):
    items = [
        {"input": ORDER, "idempotency_key": "k-1"},
        {"input": {"n": 2}, "business_key": "B-2"},
        {"input": ORDER, "idempotency_key": "k-1"},
        {"input": {"n": 2}, "business_key": "B-2", "idempotency_key": "k-new"},
    ]
    answer = _started(world, items, auth)
    runs = answer["runs"]
    assert (runs[2]["id"], runs[2]["created"]) == (runs[0]["id"], False)
    assert (runs[3]["id"], runs[3]["created"]) == (runs[1]["id"], False)
    assert (answer["created"], answer["existing"], answer["refused"]) == (2, 2, 0)
    assert len(_runs(world, definition)) == 2


def test_the_same_key_twice_in_a_batch_with_another_body_is_a_409_for_the_later(world, definition, auth):
    items = [
        {"input": ORDER, "idempotency_key": "k-1", "business_key": "B-1"},
        {"input": {"other": True}, "idempotency_key": "k-1"},
        {"input": {"other": True}, "business_key": "B-1"},
    ]
    answer = _started(world, items, auth)
    assert answer["runs"][0]["created"] is True
    assert answer["runs"][1]["error"] == {
        "type": "https://baton.dev/problems/idempotency-key-reused",
        "title": "The idempotency key was used with a different request.",
        "status": 409,
        "detail": "The idempotency key 'k-1' came earlier in this batch with a different request.",
        "pointer": "/runs/1/idempotency_key",
    }
    assert answer["runs"][2]["error"]["status"] == 409
    assert answer["runs"][2]["error"]["type"] == "https://baton.dev/problems/business-key-reused"
    assert answer["runs"][2]["error"]["pointer"] == "/runs/2/business_key"
    assert answer["runs"][2]["error"]["detail"] == "The business key 'B-1' came earlier in this batch with a different request."
    assert len(_runs(world, definition)) == 1


def test_a_batch_returns_the_runs_single_starts_made_with_the_same_keys(world, definition, auth):
    by_key = _single(world, {"input": ORDER}, auth, idempotency_key="k-single").json()
    by_business = _single(world, {"input": ORDER, "business_key": "B-single"}, auth).json()
    with schema_context(world.acme.schema):
        Run.objects.filter(pk=by_business["id"]).update(status="succeeded")
    answer = _started(
        world,
        [
            {"input": ORDER, "idempotency_key": "k-single"},  # the same body as the single start: the same run
            {"input": {"another": "order"}, "business_key": "B-single"},  # a business key returns its run whatever the body
            {"input": {"n": 1}},
        ],
        auth,
    )
    assert answer["runs"][:2] == [
        {"index": 0, "id": by_key["id"], "status": "queued", "created": False},
        {"index": 1, "id": by_business["id"], "status": "succeeded", "created": False},
    ]
    assert (answer["created"], answer["existing"], answer["refused"]) == (1, 2, 0)
    assert len(_runs(world, definition)) == 3


def test_a_single_start_returns_the_runs_a_batch_made_with_the_same_keys(world, definition, auth):
    body = {"input": ORDER, "correlation": {"order": "SO-9"}}
    answer = _started(world, [{**body, "idempotency_key": "k-batch"}, {"input": {"n": 2}, "business_key": "B-batch"}], auth)
    ids = [run["id"] for run in answer["runs"]]
    again = _single(world, body, auth, idempotency_key="k-batch")
    assert (again.status_code, again.json()["id"]) == (200, ids[0])
    assert _single(world, {"input": {"x": 1}, "business_key": "B-batch"}, auth).json()["id"] == ids[1]
    conflict = _problem(_single(world, {"input": {"changed": True}}, auth, idempotency_key="k-batch"), 409)
    assert conflict["detail"] == f"The idempotency key 'k-batch' was already used for run {ids[0]} with a different request."
    assert len(_runs(world, definition)) == 2


def test_an_idempotency_key_used_before_with_another_body_refuses_only_that_run(world, definition, auth):
    first = _single(world, {"input": ORDER}, auth, idempotency_key="k-used").json()
    answer = _started(world, [{"input": {"changed": True}, "idempotency_key": "k-used"}, {"input": {"n": 1}}], auth)
    assert answer["runs"][0]["error"] == {
        "type": "https://baton.dev/problems/idempotency-key-reused",
        "title": "The idempotency key was used with a different request.",
        "status": 409,
        "detail": f"The idempotency key 'k-used' was already used for run {first['id']} with a different request.",
        "pointer": "/runs/0/idempotency_key",
    }
    assert answer["runs"][1]["created"] is True
    assert (answer["created"], answer["existing"], answer["refused"]) == (1, 0, 1)


@pytest.mark.parametrize(
    ("body", "pointer", "reason"),
    [
        ([{"input": {}}], "", "the body must be a JSON object"),
        ({"input": {}}, "/runs", "This field is required."),
        ({"runs": {"input": {}}}, "/runs", "must be a list of 1 to 500 runs"),
        ({"runs": []}, "/runs", "must be a list of 1 to 500 runs"),
        ({"runs": [{"input": {}}] * 501}, "/runs", "holds 501 runs; at most 500 start in one request, send the rest in another"),
    ],
)
def test_a_request_that_is_not_a_batch_of_1_to_500_runs_is_a_422(world, definition, auth, body, pointer, reason):
    response = host_client(world.acme.host).post(URL, data=json.dumps(body), content_type="application/json", **auth)
    problem = _problem(response, 422)
    assert problem["type"] == "https://baton.dev/problems/run-request-invalid"
    assert problem["errors"] == [{"pointer": pointer, "reason": reason}]
    assert _runs(world, definition) == []


def test_a_batch_of_500_runs_starts_them_all(world, definition, auth):
    answer = _started(world, [{"input": {"n": n}, "business_key": f"B-{n}"} for n in range(500)], auth)
    assert (answer["created"], answer["existing"], answer["refused"]) == (500, 0, 0)
    runs = _runs(world, definition)
    assert [run.input["n"] for run in runs] == list(range(500))
    assert [answer["runs"][n]["id"] for n in range(500)] == [run.pk for run in runs]


def test_an_unknown_or_unpublished_workflow_is_a_404(world, definition, order_release, auth):
    problem = _problem(_batch(world, [{"input": {}}], auth, url="/api/v1/processes/no-such-flow/runs/batch"), 404)
    assert problem["detail"] == "There is no workflow 'no-such-flow' in this workspace."
    client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    clone = {
        "template": "order-to-shipment-release",
        "key": "unpublished",
        "name": "Unpublished",
        "parameters": {"carrier_connection": "x"},
    }
    assert client.post("/api/v1/definitions", data=clone, content_type="application/json").status_code == 201
    problem = _problem(_batch(world, [{"input": {}}], auth, url="/api/v1/processes/unpublished/runs/batch"), 404)
    assert problem["detail"] == "The workflow 'unpublished' has no published version yet; publish one before starting runs."


def test_starting_a_batch_needs_the_run_scope_or_a_staff_role_that_may(world, definition):
    refused = _problem(_batch(world, [{"input": {}}], _key(world, "workflows:read", "workflows:write")), 403)
    assert refused["detail"].startswith("This needs the 'workflows:run' scope")
    body = json.dumps({"runs": [{"input": {}}]})
    finance = signed_in_client(world.acme.host, world.acme.users["finance"], world.acme.schema)
    assert finance.post(URL, data=body, content_type="application/json").status_code == 403
    assert _runs(world, definition) == []
    planner = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    assert planner.post(URL, data=body, content_type="application/json").status_code == 200


def test_another_tenants_key_or_host_cannot_start_runs_here(world, definition):
    globex_key = _key(world, "workflows:run", tenant="globex")
    assert _batch(world, [{"input": {}}], globex_key).status_code in (401, 403)
    acme_key = _key(world, "workflows:run")
    assert _batch(world, [{"input": {}}], acme_key, host=world.globex.host).status_code in (401, 403)
    globex_admin = signed_in_client(world.globex.host, world.globex.users["tenant_admin"], world.globex.schema)
    on_its_own_host = globex_admin.post(URL, data=json.dumps({"runs": [{"input": {}}]}), content_type="application/json")
    assert on_its_own_host.status_code == 404  # its workspace has no such workflow
    assert _runs(world, definition) == []


def test_a_batch_writes_one_audit_row_and_sends_one_wake_up(world, definition, auth, django_capture_on_commit_callbacks):
    with schema_context(world.acme.schema):
        before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    counted = RUNS_STARTED.labels("api")._value.get()
    with django_capture_on_commit_callbacks() as callbacks:
        answer = _started(world, [{"input": {"n": n}, "business_key": f"B-{n}", "idempotency_key": f"k-{n}"} for n in range(3)], auth)
    wakes = [callback for callback in callbacks if isinstance(callback, partial) and callback.func is _wake]
    assert [wake.args for wake in wakes] == [(world.acme.schema,)]
    for callback in callbacks:
        if callback not in wakes:
            callback()
    assert RUNS_STARTED.labels("api")._value.get() == counted + 3
    with schema_context(world.acme.schema):
        events = list(AuditEvent.objects.filter(pk__gt=before))
    assert [event.action for event in events] == ["workflow_run.started_many"]
    (event,) = events
    assert (event.target_type, event.target_id) == ("workflows.definition", str(definition.pk))
    assert event.actor_kind == "api_key"
    ids = [run["id"] for run in answer["runs"]]
    assert event.data == {
        "definition": "order-release",
        "version": 1,
        "trigger": "api",
        "count": 3,
        "runs": [{"id": ids[n], "business_key": f"B-{n}", "idempotency_key": f"k-{n}"} for n in range(3)],
    }
    # Sent again, nothing is started: no audit row and no wake-up.
    with django_capture_on_commit_callbacks() as callbacks:
        again = _started(world, [{"input": {"n": n}, "business_key": f"B-{n}", "idempotency_key": f"k-{n}"} for n in range(3)], auth)
    assert (again["created"], again["existing"]) == (0, 3) and callbacks == []
    with schema_context(world.acme.schema):
        assert AuditEvent.objects.filter(pk__gt=event.pk).count() == 0


def test_runs_started_in_a_batch_advance_to_completion_like_single_ones(world, definition, auth):
    single = _single(world, {"input": ORDER}, auth).json()
    answer = _started(world, [{"input": {**ORDER, "order_id": f"SO-{n}"}} for n in range(3)], auth)
    ids = [single["id"], *(run["id"] for run in answer["runs"])]
    previous = connector_port_set(FakeConnector())
    try:
        with schema_context(world.acme.schema):
            assert set(ids) <= set(runs_claim(owner="batch-test", limit=100))
            for run_id in ids:
                run_advance(run_id=run_id, owner="batch-test")
            statuses = dict(Run.objects.filter(pk__in=ids).values_list("pk", "status"))
            timelines = {
                run_id: list(StepExecution.objects.filter(run_id=run_id).order_by("pk").values_list("step_id", "status")) for run_id in ids
            }
            outputs = {run.pk: run.context["price"]["order"]["id"] for run in Run.objects.filter(pk__in=ids)}
    finally:
        connector_port_set(previous)
    assert set(statuses.values()) == {"succeeded"}
    steps = [("check", "succeeded"), ("price", "succeeded"), ("tender", "succeeded"), ("done", "succeeded")]
    assert all(timeline == steps for timeline in timelines.values())
    assert [outputs[run_id] for run_id in ids] == ["SO-9", "SO-0", "SO-1", "SO-2"]


def test_the_batch_start_is_in_the_openapi_schema(world):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    batch = schema["paths"]["/api/v1/processes/{key}/runs/batch"]["post"]
    assert batch["operationId"] == "process_run_start_batch"
    assert {"200", "403", "404", "422"} <= set(batch["responses"])
    request = schema["components"]["schemas"]["RunBatchStartRequest"]
    assert request["properties"]["runs"]["maxItems"] == 500 and request["properties"]["runs"]["minItems"] == 1
    item = schema["components"]["schemas"]["RunBatchItemRequest"]
    assert "input" in item["required"] and "idempotency_key" in item["properties"]
    answer = schema["components"]["schemas"]["RunBatchStarted"]
    assert set(answer["properties"]) == {"runs", "created", "existing", "refused"}
