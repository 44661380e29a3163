"""Outcome metrics of a tenant: the figures a business case is made of, for a baseline period and
for now, read straight from the logistics tables with one SQL statement per metric (aggregates
and `percentile_cont`, so they stay fast on tens of thousands of shipments).

The definitions (also shown on the page and in `docs/domain.md`):

- order cycle time: from the order's receipt (`Order.created_at`) to the first picked-up event
  of any of its shipments (the freight left the dock); counted in the period the pickup falls in.
- exception handling time: from an exception's opening to its closing, counted in the period it
  closed in; beside it the exceptions open at the period's end.
- on-time delivery: shipments delivered in the period whose delivery time is at most the promise
  plus the customer tier's on-time grace. The promise is the one delay detection uses: the last
  delivery stop's appointment end (or start), else the planned ETA. Deliveries without a promise
  are counted apart, not as on time or late.
- POD-to-invoice lag: from the first POD document of a shipment to each customer invoice produced
  for it (`customer_invoice_produce`), counted in the period the invoice was produced in.
- dispute rate: carrier invoices received in the period and matched, disputed ones among them
  (invoices still waiting for their match are left out).

Periods are half-open `[start, end)`. "Now" is the last N days; the baseline is the tenant's
choice, else the N days before its first logistics workflow went live, else the N days before now.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Subquery
from django.utils import timezone

from logistics.models import SlaPolicy
from tenants.db import connection
from workflows.models import DefinitionVersion, TemplateCategory, WorkflowTemplate

DAYS_DEFAULT = 30
DAYS_MIN, DAYS_MAX = 7, 365
BASELINE_MAX_DAYS = 366
TREND_WEEKS = 26


class PeriodInvalid(ValueError):
    """A period the tenant asked for that cannot be measured: which field, and why."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.message = message
        self.field = field


# --- periods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def as_data(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "days": round(self.days, 2)}


@dataclass(frozen=True)
class GoLive:
    """The first publication of a logistics workflow: the day automation started to count."""

    definition_key: str
    definition_name: str
    template_key: str
    published_at: datetime


@dataclass(frozen=True)
class OutcomePeriods:
    now: Period
    baseline: Period
    days: int
    baseline_source: str  # "chosen", "go_live" or "before_now"
    go_live: GoLive | None
    time_zone: str

    @property
    def overlap(self) -> bool:
        """The baseline reaches into "now" (workflows went live recently): the change means little yet."""
        return self.baseline.end > self.now.start and self.baseline.start < self.now.end

    @property
    def overlap_ends(self) -> datetime:
        """When "now" no longer reaches back into the baseline."""
        return self.baseline.end + timedelta(days=self.days)

    @property
    def trend_start(self) -> datetime:
        """Monday 00:00 (tenant time) of the chart's first week: the baseline's start, but no more
        than TREND_WEEKS before now ends, and never after now starts."""
        start = min(max(self.baseline.start, self.now.end - timedelta(weeks=TREND_WEEKS)), self.now.start)
        return week_start(start, self.time_zone)


