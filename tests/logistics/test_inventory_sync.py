"""Template 3, "Inventory and warehouse synchronisation", end to end: snapshots arrive as events
through the events inbox (by API, and as an X12 846 through an EDI intake), or are pulled from the
sandbox ERP and WMS through their connections; runs on a real Celery worker compare them, correct
the ERP (the WMS is the source of truth here) through its connection, open the inventory-variance
exception and publish the corrected position to the customers' webhook endpoints. The comparison
rules (tolerances, 945/944 movements between two counts, one exception per pair of systems) are
also checked without the worker.

The sandbox ERP takes the template's `adjust_inventory` action (`POST /api/inventory/adjustments`)
and refuses it, like a closed period would, while `inventory_locked` says why."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from connectors.deliveries import endpoints_forget, webhook_endpoint_create
from connectors.inbox import inbound_record
from connectors.models import Connection, ConnectionKind, InboundEvent, InboundMapper, WebhookDelivery, WebhookEndpoint
from connectors.sandbox import ErpSandbox, WmsSandbox
from governance.services import Actor
from logistics.inventory_sync import (
    input_kind,
    inventory_compare,
    movement_take,
    position_publish,
    snapshot_take,
    variance_exception_open,
)
from logistics.library.inventory_sync import TEMPLATE
from logistics.models import ExceptionCase, InventorySnapshot, InventoryVariance, Location
from logistics.services import InventoryInvalid, location_create
from tenants.db import connection
from tests.connectors.edi.fixtures import envelope
from tests.fake_partner import fake_partner
from tests.logistics.flows import clone_published, definition_forget, until
from tests.processes import celery_worker, suite_env
from tests.workflows.conftest import publish
from workflows.management.commands.seed_library import LIBRARY
from workflows.models import Incident, Run, StepExecution, TemplateVersion, WorkflowTemplate
from workflows.runs import run_start
from workflows.selectors import template_version_get
from workflows.validation import definition_validate

SYSTEM = Actor.system("tests-inventory-sync")
EVENTS_KEY, EDI_KEY, ERP_KEY, WMS_KEY = "inv-events", "inv-edi", "inv-erp", "inv-wms"
DALLAS, MEMPHIS = "inv-dal1", "inv-mem1"
SITES = {"DAL1": DALLAS, "ERP-MAIN": DALLAS, "MEM1": MEMPHIS}
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


# --- the outside world, the worker, the tenant's set-up ------------------------------------------


@pytest.fixture(scope="module")
def systems():
    running = {"erp": ErpSandbox(), "wms": WmsSandbox()}
    for system in running.values():
        system.start()
    yield running
    for system in running.values():
        system.stop()


@pytest.fixture(scope="module")
def receiver():
    with fake_partner() as partner:
        yield partner


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("inventory-worker") / "worker.log", env=suite_env()) as process:
        yield process


def _template_version() -> TemplateVersion:
    connection.set_schema_to_public()
    template = WorkflowTemplate.objects.filter(key=TEMPLATE["key"]).first()
    existing = template_version_get(template=template, version=TEMPLATE["version"]) if template else None
    return existing or publish(TEMPLATE)


def _places() -> None:
    for code, name, zone in ((DALLAS, "Dallas DC", "America/Chicago"), (MEMPHIS, "Memphis DC", "America/Chicago")):
        if not Location.objects.filter(code=code).exists():
            location_create(code=code, name=name, city=name.split()[0], country="US", time_zone=zone, actor=SYSTEM)


def _get(path: str) -> dict[str, str]:
    return {"method": "GET", "path": path}


@pytest.fixture(scope="module")
def flow(world, systems, receiver, django_db_setup, django_db_blocker):
    """Acme with an events intake, an EDI intake, the sandbox ERP and WMS as connections, two
    locations, webhook endpoints (the tenant's and customer acme-c0's) and the template cloned
    with the WMS as source of truth and published."""
    with django_db_blocker.unblock():
        version = _template_version()
        with schema_context(world.acme.schema):
            Connection.objects.create(key=EVENTS_KEY, name="Inventory intake", kind=ConnectionKind.ERP, base_url="https://erp.example")
            Connection.objects.create(
                key=EDI_KEY,
                name="Warehouse EDI",
                kind=ConnectionKind.EDI_PARTNER,
                base_url="https://wms.example",
                inbound_mapper=InboundMapper.X12,
            )
            actions = {
                "read_inventory": _get("/api/inventory"),
                "adjust_inventory": {"method": "POST", "path": "/api/inventory/adjustments"},
            }
            for key, kind, system in ((ERP_KEY, ConnectionKind.ERP, "erp"), (WMS_KEY, ConnectionKind.WMS, "wms")):
                Connection.objects.create(
                    key=key, name=f"Sandbox {system}", kind=kind, base_url=systems[system].url, settings={"actions": actions}
                )
            _places()
            webhook_endpoint_create(url=f"{receiver.url}/hooks/tenant", event_types=["inventory.*"], actor=SYSTEM)
            webhook_endpoint_create(
                url=f"{receiver.url}/hooks/c0",
                event_types=["inventory.position"],
                actor=SYSTEM,
                customer_account_id=world.acme.customer_accounts[0].pk,
            )
            definition = clone_published(
                world.acme,
                version,
                key=f"inventory-sync-{uuid.uuid4().hex[:8]}",
                name="Inventory sync",
                parameters={
                    "source_of_truth": "wms",
                    "quantity_tolerance": 2,
                    "percent_tolerance": 1,
                    "erp_connection": ERP_KEY,
                    "wms_connection": WMS_KEY,
                    "site_locations": SITES,
                },
            )
        connection.set_schema_to_public()
    yield definition
    with django_db_blocker.unblock(), schema_context(world.acme.schema):
        definition_forget(world.acme, definition)
        _inventory_forget()
        WebhookDelivery.objects.all().delete()
        WebhookEndpoint.objects.filter(url__startswith=receiver.url).delete()
        endpoints_forget()
        InboundEvent.objects.filter(connection__key__in=[EVENTS_KEY, EDI_KEY]).delete()
        Connection.objects.filter(key__in=[EVENTS_KEY, EDI_KEY, ERP_KEY, WMS_KEY]).delete()
        Location.objects.filter(code__in=[DALLAS, MEMPHIS]).delete()
        connection.set_schema_to_public()


def _inventory_forget() -> None:
    ExceptionCase.objects.filter(type="inventory_variance").delete()
    InventoryVariance.objects.all().delete()
    InventorySnapshot.objects.all().delete()


@pytest.fixture
def tidy(world, committed, systems):
    """Each test starts from no inventory (the comparison takes the latest snapshots)."""
    with schema_context(world.acme.schema):
        _inventory_forget()
        WebhookDelivery.objects.all().delete()
    systems["erp"].inventory_locked = ""
    yield
    with schema_context(world.acme.schema):
        _inventory_forget()


def _post(world, payload: dict[str, Any], event_type: str = "inventory.snapshot") -> str:
    """An event through the events intake, as the events API stores it; returns its id."""
    event_id = f"{event_type}-{uuid.uuid4().hex[:12]}"
    body = {"event_type": event_type, "event_id": event_id, "correlation": {}, "payload": payload}
    with schema_context(world.acme.schema):
        inbound_record(
            connection=Connection.objects.get(key=EVENTS_KEY),
            channel="api",
            external_id=event_id,
            body=json.dumps(body),
            content_type="application/json",
            headers={},
        )
    return event_id


def _edi(world, body: str) -> str:
    external_id = f"isa-{uuid.uuid4().hex[:12]}"
    with schema_context(world.acme.schema):
        inbound_record(
            connection=Connection.objects.get(key=EDI_KEY),
            channel="api",
            external_id=external_id,
            body=body,
            content_type="application/edi-x12",
            headers={},
        )
    return external_id


def _finished(world, flow, event_id: str | None = None, *, run: Run | None = None) -> Run:
    def check() -> Run | None:
        runs = Run.objects.filter(pk=run.pk) if run else Run.objects.filter(definition=flow, business_key=f"event:{event_id}")
        return runs.filter(status__in=["succeeded", "failed", "cancelled"]).first()

    return until(world, check, f"the run of {event_id or run}")


def _outputs(world, run: Run) -> dict[str, dict[str, Any]]:
    with schema_context(world.acme.schema):
        return {execution.step_id: execution.output for execution in StepExecution.objects.filter(run=run).order_by("pk")}


def _erp_snapshot(world, flow, positions: list[dict[str, Any]], *, as_of: dt.datetime, **extra: Any) -> Run:
    event = _post(world, {"system": "erp", "as_of": as_of.isoformat(), "location": DALLAS, "positions": positions, **extra})
    done = _finished(world, flow, event)
    assert (done.status, done.current_step) == ("succeeded", "nothing_to_compare"), done.error
    return done


# --- the rules, without the worker ----------------------------------------------------------------


def test_the_template_is_in_the_library_and_valid():
    assert (TEMPLATE["key"], TEMPLATE["version"]) in [(entry["key"], entry["version"]) for entry in LIBRARY]
    assert TEMPLATE["category"] == "inventory"
    assert definition_validate(TEMPLATE["definition"], placeholders=True) == []


def test_what_started_the_run_is_read_from_its_input():
    assert input_kind({"system": "wms", "positions": []}) == "snapshot"
    assert input_kind({"set": "846", "positions": []}) == "snapshot"
    assert input_kind({"set": "945", "lines": []}) == "movement"
    assert input_kind({"kind": "stock_transfer_receipt"}) == "movement"
    assert input_kind({"scheduled_for": "2026-03-02T05:00:00-06:00", "cron": "0 5 * * *"}) == "pull"
    assert input_kind({}) == "pull"


@pytest.mark.django_db
def test_movements_between_two_counts_are_no_variance_and_tolerances_split_the_rest(world):
    with schema_context(world.acme.schema):
        _places()
        erp = snapshot_take(
            payload={
                "system": "erp",
                "as_of": T0.isoformat(),
                "location": "DAL1",  # a site code, mapped
                "positions": [
                    {"sku": "SKU-A", "quantity": 100},
                    {"sku": "SKU-B", "quantity": "50"},
                    {"sku": "SKU-C", "quantity": 10, "unit": "EA"},
                    {"sku": "SKU-D", "quantity": 1000},
                ],
            },
            site_locations=SITES,
            actor=SYSTEM,
        )
        shipped = movement_take(
            payload={
                "set": "945",
                "kind": "warehouse_shipping_advice",
                "order_number": "ORD-1",
                "parties": [{"role": "ST", "name": "GLOBEX STORE"}, {"role": "SF", "id": "DAL1", "name": "DALLAS DC"}],
                "lines": [
                    {"product_ids": [{"qualifier": "UP", "value": "0123"}, {"qualifier": "VN", "value": "SKU-A"}], "quantity_shipped": "5"}
                ],
                "occurred_at": (T0 + dt.timedelta(hours=1)).isoformat(),
            },
            site_locations=SITES,
            actor=SYSTEM,
        )
        assert (shipped.kind, shipped.locations, shipped.positions) == ("movement", [DALLAS], 1)
        assert shipped.reason == f"945 ORD-1: 1 line(s) shipped from {DALLAS}"
        again = movement_take(
            payload={"set": "945", "order_number": "ORD-1", "location": DALLAS, "lines": [{"sku": "SKU-A", "quantity": 5}]},
            site_locations={},
            actor=SYSTEM,
        )
        assert (again.created, again.snapshot_id) == (False, shipped.snapshot_id)  # a resent 945 moves nothing twice
        wms = snapshot_take(
            payload={
                "system": "wms",
                "as_of": "2026-03-02T04:00:00",  # naive: Dallas time, 10:00 UTC
                "positions": [
                    {"sku": "SKU-A", "quantity": 95, "location": DALLAS},  # the ERP's 100 less the 945's 5
                    {"sku": "SKU-B", "quantity": 49, "location": DALLAS},  # 1 off: within 2 units
                    {"sku": "SKU-C", "quantity": 0, "location": DALLAS},  # 10 off, none on hand: beyond
                    {"sku": "SKU-D", "quantity": 992, "location": DALLAS},  # 8 off but 0.8 %: within 1 %
                ],
            },
            site_locations=SITES,
            actor=SYSTEM,
        )
        assert wms.as_of == "2026-03-02T10:00:00+00:00"
        comparison = inventory_compare(
            snapshot=InventorySnapshot.objects.get(pk=wms.snapshot_id),
            source_of_truth="wms",
            quantity_tolerance=2,
            percent_tolerance=1,
            actor=SYSTEM,
        )
        assert (comparison.truth, comparison.wrong, comparison.movements, comparison.locations) == ("wms", "erp", 1, [DALLAS])
        assert comparison.truth_snapshot_id == wms.snapshot_id
        expected = InventorySnapshot.objects.get(pk=comparison.wrong_snapshot_id)
        assert (expected.source_system, expected.as_of) == ("erp:expected", T0 + dt.timedelta(hours=2))
        assert [
            (v["sku"], v["truth_quantity"], v["other_quantity"], v["difference"], v["within_tolerance"]) for v in comparison.variances
        ] == [
            ("SKU-B", "49", "50", "1", True),
            ("SKU-C", "0", "10", "10", False),
            ("SKU-D", "992", "1000", "8", True),
        ]
        assert comparison.adjustments == [
            {"sku": "SKU-B", "location": DALLAS, "quantity": 49, "adjust_by": -1, "unit": "each"},
            {"sku": "SKU-D", "location": DALLAS, "quantity": 992, "adjust_by": -8, "unit": "each"},
        ]
        assert (comparison.within_count, comparison.beyond_count) == (2, 1)

        # The ERP as source of truth turns the roles round: the WMS is corrected.
        reverse = inventory_compare(
            snapshot=InventorySnapshot.objects.get(pk=erp.snapshot_id),
            source_of_truth="erp",
            quantity_tolerance=2,
            percent_tolerance=1,
            actor=SYSTEM,
        )
        assert (reverse.truth, reverse.wrong, reverse.movements) == ("erp", "wms", 1)  # the WMS rolled back over the 945
        assert [(a["sku"], a["quantity"], a["adjust_by"]) for a in reverse.adjustments] == [("SKU-B", 50, 1), ("SKU-D", 1000, 8)]

        data = {**comparison.as_data()}
        case = variance_exception_open(comparison=data, snapshot=InventorySnapshot.objects.get(pk=wms.snapshot_id), actor=SYSTEM)
        assert (case.created, case.severity, case.variances) == (True, "high", 1)  # SKU-C is on hand in the ERP only
        opened = ExceptionCase.objects.get(pk=case.exception_id)
        assert opened.type == "inventory_variance" and opened.status == "open"
        assert opened.reason == "1 inventory variance(s) beyond tolerance between ERP and WMS: SKU-C at inv-dal1: ERP 10 vs WMS 0 (+10)"
        assert opened.details["variances"][0]["sku"] == "SKU-C" and opened.details["locations"] == [DALLAS]
        assert InventoryVariance.objects.get(pk=opened.details["variances"][0]["variance_id"]).status == "escalated"
        again_case = variance_exception_open(comparison=data, snapshot=InventorySnapshot.objects.get(pk=wms.snapshot_id), actor=SYSTEM)
        assert (again_case.exception_id, again_case.created) == (case.exception_id, False)  # one case, brought up to date
        opened.refresh_from_db()
        assert opened.details["comparisons"] == 2


@pytest.mark.django_db
def test_snapshots_that_cannot_be_taken_say_what_and_where(world):
    with schema_context(world.acme.schema):
        _places()

        def refused(payload: dict[str, Any]) -> InventoryInvalid:
            with pytest.raises(InventoryInvalid) as error:
                snapshot_take(
                    payload={"system": "wms", "as_of": T0.isoformat(), "location": DALLAS, **payload}, site_locations=SITES, actor=SYSTEM
                )
            return error.value

        assert refused({"system": "sap", "positions": []}).field == "system"
        unknown = refused({"location": "ATL9", "positions": [{"sku": "A", "quantity": 1}]})
        assert unknown.message.startswith("location: 'ATL9' is not a Baton location: add it to the locations, or map the site")
        assert refused({"positions": [{"sku": "A", "quantity": "lots"}]}).field == "positions/0/quantity"
        assert refused({"positions": [{"quantity": 3}]}).field == "positions/0/sku"
        assert (
            refused({"positions": [{"sku": "A", "quantity": 1, "customer": "nobody"}]}).message
            == "positions/0/customer: there is no customer account 'nobody'"
        )
        assert refused({"as_of": "yesterday", "positions": []}).field == "as_of"
        assert refused({"positions": "SKU-A=3"}).field == "positions"
        with pytest.raises(InventoryInvalid) as nowhere:
            movement_take(
                payload={
                    "set": "944",
                    "receipt_number": "R-1",
                    "parties": [{"role": "ST", "name": "X"}],
                    "lines": [{"sku": "A", "quantity": 1}],
                },
                site_locations={},
                actor=SYSTEM,
            )
        assert nowhere.value.message == "the advice names no warehouse: send an N1 WH or SF loop, or a location"


@pytest.mark.django_db
def test_the_position_goes_to_each_owning_customer_and_the_rest_to_the_tenant(world):
    with schema_context(world.acme.schema):
        _places()
        customer = world.acme.customer_accounts[0]
        endpoint, _secret = webhook_endpoint_create(
            url="http://127.0.0.1:9/c0", event_types=["inventory.position"], actor=SYSTEM, customer_account_id=customer.pk
        )
        tenant, _secret = webhook_endpoint_create(url="http://127.0.0.1:9/tenant", event_types=["inventory.*"], actor=SYSTEM)
        truth = snapshot_take(
            payload={
                "system": "wms",
                "as_of": T0.isoformat(),
                "location": DALLAS,
                "positions": [{"sku": "OWNED", "quantity": 4, "customer": customer.code}, {"sku": "LOOSE", "quantity": 9}],
            },
            site_locations={},
            actor=SYSTEM,
        )
        assert truth.owners == {"OWNED": customer.code}
        comparison = {
            "truth": "wms",
            "truth_snapshot_id": truth.snapshot_id,
            "locations": [DALLAS],
            "variances": [{"sku": "LOOSE", "location": DALLAS, "within_tolerance": False}],
        }
        published = position_publish(comparison=comparison, owners=truth.owners, event_key="k1")
        assert published == [
            {"customer": None, "positions": 1, "deliveries": 1},
            {"customer": customer.code, "positions": 1, "deliveries": 1},
        ]
        owned = WebhookDelivery.objects.get(endpoint=endpoint)
        assert (owned.event_type, owned.event_id) == ("inventory.position", f"k1:{customer.code}")
        assert owned.payload["positions"] == [{"sku": "OWNED", "location": DALLAS, "quantity": "4", "unit": "each", "under_review": False}]
        assert WebhookDelivery.objects.get(endpoint=tenant).payload["positions"][0] == {
            "sku": "LOOSE",
            "location": DALLAS,
            "quantity": "9",
            "unit": "each",
            "under_review": True,
        }
        assert position_publish(comparison=comparison, owners=truth.owners, event_key="k1")[0]["deliveries"] == 0  # published before
        endpoints_forget()


# --- end to end on the worker ----------------------------------------------------------------------


ADVICE_846 = """846|
BIA*00*DD*{reference}*20260302*{time}~
DTM*405*20260302*{time}*UT~
N1*WH*DALLAS DC*92*DAL1~
LIN*1*VN*SKU-PALLET-A~
QTY*17*139*EA~
LIN*2*VN*SKU-CARTON-B~
QTY*17*2300*EA~
LIN*3*VN*SKU-REEFER-C~
QTY*17*30*EA~
"""


@pytest.mark.worker
def test_a_warehouse_846_against_the_erp_corrects_the_small_difference_and_escalates_the_large_one(world, worker, flow, systems, tidy):
    adjusted_before = len(systems["erp"].effects_for("inventory_adjustment"))
    with systems["erp"]._lock:
        systems["erp"].inventory["SKU-PALLET-A"] = 140
    _erp_snapshot(
        world,
        flow,
        [{"sku": "SKU-PALLET-A", "quantity": 140}, {"sku": "SKU-CARTON-B", "quantity": 2300}, {"sku": "SKU-REEFER-C", "quantity": 48}],
        as_of=dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC),
    )
    reference = f"INV-{uuid.uuid4().hex[:6].upper()}"
    _edi(world, envelope(ADVICE_846.format(reference=reference, time="1000"), functional_id="IB", gs06="8001"))
    run = until(
        world,
        lambda: Run.objects.filter(definition=flow, input__reference=reference, status__in=["succeeded", "failed"]).first(),
        "the 846's run",
    )
    assert (run.status, run.current_step) == ("succeeded", "synced"), run.error
    steps = _outputs(world, run)
    assert list(steps) == [
        "take",
        "what",
        "compare",
        "compared",
        "correct_erp",
        "adjusted",
        "beyond",
        "open_exception",
        "tell_planners",
        "publish",
        "synced",
    ]
    assert (steps["take"]["system"], steps["take"]["locations"], steps["take"]["positions"]) == ("wms", [DALLAS], 3)
    assert (steps["compare"]["within_count"], steps["compare"]["beyond_count"]) == (1, 1)

    # The ERP took the correction, once, with the run's idempotency key.
    [effect] = systems["erp"].effects_for("inventory_adjustment")[adjusted_before:]
    assert effect.payload["adjustments"] == [{"sku": "SKU-PALLET-A", "location": DALLAS, "quantity": 139, "adjust_by": -1, "unit": "each"}]
    assert effect.payload["source_of_truth"] == "wms" and effect.idempotency_key
    assert systems["erp"].inventory["SKU-PALLET-A"] == 139
    assert steps["adjusted"]["count"] == 1 and steps["correct_erp"]["adjustment_id"] == effect.reference

    with schema_context(world.acme.schema):
        statuses = dict(InventoryVariance.objects.filter(compared__source_system="erp").values_list("sku", "status"))
        assert statuses == {"SKU-PALLET-A": "adjusted", "SKU-REEFER-C": "escalated"}
        case = ExceptionCase.objects.get(type="inventory_variance", status="open")
        assert (
            case.reason == "1 inventory variance(s) beyond tolerance between ERP and WMS: SKU-REEFER-C at inv-dal1: ERP 48 vs WMS 30 (+18)"
        )
        assert (case.severity, case.details["truth"], case.details["wrong"]) == ("medium", "wms", "erp")
        assert [(v["sku"], v["truth_quantity"], v["other_quantity"]) for v in case.details["variances"]] == [("SKU-REEFER-C", "30", "48")]
        # Nobody owns these SKUs: the tenant's own endpoint gets the corrected position.
        [delivery] = WebhookDelivery.objects.filter(event_type="inventory.position")
        assert delivery.endpoint.customer_account_id is None
        assert [(p["sku"], p["quantity"], p["under_review"]) for p in delivery.payload["positions"]] == [
            ("SKU-CARTON-B", "2300", False),
            ("SKU-PALLET-A", "139", False),
            ("SKU-REEFER-C", "30", True),
        ]
    until(world, lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="delivered").exists(), "the webhook delivered")

    # The same variance in the next count updates the open case instead of opening another.
    reference = f"INV-{uuid.uuid4().hex[:6].upper()}"
    _edi(world, envelope(ADVICE_846.format(reference=reference, time="1100"), functional_id="IB", gs06="8002"))  # a new group
    second = until(
        world,
        lambda: Run.objects.filter(definition=flow, input__reference=reference, status__in=["succeeded", "failed"]).first(),
        "the next 846's run",
    )
    assert second.status == "succeeded", second.error
    steps = _outputs(world, second)
    assert (steps["compare"]["within_count"], steps["compare"]["beyond_count"]) == (0, 1)  # the ERP was corrected: 139 expected
    assert len(systems["erp"].effects_for("inventory_adjustment")) == adjusted_before + 1
    with schema_context(world.acme.schema):
        assert ExceptionCase.objects.filter(type="inventory_variance").count() == 1
        assert ExceptionCase.objects.get(pk=case.pk).details["comparisons"] == 2


@pytest.mark.worker
def test_a_945_between_two_counts_is_no_variance_and_customers_get_their_own_skus(world, worker, flow, systems, tidy):
    customer = world.acme.customer_accounts[0]
    adjusted_before = len(systems["erp"].effects_for("inventory_adjustment"))
    now = timezone.now()
    _erp_snapshot(
        world,
        flow,
        [{"sku": "SKU-OWNED", "quantity": 60, "customer": customer.code}, {"sku": "SKU-LOOSE", "quantity": 7}],
        as_of=now - dt.timedelta(minutes=10),
    )
    shipped = _post(
        world,
        {
            "set": "945",
            "kind": "warehouse_shipping_advice",
            "order_number": f"ORD-{uuid.uuid4().hex[:6]}",
            "parties": [{"role": "SF", "id": "DAL1"}],
            "lines": [{"product_ids": [{"qualifier": "VN", "value": "SKU-OWNED"}], "quantity_shipped": "12"}],
        },
        event_type="warehouse.shipped",
    )
    moved = _finished(world, flow, shipped)
    assert (moved.status, moved.current_step) == ("succeeded", "movement_recorded"), moved.error
    counted = _post(
        world,
        {
            "system": "wms",
            "as_of": timezone.now().isoformat(),
            "location": "DAL1",
            "positions": [{"sku": "SKU-OWNED", "quantity": 48, "customer": customer.code}, {"sku": "SKU-LOOSE", "quantity": 7}],
        },
    )
    done = _finished(world, flow, counted)
    assert (done.status, done.current_step) == ("succeeded", "synced"), done.error
    steps = _outputs(world, done)
    assert (steps["compare"]["movements"], steps["compare"]["variances"]) == (1, [])  # 60 − 12 = 48: in step
    assert "correct_erp" not in steps and "open_exception" not in steps
    assert len(systems["erp"].effects_for("inventory_adjustment")) == adjusted_before
    with schema_context(world.acme.schema):
        by_customer = {d.endpoint.customer_account_id: d.payload for d in WebhookDelivery.objects.filter(event_type="inventory.position")}
        assert by_customer[customer.pk]["positions"] == [
            {"sku": "SKU-OWNED", "location": DALLAS, "quantity": "48", "unit": "each", "under_review": False}
        ]
        assert by_customer[customer.pk]["customer"] == customer.code
        assert [p["sku"] for p in by_customer[None]["positions"]] == ["SKU-LOOSE"]
        assert not ExceptionCase.objects.filter(type="inventory_variance").exists()


@pytest.mark.worker
def test_a_start_by_hand_pulls_both_systems_through_their_connections(world, worker, flow, systems, tidy):
    adjusted_before = len(systems["erp"].effects_for("inventory_adjustment"))
    with systems["erp"]._lock:
        systems["erp"].inventory.update({"SKU-PALLET-A": 141, "SKU-CARTON-B": 2300, "SKU-REEFER-C": 48})
    with schema_context(world.acme.schema):
        run, created = run_start(definition=flow, input={}, trigger="manual", actor=world.acme.users["tenant_admin"])
        assert created
    done = _finished(world, flow, run=run)
    assert (done.status, done.current_step) == ("succeeded", "synced"), done.error
    steps = _outputs(world, done)
    assert steps["take"]["kind"] == "pull"
    assert steps["pull_erp"]["site"] == "ERP-MAIN" and steps["pull_wms"]["site"] == "DAL1"
    assert steps["pulled"]["locations"] == [DALLAS]
    assert [(v["sku"], v["difference"], v["within_tolerance"]) for v in steps["compare"]["variances"]] == [("SKU-PALLET-A", "1", True)]
    [effect] = systems["erp"].effects_for("inventory_adjustment")[adjusted_before:]
    assert effect.payload["adjustments"][0]["adjust_by"] == -1
    assert systems["erp"].inventory["SKU-PALLET-A"] == 140


@pytest.mark.worker
def test_an_erp_refusing_the_correction_fails_the_run_with_an_incident_and_leaves_the_variance_open(world, worker, flow, systems, tidy):
    systems["erp"].inventory_locked = "the period is closed until the month-end count"
    _erp_snapshot(world, flow, [{"sku": "SKU-PALLET-A", "quantity": 141}], as_of=timezone.now() - dt.timedelta(minutes=5))
    counted = _post(
        world,
        {"system": "wms", "as_of": timezone.now().isoformat(), "location": DALLAS, "positions": [{"sku": "SKU-PALLET-A", "quantity": 140}]},
    )
    done = _finished(world, flow, counted)
    assert (done.status, done.current_step) == ("failed", "correct_erp")
    assert "the period is closed until the month-end count" in done.error
    with schema_context(world.acme.schema):
        assert Incident.objects.filter(run=done, step_id="correct_erp", status="open").exists()
        assert list(InventoryVariance.objects.values_list("sku", "status")) == [("SKU-PALLET-A", "within_tolerance")]
        assert not WebhookDelivery.objects.filter(event_type="inventory.position").exists()


@pytest.mark.worker
def test_a_snapshot_at_an_unknown_place_fails_at_once_naming_it(world, worker, flow, tidy):
    counted = _post(
        world,
        {"system": "wms", "as_of": timezone.now().isoformat(), "location": "ATL9", "positions": [{"sku": "SKU-PALLET-A", "quantity": 140}]},
    )
    done = _finished(world, flow, counted)
    assert (done.status, done.current_step) == ("failed", "take")
    assert "'ATL9' is not a Baton location" in done.error
    with schema_context(world.acme.schema):
        [incident] = Incident.objects.filter(run=done)
        assert len(incident.attempts) == 1  # refused input is not retried
        assert not InventorySnapshot.objects.exists()
