"""Counters a real Celery worker increments show on the web's `/metrics` in Prometheus
multiprocess mode (a shared PROMETHEUS_MULTIPROC_DIR, as under `make run`), and on the worker's
own `/metrics` (BATON_WORKER_METRICS_LISTEN, as in Kubernetes, where it shares no folder)."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import celery_worker, free_port, suite_env
from tests.workflows.runs_setup import definition_published, run_started, runs_delete
from tests.workflows.test_metrics import gauge, scrape
from workflows.models import Run, StepExecution

pytestmark = pytest.mark.worker

WORKER_TOKEN = "worker-scrape-token"


@pytest.fixture(scope="module")
def multiprocess_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("prometheus")


@pytest.fixture(scope="module")
def worker_listen() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def worker(tmp_path_factory, multiprocess_dir, worker_listen, django_db_setup, django_db_blocker):
    env = suite_env(
        PROMETHEUS_MULTIPROC_DIR=str(multiprocess_dir), BATON_WORKER_METRICS_LISTEN=worker_listen, BATON_METRICS_TOKEN=WORKER_TOKEN
    )
    with celery_worker(tmp_path_factory.mktemp("metrics-worker") / "worker.log", env=env) as process:
        yield process


def _finished(tenant_world, runs: list[Run], timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with schema_context(tenant_world.schema):
            pending = Run.objects.filter(pk__in=[run.pk for run in runs], finished_at__isnull=True).count()
        if not pending:
            return
        time.sleep(0.2)
    raise AssertionError(f"{pending} runs of {tenant_world.schema} did not finish on the worker")


def _since(worlds, started) -> tuple[int, int]:
    """Runs that succeeded and connector steps executed since `started`, over the tenants."""
    succeeded = connector_steps = 0
    for tenant_world in worlds:
        with schema_context(tenant_world.schema):
            succeeded += Run.objects.filter(finished_at__gte=started, status="succeeded").count()
            connector_steps += StepExecution.objects.filter(finished_at__gte=started, kind="connector").count()
    return succeeded, connector_steps


def test_counters_of_a_worker_show_on_the_web_metrics_in_multiprocess_mode(world, committed, worker, multiprocess_dir, monkeypatch):
    started = timezone.now()
    acme, globex = definition_published(world.acme), definition_published(world.globex)
    try:
        acme_runs = [run_started(world.acme, acme) for _ in range(3)]  # each wakes the worker after commit
        globex_runs = [run_started(world.globex, globex)]
        _finished(world.acme, acme_runs)
        _finished(world.globex, globex_runs)
        succeeded, connector_steps = _since((world.acme, world.globex), started)
        assert succeeded == 4

        # The worker's pool process wrote its counters to files named by its pid.
        assert {path.stem.rsplit("_", 1)[1] for path in multiprocess_dir.glob("*.db")} - {str(os.getpid())}

        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiprocess_dir))
        samples, _families = scrape()
        assert gauge(samples, "baton_workflow_runs_finished_total", status="succeeded") == succeeded
        assert gauge(samples, "baton_workflow_step_duration_seconds_count", kind="connector") == connector_steps
        assert gauge(samples, "baton_workflow_gauges_up") == 1  # the scrape-time gauges come along
    finally:
        runs_delete(world.acme, acme)
        runs_delete(world.globex, globex)


def test_a_worker_serves_its_own_counters_with_the_bearer_token(world, committed, worker, worker_listen):
    url = f"http://{worker_listen}/metrics"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=5)
    assert refused.value.code == 401
    definition = definition_published(world.acme)
    try:
        runs = [run_started(world.acme, definition) for _ in range(2)]
        _finished(world.acme, runs)
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read().decode()
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }
        assert gauge(samples, "baton_workflow_runs_finished_total", status="succeeded") >= 2
        assert not any(name.startswith("baton_workflow_gauges") for name, _labels in samples)  # gauges are the web's
    finally:
        runs_delete(world.acme, definition)