def tenant_zone(name: str) -> zoneinfo.ZoneInfo:
    """The tenant's zone; UTC when it is empty or unknown."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def week_start(moment: datetime, time_zone: str) -> datetime:
    zone = tenant_zone(time_zone)
    local = moment.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    return datetime.combine(monday, time(0), tzinfo=zone)


def go_live_first() -> GoLive | None:
    """The earliest publication of a definition cloned from a logistics template (any library
    category but "other"), whether that version is still the published one or not."""
    logistics_templates = WorkflowTemplate.objects.exclude(category=TemplateCategory.OTHER).values("key")
    first = (
        DefinitionVersion.objects.filter(published_at__isnull=False, definition__template_key__in=Subquery(logistics_templates))
        .select_related("definition")
        .order_by("published_at", "pk")
        .first()
    )
    if first is None or first.published_at is None:
        return None
    definition = first.definition
    return GoLive(definition.key, definition.name, definition.template_key, first.published_at)


def outcome_periods(
    *,
    time_zone: str,
    days: int = DAYS_DEFAULT,
    baseline_start: date | None = None,
    baseline_end: date | None = None,
    now: datetime | None = None,
) -> OutcomePeriods:
    """ "Now" is the last `days` days. The baseline runs from `baseline_start` to `baseline_end`
    (whole days in the tenant's time zone, both included) when both are given; otherwise the
    `days` days before the first logistics workflow went live, or before "now" when none has."""
    if not isinstance(days, int) or isinstance(days, bool) or not DAYS_MIN <= days <= DAYS_MAX:
        raise PeriodInvalid(f"the period is counted in days from {DAYS_MIN} to {DAYS_MAX}; {days!r} is not one of them", "days")
    now = now or timezone.now()
    zone = tenant_zone(time_zone)
    current = Period(now - timedelta(days=days), now)
    go_live = go_live_first()
    if baseline_start is not None or baseline_end is not None:
        if baseline_start is None or baseline_end is None:
            missing = "baseline_start" if baseline_start is None else "baseline_end"
            raise PeriodInvalid("a chosen baseline needs both its first and its last day", missing)
        if baseline_end < baseline_start:
            raise PeriodInvalid("the baseline's last day is before its first day", "baseline_end")
        today = now.astimezone(zone).date()
        if baseline_end > today:
            raise PeriodInvalid(f"the baseline must have happened: its last day is after today ({today.isoformat()})", "baseline_end")
        if (baseline_end - baseline_start).days + 1 > BASELINE_MAX_DAYS:
            raise PeriodInvalid(f"a baseline is at most {BASELINE_MAX_DAYS} days long", "baseline_start")
        start = datetime.combine(baseline_start, time(0), tzinfo=zone)
        end = datetime.combine(baseline_end + timedelta(days=1), time(0), tzinfo=zone)
        return OutcomePeriods(current, Period(start, min(end, now)), days, "chosen", go_live, zone.key)
    if go_live is not None:
        anchor = min(go_live.published_at, now)
        return OutcomePeriods(current, Period(anchor - timedelta(days=days), anchor), days, "go_live", go_live, zone.key)
    return OutcomePeriods(current, Period(current.start - timedelta(days=days), current.start), days, "before_now", None, zone.key)


# --- the metrics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One period's figures. `count` is what was measured (orders, exceptions closed, deliveries,
    customer invoices, matched invoices); durations are in seconds, rates are fractions (0–1)."""

    count: int = 0
    median: float | None = None
    p90: float | None = None
    rate: float | None = None
    hits: int | None = None  # on-time deliveries, disputed invoices
    rated: int | None = None  # the denominator of `rate`
    open: int | None = None  # exceptions open at the period's end
    unrated: int | None = None  # deliveries without a promise

    @property
    def value(self) -> float | None:
        """The headline figure: the median for durations, the rate for rates."""
        return self.rate if self.rated is not None else self.median


@dataclass(frozen=True)
class WeekPoint:
    week: date  # Monday, tenant time
    count: int
    value: float | None  # the week's median (durations) or rate (rates)


@dataclass(frozen=True)
class OutcomeMetric:
    key: str
    label: str
    unit: str  # "duration" (seconds) or "rate" (fraction)
    better: str  # "lower" or "higher"
    baseline: Figures
    now: Figures
    weeks: list[WeekPoint] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return bool(self.baseline.count or self.now.count or (self.now.open or 0) or (self.baseline.open or 0))


@dataclass(frozen=True)
class Outcomes:
    periods: OutcomePeriods
    metrics: list[OutcomeMetric]

    @property
    def has_data(self) -> bool:
        return any(metric.has_data for metric in self.metrics)


def _window(column: str) -> str:
    """The moments a metric reads (`column` between them): the baseline, and the chart's weeks
    up to now's end (which hold "now")."""
    return f"(({column} >= %(b_start)s AND {column} < %(b_end)s) OR ({column} >= %(t_start)s AND {column} < %(n_end)s))"


_AGGREGATES = """
    count(*) AS n, count(value) AS rated, sum(value) AS total,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY value) AS p90
"""


def _statement(samples: str, extra: str = "") -> str:
    """One statement: the samples (`at`, `value`) once, then the baseline's and now's figures and
    the weekly trend (weeks in the tenant's time zone, Monday first) as rows of one result."""
    return f"""
    WITH samples AS ({samples})
    SELECT 'baseline' AS part, NULL::date AS week, {_AGGREGATES}
      FROM samples WHERE at >= %(b_start)s AND at < %(b_end)s
    UNION ALL
    SELECT 'now', NULL::date, {_AGGREGATES}
      FROM samples WHERE at >= %(n_start)s AND at < %(n_end)s
    UNION ALL
    SELECT 'week', (date_trunc('week', at AT TIME ZONE %(tz)s))::date, {_AGGREGATES}
      FROM samples WHERE at >= %(t_start)s AND at < %(n_end)s
     GROUP BY 2
    {extra}
    """


def _params(periods: OutcomePeriods, **extra: Any) -> dict[str, Any]:
    return {
        "b_start": periods.baseline.start,
        "b_end": periods.baseline.end,
        "n_start": periods.now.start,
        "n_end": periods.now.end,
        "t_start": periods.trend_start,
        "tz": periods.time_zone,
        **extra,
    }


def _rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _figures(row: tuple[Any, ...] | None, *, rate: bool) -> Figures:
    if row is None:
        return Figures(rated=0 if rate else None)
    _part, _week, count, rated, total, p50, p90 = row[:7]
    if rate:
        hits = int(total or 0)
        return Figures(
            count=int(count),
            rate=(hits / rated) if rated else None,
            hits=hits,
            rated=int(rated),
            unrated=int(count) - int(rated),
        )
    return Figures(count=int(count), median=float(p50) if p50 is not None else None, p90=float(p90) if p90 is not None else None)


def _metric(
    key: str, label: str, unit: str, better: str, rows: list[tuple[Any, ...]], periods: OutcomePeriods, **extra: Any
) -> OutcomeMetric:
    rate = unit == "rate"
    parts = {row[0]: row for row in rows if row[0] != "week"}
    baseline, current = _figures(parts.get("baseline"), rate=rate), _figures(parts.get("now"), rate=rate)
    if "open_baseline" in parts:
        baseline = replace(baseline, open=int(parts["open_baseline"][2]))
        current = replace(current, open=int(parts["open_now"][2]))
    by_week = {row[1]: row for row in rows if row[0] == "week"}
    weeks = []
    monday = periods.trend_start.date()
    last = periods.now.end.astimezone(tenant_zone(periods.time_zone)).date()
    while monday <= last:
        row = by_week.get(monday)
        figures = _figures(row, rate=rate)
        weeks.append(WeekPoint(monday, figures.count, figures.value if row is not None else None))
        monday += timedelta(days=7)
    return OutcomeMetric(key, label, unit, better, baseline, current, weeks)


def order_cycle_time(periods: OutcomePeriods) -> OutcomeMetric:
    """Order received → first pickup of any of its shipments (see the module)."""
    samples = f"""
        SELECT firsts.picked_up_at AS at, GREATEST(EXTRACT(EPOCH FROM firsts.picked_up_at - o.created_at), 0)::float8 AS value
          FROM (
            SELECT so.order_id, MIN(e.occurred_at) AS picked_up_at
              FROM logistics_shipment_orders so
              JOIN logistics_trackingevent e ON e.shipment_id = so.shipment_id AND e.status = 'picked_up' AND NOT e.estimate
             WHERE so.order_id IN (
                SELECT candidate.order_id FROM logistics_trackingevent pickup
                  JOIN logistics_shipment_orders candidate ON candidate.shipment_id = pickup.shipment_id
                 WHERE pickup.status = 'picked_up' AND NOT pickup.estimate AND {_window("pickup.occurred_at")})
             GROUP BY so.order_id
          ) firsts
          JOIN logistics_order o ON o.id = firsts.order_id
    """
    samples = f"SELECT * FROM ({samples}) measured WHERE {_window('at')}"
    rows = _rows(_statement(samples), _params(periods))
    return _metric("order_cycle_time", "Order cycle time", "duration", "lower", rows, periods)


def exception_handling_time(periods: OutcomePeriods) -> OutcomeMetric:
    """Exception opened → closed, with the exceptions open at each period's end."""
    samples = f"""
        SELECT closed_at AS at, GREATEST(EXTRACT(EPOCH FROM closed_at - opened_at), 0)::float8 AS value
          FROM logistics_exceptioncase
         WHERE status = 'closed' AND closed_at IS NOT NULL AND {_window("closed_at")}
    """
    still_open = """
    UNION ALL
    SELECT 'open_baseline', NULL::date, count(*), NULL::bigint, NULL::float8, NULL::float8, NULL::float8
      FROM logistics_exceptioncase WHERE opened_at < %(b_end)s AND (closed_at IS NULL OR closed_at >= %(b_end)s)
    UNION ALL
    SELECT 'open_now', NULL::date, count(*), NULL::bigint, NULL::float8, NULL::float8, NULL::float8
      FROM logistics_exceptioncase WHERE opened_at < %(n_end)s AND (closed_at IS NULL OR closed_at >= %(n_end)s)
    """
    rows = _rows(_statement(samples, still_open), _params(periods))
    return _metric("exception_handling_time", "Exception handling time", "duration", "lower", rows, periods)


def on_time_delivery(periods: OutcomePeriods) -> OutcomeMetric:
    """Delivered within the promise plus the tier's grace; deliveries without a promise count apart."""
    # Set-based (the deliveries of the window, then their last delivery stops in one pass), so the
    # plan stays a few hash joins however many shipments there are.
    samples = f"""
        WITH delivered AS (
            SELECT id, customer_account_id, delivered_at, original_eta, original_eta_at FROM logistics_shipment
             WHERE delivered_at IS NOT NULL AND {_window("delivered_at")}
        ), last_delivery_stop AS (
            SELECT DISTINCT ON (stop.shipment_id) stop.shipment_id, COALESCE(stop.appointment_end, stop.appointment_start) AS promised_at
              FROM logistics_stop stop JOIN delivered ON delivered.id = stop.shipment_id
             WHERE stop.kind = 'delivery'
             ORDER BY stop.shipment_id, stop.sequence DESC
        ), promised AS (
            SELECT delivered.delivered_at,
                   COALESCE(last_delivery_stop.promised_at, CASE WHEN delivered.original_eta_at IS NULL THEN delivered.original_eta END)
                     + COALESCE(policy.on_time_grace, %(grace)s) AS due_at
              FROM delivered
              JOIN logistics_customeraccount account ON account.id = delivered.customer_account_id
              LEFT JOIN logistics_slapolicy policy ON policy.service_tier = account.service_tier
              LEFT JOIN last_delivery_stop ON last_delivery_stop.shipment_id = delivered.id
        )
        SELECT delivered_at AS at, CASE WHEN due_at IS NULL THEN NULL WHEN delivered_at <= due_at THEN 1 ELSE 0 END AS value
          FROM promised
    """
    rows = _rows(_statement(samples), _params(periods, grace=SlaPolicy().on_time_grace))
    return _metric("on_time_delivery", "On-time delivery", "rate", "higher", rows, periods)


def pod_to_invoice_lag(periods: OutcomePeriods) -> OutcomeMetric:
    """A shipment's first POD received → each customer invoice produced for it."""
    samples = f"""
        WITH invoices AS (
            SELECT shipment_id, received_at FROM logistics_document
             WHERE kind = 'invoice' AND shipment_id IS NOT NULL AND jsonb_exists(extracted_fields, 'customer_invoice')
               AND {_window("received_at")}
        ), first_pods AS (
            SELECT shipment_id, MIN(received_at) AS received_at FROM logistics_document
             WHERE kind = 'pod' AND shipment_id IN (SELECT shipment_id FROM invoices)
             GROUP BY shipment_id
        )
        SELECT invoices.received_at AS at, GREATEST(EXTRACT(EPOCH FROM invoices.received_at - first_pods.received_at), 0)::float8 AS value
          FROM invoices JOIN first_pods ON first_pods.shipment_id = invoices.shipment_id
    """
    rows = _rows(_statement(samples), _params(periods))
    return _metric("pod_to_invoice_lag", "POD-to-invoice lag", "duration", "lower", rows, periods)


def dispute_rate(periods: OutcomePeriods) -> OutcomeMetric:
    """Disputed among the matched carrier invoices received in the period."""
    samples = f"""
        SELECT received_at AS at, CASE WHEN match_status IN ('disputed', 'mismatch') THEN 1 ELSE 0 END AS value
          FROM logistics_freightinvoice
         WHERE match_status <> 'unmatched' AND {_window("received_at")}
    """
    rows = _rows(_statement(samples), _params(periods))
    return _metric("dispute_rate", "Dispute rate", "rate", "lower", rows, periods)


METRICS = (order_cycle_time, exception_handling_time, on_time_delivery, pod_to_invoice_lag, dispute_rate)


def outcomes(periods: OutcomePeriods) -> Outcomes:
    """The five outcome metrics for the periods, in the current tenant's schema."""
    return Outcomes(periods, [metric(periods) for metric in METRICS])
