"""One tenant can never read another's data: by host, by id, by session, by API key."""

import pytest
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from tests.conftest import host_client, signed_in_client
from tests.isolation.routes import CONSOLE_ROUTES, TENANT_ROUTES

pytestmark = pytest.mark.django_db


def _path(route, object_id, marker=""):
    return route.path.replace("{id}", object_id or "1").replace("{marker}", marker)


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=lambda r: r.name)
def test_owner_sees_its_own_data(world, route):
    """The control: without it, the refusals below could pass for a broken route."""
    object_id, marker = route.private_object(world.acme)
    client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    response = client.get(_path(route, object_id, marker))
    assert response.status_code == 200, response.content[:300]
    assert marker in response.content.decode()


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=lambda r: r.name)
def test_other_tenants_ids_on_its_own_host_show_nothing_of_the_owner(world, route):
    object_id, marker = route.private_object(world.acme)
    client = signed_in_client(world.globex.host, world.globex.users["tenant_admin"], world.globex.schema)
    response = client.get(_path(route, object_id, marker))
    assert response.status_code in (200, 403, 404)
    assert marker not in response.content.decode()


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=lambda r: r.name)
def test_a_session_from_one_tenant_host_is_worthless_on_another(world, route):
    object_id, marker = route.private_object(world.acme)
    acme_client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    stolen = host_client(world.globex.host)
    stolen.cookies = acme_client.cookies  # the same cookie presented on the other host
    response = stolen.get(_path(route, object_id, marker))
    assert response.status_code in (302, 401, 403)
    if response.status_code == 302:
        assert "/accounts/login/" in response["Location"]
    assert marker not in response.content.decode()


@pytest.mark.parametrize("route", [r for r in TENANT_ROUTES if r.kind == "api"], ids=lambda r: r.name)
def test_an_api_key_only_works_on_its_own_tenant(world, route):
    object_id, marker = route.private_object(world.acme)
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="probe", scopes=[route.api_scope], actor=world.acme.users["tenant_admin"])
    own = host_client(world.acme.host).get(_path(route, object_id, marker), HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert own.status_code == 200 and marker in own.content.decode()
    foreign = host_client(world.globex.host).get(_path(route, object_id, marker), HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert foreign.status_code in (401, 403)
    assert foreign["Content-Type"] == "application/problem+json"
    assert marker not in foreign.content.decode()


@pytest.mark.parametrize("route", [r for r in TENANT_ROUTES if r.kind == "api"], ids=lambda r: r.name)
def test_an_api_key_without_the_scope_is_refused(world, route):
    object_id, marker = route.private_object(world.acme)
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="no scope", scopes=[], actor=world.acme.users["tenant_admin"])
    response = host_client(world.acme.host).get(_path(route, object_id, marker), HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert response.status_code == 403 and marker not in response.content.decode()


@pytest.mark.parametrize("path", CONSOLE_ROUTES)
def test_tenant_sessions_are_worthless_on_the_console(world, path):
    acme_client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    stolen = host_client("localhost")
    stolen.cookies = acme_client.cookies
    response = stolen.get(path)
    assert response.status_code in (302, 401, 403)
    assert world.acme.tenant.name not in response.content.decode() or path == "/tenants/new/"


@pytest.mark.parametrize("route", [r for r in TENANT_ROUTES if r.kind == "page"], ids=lambda r: r.name)
def test_customer_users_cannot_open_staff_pages(world, route):
    object_id, marker = route.private_object(world.acme)
    client = signed_in_client(world.acme.host, world.acme.users["customer"], world.acme.schema)
    response = client.get(_path(route, object_id, marker))
    if route.path == "/":
        assert response.status_code == 200
    else:
        assert response.status_code == 403
    if route.private_object.__name__ != "tenant_name":
        assert marker not in response.content.decode()
