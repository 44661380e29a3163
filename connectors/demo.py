"""The demo's connections and its live inbound traffic (`make run`). Development only.

Seeding (`demo_connections_seed`, called by `manage.py seed_demo` in each demo tenant) gives the
tenant an ERP, a TMS, a WMS and a carrier pointing at the sandbox systems `make run` starts
(`connectors.sandbox`, on loopback from BATON_SANDBOX_PORT), the carrier's EDI desk as an EDI
partner, the carrier's document desk (PODs, invoices), and an MQTT telemetry feed on a topic of
the tenant's own – all through the services the connections pages use, each write audited. The
ERP and the document desk push signed webhooks of Baton events (`order.received`,
`document.received`, `invoice.received`). It is idempotent: what exists is left alone, except a
demo connection's sandbox address, which follows BATON_SANDBOX_PORT, and actions a newer demo
calls that an older seed did not give the connection (added; the others are kept as they are).

Traffic (`demo_traffic_tick`, every DEMO_TRAFFIC_SECONDS per ready tenant from beat when
BATON_DEMO_TRAFFIC is on) runs the simulator (`logistics.simulator`: orders into the ERP and to
Baton, the carrier's 990s, milestones, PODs and invoices for the tenant's own shipments) through
the senders here – signed webhooks to the tenant's `/hooks/<key>` on its public host, X12 from
the carrier's EDI desk (`edi_receive`) –, posts a tracker event without its tracking code now and
then (quarantined, to fix and replay), publishes a reefer reading when an MQTT broker answers, and
reads from each REST connection through the engine's connector port, so the connections list
shows live calls and a fault switched on in a sandbox shows up there.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import math
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from celery import shared_task
from paho.mqtt.enums import CallbackAPIVersion

from connectors.auth import signing_secrets_open
from connectors.edi import PartnerSettings, write_interchange
from connectors.edi_transport import EdiPartnerInput, edi_partner_configure, edi_receive
from connectors.inbox import connection_inbound_configure
from connectors.models import (
    AuthMethod,
    Connection,
    ConnectionKind,
    EdiPartner,
    InboundMapper,
    InboundScheme,
    TelemetryRuleKind,
    TelemetrySubscription,
    Transport,
)
from connectors.safety import HostUnresolved, OutboundRefused, host_check
from connectors.sandbox import DEMO_TMS_CLIENTS, demo_urls
from connectors.sandbox.carrier import CARRIER, MILESTONES, loopback_address
from connectors.selectors import connection_input
from connectors.services import ConnectionInput, connection_create, connection_test, connection_update
from connectors.signatures import EASYPOST
from connectors.telemetry.services import telemetry_rule_set, telemetry_subscription_create
from governance.services import Actor
from tenants.db import connection as db
from tenants.tasks import ready_tenants_send

DEMO_TRAFFIC_SECONDS = 5
DEMO_MARK = "demo"  # the setting naming the sandbox system a demo connection was made for
DEMO_MQTT_URL = "mqtt://127.0.0.1:1883"
# The connection keys; workflows name connections by key (the order release's carrier is the TMS).
ERP, TMS, WMS, CARRIER_KEY, EDI_KEY, TELEMETRY_KEY = "erp", "tms", "wms", "carrier", "carrier-edi", "reefer-telemetry"
DOCUMENTS_KEY = "carrier-documents"
# Connections that push Baton's own events (canonical) as Standard Webhooks.
EVENT_HOOKS = (ERP, DOCUMENTS_KEY)
TENDER_CONNECTION = TMS
# What a tick reads from each REST connection (an action of its `settings["actions"]`).
DEMO_READS = {ERP: "read_inventory", TMS: "list_tenders", WMS: "read_inventory", CARRIER_KEY: "read_sample_tracker"}
# How often, in ticks, a tick adds a malformed tracker webhook and a too-warm reefer.
MALFORMED_EVERY, EXCURSION_EVERY = 9, 24
REEFER_RANGE_C = (2.0, 8.0)
OUR_EDI_QUALIFIER = "ZZ"

Poster = Callable[[str, bytes, dict[str, str]], int]


def _get(path: str) -> dict[str, str]:
    return {"method": "GET", "path": path}


def _post(path: str) -> dict[str, str]:
    return {"method": "POST", "path": path}


def _api_key(slug: str) -> dict[str, str]:
    return {"key": f"sbx_{slug}_{secrets.token_urlsafe(18)}"}


def demo_connection_inputs(*, tenant_slug: str, urls: Mapping[str, str]) -> list[ConnectionInput]:
    """The demo connections of one tenant, pointing at the sandbox `urls` (system name to base URL)."""
    client_id = f"baton-{tenant_slug}"
    if client_id not in DEMO_TMS_CLIENTS:
        raise ValueError(f"the TMS sandbox has no OAuth2 client for '{tenant_slug}': add {client_id} to DEMO_TMS_CLIENTS")
    inputs = [
        ConnectionInput(
            key=ERP,
            name="Sandbox ERP",
            kind=ConnectionKind.ERP,
            base_url=urls["erp"],
            auth_method=AuthMethod.API_KEY,
            auth_settings={"header": "X-Api-Key"},
            secrets=_api_key(tenant_slug),
            settings={
                DEMO_MARK: "erp",
                "actions": {
                    "read_inventory": _get("/api/inventory"),
                    "list_open_orders": _get("/api/orders?status=open"),
                    "confirm_order": _post("/api/order-confirmations"),  # the order release
                    "invoice_create": _post("/api/invoices"),  # proof of delivery to invoice
                    "adjust_inventory": _post("/api/inventory/adjustments"),  # inventory sync
                },
            },
        ),
        ConnectionInput(
            key=TMS,
            name="Sandbox TMS",
            kind=ConnectionKind.TMS,
            base_url=urls["tms"],
            auth_method=AuthMethod.OAUTH2,
            auth_settings={"token_url": f"{urls['tms']}/oauth/token", "client_id": client_id, "client_auth": "basic"},
            secrets={"client_secret": DEMO_TMS_CLIENTS[client_id]},
            settings={
                DEMO_MARK: "tms",
                "actions": {
                    "tender_load": _post("/api/order-tenders"),
                    "cancel_tender": _post("/api/order-tenders/cancellations"),
                    "list_tenders": _get("/api/tenders"),
                },
            },
        ),
        ConnectionInput(
            key=WMS,
            name="Sandbox WMS",
            kind=ConnectionKind.WMS,
            base_url=urls["wms"],
            auth_method=AuthMethod.API_KEY,
            auth_settings={"header": "X-Api-Key"},
            secrets=_api_key(tenant_slug),
            settings={
                DEMO_MARK: "wms",
                "actions": {
                    "read_inventory": _get("/api/inventory"),
                    "release_order": _post("/api/releases"),
                    "adjust_inventory": _post("/api/inventory/adjustments"),  # inventory sync
                },
            },
        ),
        ConnectionInput(
            key=CARRIER_KEY,
            name=f"Sandbox carrier ({CARRIER})",
            kind=ConnectionKind.CARRIER,
            base_url=urls["carrier"],
            auth_method=AuthMethod.API_KEY,
            auth_settings={"header": "X-Api-Key"},
            secrets=_api_key(tenant_slug),
            settings={
                DEMO_MARK: "carrier",
                "actions": {"create_tracker": _post("/api/trackers"), "read_sample_tracker": _get("/api/trackers/SBX0000000001")},
            },
        ),
        ConnectionInput(
            key=EDI_KEY,
            name=f"Sandbox carrier EDI ({CARRIER})",
            kind=ConnectionKind.EDI_PARTNER,
            base_url=urls["carrier"],
            settings={DEMO_MARK: "carrier"},
        ),
        ConnectionInput(
            key=DOCUMENTS_KEY,
            name=f"Sandbox carrier documents ({CARRIER})",
            kind=ConnectionKind.CARRIER,
            base_url=urls["carrier"],
            settings={DEMO_MARK: "carrier", "pushes": "document.received, invoice.received"},
        ),
        ConnectionInput(
            key=TELEMETRY_KEY,
            name="Reefer telemetry (MQTT)",
            kind=ConnectionKind.IOT,
            transport=Transport.MQTT,
            base_url=DEMO_MQTT_URL,
            settings={DEMO_MARK: "mqtt"},
        ),
    ]
    for data in inputs:  # a sandbox answers at once, or something is wrong with it
        data.connect_timeout, data.read_timeout = 2.0, 5.0
        if data.transport == Transport.HTTPS:
            data.health_path = "/health"
    return inputs


def telemetry_topic_filter(tenant_slug: str) -> str:
    return f"baton-demo/{tenant_slug}/reefers/+/telemetry"


def our_edi_id(tenant_slug: str) -> str:
    return f"BATON{tenant_slug.upper()}"[:15]


@dataclass
class DemoSeeded:
    created: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)  # sandbox addresses that followed BATON_SANDBOX_PORT
    configured: list[str] = field(default_factory=list)  # webhooks, EDI partner, telemetry subscription


def demo_connections_seed(*, tenant_slug: str, actor: Any, urls: Mapping[str, str] | None = None) -> DemoSeeded:
    """In the current tenant's schema: create the demo connections that are missing, with their
    webhook secret, EDI partner and telemetry subscription (see the module). A second call changes
    nothing."""
    seeded = DemoSeeded()
    for data in demo_connection_inputs(tenant_slug=tenant_slug, urls=urls or demo_urls()):
        connection = Connection.objects.filter(key=data.key).first()
        if connection is None:
            connection = connection_create(data=data, actor=actor)
            seeded.created.append(data.key)
        else:
            moved = _sandbox_moved(connection, data)
            missing = _actions_missing(connection, data)
            if moved or missing:
                current = connection_input(connection)  # keeps what a person changed, and every secret
                if moved:
                    current.base_url = data.base_url
                    if "token_url" in data.auth_settings and current.auth_method == AuthMethod.OAUTH2:
                        current.auth_settings["token_url"] = data.auth_settings["token_url"]
                    seeded.moved.append(data.key)
                if missing:
                    current.settings = {**current.settings, "actions": {**current.settings.get("actions", {}), **missing}}
                    seeded.configured.append(f"{data.key}: actions {', '.join(sorted(missing))} added")
                connection = connection_update(connection=connection, data=current, actor=actor)
        seeded.configured += _connection_extras(connection, tenant_slug, actor)
    return seeded


def _actions_missing(connection: Connection, data: ConnectionInput) -> dict[str, Any]:
    """The demo's actions a demo connection seeded by an older demo lacks (none for a connection a
    person took over: another sandbox mark, or none)."""
    if (connection.settings or {}).get(DEMO_MARK) != data.settings.get(DEMO_MARK):
        return {}
    have = (connection.settings or {}).get("actions") or {}
    return {name: action for name, action in data.settings.get("actions", {}).items() if name not in have}


def _sandbox_moved(connection: Connection, data: ConnectionInput) -> bool:
    """A demo connection still on a sandbox on this machine, now at other ports."""
    mark = data.settings.get(DEMO_MARK)
    if mark == "mqtt" or (connection.settings or {}).get(DEMO_MARK) != mark:
        return False
    if urlsplit(connection.base_url).hostname != urlsplit(data.base_url).hostname:
        return False  # pointed elsewhere by a person: theirs
    token_url = data.auth_settings.get("token_url")
    return connection.base_url != data.base_url or bool(token_url and connection.auth_settings.get("token_url") != token_url)


def _connection_extras(connection: Connection, tenant_slug: str, actor: Any) -> list[str]:
    done: list[str] = []
    if connection.key == CARRIER_KEY and not connection.inbound_scheme:
        connection_inbound_configure(connection=connection, scheme=InboundScheme.EASYPOST, mapper=InboundMapper.EASYPOST, actor=actor)
        done.append(f"{connection.key}: webhooks")
    if connection.key in EVENT_HOOKS and not connection.inbound_scheme:
        connection_inbound_configure(
            connection=connection, scheme=InboundScheme.STANDARD_WEBHOOKS, mapper=InboundMapper.CANONICAL, actor=actor
        )
        done.append(f"{connection.key}: webhooks")
    if connection.kind == ConnectionKind.EDI_PARTNER and not EdiPartner.objects.filter(connection=connection).exists():
        partner = EdiPartnerInput(
            their_qualifier="02",  # SCAC
            their_id=CARRIER,
            our_qualifier=OUR_EDI_QUALIFIER,
            our_id=our_edi_id(tenant_slug),
            usage="T",
        )
        edi_partner_configure(connection=connection, data=partner, actor=actor)
        done.append(f"{connection.key}: EDI partner")
    if connection.transport == Transport.MQTT and not TelemetrySubscription.objects.filter(connection=connection).exists():
        subscription = telemetry_subscription_create(connection=connection, topic_filter=telemetry_topic_filter(tenant_slug), actor=actor)
        low, high = REEFER_RANGE_C
        telemetry_rule_set(
            subscription=subscription, kind=TelemetryRuleKind.TEMPERATURE_RANGE, temperature_min=low, temperature_max=high, actor=actor
        )
        done.append(f"{connection.key}: telemetry subscription")
    return done


# --- traffic ---------------------------------------------------------------------------------------


def loopback_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST to a host on this machine (`*.localhost` is connected to on 127.0.0.1, named in the
    Host header); the answer's status. Any other host is refused (ValueError)."""
    parts = urlsplit(url)
    client = http.client.HTTPConnection(loopback_address(parts.hostname or ""), parts.port or 80, timeout=10)
    try:
        client.request("POST", parts.path or "/", body=body, headers={"Host": parts.netloc, **headers})
        response = client.getresponse()
        response.read()
        return response.status
    finally:
        client.close()


