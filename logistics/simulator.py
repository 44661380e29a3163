"""The demo's outside world in motion (`make run`, development only): customers order, the carrier
answers tenders, moves the freight, hands over proofs of delivery and bills for it – so that the
tenant's queues, portals and dashboards show real movement minutes after start.

One `simulator_tick` per demo tenant and beat tick (`connectors.demo.demo_traffic_tick`), a few
items a tick:

- every ORDER_EVERY ticks a new order: entered in the sandbox ERP, its stock received at the
  sandbox WMS, and announced to Baton as the ERP's signed `order.received` webhook, which starts
  the order release (2.x). Now and then the ERP puts one on credit hold (finance approves it) or
  sends one without a weight (an order-invalid exception).
- the carrier's EDI desk answers each shipment tendered to it with an accepting 990, and e-mails
  its rate confirmation (recorded as the shipment's document: the match compares invoices with it).
- accepted shipments move through JOURNEY, one stage each STEP_AFTER: X12 214s from the EDI desk
  and EasyPost-style tracker webhooks signed with the tenant's secret, a delay now and then (carrier
  exception management opens an exception), now and then a webhook resent (a duplicate) or a late
  214 older than what the shipment already knows (kept, not applied).
- delivered shipments get their POD (`document.received`; sometimes unsigned – a signed copy
  follows –, sometimes noting damage with the amount to claim) and the carrier's invoice (a 210 or
  `invoice.received`; sometimes within the tolerance, sometimes over it – a dispute).

No state of its own: where each shipment stands is read from the tenant's data (its tender, its
tracking events, documents and invoices), and everything sent is named after the shipment and the
stage (event ids, X12 control numbers), so a resend is a duplicate and a restarted `make run`
simply carries on. What varies per shipment is decided by a hash of its reference, never by chance.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from django.db.models import Count, Max, Q
from django.utils import timezone

from connectors.edi.documents import Charge, ShipmentStatus, TenderResponse, TrackingMilestone
from connectors.edi.documents import FreightInvoice as Edi210
from governance.services import Actor
from logistics.demo_data import demo_lanes
from logistics.models import (
    Document,
    DocumentKind,
    EventSource,
    Location,
    Shipment,
    StopKind,
    TenderStatus,
)
from logistics.services import LogisticsRefused, document_record
from logistics.vocabulary import TERMINAL_STATUSES
from tenants.db import connection

SIMULATOR = Actor.system("demo-simulator")
CARRIER_SCAC = "SBXF"  # the sandbox carrier: the one the simulator speaks for
ORDER_EVERY = 3  # ticks between new orders
STEP_AFTER = dt.timedelta(seconds=10)  # a shipment's next stage comes this long after its last news
MOVES_PER_TICK = 4  # shipments moved a tick (more than the journeys of ORDER_EVERY's orders need)
MOVES_CONSIDERED = 40  # the shipments longest without news, taken in turn
PAPERS_PER_TICK = 2  # PODs and invoices sent a tick
ANSWERS_PER_TICK = 3  # 990s sent a tick
SIGNED_COPY_AFTER = 3  # an unsigned POD's signed copy follows this many steps later
ANSWER_WITHIN = dt.timedelta(minutes=10)  # tenders older than this were answered (or their run ended)
RECENT = dt.timedelta(days=2)  # shipments delivered longer ago are history
ERP_KEY, WMS_KEY, DOCUMENTS_KEY = "erp", "wms", "carrier-documents"
ORDER_RELEASE = "order-to-shipment-release"
# The SKUs the sandbox WMS stocks, with a unit's weight in pounds.
SKUS = (("SKU-PALLET-A", 900, (1, 6)), ("SKU-CARTON-B", 25, (10, 40)), ("SKU-REEFER-C", 600, (1, 4)))


@dataclass(frozen=True)
class Stage:
    """One step of the journey: said over EDI (an AT7 status code) or by webhook (a tracker status)."""

    channel: str  # "edi" or "webhook"
    code: str
    message: str
    at: str  # "origin", "destination" or "road"
    delay: bool = False  # only on the shipments the simulator delays

    @property
    def source(self) -> str:
        return EventSource.X12_214 if self.channel == "edi" else EventSource.CARRIER_API


JOURNEY = (
    Stage("edi", "X3", "Arrived at pickup location", "origin"),
    Stage("edi", "AF", "Departed pickup location with shipment", "origin"),
    Stage("webhook", "in_transit", "Departed origin facility", "origin"),
    Stage("edi", "SD", "Shipment delayed: mechanical breakdown", "road", delay=True),
    Stage("edi", "X6", "En route to delivery location", "road"),
    Stage("webhook", "out_for_delivery", "Out for delivery", "destination"),
    Stage("edi", "X1", "Arrived at delivery location", "destination"),
    Stage("webhook", "delivered", "Delivered, signed for at the dock", "destination"),
)
DELAY_REASON = "AI"  # AT7-02: mechanical breakdown (carrier responsible; signals a delay)
# X12 control numbers of the carrier's documents for a shipment: shipment number × 100 + these.
CONTROL_990, CONTROL_214, CONTROL_LATE_214, CONTROL_210 = 1, 10, 40, 50


class Partners(Protocol):
    """What the simulator sends through (`connectors.demo.DemoPartners`)."""

    def webhook(self, *, key: str, document: dict[str, Any], event_id: str) -> int | str: ...

    def edi(self, documents: list[Any], *, control_number: int, now: dt.datetime | None = None) -> dict[str, Any]: ...

    def sandbox_post(self, *, key: str, path: str, body: dict[str, Any], idempotency_key: str) -> tuple[int, Any]: ...


def dice(reference: str, salt: str) -> int:
    """0–99, the same every time for this shipment (or order) and question."""
    return int(hashlib.sha256(f"{reference}:{salt}".encode()).hexdigest()[:8], 16) % 100


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def carrier_pro(shipment: Shipment) -> str:
    """The carrier's PRO for the shipment: the one Baton has, else the carrier's own numbering
    (which Baton does not know: events find the shipment by its reference then)."""
    return shipment.pro_number or f"{CARRIER_SCAC}{shipment.pk:08d}"


def _control(shipment: Shipment, offset: int) -> int:
    return (shipment.pk % 1_000_000) * 100 + offset


# --- orders ------------------------------------------------------------------------------------------


def tenant_tag() -> str:
    """Two letters of the current tenant: demo tenants share the sandbox ERP, so their order
    numbers must differ."""
    return connection.schema_name.removeprefix("t_")[:2].upper()


def order_number(sequence: int, tag: str = "") -> str:
    return f"SO-{tag or tenant_tag()}{sequence % 10_000_000:07d}"


def demo_order(sequence: int) -> dict[str, Any] | None:
    """The order of tick `sequence` in the order release's shape, on one of the tenant's demo
    lanes; None when the tenant has none (no demo master data)."""
    lanes = demo_lanes()
    if not lanes:
        return None
    number = order_number(sequence)
    lane = lanes[(sequence // ORDER_EVERY) % len(lanes)]
    lines = []
    for index, (sku, unit_lb, (low, high)) in enumerate(SKUS):
        if index and dice(number, f"line{index}") < 50:
            continue
        quantity = low + dice(number, f"qty{index}") % (high - low + 1)
        lines.append({"sku": sku, "qty": quantity, "weight": quantity * unit_lb, "weight_unit": "lb"})
    order: dict[str, Any] = {
        "order_id": number,
        "customer": lane.customer,
        "po_number": f"PO-{number.removeprefix('SO-')}",
        "ship_from": lane.ship_from,
        "ship_to": lane.ship_to,
        "lines": lines,
        "credit_hold": sequence % 13 == 5,
        "source": "erp",
    }
    if sequence % 17 == 9:
        del order["lines"][0]["weight"]  # the ERP's data-entry slip: an order-invalid exception
    return order


def _order_release_live() -> bool:
    from workflows.models import Definition

    return Definition.objects.filter(
        template_key=ORDER_RELEASE, published_version__isnull=False, published_version__based_on_template_version__regex=r"^[2-9]\."
    ).exists()


def erp_order_enter(
    *, partners: Partners, number: str, customer: str, ship_to: Location | None, lines: list[dict[str, Any]]
) -> tuple[int, Any]:
    """The sales order as the ERP's users key it in; the same order again is the same request
    (so after a restart of the in-memory sandbox it is simply there again)."""
    destination = {"name": ship_to.name, "city": ship_to.city, "country": ship_to.country} if ship_to else {}
    body = {"number": number, "customer": customer, "ship_to": destination, "lines": lines}
    return partners.sandbox_post(key=ERP_KEY, path="/api/orders", body=body, idempotency_key=f"order-{number}")


def order_place(*, sequence: int, partners: Partners) -> dict[str, Any]:
    """Enter the tick's order in the ERP, receive its stock at the WMS, and send it to Baton."""
    order = demo_order(sequence)
    if order is None:
        return {"skipped": "no demo lanes: run manage.py seed_demo"}
    if not _order_release_live():
        return {"skipped": "no order release 2.x published"}
    number = order["order_id"]
    lines = [{"sku": line["sku"], "quantity": line["qty"]} for line in order["lines"]]
    placed = erp_order_enter(
        partners=partners, number=number, customer=order["customer"], ship_to=Location.objects.get(code=order["ship_to"]), lines=lines
    )
    received = partners.sandbox_post(
        key=WMS_KEY, path="/api/receipts", body={"reference": f"ASN-{number}", "lines": lines}, idempotency_key=f"receipt-{number}"
    )
    event_id = f"order-{number}"
    event = {"event_type": "order.received", "event_id": event_id, "correlation": {"order": number}, "payload": order}
    sent = partners.webhook(key=ERP_KEY, document=event, event_id=event_id)
    return {"order": number, "erp": placed[0], "wms": received[0], "baton": sent}


