"""The engine on a real Celery worker: runs started through the process API complete there, once."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connections
from django.db.models import Count
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from tests.conftest import host_client
from tests.processes import celery_worker
from tests.workflows.runs_setup import definition_published, runs_delete
from workflows.models import Run, StepExecution

pytestmark = pytest.mark.worker

BODY = {"input": {"order_id": "SO-W", "total": 300, "lines": [{"sku": "W-1"}]}}


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("engine-worker") / "worker.log") as process:
        yield process


@pytest.fixture
def definition(world, committed):
    definition = definition_published(world.acme)
    yield definition
    runs_delete(world.acme, definition)


@pytest.fixture
def auth(world, committed) -> dict:
    with schema_context(world.acme.schema):
        _key, secret = api_key_create(name="engine worker", scopes=["workflows:run"], actor=world.acme.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def _post(world, key: str, auth: dict, body: dict, **headers):
    return host_client(world.acme.host).post(
        f"/api/v1/processes/{key}/runs", data=json.dumps(body), content_type="application/json", **auth, **headers
    )


def _wait_finished(world, definition, count: int, timeout: float = 60.0) -> list[Run]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with schema_context(world.acme.schema):
            runs = list(Run.objects.filter(definition=definition).order_by("pk"))
        if len(runs) == count and all(run.finished_at for run in runs):
            return runs
        time.sleep(0.2)
    raise AssertionError(f"runs did not finish: {[(run.pk, run.status, run.current_step, run.error) for run in runs]}")


def _step_counts(world, definition) -> dict[tuple[int, str], int]:
    with schema_context(world.acme.schema):
        rows = StepExecution.objects.filter(run__definition=definition).values("run_id", "step_id").annotate(n=Count("id"))
        return {(row["run_id"], row["step_id"]): row["n"] for row in rows}


def test_runs_started_through_the_api_complete_on_the_worker(world, worker, definition, auth):
    for n in range(5):
        assert _post(world, definition.key, auth, {**BODY, "business_key": f"SO-W-{n}"}).status_code == 201
    runs = _wait_finished(world, definition, 5)
    assert {run.status for run in runs} == {"succeeded"}
    assert all(run.context["tender"]["accepted"] is True for run in runs)
    counts = _step_counts(world, definition)
    assert len(counts) == 5 * 4 and set(counts.values()) == {1}


def test_one_trigger_sent_three_times_at_once_makes_one_run_completed_once(world, worker, definition, auth):
    barrier = threading.Barrier(3)
    statuses: list[int] = []

    def send():
        try:
            barrier.wait(timeout=10)
            statuses.append(_post(world, definition.key, auth, BODY, HTTP_IDEMPOTENCY_KEY="trigger-1").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 200, 201]
    (run,) = _wait_finished(world, definition, 1)
    assert run.status == "succeeded"
    counts = _step_counts(world, definition)
    assert counts == {(run.pk, step): 1 for step in ("check", "price", "tender", "done")}
