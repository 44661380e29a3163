"""A mid-size 3PL's day replayed into one tenant, against the same replay into an empty tenant.

The day (issue 5): SHIPMENTS shipments (20,000) with EVENTS_PER_SHIPMENT tracking events each
(10), PODS proofs of delivery (2,000) and INVOICES carrier invoices (2,000), all through the real
stack: gunicorn, the events inbox, the tenant's dispatcher and the workflow engine on real Celery
workers with beat, in a throwaway database.

- Tracking: WEBHOOK_SHARE of the shipments (0.3) travel with an API carrier whose EasyPost-style
  tracker webhooks (signed, one request per event) go to `/hooks/carrier-hooks`; the others with two
  EDI carriers whose X12 214s arrive as files through `POST /api/v1/connections/<key>/interchanges`,
  one file per carrier and slice of the day, every milestone of the slice in it.
- Delays: DELAY_SHARE of the shipments (0.05) are delayed on the way – a 214 `SD` status (EDI
  carriers) or a tracker ETA past the delivery appointment (the API carrier) – and each must have an
  open delay exception, opened by the published "Carrier exception management" workflow.
- PODs: `document.received` events with the file (Standard Webhooks, `/hooks/documents`) one slice
  after delivery; invoices: X12 210s in one file per carrier and slice, one slice after the POD, a
  tenth of them over the carrier's tolerance. "Proof of delivery to invoice" and "Freight claims"
  are published, so each pair is matched, a customer invoice PDF rendered in the brand and sent to
  the ERP (a fake partner on loopback), or disputed.

The day is cut into SLICES slices; a shipment's events fall into consecutive slices, so the same
shipment's events never race each other; within a slice the webhooks and documents go out first
and each carrier's files at the slice's end, as carriers batch. The replay runs the day's clock
compressed into REPLAY_SECONDS (480 s: 180 times real time), open loop: every request is sent
when it is due, over CLIENTS keep-alive connections, and a server that falls behind shows as late
requests and a longer wall time rather than as fewer requests (REPLAY_SECONDS=0 sends flat out,
for capacity). Wall time runs from the first request to the moment every event was handed on,
every invoice approved or disputed and no workflow run left for the engine to advance; events/s
is tracking events over that time. Latency of a delay: from the answer to the request that
carried it (webhook or file) to its exception's `opened_at` – measured while the system keeps up
with the day, which is what an operator sees.

The baseline is the same stream on the same clock into an empty tenant (same connections, no
shipments, no workflows): the platform's cost of taking the traffic in, without the domain's work;
compare the CPU seconds the two used.

    BENCH_DOMAIN_SHIPMENTS=2000 BENCH_DOMAIN_PODS=200 BENCH_DOMAIN_INVOICES=200 .venv/bin/python -m bench.domain   # quick
    make bench                                                                                                  # full

Environment: BENCH_DOMAIN_SHIPMENTS (20000), BENCH_DOMAIN_PODS (2000), BENCH_DOMAIN_INVOICES (2000),
BENCH_DOMAIN_SLICES (60), BENCH_DOMAIN_REPLAY_SECONDS (480; 0 sends flat out), BENCH_DOMAIN_CLIENTS (16), BENCH_DOMAIN_WEBHOOK_SHARE (0.3),
BENCH_DOMAIN_DELAY_SHARE (0.05), BENCH_DOMAIN_WORKERS (2), BENCH_DOMAIN_WEB_WORKERS (2),
BENCH_DOMAIN_WEB_THREADS (4), BENCH_DOMAIN_SPLIT (1: the dispatcher in a worker of its own), BENCH_DOMAIN_SPLIT_NICE (5),
BENCH_DOMAIN_DRAIN_SECONDS (1200), BENCH_DOMAIN_SKIP_BASELINE,
BENCH_DOMAIN_PYSPY_SECONDS, BENCH_DOMAIN_KEEP_LOGS, BENCH_DOMAIN_OUT.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import queue
import random
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.engine import (
    ROOT,
    CpuMeter,
    Processes,
    RssSampler,
    Vacuumer,
    isolated_run,
    percentile,
    pyspy_sample,
    pyspy_summary,
)
from bench.machine import machine


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


SHIPMENTS = _env_int("BENCH_DOMAIN_SHIPMENTS", 20_000)
EVENTS_PER_SHIPMENT = 10
PODS = _env_int("BENCH_DOMAIN_PODS", 2_000)
INVOICES = _env_int("BENCH_DOMAIN_INVOICES", 2_000)
SLICES = _env_int("BENCH_DOMAIN_SLICES", 60)
CLIENTS = _env_int("BENCH_DOMAIN_CLIENTS", 16)
WEBHOOK_SHARE = _env_float("BENCH_DOMAIN_WEBHOOK_SHARE", 0.3)
DELAY_SHARE = _env_float("BENCH_DOMAIN_DELAY_SHARE", 0.05)
OVER_TOLERANCE_EVERY = 10  # one invoice in ten is over the carrier's tolerance
WORKERS = _env_int("BENCH_DOMAIN_WORKERS", 2)
SPLIT = _env_int("BENCH_DOMAIN_SPLIT", 1)
SPLIT_NICE = _env_int("BENCH_DOMAIN_SPLIT_NICE", 5)
WEB_WORKERS = _env_int("BENCH_DOMAIN_WEB_WORKERS", 2)
WEB_THREADS = _env_int("BENCH_DOMAIN_WEB_THREADS", 4)
REPLAY_SECONDS = _env_int("BENCH_DOMAIN_REPLAY_SECONDS", 480)  # the day's clock compressed into this; 0: flat out
PYSPY_SECONDS = _env_int("BENCH_DOMAIN_PYSPY_SECONDS", 0)  # > 0: py-spy samples the workers that long in the day's replay
DRAIN_SECONDS = _env_int("BENCH_DOMAIN_DRAIN_SECONDS", 1200)
LOG_LEVEL = os.environ.get("BENCH_DOMAIN_LOG_LEVEL", "WARNING")
OUT = Path(os.environ.get("BENCH_DOMAIN_OUT", ROOT / "bench" / "results" / "domain.json"))
TAG = f"bench-domain-{os.getpid()}"
BENCH_DB = f"baton_bench_domain_{os.getpid()}"
TARGET_WALL_SECONDS = 600
TARGET_DELAY_SECONDS = 5.0

API_CARRIER = "APIX"
EDI_CARRIERS = ("EDIA", "EDIB")
HOOKS_KEY, DOCUMENTS_KEY, ERP_KEY = "carrier-hooks", "documents", "erp"
CUSTOMERS = 50
SITES = 20
DAY_TEMPLATES = {  # what the day's tenant has published: template key -> parameters
    "carrier-exception-management": {},
    "pod-to-invoice": {"erp_connection": ERP_KEY, "pod_within": "P1D", "invoice_within": "P1D"},
    "freight-claims": {},
}
# A shipment's journey in each channel's own words: ten events, the last one the delivery.
X12_JOURNEY = ("X3", "AF", "X6", "X6", "X6", "X6", "X6", "OO", "X1", "D1")
X12_DELAY_AT, X12_DELAY_CODE = 4, "SD"
EASYPOST_JOURNEY = ("pre_transit", *["in_transit"] * 7, "out_for_delivery", "delivered")
EASYPOST_DELAY_AT = 4  # the tracker's ETA moves past the delivery appointment here
CITIES = (("Memphis", "TN"), ("Little Rock", "AR"), ("Texarkana", "TX"), ("Dallas", "TX"), ("Nashville", "TN"), ("Atlanta", "GA"))
POD_FIELDS = {"consignee": "Receiving", "pieces": 12, "exceptions": "none"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def carrier_of(index: int) -> str:
    """The carrier of shipment `index`: the API carrier for WEBHOOK_SHARE of them, else an EDI one."""
    if (index * 7919 % 1000) < WEBHOOK_SHARE * 1000:
        return API_CARRIER
    return EDI_CARRIERS[index % len(EDI_CARRIERS)]


def reference(index: int) -> str:
    return f"DAY{index:06d}"


def pro(index: int) -> str:
    return f"{carrier_of(index)}{index:08d}"


def planned_rate(index: int) -> Decimal:
    return Decimal(1200 + index % 800) + Decimal("0.50")


# --- the tenants ----------------------------------------------------------------------------------


@dataclass
class Tenant:
    """One bench tenant: its host, and what senders need to reach it."""

    slug: str
    schema: str
    host: str
    hooks_secret: str
    documents_secret: str
    api_key: str
    our_edi_id: str
    definitions: dict[str, int] = field(default_factory=dict)


def tenant_create(slug: str, partner: Any, erp_url: str) -> Tenant:
    """A ready tenant with the day's connections: the API carrier's tracker webhooks (EasyPost
    scheme and mapper), the document intake (Standard Webhooks, Baton events), the EDI carriers as
    X12 partners, the ERP (the fake partner), and an API key that may post interchanges."""
    from django_tenants.utils import schema_context

    from accounts.services import api_key_create
    from connectors.edi_transport import EdiPartnerInput, edi_partner_configure
    from connectors.inbox import connection_inbound_configure
    from connectors.models import AuthMethod, ConnectionKind
    from connectors.services import ConnectionInput, connection_create
    from governance.services import Actor
    from tenants.models import Domain
    from tenants.services import BrandingInput, tenant_provision

    actor = Actor.system("bench-domain")
    tenant = tenant_provision(
        partner=partner,
        name=f"Domain bench {slug}",
        slug=slug,
        domains=[],
        plan="enterprise",
        actor=actor,
        branding=BrandingInput(product_name=f"{slug.title()} Logistics", primary_color="#0b4f9c", accent_color="#b4400a"),
        admin_email=f"admin@{slug}.test",
        time_zone="America/Chicago",
    )
    assert tenant.status == "ready", tenant.status_reason
    host = Domain.objects.filter(tenant=tenant).order_by("-is_primary", "pk").values_list("domain", flat=True).first()
    assert host, "the bench tenant has no host"
    our_id = f"BATON{slug.upper().replace('-', '')}"[:15]
    with schema_context(tenant.schema_name):
        hooks = connection_create(
            data=ConnectionInput(
                key=HOOKS_KEY, name="API carrier trackers", kind=ConnectionKind.CARRIER, base_url="https://carrier.example"
            ),
            actor=actor,
        )
        hooks_secret = connection_inbound_configure(connection=hooks, scheme="easypost", mapper="easypost", actor=actor)
        documents = connection_create(
            data=ConnectionInput(
                key=DOCUMENTS_KEY, name="Document intake", kind=ConnectionKind.EMAIL, base_url="https://documents.example"
            ),
            actor=actor,
        )
        documents_secret = connection_inbound_configure(connection=documents, scheme="standard_webhooks", mapper="canonical", actor=actor)
        for scac in EDI_CARRIERS:
            carrier = connection_create(
                data=ConnectionInput(
                    key=f"edi-{scac.lower()}",
                    name=f"{scac} EDI",
                    kind=ConnectionKind.EDI_PARTNER,
                    base_url="http://127.0.0.1:9",
                    auth_method=AuthMethod.NONE,
                ),
                actor=actor,
            )
            edi_partner_configure(
                connection=carrier,
                data=EdiPartnerInput(their_qualifier="02", their_id=scac, our_qualifier="ZZ", our_id=our_id, usage="P"),
                actor=actor,
            )
        connection_create(
            data=ConnectionInput(
                key=ERP_KEY,
                name="ERP (fake partner)",
                kind=ConnectionKind.ERP,
                base_url=erp_url,
                auth_method=AuthMethod.NONE,
                settings={"actions": {"invoice_create": {"method": "POST", "path": f"/{ERP_KEY}/invoice_create"}}},
            ),
            actor=actor,
        )
        _key, api_key = api_key_create(name="carriers' EDI desks", scopes=["connections:write"], actor=actor)
    return Tenant(
        slug=slug,
        schema=tenant.schema_name,
        host=host,
        hooks_secret=hooks_secret,
        documents_secret=documents_secret,
        api_key=api_key,
        our_edi_id=our_id,
    )


def master_data_create(tenant: Tenant) -> dict[str, Any]:
    """Customers of every tier, DCs and stores, the carriers with their rules, and the shipments
    (through `shipment_create`, as an integration would make them), each with a pickup and a delivery
    appointment days ahead (so no missed-pickup scan fires during the replay)."""
    from django.db import transaction
    from django_tenants.utils import schema_context

    from governance.services import Actor
    from logistics.models import CarrierRule, CustomerAccount, ServiceTier, SlaPolicy, StopKind
    from logistics.services import StopInput, location_create, shipment_create

    actor = Actor.system("bench-domain")
    began = time.monotonic()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with schema_context(tenant.schema):
        tiers = list(ServiceTier.values)
        for tier in tiers:
            SlaPolicy.objects.get_or_create(service_tier=tier)
        customers = [
            CustomerAccount.objects.get_or_create(
                code=f"cust-{n:03d}", defaults={"name": f"Shipper {n:03d}", "service_tier": tiers[n % len(tiers)]}
            )[0]
            for n in range(CUSTOMERS)
        ]
        docks, stores = [], []
        for n in range(SITES):
            city, state = CITIES[n % len(CITIES)]
            docks.append(location_create(code=f"dc-{n:02d}", name=f"DC {n:02d}", city=city, region=state, country="US", actor=actor))
            city, state = CITIES[(n + 3) % len(CITIES)]
            stores.append(location_create(code=f"store-{n:02d}", name=f"Store {n:02d}", city=city, region=state, country="US", actor=actor))
        for scac in (API_CARRIER, *EDI_CARRIERS):
            CarrierRule.objects.update_or_create(
                scac=scac, defaults={"amount_tolerance": Decimal("25.00"), "percent_tolerance": Decimal("2.00")}
            )
        pickup_start, delivery_end = now + dt.timedelta(days=2), now + dt.timedelta(days=4)
        for first in range(0, SHIPMENTS, 500):
            with transaction.atomic():
                for index in range(first, min(first + 500, SHIPMENTS)):
                    shipment_create(
                        customer_account=customers[index % CUSTOMERS],
                        reference=reference(index),
                        carrier_scac=carrier_of(index),
                        pro_number=pro(index),
                        bol_number=f"BOL{index:08d}",
                        planned_rate=planned_rate(index),
                        currency="USD",
                        stops=[
                            StopInput(1, StopKind.PICKUP, docks[index % SITES], pickup_start, pickup_start + dt.timedelta(hours=4)),
                            StopInput(2, StopKind.DELIVERY, stores[index % SITES], delivery_end - dt.timedelta(hours=4), delivery_end),
                        ],
                        actor=actor,
                    )
    return {"shipments": SHIPMENTS, "customers": CUSTOMERS, "locations": 2 * SITES, "seconds": round(time.monotonic() - began, 1)}


def workflows_publish(tenant: Tenant) -> dict[str, int]:
    """The day's templates cloned from the library by the tenant admin, submitted and published."""
    from django_tenants.utils import schema_context

    from accounts.models import User
    from tenants.db import connection
    from workflows.models import TemplateVersion
    from workflows.services import definition_clone, definition_version_publish, definition_version_submit

    published = {}
    with schema_context(tenant.schema):
        admin = User.objects.get(email=f"admin@{tenant.slug}.test")
        for template_key, parameters in DAY_TEMPLATES.items():
            connection.set_schema_to_public()
            version = TemplateVersion.objects.filter(template__key=template_key).order_by("-major", "-minor", "-patch").first()
            assert version is not None, f"the library has no {template_key}"
            connection.set_schema(tenant.schema)
            definition = definition_clone(
                template_version=version,
                key=template_key,
                name=version.template.name,
                parameters=parameters,
                connection_bindings={},
                actor=admin,
            )
            draft = definition.versions.get(number=1)
            definition_version_submit(version=draft, actor=admin)
            definition_version_publish(version=draft, actor=admin)
            published[template_key] = definition.pk
    return published


