"""Baton actions of the `pod-to-invoice` template (`logistics.invoicing` does the work): pair the
carrier's invoice with the POD, check the POD, match, produce the customer invoice, note the ERP's
answer. A refusal names what is wrong with the input."""

from __future__ import annotations

from typing import Any

from governance.services import Actor
from logistics.invoicing import (
    customer_invoice_produce,
    customer_invoice_sent,
    erp_invoice,
    invoice_from_event,
    invoice_match,
    pod_check,
    pod_from_event,
    pod_incomplete_open,
    pod_invoice_pair,
)
from logistics.models import Document, DocumentKind, FreightInvoice
from logistics.services import LogisticsRefused
from workflows.actions import ActionRefused

ACTOR = Actor.system("pod-to-invoice")


def run_of(idempotency_key: str) -> int:
    """The run an action call belongs to (keys are `<run>:<step>[#visit]`)."""
    head = idempotency_key.split(":", 1)[0]
    if not head.isdigit():
        raise ActionRefused(f"'{idempotency_key}' is not a step's idempotency key (<run>:<step>)")
    return int(head)


def record_id(value: Any) -> int:
    """A row id from a step's input (0, which no row has, when it is not one)."""
    text = str(value if value is not None else "").strip()
    return int(text) if text.isdigit() else 0


def _object(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and value else None


def _is_invoice(event: dict[str, Any]) -> bool:
    return event.get("kind") == "freight_invoice" or event.get("set") == "210" or "invoice_number" in event


def _is_pod(event: dict[str, Any]) -> bool:
    return event.get("kind") == DocumentKind.POD


def pair(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Record what the events brought (the trigger's, and each wait's latest) and say where the
    shipment stands: ready (this run matches), handled (another run does), or what to wait for."""
    invoices: list[FreightInvoice] = []
    pods: list[Document] = []
    milestones: list[dict[str, Any]] = []
    try:
        for name in ("trigger", "invoice", "pod", "milestone"):
            event = _object(payload.get(name))
            if event is None:
                continue
            if name == "invoice" or (name == "trigger" and _is_invoice(event)):
                invoices.append(invoice_from_event(event, actor=ACTOR))
            elif name == "pod" or (name == "trigger" and _is_pod(event)):
                pods.append(pod_from_event(event, actor=ACTOR))
            elif name == "milestone":
                milestones.append(event)
            else:
                raise ActionRefused("the trigger is neither a carrier invoice (210) nor a proof of delivery (kind pod)")
        if not invoices and not pods:
            raise ActionRefused("give the carrier's invoice or the POD: there is nothing to pair")
        return pod_invoice_pair(run_id=run_of(idempotency_key), invoices=invoices, pods=pods, milestones=milestones).as_data()
    except LogisticsRefused as refused:
        raise ActionRefused(refused.message) from refused


def check_pod(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Is the POD complete? If not, an open `pod_incomplete` exception carries the reason to a person."""
    document = Document.objects.select_related("shipment").filter(pk=record_id(payload.get("pod_id")), kind=DocumentKind.POD).first()
    if document is None or document.shipment is None:
        raise ActionRefused(f"there is no proof of delivery with id {payload.get('pod_id')!r} for a shipment")
    check = pod_check(document)
    answer: dict[str, Any] = {
        "pod_id": document.pk,
        "complete": check.complete,
        "problems": check.problems,
        "reason": check.reason,
        "exceptions_noted": check.exceptions_noted,
        "pieces": check.pieces,
    }
    if not check.complete:
        answer["exception_id"] = pod_incomplete_open(document=document, check=check, actor=ACTOR).pk
    return answer


def _invoice(payload: dict[str, Any]) -> FreightInvoice:
    invoice = (
        FreightInvoice.objects.select_related("shipment", "shipment__customer_account")
        .filter(pk=record_id(payload.get("invoice_id")))
        .first()
    )
    if invoice is None:
        raise ActionRefused(f"there is no freight invoice with id {payload.get('invoice_id')!r}")
    return invoice


def match(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """The three-way match: approved, or disputed with the differences itemised."""
    try:
        matched = invoice_match(invoice=_invoice(payload), actor=ACTOR)
    except LogisticsRefused as refused:
        raise ActionRefused(refused.message) from refused
    return {
        "invoice_id": matched.invoice.pk,
        "invoice_number": matched.invoice.invoice_number,
        "approved": matched.dispute is None,
        "match_status": matched.invoice.match_status,
        "dispute_id": matched.dispute.pk if matched.dispute else None,
        **matched.match.as_data(),
    }


def produce(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """The customer invoice PDF in the tenant's brand, kept with the shipment, and the ERP's copy."""
    invoice = _invoice(payload)
    try:
        produced = customer_invoice_produce(invoice=invoice, actor=ACTOR)
    except LogisticsRefused as refused:
        raise ActionRefused(refused.message) from refused
    return {"number": produced.number, "document_id": produced.document.pk, "erp_invoice": erp_invoice(produced, invoice)}


def sent(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Note the ERP's answer on the invoice."""
    invoice = customer_invoice_sent(invoice=_invoice(payload), erp_answer=_object(payload.get("erp")) or {}, actor=ACTOR)
    return {"invoice_id": invoice.pk, "erp": invoice.match_details.get("erp", {})}


ACTIONS = [
    ("pod_to_invoice.pair", pair, "Record the carrier's invoice or the POD an event brought and pair them by shipment."),
    ("pod.check", check_pod, "Check a POD for signature, date, consignee, pieces and exceptions; open pod_incomplete if not."),
    ("invoice.match", match, "Three-way match of a carrier invoice; approve it or open a dispute with the differences."),
    ("customer_invoice.produce", produce, "Render the customer invoice PDF in the tenant's brand for an approved invoice."),
    ("customer_invoice.sent", sent, "Note the ERP's answer for a customer invoice."),
]
HEAVY = frozenset({"customer_invoice.produce"})  # a WeasyPrint render, about 0.1 s of CPU
