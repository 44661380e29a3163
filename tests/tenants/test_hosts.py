"""Hosts pick the surface: console, a tenant's workspace, or a friendly 404."""

import pytest

from governance.services import Actor
from tenants.services import tenant_resume, tenant_suspend
from tests.conftest import host_client, signed_in_client

pytestmark = pytest.mark.django_db


def test_unknown_host_gets_a_friendly_404(world):
    response = host_client("nobody.localhost").get("/")
    assert response.status_code == 404
    assert "nobody.localhost" in response.content.decode()


def test_each_tenant_host_serves_its_own_brand(world):
    for tenant_world, colour in ((world.acme, "#0b4f9c"), (world.globex, "#1e5b32")):
        client = signed_in_client(tenant_world.host, tenant_world.users["planner"], tenant_world.schema)
        page = client.get("/").content.decode()
        assert f"--brand-primary: {colour}" in page
        assert f"{tenant_world.tenant.name} Hub" in page


def test_console_host_routes_to_the_console(world):
    response = host_client("localhost").get("/tenants/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_suspended_tenant_shows_a_branded_page_and_the_api_a_problem(world):
    tenant = tenant_suspend(tenant=world.globex.tenant, reason="Contract paused", actor=Actor.system("test"))
    try:
        page = host_client(world.globex.host).get("/")
        assert page.status_code == 403
        body = page.content.decode()
        assert "suspended" in body and "Contract paused" in body and "--brand-primary: #1e5b32" in body
        api = host_client(world.globex.host).get("/api/v1/tenant")
        assert api.status_code == 403
        assert api["Content-Type"] == "application/problem+json"
        assert api.json()["type"].endswith("/tenant-suspended")
        assert host_client(world.globex.host).get("/healthz").status_code == 200
    finally:
        tenant_resume(tenant=tenant, actor=Actor.system("test"))


def test_api_errors_are_problem_json(world):
    response = host_client(world.acme.host).get("/api/v1/tenant")
    assert response.status_code in (401, 403)
    problem = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= problem.keys()


def test_openapi_schema_and_docs_are_served(world):
    schema = host_client(world.acme.host).get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/audit-events" in schema.content
    assert host_client(world.acme.host).get("/api/docs/").status_code == 200


def test_a_process_keeps_a_hosts_tenant_for_a_moment_and_forgets_it_when_the_tenant_changes(world, settings):
    import time

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tenants.hosts import tenant_hosts_forget

    settings.BATON_TENANT_HOST_CACHE_SECONDS = 0.5
    tenant_hosts_forget()
    client = host_client(world.globex.host)
    try:
        assert client.get("/healthz").status_code == 200  # looked up, kept
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/healthz").status_code == 200
        assert not [q for q in queries.captured_queries if "tenants_domain" in q["sql"]]
        unknown = host_client("nobody-kept.localhost")
        assert unknown.get("/").status_code == 404 and unknown.get("/").status_code == 404  # an unknown host is kept too
        tenant = tenant_suspend(tenant=world.globex.tenant, reason="Kept no more", actor=Actor.system("test"))
        assert client.get("/").status_code == 403  # the service forgot the kept row in this process
        tenant_resume(tenant=tenant, actor=Actor.system("test"))
        time.sleep(0.6)
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/healthz").status_code == 200
        assert [q for q in queries.captured_queries if "tenants_domain" in q["sql"]]  # expired: looked up again
    finally:
        tenant_hosts_forget()