# --- the carrier: tenders, journeys, papers ----------------------------------------------------------


def tender_answers(*, partners: Partners, now: dt.datetime) -> list[dict[str, Any]]:
    """The carrier's accepting 990 for shipments tendered to it, and its rate confirmation for
    those it accepted."""
    sent: list[dict[str, Any]] = []
    tendered = Shipment.objects.filter(
        carrier_scac=CARRIER_SCAC, tender_status=TenderStatus.TENDERED, updated_at__gte=now - ANSWER_WITHIN
    ).order_by("-pk")
    for shipment in tendered[:ANSWERS_PER_TICK]:
        order = shipment.orders.select_related("customer_account", "ship_to").order_by("pk").first()
        if order is not None:  # the ERP is asked to confirm it next: it must know it, restarted or not
            lines = [{"sku": line.sku, "quantity": int(line.quantity)} for line in order.lines.order_by("pk")]
            erp_order_enter(
                partners=partners, number=order.number, customer=order.customer_account.code, ship_to=order.ship_to, lines=lines
            )
        response = TenderResponse(shipment_id=shipment.reference, scac=CARRIER_SCAC, accepted=True, date=now.date())
        sent.append(
            {"shipment": shipment.reference, "990": partners.edi([response], control_number=_control(shipment, CONTROL_990), now=now)}
        )
    accepted = (
        Shipment.objects.filter(carrier_scac=CARRIER_SCAC, tender_status=TenderStatus.ACCEPTED, delivered_at__isnull=True)
        .annotate(confirmations=Count("documents", filter=Q(documents__kind=DocumentKind.RATE_CONFIRMATION)))
        .filter(confirmations=0)
        .order_by("pk")
    )
    for shipment in accepted[:ANSWERS_PER_TICK]:
        sent.append({"shipment": shipment.reference, "rate_confirmation": rate_confirmation_record(shipment).pk})
    return sent


