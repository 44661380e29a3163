"""Gauges read across every ready tenant's schema when `/metrics` is scraped.

Counters are incremented where the work happens; a gauge that is the state of rows (runs in
flight, events waiting) is read from PostgreSQL at scrape time instead. The read is one statement
per `SCHEMAS_PER_STATEMENT` schemas – a UNION ALL of one small row per schema – and the whole read
is capped at a time limit. A read that fails or runs out of time raises `GaugesUnavailable`: the
collector then reports its `…_up` gauge as 0 and no totals, since partial totals would hide the
tenant that is behind. Labels stay bounded: totals over all tenants, never a tenant.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import structlog
from django.db import DatabaseError, transaction
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenants.db import connection

log = structlog.get_logger("baton.metrics")

SCHEMAS_PER_STATEMENT = 50
_SCHEMA_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]{0,62}$")


class GaugesUnavailable(Exception):
    """The gauges could not be read completely within the time limit."""


def schema_rows_read(
    *, per_schema: str, schemas: Sequence[str], time_limit: float, params: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """The row `per_schema` (a SELECT naming its schema as `{schema}`) gives in each of `schemas`,
    in their order; raises GaugesUnavailable when a statement fails or `time_limit` runs out."""
    deadline = time.monotonic() + time_limit
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(schemas), SCHEMAS_PER_STATEMENT):
        chunk = schemas[start : start + SCHEMAS_PER_STATEMENT]
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise GaugesUnavailable(f"time limit of {time_limit} s reached after {start} of {len(schemas)} tenants")
        statement = "\nUNION ALL\n".join(per_schema.format(schema=_quoted(schema)) for schema in chunk)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # Local to this transaction; put back at once for a caller's enclosing transaction.
                cursor.execute("SELECT current_setting('statement_timeout')")
                (previous,) = cursor.fetchone() or ("0",)
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{remaining_ms}ms"])
                cursor.execute(statement, params)
                rows += cursor.fetchall()
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
        except DatabaseError as error:
            raise GaugesUnavailable(str(error).strip()) from error
    return rows


def _quoted(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):  # django-tenants' own rule; anything else is not a schema we made
        raise GaugesUnavailable(f"unexpected schema name {schema!r}")
    return connection.ops.quote_name(schema)


class ScrapeGaugesCollector(Collector):
    """Gauges read when scraped, with an `up` gauge saying whether they could be: registered per
    scrape by `/metrics` (config.observability), never in a worker's registry. A subclass names
    its up gauge and yields its families from `gauges`, raising GaugesUnavailable (or a
    DatabaseError) when it cannot read them all."""

    up_name = ""
    up_documentation = ""
    what = "gauges"  # in the warning when they are unavailable

    def gauges(self) -> Iterator[Metric]:
        raise NotImplementedError

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(self.up_name, self.up_documentation)
        try:
            families = list(self.gauges())  # all read before any is yielded: no partial totals
        except (GaugesUnavailable, DatabaseError) as error:
            log.warning(f"{self.what} unavailable", error=str(error))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
