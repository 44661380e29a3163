"""The daily purge on a real Celery worker: beat's `workflows.dispatch_purge` fans out to every
ready tenant, and each tenant's runs past its retention periods are purged there (committed data)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tests.processes import celery_worker
from tests.workflows.runs_setup import definition_published, run_advanced, run_started, runs_delete
from workflows import runs as runs_module
from workflows.models import Run
from workflows.selectors import workflow_policy
from workflows.tasks import dispatch_purge

pytestmark = pytest.mark.worker


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("retention-worker") / "worker.log") as process:
        yield process


def _finished(tenant_world, definition, days_ago: int) -> Run:
    run = run_advanced(tenant_world, run_started(tenant_world, definition))
    with schema_context(tenant_world.schema):
        Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    return run


def test_the_daily_purge_on_a_worker_applies_each_ready_tenants_policy(world, committed, worker, fake, monkeypatch):
    monkeypatch.setattr(runs_module, "_wake", lambda schema: None)  # these runs are advanced here, not on the worker
    acme, globex = definition_published(world.acme), definition_published(world.globex)
    try:
        with schema_context(world.acme.schema):
            policy = workflow_policy()
            audits_before = AuditEvent.objects.filter(action="workflow_runs.purged").count()
        assert policy.payload_retention_days + 1 < policy.metadata_retention_days
        erased = _finished(world.acme, acme, policy.payload_retention_days + 1)
        doomed = _finished(world.globex, globex, 4000)  # past any metadata period (at most 3650 days)

        dispatch_purge.apply_async()  # what beat sends at 03:17 UTC

        deadline = time.time() + 45
        while time.time() < deadline:
            with schema_context(world.acme.schema):
                erased.refresh_from_db()
            with schema_context(world.globex.schema):
                gone = not Run.objects.filter(pk=doomed.pk).exists()
            if erased.payload_purged_at and gone:
                break
            time.sleep(0.2)
        assert erased.payload_purged_at is not None and erased.input == {} and erased.context == {}
        assert gone, "the globex run past its metadata period was not deleted"
        with schema_context(world.acme.schema):
            event = AuditEvent.objects.filter(action="workflow_runs.purged").order_by("-pk").first()
            assert AuditEvent.objects.filter(action="workflow_runs.purged").count() == audits_before + 1
        assert event is not None and event.actor_email == "system:retention" and event.data["payload_purged"]["runs"] >= 1
    finally:
        runs_delete(world.acme, acme)
        runs_delete(world.globex, globex)