def agreed_charges(shipment: Shipment) -> dict[str, Decimal]:
    """What the carrier quotes: a base linehaul plus a rate per pound, and fuel at 12 %."""
    linehaul = _money(Decimal("1200") + Decimal(shipment.planned_weight or 0) * Decimal("0.08"))
    return {"linehaul": linehaul, "fuel": _money(linehaul * Decimal("0.12"))}


def rate_confirmation_record(shipment: Shipment) -> Document:
    """The carrier's rate confirmation as its e-mail brings it (the file and the charges read from it)."""
    charges = agreed_charges(shipment)
    text = f"RATE CONFIRMATION {CARRIER_SCAC} {shipment.reference} " + " ".join(f"{code}={amount}" for code, amount in charges.items())
    return document_record(
        kind=DocumentKind.RATE_CONFIRMATION,
        content=f"%PDF-1.4\n{text}\n".encode(),
        original_name=f"ratecon-{shipment.reference}.pdf",
        shipment=shipment,
        content_type="application/pdf",
        source="email",
        extracted_fields={"charges": {code: str(amount) for code, amount in charges.items()}},
        actor=SIMULATOR,
    ).document


def journey(shipment: Shipment) -> list[Stage]:
    """The stages this shipment goes through: a quarter of them are delayed on the road."""
    delayed = dice(shipment.reference, "delay") < 25
    return [stage for stage in JOURNEY if delayed or not stage.delay]


