"""The connections API: create, read, change and test connections by scope or role; secrets go in
and only masks come out; every problem is a 422 with its JSON pointer; all of it in the OpenAPI schema."""

from __future__ import annotations

import json
import re

import pytest
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from connectors.models import Connection
from governance.models import AuditEvent
from tests.conftest import host_client, signed_in_client
from tests.connectors.test_connections import API_KEY, CLIENT_ID, CLIENT_SECRET, fake_system

pytestmark = pytest.mark.django_db

ERP = {
    "key": "acme-erp",
    "name": "Acme ERP",
    "kind": "erp",
    "base_url": "https://erp.example.com/api",
    "auth": {
        "method": "oauth2_client_credentials",
        "token_url": "https://erp.example.com/oauth/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    },
}


def _key(world, *scopes: str) -> dict[str, str]:
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="integration", scopes=list(scopes), actor=world.acme.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def _session(world, role: str = "tenant_admin"):
    return signed_in_client(world.acme.host, world.acme.users[role], world.acme.schema)


def _post(client, path: str, body: dict | None = None, **headers):
    return client.post(path, json.dumps(body or {}), content_type="application/json", **headers)


def _patch(client, path: str, body: dict, **headers):
    return client.patch(path, json.dumps(body), content_type="application/json", **headers)


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def test_a_key_with_the_write_scope_creates_a_connection_and_gets_masks_back(world):
    writer = _key(world, "connections:write", "connections:read")
    response = _post(host_client(world.acme.host), "/api/v1/connections", ERP, **writer)
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == "/api/v1/connections/acme-erp"
    assert body["auth"] == {
        "method": "oauth2_client_credentials",
        "settings": {"token_url": ERP["auth"]["token_url"], "client_id": CLIENT_ID, "scope": "", "audience": "", "client_auth": "basic"},
        "secrets": {"client_secret": "••••" + CLIENT_SECRET[-4:]},
    }
    assert (body["transport"], body["health_path"], body["enabled"]) == ("https", "/", True)  # the kind's defaults
    assert body["health"] == {
        "calls": 0,
        "failures": 0,
        "error_rate": None,
        "last_success_at": None,
        "last_failure_at": None,
        "circuit_state": "closed",
        "circuit_opened_at": None,
    }
    assert body["last_test"] == {"at": None, "ok": None, "message": ""}
    assert CLIENT_SECRET not in response.content.decode()
    listed = host_client(world.acme.host).get("/api/v1/connections", **writer)
    assert [item["key"] for item in listed.json()["results"]] == ["acme-erp"] and CLIENT_SECRET not in listed.content.decode()
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.get(action="connection.created", target_type="connectors.connection")
    assert event.actor_kind == "api_key" and CLIENT_SECRET not in json.dumps(event.data)


def test_every_problem_is_a_422_with_its_pointer(world):
    client = _session(world, "planner")
    body = {
        **ERP,
        "key": "Acme ERP",
        "base_url": "erp.example.com",
        "connect_timeout": 600,
        "auth": {"method": "oauth2_client_credentials"},
    }
    problem = _problem(_post(client, "/api/v1/connections", body), 422)
    assert problem["type"] == "https://baton.dev/problems/connection-invalid"
    assert problem["errors"] == [{"pointer": "/connect_timeout", "reason": "Ensure this value is less than or equal to 60."}]
    del body["connect_timeout"]
    problem = _problem(_post(client, "/api/v1/connections", body), 422)
    assert {error["pointer"]: error["reason"] for error in problem["errors"]} == {
        "/key": "use lowercase letters, digits, '-' and '_', starting with a letter or digit (at most 80)",
        "/base_url": "must be a https:// or http:// address with a host, like the example",
        "/auth/client_secret": "is required",
        "/auth/token_url": "is required",
        "/auth/client_id": "is required",
    }
    assert problem["detail"].startswith("5 problems, first: /key use lowercase letters")
    with schema_context(world.acme.schema):
        assert not Connection.objects.exists()


def test_patch_changes_what_is_sent_and_keeps_secrets_left_out(world):
    client = _session(world)
    _post(client, "/api/v1/connections", ERP)
    with schema_context(world.acme.schema):
        sealed = Connection.objects.get(key="acme-erp").credentials
    renamed = _patch(
        client,
        "/api/v1/connections/acme-erp",
        {"name": "Acme ERP (EU)", "auth": {"method": "oauth2_client_credentials", "scope": "orders"}},
    )
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["name"] == "Acme ERP (EU)" and renamed.json()["auth"]["settings"]["scope"] == "orders"
    assert renamed.json()["auth"]["settings"]["client_id"] == CLIENT_ID  # kept: the method did not change
    with schema_context(world.acme.schema):
        assert Connection.objects.get(key="acme-erp").credentials == sealed
    masked = renamed.json()["auth"]["secrets"]["client_secret"]
    echoed = _patch(client, "/api/v1/connections/acme-erp", {"auth": {"method": "oauth2_client_credentials", "client_secret": masked}})
    assert _problem(echoed, 422)["errors"] == [
        {"pointer": "/auth/client_secret", "reason": "is the mask of a secret, not a secret: leave it out to keep the stored one"}
    ]
    switched = _patch(client, "/api/v1/connections/acme-erp", {"auth": {"method": "api_key", "key": API_KEY}, "enabled": False})
    assert switched.json()["auth"] == {"method": "api_key", "settings": {"header": "X-Api-Key"}, "secrets": {"key": "••••" + API_KEY[-4:]}}
    assert switched.json()["enabled"] is False
    with schema_context(world.acme.schema):
        actions = list(AuditEvent.objects.filter(target_type="connectors.connection").order_by("pk").values_list("action", flat=True))
        updates = [event.data for event in AuditEvent.objects.filter(action="connection.updated").order_by("pk")]
    assert actions == ["connection.created", "connection.updated", "connection.updated", "connection.disabled"]
    assert updates[-1] == {"changed": ["auth_method", "auth_settings"], "secrets_changed": ["key"], "secrets_removed": ["client_secret"]}
    assert (
        _problem(_patch(client, "/api/v1/connections/nope", {"name": "x"}), 404)["detail"]
        == "There is no connection 'nope' in this workspace."
    )


def test_the_test_endpoint_calls_the_partner_and_says_what_happened(world):
    client = _session(world, "planner")
    with fake_system() as partner:
        _post(
            client,
            "/api/v1/connections",
            {**ERP, "base_url": partner.url, "health_path": "/protected", "auth": {**ERP["auth"], "token_url": partner.url + "/token"}},
        )
        response = _post(client, "/api/v1/connections/acme-erp/test")
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    assert re.fullmatch(rf"Reached {re.escape(partner.url)}/protected in \d+ ms: HTTP 200 OK", body["message"])
    detail = client.get("/api/v1/connections/acme-erp").json()
    assert detail["last_test"]["ok"] is True and detail["last_test"]["message"] == body["message"]


def test_scopes_and_roles(world):
    _post(_session(world), "/api/v1/connections", ERP)
    reader = _key(world, "connections:read")
    client = host_client(world.acme.host)
    assert client.get("/api/v1/connections/acme-erp", **reader).status_code == 200
    refused = _problem(_post(client, "/api/v1/connections", {**ERP, "key": "other"}, **reader), 403)
    assert refused["detail"] == "This needs the 'connections:write' scope or a staff role that includes it."
    assert _problem(_post(client, "/api/v1/connections/acme-erp/test", **reader), 403)
    assert _problem(client.get("/api/v1/connections", **_key(world, "workflows:read")), 403)
    dispatcher = _session(world, "dispatcher")
    assert dispatcher.get("/api/v1/connections").status_code == 200
    assert _problem(_patch(dispatcher, "/api/v1/connections/acme-erp", {"name": "x"}), 403)
    assert _problem(_session(world, "customer").get("/api/v1/connections"), 403)
    assert _problem(client.get("/api/v1/connections"), 401)
    with schema_context(world.acme.schema):
        assert Connection.objects.get(key="acme-erp").name == "Acme ERP"


def test_the_connections_api_is_in_the_openapi_schema_with_write_only_secrets(world):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert set(schema["paths"]["/api/v1/connections"]) >= {"get", "post"}
    assert set(schema["paths"]["/api/v1/connections/{key}"]) >= {"get", "patch"}
    assert schema["paths"]["/api/v1/connections/{key}/test"]["post"]["operationId"] == "connection_test"
    components = schema["components"]["schemas"]
    assert "client_secret" in components["AuthWriteRequest"]["properties"]
    assert "secrets" in components["AuthRead"]["properties"]
    answer = components["Connection"]["properties"]
    assert "credentials" not in answer and "credential_masks" not in answer
    assert {"401", "403", "422"} & set(schema["paths"]["/api/v1/connections"]["post"]["responses"]) == {"403", "422"}
