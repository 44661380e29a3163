"""Proof of delivery to invoice: pairing a carrier's invoice with its shipment's POD, checking the
POD, the three-way match (tender / rate confirmation, POD, the carrier's 210) and the customer
invoice in the tenant's brand. The `pod-to-invoice` template drives it through the actions in
`logistics.actions.invoices`; everything here is plain services a person's page could call too.

The match, per carrier (`CarrierRule`, the empty SCAC as the default):
- the contracted charges come from the shipment's rate confirmation (`extracted_fields.charges`,
  charge code → amount), else from the tendered rate (`Shipment.planned_rate`) compared with
  linehaul and fuel together;
- accessorials need evidence: detention needs arrival and departure at a stop, dwelling past the
  rule's free time (and is priced at its hourly rate when the rule has one); a lumper needs a
  receipt document (its `amount` when read); anything else must be on the rate confirmation;
- a charge refused for want of evidence is always a mismatch; otherwise the invoice total may
  differ from the expected total by the lesser of the rule's amount and percent tolerances.
Every line is itemised (line, charge, expected, billed, difference, rule) in the invoice's
`match_details`; a mismatch sets the invoice `disputed` and opens an `invoice_mismatch`
exception carrying the same items.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.formats import number_format
from django.utils.translation import gettext

from governance.services import audit_record
from logistics.models import (
    CURRENCY_DEFAULT,
    CarrierRule,
    ChargeCode,
    ChargeLine,
    Document,
    DocumentKind,
    ExceptionCase,
    ExceptionType,
    FreightInvoice,
    MatchStatus,
    Severity,
    Shipment,
    Stop,
)
from logistics.selectors import reference_normalized, shipment_find
from logistics.services import (
    ChargeInput,
    InvoiceInvalid,
    LogisticsRefused,
    document_record,
    exception_open,
    invoice_record,
)
from logistics.vocabulary import TrackingStatus
from tenants.db import connection

CENT = Decimal("0.01")
# X12 210 L1-08 special charge codes (and common carrier variants) in Baton's charge codes.
X12_CHARGE_CODES: dict[str, str] = {
    "400": ChargeCode.LINEHAUL,
    "405": ChargeCode.LINEHAUL,
    "FRT": ChargeCode.LINEHAUL,
    "LHS": ChargeCode.LINEHAUL,
    "FUE": ChargeCode.FUEL,
    "FSC": ChargeCode.FUEL,
    "DET": ChargeCode.DETENTION,
    "DTV": ChargeCode.DETENTION,
    "DTL": ChargeCode.DETENTION,
    "LUM": ChargeCode.LUMPER,
    "LMP": ChargeCode.LUMPER,
    "LAY": ChargeCode.LAYOVER,
    "LFG": ChargeCode.LIFTGATE,
    "LFT": ChargeCode.LIFTGATE,
    "TAX": ChargeCode.TAX,
    "DSC": ChargeCode.DISCOUNT,
}
DESCRIPTION_WORDS = (
    ("detention", ChargeCode.DETENTION),
    ("lumper", ChargeCode.LUMPER),
    ("layover", ChargeCode.LAYOVER),
    ("liftgate", ChargeCode.LIFTGATE),
    ("fuel", ChargeCode.FUEL),
    ("linehaul", ChargeCode.LINEHAUL),
    ("line haul", ChargeCode.LINEHAUL),
    ("freight", ChargeCode.LINEHAUL),
)
BASE_CHARGES = (ChargeCode.LINEHAUL, ChargeCode.FUEL)


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number.quantize(CENT, rounding=ROUND_HALF_UP) if number.is_finite() else None


def charge_code_for(raw_code: str, description: str = "") -> str:
    """Baton's charge code for a 210 line: its L1-08 code, else words of its description."""
    code = X12_CHARGE_CODES.get((raw_code or "").strip().upper())
    if code:
        return code
    if raw_code in ChargeCode.values:
        return raw_code
    words = (description or "").lower()
    return next((charge for word, charge in DESCRIPTION_WORDS if word in words), ChargeCode.ACCESSORIAL if raw_code else ChargeCode.OTHER)


def carrier_rule_for(scac: str) -> CarrierRule:
    """The carrier's own rule, else the default (empty SCAC), else the model's defaults."""
    rules = {rule.scac: rule for rule in CarrierRule.objects.filter(scac__in=[scac, ""])}
    return rules.get(scac) or rules.get("") or CarrierRule(scac="")


