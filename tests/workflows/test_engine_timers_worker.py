"""Timers and the reaper on a real Celery worker (committed data): a timer that fell due while no
worker ran fires once one starts, and a run whose worker died resumes without a new trigger."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.processes import celery_worker
from tests.workflows.runs_setup import ORDER_SPEC, SYSTEM, definition_published, runs_delete
from workflows import runs as runs_module
from workflows.engine import run_advance, runs_claim
from workflows.models import Run, Timer
from workflows.runs import run_start
from workflows.tasks import dispatch_fire_timers

pytestmark = pytest.mark.worker

WAIT_SPEC = {
    "start": "wait",
    "steps": [
        {"id": "wait", "kind": "wait_until", "until": "PT1S", "next": "done"},
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("timers-worker") / "worker.log") as process:
        yield process


def _wait_for(world, run: Run, timeout: float = 45.0) -> Run:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with schema_context(world.acme.schema):
            run.refresh_from_db()
        if run.finished_at:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run did not finish: {run.status} at {run.current_step}: {run.error}")


def test_a_timer_due_while_no_worker_ran_fires_once_a_worker_starts(world, committed, request):
    definition = definition_published(world.acme, WAIT_SPEC)
    try:
        with schema_context(world.acme.schema):
            run, _created = run_start(definition=definition, input={}, trigger="api", actor=SYSTEM)
            assert run.pk in runs_claim(owner="before-the-worker", limit=100)
            assert run_advance(run_id=run.pk, owner="before-the-worker") == "waiting"
            (timer,) = Timer.objects.filter(run=run)
        time.sleep(max(0.0, (timer.due_at - timezone.now()).total_seconds()) + 0.2)  # due, and no worker yet
        request.getfixturevalue("worker")
        dispatch_fire_timers.apply_async()  # what beat sends every few seconds
        run = _wait_for(world, run)
        assert run.status == "succeeded" and run.context["wait"]["timer"] == timer.pk
        with schema_context(world.acme.schema):
            assert Timer.objects.get(pk=timer.pk).fired_at is not None
            assert run.steps.filter(step_id="wait").count() == 1
    finally:
        runs_delete(world.acme, definition)


def test_a_run_whose_worker_died_mid_run_resumes_without_a_new_trigger(world, committed, worker, monkeypatch):
    monkeypatch.setattr(runs_module, "_wake", lambda schema: None)  # no wake-up: only the reaper can find it
    definition = definition_published(world.acme, ORDER_SPEC)
    try:
        with schema_context(world.acme.schema):
            run, _created = run_start(
                definition=definition, input={"order_id": "SO-R", "total": 10, "lines": []}, trigger="api", actor=SYSTEM
            )
            assert run.pk in runs_claim(owner="killed-worker", limit=100)
            # The worker was killed mid-run: the run is running with a lease that ran out.
            Run.objects.filter(pk=run.pk).update(status="running", lease_expires_at=timezone.now() - timedelta(seconds=1))
        dispatch_fire_timers.apply_async()
        run = _wait_for(world, run)
        assert (run.status, run.lease_owner) == ("succeeded", "")
        with schema_context(world.acme.schema):
            assert list(run.steps.order_by("pk").values_list("step_id", flat=True)) == ["check", "price", "tender", "done"]
    finally:
        runs_delete(world.acme, definition)
