"""`make run`'s sample traffic: the demo workflow is published by seed_demo and its runs complete."""

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from accounts.management.commands.seed_demo import Command as SeedDemo
from governance.services import Actor
from tenants.db import connection
from workflows.engine import runs_advance_ready
from workflows.models import Definition, StepExecution
from workflows.runs import DEMO_DEFINITION_KEY, demo_run_start

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
