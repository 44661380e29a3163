"""`make run`'s sample traffic for demo workflows still on 1.x (a demo seeded before 2.x came;
seed_demo now publishes 2.x, which `logistics.simulator` drives): its runs complete."""

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from governance.services import Actor
from tenants.db import connection
from workflows.demo import DEMO_CARRIER, DEMO_DEFINITION_KEY, DEMO_ORDER_KEY, demo_run_start
from workflows.engine import runs_advance_ready
from workflows.models import Definition, StepExecution, TemplateVersion
from workflows.services import definition_clone, definition_version_publish, definition_version_submit

pytestmark = pytest.mark.django_db


def _demo_on_1x(admin) -> None:
    """The two demo workflows as an older seed_demo published them: on their 1.x templates."""
    for template_key, key, parameters in (
        ("customer-milestone-notifications", DEMO_DEFINITION_KEY, {}),
        ("order-to-shipment-release", DEMO_ORDER_KEY, {"carrier_connection": DEMO_CARRIER}),
    ):
        version = TemplateVersion.objects.filter(template__key=template_key, major=1).order_by("-minor", "-patch")[:1].get()
        definition = definition_clone(
            template_version=version, key=key, name=key, parameters=parameters, connection_bindings={}, actor=admin
        )
        draft = definition.versions.get()
        definition_version_submit(version=draft, actor=admin)
        definition_version_publish(version=draft, actor=admin)


def test_a_sample_delay_run_completes_through_the_delay_branch(world):
    call_command("seed_library", verbosity=0)
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        assert demo_run_start(actor=Actor.system("test"), sequence=4) is None  # nothing published yet
        _demo_on_1x(world.acme.users["tenant_admin"])
        assert Definition.objects.get(key=DEMO_DEFINITION_KEY).published_version is not None
        run = demo_run_start(actor=Actor.system("test"), sequence=4)  # the fifth milestone: DELAYED
        assert run.input["code"] == "DELAYED"
        runs_advance_ready(owner="test", limit=10)
        run.refresh_from_db()
        assert run.status == "succeeded"
        assert list(StepExecution.objects.filter(run=run).order_by("id").values_list("step_id", flat=True)) == [
            "is-delay",
            "raise-delay",
            "done",
        ]


def test_sample_orders_bring_approvals_event_waits_and_routed_failures(world, fake):
    from datetime import timedelta

    from django.utils import timezone

    from workflows.demo import demo_carrier_answers, demo_order_start
    from workflows.models import Approval, Run

    call_command("seed_library", verbosity=0)
    actor = Actor.system("test")
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        _demo_on_1x(world.acme.users["tenant_admin"])
        small, large, held = (demo_order_start(actor=actor, sequence=n) for n in (1, 2, 11))
        runs_advance_ready(owner="test", limit=10)
        small, large, held = (Run.objects.get(pk=run.pk) for run in (small, large, held))
        assert (small.status, small.current_step) == ("waiting", "wait-990")
        assert (large.status, large.current_step) == ("waiting", "approve")
        assert Approval.objects.get(run=large).assignee_roles == ["planner"]
        assert (held.status, held.error) == ("failed", "The workflow ended at a failed outcome.")
        assert demo_carrier_answers() == []  # the carrier takes its time
        assert demo_carrier_answers(now=timezone.now() + timedelta(seconds=30)) == [small.pk]
        runs_advance_ready(owner="test", limit=10)
        small.refresh_from_db()
        assert small.status == "succeeded"
        assert small.context["release"]["release"]["carrier_reference"].startswith("PRO-")
        assert [effect["action"] for effect in fake.effects] == ["tender_load"]
