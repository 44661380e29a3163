"""What the template tests on a real worker share: a template cloned and published in a tenant,
removed again afterwards, and waiting for something the worker does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django_tenants.utils import schema_context

from workflows.models import Definition, DefinitionVersion, Run, StepExecution, TemplateVersion
from workflows.services import definition_clone, definition_version_publish, definition_version_submit
from workflows.tasks import dispatch_fire_timers


def clone_published(
    tenant_world, version: TemplateVersion, *, key: str, name: str, parameters: dict[str, Any], connection_bindings: dict | None = None
) -> Definition:
    """The template version cloned by the tenant admin, its first version submitted and published."""
    admin = tenant_world.users["tenant_admin"]
    with schema_context(tenant_world.schema):
        definition = definition_clone(
            template_version=version,
            key=key,
            name=name,
            parameters=parameters,
            connection_bindings=connection_bindings or {},
            actor=admin,
        )
        draft = DefinitionVersion.objects.get(definition=definition, number=1)
        definition_version_submit(version=draft, actor=admin)
        definition_version_publish(version=draft, actor=admin)
        definition.refresh_from_db()
    return definition


def definition_forget(tenant_world, definition: Definition) -> None:
    """The definition with its runs and their steps (committed tests share the tenant)."""
    with schema_context(tenant_world.schema):
        StepExecution.objects.filter(run__definition=definition).delete()
        Run.objects.filter(definition=definition).delete()
        Definition.objects.filter(pk=definition.pk).delete()


def until(world, check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """`check()` in Acme's schema until it gives something true (beat's timer fan-out sent meanwhile)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        with schema_context(world.acme.schema):
            last = check()
        if last:
            return last
        dispatch_fire_timers.apply_async()  # what beat sends every few seconds
        time.sleep(0.3)
    with schema_context(world.acme.schema):
        runs = list(Run.objects.order_by("-pk").values("pk", "status", "current_step", "waiting_for", "error")[:4])
    raise AssertionError(f"{what} did not happen in {timeout} s (last: {last!r}; runs: {runs})")