def _demo_connection(key: str) -> Connection | None:
    connection = Connection.objects.filter(key=key, enabled=True).first()
    return connection if connection is not None and DEMO_MARK in (connection.settings or {}) else None


def tracker_event(*, tenant_slug: str, sequence: int) -> dict[str, Any]:
    """The carrier's tracking event for tick `sequence`: shipments move through the sandbox
    carrier's milestones, one a tick, a new shipment every len(MILESTONES) ticks."""
    shipment_number, step = divmod(sequence, len(MILESTONES))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    details = [
        {
            "object": "TrackingDetail",
            "message": message,
            "status": status,
            "datetime": now,
            "source": CARRIER,
            "tracking_location": {"object": "TrackingLocation", "city": city, "state": state, "country": "US", "zip": zip_code},
        }
        for status, message, city, state, zip_code in MILESTONES[: step + 1]
    ]
    status = MILESTONES[step][0]
    tracker = {
        "id": f"trk_{tenant_slug}_{shipment_number}",
        "object": "Tracker",
        "mode": "test",
        "tracking_code": f"SBX{shipment_number % 10_000_000:07d}",
        "shipment_id": f"SHP-{1000 + shipment_number % 50}",
        "carrier": CARRIER,
        "status": status,
        "signed_by": "R. DOCK" if status == "delivered" else None,
        "est_delivery_date": None,
        "tracking_details": details,
        "updated_at": now,
    }
    return {
        "id": f"evt_{tenant_slug}_{sequence}",
        "object": "Event",
        "mode": "test",
        "description": "tracker.created" if step == 0 else "tracker.updated",
        "created_at": now,
        "previous_attributes": {"status": MILESTONES[step - 1][0] if step else "unknown"},
        "result": tracker,
    }


