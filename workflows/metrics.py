"""Engine gauges read at scrape time: what is in flight, stuck or overdue, across ready tenants.

Counters and histograms (`workflows.engine`) are incremented where the work happens, in Celery
workers; these gauges are the state of the rows, so `/metrics` reads them from PostgreSQL when it
is scraped, through `tenants.gauges` (one UNION ALL per 50 schemas, each part served by the
partial indexes on in-flight runs and unfired timers, the whole read capped at
`TIME_LIMIT_SECONDS`). Labels are bounded: totals over all tenants, by run status at most – never
a tenant. A read that fails or runs out of time yields no totals (partial totals would hide stuck
runs) and `baton_workflow_gauges_up 0`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from tenants.gauges import ScrapeGaugesCollector, gauge, schema_rows_read
from tenants.selectors import ready_schemas
from workflows.engine import REAP_READY_AFTER_SECONDS
from workflows.models import RunStatus

TIME_LIMIT_SECONDS = 5.0
# Runs the gauge counts by status: the ones still in flight. Finished runs are counted by
# `baton_workflow_runs_finished_total`; counting them here would scan every kept run per scrape.
IN_FLIGHT = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.COMPENSATING)

# One row per schema. Each status column and the stuck count filter the in-flight runs
# (run_status index); timers use their partial index on unfired `due_at`.
_PER_SCHEMA = """
SELECT
    count(*) FILTER (WHERE r.status = 'queued'),
    count(*) FILTER (WHERE r.status = 'running'),
    count(*) FILTER (WHERE r.status = 'waiting'),
    count(*) FILTER (WHERE r.status = 'compensating'),
    count(*) FILTER (
        WHERE r.status IN ('queued', 'running', 'compensating') AND r.paused_at IS NULL
          AND (r.lease_expires_at < %(now)s OR (r.lease_expires_at IS NULL AND r.ready_at < %(unclaimed_since)s))
    ),
    min(r.ready_at) FILTER (
        WHERE r.status IN ('queued', 'running', 'compensating') AND r.paused_at IS NULL AND r.ready_at <= %(now)s
    ),
    (SELECT count(*) FROM {schema}.workflows_timer t WHERE t.fired_at IS NULL AND t.due_at <= %(now)s),
    (SELECT count(*) FROM {schema}.workflows_incident i WHERE i.status = 'open'),
    (SELECT count(*) FROM {schema}.workflows_approval a WHERE a.status = 'pending' AND a.due_at < %(now)s)
FROM {schema}.workflows_run r
WHERE r.status IN ('queued', 'running', 'waiting', 'compensating')
"""


@dataclass
class EngineGauges:
    """Totals over the schemas read."""

    runs: dict[str, int] = field(default_factory=lambda: {status.value: 0 for status in IN_FLIGHT})
    stuck_runs: int = 0
    timers_due: int = 0
    incidents_open: int = 0
    approvals_overdue: int = 0
    oldest_ready_at: datetime | None = None
    tenants: int = 0


def engine_gauges_read(*, schemas: Sequence[str], now: datetime | None = None, time_limit: float = TIME_LIMIT_SECONDS) -> EngineGauges:
    """Totals of the engine's gauges over `schemas`; raises GaugesUnavailable when a statement
    fails or the time limit runs out (no partial totals)."""
    now = now or timezone.now()
    gauges = EngineGauges()
    params = {"now": now, "unclaimed_since": now - timedelta(seconds=REAP_READY_AFTER_SECONDS)}
    rows = schema_rows_read(per_schema=_PER_SCHEMA, schemas=schemas, params=params, time_limit=time_limit)
    for queued, running, waiting, compensating, stuck, oldest, timers_due, incidents, approvals in rows:
        for status, count in zip(IN_FLIGHT, (queued, running, waiting, compensating), strict=True):
            gauges.runs[status.value] += count
        gauges.stuck_runs += stuck
        gauges.timers_due += timers_due
        gauges.incidents_open += incidents
        gauges.approvals_overdue += approvals
        if oldest is not None and (gauges.oldest_ready_at is None or oldest < gauges.oldest_ready_at):
            gauges.oldest_ready_at = oldest
    gauges.tenants = len(schemas)
    return gauges


class EngineGaugesCollector(ScrapeGaugesCollector):
    up_name = "baton_workflow_gauges_up"
    up_documentation = "1 when the engine gauges were read from every ready tenant in time"
    what = "engine gauges"

    def gauges(self) -> Iterator[Metric]:
        now = timezone.now()
        started = time.monotonic()
        gauges = engine_gauges_read(schemas=ready_schemas(), now=now, time_limit=TIME_LIMIT_SECONDS)
        yield gauge("baton_workflow_gauges_tenants", "Ready tenants the engine gauges were read from", gauges.tenants)
        yield gauge("baton_workflow_gauges_read_seconds", "Time the engine gauges took to read", time.monotonic() - started)
        runs = GaugeMetricFamily("baton_workflow_runs", "Workflow runs in flight, by status, over all ready tenants", labels=["status"])
        for status, count in gauges.runs.items():
            runs.add_metric([status], count)
        yield runs
        yield gauge(
            "baton_workflow_stuck_runs",
            f"Queued, running or compensating runs with an expired lease, or ready and unclaimed for over {REAP_READY_AFTER_SECONDS} s",
            gauges.stuck_runs,
        )
        yield gauge("baton_workflow_timers_due", "Unfired timers whose due time has passed", gauges.timers_due)
        yield gauge("baton_workflow_incidents_open", "Open incidents (runs waiting for an operator)", gauges.incidents_open)
        yield gauge("baton_workflow_approvals_overdue", "Pending approvals past their due time", gauges.approvals_overdue)
        oldest = max(0.0, (now - gauges.oldest_ready_at).total_seconds()) if gauges.oldest_ready_at else 0.0
        yield gauge(
            "baton_workflow_oldest_ready_run_age_seconds",
            "Age of the oldest ready run not paused that the engine should advance (0 when none)",
            oldest,
        )