# --- the day's stream -----------------------------------------------------------------------------


@dataclass
class Item:
    """One request of the replay."""

    slice: int
    kind: str  # webhook, document, edi_214, edi_210
    path: str
    body: bytes
    carrier: str = ""
    delays: list[int] = field(default_factory=list)  # shipments whose delay this request carries
    events: int = 0  # tracking events in it


@dataclass
class Stream:
    items: list[Item]
    delayed: set[int]
    pods: list[int]
    invoices: list[int]
    tracking_events: int
    files: Counter[str]


def _moment(day_start: dt.datetime, slice_: int, rng: random.Random) -> dt.datetime:
    span = dt.timedelta(days=1) / SLICES
    return day_start + span * slice_ + dt.timedelta(seconds=rng.randrange(int(span.total_seconds())))


def _tracker(index: int, step: int, moments: list[dt.datetime], delayed: bool, delivery_end: dt.datetime) -> dict[str, Any]:
    details = []
    for number in range(step + 1):
        city, state = CITIES[(index + number) % len(CITIES)]
        details.append(
            {
                "object": "TrackingDetail",
                "status": EASYPOST_JOURNEY[number],
                "message": EASYPOST_JOURNEY[number].replace("_", " "),
                "datetime": moments[number].isoformat().replace("+00:00", "Z"),
                "tracking_location": {"object": "TrackingLocation", "city": city, "state": state, "country": "US"},
            }
        )
    late = delayed and step >= EASYPOST_DELAY_AT and EASYPOST_JOURNEY[step] != "delivered"
    return {
        "id": f"evt_{reference(index)}_{step}",
        "object": "Event",
        "description": "tracker.updated",
        "result": {
            "id": f"trk_{reference(index)}",
            "object": "Tracker",
            "tracking_code": pro(index),
            "carrier": API_CARRIER,
            "status": EASYPOST_JOURNEY[step],
            "signed_by": "R. Dock" if EASYPOST_JOURNEY[step] == "delivered" else None,
            "est_delivery_date": (delivery_end + dt.timedelta(days=1)).isoformat().replace("+00:00", "Z") if late else None,
            "tracking_details": details,
            "updated_at": moments[step].isoformat().replace("+00:00", "Z"),
        },
    }