def _stops(shipment: Shipment) -> dict[str, Location | None]:
    stops = list(shipment.stops.select_related("location").order_by("sequence"))
    origin = next((stop.location for stop in stops if stop.kind == StopKind.PICKUP), None)
    destination = next((stop.location for stop in reversed(stops) if stop.kind == StopKind.DELIVERY), None)
    return {"origin": origin, "destination": destination, "road": destination}


def _tracker_event(shipment: Shipment, stage: Stage, index: int, place: Location | None, now: dt.datetime) -> dict[str, Any]:
    city, region, country = (place.city, place.region, place.country) if place else ("", "", "")
    detail = {
        "object": "TrackingDetail",
        "message": stage.message,
        "status": stage.code,
        "datetime": _iso(now),
        "source": CARRIER_SCAC,
        "tracking_location": {"object": "TrackingLocation", "city": city.upper(), "state": region, "country": country, "zip": ""},
    }
    tracker = {
        "id": f"trk_{shipment.reference.lower()}",
        "object": "Tracker",
        "mode": "test",
        "tracking_code": carrier_pro(shipment),
        "shipment_id": shipment.reference,
        "carrier": CARRIER_SCAC,
        "status": stage.code,
        "signed_by": "R. DOCK" if stage.code == "delivered" else None,
        "est_delivery_date": None,
        "tracking_details": [detail],
        "updated_at": _iso(now),
    }
    return {
        "id": f"evt_sim_{shipment.reference.lower()}_{index}",
        "object": "Event",
        "mode": "test",
        "description": "tracker.updated",
        "created_at": _iso(now),
        "result": tracker,
    }


def x12_text(value: str) -> str:
    """Upper-case ASCII, as X12's basic character set wants it (DÜSSELDORF → DUSSELDORF)."""
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().upper()


def _status_214(shipment: Shipment, code: str, reason: str, place: Location | None, moment: dt.datetime) -> ShipmentStatus:
    city, region, country = (x12_text(place.city), x12_text(place.region), place.country) if place else ("", "", "")
    at = moment.astimezone(dt.UTC)
    milestone = TrackingMilestone(
        shipment_id=shipment.reference,
        status_code=code,
        status_reason=reason,
        date=at.date(),
        time=at.time().replace(microsecond=0),
        time_zone_code="UT",
        city=city,
        state=region[:2],
        country={"US": "USA", "NL": "NLD", "BE": "BEL", "DE": "DEU", "FR": "FRA"}.get(country, country),
    )
    return ShipmentStatus(shipment_id=shipment.reference, pro_number=carrier_pro(shipment), scac=CARRIER_SCAC, milestones=[milestone])


def shipment_advance(*, shipment: Shipment, partners: Partners, now: dt.datetime) -> dict[str, Any]:
    """Send the shipment's next stage (see the module); what was sent."""
    done = set(shipment.events.filter(source__in=(EventSource.X12_214, EventSource.CARRIER_API)).values_list("source", "raw_code"))
    stages = journey(shipment)
    pending = [(index, stage) for index, stage in enumerate(JOURNEY) if stage in stages and (stage.source, stage.code) not in done]
    if not pending:
        return {"shipment": shipment.reference, "sent": "nothing: journey complete"}
    index, stage = pending[0]
    places = _stops(shipment)
    report: dict[str, Any] = {"shipment": shipment.reference, "stage": stage.code}
    if stage.channel == "edi":
        reason = DELAY_REASON if stage.delay else "NS"
        status = _status_214(shipment, stage.code, reason, places[stage.at], now)
        report["edi"] = partners.edi([status], control_number=_control(shipment, CONTROL_214 + index), now=now)
    else:
        event = _tracker_event(shipment, stage, index, places[stage.at], now)
        report["webhook"] = partners.webhook(key="carrier", document=event, event_id=event["id"])
        if dice(shipment.reference, f"resend{index}") < 15:  # the carrier's retry of a delivered webhook
            report["duplicate"] = partners.webhook(key="carrier", document=event, event_id=event["id"])
    if stage.code == "out_for_delivery" and dice(shipment.reference, "late") < 35:
        # A 214 the EDI desk batched up: older than what the tracker already said.
        late = _status_214(shipment, "X6", "NS", places["road"], now - dt.timedelta(minutes=20))
        report["late_214"] = partners.edi([late], control_number=_control(shipment, CONTROL_LATE_214), now=now)
    return report


