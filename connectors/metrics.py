"""Inbox gauges read at scrape time: how far behind the inbox is and how much waits for an operator,
across ready tenants.

The counters (`baton_webhooks_received_total`, `baton_inbox_dispatches_total`) are incremented
where the work happens; these gauges are the state of the rows, read from PostgreSQL when
`/metrics` is scraped, the way `workflows.metrics` reads the engine's: one statement per
`SCHEMAS_PER_STATEMENT` tenant schemas (a UNION ALL of one small row per schema), the whole read
capped at `TIME_LIMIT_SECONDS`. Labels are bounded: totals over all tenants, never a tenant or a
connection. A read that fails or runs out of time yields no totals (a partial lag would hide the
tenant that is behind) and `baton_inbox_gauges_up 0`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.db import DatabaseError, transaction
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenants.db import connection
from tenants.selectors import ready_schemas

log = structlog.get_logger("baton.metrics")

TIME_LIMIT_SECONDS = 5.0
SCHEMAS_PER_STATEMENT = 50
_SCHEMA_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]{0,62}$")

# One row per schema: the dispatch rows (few: each lives until its event is handed on) and the
# quarantined events (the inbound_event_status index on status, received_at).
_PER_SCHEMA = """
SELECT
    (SELECT count(*) FROM {schema}.connectors_eventdispatch),
    (SELECT min(created_at) FROM {schema}.connectors_eventdispatch),
    (SELECT count(*) FROM {schema}.connectors_inboundevent WHERE status = 'quarantined')
"""


@dataclass
class InboxGauges:
    """Totals over the schemas read."""

    dispatches_pending: int = 0
    oldest_dispatch_at: datetime | None = None
    quarantined: int = 0
    tenants: int = 0


class InboxGaugesUnavailable(Exception):
    """The gauges could not be read completely within the time limit."""


def inbox_gauges_read(*, schemas: Sequence[str], time_limit: float = TIME_LIMIT_SECONDS) -> InboxGauges:
    """Totals of the inbox gauges over `schemas`; raises InboxGaugesUnavailable when a statement
    fails or the time limit runs out (no partial totals)."""
    deadline = time.monotonic() + time_limit
    gauges = InboxGauges()
    for start in range(0, len(schemas), SCHEMAS_PER_STATEMENT):
        chunk = schemas[start : start + SCHEMAS_PER_STATEMENT]
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise InboxGaugesUnavailable(f"time limit of {time_limit} s reached after {gauges.tenants} of {len(schemas)} tenants")
        statement = "\nUNION ALL\n".join(_PER_SCHEMA.format(schema=_quoted(schema)) for schema in chunk)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # Local to this transaction; put back at once for a caller's enclosing transaction.
                cursor.execute("SELECT current_setting('statement_timeout')")
                (previous,) = cursor.fetchone() or ("0",)
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{remaining_ms}ms"])
                cursor.execute(statement)
                rows = cursor.fetchall()
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
        except DatabaseError as error:
            raise InboxGaugesUnavailable(str(error).strip()) from error
        for pending, oldest, quarantined in rows:
            gauges.dispatches_pending += pending
            gauges.quarantined += quarantined
            if oldest is not None and (gauges.oldest_dispatch_at is None or oldest < gauges.oldest_dispatch_at):
                gauges.oldest_dispatch_at = oldest
        gauges.tenants += len(chunk)
    return gauges


def _quoted(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):  # django-tenants' own rule; anything else is not a schema we made
        raise InboxGaugesUnavailable(f"unexpected schema name {schema!r}")
    return connection.ops.quote_name(schema)


class InboxGaugesCollector(Collector):
    """Registered per scrape by `/metrics` (config.observability), never in a worker's registry."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        up = GaugeMetricFamily("baton_inbox_gauges_up", "1 when the inbox gauges were read from every ready tenant in time")
        try:
            gauges = inbox_gauges_read(schemas=ready_schemas(), time_limit=TIME_LIMIT_SECONDS)
        except (InboxGaugesUnavailable, DatabaseError) as error:
            log.warning("inbox gauges unavailable", error=str(error))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        lag = max(0.0, (now - gauges.oldest_dispatch_at).total_seconds()) if gauges.oldest_dispatch_at else 0.0
        yield GaugeMetricFamily(
            "baton_inbox_lag_seconds",
            "Age of the oldest inbound event still waiting to be handed on, over all ready tenants (0 when none waits)",
            value=lag,
        )
        yield GaugeMetricFamily(
            "baton_inbox_dispatches_pending", "Inbound events stored and not yet handed on (dispatch rows)", value=gauges.dispatches_pending
        )
        yield GaugeMetricFamily(
            "baton_inbox_quarantined_events",
            "Inbound events in quarantine, waiting for an operator to fix and replay",
            value=gauges.quarantined,
        )