# --- the carrier's invoice, from a 210 or the events API ---------------------------------------


def invoice_from_event(payload: dict[str, Any], *, actor: Any) -> FreightInvoice:
    """Record the invoice an `invoice.received` event carries (the 210's normalized form, or the
    same fields by API); the same carrier and number is the invoice already recorded."""
    number = str(payload.get("invoice_number") or "").strip()
    scac = str(payload.get("scac") or payload.get("carrier_scac") or "").strip().upper()
    reference = str(payload.get("shipment_id") or payload.get("shipment") or "").strip()
    shipment = shipment_find(reference) if reference else None
    if reference and shipment is None:
        raise InvoiceInvalid(f"invoice {number or '?'} names shipment {reference!r}, which Baton does not know", "shipment_id")
    charges = []
    for index, line in enumerate(payload.get("charges") or [], start=1):
        if not isinstance(line, dict):
            raise InvoiceInvalid(f"charge {index} must be an object", f"charges/{index}")
        raw = str(line.get("special_charge_code") or line.get("charge_code") or "").strip()
        description = str(line.get("description") or "")
        charges.append(
            ChargeInput(
                charge_code=charge_code_for(raw, description),
                amount=line.get("amount"),
                description=description,
                quantity=line.get("quantity") or 1,
                rate=line.get("rate"),
                raw_code=raw,
            )
        )
    total = payload.get("net_amount_due")
    if total in (None, ""):
        total = payload.get("total_charge", payload.get("total_amount"))
    invoice_date = payload.get("invoice_date")
    recorded = invoice_record(
        carrier_scac=scac or (shipment.carrier_scac if shipment else ""),
        invoice_number=number,
        charges=charges,
        total_amount=total,
        shipment=shipment,
        carrier=shipment.carrier if shipment else None,
        invoice_date=parse_date(invoice_date) if isinstance(invoice_date, str) else None,
        currency=str(payload.get("currency") or ""),
        source="edi_210" if payload.get("set") == "210" else "api",
        actor=actor,
    )
    return recorded.invoice


# --- the POD ---------------------------------------------------------------------------------


def pod_from_event(payload: dict[str, Any], *, actor: Any) -> Document:
    """The POD a `document.received` event announces: one already stored (upload, email) by its
    `document_id`, or one sent by API with its file (`content_base64`) and fields."""
    document_id = payload.get("document_id")
    if document_id not in (None, ""):
        document = Document.objects.select_related("shipment").filter(pk=document_id, kind=DocumentKind.POD).first()
        if document is None:
            raise LogisticsRefused(f"there is no proof of delivery with id {document_id}", "document_id")
        return document
    reference = str(payload.get("shipment") or "").strip()
    shipment = shipment_find(reference) if reference else None
    if shipment is None:
        raise LogisticsRefused(f"the POD names shipment {reference!r}, which Baton does not know", "shipment")
    try:
        content = base64.b64decode(str(payload.get("content_base64") or ""), validate=True)
    except ValueError as error:
        raise LogisticsRefused("content_base64 is not base64", "content_base64") from error
    signed_at = parse_datetime(str(payload.get("signed_at") or "")) if payload.get("signed_at") else None
    fields = payload.get("fields") if isinstance(payload.get("fields"), dict) else {}
    return document_record(
        kind=DocumentKind.POD,
        content=content,
        original_name=str(payload.get("file_name") or "pod.pdf"),
        shipment=shipment,
        content_type=str(payload.get("content_type") or ""),
        source=str(payload.get("source") or "api"),
        signed_by=str(payload.get("signed_by") or ""),
        signed_at=signed_at,
        extracted_fields=fields,
        actor=actor,
    ).document


@dataclass(frozen=True)
class PodCheck:
    complete: bool
    problems: list[str]
    exceptions_noted: list[str]
    pieces: int | None

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


def _notes(value: Any) -> list[str]:
    """Exception notes as written: a text or a list; "none" / "clean" mean no exceptions."""
    items = value if isinstance(value, list) else [value]
    notes = [str(item).strip() for item in items if item not in (None, "") and str(item).strip()]
    return [note for note in notes if note.lower() not in ("none", "clean", "no exceptions", "n/a")]