def _pod_event(shipment: Shipment, *, copy: int, signed: bool, now: dt.datetime) -> dict[str, Any]:
    destination = _stops(shipment)["destination"]
    pieces = sum(int(line.quantity) for order in shipment.orders.all() for line in order.lines.all()) or 1
    damaged = dice(shipment.reference, "pod") >= 85
    signer = "M. ORTIZ" if signed else ""
    fields: dict[str, Any] = {
        "consignee": destination.name if destination else "Receiving",
        "delivered_at": _iso(shipment.delivered_at or now),
        "pieces": pieces,
        "exceptions": ["2 cartons crushed on the top tier"] if damaged else "none",
    }
    if damaged:
        fields["claim_amount"] = "480.00"
    scan = f"%PDF-1.4\nPOD {shipment.reference} copy {copy} signed by {signer or 'nobody'}\n".encode()
    return {
        "event_type": "document.received",
        "event_id": f"pod-{shipment.reference}-{copy}",
        "correlation": {"shipment": shipment.reference},
        "payload": {
            "kind": DocumentKind.POD.value,
            "shipment": shipment.reference,
            "file_name": f"pod-{shipment.reference}-{copy}.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(scan).decode(),
            "signed_by": signer,
            "signed_at": _iso(now) if signed else None,
            "fields": fields,
            "source": "api",
        },
    }


def invoice_charges(shipment: Shipment) -> list[tuple[str, str, Decimal]]:
    """(210 charge code, description, amount): as agreed, a little over (within the carrier's
    tolerance) or well over (a dispute), by the shipment."""
    agreed = agreed_charges(shipment)
    roll = dice(shipment.reference, "invoice")
    extra = Decimal("140.00") if roll < 20 else Decimal("10.00") if roll < 35 else Decimal("0")
    return [("400", "Linehaul", agreed["linehaul"] + extra), ("FUE", "Fuel surcharge", agreed["fuel"])]


def invoice_send(*, shipment: Shipment, partners: Partners, now: dt.datetime) -> dict[str, Any]:
    """The carrier's invoice: an X12 210 from the EDI desk, or `invoice.received` from its
    document desk, by the shipment."""
    charges = invoice_charges(shipment)
    total = sum((amount for _code, _description, amount in charges), Decimal("0"))
    number = f"{CARRIER_SCAC}{shipment.pk:07d}"
    currency = shipment.customer_account.currency if shipment.customer_account else "USD"
    if dice(shipment.reference, "via") < 60:
        invoice = Edi210(
            invoice_number=number,
            shipment_id=shipment.reference,
            scac=CARRIER_SCAC,
            payment_method="PP",
            invoice_date=now.date(),
            net_amount_due=total,
            currency=currency,
            charges=[
                Charge(line_number=index, description=description, amount=amount, special_charge_code=code)
                for index, (code, description, amount) in enumerate(charges, start=1)
            ],
            total_charge=total,
        )
        return {
            "shipment": shipment.reference,
            "invoice": number,
            "210": partners.edi([invoice], control_number=_control(shipment, CONTROL_210), now=now),
        }
    event_id = f"invoice-{number}"
    event: dict[str, Any] = {
        "event_type": "invoice.received",
        "event_id": event_id,
        "correlation": {"shipment": shipment.reference},
        "payload": {
            "invoice_number": number,
            "scac": CARRIER_SCAC,
            "shipment_id": shipment.reference,
            "invoice_date": now.date().isoformat(),
            "currency": currency,
            "charges": [{"charge_code": code, "description": description, "amount": str(amount)} for code, description, amount in charges],
            "total_amount": str(total),
        },
    }
    return {
        "shipment": shipment.reference,
        "invoice": number,
        "webhook": partners.webhook(key=DOCUMENTS_KEY, document=event, event_id=event_id),
    }


