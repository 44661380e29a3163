"""Engine gauges read at scrape time: what is in flight, stuck or overdue, across ready tenants.

Counters and histograms (`workflows.engine`) are incremented where the work happens, in Celery
workers; these gauges are the state of the rows, so `/metrics` reads them from PostgreSQL when it
is scraped. One statement reads up to `SCHEMAS_PER_STATEMENT` tenant schemas (a UNION ALL of one
small row per schema, each part served by the partial indexes on in-flight runs and unfired
timers); the whole read is capped at `TIME_LIMIT_SECONDS`. Labels are bounded: totals over all
tenants, by run status at most – never a tenant. A read that fails or runs out of time yields
no totals (partial totals would hide stuck runs) and `baton_workflow_gauges_up 0`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from django.db import DatabaseError, transaction
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenants.db import connection
from tenants.selectors import ready_schemas
from workflows.engine import REAP_READY_AFTER_SECONDS
from workflows.models import RunStatus

log = structlog.get_logger("baton.metrics")

TIME_LIMIT_SECONDS = 5.0
SCHEMAS_PER_STATEMENT = 50
# Runs the gauge counts by status: the ones still in flight. Finished runs are counted by
# `baton_workflow_runs_finished_total`; counting them here would scan every kept run per scrape.
IN_FLIGHT = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.COMPENSATING)
_SCHEMA_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]{0,62}$")

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


class GaugesUnavailable(Exception):
    """The gauges could not be read completely within the time limit."""


def engine_gauges_read(*, schemas: Sequence[str], now: datetime | None = None, time_limit: float = TIME_LIMIT_SECONDS) -> EngineGauges:
    """Totals of the engine's gauges over `schemas`; raises GaugesUnavailable when a statement
    fails or the time limit runs out (no partial totals)."""
    now = now or timezone.now()
    deadline = time.monotonic() + time_limit
    gauges = EngineGauges()
    params = {"now": now, "unclaimed_since": now - timedelta(seconds=REAP_READY_AFTER_SECONDS)}
    for start in range(0, len(schemas), SCHEMAS_PER_STATEMENT):
        chunk = schemas[start : start + SCHEMAS_PER_STATEMENT]
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise GaugesUnavailable(f"time limit of {time_limit} s reached after {gauges.tenants} of {len(schemas)} tenants")
        statement = "\nUNION ALL\n".join(_PER_SCHEMA.format(schema=_quoted(schema)) for schema in chunk)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # Local to this transaction; put back at once for a caller's enclosing transaction.
                cursor.execute("SELECT current_setting('statement_timeout')")
                (previous,) = cursor.fetchone() or ("0",)
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{remaining_ms}ms"])
                cursor.execute(statement, params)
                rows = cursor.fetchall()
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
        except DatabaseError as error:
            raise GaugesUnavailable(str(error).strip()) from error
        for queued, running, waiting, compensating, stuck, oldest, timers_due, incidents, approvals in rows:
            for status, count in zip(IN_FLIGHT, (queued, running, waiting, compensating), strict=True):
                gauges.runs[status.value] += count
            gauges.stuck_runs += stuck
            gauges.timers_due += timers_due
            gauges.incidents_open += incidents
            gauges.approvals_overdue += approvals
            if oldest is not None and (gauges.oldest_ready_at is None or oldest < gauges.oldest_ready_at):
                gauges.oldest_ready_at = oldest
        gauges.tenants += len(chunk)
    return gauges


def _quoted(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):  # django-tenants' own rule; anything else is not a schema we made
        raise GaugesUnavailable(f"unexpected schema name {schema!r}")
    return connection.ops.quote_name(schema)


class EngineGaugesCollector(Collector):
    """Registered per scrape by `/metrics` (config.observability), never in a worker's registry."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        started = time.monotonic()
        up = GaugeMetricFamily("baton_workflow_gauges_up", "1 when the engine gauges were read from every ready tenant in time")
        try:
            schemas = ready_schemas()
            gauges = engine_gauges_read(schemas=schemas, now=now, time_limit=TIME_LIMIT_SECONDS)
        except (GaugesUnavailable, DatabaseError) as error:
            log.warning("engine gauges unavailable", error=str(error))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _gauge("baton_workflow_gauges_tenants", "Ready tenants the engine gauges were read from", gauges.tenants)
        yield _gauge("baton_workflow_gauges_read_seconds", "Time the engine gauges took to read", time.monotonic() - started)
        runs = GaugeMetricFamily("baton_workflow_runs", "Workflow runs in flight, by status, over all ready tenants", labels=["status"])
        for status, count in gauges.runs.items():
            runs.add_metric([status], count)
        yield runs
        yield _gauge(
            "baton_workflow_stuck_runs",
            f"Queued, running or compensating runs with an expired lease, or ready and unclaimed for over {REAP_READY_AFTER_SECONDS} s",
            gauges.stuck_runs,
        )
        yield _gauge("baton_workflow_timers_due", "Unfired timers whose due time has passed", gauges.timers_due)
        yield _gauge("baton_workflow_incidents_open", "Open incidents (runs waiting for an operator)", gauges.incidents_open)
        yield _gauge("baton_workflow_approvals_overdue", "Pending approvals past their due time", gauges.approvals_overdue)
        oldest = max(0.0, (now - gauges.oldest_ready_at).total_seconds()) if gauges.oldest_ready_at else 0.0
        yield _gauge(
            "baton_workflow_oldest_ready_run_age_seconds",
            "Age of the oldest ready run not paused that the engine should advance (0 when none)",
            oldest,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
