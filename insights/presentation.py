"""How the outcome metrics read to people and machines: their definitions, values in words, the
change against the baseline (better or worse, in words as well as colour), the weekly trend as an
inline SVG laid out here (no script, no outside files), and the JSON the API answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from insights.selectors import OutcomeMetric, OutcomePeriods, Outcomes, tenant_zone


@dataclass(frozen=True)
class MetricInfo:
    definition: str
    measured: str  # what one sample is, plural: "orders picked up"
    hits: str  # for rates: what the numerator's samples are ("on time")
    templates: tuple[str, ...]  # library templates whose runs produce the data
    empty: str  # what to do when there is nothing to measure


METRIC_INFO: dict[str, MetricInfo] = {
    "order_cycle_time": MetricInfo(
        "From the order's receipt in Baton to the first pickup of any of its shipments (the freight "
        "leaving the dock). Counted in the period of the pickup; median and 90th percentile.",
        "orders picked up",
        "",
        ("order-to-shipment-release", "carrier-exception-management"),
        "Orders arrive through Order to shipment release; pickups through carriers' tracking events (EDI 214 or a carrier API).",
    ),
    "exception_handling_time": MetricInfo(
        "From an exception's opening to its closing, counted in the period it was closed in; "
        "median and 90th percentile, with the exceptions still open at the period's end.",
        "exceptions closed",
        "",
        ("carrier-exception-management", "order-to-shipment-release", "pod-to-invoice"),
        "Exceptions are opened by Carrier exception management (delays, missed pickups), order release and the invoice match.",
    ),
    "on_time_delivery": MetricInfo(
        "Shipments delivered in the period whose delivery is no later than the promise – the last "
        "delivery appointment, else the planned ETA – plus the customer tier's on-time grace. "
        "Deliveries without a promise are counted apart.",
        "deliveries with a promise",
        "on time",
        ("carrier-exception-management",),
        "Deliveries arrive as carriers' tracking events; give shipments a delivery appointment or a planned ETA to judge them.",
    ),
    "pod_to_invoice_lag": MetricInfo(
        "From the first proof of delivery received for a shipment to the customer invoice produced "
        "for it, counted in the period the invoice was produced in; median.",
        "customer invoices",
        "",
        ("pod-to-invoice",),
        "Customer invoices are produced by Proof of delivery to invoice once the carrier's invoice matches.",
    ),
    "dispute_rate": MetricInfo(
        "Carrier invoices received in the period and matched against the tender and the POD: the "
        "share disputed. Invoices still waiting for their match are left out.",
        "invoices matched",
        "disputed",
        ("pod-to-invoice",),
        "Carrier invoices (EDI 210 or the API) are matched by Proof of delivery to invoice.",
    ),
}


def template_names() -> dict[str, str]:
    """The domain templates' names by key, for the 'what produces this' lines."""
    from logistics.library import domain_templates

    return {template["key"]: template["name"] for template in domain_templates()}


# --- values in words -------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 10 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest:02d} min" if rest else f"{hours} h"
    if minutes < 48 * 60:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def value_text(unit: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.1f}%" if unit == "rate" else duration_text(value)


@dataclass(frozen=True)
class Change:
    direction: str  # "better", "worse", "unchanged" or "unknown"
    label: str  # the word beside the colour
    summary: str

    @property
    def badge(self) -> str:
        return {"better": "badge--ok", "worse": "badge--danger"}.get(self.direction, "badge--muted")