def paperwork_send(
    *, shipment: Shipment, partners: Partners, now: dt.datetime, step_after: dt.timedelta = STEP_AFTER
) -> dict[str, Any] | None:
    """The next paper a delivered shipment is due: its POD, a signed copy of an unsigned one, or
    the carrier's invoice; None when it has them all (or the last came too recently)."""
    pods = list(shipment.documents.filter(kind=DocumentKind.POD).order_by("received_at"))
    if not pods:
        signed = dice(shipment.reference, "pod") >= 15
        event = _pod_event(shipment, copy=1, signed=signed, now=now)
        return {
            "shipment": shipment.reference,
            "pod": "signed" if signed else "unsigned",
            "webhook": partners.webhook(key=DOCUMENTS_KEY, document=event, event_id=event["event_id"]),
        }
    if not any(pod.signed_by for pod in pods):
        if now - pods[-1].received_at < step_after * SIGNED_COPY_AFTER:
            return None
        event = _pod_event(shipment, copy=2, signed=True, now=now)
        return {
            "shipment": shipment.reference,
            "pod": "signed copy",
            "webhook": partners.webhook(key=DOCUMENTS_KEY, document=event, event_id=event["event_id"]),
        }
    if shipment.freight_invoices.exists() or now - pods[-1].received_at < step_after:
        return None
    return invoice_send(shipment=shipment, partners=partners, now=now)


def _guarded(what: str, send: Any) -> Any:
    """One item's sending: a refusal (a document the writer rejects, a record a service refuses)
    is reported in the tick's log instead of stopping the other items."""
    try:
        return send()
    except (ValueError, LogisticsRefused) as error:
        return {"item": what, "not sent": str(error)}


def simulator_tick(
    *, sequence: int, partners: Partners, now: dt.datetime | None = None, step_after: dt.timedelta = STEP_AFTER
) -> dict[str, Any]:
    """One tick of the outside world in the current tenant (see the module): what was sent."""
    now = now or timezone.now()
    report: dict[str, Any] = {}
    if sequence % ORDER_EVERY == 0:
        report["order"] = _guarded("order", lambda: order_place(sequence=sequence, partners=partners))
    report["tenders"] = _guarded("tender answers", lambda: tender_answers(partners=partners, now=now))
    due = list(
        Shipment.objects.filter(carrier_scac=CARRIER_SCAC, tender_status=TenderStatus.ACCEPTED, delivered_at__isnull=True)
        .exclude(status__in=TERMINAL_STATUSES)
        .annotate(last_news=Max("events__received_at"))
        .filter(Q(last_news__isnull=True) | Q(last_news__lte=now - step_after))
        .order_by("last_news", "pk")[:MOVES_CONSIDERED]
    )
    # In turn, so that a shipment whose news never lands (a partner's message quarantined) does
    # not hold up the others.
    offset = sequence % len(due) if due else 0
    moving = (due[offset:] + due[:offset])[:MOVES_PER_TICK]
    report["moves"] = [
        _guarded(shipment.reference, lambda shipment=shipment: shipment_advance(shipment=shipment, partners=partners, now=now))
        for shipment in moving
    ]
    delivered = list(
        Shipment.objects.filter(carrier_scac=CARRIER_SCAC, delivered_at__gte=now - RECENT)
        .annotate(invoices=Count("freight_invoices"), last_news=Max("events__received_at"))
        .filter(invoices=0, last_news__lte=now - step_after)
        .select_related("customer_account")
        .order_by("delivered_at", "pk")[:MOVES_CONSIDERED]
    )
    offset = sequence % len(delivered) if delivered else 0
    papers = []
    for shipment in (delivered[offset:] + delivered[:offset])[: PAPERS_PER_TICK * 3]:
        sent = _guarded(
            shipment.reference,
            lambda shipment=shipment: paperwork_send(shipment=shipment, partners=partners, now=now, step_after=step_after),
        )
        if sent is not None:
            papers.append(sent)
        if len(papers) >= PAPERS_PER_TICK:
            break
    report["papers"] = papers
    return report
