"""The demo simulator (`logistics.simulator`) against the real thing: the sandbox ERP, TMS, WMS and
carrier over HTTP, a web server taking the signed webhooks on Acme's host, and a Celery worker
running the published domain templates. A few ticks place orders that the order release 2.x
releases, move the shipments through the carrier's milestones (a delay opening an exception
through carrier exception management), and bring each a POD and an invoice that pod-to-invoice
matches. The master data and the determinism the simulator rests on are checked without the worker."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from accounts.management.commands.seed_demo import Command as SeedDemo
from connectors.demo import DOCUMENTS_KEY, DemoPartners, demo_connections_seed
from connectors.models import Connection, InboundEvent
from connectors.sandbox import DEMO_TMS_CLIENTS, CarrierSandbox, ErpSandbox, TmsSandbox, WmsSandbox
from governance.services import Actor
from logistics import simulator
from logistics.demo_data import ROUTING_GUIDE, demo_data_seed, demo_lanes
from logistics.library import domain_templates
from logistics.models import (
    CarrierRule,
    Claim,
    Document,
    ExceptionCase,
    FreightInvoice,
    Location,
    Order,
    Party,
    Shipment,
    SlaPolicy,
    TrackingEvent,
)
from tenants.db import connection
from tests.logistics.flows import definition_forget
from tests.processes import celery_worker, suite_env, web_server
from workflows.demo import DEMO_DEFINITION_KEY, DEMO_ORDER_KEY
from workflows.models import Definition
from workflows.tasks import dispatch_fire_timers

SEED = Actor.system("tests-simulator")
CONNECTION_KEYS = ["erp", "tms", "wms", "carrier", "carrier-edi", DOCUMENTS_KEY, "reefer-telemetry"]


# --- without the worker ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_demo_master_data_gives_places_with_clocks_carriers_rules_and_slas_once(world):
    with schema_context(world.acme.schema):
        first = demo_data_seed(time_zone="America/Chicago", actor=SEED)
        assert {"location dc-memphis", "carrier sandbox-freight", "SLA policy priority"} <= set(first.created)
        memphis = Location.objects.get(code="dc-memphis")
        assert (memphis.time_zone, memphis.address_line1, memphis.weekly_hours["sat"]) == (
            "America/Chicago",
            "3500 Tchulahoma Rd",
            [["06:00", "12:00"]],
        )
        site = Location.objects.get(code="acme-c0-phoenix")
        assert simulator.x12_text("Düsseldorf") == "DUSSELDORF"
        assert (site.time_zone, site.party.customer_account.code) == ("America/Phoenix", "acme-c0")
        assert sorted(Party.objects.filter(kind="carrier").values_list("scac", flat=True)) == ["ODFL", "SAIA", "SBXF"]
        assert ROUTING_GUIDE[0] == "SBXF"
        rule = CarrierRule.objects.get(scac="SBXF")
        assert (str(rule.amount_tolerance), rule.detention_free_time, rule.carrier.scac) == ("25.00", dt.timedelta(hours=2), "SBXF")
        assert SlaPolicy.objects.get(service_tier="critical").resolve_within == dt.timedelta(hours=4)
        assert {(lane.customer, lane.ship_from) for lane in demo_lanes()} >= {("acme-c0", "dc-dallas"), ("acme-c1", "dc-memphis")}

        again = demo_data_seed(time_zone="America/Chicago", actor=SEED)
        assert again.created == []


@pytest.mark.django_db
def test_a_tenant_in_europe_ships_from_european_dcs(world):
    with schema_context(world.globex.schema):
        demo_data_seed(time_zone="Europe/Amsterdam", actor=SEED)
        assert Location.objects.get(code="dc-rotterdam").country == "NL"
        assert Location.objects.get(code="globex-c1-dusseldorf").time_zone == "Europe/Berlin"


@pytest.mark.django_db
def test_orders_are_in_the_order_release_shape_and_vary_by_tick_without_chance(world):
    with schema_context(world.acme.schema):
        assert simulator.demo_order(4) is None  # no lanes before the master data
        demo_data_seed(time_zone="America/Chicago", actor=SEED)
        order = simulator.demo_order(4)
        assert order == simulator.demo_order(4)
        assert order["order_id"] == "SO-AC0000004" and order["ship_from"].startswith("dc-")
        assert all(line["weight"] == line["qty"] * dict((s, w) for s, w, _r in simulator.SKUS)[line["sku"]] for line in order["lines"])
        assert simulator.demo_order(5 + 13)["credit_hold"] is True
        assert "weight" not in simulator.demo_order(9 + 17)["lines"][0]
        assert simulator.order_number(10_000_004) == "SO-AC0000004"
    with schema_context(world.globex.schema):
        assert simulator.order_number(4) == "SO-GL0000004"  # tenants share the sandbox ERP


def test_a_quarter_of_shipments_are_delayed_and_every_journey_ends_delivered():
    delayed = [n for n in range(400) if any(stage.delay for stage in simulator.journey(Shipment(reference=f"SHP-SO-{n}")))]
    assert 60 < len(delayed) < 140
    plain = simulator.journey(Shipment(reference="SHP-SO-1"))
    assert plain[-1].code == "delivered" and [stage.channel for stage in plain].count("edi") >= 3


# --- against the sandboxes, a web server and a worker ---------------------------------------------------


@pytest.fixture(scope="module")
def systems():
    running = {"erp": ErpSandbox(), "tms": TmsSandbox(clients=DEMO_TMS_CLIENTS), "wms": WmsSandbox(), "carrier": CarrierSandbox()}
    for system in running.values():
        system.start()
    yield running
    for system in running.values():
        system.stop()


@pytest.fixture(scope="module")
def web(tmp_path_factory, django_db_setup, django_db_blocker):
    with web_server(tmp_path_factory.mktemp("simulator-web") / "web.log") as port:
        yield port


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("simulator-worker") / "worker.log", env=suite_env()) as process:
        yield process


MASTER_DATA = (Location, Party, CarrierRule, SlaPolicy)  # in the order they can be deleted


def _forget(world, before: dict[type, set[int]]) -> None:
    """Everything the demo wrote into Acme, removed (committed tests share it); master data
    that was there `before` is kept."""
    with schema_context(world.acme.schema):
        keys = [DEMO_DEFINITION_KEY, DEMO_ORDER_KEY, *(template["key"] for template in domain_templates())]
        for definition in Definition.objects.filter(key__in=keys):
            definition_forget(world.acme, definition)
        shipments = Shipment.objects.filter(carrier_scac=simulator.CARRIER_SCAC)
        Claim.objects.filter(shipment__in=shipments).delete()
        FreightInvoice.objects.filter(shipment__in=shipments).delete()
        ExceptionCase.objects.filter(shipment__in=shipments).delete()
        ExceptionCase.objects.filter(details__order_id__startswith="SO-").delete()
        Document.objects.filter(shipment__in=shipments).delete()
        TrackingEvent.objects.filter(shipment__in=shipments).delete()
        Shipment.objects.filter(pk__in=list(shipments.values_list("pk", flat=True))).delete()
        Order.objects.filter(number__startswith="SO-").delete()
        InboundEvent.objects.filter(connection__key__in=CONNECTION_KEYS).delete()
        Connection.objects.filter(key__in=CONNECTION_KEYS).delete()
        for model in MASTER_DATA:
            model.objects.exclude(pk__in=before[model]).delete()  # type: ignore[attr-defined]
        connection.set_schema_to_public()


@pytest.fixture(scope="module")
def demo(world, systems, django_db_setup, django_db_blocker):
    """Acme as seed_demo leaves it, its connections pointing at these sandboxes."""
    with django_db_blocker.unblock():
        call_command("seed_library", verbosity=0)
        admin = world.acme.users["tenant_admin"]
        with schema_context(world.acme.schema):
            connection.tenant = world.acme.tenant
            before = {model: set(model.objects.values_list("pk", flat=True)) for model in MASTER_DATA}  # type: ignore[attr-defined]
            demo_connections_seed(tenant_slug="acme", actor=SEED, urls={name: system.url for name, system in systems.items()})
            demo_data_seed(time_zone="America/Chicago", actor=SEED)
            seed = SeedDemo()
            seed._demo_workflow(admin)
            seed._domain_workflows(admin)
        connection.set_schema_to_public()
    yield world.acme
    with django_db_blocker.unblock():
        _forget(world, before)


def _sequences(start: int, wanted: int, check) -> list[int]:
    """Ticks that order, from `start`, whose shipment `check` likes."""
    found: list[int] = []
    sequence = start - start % simulator.ORDER_EVERY
    while len(found) < wanted:
        sequence += simulator.ORDER_EVERY
        reference = f"SHP-{simulator.order_number(sequence, 'AC')}"
        if sequence % 13 != 5 and sequence % 17 != 9 and check(reference):
            found.append(sequence)
    return found


def _signed_clean_pod(reference: str) -> bool:
    return 15 <= simulator.dice(reference, "pod") < 85


def _tick(world, sequence: int) -> dict[str, Any]:
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        report = simulator.simulator_tick(sequence=sequence, partners=DemoPartners(), step_after=dt.timedelta(0))
    connection.set_schema_to_public()
    dispatch_fire_timers.apply_async()
    return report


def test_ticks_release_orders_move_shipments_open_a_delay_exception_and_bring_pods_and_invoices(
    world, demo, web, worker, systems, committed, settings
):
    settings.BATON_PUBLIC_PORT = str(web)  # Acme's public URL: where the ERP and the carrier post
    with schema_context(world.acme.schema):
        published = {d.key: d.published_version.based_on_template_version for d in Definition.objects.exclude(published_version=None)}
    assert published[DEMO_ORDER_KEY].startswith("2.")
    assert {"carrier-exception-management", "pod-to-invoice", "freight-claims"} <= set(published)

    base = int(time.time()) % 1_000_000 * 100
    (delayed,) = _sequences(base, 1, lambda ref: simulator.dice(ref, "delay") < 25 and _signed_clean_pod(ref))
    (on_time,) = _sequences(delayed, 1, lambda ref: simulator.dice(ref, "delay") >= 25 and _signed_clean_pod(ref))
    numbers = [simulator.order_number(delayed, "AC"), simulator.order_number(on_time, "AC")]
    references = [f"SHP-{number}" for number in numbers]

    reports = [_tick(world, delayed), _tick(world, on_time)]
    assert [report["order"]["baton"] for report in reports] == [202, 202], reports
    assert [systems["erp"].orders.get(number, {}).get("status") for number in numbers] == ["open", "open"], reports

    deadline = time.time() + 75
    tick = on_time
    while time.time() < deadline:
        tick += 1
        if tick % simulator.ORDER_EVERY == 0:
            tick += 1  # no new orders
        _tick(world, tick)
        with schema_context(world.acme.schema):
            invoiced = FreightInvoice.objects.filter(shipment__reference__in=references).exclude(match_status="unmatched").count()
            exception = ExceptionCase.objects.filter(shipment__reference=references[0], type="delay").exists()
        if invoiced == 2 and exception:
            break
        time.sleep(1.0)

    with schema_context(world.acme.schema):
        orders = {order.number: order for order in Order.objects.filter(number__in=numbers)}
        assert [orders[number].status for number in numbers] == ["released", "released"], {n: o.status_reason for n, o in orders.items()}
        shipments = {shipment.reference: shipment for shipment in Shipment.objects.filter(reference__in=references)}
        assert [(shipments[ref].status, shipments[ref].tender_status) for ref in references] == [("delivered", "accepted")] * 2
        for reference in references:
            sources = set(TrackingEvent.objects.filter(shipment__reference=reference).values_list("source", flat=True))
            assert {"x12_214", "carrier_api", "workflow"} <= sources, (reference, sources)
        delayed_codes = list(
            TrackingEvent.objects.filter(shipment__reference=references[0], source="x12_214").values_list("raw_code", flat=True)
        )
        assert "SD" in delayed_codes
        case = ExceptionCase.objects.get(shipment__reference=references[0], type="delay")
        assert case.status in ("open", "in_progress")
        assert not ExceptionCase.objects.filter(shipment__reference=references[1], type="delay").exists()
        for reference in references:
            pod = Document.objects.get(shipment__reference=reference, kind="pod")
            assert pod.signed_by == "M. ORTIZ" and pod.extracted_fields["exceptions"] == "none"
            assert Document.objects.filter(shipment__reference=reference, kind="rate_confirmation").exists()
            invoice = FreightInvoice.objects.get(shipment__reference=reference)
            expected = "disputed" if simulator.dice(reference, "invoice") < 20 else "approved"
            assert (invoice.carrier_scac, invoice.match_status) == ("SBXF", expected), invoice.match_details
    for number in numbers:
        assert systems["erp"].orders[number]["confirmation"]["decision"] == "accepted"
        assert [effect for effect in systems["wms"].effects_for("release") if effect.payload["order_number"] == number]
        assert [effect for effect in systems["wms"].effects_for("receipt") if effect.reference == f"ASN-{number}"]
