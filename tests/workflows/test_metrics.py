"""`/metrics`: the engine gauges read at scrape time over every ready tenant, with bounded labels,
and (test_metrics_worker.py) counters of a real Celery worker through the multiprocess mode."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context
from prometheus_client.parser import text_string_to_metric_families

from tenants.gauges import GaugesUnavailable
from tests.conftest import host_client
from tests.workflows.runs_setup import definition_published, run_started
from workflows import metrics as engine_metrics
from workflows.models import Approval, Incident, IncidentStatus, Run, RunStatus, Timer, TimerKind

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token"
GAUGES = (
    "baton_workflow_stuck_runs",
    "baton_workflow_timers_due",
    "baton_workflow_incidents_open",
    "baton_workflow_approvals_overdue",
    "baton_workflow_oldest_ready_run_age_seconds",
)
# The only labels a baton_workflow_* series may carry, with their possible values where they
# come from a fixed set (`le` is the histogram's bucket bound).
BOUNDED_LABELS = {"status", "trigger", "kind", "le"}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(host: str = "localhost") -> tuple[Samples, list]:
    with override_settings(BATON_METRICS_TOKEN=TOKEN):
        response = host_client(host).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    families = list(text_string_to_metric_families(response.content.decode()))
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value for family in families for sample in family.samples}
    return samples, families


def gauge(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _run(tenant_world, definition, **state) -> Run:
    """A run of `definition` started as the API does, then put in `state` (the engine's columns)."""
    run = run_started(tenant_world, definition)
    with schema_context(tenant_world.schema):
        Run.objects.filter(pk=run.pk).update(**state)
        run.refresh_from_db()
    return run


def test_gauges_count_stuck_due_open_and_overdue_rows_of_every_ready_tenant(world):
    before, _families = scrape()
    now = timezone.now()
    acme = definition_published(world.acme)
    globex = definition_published(world.globex)

    # Acme: a running run whose worker died, a run ready for two minutes nobody claimed, a fresh
    # ready run, a paused one, a run waiting on a due timer, a failed one with an open incident,
    # and one waiting on an overdue approval.
    _run(
        world.acme,
        acme,
        status=RunStatus.RUNNING,
        ready_at=now - timedelta(seconds=60),
        lease_owner="dead",
        lease_expires_at=now - timedelta(seconds=5),
    )
    _run(world.acme, acme, status=RunStatus.QUEUED, ready_at=now - timedelta(seconds=120))
    _run(world.acme, acme, status=RunStatus.QUEUED, ready_at=now)
    _run(world.acme, acme, status=RunStatus.QUEUED, ready_at=now - timedelta(seconds=300), paused_at=now - timedelta(seconds=300))
    waiting = _run(world.acme, acme, status=RunStatus.WAITING, ready_at=None)
    failed = _run(world.acme, acme, status=RunStatus.FAILED, ready_at=None, finished_at=now)
    approving = _run(world.acme, acme, status=RunStatus.WAITING, ready_at=None)
    with schema_context(world.acme.schema):
        Timer.objects.create(run=waiting, kind=TimerKind.RETRY, step_id="tender", due_at=now - timedelta(seconds=5))
        Timer.objects.create(run=waiting, kind=TimerKind.WAIT_UNTIL, step_id="tender", due_at=now + timedelta(hours=1))
        Timer.objects.create(run=waiting, kind=TimerKind.RETRY, step_id="check", due_at=now - timedelta(hours=1), fired_at=now)
        Incident.objects.create(run=failed, step_id="tender", step_kind="connector", error="carrier down")
        Incident.objects.create(run=failed, step_id="check", step_kind="decision", error="old", status=IncidentStatus.RESOLVED)
        Approval.objects.create(run=approving, step_id="sign", title="Sign off", due_at=now - timedelta(hours=1))
        Approval.objects.create(run=approving, step_id="countersign", title="Countersign", due_at=now + timedelta(hours=1))
    # Globex: one of each kind too.
    _run(world.globex, globex, status=RunStatus.RUNNING, ready_at=now, lease_owner="dead", lease_expires_at=now - timedelta(seconds=1))
    globex_waiting = _run(world.globex, globex, status=RunStatus.WAITING, ready_at=None)
    globex_failed = _run(world.globex, globex, status=RunStatus.FAILED, ready_at=None, finished_at=now)
    with schema_context(world.globex.schema):
        Timer.objects.create(run=globex_waiting, kind=TimerKind.WAIT_UNTIL, step_id="tender", due_at=now - timedelta(seconds=1))
        Incident.objects.create(run=globex_failed, step_id="tender", step_kind="connector", error="carrier down")

    after, _families = scrape()
    assert gauge(after, "baton_workflow_gauges_up") == 1
    assert gauge(after, "baton_workflow_gauges_tenants") >= 2

    def delta(name: str, **labels: str) -> float:
        return gauge(after, name, **labels) - gauge(before, name, **labels)

    assert {status: delta("baton_workflow_runs", status=status) for status in ("queued", "running", "waiting", "compensating")} == {
        "queued": 3,
        "running": 2,
        "waiting": 3,
        "compensating": 0,
    }
    assert delta("baton_workflow_stuck_runs") == 3  # the dead worker's runs in both tenants, the unclaimed one
    assert delta("baton_workflow_timers_due") == 2
    assert delta("baton_workflow_incidents_open") == 2
    assert delta("baton_workflow_approvals_overdue") == 1
    oldest = gauge(after, "baton_workflow_oldest_ready_run_age_seconds")
    assert oldest >= 120
    if gauge(before, "baton_workflow_oldest_ready_run_age_seconds") == 0:
        assert oldest < 300  # the paused run, ready for longer, is not waiting on the engine


def test_no_engine_series_carries_a_tenant_or_an_unbounded_label(world):
    acme = definition_published(world.acme)
    _run(world.acme, acme, status=RunStatus.QUEUED, ready_at=timezone.now() - timedelta(seconds=90))
    samples, families = scrape(world.acme.host)  # from a tenant's host too: totals, not that tenant's
    assert gauge(samples, "baton_workflow_gauges_up") == 1
    tenant_words = {world.acme.schema, world.globex.schema, "acme", "globex", world.acme.host, world.globex.host}
    engine = [family for family in families if family.name.startswith("baton_workflow")]
    assert {family.name for family in engine} >= {"baton_workflow_runs", *GAUGES}
    for family in engine:
        for sample in family.samples:
            assert set(sample.labels) <= BOUNDED_LABELS, (sample.name, sample.labels)
            assert not tenant_words & set(sample.labels.values()), (sample.name, sample.labels)
    run_statuses = {sample.labels["status"] for family in engine if family.name == "baton_workflow_runs" for sample in family.samples}
    assert run_statuses == {status.value for status in engine_metrics.IN_FLIGHT}


def test_gauges_past_the_time_limit_report_down_instead_of_partial_totals(world, monkeypatch):
    monkeypatch.setattr(engine_metrics, "TIME_LIMIT_SECONDS", 0)
    samples, families = scrape()
    assert gauge(samples, "baton_workflow_gauges_up") == 0
    assert not {family.name for family in families} & {"baton_workflow_runs", *GAUGES}
    with pytest.raises(GaugesUnavailable, match="time limit"):
        engine_metrics.engine_gauges_read(schemas=[world.acme.schema], time_limit=0)


def test_gauges_refuse_a_schema_name_that_is_not_one_of_ours(world):
    with pytest.raises(GaugesUnavailable, match="unexpected schema name"):
        engine_metrics.engine_gauges_read(schemas=['t_acme"; DROP TABLE x; --'])


def test_a_celery_pool_process_that_exits_is_marked_dead_for_the_multiprocess_mode(tmp_path, monkeypatch):
    from celery.signals import worker_process_shutdown

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    live, counter = tmp_path / "gauge_livesum_4242.db", tmp_path / "counter_4242.db"
    live.write_bytes(b"")
    counter.write_bytes(b"")
    worker_process_shutdown.send(sender=None, pid=4242, exitcode=0)  # what a pool process sends as it exits
    assert not live.exists() and counter.exists()  # its live gauges go, its counters keep counting
