"""The customer webhooks API: endpoints listed and created (the signing secret in the 201 answer
only), read with masks, changed (event types, description, enabled), rotated (the new secret in
that answer only); an endpoint's deliveries in cursor pages; replaying one. By scope or role,
every refusal a problem+json that says why; all of it in the OpenAPI schema."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from connectors.deliveries import webhook_endpoint_create
from connectors.models import WebhookDelivery, WebhookEndpoint
from governance.models import AuditEvent
from governance.services import Actor
from tests.conftest import host_client, signed_in_client

pytestmark = pytest.mark.django_db

RECEIVER = "http://127.0.0.1:9/hooks"
OWNER = Actor(email="ops@acme.test", kind="user")


def _key(world, *scopes: str) -> dict[str, str]:
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="integration", scopes=list(scopes), actor=world.acme.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def _send(client, method: str, path: str, body: dict, headers: dict):
    return getattr(client, method)(path, data=json.dumps(body), content_type="application/json", **headers)


def _endpoint(world, **fields) -> WebhookEndpoint:
    with schema_context(world.acme.schema):
        endpoint, _secret = webhook_endpoint_create(url=RECEIVER, event_types=["shipment.*"], actor=OWNER, **fields)
    return endpoint


def _deliveries(endpoint: WebhookEndpoint, world, count: int, status: str = "failed") -> list[WebhookDelivery]:
    with schema_context(world.acme.schema):
        return [
            WebhookDelivery.objects.create(
                endpoint=endpoint,
                event_type="shipment.milestone" if index % 2 else "invoice.created",
                event_id=f"evt-{index}",
                payload={"index": index},
                webhook_id=f"msg_{endpoint.pk}_{index}",
                status=status,
                attempts=8,
                last_status_code=500,
                last_error="HTTP 500",
                last_response="down",
                created_at=timezone.now(),
            )
            for index in range(count)
        ]


def test_creating_answers_the_secret_once_and_reads_show_only_masks(world):
    writer = _key(world, "connections:write", "connections:read")
    client = host_client(world.acme.host)
    account = world.acme.customer_accounts[0]
    created = _send(
        client,
        "post",
        "/api/v1/webhook-endpoints",
        {"url": RECEIVER, "customer_account": account.pk, "event_types": ["shipment.*", "notification.*"], "description": "TMS"},
        writer,
    )
    assert created.status_code == 201, created.content[:400]
    assert created["Cache-Control"] == "no-store"
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and body["secret_masks"] == ["••••" + secret[-4:]]
    assert (body["customer_account"], body["customer_account_name"], body["event_types"]) == (
        account.pk,
        account.name,
        ["notification.*", "shipment.*"],
    )
    assert created["Location"] == f"/api/v1/webhook-endpoints/{body['id']}"
    detail = client.get(created["Location"], **writer)
    listed = client.get("/api/v1/webhook-endpoints", **writer)
    for answer in (detail, listed):
        assert (
            answer.status_code == 200
            and secret not in answer.content.decode()
            and "secret" not in json.dumps(answer.json()).replace("secret_masks", "")
        )
    item = listed.json()["results"][0]
    assert (item["id"], item["enabled"], item["pending_deliveries"], item["failed_deliveries"]) == (body["id"], True, 0, 0)
    own = client.get("/api/v1/webhook-endpoints?customer_account=workspace", **writer).json()["results"]
    assert own == []


@pytest.mark.parametrize(
    ("body", "pointer", "reason"),
    [
        ({"url": "ftp://files.example.com", "event_types": ["*"]}, "/url", "The URL must start with https://"),
        ({"url": RECEIVER, "event_types": []}, "/event_types", "at least 1"),
        ({"url": RECEIVER, "event_types": ["*"], "customer_account": 999999}, "/customer_account", "There is no customer account 999999"),
        ({"event_types": ["*"]}, "/url", "This field is required."),
    ],
)
def test_a_bad_create_is_a_422_naming_each_problem(world, body, pointer, reason):
    problem = _problem(
        _send(host_client(world.acme.host), "post", "/api/v1/webhook-endpoints", body, _key(world, "connections:write")), 422
    )
    assert problem["type"].endswith("/connection-invalid")
    assert any(item["pointer"] == pointer and reason in item["reason"] for item in problem["errors"]), problem
    with schema_context(world.acme.schema):
        assert not WebhookEndpoint.objects.exists()


def test_patch_changes_event_types_description_and_enabled_audited(world):
    endpoint = _endpoint(world)
    writer = _key(world, "connections:write")
    client = host_client(world.acme.host)
    path = f"/api/v1/webhook-endpoints/{endpoint.pk}"
    changed = _send(
        client, "patch", path, {"event_types": ["*"], "description": "All", "enabled": False, "disabled_reason": "moving"}, writer
    )
    assert changed.status_code == 200, changed.content[:400]
    body = changed.json()
    assert (body["event_types"], body["description"], body["enabled"]) == (["*"], "All", False)
    assert body["disabled_reason"].endswith(": moving") and body["disabled_at"]
    enabled = _send(client, "patch", path, {"enabled": True}, writer).json()
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["disabled_at"]) == (True, "", None)
    problem = _problem(_send(client, "patch", path, {"event_types": []}, writer), 422)
    assert problem["errors"][0]["pointer"] == "/event_types"
    with schema_context(world.acme.schema):
        actions = list(
            AuditEvent.objects.filter(target_id=str(endpoint.pk), action__startswith="webhook_endpoint.")
            .order_by("pk")
            .values_list("action", flat=True)
        )
    assert actions == ["webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.disabled", "webhook_endpoint.enabled"]


def test_rotating_answers_the_new_secret_once_and_keeps_the_previous_signing(world):
    endpoint = _endpoint(world)
    client = host_client(world.acme.host)
    rotated = _send(
        client, "post", f"/api/v1/webhook-endpoints/{endpoint.pk}/rotate", {"overlap_hours": 2}, _key(world, "connections:write")
    )
    assert rotated.status_code == 200 and rotated["Cache-Control"] == "no-store"
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and len(body["secret_masks"]) == 2
    assert body["secret_masks"][0] == "••••" + body["secret"][-4:] and body["secret_masks"][1] == endpoint.secret_masks[0]
    problem = _problem(
        _send(client, "post", f"/api/v1/webhook-endpoints/{endpoint.pk}/rotate", {"overlap_hours": 500}, _key(world, "connections:write")),
        422,
    )
    assert problem["errors"][0]["pointer"] == "/overlap_hours"


def test_deliveries_come_newest_first_in_cursor_pages_and_filter(world):
    endpoint = _endpoint(world)
    made = _deliveries(endpoint, world, 5)
    reader = _key(world, "connections:read")
    client = host_client(world.acme.host)
    path = f"/api/v1/webhook-endpoints/{endpoint.pk}/deliveries"
    first = client.get(path + "?page_size=3", **reader).json()
    assert [item["id"] for item in first["results"]] == [made[4].pk, made[3].pk, made[2].pk]
    second = client.get(first["next"].split("acme.localhost")[-1], **reader).json()
    assert [item["id"] for item in second["results"]] == [made[1].pk, made[0].pk] and second["next"] is None
    item = second["results"][0]
    assert (item["status"], item["attempts"], item["last_status_code"], item["last_error"], item["last_response"]) == (
        "failed",
        8,
        500,
        "HTTP 500",
        "down",
    )
    invoices = client.get(path + "?event_type=invoice.created", **reader).json()["results"]
    assert {item["event_type"] for item in invoices} == {"invoice.created"} and len(invoices) == 3
    assert client.get(path + "?status=delivered", **reader).json()["results"] == []
    problem = _problem(client.get(path + "?status=lost", **reader), 400)
    assert problem["errors"] == [{"pointer": "status", "reason": "'lost' is not a status; use pending, delivered, failed"}]
    assert "no webhook endpoint 999999" in _problem(client.get("/api/v1/webhook-endpoints/999999/deliveries", **reader), 404)["detail"]


def test_replaying_a_delivery_queues_it_again_audited_and_refuses_a_disabled_endpoint(world):
    endpoint = _endpoint(world)
    (delivery,) = _deliveries(endpoint, world, 1)
    writer = _key(world, "connections:write")
    client = host_client(world.acme.host)
    replayed = client.post(f"/api/v1/webhook-deliveries/{delivery.pk}/replay", **writer)
    assert replayed.status_code == 202 and replayed.json()["status"] == "pending"
    with schema_context(world.acme.schema):
        assert AuditEvent.objects.filter(action="webhook_delivery.replayed", target_id=str(delivery.pk)).exists()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    problem = _problem(client.post(f"/api/v1/webhook-deliveries/{delivery.pk}/replay", **writer), 409)
    assert problem["type"].endswith("/webhook-delivery-not-replayable") and "enable it first" in problem["detail"]
    assert "no webhook delivery 999999" in _problem(client.post("/api/v1/webhook-deliveries/999999/replay", **writer), 404)["detail"]


def test_scopes_and_roles_decide_who_reads_and_who_changes(world):
    endpoint = _endpoint(world)
    client = host_client(world.acme.host)
    reader = _key(world, "connections:read")
    assert client.get("/api/v1/webhook-endpoints", **reader).status_code == 200
    refused = _problem(_send(client, "post", "/api/v1/webhook-endpoints", {"url": RECEIVER, "event_types": ["*"]}, reader), 403)
    assert "connections:write" in refused["detail"]
    assert _problem(client.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/rotate", **reader), 403)
    dispatcher = signed_in_client(world.acme.host, world.acme.users["dispatcher"], world.acme.schema)
    assert dispatcher.get(f"/api/v1/webhook-endpoints/{endpoint.pk}").status_code == 200
    assert _problem(_send(dispatcher, "patch", f"/api/v1/webhook-endpoints/{endpoint.pk}", {"enabled": False}, {}), 403)
    planner = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    assert _send(planner, "patch", f"/api/v1/webhook-endpoints/{endpoint.pk}", {"description": "x"}, {}).status_code == 200


def test_the_routes_are_in_the_openapi_schema(world):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    for path in (
        "/api/v1/webhook-endpoints",
        "/api/v1/webhook-endpoints/{endpoint_id}",
        "/api/v1/webhook-endpoints/{endpoint_id}/rotate",
        "/api/v1/webhook-endpoints/{endpoint_id}/deliveries",
        "/api/v1/webhook-deliveries/{delivery_id}/replay",
    ):
        assert path in paths, path
    assert "201" in paths["/api/v1/webhook-endpoints"]["post"]["responses"]
    assert "WebhookDeliveryStatusEnum" in schema["components"]["schemas"]
