"""Proof of delivery to invoice: two delivered shipments of the sandbox carrier with their rate
confirmations. For the first, the carrier's 210 (to the rate) arrives over EDI, then its signed POD
is announced through the document intake's signed webhook: the invoice must be approved and the
customer invoice PDF reach the sandbox ERP. For the second, with its POD on file, a 210 billing
the linehaul 100.00 over must be disputed with an invoice-mismatch exception and never billed."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

from connectors.demo import EDI_KEY, ERP
from connectors.edi.documents import Charge
from connectors.edi.documents import FreightInvoice as Edi210
from connectors.models import EdiPartner
from connectors.sandbox.carrier import CARRIER
from logistics.library.pod_to_invoice import TEMPLATE
from logistics.models import Document, ExceptionCase, FreightInvoice, Shipment, StopKind
from logistics.scenarios.base import (
    ACTOR,
    NotYet,
    Scenario,
    ScenarioContext,
    definition_published,
    demo_actions_ensure,
    demo_connection,
    document_intake,
    master_data,
)
from logistics.services import StopInput, document_record, shipment_create, tracking_event_record

# What the template's ERP step calls, at the sandbox ERP (a demo seeded before it lacks it).
ERP_ACTIONS = {"invoice_create": {"method": "POST", "path": "/api/invoices"}}
RATE = {"linehaul": "1500.00", "fuel": "150.00"}
POD_FIELDS = {"consignee": "Dallas store receiving", "pieces": 12, "exceptions": "none"}


def delivered_shipment(ctx: ScenarioContext, *, rate_confirmation: bool = True) -> Shipment:
    """A shipment of the sandbox carrier delivered two hours ago, with its rate confirmation."""
    customer, origin, destination = master_data()
    reference = ctx.number("SHP-")
    shipment = shipment_create(
        customer_account=customer,
        reference=reference,
        carrier_scac=CARRIER,
        pro_number=ctx.number("PRO-"),
        bol_number=ctx.number("BOL-"),
        planned_rate="1650.00",
        stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)],
        actor=ACTOR,
    )
    delivered_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    tracking_event_record(shipment=shipment, occurred_at=delivered_at, source="api", status="delivered", actor=ACTOR)
    if rate_confirmation:
        document_record(
            kind="rate_confirmation",
            content=f"rate confirmation {reference}".encode(),
            original_name=f"ratecon-{reference}.pdf",
            shipment=shipment,
            extracted_fields={"charges": RATE},
            actor=ACTOR,
        )
    return shipment


def pod_record(shipment: Shipment, **fields: object) -> Document:
    """The signed POD as a scan leaves it: stored, with what was read from it."""
    delivered = shipment.delivered_at or dt.datetime.now(dt.UTC)
    return document_record(
        kind="pod",
        content=f"%PDF-1.4 POD {shipment.reference} {uuid.uuid4().hex}".encode(),
        original_name=f"pod-{shipment.reference}.pdf",
        shipment=shipment,
        content_type="application/pdf",
        source="upload",
        signed_by="M. Ortiz",
        extracted_fields={**POD_FIELDS, "delivered_at": delivered.isoformat(), **fields},
        actor=ACTOR,
    ).document


def pod_announce(ctx: ScenarioContext, shipment: Shipment, document: Document) -> int:
    """The document intake's `document.received` for the POD, as a signed webhook; the HTTP status."""
    event_id = f"doc-{uuid.uuid4().hex[:16]}"
    return ctx.webhook_post(
        document_intake(),
        {
            "event_type": "document.received",
            "event_id": event_id,
            "correlation": {"shipment": shipment.reference},
            "payload": {"kind": "pod", "shipment": shipment.reference, "document_id": document.pk},
        },
    )


def _invoice_210(ctx: ScenarioContext, partner: EdiPartner, shipment: Shipment, linehaul: str) -> str:
    number = ctx.number("FI-")
    charges = [("400", "Linehaul Memphis-Dallas", linehaul), ("FUE", "Fuel surcharge", RATE["fuel"])]
    total = sum((Decimal(amount) for _code, _text, amount in charges), Decimal("0"))
    ctx.edi_send(
        partner,
        [
            Edi210(
                invoice_number=number,
                shipment_id=shipment.reference,
                scac=CARRIER,
                payment_method="PP",
                invoice_date=dt.datetime.now(dt.UTC).date(),
                net_amount_due=total,
                currency="USD",
                charges=[
                    Charge(line_number=index, description=text, amount=Decimal(amount), special_charge_code=code)
                    for index, (code, text, amount) in enumerate(charges, start=1)
                ],
                total_charge=total,
                lading_quantity=12,
            )
        ],
    )
    return number


