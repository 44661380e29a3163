"""`make run`'s demo connections and traffic (connectors.demo, seed_demo): each demo tenant's
connections to the sandbox systems, seeded through the services and only once (an older seed
gaining the actions a newer demo calls), one tenant's webhook secret never opening another's
endpoint, the workflows seed_demo publishes (the order release 2.x, an older 1.x upgraded, every
domain template), the order release tendering through the real connector port to the sandbox TMS,
and a traffic tick landing a malformed webhook in each tenant's inbox through a real web server
(the simulator's traffic: tests/logistics/test_simulator.py)."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from accounts.management.commands.seed_demo import Command as SeedDemo
from connectors.auth import signing_secrets_open
from connectors.demo import (
    CARRIER_KEY,
    TELEMETRY_KEY,
    DemoPartners,
    demo_connections_seed,
    demo_traffic_tick,
    reefer_reading,
    tracker_event,
)
from connectors.edi import parse
from connectors.edi.documents import ShipmentStatus, TrackingMilestone
from connectors.inbox import event_dispatch
from connectors.models import Connection, EdiPartner, InboundEvent, TelemetryRule, TelemetrySubscription
from connectors.normalize import normalize
from connectors.outbound import ConnectionPort, guard_defaults
from connectors.sandbox import DEMO_TMS_CLIENTS, CarrierSandbox, ErpSandbox, TmsSandbox, WmsSandbox, demo_urls
from connectors.signatures import EASYPOST
from governance.models import AuditEvent
from governance.services import Actor
from logistics.demo_data import ROUTING_GUIDE, demo_data_seed
from logistics.library import domain_templates
from logistics.simulator import demo_order
from tenants.db import connection
from tests.conftest import host_client
from tests.processes import web_server
from workflows.demo import DEMO_CARRIER, DEMO_ORDER_KEY
from workflows.engine import FakeConnector, connector_port_set, runs_advance_ready
from workflows.models import Definition, Run, TemplateVersion
from workflows.runs import run_start

SEED = Actor.system("tests-demo")
URLS = demo_urls(8701)
DEMO_KEYS = {"erp", "tms", "wms", "carrier", "carrier-edi", "carrier-documents", "reefer-telemetry"}


def _seeded(tenant_world, urls=URLS):
    with schema_context(tenant_world.schema):
        connection.tenant = tenant_world.tenant
        return demo_connections_seed(tenant_slug=tenant_world.tenant.slug, actor=SEED, urls=urls)


def _snapshot(tenant_world) -> dict:
    """Everything seeding writes, as stored."""
    with schema_context(tenant_world.schema):
        return {
            "connections": list(Connection.objects.order_by("key").values()),
            "partners": list(EdiPartner.objects.order_by("pk").values()),
            "subscriptions": list(TelemetrySubscription.objects.order_by("pk").values()),
            "rules": list(TelemetryRule.objects.order_by("pk").values()),
            "audit": AuditEvent.objects.count(),
        }


def _post(tenant_world, key: str, body: bytes, headers: dict[str, str]):
    return host_client(tenant_world.host).post(f"/hooks/{key}", data=body, content_type="application/json", headers=headers)


def _carrier_secret(tenant_world):
    with schema_context(tenant_world.schema):
        return signing_secrets_open(Connection.objects.get(key=CARRIER_KEY).inbound_secrets)[0]


# --- seeding ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_demo_tenant_gets_its_sandbox_connections_through_the_audited_services(world):
    for tenant_world in (world.acme, world.globex):
        slug = tenant_world.tenant.slug
        seeded = _seeded(tenant_world)
        assert set(seeded.created) == DEMO_KEYS
        with schema_context(tenant_world.schema):
            connections = {c.key: c for c in Connection.objects.filter(key__in=DEMO_KEYS)}
            assert {key: c.base_url for key, c in connections.items()} == {
                "erp": URLS["erp"],
                "tms": URLS["tms"],
                "wms": URLS["wms"],
                "carrier": URLS["carrier"],
                "carrier-edi": URLS["carrier"],
                "carrier-documents": URLS["carrier"],
                "reefer-telemetry": "mqtt://127.0.0.1:1883",
            }
            assert connections["erp"].auth_method == "api_key" and connections["erp"].credential_masks["key"].startswith("••••")
            tms = connections["tms"]
            assert tms.auth_method == "oauth2_client_credentials"
            assert tms.auth_settings["token_url"] == f"{URLS['tms']}/oauth/token"
            assert tms.auth_settings["client_id"] == f"baton-{slug}" and f"baton-{slug}" in DEMO_TMS_CLIENTS
            assert tms.settings["actions"]["tender_load"] == {"method": "POST", "path": "/api/order-tenders"}
            assert set(connections["erp"].settings["actions"]) >= {"confirm_order", "invoice_create"}
            carrier = connections["carrier"]
            assert (carrier.inbound_scheme, carrier.inbound_mapper, len(carrier.inbound_secret_masks)) == ("easypost", "easypost", 1)
            for pushing in ("erp", "carrier-documents"):  # Baton events as Standard Webhooks
                assert (connections[pushing].inbound_scheme, connections[pushing].inbound_mapper) == ("standard_webhooks", "canonical")
            partner = EdiPartner.objects.get(connection=connections["carrier-edi"])
            assert (partner.their_qualifier, partner.their_id, partner.our_id) == ("02", "SBXF", f"BATON{slug.upper()}")
            assert connections["carrier-edi"].inbound_mapper == "x12"
            subscription = TelemetrySubscription.objects.get(connection=connections["reefer-telemetry"])
            assert subscription.topic_filter == f"baton-demo/{slug}/reefers/+/telemetry"
            rule = subscription.rules.get()
            assert (rule.kind, rule.temperature_min, rule.temperature_max) == ("temperature_range", 2.0, 8.0)
            created = set(AuditEvent.objects.filter(action="connection.created").values_list("target_label", flat=True))
            assert {c.name for c in connections.values()} <= created
            assert AuditEvent.objects.filter(action="connection.inbound_configured").count() == 3
            assert AuditEvent.objects.filter(action="connection.edi_partner_created").count() == 1


@pytest.mark.django_db
def test_seeding_again_changes_nothing(world):
    for tenant_world in (world.acme, world.globex):
        _seeded(tenant_world)
    before = {name: _snapshot(tenant_world) for name, tenant_world in (("acme", world.acme), ("globex", world.globex))}
    for tenant_world in (world.acme, world.globex):
        again = _seeded(tenant_world)
        assert (again.created, again.moved, again.configured) == ([], [], [])
    assert {name: _snapshot(tenant_world) for name, tenant_world in (("acme", world.acme), ("globex", world.globex))} == before


@pytest.mark.django_db
def test_demo_connections_follow_the_sandbox_to_other_ports_keeping_secrets_and_edits(world):
    _seeded(world.acme)
    with schema_context(world.acme.schema):
        Connection.objects.filter(key="erp").update(name="Our ERP (sandbox)")
        masks = dict(Connection.objects.get(key="tms").credential_masks)
    moved = _seeded(world.acme, urls=demo_urls(8801))
    assert sorted(moved.moved) == ["carrier", "carrier-documents", "carrier-edi", "erp", "tms", "wms"]
    with schema_context(world.acme.schema):
        erp, tms = Connection.objects.get(key="erp"), Connection.objects.get(key="tms")
        assert (erp.name, erp.base_url) == ("Our ERP (sandbox)", "http://127.0.0.1:8801")
        assert tms.auth_settings["token_url"] == "http://127.0.0.1:8802/oauth/token" and tms.credential_masks == masks
        Connection.objects.filter(key="wms").update(base_url="https://wms.example.com")  # pointed elsewhere by a person
    assert "wms" not in _seeded(world.acme, urls=demo_urls(8701)).moved
    with schema_context(world.acme.schema):
        assert Connection.objects.get(key="wms").base_url == "https://wms.example.com"


@pytest.mark.django_db
def test_one_tenants_carrier_secret_does_not_open_another_tenants_hook(world):
    _seeded(world.acme)
    _seeded(world.globex)
    acme_secret, globex_secret = _carrier_secret(world.acme), _carrier_secret(world.globex)
    assert acme_secret.value != globex_secret.value
    body = json.dumps(tracker_event(tenant_slug="globex", sequence=1)).encode()

    refused = _post(world.acme, CARRIER_KEY, body, EASYPOST.sign(body, secrets=[globex_secret]))
    assert refused.status_code == 401, refused.content
    assert refused.json()["title"] == "Signature refused"
    with schema_context(world.acme.schema):
        assert not InboundEvent.objects.filter(connection__key=CARRIER_KEY).exists()

    assert _post(world.globex, CARRIER_KEY, body, EASYPOST.sign(body, secrets=[globex_secret])).status_code == 202
    assert _post(world.acme, CARRIER_KEY, body, EASYPOST.sign(body, secrets=[acme_secret])).status_code == 202


# --- what the traffic sends -----------------------------------------------------------------------


def test_tracker_events_move_each_shipment_through_the_carriers_milestones_as_baton_reads_them():
    codes = [normalize(mapper="easypost", body=json.dumps(tracker_event(tenant_slug="acme", sequence=n)).encode())[0] for n in range(5, 11)]
    assert [event.payload["code"] for event in codes] == ["pending", "in_transit", "in_transit", "out_for_delivery", "delivered", "pending"]
    assert {event.correlation["shipment"] for event in codes[:5]} == {"SHP-1001"} and codes[5].correlation["shipment"] == "SHP-1002"
    assert len({event.event_id for event in codes}) == 6


def test_reefer_readings_stay_cold_but_for_an_excursion_now_and_then():
    readings = [reefer_reading(tenant_slug="acme", sequence=n) for n in range(1, 49)]
    warm = [n for n, (_topic, reading) in enumerate(readings, 1) if not 2 <= reading["temperature"] <= 8]
    assert warm == [24, 48]
    topic, reading = readings[0]
    assert topic == "baton-demo/acme/reefers/TRL-ACME-2/telemetry" and reading["device_id"] == "TRL-ACME-2"


@pytest.mark.django_db
def test_the_carriers_edi_desk_writes_from_its_partner_to_us_and_a_resend_is_a_duplicate(world):
    _seeded(world.acme)
    status = ShipmentStatus(
        shipment_id="SHP-SO-1",
        pro_number="SBXF00000001",
        scac="SBXF",
        milestones=[TrackingMilestone(shipment_id="SHP-SO-1", status_code="X3", status_reason="NS", date=dt.date(2026, 11, 20))],
    )
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        first = DemoPartners().edi([status], control_number=1_234_511)
        again = DemoPartners().edi([status], control_number=1_234_511)
        event = InboundEvent.objects.get(pk=first["event_id"])
    assert (first["duplicate"], again) == (False, {"event_id": first["event_id"], "duplicate": True})
    (interchange,) = parse(event.body.encode()).interchanges
    assert (interchange.sender_id, interchange.receiver_id, interchange.control_number) == ("SBXF", "BATONACME", "001234511")
    (milestone,) = normalize(mapper="x12", body=event.body.encode())
    assert (milestone.payload["code"], milestone.correlation["shipment"]) == ("arrived_at_pickup", "SHP-SO-1")


@pytest.mark.django_db
def test_an_older_demo_connection_gains_the_actions_a_newer_demo_calls_keeping_its_own(world):
    _seeded(world.acme)
    with schema_context(world.acme.schema):
        erp = Connection.objects.get(key="erp")
        erp.settings = {**erp.settings, "actions": {"read_inventory": {"method": "GET", "path": "/our/stock"}}}
        erp.save()
    again = _seeded(world.acme)
    assert again.configured == ["erp: actions adjust_inventory, confirm_order, invoice_create, list_open_orders added"]
    with schema_context(world.acme.schema):
        actions = Connection.objects.get(key="erp").settings["actions"]
    assert actions["read_inventory"] == {"method": "GET", "path": "/our/stock"}  # a person's edit stays
    assert actions["confirm_order"] == {"method": "POST", "path": "/api/order-confirmations"}


# --- the order release through the real connector port ---------------------------------------------


@pytest.fixture
def sandboxes():
    systems = [ErpSandbox(), TmsSandbox(clients=DEMO_TMS_CLIENTS), WmsSandbox(), CarrierSandbox()]
    for system in systems:
        system.start()
    yield {system.name: system for system in systems}
    for system in systems:
        system.stop()


@pytest.fixture
def port():
    installed = ConnectionPort(FakeConnector(), *guard_defaults())
    previous = connector_port_set(installed)
    yield installed
    connector_port_set(previous)


@pytest.mark.django_db
def test_demo_orders_tender_to_the_sandbox_tms_with_oauth2_through_the_connection_port(world, sandboxes, port):
    call_command("seed_library", verbosity=0)
    urls = {name: system.url for name, system in sandboxes.items()}
    tms = sandboxes["tms"]
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        demo_connections_seed(tenant_slug="acme", actor=SEED, urls=urls)
        demo_data_seed(time_zone="America/Chicago", actor=SEED)
        SeedDemo()._demo_workflow(world.acme.users["tenant_admin"])
        definition = Definition.objects.get(key=DEMO_ORDER_KEY)
        published = definition.published_version
        assert (definition.template_version[:2], published.connection_bindings) == ("2.", {DEMO_CARRIER: "tms"})
        assert published.parameters["routing_guide"] == ROUTING_GUIDE

        order = demo_order(2)
        run, _created = run_start(definition=definition, input=order, trigger="api", correlation={"order": order["order_id"]}, actor=SEED)
        runs_advance_ready(owner="test", limit=10)
        run = Run.objects.get(pk=run.pk)
        assert (run.status, run.current_step) == ("waiting", "wait-990"), run.error
    (effect,) = tms.effects_for("tender")
    assert effect.payload["order"]["order_id"] == "SHP-SO-AC0000002" and effect.idempotency_key.endswith(":tender")
    assert effect.payload["carrier"] == "SBXF"
    (tender_call,) = [request for request in tms.requests if request.path == "/api/order-tenders"]
    assert tender_call.headers["Authorization"].startswith("Bearer ")
    assert [request.path for request in tms.requests if request.path == "/oauth/token"] == ["/oauth/token"]


@pytest.mark.django_db
def test_an_older_demos_1x_order_release_moves_to_2x_as_a_new_published_version(world):
    call_command("seed_library", verbosity=0)
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        demo_connections_seed(tenant_slug="acme", actor=SEED, urls=URLS)
        old = TemplateVersion.objects.get(template__key="order-to-shipment-release", version="1.0.0")
        SeedDemo()._clone_published(
            old,
            key=DEMO_ORDER_KEY,
            name="Order release",
            parameters={"carrier_connection": DEMO_CARRIER},
            bindings={DEMO_CARRIER: "tms"},
            admin=admin,
        )
        SeedDemo()._demo_workflow(admin)
        definition = Definition.objects.get(key=DEMO_ORDER_KEY)
        assert Definition.objects.filter(template_key="order-to-shipment-release").count() == 1
        assert (definition.template_version, definition.published_version.number) == ("2.0.0", 2)
        assert definition.published_version.connection_bindings == {DEMO_CARRIER: "tms"}
        SeedDemo()._demo_workflow(admin)
        assert definition.versions.count() == 2


@pytest.mark.django_db
def test_every_domain_template_of_the_library_is_cloned_and_published_once(world):
    call_command("seed_library", verbosity=0)
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        seed = SeedDemo(stdout=io.StringIO())
        seed._demo_workflow(admin)
        seed._domain_workflows(admin)
        covered = {definition.template_key for definition in Definition.objects.exclude(published_version=None)}
        assert {template["key"] for template in domain_templates()} <= covered
        count = Definition.objects.count()
        seed._domain_workflows(admin)
        assert Definition.objects.count() == count


@pytest.mark.django_db
def test_a_demo_seeded_before_the_connections_gets_its_bindings_in_a_new_version(world):
    call_command("seed_library", verbosity=0)
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        SeedDemo()._demo_workflow(admin)  # as an older demo: no TMS yet, so nothing to rebind to
        definition = Definition.objects.get(key=DEMO_ORDER_KEY)
        definition.versions.update(connection_bindings={})  # an older seed bound nothing
        SeedDemo()._demo_workflow(admin)
        assert definition.versions.count() == 1
        demo_connections_seed(tenant_slug="acme", actor=SEED, urls=URLS)
        SeedDemo()._demo_workflow(admin)
        definition.refresh_from_db()
        assert (definition.published_version.number, definition.published_version.connection_bindings) == (2, {DEMO_CARRIER: "tms"})
        SeedDemo()._demo_workflow(admin)
        assert definition.versions.count() == 2


# --- a traffic tick through a real web server -----------------------------------------------------


@pytest.fixture(scope="module")
def web(tmp_path_factory, django_db_setup, django_db_blocker):
    with web_server(tmp_path_factory.mktemp("demo-web") / "web.log") as port:
        yield port


@pytest.fixture
def demo_tenants(world, committed):
    for tenant_world in (world.acme, world.globex):
        _seeded(tenant_world)
    yield (world.acme, world.globex)
    for tenant_world in (world.acme, world.globex):
        with schema_context(tenant_world.schema):
            InboundEvent.objects.filter(connection__key__in=DEMO_KEYS).delete()
            Connection.objects.filter(key__in=DEMO_KEYS).delete()


def test_a_traffic_tick_lands_a_malformed_webhook_in_each_tenants_inbox_once(world, web, demo_tenants, settings):
    settings.BATON_PUBLIC_PORT = str(web)  # the tenants' public URLs: where the carrier posts
    sequence = 157  # a tick with a malformed event
    for tenant_world in demo_tenants:
        slug = tenant_world.tenant.slug
        with schema_context(tenant_world.schema):
            connection.tenant = tenant_world.tenant
            report = demo_traffic_tick(sequence=sequence, publish=False, calls=False)
            assert report["malformed"] == 202, report
            assert report["simulator"] == {"tenders": [], "moves": [], "papers": []}  # no shipments to move yet
            (event,) = InboundEvent.objects.filter(connection__key=CARRIER_KEY)
            assert (event.external_id, event.channel) == (f"evt_{slug}_{sequence}_missing_code", "webhook")
            assert event_dispatch(event.pk) == "quarantined"
            event.refresh_from_db()
            assert event.error_pointer == "/result/tracking_code"
            assert not InboundEvent.objects.filter(connection__key=TELEMETRY_KEY).exists()

    with schema_context(world.acme.schema):  # the same tick again (a redelivered task): nothing new
        connection.tenant = world.acme.tenant
        again = demo_traffic_tick(sequence=sequence, publish=False, calls=False)
        assert again["malformed"] == 200
        assert InboundEvent.objects.filter(connection__key__in=DEMO_KEYS).count() == 1


def test_a_tenant_without_the_demo_connections_gets_no_traffic(world, committed):
    with schema_context(world.globex.schema):
        connection.tenant = world.globex.tenant
        assert demo_traffic_tick(sequence=1, publish=False, calls=False) == {}