def pod_check(document: Document, *, rule: CarrierRule | None = None) -> PodCheck:
    """Is the POD complete: signed (when the carrier's rule asks), dated, naming the consignee,
    counting the pieces, and saying whether exceptions were noted (a clean POD says none)?"""
    fields = document.extracted_fields or {}
    rule = rule or carrier_rule_for(document.shipment.carrier_scac if document.shipment else "")
    problems = []
    if rule.pod_needs_signature and not (document.signed_by or str(fields.get("signed_by") or "").strip()):
        problems.append("the POD is not signed: ask the carrier for the signed copy")
    if not (document.signed_at or fields.get("delivered_at") or fields.get("date")):
        problems.append("the POD has no delivery date")
    if not str(fields.get("consignee") or "").strip():
        problems.append("the POD does not name the consignee who received the goods")
    pieces = fields.get("pieces")
    try:
        counted = int(pieces) if pieces not in (None, "") else None
    except (TypeError, ValueError):
        counted = None
    if counted is None or counted < 0:
        problems.append("the POD does not count the pieces delivered")
    if "exceptions" not in fields:
        problems.append("the POD does not say whether exceptions were noted (clean, or the damage or shortage)")
    return PodCheck(not problems, problems, _notes(fields.get("exceptions")), counted)


def pod_incomplete_open(*, document: Document, check: PodCheck, actor: Any) -> ExceptionCase:
    """The person's side of an incomplete POD: one open `pod_incomplete` case per shipment."""
    assert document.shipment is not None
    return exception_open(
        type=ExceptionType.POD_INCOMPLETE,
        reason=f"POD for {document.shipment.reference} is incomplete: {check.reason}",
        severity=Severity.MEDIUM,
        shipment=document.shipment,
        details={"document": document.pk, "problems": check.problems},
        actor=actor,
    ).exception


# --- pairing an invoice with its POD ---------------------------------------------------------


@dataclass(frozen=True)
class Pairing:
    """Where a shipment's POD-to-invoice stands for one run: `state` is ready (this run matches),
    handled (another run does), or what is still missing (wait_pod, wait_invoice, wait_delivered)."""

    state: str
    shipment: str
    invoice_id: int | None
    pod_id: int | None
    delivered: bool
    handled_by: int | None = None

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def _delivered(shipment: Shipment, milestones: Iterable[dict[str, Any]]) -> bool:
    if shipment.delivered_at is not None or shipment.status == TrackingStatus.DELIVERED:
        return True
    return any(str(event.get("code") or "") == TrackingStatus.DELIVERED for event in milestones)


def pod_invoice_pair(
    *,
    run_id: int,
    invoices: Iterable[FreightInvoice] = (),
    pods: Iterable[Document] = (),
    milestones: Iterable[dict[str, Any]] = (),
    shipment: Shipment | None = None,
) -> Pairing:
    """Pair what this run knows with what the shipment has on file, and claim the invoice for the
    run when both halves are there. Runs of the invoice and of the POD may both get here (each
    event starts one and wakes the other); the per-shipment lock and the invoice's `handled_by`
    make one of them the matcher and the others end."""
    invoices, pods = list(invoices), list(pods)
    sides: list[FreightInvoice | Document] = [*invoices, *pods]
    shipment = shipment or next((item.shipment for item in sides if item.shipment is not None), None)
    if shipment is None:
        raise LogisticsRefused("neither the invoice nor the POD names a shipment Baton knows", "shipment")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':pod-invoice:' || %s))", [str(shipment.pk)])
        shipment.refresh_from_db(fields=["delivered_at", "status"])
        pod = Document.objects.filter(shipment=shipment, kind=DocumentKind.POD).order_by("-received_at", "-pk").first()
        mine = {invoice.pk for invoice in invoices}
        candidates = list(FreightInvoice.objects.select_for_update().filter(shipment=shipment).order_by("received_at", "pk"))

        def owner(item: FreightInvoice) -> Any:
            return item.match_details.get("handled_by")

        # This run's own invoice, else one it already claimed, else a free one, else one another
        # run matches (then there is nothing left for this run).
        invoice = (
            next((item for item in candidates if item.pk in mine), None)
            or next((item for item in candidates if owner(item) == run_id), None)
            or next((item for item in candidates if item.match_status == MatchStatus.UNMATCHED and owner(item) is None), None)
            or next((item for item in candidates if owner(item) is not None), None)
        )
        handled_by = owner(invoice) if invoice is not None else None
        delivered = _delivered(shipment, milestones)
        if handled_by not in (None, run_id):
            state = "handled"
        elif invoice is None:
            state = "wait_invoice"
        elif pod is None:
            state = "wait_pod"
        elif not delivered:
            state = "wait_delivered"
        else:
            state = "ready"
        if state == "ready" and invoice is not None and handled_by is None:
            invoice.match_details = {**invoice.match_details, "handled_by": run_id}
            invoice.save(update_fields=["match_details"])
            handled_by = run_id
    return Pairing(state, shipment.reference, invoice.pk if invoice else None, pod.pk if pod else None, delivered, handled_by)


