"""Published definitions for the engine tests: a library template cloned, submitted and published
by the tenant's admin, the way a tenant gets a runnable workflow."""

from __future__ import annotations

import copy
import uuid

from django_tenants.utils import schema_context

from governance.services import Actor
from tenants.db import connection
from workflows.models import Definition, DefinitionVersion, Run, StepExecution
from workflows.services import definition_clone, definition_draft_create, definition_version_publish, definition_version_submit

from .conftest import publish

# decision → transform → connector → end, with a notify branch for large orders.
ORDER_SPEC = {
    "start": "check",
    "triggers": [{"kind": "api", "key": "orders"}],
    "steps": [
        {
            "id": "check",
            "kind": "decision",
            "cases": [{"when": "input.total > 1000", "next": "hold", "label": "large"}],
            "default": "price",
        },
        {
            "id": "price",
            "kind": "transform",
            "mapping": {
                "order.id": "$.input.order_id",
                "order.total": "$.input.total",
                "order.first_sku": "$.input.lines.0.sku",
                "source": "api",
            },
            "next": "tender",
        },
        {
            "id": "tender",
            "kind": "connector",
            "connection": "carrier",
            "action": "tender_load",
            "input": {"order": "$.context.price.order.id", "threshold": "$.params.threshold"},
            "next": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
        {"id": "hold", "kind": "notify", "channel": "email", "to_roles": ["planner"], "template": "large-order", "next": None},
    ],
}
PARAMETERS = {"type": "object", "properties": {"threshold": {"type": "integer", "default": 1000}}}
ENTRY = {"name": "Engine probe", "category": "orders", "description": "", "documentation": "", "changelog": ""}


def _admin(tenant_world):
    return tenant_world.users["tenant_admin"]


def definition_published(tenant_world, spec: dict | None = None, *, key: str = "", bindings: dict | None = None) -> Definition:
    """A definition of `spec` (ORDER_SPEC by default) with version 1 published."""
    spec = copy.deepcopy(spec or ORDER_SPEC)
    template_key = f"engine-{uuid.uuid4().hex[:10]}"
    version = publish(
        {**ENTRY, "key": template_key, "version": "1.0.0", "definition": spec, "parameters_schema": PARAMETERS},
    )
    admin = _admin(tenant_world)
    with schema_context(tenant_world.schema):
        definition = definition_clone(
            template_version=version,
            key=key or template_key,
            name="Engine probe",
            parameters={},
            connection_bindings=bindings if bindings is not None else ({"carrier": "acme-tms"} if "carrier" in str(spec) else {}),
            actor=admin,
        )
        draft = DefinitionVersion.objects.get(definition=definition, number=1)
        definition_version_submit(version=draft, actor=admin)
        definition_version_publish(version=draft, actor=admin)
        definition.refresh_from_db()
    connection.set_schema_to_public()
    return definition


def version_publish(tenant_world, definition: Definition, spec: dict) -> DefinitionVersion:
    """Publish a new version of `definition` with `spec`."""
    admin = _admin(tenant_world)
    with schema_context(tenant_world.schema):
        draft = definition_draft_create(definition=definition, spec=copy.deepcopy(spec), parameters={}, comment="next", actor=admin)
        definition_version_submit(version=draft, actor=admin)
        published = definition_version_publish(version=draft, actor=admin)
    connection.set_schema_to_public()
    return published


def runs_delete(tenant_world, definition: Definition) -> None:
    """Committed tests clean up after themselves, so claims in other tests see none of their runs."""
    with schema_context(tenant_world.schema):
        StepExecution.objects.filter(run__definition=definition).delete()
        Run.objects.filter(definition=definition).delete()
    connection.set_schema_to_public()


SYSTEM = Actor.system("tests-engine")


ORDER = {"order_id": "SO-1", "total": 250, "lines": [{"sku": "A-1", "qty": 2}]}


def run_started(tenant_world, definition: Definition, input: dict | None = None, **kwargs) -> Run:
    """Start a run in the tenant as the API would, asserting it is new."""
    from workflows.runs import run_start

    with schema_context(tenant_world.schema):
        run, created = run_start(definition=definition, input=ORDER if input is None else input, trigger="api", actor=SYSTEM, **kwargs)
        assert created
        return run


def run_advanced(tenant_world, run: Run, owner: str = "worker-1") -> Run:
    """Claim the run the way a worker does, then advance it."""
    from workflows.engine import run_advance, runs_claim

    with schema_context(tenant_world.schema):
        assert run.pk in runs_claim(owner=owner, limit=100, lease_seconds=60)
        run_advance(run_id=run.pk, owner=owner)
        run.refresh_from_db()
        return run


def run_timeline(tenant_world, run: Run) -> list[tuple[str, str, int]]:
    with schema_context(tenant_world.schema):
        return list(StepExecution.objects.filter(run=run).order_by("pk").values_list("step_id", "status", "attempt"))