def _malformed(carrier: Connection, tenant_slug: str, sequence: int, hook_url: str, poster: Poster) -> int | str:
    """The carrier's bug now and then: a tracker event without its tracking code, quarantined in
    the inbox for a person to fix and replay."""
    secret = signing_secrets_open(carrier.inbound_secrets)[0]
    broken = tracker_event(tenant_slug=tenant_slug, sequence=sequence)
    broken["id"] += "_missing_code"
    del broken["result"]["tracking_code"]
    body = json.dumps(broken, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "baton-demo-carrier/1", **EASYPOST.sign(body, secrets=[secret])}
    try:
        return poster(hook_url, body, headers)
    except (OSError, ValueError) as error:  # the web server is not up yet: the next tick tries again
        return f"not delivered: {error}"


class FixedControlNumbers:
    """Control numbers chosen by the sender, so that the same document sent again is the same
    interchange (the inbox answers it as a duplicate)."""

    def __init__(self, number: int):
        self.number = number % 999_999_999 or 1

    def next_interchange(self, partner: str) -> int:
        return self.number

    def next_group(self, partner: str) -> int:
        return self.number

    def next_set(self, partner: str) -> int:
        return 1


def partner_settings(partner: EdiPartner) -> PartnerSettings:
    """The partner's envelope as the partner writes it: from them to us."""
    return PartnerSettings(
        partner=partner.connection.key,
        sender_qualifier=partner.their_qualifier,
        sender_id=partner.their_id,
        receiver_qualifier=partner.our_qualifier,
        receiver_id=partner.our_id,
        version=partner.version,
        group_version=partner.group_version,
        usage=partner.usage,
    )