# --- the three-way match ---------------------------------------------------------------------


@dataclass(frozen=True)
class MatchItem:
    line: str  # the invoice's line number, or what the item compares ("total")
    charge: str
    expected: str
    billed: str
    difference: str
    rule: str
    refused: bool = False


@dataclass
class MatchResult:
    result: str  # matched, within_tolerance, mismatch
    expected_total: Decimal
    billed_total: Decimal
    tolerance: Decimal
    items: list[MatchItem] = field(default_factory=list)

    @property
    def differences(self) -> list[MatchItem]:
        return [item for item in self.items if item.refused or Decimal(item.difference) != 0]

    def as_data(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "expected_total": str(self.expected_total),
            "billed_total": str(self.billed_total),
            "difference": str(self.billed_total - self.expected_total),
            "tolerance": str(self.tolerance),
            "items": [asdict(item) for item in self.items],
            "differences": [asdict(item) for item in self.differences],
        }


def _contracted(shipment: Shipment) -> tuple[dict[str, Decimal], str]:
    """The agreed charges by code and where they come from."""
    confirmation = Document.objects.filter(shipment=shipment, kind=DocumentKind.RATE_CONFIRMATION).order_by("-received_at").first()
    charges = (confirmation.extracted_fields or {}).get("charges") if confirmation else None
    if confirmation is not None and isinstance(charges, dict) and charges:
        agreed = {code: amount for code, value in charges.items() if (amount := _money(value)) is not None}
        return agreed, f"rate confirmation {confirmation.original_name or confirmation.pk}"
    if shipment.planned_rate is not None:
        return {"base": Decimal(shipment.planned_rate)}, "tendered rate"
    return {}, ""


def _detention(shipment: Shipment, billed: Decimal, rule: CarrierRule) -> tuple[Decimal, str, bool]:
    """(expected amount, rule applied, refused) for a detention line."""
    stops = [stop for stop in Stop.objects.filter(shipment=shipment).order_by("sequence") if stop.arrived_at and stop.departed_at]
    if not stops:
        return Decimal("0"), "detention needs the arrival and departure times at the stop; the carrier gave none", True
    beyond = sum((max(stop.departed_at - stop.arrived_at - rule.detention_free_time, timedelta(0)) for stop in stops), timedelta(0))  # type: ignore[operator]
    free = _hours(rule.detention_free_time)
    if beyond <= timedelta(0):
        longest = max(stops, key=lambda stop: stop.departed_at - stop.arrived_at)  # type: ignore[operator]
        stayed = _hours(longest.departed_at - longest.arrived_at)  # type: ignore[operator]
        return Decimal("0"), f"no detention: the longest stop was {stayed} h, within the {free} h free time", True
    if rule.detention_rate_per_hour is None:
        return billed, f"detention evidenced: {_hours(beyond)} h past the {free} h free time", False
    expected = (Decimal(beyond.total_seconds()) / 3600 * rule.detention_rate_per_hour).quantize(CENT, rounding=ROUND_HALF_UP)
    return expected, f"detention: {_hours(beyond)} h past the {free} h free time at {rule.detention_rate_per_hour}/h", False


def _hours(duration: timedelta) -> str:
    return f"{Decimal(duration.total_seconds()) / 3600:.2f}".rstrip("0").rstrip(".")


def _lumper(shipment: Shipment, billed: Decimal, rule: CarrierRule) -> tuple[Decimal, str, bool]:
    receipt = Document.objects.filter(shipment=shipment, kind=DocumentKind.RECEIPT).order_by("-received_at").first()
    if receipt is None:
        if rule.lumper_needs_receipt:
            return Decimal("0"), "a lumper charge needs the lumper's receipt; none is on file", True
        return billed, "lumper accepted without a receipt (the carrier's rule allows it)", False
    amount = _money((receipt.extracted_fields or {}).get("amount"))
    if amount is None:
        return billed, f"lumper receipt {receipt.original_name or receipt.pk} on file", False
    return amount, f"lumper receipt {receipt.original_name or receipt.pk} for {amount}", False


