"""The outcome selectors against real logistics rows: known durations give exact medians and
percentiles, periods are half-open, an empty tenant reads as "nothing measured", and the default
baseline follows the first logistics workflow's go-live."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from insights.presentation import change, outcomes_data, trend_chart
from insights.selectors import (
    PeriodInvalid,
    dispute_rate,
    exception_handling_time,
    on_time_delivery,
    order_cycle_time,
    outcome_periods,
    outcomes,
    pod_to_invoice_lag,
)
from logistics.invoicing import customer_invoice_produce, invoice_match
from logistics.models import Document, FreightInvoice, SlaPolicy
from tests.insights.conftest import (
    NOW,
    SYSTEM,
    account,
    carrier_invoice,
    days_ago,
    delivered,
    document_at,
    event,
    exception_handled,
    order_picked_up,
    shipment_make,
)

pytestmark = pytest.mark.django_db
HOUR = 3600.0


def periods(days: int = 30, time_zone: str = "UTC", **baseline):
    """Now = the 30 days before NOW; the baseline, unless given, 60 to 30 days before it (no go-live)."""
    return outcome_periods(time_zone=time_zone, days=days, now=NOW, **baseline)


BASELINE = {"baseline_start": date(2026, 3, 1), "baseline_end": date(2026, 3, 30)}  # 1–30 March, in UTC


def test_order_cycle_time_is_receipt_to_first_pickup_with_exact_median_and_p90(acme, places):
    # Now: 2 h, 4 h and 9 h; one order on two shipments counts once, at its first pickup (3 h).
    for hours in (2, 4, 9):
        order_picked_up(acme, places, received=days_ago(10), picked_up=days_ago(10) + timedelta(hours=hours))
    order_picked_up(acme, places, received=days_ago(5), picked_up=[days_ago(5) + timedelta(hours=5), days_ago(5) + timedelta(hours=3)])
    # Baseline (March): 10 h and 20 h.
    order_picked_up(acme, places, received=days_ago(80), picked_up=days_ago(80) + timedelta(hours=10))
    order_picked_up(acme, places, received=days_ago(75), picked_up=days_ago(75) + timedelta(hours=20))
    # Neither: picked up before the baseline; an estimate of a pickup is not a pickup.
    order_picked_up(acme, places, received=days_ago(200), picked_up=days_ago(200) + timedelta(hours=1))
    with_estimate = order_picked_up(acme, places, received=days_ago(3), picked_up=[])
    shipment = shipment_make(acme, places, orders=[with_estimate])
    event(shipment, "picked_up", days_ago(2), estimate=True)

    metric = order_cycle_time(periods(**BASELINE))

    assert metric.now.count == 4
    assert metric.now.median == pytest.approx(3.5 * HOUR)  # 2, 3, 4, 9 h
    assert metric.now.p90 == pytest.approx(7.5 * HOUR)  # 4 + 0.7 × (9 − 4)
    assert metric.baseline.count == 2 and metric.baseline.median == pytest.approx(15 * HOUR)
    moved = change(metric)
    assert moved.direction == "better" and moved.label == "Better"
    assert moved.summary == "11.5 h shorter than the baseline (-77%)."


def test_exception_handling_time_counts_closed_cases_and_those_open_at_each_periods_end(acme):
    for hours in (1, 3, 8):  # now
        exception_handled(acme, opened=days_ago(8, hours), closed=days_ago(8))
    exception_handled(acme, opened=days_ago(70, 2), closed=days_ago(70))  # baseline: 2 h
    still_open = exception_handled(acme, opened=days_ago(70), closed=None)  # open at both ends
    exception_handled(acme, opened=days_ago(66), closed=days_ago(20))  # open at the baseline's end, closed now: 46 days

    metric = exception_handling_time(periods(**BASELINE))

    assert metric.now.count == 4 and metric.now.median == pytest.approx(5.5 * HOUR)  # 1, 3, 8 h and 46 days
    assert metric.baseline.count == 1 and metric.baseline.median == pytest.approx(2 * HOUR)
    assert (metric.baseline.open, metric.now.open) == (2, 1)
    assert still_open.closed_at is None
    assert change(metric).direction == "worse" and "longer than the baseline" in change(metric).summary


def test_on_time_delivery_uses_the_appointment_else_the_planned_eta_plus_the_tiers_grace(acme, places):
    promised = days_ago(12)
    delivered(acme, places, at=promised + timedelta(minutes=20), appointment_end=promised)  # within the 30-min grace
    delivered(acme, places, at=promised + timedelta(minutes=45), appointment_end=promised)  # late
    delivered(acme, places, at=promised - timedelta(hours=2), eta=promised)  # planned ETA, early
    delivered(acme, places, at=promised)  # no promise at all: counted apart
    delivered(acme, places, at=days_ago(70) + timedelta(hours=1), appointment_end=days_ago(70))  # baseline: late

    metric = on_time_delivery(periods(**BASELINE))

    assert (metric.now.count, metric.now.rated, metric.now.hits, metric.now.unrated) == (4, 3, 2, 1)
    assert metric.now.rate == pytest.approx(2 / 3)
    assert (metric.baseline.hits, metric.baseline.rated) == (0, 1) and metric.baseline.rate == 0
    assert change(metric).direction == "better" and change(metric).summary == "66.7 points higher than the baseline (0.0% → 66.7%)."

    # A tier with no grace makes the 20-minute delivery late.
    SlaPolicy.objects.update_or_create(service_tier=account(acme).service_tier, defaults={"on_time_grace": timedelta(0)})
    assert on_time_delivery(periods(**BASELINE)).now.hits == 1


def test_pod_to_invoice_lag_runs_from_the_first_pod_to_the_customer_invoice_produced(acme, places):
    # One real customer invoice: an approved match, then customer_invoice_produce (WeasyPrint).
    billed = shipment_make(acme, places, planned_rate="1000.00")
    document_at(billed, "pod", days_ago(9))
    document_at(billed, "pod", days_ago(8))  # a second POD does not restart the clock
    approved = invoice_match(invoice=carrier_invoice(billed, received=days_ago(8)), actor=SYSTEM).invoice
    produced = customer_invoice_produce(invoice=approved, actor=SYSTEM).document
    Document.objects.filter(pk=produced.pk).update(received_at=days_ago(9) + timedelta(hours=6))
    # Two more lags of 2 h and 30 h, recorded the way customer_invoice_produce records them.
    for hours in (2, 30):
        shipment = shipment_make(acme, places)
        document_at(shipment, "pod", days_ago(4))
        document_at(shipment, "invoice", days_ago(4) + timedelta(hours=hours), customer_invoice=f"INV-{shipment.pk}")
    # Not a customer invoice (the carrier's own paper), and an invoice without a POD: neither counts.
    carriers_paper = shipment_make(acme, places)
    document_at(carriers_paper, "pod", days_ago(3))
    document_at(carriers_paper, "invoice", days_ago(2))
    document_at(shipment_make(acme, places), "invoice", days_ago(2), customer_invoice="INV-X")

    metric = pod_to_invoice_lag(periods(**BASELINE))

    assert metric.now.count == 3 and metric.now.median == pytest.approx(6 * HOUR)  # 2, 6, 30 h
    assert metric.baseline.count == 0 and metric.baseline.median is None
    assert change(metric).direction == "unknown" and change(metric).summary == "No comparison yet: the baseline has no customer invoices."


def test_dispute_rate_is_disputed_among_matched_invoices_received_in_the_period(acme, places):
    for index in range(3):
        shipment = shipment_make(acme, places, planned_rate="1000.00")
        invoice_match(invoice=carrier_invoice(shipment, received=days_ago(6 + index)), actor=SYSTEM)  # approved
    disputed = shipment_make(acme, places, planned_rate="1000.00")
    verdict = invoice_match(
        invoice=carrier_invoice(disputed, received=days_ago(5), charges=(("linehaul", "1000.00"), ("layover", "250.00"))), actor=SYSTEM
    )
    assert verdict.invoice.match_status == "disputed"
    carrier_invoice(shipment_make(acme, places), received=days_ago(4))  # not matched yet: left out
    for status, received in (("disputed", days_ago(70)), ("approved", days_ago(71))):
        invoice = carrier_invoice(shipment_make(acme, places), received=received)
        FreightInvoice.objects.filter(pk=invoice.pk).update(match_status=status)

    metric = dispute_rate(periods(**BASELINE))

    assert (metric.now.hits, metric.now.rated) == (1, 4) and metric.now.rate == pytest.approx(0.25)
    assert (metric.baseline.hits, metric.baseline.rated) == (1, 2) and metric.baseline.rate == pytest.approx(0.5)
    assert change(metric).direction == "better" and "25.0 points lower" in change(metric).summary


def test_periods_are_half_open_at_both_ends(acme):
    chosen = periods(**BASELINE)
    assert chosen.now.start == NOW - timedelta(days=30) and chosen.now.end == NOW
    # On the first instant of a period: in it. On the instant a period ends: in the next, or in none.
    exception_handled(acme, opened=chosen.now.start - timedelta(hours=1), closed=chosen.now.start)
    exception_handled(acme, opened=chosen.baseline.end - timedelta(hours=2), closed=chosen.baseline.end)
    exception_handled(acme, opened=chosen.baseline.start - timedelta(hours=3), closed=chosen.baseline.start)
    exception_handled(acme, opened=NOW - timedelta(hours=4), closed=NOW)

    metric = exception_handling_time(chosen)

    assert metric.now.count == 1 and metric.now.median == pytest.approx(HOUR)
    assert metric.baseline.count == 1 and metric.baseline.median == pytest.approx(3 * HOUR)


def test_weeks_follow_the_tenants_time_zone_and_the_trend_shows_them(acme):
    chicago = periods(time_zone="America/Chicago", **BASELINE)
    # Monday 25 May 2026 03:00 UTC is still Sunday 24 May in Chicago: the week of 18 May.
    exception_handled(acme, opened=NOW.replace(month=5, day=25, hour=1), closed=NOW.replace(month=5, day=25, hour=3))
    exception_handled(acme, opened=NOW.replace(month=5, day=25, hour=7), closed=NOW.replace(month=5, day=25, hour=11))

    metric = exception_handling_time(chicago)

    weeks = {week.week: (week.count, week.value) for week in metric.weeks if week.count}
    assert weeks == {date(2026, 5, 18): (1, 2 * HOUR), date(2026, 5, 25): (1, 4 * HOUR)}
    assert metric.weeks[0].week == date(2026, 2, 23) and metric.weeks[-1].week == date(2026, 6, 1)
    assert all(week.week.weekday() == 0 for week in metric.weeks)
    chart = trend_chart(metric, chicago)
    assert len(chart.points) == 2 and chart.path.startswith("M") and chart.now_x is not None
    assert "2 of 15 weeks measured" in chart.summary


def test_an_empty_tenant_has_nothing_measured_and_says_so(world, db):
    with schema_context(world.globex.schema):
        result = outcomes(periods())
    assert not result.has_data
    for metric in result.metrics:
        assert (metric.baseline.count, metric.now.count) == (0, 0)
        assert metric.now.value is None and metric.baseline.value is None
        assert change(metric).direction == "unknown"
        assert all(week.value is None for week in metric.weeks)
    exceptions = next(metric for metric in result.metrics if metric.key == "exception_handling_time")
    assert (exceptions.baseline.open, exceptions.now.open) == (0, 0)
    data = outcomes_data(result)
    assert [metric["key"] for metric in data["metrics"]] == [
        "order_cycle_time",
        "exception_handling_time",
        "on_time_delivery",
        "pod_to_invoice_lag",
        "dispute_rate",
    ]
    assert data["baseline"]["source"] == "before_now" and data["baseline"]["go_live"] is None


def test_each_metric_is_one_query(acme, places):
    order_picked_up(acme, places, received=days_ago(3), picked_up=days_ago(3) + timedelta(hours=1))
    chosen = periods(**BASELINE)
    for metric in (order_cycle_time, exception_handling_time, on_time_delivery, pod_to_invoice_lag, dispute_rate):
        with CaptureQueriesContext(db_connection) as queries:
            metric(chosen)
        assert len(queries) == 1, (metric.__name__, [query["sql"][:80] for query in queries])


# --- the baseline ------------------------------------------------------------------------------


def _logistics_definition_published(tenant_world, *, category: str, published_at):
    """A definition of a library template of `category`, its first version published at `published_at`."""
    import uuid

    from workflows.models import DefinitionVersion
    from workflows.services import (
        definition_clone,
        definition_version_publish,
        definition_version_submit,
        template_create,
        template_version_publish,
    )

    spec = {
        "start": "done",
        "triggers": [{"kind": "manual"}],
        "steps": [{"id": "done", "kind": "end", "outcome": "succeeded"}],
    }
    with schema_context("public"):
        template = template_create(
            key=f"ins-{uuid.uuid4().hex[:10]}", name="Insights probe", category=category, description="", partner_id=None, actor=SYSTEM
        )
        version = template_version_publish(
            template=template,
            version="1.0.0",
            definition=spec,
            parameters_schema={"type": "object"},
            documentation="",
            changelog="",
            actor=SYSTEM,
        )
    admin = tenant_world.users["tenant_admin"]
    with schema_context(tenant_world.schema):
        definition = definition_clone(
            template_version=version,
            key=f"ins-{uuid.uuid4().hex[:10]}",
            name=f"{category} flow",
            parameters={},
            connection_bindings={},
            actor=admin,
        )
        draft = DefinitionVersion.objects.get(definition=definition, number=1)
        definition_version_submit(version=draft, actor=admin)
        definition_version_publish(version=draft, actor=admin)
        DefinitionVersion.objects.filter(pk=draft.pk).update(published_at=published_at)
    return definition


def test_the_default_baseline_is_the_days_before_the_first_logistics_workflow_went_live(world, db):
    with schema_context(world.acme.schema):
        before = periods()
    assert before.baseline_source == "before_now" and before.go_live is None
    assert (before.baseline.start, before.baseline.end) == (NOW - timedelta(days=60), NOW - timedelta(days=30))

    _logistics_definition_published(world.acme, category="other", published_at=days_ago(200))  # not a logistics workflow
    first = _logistics_definition_published(world.acme, category="billing", published_at=days_ago(100))
    _logistics_definition_published(world.acme, category="orders", published_at=days_ago(90))

    with schema_context(world.acme.schema):
        anchored = periods(days=14)
    assert anchored.baseline_source == "go_live" and anchored.go_live is not None
    assert anchored.go_live.definition_key == first.key and anchored.go_live.published_at == days_ago(100)
    assert (anchored.baseline.start, anchored.baseline.end) == (days_ago(114), days_ago(100))
    assert not anchored.overlap
    with schema_context(world.globex.schema):
        assert periods().go_live is None  # another tenant's go-live is not Globex's


def test_a_recent_go_live_overlaps_now_and_a_chosen_baseline_wins(world, db):
    _logistics_definition_published(world.acme, category="exceptions", published_at=days_ago(10))
    with schema_context(world.acme.schema):
        recent = periods()
        chosen = periods(**BASELINE)
    assert recent.overlap and recent.overlap_ends == days_ago(10) + timedelta(days=30)
    assert chosen.baseline_source == "chosen" and not chosen.overlap
    assert chosen.baseline.start.isoformat() == "2026-03-01T00:00:00+00:00"
    assert chosen.baseline.end.isoformat() == "2026-03-31T00:00:00+00:00"  # the last day included


@pytest.mark.parametrize(
    ("asked", "field", "message"),
    [
        ({"days": 3}, "days", "the period is counted in days from 7 to 365; 3 is not one of them"),
        ({"baseline_start": date(2026, 3, 1)}, "baseline_end", "a chosen baseline needs both its first and its last day"),
        (
            {"baseline_start": date(2026, 3, 9), "baseline_end": date(2026, 3, 1)},
            "baseline_end",
            "the baseline's last day is before its first day",
        ),
        (
            {"baseline_start": date(2026, 5, 1), "baseline_end": date(2026, 6, 2)},
            "baseline_end",
            "the baseline must have happened: its last day is after today (2026-06-01)",
        ),
        ({"baseline_start": date(2024, 1, 1), "baseline_end": date(2025, 6, 1)}, "baseline_start", "a baseline is at most 366 days long"),
    ],
)
def test_periods_that_cannot_be_measured_are_refused_with_the_field_and_the_reason(world, db, asked, field, message):
    with schema_context(world.acme.schema), pytest.raises(PeriodInvalid) as refused:
        periods(**asked)
    assert (refused.value.field, refused.value.message) == (field, message)


def test_an_invoice_matched_within_tolerance_counts_as_matched_not_disputed(acme, places):
    shipment = shipment_make(acme, places, planned_rate="1000.00")
    invoice = carrier_invoice(shipment, received=days_ago(2), charges=(("linehaul", "1010.00"),))
    assert invoice_match(invoice=invoice, actor=SYSTEM).match.result == "within_tolerance"
    metric = dispute_rate(periods(**BASELINE))
    assert (metric.now.hits, metric.now.rated) == (0, 1) and metric.now.rate == 0