class DemoPartners:
    """The outside world as the simulator (`logistics.simulator`) plays it in the current tenant:
    the carrier's and the ERP's signed webhooks to the tenant's public host, the carrier's EDI desk,
    and calls straight to the sandbox systems (what their own users do there). Each answers what
    happened, never raises for a partner that is not there yet: the next tick tries again."""

    def __init__(self, poster: Poster | None = None):
        self.poster = poster or loopback_post

    def webhook(self, *, key: str, document: dict[str, Any], event_id: str) -> int | str:
        """POST `document` to the tenant's `/hooks/<key>`, signed with the connection's secret in
        its scheme; the answer's HTTP status (202 stored, 200 a duplicate), or why not sent."""
        from connectors.inbox import signature_scheme
        from tenants.selectors import site_current

        connection = _demo_connection(key)
        if connection is None or not connection.inbound_scheme:
            return f"not sent: no demo connection {key!r} taking webhooks"
        secret = signing_secrets_open(connection.inbound_secrets)[0]
        body = json.dumps(document, separators=(",", ":")).encode()
        scheme = signature_scheme(connection.inbound_scheme, connection.inbound_scheme_settings)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "baton-demo/1",
            **scheme.sign(body, secrets=[secret], webhook_id=event_id),
        }
        try:
            return self.poster(f"{site_current().base_url}/hooks/{key}", body, headers)
        except (OSError, ValueError) as error:
            return f"not delivered: {error}"

    def edi(self, documents: list[Any], *, control_number: int, now: dt.datetime | None = None) -> dict[str, Any]:
        """The carrier's EDI desk sends `documents` (214, 990, 210…) in one interchange."""
        partner = EdiPartner.objects.select_related("connection").filter(connection__key=EDI_KEY, connection__enabled=True).first()
        if partner is None:
            return {"skipped": "no demo EDI partner"}
        text = write_interchange(documents, partner=partner_settings(partner), control_numbers=FixedControlNumbers(control_number), now=now)
        received = edi_receive(connection=partner.connection, data=text, channel="api")
        return {"event_id": received.event.pk, "duplicate": received.duplicate}

    def sandbox_post(self, *, key: str, path: str, body: dict[str, Any], idempotency_key: str) -> tuple[int, Any]:
        """POST to the sandbox system behind demo connection `key`, as its own users would (not
        through Baton's connector port): (status, answer), or (0, why) when it cannot be reached."""
        connection = _demo_connection(key)
        if connection is None:
            return 0, f"no demo connection {key!r}"
        parts = urlsplit(connection.base_url)
        try:
            client = http.client.HTTPConnection(loopback_address(parts.hostname or ""), parts.port or 80, timeout=5)
        except ValueError as error:  # a person pointed it elsewhere: not the sandbox's
            return 0, str(error)
        try:
            headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key, "Host": parts.netloc}
            client.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            response = client.getresponse()
            raw = response.read()
            try:
                answer: Any = json.loads(raw) if raw else None
            except ValueError:
                answer = raw.decode("utf-8", errors="replace")
            return response.status, answer
        except OSError as error:
            return 0, f"not reached: {error}"
        finally:
            client.close()