def invoice_match_compute(invoice: FreightInvoice) -> MatchResult:
    """The three-way match of an invoice (see the module); reads only."""
    shipment = invoice.shipment
    if shipment is None:
        raise InvoiceInvalid(f"invoice {invoice.invoice_number} names no shipment: there is nothing to match it with", "shipment")
    rule = carrier_rule_for(invoice.carrier_scac)
    agreed, source = _contracted(shipment)
    lines = list(ChargeLine.objects.filter(invoice=invoice).order_by("line_number"))
    items: list[MatchItem] = []
    expected_total = Decimal("0")
    base_billed = Decimal("0")
    base_lines: list[str] = []
    for line in lines:
        billed = Decimal(line.amount)
        code = line.charge_code
        refused = False
        if code in BASE_CHARGES and "base" in agreed:
            base_billed += billed
            base_lines.append(str(line.line_number))
            continue
        if code == ChargeCode.DETENTION:
            expected, why, refused = _detention(shipment, billed, rule)
        elif code == ChargeCode.LUMPER:
            expected, why, refused = _lumper(shipment, billed, rule)
        elif code in agreed:
            expected, why = agreed[code], f"agreed on the {source}"
        elif code in BASE_CHARGES:
            expected, why = Decimal("0"), f"not on the {source}" if source else "no tender or rate confirmation to match against"
            refused = not source
        else:
            expected, why, refused = Decimal("0"), f"{ChargeCode(code).label.lower()} was not agreed on the {source or 'tender'}", True
        expected_total += expected
        items.append(MatchItem(str(line.line_number), code, str(expected), str(billed), str(billed - expected), why, refused))
    if "base" in agreed:
        expected = agreed["base"]
        expected_total += expected
        items.insert(
            0,
            MatchItem(
                ", ".join(base_lines) or "—",
                "linehaul + fuel",
                str(expected),
                str(base_billed),
                str(base_billed - expected),
                "the tendered rate covers linehaul and fuel",
            ),
        )
    billed_total = Decimal(invoice.total_amount)
    line_total = sum((Decimal(line.amount) for line in lines), Decimal("0"))
    if billed_total != line_total:
        items.append(
            MatchItem(
                "total",
                "total",
                str(line_total),
                str(billed_total),
                str(billed_total - line_total),
                "the invoice total does not add up its lines",
            )
        )
    tolerance = min(rule.amount_tolerance, (expected_total * rule.percent_tolerance / 100).quantize(CENT, rounding=ROUND_HALF_UP))
    difference = billed_total - expected_total
    if any(item.refused for item in items) or abs(difference) > tolerance or billed_total != line_total:
        result = "mismatch"
    elif difference == 0 and all(Decimal(item.difference) == 0 for item in items):
        result = "matched"
    else:
        result = "within_tolerance"
    return MatchResult(result, expected_total, billed_total, tolerance, items)


@dataclass(frozen=True)
class InvoiceMatched:
    invoice: FreightInvoice
    match: MatchResult
    dispute: ExceptionCase | None


def invoice_match(*, invoice: FreightInvoice, actor: Any) -> InvoiceMatched:
    """Match the invoice and record the verdict: approved (matched, or within tolerance) or
    disputed with an `invoice_mismatch` exception listing the differences."""
    match = invoice_match_compute(invoice)
    dispute = None
    with transaction.atomic():
        locked = FreightInvoice.objects.select_for_update().get(pk=invoice.pk)
        before = locked.match_status
        approved = match.result != "mismatch"
        locked.match_status = MatchStatus.APPROVED if approved else MatchStatus.DISPUTED
        locked.match_details = {**locked.match_details, **match.as_data(), "matched_at": timezone.now().isoformat()}
        if not approved:
            assert locked.shipment is not None
            lines = "; ".join(
                f"line {item.line} {item.charge}: billed {item.billed}, expected {item.expected} ({item.rule})"
                for item in match.differences
            )
            dispute = exception_open(
                type=ExceptionType.INVOICE_MISMATCH,
                reason=f"Invoice {locked.invoice_number} from {locked.carrier_scac or 'the carrier'} is disputed: {lines}",
                severity=Severity.MEDIUM,
                shipment=locked.shipment,
                details={"invoice": locked.pk, "invoice_number": locked.invoice_number, **match.as_data()},
                actor=actor,
            ).exception
            locked.match_details["dispute"] = dispute.pk
        locked.save(update_fields=["match_status", "match_details"])
        audit_record(
            actor=actor,
            action="freight_invoice.matched",
            target=locked,
            data={
                "from": before,
                "to": locked.match_status,
                "result": match.result,
                "expected": str(match.expected_total),
                "billed": str(match.billed_total),
                "differences": len(match.differences),
            },
        )
    return InvoiceMatched(locked, match, dispute)