def _partner_settings(scac: str, our_id: str) -> Any:
    from connectors.edi import PartnerSettings

    return PartnerSettings(
        partner=f"edi-{scac.lower()}", sender_qualifier="02", sender_id=scac, receiver_qualifier="ZZ", receiver_id=our_id, usage="P"
    )


def stream_build(our_edi_id: str, seed: int = 214) -> Stream:
    """The whole day as requests, in sending order (slice by slice)."""
    from connectors.edi import InMemoryControlNumbers, write_interchange
    from connectors.edi.documents import Charge, ShipmentStatus, TrackingMilestone
    from connectors.edi.documents import FreightInvoice as Edi210

    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day_start = now - dt.timedelta(days=2)
    delivery_end = now + dt.timedelta(days=4)
    delayed = set(rng.sample(range(SHIPMENTS), int(SHIPMENTS * DELAY_SHARE)))
    last_start = SLICES - EVENTS_PER_SHIPMENT - 2  # room for the POD and the invoice after delivery
    starts = {index: rng.randrange(max(last_start, 1)) for index in range(SHIPMENTS)}
    webhooks: dict[int, list[Item]] = {s: [] for s in range(SLICES)}
    milestones: dict[tuple[int, str], list[tuple[int, TrackingMilestone]]] = {}
    delivered_at: dict[int, dt.datetime] = {}
    for index in range(SHIPMENTS):
        carrier = carrier_of(index)
        moments = [_moment(day_start, starts[index] + step, rng) for step in range(EVENTS_PER_SHIPMENT)]
        delivered_at[index] = moments[-1]
        for step in range(EVENTS_PER_SHIPMENT):
            slice_ = starts[index] + step
            if carrier == API_CARRIER:
                body = json.dumps(_tracker(index, step, moments, index in delayed, delivery_end), separators=(",", ":")).encode()
                delays = [index] if index in delayed and step == EASYPOST_DELAY_AT else []
                webhooks[slice_].append(Item(slice_, "webhook", f"/hooks/{HOOKS_KEY}", body, API_CARRIER, delays, 1))
                continue
            code = X12_DELAY_CODE if index in delayed and step == X12_DELAY_AT else X12_JOURNEY[step]
            city, state = CITIES[(index + step) % len(CITIES)]
            moment = moments[step]
            milestone = TrackingMilestone(
                shipment_id=reference(index),
                status_code=code,
                status_reason="AJ" if code == X12_DELAY_CODE else "NS",
                date=moment.date(),
                time=moment.time(),
                time_zone_code="UT",
                city=city,
                state=state,
                country="USA",
            )
            milestones.setdefault((slice_, carrier), []).append((index, milestone))
    candidates = [index for index in range(SHIPMENTS) if carrier_of(index) != API_CARRIER]
    billed = sorted(rng.sample(candidates, min(INVOICES, len(candidates))))
    pods = sorted(set(billed[:PODS]) | set(rng.sample(range(SHIPMENTS), max(PODS - len(billed), 0))))[:PODS]
    documents: dict[int, list[Item]] = {s: [] for s in range(SLICES)}
    for index in pods:
        slice_ = starts[index] + EVENTS_PER_SHIPMENT
        content = b"%PDF-1.4 proof of delivery " + reference(index).encode() + b" " + os.urandom(512).hex().encode()
        event = {
            "event_type": "document.received",
            "event_id": f"pod-{reference(index)}",
            "correlation": {"shipment": reference(index)},
            "payload": {
                "kind": "pod",
                "shipment": reference(index),
                "file_name": f"pod-{reference(index)}.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(content).decode(),
                "signed_by": "R. Dock",
                "fields": {**POD_FIELDS, "delivered_at": delivered_at[index].isoformat()},
            },
        }
        documents[slice_].append(Item(slice_, "document", f"/hooks/{DOCUMENTS_KEY}", json.dumps(event).encode()))
    invoices: dict[tuple[int, str], list[Any]] = {}
    for number, index in enumerate(billed):
        rate = planned_rate(index)
        linehaul = (rate * Decimal("0.9")).quantize(Decimal("0.01"))
        fuel = rate - linehaul
        if number % OVER_TOLERANCE_EVERY == 0:
            linehaul += Decimal("180.00")
        total = linehaul + fuel
        invoice = Edi210(
            invoice_number=f"INV{index:08d}",
            shipment_id=reference(index),
            scac=carrier_of(index),
            payment_method="PP",
            invoice_date=delivered_at[index].date(),
            net_amount_due=total,
            currency="USD",
            charges=[
                Charge(line_number=1, description="Linehaul", amount=linehaul, special_charge_code="400"),
                Charge(line_number=2, description="Fuel surcharge", amount=fuel, special_charge_code="FUE"),
            ],
            total_charge=total,
            lading_quantity=12,
        )
        invoices.setdefault((starts[index] + EVENTS_PER_SHIPMENT + 1, carrier_of(index)), []).append(invoice)

    control = InMemoryControlNumbers(1)
    items: list[Item] = []
    files: Counter[str] = Counter()
    for slice_ in range(SLICES):
        requests = webhooks[slice_] + documents[slice_]
        rng.shuffle(requests)
        items.extend(requests)
        for carrier in EDI_CARRIERS:
            settings = _partner_settings(carrier, our_edi_id)
            batch = milestones.get((slice_, carrier), [])
            if batch:
                sets = [ShipmentStatus(shipment_id=reference(i), pro_number=pro(i), scac=carrier, milestones=[m]) for i, m in batch]
                text = write_interchange(sets, partner=settings, control_numbers=control, now=now)
                delays = [i for i, m in batch if m.status_code == X12_DELAY_CODE]
                path = f"/api/v1/connections/edi-{carrier.lower()}/interchanges"
                items.append(Item(slice_, "edi_214", path, text.encode(), carrier, delays, len(batch)))
                files["214"] += 1
            bills = invoices.get((slice_, carrier), [])
            if bills:
                text = write_interchange(bills, partner=settings, control_numbers=control, now=now)
                items.append(Item(slice_, "edi_210", f"/api/v1/connections/edi-{carrier.lower()}/interchanges", text.encode(), carrier))
                files["210"] += 1
    tracking = sum(item.events for item in items)
    return Stream(items=items, delayed=delayed, pods=pods, invoices=billed, tracking_events=tracking, files=files)