def reefer_reading(*, tenant_slug: str, sequence: int) -> tuple[str, dict[str, Any]]:
    """A trailer's topic and reading for tick `sequence`: cold, drifting along Memphis to Dallas,
    too warm every EXCURSION_EVERY ticks (the rule raises an excursion; the next reading clears it)."""
    trailer = f"TRL-{tenant_slug.upper()}-{1 + sequence % 2}"
    leg = (sequence % 60) / 60
    temperature = 9.4 if sequence % EXCURSION_EVERY == 0 else round(4.5 + 1.2 * math.sin(sequence / 5), 1)
    reading = {
        "device_id": trailer,
        "shipment": f"SHP-{1000 + (sequence // len(MILESTONES)) % 50}",
        "lat": round(35.15 - 2.37 * leg, 4),
        "lon": round(-90.05 - 6.75 * leg, 4),
        "temperature": temperature,
        "ts": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return telemetry_topic_filter(tenant_slug).replace("+", trailer), reading


def _reading_publish(tenant_slug: str, sequence: int) -> str:
    """Publish a reading if the telemetry connection's broker answers (it may well not be running)."""
    connection = _demo_connection(TELEMETRY_KEY)
    if connection is None:
        return "skipped: no demo telemetry connection"
    parts = urlsplit(connection.base_url)
    host, port = parts.hostname or "", parts.port or 1883
    try:
        address = host_check(host, port)[0]
        socket.create_connection((address, port), timeout=0.5).close()
    except (OutboundRefused, HostUnresolved, OSError) as error:
        return f"skipped: no MQTT broker answers at {host}:{port} ({error})"
    topic, reading = reefer_reading(tenant_slug=tenant_slug, sequence=sequence)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"baton-demo-{db.schema_name}")
    try:
        client.connect(address, port, keepalive=10)
        client.loop_start()
        published = client.publish(topic, json.dumps(reading), qos=1)
        published.wait_for_publish(timeout=3)
        return f"published {reading['temperature']} °C to {topic}" if published.is_published() else f"not acknowledged by {host}:{port}"
    except (OSError, RuntimeError, ValueError) as error:
        return f"not published: {error}"
    finally:
        client.disconnect()  # first: the network thread then stops at once instead of at its next wake-up
        client.loop_stop()


