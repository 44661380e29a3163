"""The workflow API on a tenant's host: library reads, definition reads, cloning with 422 problems, scopes."""

import pytest
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from governance.models import AuditEvent
from tenants.services import BrandingInput, partner_create
from tests.conftest import host_client, signed_in_client
from tests.workflows.conftest import LIBRARIAN, publish
from workflows.management.commands.seed_library import ORDER_RELEASE
from workflows.models import Definition

pytestmark = pytest.mark.django_db

CLONE = {
    "template": "order-to-shipment-release",
    "key": "order-release",
    "name": "Order release",
    "parameters": {"carrier_connection": "acme-tms"},
}


def _session(world, role="tenant_admin"):
    return signed_in_client(world.acme.host, world.acme.users[role], world.acme.schema)


def _key(world, *scopes) -> dict:
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="erp", scopes=list(scopes), actor=world.acme.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


@pytest.fixture
def library(world, order_release, milestones):
    other = partner_create(name="Other MSP", slug="other-msp", branding=BrandingInput(product_name="Other"), actor=LIBRARIAN)
    publish(ORDER_RELEASE, key="other-msp-release", partner_id=other.pk)
    publish(ORDER_RELEASE, key="test-msp-release", partner_id=world.partner.pk)


def test_the_library_lists_platform_and_own_partner_templates_with_search_and_category(world, library):
    client = _session(world, "planner")
    body = client.get("/api/v1/library/templates").json()
    keys = {t["key"]: t for t in body["results"]}
    assert set(keys) == {"customer-milestone-notifications", "order-to-shipment-release", "test-msp-release"}
    assert keys["order-to-shipment-release"] == {
        "key": "order-to-shipment-release",
        "name": "Order to shipment release",
        "category": "orders",
        "description": ORDER_RELEASE["description"],
        "owner": "platform",
        "latest_version": "1.0.0",
    }
    assert keys["test-msp-release"]["owner"] == "partner"
    assert [t["key"] for t in client.get("/api/v1/library/templates?category=notifications").json()["results"]] == [
        "customer-milestone-notifications"
    ]
    assert {t["key"] for t in client.get("/api/v1/library/templates?search=release").json()["results"]} == {
        "order-to-shipment-release",
        "test-msp-release",
    }


def test_a_template_in_full_and_another_partners_template_is_not_found(world, library):
    client = _session(world, "planner")
    body = client.get("/api/v1/library/templates/order-to-shipment-release").json()
    assert body["latest"]["version"] == "1.0.0" and body["latest"]["definition"]["start"] == "check-order"
    assert body["latest"]["parameters_schema"]["required"] == ["carrier_connection"]
    assert "Takes an order from the ERP" in body["latest"]["documentation"]
    assert [v["version"] for v in body["versions"]] == ["1.0.0"]
    problem = _problem(client.get("/api/v1/library/templates/other-msp-release"), 404)
    assert problem["detail"] == "There is no template 'other-msp-release' in your library."
    assert "Order to shipment release" not in str(problem)