def change(metric: OutcomeMetric) -> Change:
    """Now against the baseline, in words: which way it moved, by how much, and whether that is good."""
    before, after = metric.baseline.value, metric.now.value
    if before is None or after is None:
        missing = "the baseline" if before is None else "this period"
        noun = METRIC_INFO[metric.key].measured
        return Change("unknown", "No comparison", f"No comparison yet: {missing} has no {noun}.")
    if metric.unit == "rate":
        points = (after - before) * 100
        if abs(points) < 0.05:
            return Change("unchanged", "No change", f"The same as the baseline ({value_text('rate', before)}).")
        went = "higher" if points > 0 else "lower"
        summary = f"{abs(points):.1f} points {went} than the baseline ({value_text('rate', before)} → {value_text('rate', after)})."
    else:
        difference = after - before
        if abs(difference) < 60 or (before and abs(difference) / before < 0.005):
            return Change("unchanged", "No change", f"About the same as the baseline ({duration_text(before)}).")
        went = "longer" if difference > 0 else "shorter"
        percent = f" ({difference / before * 100:+.0f}%)" if before else ""
        summary = f"{duration_text(abs(difference))} {went} than the baseline{percent}."
    improved = (after < before) if metric.better == "lower" else (after > before)
    return Change("better", "Better", summary) if improved else Change("worse", "Worse", summary)


# --- the weekly trend as SVG -----------------------------------------------------------------

WIDTH, HEIGHT = 300, 112
LEFT, RIGHT, TOP, BOTTOM = 6, 294, 22, 86  # labels above TOP and below BOTTOM


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class TrendChart:
    """Coordinates for templates/insights/_trend.html (viewBox WIDTH × HEIGHT)."""

    width: int
    height: int
    path: str  # the line, broken where a week has nothing to measure
    points: list[ChartPoint]
    now_x: float | None  # where "now" starts (shaded to the right)
    now_width: float
    baseline_y: float | None  # the baseline's value as a dashed line
    top_label: str
    first_label: str
    last_label: str
    summary: str  # for screen readers
    weeks: list[dict[str, Any]]  # the same values as a table

    @property
    def plot_bottom(self) -> int:
        return BOTTOM

    @property
    def plot_left(self) -> int:
        return LEFT

    @property
    def plot_right(self) -> int:
        return RIGHT


def _day(moment: date) -> str:
    return f"{moment.day} {moment:%b}"


def trend_chart(metric: OutcomeMetric, periods: OutcomePeriods) -> TrendChart:
    weeks = metric.weeks
    values = [week.value for week in weeks if week.value is not None]
    reference = metric.baseline.value
    ceiling = max([*values, *([reference] if reference is not None else []), 0.0])
    # Rates up to 100%; durations at least an hour high, so a flat line of minutes stays low.
    ceiling = min(max(ceiling * 1.15, 0.05), 1.0) if metric.unit == "rate" else max(ceiling * 1.15, 3600.0)
    step = (RIGHT - LEFT) / max(len(weeks) - 1, 1)

    def y_of(value: float) -> float:
        return round(BOTTOM - (value / ceiling) * (BOTTOM - TOP), 1)

    points: list[ChartPoint] = []
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for index, week in enumerate(weeks):
        if week.value is None:
            if current:
                segments.append(current)
            current = []
            continue
        x = round(LEFT + index * step, 1) if len(weeks) > 1 else (LEFT + RIGHT) / 2
        y = y_of(week.value)
        current.append((x, y))
        points.append(
            ChartPoint(
                x, y, f"Week of {_day(week.week)}: {value_text(metric.unit, week.value)} ({week.count} {METRIC_INFO[metric.key].measured})"
            )
        )
    if current:
        segments.append(current)
    path = " ".join("M" + " L".join(f"{x},{y}" for x, y in segment) for segment in segments)
    zone = tenant_zone(periods.time_zone)
    now_first = periods.now.start.astimezone(zone).date()
    now_index = next((index for index, week in enumerate(weeks) if week.week + timedelta(days=7) > now_first), None)
    now_x = None if now_index is None else round(max(LEFT + now_index * step - step / 2, LEFT), 1)
    label_unit = value_text(metric.unit, ceiling)
    measured = [week for week in weeks if week.value is not None]
    if measured:
        best = min if metric.better == "lower" else max
        top = best(measured, key=lambda week: week.value or 0)
        summary = (
            f"Weekly {metric.label.lower()} from the week of {_day(weeks[0].week)} to the week of {_day(weeks[-1].week)}: "
            f"{len(measured)} of {len(weeks)} weeks measured, the best {value_text(metric.unit, top.value)} in the week of {_day(top.week)}, "
            f"the latest {value_text(metric.unit, measured[-1].value)}."
        )
    else:
        summary = f"No weeks measured for {metric.label.lower()} yet."
    return TrendChart(
        width=WIDTH,
        height=HEIGHT,
        path=path,
        points=points,
        now_x=now_x,
        now_width=round(RIGHT - now_x, 1) if now_x is not None else 0,
        baseline_y=y_of(reference) if reference is not None else None,
        top_label=label_unit,
        first_label=_day(weeks[0].week) if weeks else "",
        last_label=_day(weeks[-1].week) if weeks else "",
        summary=summary,
        weeks=[
            {"week": week.week, "count": week.count, "value": value_text(metric.unit, week.value) if week.value is not None else "–"}
            for week in weeks
        ],
    )


