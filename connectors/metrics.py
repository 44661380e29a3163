"""Connector gauges read at scrape time: how far behind the inbox is, how much waits for an
operator, and how many circuits are open, across ready tenants.

The counters (`baton_webhooks_received_total`, `baton_inbox_dispatches_total`,
`baton_connector_calls_total`, `baton_webhook_deliveries_total`, …) are incremented where the work
happens; these gauges are state. The inbox's is the state of rows, read from PostgreSQL through
`tenants.gauges` as the engine's are (one UNION ALL per 50 schemas, capped at
`TIME_LIMIT_SECONDS`); the circuits' is in Redis, read from the index `connectors.guards` keeps of
the circuits not closed. Labels are bounded: totals over all tenants (the circuits by state),
never a tenant or a connection. A read that fails or runs out of time yields no totals (a partial
lag would hide the tenant that is behind) and its `…_up 0`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import redis
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from connectors.guards import HALF_OPEN, OPEN, circuits_count
from tenants.gauges import GaugesUnavailable, ScrapeGaugesCollector, gauge, schema_rows_read
from tenants.selectors import ready_schemas

TIME_LIMIT_SECONDS = 5.0

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


def inbox_gauges_read(*, schemas: Sequence[str], time_limit: float = TIME_LIMIT_SECONDS) -> InboxGauges:
    """Totals of the inbox gauges over `schemas`; raises GaugesUnavailable when a statement
    fails or the time limit runs out (no partial totals)."""
    gauges = InboxGauges()
    for pending, oldest, quarantined in schema_rows_read(per_schema=_PER_SCHEMA, schemas=schemas, time_limit=time_limit):
        gauges.dispatches_pending += pending
        gauges.quarantined += quarantined
        if oldest is not None and (gauges.oldest_dispatch_at is None or oldest < gauges.oldest_dispatch_at):
            gauges.oldest_dispatch_at = oldest
    gauges.tenants = len(schemas)
    return gauges


class InboxGaugesCollector(ScrapeGaugesCollector):
    up_name = "baton_inbox_gauges_up"
    up_documentation = "1 when the inbox gauges were read from every ready tenant in time"
    what = "inbox gauges"

    def gauges(self) -> Iterator[Metric]:
        now = timezone.now()
        gauges = inbox_gauges_read(schemas=ready_schemas(), time_limit=TIME_LIMIT_SECONDS)
        lag = max(0.0, (now - gauges.oldest_dispatch_at).total_seconds()) if gauges.oldest_dispatch_at else 0.0
        yield gauge(
            "baton_inbox_lag_seconds",
            "Age of the oldest inbound event still waiting to be handed on, over all ready tenants (0 when none waits)",
            lag,
        )
        yield gauge(
            "baton_inbox_dispatches_pending", "Inbound events stored and not yet handed on (dispatch rows)", gauges.dispatches_pending
        )
        yield gauge(
            "baton_inbox_quarantined_events", "Inbound events in quarantine, waiting for an operator to fix and replay", gauges.quarantined
        )


class CircuitGaugesCollector(ScrapeGaugesCollector):
    """Circuits not closed, by state. Closed is every other connection, so it has no series: the
    connections are in PostgreSQL, and counting them per scrape would cost every tenant a query."""

    up_name = "baton_connector_circuits_up"
    up_documentation = "1 when the circuit states were read from Redis"
    what = "circuit gauges"

    def gauges(self) -> Iterator[Metric]:
        try:
            counts = circuits_count()
        except redis.RedisError as error:
            raise GaugesUnavailable(f"Redis: {error}") from error
        circuits = GaugeMetricFamily(
            "baton_connector_circuits",
            "Connections whose circuit is open (calls refused) or half-open (one probe let through), over all tenants",
            labels=["state"],
        )
        for state in (OPEN, HALF_OPEN):
            circuits.add_metric([state], counts[state])
        yield circuits