def _reads(sequence: int) -> dict[str, str]:
    """One read per REST demo connection through the engine's port (circuit, rate limit, auth)."""
    from workflows.engine import ConnectorError, connector_port

    results: dict[str, str] = {}
    for key, action in DEMO_READS.items():
        if _demo_connection(key) is None:
            continue
        try:
            connector_port().call(
                tenant=db.schema_name, connection=key, action=action, payload={}, idempotency_key=f"demo-{sequence}-{key}"
            )
            results[key] = "ok"
        except ConnectorError as error:
            results[key] = error.kind
    return results


def _first_tests(actor: Any) -> list[str]:
    """Test each demo connection once, so the list says how the first call went."""
    tested = []
    for connection in Connection.objects.filter(last_test_at__isnull=True, settings__has_key=DEMO_MARK):
        result = connection_test(connection=connection, actor=actor)
        tested.append(f"{connection.key}: {'ok' if result.ok else result.message}")
    return tested


def demo_traffic_tick(
    *, sequence: int, poster: Poster | None = None, publish: bool = True, calls: bool = True, simulate: bool = True
) -> dict[str, Any]:
    """One tick of demo traffic in the current tenant (see the module); what happened, for the
    task's log. A tenant without the demo carrier connection gets none."""
    from tenants.selectors import site_current

    carrier = _demo_connection(CARRIER_KEY)
    if carrier is None or not carrier.inbound_scheme:
        return {}
    tenant_slug = site_current().tenant_slug
    actor = Actor.system("demo-traffic")
    report: dict[str, Any] = {"sequence": sequence}
    if simulate:
        from logistics.simulator import simulator_tick

        report["simulator"] = simulator_tick(sequence=sequence, partners=DemoPartners(poster))
    if sequence % MALFORMED_EVERY == 4:
        hook_url = f"{site_current().base_url}/hooks/{carrier.key}"
        report["malformed"] = _malformed(carrier, tenant_slug, sequence, hook_url, poster or loopback_post)
    if publish:
        report["telemetry"] = _reading_publish(tenant_slug, sequence)
    if calls:
        report["tests"] = _first_tests(actor)
        report["reads"] = _reads(sequence)
    return report


@shared_task(name="connectors.demo_traffic_all")
def demo_traffic_all() -> list[str]:
    """From beat (BATON_DEMO_TRAFFIC): a tick in every ready tenant; tenants without the demo
    connections skip it."""
    return ready_tenants_send(demo_traffic, int(time.time() // DEMO_TRAFFIC_SECONDS))


@shared_task(name="connectors.demo_traffic")
def demo_traffic(sequence: int) -> dict[str, Any]:
    """Inside one tenant's schema; the report is the task's result in the worker's log."""
    return demo_traffic_tick(sequence=sequence)
