"""The portal bench at a tiny scale: its set-based seeding makes the shape it promises (counts,
skewed accounts, consistent ids), and every page it measures answers 200 with the rows the
database says it must show – so the figures `make bench` reports are for right answers."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from accounts.models import User
from bench import portal
from logistics.models import Document, ExceptionCase, Order, Shipment, Stop, TrackingEvent
from tests.conftest import host_client, signed_in_client

pytestmark = pytest.mark.django_db

SHIPMENTS = 300
CUSTOMERS = 12


def test_the_seed_makes_the_promised_shape_and_every_measured_page_shows_the_right_rows(world):
    acme = world.acme
    seeded = portal.seed(acme.schema, shipments=SHIPMENTS, customers=CUSTOMERS, chunk=120, vacuum=False, progress=False, prefix="PB")

    assert seeded.counts["shipment"] == SHIPMENTS
    assert seeded.counts["trackingevent"] == SHIPMENTS * portal.EVENTS_PER_SHIPMENT
    with schema_context(acme.schema):
        seeded_shipments = Shipment.objects.filter(reference__startswith="PB")
        assert seeded_shipments.count() == SHIPMENTS
        per_account = Counter(seeded_shipments.values_list("customer_account_id", flat=True))
        biggest, *_rest = per_account.most_common()
        assert biggest[0] == seeded.customer_ids[0] and biggest[1] > 3 * SHIPMENTS / CUSTOMERS  # a few big shippers
        assert Stop.objects.filter(shipment__in=seeded_shipments, sequence__in=(1, 2)).count() == 2 * SHIPMENTS
        # Each shipment's status is its own last event's, by id.
        last = seeded_shipments.order_by("-created_at").select_related("status_event").first()
        assert last is not None and last.status_event is not None
        assert last.status_event.shipment_id == last.pk and last.status_event.status == last.status
        assert TrackingEvent.objects.filter(shipment=last).count() == portal.EVENTS_PER_SHIPMENT
        statuses = Counter(seeded_shipments.values_list("status", flat=True))
        assert statuses["delivered"] > SHIPMENTS / 3 and len(statuses) >= 5, statuses
        assert 0 < ExceptionCase.objects.filter(shipment__in=seeded_shipments).count() < SHIPMENTS / 2
        assert Document.objects.filter(shipment__in=seeded_shipments, kind="pod").exists()
        assert Order.objects.filter(shipments__in=seeded_shipments).exists()
        assert seeded_shipments.exclude(bol_number="").exists() and seeded_shipments.exclude(container_number="").exists()
        # The secondary indexes dropped for the load are back.
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = 'tracking_event_timeline'", [acme.schema])
            assert cursor.fetchone()[0] == 1

    viewers = portal.viewers_create(acme.schema, seeded.customer_ids[0])
    measures = portal.measures_build(acme.schema, viewers, now=seeded.now, probes=10)
    assert {measure.name for measure in measures} == {
        f"{viewer} {page}"
        for viewer in ("customer", "staff", "api")
        for page in ("list_first", "list_filtered", "list_deep", "search", "shipment")
    }
    with schema_context(acme.schema):
        customer = User.objects.get(pk=viewers.customer_user_id)
        staff = User.objects.get(pk=viewers.staff_user_id)
    clients = {
        "customer": signed_in_client(acme.host, customer, acme.schema),
        "staff": signed_in_client(acme.host, staff, acme.schema),
    }
    for measure in measures:
        assert all(probe.expect for probe in measure.probes), f"{measure.name} expects nothing"
        for probe in measure.probes:
            if measure.viewer == "api":
                response = host_client(acme.host).get(probe.path, HTTP_AUTHORIZATION=f"Api-Key {viewers.api_key}")
            else:
                response = clients[measure.viewer].get(probe.path)
            assert portal.probe_problem(response.status_code, response.content, probe) is None, measure.name


def test_a_wrong_answer_is_caught():
    probe = portal.Probe("/shipments/", ("SH1", "SH2"))
    assert portal.probe_problem(200, b"<td>SH1</td><td>SH2</td>", probe) is None
    assert "out of order" in (portal.probe_problem(200, b"<td>SH2</td><td>SH1</td>", probe) or "")
    assert "missing" in (portal.probe_problem(200, b"<td>SH1</td>", probe) or "")
    assert portal.probe_problem(404, b"SH1 SH2", probe) == "/shipments/: 404"