# --- the customer invoice --------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerInvoice:
    number: str
    document: Document
    pdf: bytes
    total: Decimal
    currency: str
    lines: list[dict[str, str]]


def customer_invoice_number(invoice: FreightInvoice) -> str:
    assert invoice.shipment is not None
    return f"INV-{reference_normalized(invoice.shipment.reference)}-{invoice.pk}"


def _brand() -> tuple[Any, str, str]:
    """The tenant's site (product name, colours), its logo as a data URI (WeasyPrint reads no
    relative URLs, and a tenant's logo is its own file) and the workspace's language."""
    from tenants.models import Branding
    from tenants.selectors import site_for_tenant, tenant_language, tenants_filter

    tenant = tenants_filter().get(schema_name=connection.schema_name)
    site = site_for_tenant(tenant)
    branding = Branding.objects.filter(tenant=tenant).first()
    logo = ""
    if branding is not None and branding.logo:
        with branding.logo.open("rb") as handle:
            content = handle.read()
        name = (branding.logo.name or "").lower()
        kind = "image/svg+xml" if name.endswith(".svg") else "image/jpeg" if name.endswith((".jpg", ".jpeg")) else "image/png"
        logo = f"data:{kind};base64,{base64.b64encode(content).decode()}"
    return site, logo, tenant_language(tenant)


_pdf_parts = threading.local()