def stream_for(stream: Stream, our_edi_id: str, template_id: str) -> Stream:
    """The same stream addressed to another tenant's EDI id (the X12 receiver differs)."""
    if our_edi_id == template_id:
        return stream
    items = []
    for item in stream.items:
        if item.kind.startswith("edi_"):
            body = item.body.replace(template_id.ljust(15).encode(), our_edi_id.ljust(15).encode()).replace(
                f"*{template_id}*".encode(), f"*{our_edi_id}*".encode()
            )
            items.append(Item(item.slice, item.kind, item.path, body, item.carrier, item.delays, item.events))
        else:
            items.append(item)
    return Stream(items, stream.delayed, stream.pods, stream.invoices, stream.tracking_events, stream.files)


# --- sending --------------------------------------------------------------------------------------


@dataclass
class Sent:
    """What the replay saw."""

    answered: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    delay_accepted_at: dict[int, float] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"webhook": [], "document": [], "edi_214": [], "edi_210": []})
    first_at: float = 0.0
    last_at: float = 0.0
    late: list[float] = field(default_factory=list)  # how late requests went out (the server was behind)


def _headers(item: Item, tenant: Tenant) -> dict[str, str]:
    from connectors.signatures import EASYPOST, StandardWebhooks

    headers = {"Host": tenant.host, "Content-Length": str(len(item.body))}
    if item.kind == "webhook":
        return {**headers, "Content-Type": "application/json", **EASYPOST.sign(item.body, secrets=[tenant.hooks_secret])}
    if item.kind == "document":
        webhook_id = "msg_" + json.loads(item.body)["event_id"]
        signed = StandardWebhooks().sign(item.body, secrets=[tenant.documents_secret], webhook_id=webhook_id)
        return {**headers, "Content-Type": "application/json", **signed}
    return {**headers, "Content-Type": "application/edi-x12", "Authorization": f"Api-Key {tenant.api_key}"}


