"""`/metrics`: the inbox gauges – lag (age of the oldest dispatch row), dispatches pending,
quarantine size – read at scrape time over every ready tenant, with no label at all; down
rather than partial when the read fails or runs out of time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from connectors import metrics as inbox_metrics
from connectors.models import Connection, EventDispatch, InboundEvent
from tenants.gauges import GaugesUnavailable
from tests.workflows.test_metrics import gauge, scrape

pytestmark = pytest.mark.django_db

GAUGES = ("baton_inbox_lag_seconds", "baton_inbox_dispatches_pending", "baton_inbox_quarantined_events")


def _events(tenant_world, *, waiting_since: list[timedelta], quarantined: int) -> None:
    """Events waiting to be handed on (each stored `waiting_since` ago) and quarantined ones."""
    now = timezone.now()
    with schema_context(tenant_world.schema):
        connection = Connection.objects.create(
            key="metrics-probe", name="Metrics probe", kind="carrier", base_url="https://carrier.example"
        )
        for index, age in enumerate(waiting_since):
            event = InboundEvent.objects.create(connection=connection, external_id=f"wait-{index}", body="{}", received_at=now - age)
            EventDispatch.objects.create(event=event, created_at=now - age)
        for index in range(quarantined):
            InboundEvent.objects.create(
                connection=connection, external_id=f"bad-{index}", body="{}", received_at=now, status="quarantined", error="no event id"
            )


def test_the_gauges_add_up_every_ready_tenant_and_the_lag_is_the_oldest_dispatch(world):
    before, _families = scrape()
    assert gauge(before, "baton_inbox_gauges_up") == 1
    _events(world.acme, waiting_since=[timedelta(hours=2), timedelta(seconds=5)], quarantined=1)
    _events(world.globex, waiting_since=[timedelta(minutes=3)], quarantined=2)

    samples, _families = scrape()

    assert gauge(samples, "baton_inbox_gauges_up") == 1
    assert gauge(samples, "baton_inbox_dispatches_pending") == gauge(before, "baton_inbox_dispatches_pending") + 3
    assert gauge(samples, "baton_inbox_quarantined_events") == gauge(before, "baton_inbox_quarantined_events") + 3
    assert 7200 <= gauge(samples, "baton_inbox_lag_seconds") < 7260


def test_no_inbox_series_carries_a_label(world):
    _events(world.acme, waiting_since=[timedelta(seconds=30)], quarantined=1)
    samples, families = scrape(world.acme.host)  # from a tenant's host too: totals, not that tenant's
    inbox = [family for family in families if family.name in {"baton_inbox_gauges_up", *GAUGES}]
    assert len(inbox) == 1 + len(GAUGES)
    assert all(sample.labels == {} for family in inbox for sample in family.samples)
    assert gauge(samples, "baton_inbox_lag_seconds") >= 30


def test_the_gauges_past_the_time_limit_report_down_instead_of_partial_totals(world, monkeypatch):
    monkeypatch.setattr(inbox_metrics, "TIME_LIMIT_SECONDS", 0)
    samples, families = scrape()
    assert gauge(samples, "baton_inbox_gauges_up") == 0
    assert not {family.name for family in families} & set(GAUGES)
    with pytest.raises(GaugesUnavailable, match="time limit"):
        inbox_metrics.inbox_gauges_read(schemas=[world.acme.schema], time_limit=0)


def test_a_tenant_whose_tables_cannot_be_read_takes_the_gauges_down(world, monkeypatch):
    monkeypatch.setattr(inbox_metrics, "ready_schemas", lambda: [world.acme.schema, "no_such_schema"])
    samples, families = scrape()
    assert gauge(samples, "baton_inbox_gauges_up") == 0 and not {family.name for family in families} & set(GAUGES)
    assert gauge(samples, "baton_workflow_gauges_up") == 1  # the engine's gauges are read on their own


def test_the_gauges_refuse_a_schema_name_that_is_not_one_of_ours(world):
    with pytest.raises(GaugesUnavailable, match="unexpected schema name"):
        inbox_metrics.inbox_gauges_read(schemas=['t_acme"; DROP TABLE x; --'])