def test_cloning_answers_201_and_the_definition_can_be_read_back(world, library):
    client = _session(world)
    response = client.post("/api/v1/definitions", CLONE, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response["Location"] == "/api/v1/definitions/order-release"
    body = response.json()
    assert (body["key"], body["template_key"], body["template_version"], body["published_version"], body["latest_version"]) == (
        "order-release",
        "order-to-shipment-release",
        "1.0.0",
        None,
        1,
    )
    assert body["current"]["status"] == "draft" and body["current"]["parameters"]["approval_over_value"] == 50000
    assert client.get("/api/v1/definitions/order-release").json()["current"]["spec"]["start"] == "check-order"
    assert [d["key"] for d in client.get("/api/v1/definitions?search=release").json()["results"]] == ["order-release"]
    versions = client.get("/api/v1/definitions/order-release/versions").json()["results"]
    assert [(v["number"], v["status"], v["created_by_email"]) for v in versions] == [(1, "draft", "tenant_admin@acme.test")]
    assert _problem(client.get("/api/v1/definitions/nope"), 404)["detail"] == "There is no workflow 'nope' in this workspace."
    assert _problem(client.get("/api/v1/definitions/nope/versions"), 404)["type"] == "https://baton.dev/problems/not-found"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"template": "order-to-shipment-release", "parameters": "x"},
            [
                {"pointer": "/key", "reason": "This field is required."},
                {"pointer": "/name", "reason": "This field is required."},
                {"pointer": "/parameters", "reason": 'Expected a dictionary of items but got type "str".'},
            ],
        ),
        (
            {**CLONE, "template": "other-msp-release"},
            [{"pointer": "/template", "reason": "there is no template 'other-msp-release' in your library"}],
        ),
        ({**CLONE, "version": "9.9.9"}, [{"pointer": "/version", "reason": "Order to shipment release has no published version '9.9.9'"}]),
        (
            {**CLONE, "parameters": {"approval_over_value": -5, "carier_connection": "acme-tms"}},
            [
                {"pointer": "/parameters/approval_over_value", "reason": "must be at least 0"},
                {"pointer": "/parameters/carier_connection", "reason": "is not a parameter of this template"},
                {"pointer": "/parameters/carrier_connection", "reason": "is required"},
            ],
        ),
        (
            {**CLONE, "parameters": {"carrier_connection": "acme-tms", "tender_timeout": "4h"}},
            [
                {
                    "pointer": "/parameters/tender_timeout",
                    "reason": "makes /steps/4/timeout invalid: it must be an ISO 8601 duration such as PT4H or P1DT12H",
                }
            ],
        ),
        (
            {**CLONE, "connection_bindings": {"sap": "conn-1"}},
            [{"pointer": "/connection_bindings/sap", "reason": "is not a connection this workflow uses (it uses: acme-tms)"}],
        ),
    ],
)
def test_an_invalid_clone_is_a_422_problem_listing_every_error_by_pointer(world, library, body, errors):
    problem = _problem(_session(world).post("/api/v1/definitions", body, content_type="application/json"), 422)
    assert problem["type"] == "https://baton.dev/problems/definition-invalid"
    assert problem["errors"] == errors
    first = errors[0]
    assert problem["detail"] == f"{len(errors)} problem{'s' if len(errors) > 1 else ''}, first: {first['pointer']} {first['reason']}."
    with schema_context(world.acme.schema):
        assert not Definition.objects.exists()


def test_a_taken_key_is_a_422_on_the_key(world, library):
    client = _session(world)
    assert client.post("/api/v1/definitions", CLONE, content_type="application/json").status_code == 201
    problem = _problem(client.post("/api/v1/definitions", CLONE, content_type="application/json"), 422)
    assert problem["errors"] == [{"pointer": "/key", "reason": "A workflow with the key 'order-release' already exists."}]


def test_api_keys_need_the_workflow_scopes(world, library):
    client = host_client(world.acme.host)
    reader = _key(world, "workflows:read")
    assert client.get("/api/v1/library/templates", **reader).status_code == 200
    assert client.get("/api/v1/definitions", **reader).status_code == 200
    refused = _problem(client.post("/api/v1/definitions", CLONE, content_type="application/json", **reader), 403)
    assert refused["detail"] == "This needs the 'workflows:write' scope or a staff role that includes it."
    nothing = _key(world, "audit:read")
    assert _problem(client.get("/api/v1/library/templates", **nothing), 403)["detail"] == (
        "This needs the 'workflows:read' scope or a staff role that includes it."
    )
    writer = _key(world, "workflows:write")
    assert client.post("/api/v1/definitions", CLONE, content_type="application/json", **writer).status_code == 201
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.get(action="workflow_definition.cloned")
        assert event.actor_kind == "api_key" and event.actor_email.startswith("api-key:bk_")
        assert event.tenant_slug == "acme"


def test_staff_roles_read_only_admins_and_planners_clone_and_customers_see_nothing(world, library):
    dispatcher = _session(world, "dispatcher")
    assert dispatcher.get("/api/v1/definitions").status_code == 200
    assert _problem(dispatcher.post("/api/v1/definitions", CLONE, content_type="application/json"), 403)
    assert _session(world, "planner").post("/api/v1/definitions", CLONE, content_type="application/json").status_code == 201
    customer = _session(world, "customer")
    assert _problem(customer.get("/api/v1/library/templates"), 403)
    assert _problem(customer.get("/api/v1/definitions/order-release"), 403)
    assert _problem(host_client(world.acme.host).get("/api/v1/definitions"), 401)


def test_the_workflow_api_is_in_the_openapi_schema(world):
    schema = host_client(world.acme.host).get("/api/schema/?format=json").json()
    for path in (
        "/api/v1/library/templates",
        "/api/v1/library/templates/{key}",
        "/api/v1/definitions",
        "/api/v1/definitions/{key}",
        "/api/v1/definitions/{key}/versions",
    ):
        assert path in schema["paths"], path
    assert set(schema["paths"]["/api/v1/definitions"]["post"]["responses"]) == {"201", "403", "422"}
