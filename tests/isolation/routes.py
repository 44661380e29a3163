"""Every tenant-host route, for the isolation suite. A new feature adds its routes here.

`private_object` makes something that belongs to one tenant (and, for customer-scoped routes,
one customer account) and returns its id and a marker text that must never show up in another
tenant's or another customer's response.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django_tenants.utils import schema_context

from accounts.services import user_create
from governance.services import Actor, audit_record
from logistics.models import CustomerAccount


@dataclass(frozen=True)
class Route:
    name: str
    path: str  # "{id}" and "{marker}" are replaced by the private object's id and marker
    kind: str  # "page" or "api"
    private_object: Callable | None = None
    api_scope: str = ""
    customer_scoped: bool = False


def _audit_probe(tenant_world):
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    token = uuid.uuid4().hex[:12]
    with schema_context(tenant_world.schema):
        event = audit_record(
            actor=Actor(email="owner@example.test"),
            action="isolation.probe",
            target_type="probe",
            target_id=token,
            target_label=marker,
            reason=marker,
        )
    return event, token, marker


def audit_event(tenant_world, customer_account=None) -> tuple[str, str]:
    event, _token, marker = _audit_probe(tenant_world)
    return str(event.pk), marker


def audit_event_search(tenant_world, customer_account=None) -> tuple[str, str]:
    """Searchable by a token that is not the marker, so a page echoing the query can't leak it."""
    _event, token, marker = _audit_probe(tenant_world)
    return token, marker


def tenant_name(tenant_world, customer_account=None) -> tuple[str, str]:
    return "", tenant_world.tenant.name


def tenant_person(tenant_world, customer_account=None) -> tuple[str, str]:
    """A staff member whose name is the marker; the id is a search token found in their email only."""
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    token = uuid.uuid4().hex[:12]
    with schema_context(tenant_world.schema):
        user_create(email=f"{token}@people.test", role="planner", full_name=marker, actor=Actor(email="owner@example.test"))
    return token, marker


def customer_account_named(tenant_world, customer_account=None) -> tuple[str, str]:
    """A customer account (listed in the customer-user invitation form) whose name is the marker."""
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        CustomerAccount.objects.create(code=marker, name=marker)
    return "", marker


TENANT_ROUTES: list[Route] = [
    Route("home", "/", "page", tenant_name),
    Route("audit page", "/settings/audit/?q={id}", "page", audit_event_search),
    Route("users page", "/settings/users/", "page", tenant_name),
    Route("users page, staff member", "/settings/users/", "page", tenant_person),
    Route("users page, search", "/settings/users/?q={id}", "page", tenant_person),
    Route("users page, customer accounts", "/settings/users/", "page", customer_account_named),
    Route("api keys page", "/settings/api-keys/", "page", tenant_name),
    Route("support access page", "/settings/support-access/", "page", tenant_name),
    Route("api tenant", "/api/v1/tenant", "api", tenant_name, api_scope="tenant:read"),
    Route("api audit list", "/api/v1/audit-events", "api", audit_event, api_scope="audit:read"),
    Route("api audit detail", "/api/v1/audit-events/{id}", "api", audit_event, api_scope="audit:read"),
]

CONSOLE_ROUTES: list[str] = [
    "/",
    "/tenants/",
    "/partners/",
    "/audit/",
    "/tenants/new/",
    "/api/v1/tenants",
    "/staff/",
    "/partners/new/",
    "/tenants/1/brand/",
]
