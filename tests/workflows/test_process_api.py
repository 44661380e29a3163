"""The process API: start runs idempotently (201/200/409), read them, problem+json for refusals."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from tests.conftest import host_client, signed_in_client
from tests.workflows.runs_setup import definition_published
from workflows.engine import FakeConnector, connector_port_set, run_advance, runs_claim
from workflows.models import Run

pytestmark = pytest.mark.django_db

BODY = {"input": {"order_id": "SO-9", "total": 120, "lines": [{"sku": "B-2"}]}, "correlation": {"order": "SO-9", "po": "PO-77"}}


def _key(world, *scopes) -> dict:
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="erp", scopes=list(scopes), actor=world.acme.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def _post(world, key: str, body, auth: dict, idempotency_key: str = ""):
    headers = dict(auth)
    if idempotency_key:
        headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
    return host_client(world.acme.host).post(
        f"/api/v1/processes/{key}/runs", data=json.dumps(body), content_type="application/json", **headers
    )


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


@pytest.fixture
def definition(world):
    return definition_published(world.acme, key="order-release")


def test_starting_a_run_answers_201_with_the_run_and_its_links(world, definition):
    response = _post(world, "order-release", BODY, _key(world, "workflows:run"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == f"/api/v1/runs/{body['id']}"
    assert {k: body[k] for k in ("definition", "version", "status", "trigger", "current_step", "input", "correlation", "business_key")} == {
        "definition": "order-release",
        "version": 1,
        "status": "queued",
        "trigger": "api",
        "current_step": "check",
        "input": BODY["input"],
        "correlation": {"order": "SO-9", "po": "PO-77"},
        "business_key": "",
    }
    assert body["links"] == {"self": f"/api/v1/runs/{body['id']}", "definition": "/api/v1/definitions/order-release"}


def test_a_start_reads_the_workflow_and_its_published_version_once(world, definition):
    auth = _key(world, "workflows:run")
    with CaptureQueriesContext(connection) as queries:
        response = _post(world, "order-release", BODY, auth)
    assert response.status_code == 201, response.content
    reads = [query["sql"] for query in queries.captured_queries if 'FROM "workflows_definition"' in query["sql"]]
    assert len(reads) == 1 and '"workflows_definitionversion"' in reads[0]


def test_the_same_idempotency_key_and_body_return_the_same_run_with_200(world, definition):
    auth = _key(world, "workflows:run")
    first = _post(world, "order-release", BODY, auth, idempotency_key="req-1")
    # The same body with its keys in another order is the same request.
    reordered = {"correlation": BODY["correlation"], "input": dict(reversed(list(BODY["input"].items())))}
    again = _post(world, "order-release", reordered, auth, idempotency_key="req-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    with schema_context(world.acme.schema):
        assert Run.objects.filter(definition=definition).count() == 1


def test_the_same_idempotency_key_with_another_body_is_a_409(world, definition):
    auth = _key(world, "workflows:run")
    first = _post(world, "order-release", BODY, auth, idempotency_key="req-2")
    problem = _problem(_post(world, "order-release", {**BODY, "input": {"order_id": "SO-10"}}, auth, idempotency_key="req-2"), 409)
    assert problem["type"] == "https://baton.dev/problems/idempotency-key-reused"
    assert problem["detail"] == f"The idempotency key 'req-2' was already used for run {first.json()['id']} with a different request."
    assert problem["instance"] == "/api/v1/processes/order-release/runs"


def test_the_same_business_key_returns_the_first_run(world, definition):
    auth = _key(world, "workflows:run")
    first = _post(world, "order-release", {**BODY, "business_key": "SO-9"}, auth)
    again = _post(world, "order-release", {"input": {"order_id": "other"}, "business_key": "SO-9"}, auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["input"] == BODY["input"]


def test_an_unknown_or_unpublished_workflow_is_a_404(world, definition, order_release):
    auth = _key(world, "workflows:run")
    assert _problem(_post(world, "no-such-flow", BODY, auth), 404)["detail"] == "There is no workflow 'no-such-flow' in this workspace."
    client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    clone = {
        "template": "order-to-shipment-release",
        "key": "unpublished",
        "name": "Unpublished",
        "parameters": {"carrier_connection": "x"},
    }
    assert client.post("/api/v1/definitions", data=clone, content_type="application/json").status_code == 201
    problem = _problem(_post(world, "unpublished", BODY, auth), 404)
    assert problem["detail"] == "The workflow 'unpublished' has no published version yet; publish one before starting runs."


@pytest.mark.parametrize(
    ("body", "headers", "pointer", "reason"),
    [
        ({"input": [1, 2]}, {}, "/input", 'Expected a dictionary of items but got type "list".'),
        ({"input": {"blob": "x" * 300_000}}, {}, "/input", "The input is 292 KB; the limit is 256 KB."),
        (
            {"input": {}, "correlation": {"invoice": "1"}},
            {},
            "/correlation",
            "Unknown correlation key 'invoice'; use order, shipment, po, bol, pro.",
        ),
        (
            {"input": {}},
            {"HTTP_IDEMPOTENCY_KEY": "k" * 201},
            "/header/Idempotency-Key",
            "The idempotency key is longer than 200 characters.",
        ),
    ],
)
def test_bad_input_is_a_422_naming_the_field(world, definition, body, headers, pointer, reason):
    response = host_client(world.acme.host).post(
        "/api/v1/processes/order-release/runs",
        data=json.dumps(body),
        content_type="application/json",
        **_key(world, "workflows:run"),
        **headers,
    )
    problem = _problem(response, 422)
    assert problem["errors"][0]["pointer"] == pointer
    assert problem["errors"][0]["reason"].startswith(reason)
    with schema_context(world.acme.schema):
        assert not Run.objects.filter(definition=definition).exists()


def test_starting_needs_the_run_scope_or_a_staff_role_that_may(world, definition):
    assert _problem(_post(world, "order-release", BODY, _key(world, "workflows:read", "workflows:write")), 403)["detail"].startswith(
        "This needs the 'workflows:run' scope"
    )
    finance = signed_in_client(world.acme.host, world.acme.users["finance"], world.acme.schema)
    url = "/api/v1/processes/order-release/runs"
    assert finance.post(url, data=json.dumps(BODY), content_type="application/json").status_code == 403
    planner = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    assert planner.post(url, data=json.dumps(BODY), content_type="application/json").status_code == 201
    # Reading runs needs the read scope; the run scope alone does not read.
    assert host_client(world.acme.host).get("/api/v1/runs", **_key(world, "workflows:run")).status_code == 403


def test_a_run_reads_back_with_its_timeline_after_the_engine_advanced_it(world, definition):
    previous = connector_port_set(FakeConnector())
    try:
        created = _post(world, "order-release", BODY, _key(world, "workflows:run")).json()
        with schema_context(world.acme.schema):
            assert created["id"] in runs_claim(owner="api-test", limit=100)
            run_advance(run_id=created["id"], owner="api-test")
    finally:
        connector_port_set(previous)
    body = host_client(world.acme.host).get(f"/api/v1/runs/{created['id']}", **_key(world, "workflows:read")).json()
    assert body["status"] == "succeeded" and body["finished_at"]
    assert [(s["step_id"], s["kind"], s["status"], s["attempt"]) for s in body["steps"]] == [
        ("check", "decision", "succeeded", 1),
        ("price", "transform", "succeeded", 1),
        ("tender", "connector", "succeeded", 1),
        ("done", "end", "succeeded", 1),
    ]
    assert body["context"]["price"]["order"] == {"id": "SO-9", "total": 120, "first_sku": "B-2"}
    missing = host_client(world.acme.host).get("/api/v1/runs/999999", **_key(world, "workflows:read"))
    assert _problem(missing, 404)["detail"] == "There is no run 999999 in this workspace."


def test_runs_list_filters_by_status_business_key_and_correlation_with_cursor_pages(world, definition):
    auth = _key(world, "workflows:run")
    ids = [
        _post(world, "order-release", {"input": {"n": n}, "business_key": f"BK-{n}", "correlation": {"order": f"O-{n % 2}"}}, auth).json()[
            "id"
        ]
        for n in range(5)
    ]
    read = _key(world, "workflows:read")
    client = host_client(world.acme.host)

    def listed(query: str) -> list[int]:
        return [run["id"] for run in client.get(f"/api/v1/runs?definition=order-release&{query}", **read).json()["results"]]

    assert listed("") == ids[::-1]
    assert listed("business_key=BK-3") == [ids[3]]
    assert listed("correlation=order:O-0") == [ids[4], ids[2], ids[0]]
    assert listed("status=queued") == ids[::-1] and listed("status=succeeded") == []
    page = client.get("/api/v1/runs?definition=order-release&page_size=2", **read).json()
    assert [run["id"] for run in page["results"]] == [ids[4], ids[3]] and "cursor=" in page["next"]
    following = client.get(page["next"], **read).json()
    assert [run["id"] for run in following["results"]] == [ids[2], ids[1]]
    problem = _problem(client.get("/api/v1/runs?correlation=invoice:1", **read), 422)
    assert problem["errors"] == [{"pointer": "/correlation", "reason": "use name:value with a name among order, shipment, po, bol, pro"}]


def test_the_process_api_is_in_the_openapi_schema(world):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    start = schema["paths"]["/api/v1/processes/{key}/runs"]["post"]
    assert {"201", "200", "404", "409", "422"} <= set(start["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in start["parameters"])
    assert "/api/v1/runs/{run_id}" in schema["paths"] and "/api/v1/runs" in schema["paths"]
