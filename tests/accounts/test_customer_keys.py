"""A key bound to a customer account reads only what is narrowed to that account: the
workspace's own APIs refuse it, whatever scopes it holds."""

import pytest

from accounts.services import api_key_create
from tests.conftest import host_client

pytestmark = pytest.mark.django_db

STAFF_ENDPOINTS = ["/api/v1/connections", "/api/v1/milestone-subscriptions", "/api/v1/definitions", "/api/v1/tenant"]
SCOPES = ["connections:read", "workflows:read", "tenant:read", "shipments:read"]


def _get(world, secret: str, path: str):
    return host_client(world.acme.host).get(path, HTTP_AUTHORIZATION=f"Api-Key {secret}")


def test_a_customer_bound_key_is_refused_by_the_workspace_apis_and_served_by_the_experience_api(world):
    from django_tenants.utils import schema_context

    with schema_context(world.acme.schema):
        admin = world.acme.users["tenant_admin"]
        _key, customer_secret = api_key_create(
            name="shipper's TMS", scopes=SCOPES, actor=admin, customer_account_id=world.acme.customer_accounts[0].pk
        )
        _key, staff_secret = api_key_create(name="integration", scopes=SCOPES, actor=admin)
    for path in STAFF_ENDPOINTS:
        refused = _get(world, customer_secret, path)
        assert refused.status_code == 403, (path, refused.status_code)
        assert "customer account" in refused.json()["detail"]
        assert _get(world, staff_secret, path).status_code == 200, path
    assert _get(world, customer_secret, "/api/v1/shipments").status_code == 200
