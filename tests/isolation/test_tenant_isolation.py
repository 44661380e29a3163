"""One tenant can never read or change another's data: by host, by id, by session, by API key.

Reads must not show the owner's marker; writes must in addition leave the owner's rows as they
were (each write route's `state` hook reads them before and after). The test client does not
enforce CSRF, as in every page test, so a refused write here is refused by the tenant boundary
(host, session, key, role), not by the CSRF middleware.
"""

import json
from typing import Any

import pytest
from django.http import HttpResponse
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from tenants.db import connection
from tests.conftest import host_client, signed_in_client
from tests.isolation.routes import CONSOLE_ROUTES, TENANT_ROUTES

pytestmark = pytest.mark.django_db

READS = [route for route in TENANT_ROUTES if route.method == "get"]
WRITES = [route for route in TENANT_ROUTES if route.method != "get"]
API_ROUTES = [route for route in TENANT_ROUTES if route.kind == "api"]
PAGE_ROUTES = [route for route in TENANT_ROUTES if route.kind == "page"]
# Pages customers use too (the customer portal): they see their own account's data there, never another's.
STAFF_PAGE_ROUTES = [route for route in PAGE_ROUTES if not route.customer_scoped]
CUSTOMER_PAGE_ROUTES = [route for route in PAGE_ROUTES if route.customer_scoped]


def _name(route) -> str:
    return route.name


def _path(route, object_id, marker=""):
    return route.path.replace("{id}", object_id or "1").replace("{marker}", marker)


def _filled(value: Any, object_id: str, marker: str) -> Any:
    """The route's body with "{id}" and "{marker}" replaced in every string, however deep."""
    if isinstance(value, str):
        return value.replace("{id}", object_id or "1").replace("{marker}", marker)
    if isinstance(value, dict):
        return {key: _filled(item, object_id, marker) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, object_id, marker) for item in value]
    return value


def _send(client, route, object_id, marker, **headers):
    """The route's request: a GET, or its write with the body as JSON (API) or form fields (page)."""
    path = _path(route, object_id, marker)
    if route.method == "get":
        return _buffered(client.get(path, **headers))
    send = getattr(client, route.method)
    body = _filled(dict(route.body or {}), object_id, marker)
    if route.kind == "api":
        return _buffered(send(path, data=json.dumps(body), content_type="application/json", **headers))
    return _buffered(send(path, data=body, **headers))


def _buffered(response):
    """A streamed answer (a CSV export, a file download) read whole, so every check reads `.content`."""
    if not getattr(response, "streaming", False):
        return response
    buffered = HttpResponse(b"".join(response.streaming_content), status=response.status_code)
    for header, value in response.items():
        buffered[header] = value
    return buffered


def _state(world, route, object_id, marker) -> Any:
    """What the write would change, read in the owner's schema (None for a read)."""
    if route.state is None:
        return None
    with schema_context(world.acme.schema):
        state = route.state(object_id, marker)
    connection.set_schema_to_public()
    return state


# --- the controls: without them, the refusals below could pass for a broken route ---------------


@pytest.mark.parametrize("route", READS, ids=_name)
def test_owner_sees_its_own_data(world, route):
    object_id, marker = route.private_object(world.acme)
    client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    response = _send(client, route, object_id, marker)
    assert response.status_code == 200, response.content[:300]
    assert marker in response.content.decode()


@pytest.mark.parametrize("route", WRITES, ids=_name)
def test_owner_can_make_each_write(world, route):
    """The owner's own write goes through and its state hook sees the change: so an unchanged
    state below means refused, not a route that does nothing or a hook that sees nothing."""
    assert route.state is not None and route.body is not None, "a write names its body and its state hook"
    object_id, marker = route.private_object(world.acme)
    before = _state(world, route, object_id, marker)
    client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    response = _send(client, route, object_id, marker)
    assert response.status_code in (200, 201, 202, 302), response.content[:300]
    assert _state(world, route, object_id, marker) != before, "the owner's write changed nothing the state hook reads"


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=_name)
def test_other_tenants_ids_on_its_own_host_show_nothing_of_the_owner(world, route):
    """Another tenant's admin, on its own host, with the owner's ids and tokens. Its own object
    may carry the same id, so what it may do to its own data is not asserted, only that nothing
    of the owner shows or changes."""
    object_id, marker = route.private_object(world.acme)
    before = _state(world, route, object_id, marker)
    client = signed_in_client(world.globex.host, world.globex.users["tenant_admin"], world.globex.schema)
    response = _send(client, route, object_id, marker)
    if route.method == "get":
        assert response.status_code in (200, 403, 404)
    else:
        assert response.status_code < 500, response.content[:300]
    assert marker not in response.content.decode()
    assert _state(world, route, object_id, marker) == before


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=_name)
def test_a_session_from_one_tenant_host_is_worthless_on_another(world, route):
    object_id, marker = route.private_object(world.acme)
    before = _state(world, route, object_id, marker)
    acme_client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    stolen = host_client(world.globex.host)
    stolen.cookies = acme_client.cookies  # the same cookie presented on the other host
    response = _send(stolen, route, object_id, marker)
    assert response.status_code in (302, 401, 403)
    if response.status_code == 302:
        assert "/accounts/login/" in response["Location"]
    assert marker not in response.content.decode()
    assert _state(world, route, object_id, marker) == before