def schedule(stream: Stream) -> list[float]:
    """When each item is due, in seconds from the start: the day's clock compressed into
    REPLAY_SECONDS, a slice's requests spread evenly over its share (its files last, as the
    carriers batch them); all at 0 when REPLAY_SECONDS is 0 (flat out)."""
    if not REPLAY_SECONDS:
        return [0.0] * len(stream.items)
    span = REPLAY_SECONDS / SLICES
    per_slice = Counter(item.slice for item in stream.items)
    seen: Counter[int] = Counter()
    due = []
    for item in stream.items:
        due.append(item.slice * span + span * seen[item.slice] / per_slice[item.slice])
        seen[item.slice] += 1
    return due


def replay(tenant: Tenant, stream: Stream, port: int) -> Sent:
    """Send every item when it is due (open loop; CLIENTS connections, so a slow answer makes the
    next requests late rather than fewer); retry 5xx, 429 and broken connections."""
    work: queue.Queue[tuple[Item, float] | None] = queue.Queue()
    for item, due in zip(stream.items, schedule(stream), strict=True):
        work.put((item, due))
    for _ in range(CLIENTS):
        work.put(None)
    sent = Sent()
    lock = threading.Lock()
    start = time.time() + 0.5

    def client() -> None:
        connection: http.client.HTTPConnection | None = None
        while (job := work.get()) is not None:
            item, due = job
            if (wait := start + due - time.time()) > 0:
                time.sleep(wait)
            else:
                with lock:
                    sent.late.append(-wait)
            for attempt in range(20):
                began = time.time()
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    connection.request("POST", item.path, body=item.body, headers=_headers(item, tenant))
                    answer = connection.getresponse()
                    text = answer.read()
                    status = answer.status
                except (OSError, http.client.HTTPException) as error:
                    with contextlib.suppress(Exception):
                        connection.close()  # type: ignore[union-attr]
                    connection, status, text = None, 0, str(error).encode()
                done = time.time()
                if status in (200, 201, 202):
                    with lock:
                        sent.answered[item.kind] += 1
                        sent.latencies[item.kind].append(done - began)
                        for index in item.delays:
                            sent.delay_accepted_at[index] = done
                        sent.last_at = max(sent.last_at, done)
                    break
                if status in (0, 429, 500, 502, 503, 504) and attempt < 19:
                    with lock:
                        sent.retries += 1
                    time.sleep(min(0.2 * (attempt + 1), 2))
                    continue
                with lock:
                    sent.failures.append(f"{item.kind} {item.path} -> {status}: {text[:300]!r}")
                break

    sent.first_at = start
    threads = [threading.Thread(target=client, name=f"client-{n}", daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


# --- settling and checking ------------------------------------------------------------------------


def _scalar(schema: str, sql: str, params: list[Any] | None = None) -> Any:
    from django_tenants.utils import schema_context

    from tenants.db import connection

    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        row = cursor.fetchone()
        return row[0] if row else None


def settled(tenant: Tenant, day: bool) -> dict[str, int]:
    """What is still to do: events not yet handed on, runs the engine still has to advance (a run
    waiting for a person or an event is done with its part), invoices not yet approved or
    disputed."""
    left = {
        "dispatch_rows": _scalar(tenant.schema, "SELECT count(*) FROM connectors_eventdispatch"),
        "events_received": _scalar(tenant.schema, "SELECT count(*) FROM connectors_inboundevent WHERE status = 'received'"),
    }
    if day:
        left["runs_active"] = _scalar(
            tenant.schema, "SELECT count(*) FROM workflows_run WHERE status IN ('queued', 'running', 'compensating')"
        )
        decided = _scalar(tenant.schema, "SELECT count(*) FROM logistics_freightinvoice WHERE match_status IN ('approved', 'disputed')")
        left["invoices_undecided"] = max(INVOICES_EXPECTED[0] - decided, 0)
    return left


INVOICES_EXPECTED = [0]  # set from the stream before the day's replay


def drain(tenant: Tenant, day: bool, timeout: float) -> tuple[float, dict[str, int]]:
    """Wait until nothing is left (`settled`); return when that was and what was left at the end."""
    deadline = time.time() + timeout
    left: dict[str, int] = {}
    while time.time() < deadline:
        left = settled(tenant, day)
        if not any(left.values()):
            return time.time(), left
        time.sleep(0.5)
    return time.time(), left


def day_checks(tenant: Tenant, stream: Stream, sent: Sent) -> dict[str, Any]:
    """The day's outcome against what the stream should have done."""
    from django_tenants.utils import schema_context

    from logistics.models import Document, ExceptionCase, FreightInvoice, Shipment, TrackingEvent
    from workflows.models import Run

    with schema_context(tenant.schema):
        statuses = Counter(Shipment.objects.values_list("status", flat=True))
        events = TrackingEvent.objects.count()
        per_shipment = Counter(TrackingEvent.objects.values_list("shipment_id", flat=True))
        exceptions = list(ExceptionCase.objects.filter(type="delay").values_list("shipment__reference", "opened_at", "status", "severity"))
        delayed_refs = {reference(index): index for index in stream.delayed}
        latencies, missing, duplicates = [], [], Counter[str]()
        carried_by = {index: item.kind for item in stream.items for index in item.delays}
        by_kind: dict[str, list[float]] = {}
        opened: dict[str, dt.datetime] = {}
        for ref, opened_at, _status, _severity in exceptions:
            duplicates[ref] += 1
            opened[ref] = min(opened.get(ref, opened_at), opened_at)
        for ref, index in delayed_refs.items():
            if ref not in opened:
                missing.append(ref)
                continue
            accepted = sent.delay_accepted_at.get(index)
            if accepted is not None:
                latency = opened[ref].timestamp() - accepted
                latencies.append(latency)
                by_kind.setdefault(carried_by[index], []).append(latency)
        unexpected = sorted(ref for ref in opened if ref not in delayed_refs)
        invoices = Counter(FreightInvoice.objects.values_list("match_status", flat=True))
        pods = Document.objects.filter(kind="pod").count()
        runs = Counter(Run.objects.values_list("definition__key", "status"))
        waiting = Counter(Run.objects.filter(status="waiting").values_list("definition__key", "current_step"))
        other_exceptions = Counter(ExceptionCase.objects.exclude(type="delay").values_list("type", flat=True))
    within = sum(1 for latency in latencies if latency <= TARGET_DELAY_SECONDS)
    return {
        "shipments_by_status": dict(statuses),
        "tracking_events_stored": events,
        "shipments_with_all_events": sum(1 for count in per_shipment.values() if count == EVENTS_PER_SHIPMENT),
        "delays_in_stream": len(delayed_refs),
        "delays_with_open_exception": len(delayed_refs) - len(missing),
        "delays_missing_exception": missing[:20],
        "delay_exceptions_on_shipments_not_delayed": unexpected[:20],
        "delay_exceptions_more_than_one": sum(1 for count in duplicates.values() if count > 1),
        "event_to_exception_seconds": {
            "p50": round(percentile(latencies, 0.5), 3) if latencies else None,
            "p99": round(percentile(latencies, 0.99), 3) if latencies else None,
            "max": round(max(latencies), 3) if latencies else None,
            "within_target": within,
            "measured": len(latencies),
            # A 214 file's delays wait for the whole file's events; a webhook's for its batch.
            "by_channel": {
                kind: {"measured": len(values), "p50": round(percentile(values, 0.5), 3), "p99": round(percentile(values, 0.99), 3)}
                for kind, values in sorted(by_kind.items())
            },
        },
        "pods_stored": pods,
        "invoices_by_match_status": dict(invoices),
        "other_exceptions_by_type": dict(other_exceptions),
        "runs_by_workflow_and_status": {f"{key} {status}": count for (key, status), count in sorted(runs.items())},
        "runs_waiting_at": {f"{key} {step}": count for (key, step), count in sorted(waiting.items())},
    }


# --- the run --------------------------------------------------------------------------------------


def replay_measure(processes: Processes, tenant: Tenant, stream: Stream, *, day: bool) -> dict[str, Any]:
    name = "day" if day else "baseline"
    log(f"{name}: replaying {len(stream.items)} requests ({stream.tracking_events} tracking events) into {tenant.slug}")
    assert processes.web is not None
    meter = CpuMeter(
        {
            "web (gunicorn)": [processes.web.pid],
            "celery workers": processes.worker_pids(),
            "beat": [processes.beat.pid] if processes.beat else [],
        },
        BENCH_DB,
    )
    meter.start()
    samplers = []
    if day and PYSPY_SECONDS:
        samplers = [pyspy_sample(pid, PYSPY_SECONDS, processes.scratch / f"pyspy-{pid}.txt") for pid in processes.worker_pids()]
    sent = replay(tenant, stream, processes.web_port)
    log(
        f"{name}: sent in {sent.last_at - sent.first_at:.0f} s ({dict(sent.answered)}, {sent.retries} retries, {len(sent.failures)} failures)"
    )
    finished, left = drain(tenant, day, DRAIN_SECONDS)
    cpu = meter.stop()
    wall = finished - sent.first_at
    log(f"{name}: settled {wall:.0f} s after the first request; left {left}")
    figures: dict[str, Any] = {
        "tenant": tenant.slug,
        "requests": len(stream.items),
        "answered": dict(sent.answered),
        "retries": sent.retries,
        "failures": sent.failures[:20],
        "tracking_events": stream.tracking_events,
        "replay_seconds": REPLAY_SECONDS or "flat out",
        "sending_seconds": round(sent.last_at - sent.first_at, 1),
        "requests_late": {
            "count": len(sent.late),
            "p99_seconds": round(percentile(sent.late, 0.99), 3) if sent.late else 0.0,
        },
        "wall_seconds": round(wall, 1),
        "tracking_events_per_s": round(stream.tracking_events / wall, 1) if wall else None,
        "left_at_the_end": left,
        "request_seconds": {
            kind: {"p50": round(percentile(values, 0.5), 3), "p99": round(percentile(values, 0.99), 3)}
            for kind, values in sent.latencies.items()
            if values
        },
        "cpu": cpu,
    }
    if day:
        figures["checks"] = day_checks(tenant, stream, sent)
    for sampler in samplers:
        if sampler is not None:
            sampler.wait()
    if samplers:
        figures["worker_profile"] = {str(pid): pyspy_summary(processes.scratch / f"pyspy-{pid}.txt") for pid in processes.worker_pids()}
    return figures


def main() -> None:
    isolated_run("domain", database=BENCH_DB, tag=TAG, log_level=LOG_LEVEL, run=run)


def workers_start(processes: Processes, app: Any) -> None:
    """WORKERS solo Celery workers. With SPLIT (the default), as deploy/k8s/worker.yaml lays them
    out: the first takes the inbox's `connectors` queue only, the others the engine, documents and
    beat's default at niceness SPLIT_NICE (`BATON_WORKER_NICE`), so on two cores the dispatcher and
    the web go first and the engine's batch work (invoice PDFs on a thread of their own) takes
    the rest. SPLIT=0: every worker on every queue, taking them in turns."""
    host = socket.gethostname()
    for index in range(WORKERS):
        name = f"{TAG}-{index}@{host}"
        argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", LOG_LEVEL, "-n", name]
        queues = "connectors,default,engine,documents"
        if SPLIT:
            queues = "connectors" if index == 0 else "engine,default,documents"
        argv += ["-Q", queues, "-P", "solo", "--without-gossip", "--without-mingle"]
        if SPLIT and index:
            argv = ["env", f"BATON_WORKER_NICE={SPLIT_NICE}", *argv]
        processes.workers.append(processes._spawn(f"worker-{index}", argv))
        processes.worker_names.append(name)
    deadline = time.time() + 120
    while len(app.control.ping(destination=processes.worker_names, timeout=1.0) or []) < len(processes.worker_names):
        if any(worker.poll() is not None for worker in processes.workers) or time.time() > deadline:
            raise RuntimeError("a Celery worker did not start:\n" + (processes.scratch / "worker-0.log").read_text()[-3000:])


def run(processes: Processes, scratch: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from config.celery import app
    from governance.services import Actor
    from tenants.db import connection
    from tenants.services import BrandingInput, partner_create

    load_before = os.getloadavg()
    began = time.monotonic()
    log(f"database {BENCH_DB}: migrating and publishing the library")
    call_command("baton_migrate", verbosity=0)
    call_command("seed_library", verbosity=0)
    processes.env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        "DJANGO_ENV": os.environ.get("DJANGO_ENV", "development"),
        "PROMETHEUS_MULTIPROC_DIR": str(scratch / "prometheus"),
    }
    erp_url = processes.partner_start()
    connection.set_schema_to_public()
    partner = partner_create(
        name="Bench MSP", slug="bench-msp", actor=Actor.system("bench-domain"), branding=BrandingInput(product_name="Bench")
    )
    day = tenant_create("domain-day", partner, erp_url)
    empty = tenant_create("domain-empty", partner, erp_url)
    log(f"tenants ready in {time.monotonic() - began:.0f} s; creating {SHIPMENTS} shipments in {day.slug}")
    master = master_data_create(day)
    day.definitions = workflows_publish(day)
    connection.set_schema_to_public()
    log(f"master data in {master['seconds']} s; published {', '.join(day.definitions)}; building the stream")
    stream = stream_build(day.our_edi_id)
    log(
        f"stream: {len(stream.items)} requests, {stream.tracking_events} tracking events, {len(stream.delayed)} delays, files {dict(stream.files)}"
    )

    processes.web_start()
    workers_start(processes, app)
    processes.beat_start()
    assert processes.web is not None
    sampler = RssSampler([processes.web.pid, *processes.worker_pids()])
    sampler.start()
    churned = (
        "connectors_eventdispatch",
        "connectors_inboundevent",
        "workflows_run",
        "workflows_timer",
        "logistics_shipment",
        "logistics_stop",
    )
    vacuumer = Vacuumer(BENCH_DB, [f"{tenant.schema}.{table}" for tenant in (day, empty) for table in churned])
    vacuumer.start()
    time.sleep(5)  # beat's first ticks

    baseline = None
    if not os.environ.get("BENCH_DOMAIN_SKIP_BASELINE"):
        baseline = replay_measure(processes, empty, stream_for(stream, empty.our_edi_id, day.our_edi_id), day=False)
    INVOICES_EXPECTED[0] = len(stream.invoices)
    measured = replay_measure(processes, day, stream, day=True)
    measured["checks"]["erp_requests"] = processes.partner_stats()
    sampler.stopping.set()
    vacuum = vacuumer.stop()
    checks = measured["checks"]
    latency = checks["event_to_exception_seconds"]
    result = {
        "benchmark": "domain",
        "what": "a mid-size 3PL's day replayed into one tenant (webhooks and 214 files, PODs, 210 invoices) through gunicorn, "
        "the inbox and the workflow engine on Celery workers; baseline: the same stream into an empty tenant",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(load_before),
        "day": {
            "shipments": SHIPMENTS,
            "tracking_events": stream.tracking_events,
            "webhook_share_of_shipments": WEBHOOK_SHARE,
            "pods": len(stream.pods),
            "invoices": len(stream.invoices),
            "delays": len(stream.delayed),
            "slices": SLICES,
            "clients": CLIENTS,
            "files": dict(stream.files),
            "workflows_published": list(day.definitions),
            "master_data_seconds": master["seconds"],
        },
        "targets": {"wall_seconds": TARGET_WALL_SECONDS, "event_to_exception_seconds": TARGET_DELAY_SECONDS},
        "result": {
            "wall_seconds": measured["wall_seconds"],
            "tracking_events_per_s": measured["tracking_events_per_s"],
            "event_to_exception_p99_seconds": latency["p99"],
            "delays_with_exception_within_target": f"{latency['within_target']} of {checks['delays_in_stream']}",
            "baseline_wall_seconds": baseline["wall_seconds"] if baseline else None,
            "baseline_tracking_events_per_s": baseline["tracking_events_per_s"] if baseline else None,
            "wall_ratio_to_baseline": round(measured["wall_seconds"] / baseline["wall_seconds"], 3) if baseline else None,
            "met": measured["wall_seconds"] < TARGET_WALL_SECONDS
            and latency["within_target"] == checks["delays_in_stream"]
            and not checks["delays_missing_exception"],
        },
        "replay": measured,
        "baseline": baseline,
        "rss_peak_mb_per_process": {str(pid): round(rss / 2**20, 1) for pid, rss in sampler.peak_per_worker.items()},
        "vacuum": vacuum,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"result: {json.dumps(result['result'])}")
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
