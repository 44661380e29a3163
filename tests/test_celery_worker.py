"""A real Celery worker: provisioning runs there, tasks run inside their tenant's schema."""

import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from governance.services import Actor
from tenants.models import ProvisioningStep, Tenant
from tenants.services import BrandingInput, tenant_provision
from tenants.tasks import tenant_heartbeat
from tests.processes import celery_worker

pytestmark = pytest.mark.worker


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("worker") / "worker.log") as process:
        yield process


def _wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_console_provisioning_runs_on_the_worker(world, worker, committed):
    tenant = tenant_provision(
        partner=world.partner,
        name="Vandelay Imports",
        slug="vandelay",
        domains=[],
        plan="starter",
        branding=BrandingInput(product_name="Vandelay"),
        actor=Actor.system("test"),
        run_async=True,
    )
    assert tenant.status == "provisioning"  # returned before the work is done
    ready = _wait_for(lambda: Tenant.objects.filter(pk=tenant.pk, status="ready").first())
    assert ready.provisioning_seconds is not None
    assert ProvisioningStep.objects.filter(tenant=tenant, name="Ready").exists()


def test_a_task_runs_in_its_tenants_schema_and_its_cache_is_prefixed(world, worker, committed):
    with schema_context(world.acme.schema):
        cache.delete("tenant-heartbeat")
    with schema_context(world.globex.schema):
        cache.delete("tenant-heartbeat")
    tenant_heartbeat.apply_async(headers={"_schema_name": world.acme.schema})

    def acme_value():
        with schema_context(world.acme.schema):
            return cache.get("tenant-heartbeat")

    assert _wait_for(acme_value)
    with schema_context(world.globex.schema):
        assert cache.get("tenant-heartbeat") is None  # same key, other schema: not visible
    connection.set_schema_to_public()


def test_readyz_reports_the_worker_heartbeat(world, worker, committed):
    def ready():
        response = Client().get("/readyz", HTTP_HOST="localhost")
        return response if response.status_code == 200 else None

    body = _wait_for(ready, timeout=30).json()
    assert body["checks"] == {"database": "ok", "broker": "ok", "worker": "ok"}