# --- what the page and the API show ----------------------------------------------------------


@dataclass(frozen=True)
class MetricCard:
    metric: OutcomeMetric
    info: MetricInfo
    change: Change
    chart: TrendChart
    baseline_text: str
    now_text: str
    baseline_p90: str
    now_p90: str
    templates: list[tuple[str, str]]  # (key, name)

    @property
    def value_name(self) -> str:
        return "median" if self.metric.unit == "duration" else "share"


def metric_cards(outcomes: Outcomes) -> list[MetricCard]:
    names = template_names()
    cards = []
    for metric in outcomes.metrics:
        info = METRIC_INFO[metric.key]
        cards.append(
            MetricCard(
                metric=metric,
                info=info,
                change=change(metric),
                chart=trend_chart(metric, outcomes.periods),
                baseline_text=value_text(metric.unit, metric.baseline.value),
                now_text=value_text(metric.unit, metric.now.value),
                baseline_p90=duration_text(metric.baseline.p90) if metric.unit == "duration" else "",
                now_p90=duration_text(metric.now.p90) if metric.unit == "duration" else "",
                templates=[(key, names.get(key, key)) for key in info.templates],
            )
        )
    return cards


def _figures_data(metric: OutcomeMetric, which: str) -> dict[str, Any]:
    figures = getattr(metric, which)
    data: dict[str, Any] = {"count": figures.count}
    if metric.unit == "rate":
        data |= {"rate": figures.rate, "hits": figures.hits, "rated": figures.rated}
        if metric.key == "on_time_delivery":
            data["without_promise"] = figures.unrated
    else:
        data |= {"median_seconds": figures.median, "p90_seconds": figures.p90}
    if figures.open is not None:
        data["open_at_end"] = figures.open
    return data


def outcomes_data(outcomes: Outcomes) -> dict[str, Any]:
    """The API's answer: the periods and, per metric, both periods' figures, the change and the weeks."""
    periods = outcomes.periods
    go_live = periods.go_live
    return {
        "time_zone": periods.time_zone,
        "now": periods.now.as_data(),
        "baseline": {
            **periods.baseline.as_data(),
            "source": periods.baseline_source,
            "go_live": None
            if go_live is None
            else {
                "definition": go_live.definition_key,
                "name": go_live.definition_name,
                "template": go_live.template_key,
                "published_at": go_live.published_at.isoformat(),
            },
        },
        "periods_overlap": periods.overlap,
        "metrics": [
            {
                "key": metric.key,
                "label": metric.label,
                "unit": "seconds" if metric.unit == "duration" else "fraction",
                "better": metric.better,
                "definition": METRIC_INFO[metric.key].definition,
                "baseline": _figures_data(metric, "baseline"),
                "now": _figures_data(metric, "now"),
                "change": {"direction": (moved := change(metric)).direction, "summary": moved.summary},
                "weeks": [{"week": week.week.isoformat(), "count": week.count, "value": week.value} for week in metric.weeks],
            }
            for metric in outcomes.metrics
        ],
    }