def play(ctx: ScenarioContext) -> None:
    began = time.monotonic()
    partner = EdiPartner.objects.select_related("connection").filter(connection=demo_connection(EDI_KEY)).first()
    if partner is None:
        raise ctx.missing(
            "set up", "the demo carrier's EDI partner", f"the '{EDI_KEY}' connection has no EDI partner: run `manage.py seed_demo`"
        )
    definition, how = definition_published(TEMPLATE, name="POD to invoice (scenarios)", parameters={})
    version = definition.published_version
    assert version is not None
    alias = str(version.parameters.get("erp_connection") or ERP)
    erp = demo_connection(str((version.connection_bindings or {}).get(alias) or alias))
    added = demo_actions_ensure(erp, ERP_ACTIONS)
    document_intake()
    note = f"; the ERP connection now has {', '.join(added)}" if added else ""
    ctx.done("set up", "a published POD to invoice on the demo ERP and carrier EDI", f"{how}{note}", began=began)

    matched = delivered_shipment(ctx)
    number = _invoice_210(ctx, partner, matched, RATE["linehaul"])

    def waiting_for_pod() -> str:
        invoice = FreightInvoice.objects.filter(invoice_number=number, carrier_scac=CARRIER).first()
        if invoice is None:
            raise NotYet(f"no invoice {number} recorded")
        return f"invoice {number} for {matched.reference}: {invoice.currency} {invoice.total_amount}, {invoice.match_status}"

    ctx.expect("210 received", f"{CARRIER}'s 210 {number} recorded against {matched.reference}", waiting_for_pod)

    began = time.monotonic()
    status = pod_announce(ctx, matched, pod_record(matched))
    if status != 202:
        raise ctx.missing(
            "POD announced", f"the signed POD of {matched.reference} announced", f"the intake answered HTTP {status}", began=began
        )
    ctx.done("POD announced", f"the signed POD of {matched.reference} announced through the document intake", "HTTP 202", began=began)

    def approved() -> str:
        invoice = FreightInvoice.objects.filter(invoice_number=number, carrier_scac=CARRIER).first()
        if invoice is None or invoice.match_status != "approved":
            raise NotYet(f"invoice {number} is {invoice.match_status if invoice else 'missing'}")
        return f"invoice {number} {invoice.match_details.get('result', 'matched')} and approved"

    ctx.expect("invoice matched", f"invoice {number} matched to the rate and approved", approved)

    def billed() -> str:
        sent = [
            effect
            for effect in ctx.sandbox_effects(erp, "invoice")
            if effect["payload"].get("invoice", {}).get("shipment") == matched.reference
        ]
        if not sent:
            raise NotYet(f"the ERP has no invoice for {matched.reference}")
        if not Document.objects.filter(shipment=matched, kind="invoice").exists():
            raise NotYet("the customer invoice PDF is not stored")
        invoice = sent[-1]["payload"]["invoice"]
        return f"{invoice.get('number')} ({invoice.get('currency')} {invoice.get('total')}, PDF attached) is {sent[-1]['reference']} at the ERP"

    ctx.expect("invoice PDF to the ERP", f"the customer invoice PDF for {matched.reference} sent to the ERP", billed)

    over = delivered_shipment(ctx)
    pod_record(over)  # on file before the invoice: an upload nobody announced
    over_number = _invoice_210(ctx, partner, over, "1600.00")

    def disputed() -> str:
        invoice = FreightInvoice.objects.filter(invoice_number=over_number, carrier_scac=CARRIER).first()
        if invoice is None or invoice.match_status != "disputed":
            raise NotYet(f"invoice {over_number} is {invoice.match_status if invoice else 'missing'}")
        case = ExceptionCase.objects.filter(shipment=over, type="invoice_mismatch", status="open").first()
        if case is None:
            raise NotYet("no open invoice-mismatch exception")
        if [
            effect
            for effect in ctx.sandbox_effects(erp, "invoice")
            if effect["payload"].get("invoice", {}).get("shipment") == over.reference
        ]:
            raise NotYet(f"invoice {over_number} is disputed but the customer was billed for {over.reference} at the ERP")
        return f"invoice {over_number} disputed; exception {case.pk}: {case.reason}"

    ctx.expect("over-tolerance dispute", f"invoice {over_number} (linehaul 100.00 over) disputed, never billed", disputed)


SCENARIO = Scenario(name="pod_to_invoice", title="Proof of delivery to invoice", template_key=TEMPLATE["key"], play=play, template_major=1)