@pytest.mark.parametrize("route", API_ROUTES, ids=_name)
def test_an_api_key_only_works_on_its_own_tenant(world, route):
    object_id, marker = route.private_object(world.acme)
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="probe", scopes=[route.api_scope], actor=world.acme.users["tenant_admin"])
    before = _state(world, route, object_id, marker)
    foreign = _send(host_client(world.globex.host), route, object_id, marker, HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert foreign.status_code in (401, 403)
    assert foreign["Content-Type"] == "application/problem+json"
    assert marker not in foreign.content.decode()
    assert _state(world, route, object_id, marker) == before
    own = _send(host_client(world.acme.host), route, object_id, marker, HTTP_AUTHORIZATION=f"Api-Key {secret}")
    if route.method == "get":
        assert own.status_code == 200 and marker in own.content.decode()
    else:
        assert own.status_code in (200, 201, 202), own.content[:300]
        assert _state(world, route, object_id, marker) != before


@pytest.mark.parametrize("route", API_ROUTES, ids=_name)
def test_an_api_key_without_the_scope_is_refused(world, route):
    object_id, marker = route.private_object(world.acme)
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="no scope", scopes=[], actor=world.acme.users["tenant_admin"])
    before = _state(world, route, object_id, marker)
    response = _send(host_client(world.acme.host), route, object_id, marker, HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert response.status_code == 403 and marker not in response.content.decode()
    assert _state(world, route, object_id, marker) == before


@pytest.mark.parametrize("path", CONSOLE_ROUTES)
def test_tenant_sessions_are_worthless_on_the_console(world, path):
    acme_client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    stolen = host_client("localhost")
    stolen.cookies = acme_client.cookies
    response = stolen.get(path)
    assert response.status_code in (302, 401, 403)
    assert world.acme.tenant.name not in response.content.decode() or path == "/tenants/new/"


@pytest.mark.parametrize("route", STAFF_PAGE_ROUTES, ids=_name)
def test_customer_users_cannot_open_staff_pages(world, route):
    object_id, marker = route.private_object(world.acme)
    before = _state(world, route, object_id, marker)
    client = signed_in_client(world.acme.host, world.acme.users["customer"], world.acme.schema)
    response = _send(client, route, object_id, marker)
    if route.path == "/":
        assert response.status_code == 200
    else:
        assert response.status_code == 403
    if route.private_object.__name__ != "tenant_name":
        assert marker not in response.content.decode()
    assert _state(world, route, object_id, marker) == before


# --- customer accounts: one customer never sees another's, on the pages customers use ------------


@pytest.mark.parametrize("route", CUSTOMER_PAGE_ROUTES, ids=_name)
def test_a_customer_sees_its_own_accounts_data_on_customer_pages(world, route):
    """The control for the refusal below: the customer's own account's object shows (a read) or
    changes (a write), so a missing marker there means refused, not broken."""
    object_id, marker = route.private_object(world.acme, world.acme.customer_accounts[0])
    before = _state(world, route, object_id, marker)
    client = signed_in_client(world.acme.host, world.acme.users["customer"], world.acme.schema)
    response = _send(client, route, object_id, marker)
    if route.method == "get":
        assert response.status_code == 200, response.content[:300]
        assert marker in response.content.decode()
    else:
        assert response.status_code in (200, 201, 202, 302), response.content[:300]
        assert _state(world, route, object_id, marker) != before


@pytest.mark.parametrize("route", CUSTOMER_PAGE_ROUTES, ids=_name)
def test_a_customer_never_sees_or_changes_another_customers_data(world, route):
    """The fixtures' customer (first account) with the second account's ids, references and links."""
    object_id, marker = route.private_object(world.acme, world.acme.customer_accounts[1])
    before = _state(world, route, object_id, marker)
    client = signed_in_client(world.acme.host, world.acme.users["customer"], world.acme.schema)
    response = _send(client, route, object_id, marker)
    if route.method == "get":
        assert response.status_code in (200, 403, 404)
    else:
        assert response.status_code < 500, response.content[:300]
    assert marker not in response.content.decode()
    assert _state(world, route, object_id, marker) == before
