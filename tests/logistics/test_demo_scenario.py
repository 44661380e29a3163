"""`manage.py demo_scenario` against the real stack the test starts: a gunicorn web server (the
tenant's public host takes the scenario's webhooks), a Celery worker, and the sandbox ERP, TMS and
WMS on free ports that Acme's demo connections point at (the ERP with the routes the templates call:
an order keyed in, a confirmation by its body, an invoice import, an inventory adjustment, and its
webhook inbox where the scenarios' shipper receives Baton's events). The command runs in the test's
process (call_command), and once as its own process for its exit status; the test checks its
output and what the sandboxes saw."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django_tenants.utils import schema_context

from connectors.deliveries import endpoints_forget
from connectors.demo import demo_connections_seed
from connectors.models import Connection, InboundEvent, WebhookDelivery
from connectors.sandbox import DEMO_TMS_CLIENTS, ErpSandbox, TmsSandbox, WmsSandbox
from governance.services import Actor
from logistics.library.carrier_exceptions import TEMPLATE as CARRIER_EXCEPTIONS
from logistics.library.claims import TEMPLATE as CLAIMS
from logistics.library.inventory_sync import TEMPLATE as INVENTORY_SYNC
from logistics.library.milestone_notifications import TEMPLATE as NOTIFICATIONS
from logistics.library.order_release import TEMPLATE as ORDER_RELEASE_2
from logistics.library.pod_to_invoice import TEMPLATE as POD_TO_INVOICE
from logistics.models import (
    Claim,
    CustomerAccount,
    Document,
    ExceptionCase,
    FreightInvoice,
    InventorySnapshot,
    Location,
    MilestoneNotification,
    MilestoneSubscription,
    Order,
    Shipment,
    TrackingEvent,
)
from logistics.notifications import subscriptions_forget
from logistics.scenarios import scenario_play, scenarios
from logistics.scenarios.base import PREFIX, Scenario, ScenarioContext
from tenants.db import connection
from tests.logistics.flows import definition_forget
from tests.processes import ROOT, celery_worker, suite_env, web_server
from tests.workflows.conftest import publish
from workflows.management.commands.seed_library import ORDER_RELEASE
from workflows.models import ActionReceipt, BufferedEvent, Definition, TemplateVersion

SYSTEM = Actor.system("tests-demo-scenario")
DEMO_KEYS = ["erp", "tms", "wms", "carrier", "carrier-edi", "reefer-telemetry", "carrier-documents"]
ORDER_STEPS = ["set up", "order entered", "tendered", "990 decline", "tender accepted", "released to the WMS", "ERP confirmation"]
EXCEPTION_STEPS = ["set up", "carrier webhook", "milestone applied", "delayed 214", "exception opened", "recovery asked"]
INVENTORY_STEPS = [
    "set up",
    "ERP count",
    "nothing to compare",
    "WMS count",
    "synced",
    "corrected",
    "variance exception",
    "position published",
]
NOTIFICATION_STEPS = ["set up", "carrier webhook", "webhook notification", "carrier resends", "told once", "digest waits"]


# --- the stack --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def systems():
    running = {"erp": ErpSandbox(), "tms": TmsSandbox(clients=DEMO_TMS_CLIENTS), "wms": WmsSandbox()}
    for system in running.values():
        system.start()
    yield running
    for system in running.values():
        system.stop()


def _library() -> None:
    """The templates in the library as seed_library leaves them (1.0.0 of the order release first)."""
    for entry in (ORDER_RELEASE, ORDER_RELEASE_2, CARRIER_EXCEPTIONS, POD_TO_INVOICE, CLAIMS, INVENTORY_SYNC, NOTIFICATIONS):
        connection.set_schema_to_public()
        if not TemplateVersion.objects.filter(template__key=entry["key"], version=entry["version"]).exists():
            publish(entry)


def _forget_scenarios(world) -> None:
    """What the scenarios made in Acme (their definitions, runs, records, connections, master data)."""
    with schema_context(world.acme.schema):
        for definition in Definition.objects.filter(key__startswith=PREFIX):
            for run_id in definition.runs.values_list("pk", flat=True):
                ActionReceipt.objects.filter(idempotency_key__startswith=f"{run_id}:").delete()
            definition_forget(world.acme, definition)
        shipments = Shipment.objects.filter(reference__contains="SCN-")
        for shipment_id in shipments.values_list("pk", flat=True):
            BufferedEvent.objects.filter(event_id__startswith=f"delay:{shipment_id}:").delete()
        Claim.objects.filter(shipment__in=shipments).delete()
        FreightInvoice.objects.filter(shipment__in=shipments).delete()
        ExceptionCase.objects.filter(shipment__in=shipments).delete()
        ExceptionCase.objects.filter(details__order_id__contains="SCN-").delete()
        ExceptionCase.objects.filter(customer_account__code__startswith=PREFIX).delete()
        ExceptionCase.objects.filter(type="inventory_variance", details__sync_key__contains=f"@{PREFIX}").delete()
        InventorySnapshot.objects.filter(positions__location__code__startswith=PREFIX).delete()
        Document.objects.filter(shipment__in=shipments).delete()
        TrackingEvent.objects.filter(shipment__in=shipments).delete()
        orders = list(Order.objects.filter(number__contains="SCN-").values_list("pk", flat=True))
        Shipment.objects.filter(pk__in=list(shipments.values_list("pk", flat=True))).delete()
        Order.objects.filter(pk__in=orders).delete()
        keys = DEMO_KEYS + list(Connection.objects.filter(key__startswith=PREFIX).values_list("key", flat=True))
        InboundEvent.objects.filter(connection__key__in=keys).delete()
        Connection.objects.filter(key__in=keys).delete()
        Location.objects.filter(code__startswith=PREFIX).delete()
        CustomerAccount.objects.filter(code__startswith=PREFIX).delete()  # with their webhook endpoints and subscriptions
        subscriptions_forget()
        endpoints_forget()
    connection.set_schema_to_public()


@pytest.fixture(scope="module")
def stack(world, systems, tmp_path_factory, django_db_setup, django_db_blocker):
    """The web server's port, with a worker running and Acme's demo connections on the sandboxes."""
    logs = tmp_path_factory.mktemp("demo-scenario")
    with django_db_blocker.unblock():
        _library()
        with schema_context(world.acme.schema):
            connection.tenant = world.acme.tenant
            urls = {name: system.url for name, system in systems.items()}
            demo_connections_seed(tenant_slug="acme", actor=SYSTEM, urls={**urls, "carrier": "http://127.0.0.1:9"})
        connection.set_schema_to_public()
    try:
        with web_server(logs / "web.log") as port, celery_worker(logs / "worker.log"):
            yield port
    finally:
        with django_db_blocker.unblock():
            _forget_scenarios(world)


def demo_scenario(port: int, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The command as its own process, on the test database, the tenants served at `port`."""
    return subprocess.run(
        [sys.executable, "manage.py", "demo_scenario", "--tenant", "acme", *arguments],
        cwd=ROOT,
        env=suite_env(BATON_PUBLIC_PORT=str(port), DJANGO_ENV="development"),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _document(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}") from None


# --- end to end ---------------------------------------------------------------------------------------


@pytest.mark.worker
def test_the_order_release_scenario_tenders_declines_releases_and_confirms_through_the_sandboxes(stack, systems, committed):
    out = io.StringIO()
    with override_settings(BATON_PUBLIC_PORT=str(stack)):
        call_command("demo_scenario", "--tenant", "acme", "--scenario", "order_release", "--json", "--timeout", "30", stdout=out)
    document = json.loads(out.getvalue())
    assert (document["tenant"], document["scenario"], document["ok"]) == ("acme", "order_release", True)
    outcomes = document["outcomes"]
    assert [outcome["step"] for outcome in outcomes] == ORDER_STEPS
    assert all(outcome["ok"] and outcome["scenario"] == "order_release" for outcome in outcomes)
    assert set(outcomes[0]) == {"scenario", "step", "expected", "ok", "seconds", "detail"}
    assert "cloned order-to-shipment-release 2.0.0 as 'scn-order-to-shipment-release'" in outcomes[0]["detail"]

    # What the partners saw, by the sandboxes' own records.
    (entered,) = systems["erp"].effects_for("order")
    number = entered.reference
    shipment = f"SHP-{number}"
    tenders = [effect for effect in systems["tms"].effects_for("tender") if effect.payload["order"]["order_id"] == shipment]
    assert [tender.payload["carrier"] for tender in tenders] == ["SBXF", "ODFL"]  # SBXF declined, ODFL got it
    (released,) = [effect for effect in systems["wms"].effects_for("release") if effect.payload["order_number"] == number]
    assert released.payload["carrier"] == "ODFL"
    assert systems["erp"].orders[number]["confirmation"]["decision"] == "accepted"
    assert f"release {released.reference} at the WMS, carrier ODFL" in outcomes[5]["detail"]


@pytest.mark.worker
def test_the_carrier_exception_scenario_prints_each_step_as_it_ends(stack, world, committed):
    out = io.StringIO()
    with override_settings(BATON_PUBLIC_PORT=str(stack)):
        call_command("demo_scenario", "--tenant", "acme", "--scenario", "carrier_exception", "--timeout", "30", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"Acme Freight (acme) at http://acme.localhost:{stack}"
    assert lines[1] == "carrier_exception: Carrier exception management"
    steps = [line for line in lines if line.startswith("  ")]
    assert all(line.startswith("  ✓ ") for line in steps), out.getvalue()
    assert [line[4:28].strip() for line in steps] == EXCEPTION_STEPS
    assert re.search(
        r"exception opened\s+\d+\.\d s  an exception on SHP-SCN-\S+ with its priority and SLA due time – delay exception", lines[6]
    )
    assert lines[-1] == f"{len(EXCEPTION_STEPS)} of {len(EXCEPTION_STEPS)} expected outcomes happened"
    with schema_context(world.acme.schema):
        (case,) = ExceptionCase.objects.filter(shipment__reference__contains="SCN-", type="delay", status="open")
        assert case.sla_due_at is not None and case.details["priority"]["factors"]
        assert case.shipment.status == "delivery_delayed" and case.reason.startswith("Delivery delayed reported by SBXF (SD)")


def _played(port: int, name: str, *, timeout: str = "30") -> list[dict[str, Any]]:
    out = io.StringIO()
    with override_settings(BATON_PUBLIC_PORT=str(port)):
        call_command("demo_scenario", "--tenant", "acme", "--scenario", name, "--json", "--timeout", timeout, stdout=out)
    document = json.loads(out.getvalue())
    assert (document["scenario"], document["ok"]) == (name, True), document
    return document["outcomes"]


@pytest.mark.worker
def test_the_inventory_sync_scenario_corrects_the_erp_escalates_the_reefers_and_publishes_the_shippers_position(
    stack, systems, world, committed
):
    adjusted_before = len(systems["erp"].effects_for("inventory_adjustment"))
    outcomes = _played(stack, "inventory_sync")
    assert [outcome["step"] for outcome in outcomes] == INVENTORY_STEPS
    assert all(outcome["ok"] and outcome["seconds"] < 30 for outcome in outcomes), outcomes
    assert "cloned inventory-sync 1.0.0 as 'scn-inventory-sync'" in outcomes[0]["detail"]
    assert "added" not in outcomes[0]["detail"]  # the demo's ERP and WMS are seeded with adjust_inventory now
    counting = re.search(r"counting at (scn-dc-[0-9-]+);", outcomes[0]["detail"])
    assert counting, outcomes[0]["detail"]
    warehouse = counting[1]

    # The ERP took the correction to the WMS's count; the shipper's inbox (the ERP sandbox's) its pallets.
    [adjustment] = systems["erp"].effects_for("inventory_adjustment")[adjusted_before:]
    assert adjustment.payload["adjustments"] == [
        {"sku": "SKU-PALLET-A", "location": warehouse, "quantity": 139, "adjust_by": -1, "unit": "each"}
    ]
    assert adjustment.payload["source_of_truth"] == "wms" and adjustment.idempotency_key
    assert systems["erp"].inventory["SKU-PALLET-A"] == 139
    assert outcomes[5]["detail"] == f"{adjustment.reference} at the ERP: SKU-PALLET-A -1"
    [position] = [effect for effect in systems["erp"].effects_for("webhook") if effect.payload["type"] == "inventory.position"]
    assert (position.payload["data"]["customer"], position.payload["data"]["positions"]) == (
        f"{PREFIX}shipper",
        [{"sku": "SKU-PALLET-A", "location": warehouse, "quantity": "139", "unit": "each", "under_review": False}],
    )
    with schema_context(world.acme.schema):
        (case,) = ExceptionCase.objects.filter(type="inventory_variance", details__locations=[warehouse])
        assert (case.status, case.severity) == ("open", "medium")
        assert (
            case.reason
            == f"1 inventory variance(s) beyond tolerance between ERP and WMS: SKU-REEFER-C at {warehouse}: ERP 48 vs WMS 30 (+18)"
        )
        (delivery,) = WebhookDelivery.objects.filter(event_type="inventory.position", endpoint__customer_account__code=f"{PREFIX}shipper")
        assert delivery.status == "delivered" and delivery.endpoint.url == f"{systems['erp'].url}/api/events"


@pytest.mark.worker
def test_an_erp_with_its_period_closed_leaves_the_inventory_sync_scenario_missing_synced_at_once_naming_why(
    stack, systems, world, committed
):
    systems["erp"].inventory_locked = "the period is closed until the month-end count"
    out = io.StringIO()
    try:
        with override_settings(BATON_PUBLIC_PORT=str(stack)), pytest.raises(CommandError) as missing:
            call_command("demo_scenario", "--tenant", "acme", "--scenario", "inventory_sync", "--json", "--timeout", "30", stdout=out)
    finally:
        systems["erp"].inventory_locked = ""
    *met, failed = json.loads(out.getvalue())["outcomes"]
    assert [outcome["step"] for outcome in met] == INVENTORY_STEPS[:4] and all(outcome["ok"] for outcome in met)
    assert (failed["step"], failed["ok"]) == ("synced", False)
    assert re.match(r"run \d+ failed at correct_erp: .*the period is closed until the month-end count", failed["detail"]), failed["detail"]
    assert failed["seconds"] < 30  # a failed run is reported when it fails, not at the timeout
    assert str(missing.value) == "1 expected outcome missing – inventory_sync: synced"


@pytest.mark.worker
def test_the_notifications_scenario_tells_the_shipper_once_by_webhook_and_holds_the_digest(stack, systems, world, committed):
    outcomes = _played(stack, "notifications")
    assert [outcome["step"] for outcome in outcomes] == NOTIFICATION_STEPS
    assert all(outcome["ok"] and outcome["seconds"] < 30 for outcome in outcomes), outcomes
    assert "(webhook, hourly email digest made)" in outcomes[0]["detail"]
    shipped = re.search(r"(SHP-SCN-\S+) in transit", outcomes[1]["detail"])
    assert shipped, outcomes[1]["detail"]
    reference = shipped[1]
    told = [
        effect
        for effect in systems["erp"].effects_for("webhook")
        if effect.payload["type"] == "shipment.milestone" and effect.payload["data"]["milestones"][0]["shipment"] == reference
    ]
    assert len(told) == 1 and told[0].payload["data"]["milestones"][0]["milestone"] == "in_transit"
    assert told[0].payload["data"]["digest"] is False
    with schema_context(world.acme.schema):
        subscriptions = {s.channel: s for s in MilestoneSubscription.objects.filter(customer_account__code=f"{PREFIX}shipper")}
        assert (subscriptions["webhook"].digest, subscriptions["webhook"].quiet_start) == ("off", None)
        assert (subscriptions["email"].digest, subscriptions["email"].email) == ("hourly", "operations@scenario-shipper.example")
        rows = {row.subscription.channel: row for row in MilestoneNotification.objects.filter(shipment__reference=reference)}
        assert (rows["webhook"].status, rows["webhook"].milestone) == ("sent", "in_transit")
        assert (rows["email"].status, rows["email"].held) == ("pending", "digest")
        assert rows["email"].due_at.minute == 0 and rows["email"].due_at > rows["email"].created_at
        (delivery,) = WebhookDelivery.objects.filter(event_type="shipment.milestone", event_id=rows["webhook"].message_key)
        assert delivery.status == "delivered"


@pytest.mark.worker
def test_all_plays_every_scenario_and_each_of_them_passes(stack, systems, world, committed):
    out = io.StringIO()
    with override_settings(BATON_PUBLIC_PORT=str(stack)):
        call_command("demo_scenario", "--tenant", "acme", "--scenario", "all", "--json", "--timeout", "30", stdout=out)
    document = json.loads(out.getvalue())
    assert (document["scenario"], document["ok"]) == ("all", True)
    played: dict[str, list[dict[str, Any]]] = {}
    for outcome in document["outcomes"]:
        played.setdefault(outcome["scenario"], []).append(outcome)
    assert list(played) == list(scenarios())
    for name in scenarios():
        assert all(outcome["ok"] for outcome in played[name]), played[name]
    assert [outcome["step"] for outcome in played["inventory_sync"]] == INVENTORY_STEPS
    assert [outcome["step"] for outcome in played["notifications"]] == NOTIFICATION_STEPS
    assert "made" not in played["notifications"][0]["detail"]  # the earlier play's subscriptions, not new ones
    with schema_context(world.acme.schema):
        assert MilestoneSubscription.objects.filter(customer_account__code=f"{PREFIX}shipper").count() == 2

    assert [outcome["step"] for outcome in played["pod_to_invoice"]] == [
        "set up",
        "210 received",
        "POD announced",
        "invoice matched",
        "invoice PDF to the ERP",
        "over-tolerance dispute",
    ]
    (billed,) = systems["erp"].effects_for("invoice")
    assert billed.payload["invoice"]["total"] == "1650.00" and billed.payload["invoice"]["document"]["content_base64"]
    with schema_context(world.acme.schema):
        disputed = FreightInvoice.objects.get(shipment__reference__contains="SCN-", match_status="disputed")
        assert disputed.match_details["differences"][0]["difference"] == "100.00"
        (claim,) = Claim.objects.filter(shipment__reference__contains="SCN-")
        assert (claim.kind, str(claim.amount_claimed), claim.carrier_scac) == ("damage", "840.00", "SBXF")
    assert "(Carmack 30/120 days)" in played["claims"][2]["detail"]


@pytest.mark.worker
def test_a_warehouse_that_fails_leaves_the_release_missing_exit_1_naming_the_step(stack, systems):
    systems["wms"].set_faults(fail_next=100)
    try:
        done = demo_scenario(stack, "--scenario", "order_release", "--json", "--timeout", "10")
    finally:
        systems["wms"].clear_faults()
    document = _document(done)
    assert done.returncode == 1 and document["ok"] is False
    *met, missing = document["outcomes"]
    assert [outcome["step"] for outcome in met] == ORDER_STEPS[:5] and all(outcome["ok"] for outcome in met)
    assert (missing["step"], missing["ok"]) == ("released to the WMS", False)
    assert missing["detail"].startswith("not within 10 s: the WMS has no release of SO-SCN-")
    assert re.search(r"\[run \d+ (waiting|running|queued) at release", missing["detail"]), missing["detail"]
    assert done.stderr.strip().endswith("1 expected outcome missing – order_release: released to the WMS")


# --- without the stack ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_unknown_tenant_or_scenario_or_timeout_is_refused_with_exit_2_and_the_valid_ones(world):
    with pytest.raises(CommandError) as tenant:
        call_command("demo_scenario", "--tenant", "initech", "--scenario", "claims")
    assert tenant.value.returncode == 2
    assert re.fullmatch(r"no tenant 'initech'; the tenants are: (\S+, )*acme, (\S+, )*globex(, \S+)*", str(tenant.value)), str(tenant.value)
    with pytest.raises(CommandError) as scenario:
        call_command("demo_scenario", "--tenant", "acme", "--scenario", "tendering")
    assert scenario.value.returncode == 2
    assert str(scenario.value) == (
        "no scenario 'tendering'; choose one of: order_release, carrier_exception, inventory_sync, pod_to_invoice, claims, notifications, all"
    )
    with pytest.raises(CommandError) as timeout:
        call_command("demo_scenario", "--tenant", "acme", "--scenario", "claims", "--timeout", "0")
    assert (timeout.value.returncode, str(timeout.value)) == (2, "--timeout must be a number of seconds above 0, not 0.0")


def test_every_scenario_name_of_the_issue_has_a_module():
    assert list(scenarios()) == ["order_release", "carrier_exception", "inventory_sync", "pod_to_invoice", "claims", "notifications"]


@pytest.mark.django_db
def test_a_scenario_whose_template_is_not_in_the_library_is_one_failed_outcome_saying_so(world):
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        context = ScenarioContext(tenant=world.acme.tenant, timeout=1)
        missing = Scenario(name="yard_moves", title="Yard moves", template_key="yard-moves", template_major=1)
        (outcome,) = scenario_play(missing, context)
        unwritten = Scenario(name="release_again", title="Order release", template_key="order-to-shipment-release")
        if TemplateVersion.objects.filter(template__key="order-to-shipment-release").exists():
            (not_written,) = scenario_play(unwritten, context)
            assert not_written.detail == "not available: no scenario is written for template order-to-shipment-release yet"
    connection.set_schema_to_public()
    assert (outcome.scenario, outcome.step, outcome.ok) == ("yard_moves", "set up", False)
    assert outcome.detail == "not available: template yard-moves 1.x is not in the library"


def test_help_names_every_scenario():
    """So a person need not read the code to know what to ask for."""
    help_text = subprocess.run(
        [sys.executable, "manage.py", "demo_scenario", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=suite_env()
    )
    assert "order_release, carrier_exception, inventory_sync, pod_to_invoice, claims, notifications, all" in " ".join(
        help_text.stdout.split()
    )