def _pdf_stylesheet(colours: tuple[str, str, str, str]) -> tuple[Any, Any]:
    """The invoice's stylesheet in a brand's colours (primary, on primary, accent, primary soft)
    and the font configuration it was parsed with: parsed once per brand and thread, not per
    invoice (it was a tenth of each render). Per thread, since Pango's font map is not to be
    shared between the threads connector steps run on."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    if not hasattr(_pdf_parts, "fonts"):
        _pdf_parts.fonts, _pdf_parts.sheets = FontConfiguration(), {}
    if colours not in _pdf_parts.sheets:
        primary, on_primary, accent, primary_soft = colours
        css = render_to_string(
            "logistics/invoice_pdf.css",
            {"primary": primary, "on_primary": on_primary, "accent": accent, "primary_soft": primary_soft},
        )
        if len(_pdf_parts.sheets) >= 32:
            _pdf_parts.sheets.clear()
        _pdf_parts.sheets[colours] = CSS(string=css, font_config=_pdf_parts.fonts)
    return _pdf_parts.sheets[colours], _pdf_parts.fonts


def customer_invoice_render(*, invoice: FreightInvoice, issued_on: date | None = None) -> tuple[bytes, list[dict[str, str]], Decimal]:
    """The customer invoice as a PDF in the tenant's brand and the workspace's language
    (WeasyPrint), with its lines and total: the approved charges, each as billed when the match
    accepted it."""
    from weasyprint import HTML

    shipment = invoice.shipment
    assert shipment is not None
    details = invoice.match_details or {}
    refused = {item["line"] for item in details.get("items", []) if item.get("refused")}
    lines = []
    for line in ChargeLine.objects.filter(invoice=invoice).order_by("line_number"):
        if str(line.line_number) in refused:
            continue
        label = line.description or ChargeCode(line.charge_code).label
        lines.append({"description": label, "charge": ChargeCode(line.charge_code).label, "amount": str(Decimal(line.amount))})
    total = sum((Decimal(line["amount"]) for line in lines), Decimal("0"))
    site, logo, language = _brand()
    stops = list(Stop.objects.filter(shipment=shipment).select_related("location").order_by("sequence"))
    number = customer_invoice_number(invoice)
    stylesheet, fonts = _pdf_stylesheet(
        (site.primary, site.on_primary, site.accent, site.css_variables.get("--brand-primary-soft", "#eef3f9"))
    )
    with translation.override(language):
        rows = [{**line, "shown": number_format(Decimal(line["amount"]), 2, use_l10n=True, force_grouping=True)} for line in lines]
        html = render_to_string(
            "logistics/invoice_pdf.html",
            {
                "site": site,
                "logo": logo,
                "number": number,
                "issued_on": issued_on or timezone.localdate(),
                "customer": shipment.customer_account,
                "shipment": shipment,
                "stops": stops,
                "carrier_invoice": invoice,
                "lines": rows,
                "total": number_format(total, 2, use_l10n=True, force_grouping=True),
                "currency": invoice.currency or CURRENCY_DEFAULT,
                # CSS strings in @page: no quotes or backslashes from a product name.
                "footer": _css_text(gettext("%(product)s · invoice %(number)s") % {"product": site.product_name, "number": number}),
                "page_word": _css_text(gettext("page")),
            },
        )
    return HTML(string=html).write_pdf(stylesheets=[stylesheet], font_config=fonts), lines, total


def _css_text(text: str) -> str:
    return re.sub(r'["\\\n<>]', "", text)


def customer_invoice_produce(*, invoice: FreightInvoice, actor: Any) -> CustomerInvoice:
    """Render the approved invoice's customer invoice and keep it with the shipment's documents
    (kind `invoice`); refused unless the match approved the carrier's invoice."""
    if invoice.match_status != MatchStatus.APPROVED:
        raise InvoiceInvalid(
            f"invoice {invoice.invoice_number} is {invoice.get_match_status_display().lower()}: only an approved invoice is billed on",
            "match_status",
        )
    pdf, lines, total = customer_invoice_render(invoice=invoice)
    number = customer_invoice_number(invoice)
    document = document_record(
        kind=DocumentKind.INVOICE,
        content=pdf,
        original_name=f"{number}.pdf",
        shipment=invoice.shipment,
        content_type="application/pdf",
        source="workflow",
        extracted_fields={"customer_invoice": number, "carrier_invoice": invoice.pk, "total": str(total), "currency": invoice.currency},
        actor=actor,
    ).document
    with transaction.atomic():
        locked = FreightInvoice.objects.select_for_update().get(pk=invoice.pk)
        locked.match_details = {
            **locked.match_details,
            "customer_invoice": {"number": number, "document": document.pk, "total": str(total)},
        }
        locked.save(update_fields=["match_details"])
        audit_record(
            actor=actor,
            action="customer_invoice.produced",
            target=locked,
            data={"number": number, "document": document.pk, "total": str(total), "sha256": document.sha256},
        )
    return CustomerInvoice(number, document, pdf, total, invoice.currency, lines)


def erp_invoice(customer_invoice: CustomerInvoice, invoice: FreightInvoice) -> dict[str, Any]:
    """What the ERP gets: the customer invoice's header, lines and the PDF itself."""
    shipment = invoice.shipment
    assert shipment is not None
    account = shipment.customer_account
    return {
        "number": customer_invoice.number,
        "customer": {"code": account.code, "name": account.name},
        "shipment": shipment.reference,
        "references": {"bol": shipment.bol_number, "pro": shipment.pro_number, "po": shipment.po_number},
        "carrier_invoice": {"scac": invoice.carrier_scac, "number": invoice.invoice_number},
        "currency": customer_invoice.currency,
        "total": str(customer_invoice.total),
        "lines": customer_invoice.lines,
        "document": {
            "file_name": f"{customer_invoice.number}.pdf",
            "content_type": "application/pdf",
            "sha256": hashlib.sha256(customer_invoice.pdf).hexdigest(),
            "size": len(customer_invoice.pdf),
            "content_base64": base64.b64encode(customer_invoice.pdf).decode(),
        },
    }


def customer_invoice_sent(*, invoice: FreightInvoice, erp_answer: dict[str, Any], actor: Any) -> FreightInvoice:
    """Note the ERP's answer (its reference for the customer invoice) on the carrier's invoice."""
    with transaction.atomic():
        locked = FreightInvoice.objects.select_for_update().get(pk=invoice.pk)
        sent = {"reference": str(erp_answer.get("reference") or erp_answer.get("id") or ""), "at": timezone.now().isoformat()}
        locked.match_details = {**locked.match_details, "erp": sent}
        locked.save(update_fields=["match_details"])
        audit_record(actor=actor, action="customer_invoice.sent_to_erp", target=locked, data=sent)
    return locked
