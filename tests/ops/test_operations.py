import json
import logging

import pytest
from django.test import override_settings

from tests.conftest import host_client

pytestmark = pytest.mark.django_db


def test_healthz_answers_on_every_host(world):
    for host in ("localhost", world.acme.host):
        assert host_client(host).get("/healthz").json() == {"status": "ok"}


@override_settings(BATON_METRICS_TOKEN="s3cret-token")
def test_metrics_need_the_token(world):
    client = host_client("localhost")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200 and b"baton_http_requests_total" in response.content


def test_readyz_names_what_is_missing(world):
    response = host_client("localhost").get("/readyz")
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["broker"] == "ok"
    if checks["worker"] != "ok":
        assert response.status_code == 503 and "worker" in checks["worker"] or "heartbeat" in checks["worker"]


def test_request_logs_are_json_with_request_id_tenant_and_user(world, caplog):
    from tests.conftest import signed_in_client

    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    with caplog.at_level(logging.INFO, logger="baton.request"):
        response = client.get("/", HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-Id"] == "req-123"
    record = next(r for r in caplog.records if r.name == "baton.request")
    handler = logging.getLogger().handlers[0]
    line = json.loads(handler.formatter.format(record))
    assert line["request_id"] == "req-123" and line["tenant"] == "acme" and line["user"] == world.acme.users["planner"].email
    assert line["path"] == "/" and line["status"] == 200


def test_the_api_is_throttled_per_key_by_the_tenants_plan(world):
    from django_tenants.utils import schema_context

    from accounts.services import api_key_create

    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="busy", scopes=["tenant:read"], actor=world.acme.users["tenant_admin"])
    client = host_client(world.acme.host)
    with override_settings(BATON_PLAN_RATE_LIMITS={"standard": 3, "starter": 1, "enterprise": 100}):
        statuses = [client.get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Api-Key {secret}").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        problem = client.get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Api-Key {secret}").json()
        assert problem["type"].endswith("/rate-limited") and problem["retry_after_seconds"] > 0


def test_the_scheduler_only_sends_work_to_ready_tenants(world, committed):
    from governance.services import Actor
    from tenants.services import tenant_resume, tenant_suspend
    from tenants.tasks import dispatch_tenant_heartbeat

    tenant_suspend(tenant=world.globex.tenant, reason="maintenance", actor=Actor.system("test"))
    try:
        schemas = dispatch_tenant_heartbeat()
    finally:
        tenant_resume(tenant=world.globex.tenant, actor=Actor.system("test"))
    assert world.acme.schema in schemas and world.globex.schema not in schemas


def test_readyz_can_be_narrowed_to_what_a_web_pod_needs(world):
    response = host_client("localhost").get("/readyz?checks=database,broker")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}
