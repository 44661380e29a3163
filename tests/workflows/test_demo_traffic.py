"""`make run`'s sample traffic: the demo workflow is published by seed_demo and its runs complete."""

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from accounts.management.commands.seed_demo import Command as SeedDemo
from governance.services import Actor
from tenants.db import connection
from workflows.demo import DEMO_DEFINITION_KEY, demo_run_start
from workflows.engine import runs_advance_ready
from workflows.models import Definition, StepExecution

pytestmark = pytest.mark.django_db


def test_a_sample_delay_run_completes_through_the_delay_branch(world):
    call_command("seed_library", verbosity=0)
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        assert demo_run_start(actor=Actor.system("test"), sequence=4) is None  # nothing published yet
        SeedDemo()._demo_workflow(world.acme.users["tenant_admin"])
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
        SeedDemo()._demo_workflow(world.acme.users["tenant_admin"])
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
