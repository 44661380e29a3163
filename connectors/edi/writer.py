"""X12 writer: canonical documents out as interchanges, with per-partner envelopes and control numbers.

Each partner has its own ISA ids, version, delimiters and usage indicator, and its own sequence
of control numbers (ISA13, GS06, ST02), kept behind the small `ControlNumbers` protocol so a
database-backed implementation can replace the in-memory one without touching the writer.
"""

from __future__ import annotations

import datetime as dt
import decimal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from connectors.edi.documents import (
    Acknowledgement,
    Document,
    EventDate,
    FreightInvoice,
    LoadTender,
    Party,
    Reference,
    ShipmentStatus,
    TenderResponse,
    WarehouseShippingOrder,
)
from connectors.edi.errors import EdiFormatError

FUNCTIONAL_IDS = {"204": "SM", "990": "GF", "214": "QM", "210": "IM", "940": "OW", "997": "FA", "999": "FA"}
_MAX_CONTROL_NUMBER = 999_999_999

Element = str | tuple[str, ...]  # a tuple is a composite, joined with the component separator


class ControlNumbers(Protocol):
    """Hands out the next interchange, group and set control numbers for a partner."""

    def next_interchange(self, partner: str) -> int: ...

    def next_group(self, partner: str) -> int: ...

    def next_set(self, partner: str) -> int: ...


class InMemoryControlNumbers:
    """Per-partner counters in this process, starting at `start`, wrapping after 999,999,999."""

    def __init__(self, start: int = 1) -> None:
        self._start = start
        self._counters: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _next(self, partner: str, kind: str) -> int:
        with self._lock:
            value = self._counters.get((partner, kind), self._start - 1) + 1
            if value > _MAX_CONTROL_NUMBER:
                value = 1
            self._counters[(partner, kind)] = value
            return value

    def next_interchange(self, partner: str) -> int:
        return self._next(partner, "interchange")

    def next_group(self, partner: str) -> int:
        return self._next(partner, "group")

    def next_set(self, partner: str) -> int:
        return self._next(partner, "set")


@dataclass(frozen=True, slots=True)
class PartnerSettings:
    """How one trading partner wants its interchanges: ids, version, delimiters, test or production."""

    partner: str
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    version: str = "00401"
    group_version: str = "004010"
    usage: str = "P"
    element_separator: str = "*"
    component_separator: str = ">"
    segment_terminator: str = "~"
    segment_suffix: str = "\n"
    repetition_separator: str = "^"
    application_sender: str = ""
    application_receiver: str = ""
    acknowledgement_requested: bool = False

    def __post_init__(self) -> None:
        problems = []
        separators = [self.element_separator, self.component_separator, self.segment_terminator]
        if self.version >= "00402":
            separators.append(self.repetition_separator)
        if any(len(char) != 1 or char.isalnum() or char == " " for char in separators) or len(set(separators)) != len(separators):
            problems.append(f"separators must be distinct single non-alphanumeric characters, got {separators!r}")
        if self.usage not in ("P", "T"):
            problems.append(f"usage indicator must be P or T, got {self.usage!r}")
        if not (len(self.version) == 5 and self.version.isdigit()):
            problems.append(f"ISA12 version must be 5 digits like 00401, got {self.version!r}")
        for label, value in (("sender id", self.sender_id), ("receiver id", self.receiver_id)):
            if not 1 <= len(value) <= 15:
                problems.append(f"{label} must be 1 to 15 characters, got {value!r}")
        for label, value in (("sender qualifier", self.sender_qualifier), ("receiver qualifier", self.receiver_qualifier)):
            if len(value) != 2:
                problems.append(f"{label} must be 2 characters, got {value!r}")
        if problems:
            raise ValueError(f"Partner settings for {self.partner!r}: " + "; ".join(problems))


def write_interchange(
    documents: Sequence[Document],
    *,
    partner: PartnerSettings,
    control_numbers: ControlNumbers,
    now: dt.datetime | None = None,
    verify: bool = True,
) -> str:
    """One interchange holding `documents`, one functional group per functional id, in order.

    With `verify` the output is read back and any error raises EdiFormatError, so nothing
    malformed leaves Baton.
    """
    if not documents:
        raise ValueError("An interchange needs at least one document")
    now = now or dt.datetime.now(dt.UTC)
    groups: dict[str, list[Document]] = {}
    for document in documents:
        code = document.set_code
        if code not in SET_WRITERS:
            raise ValueError(f"Baton does not write {code} transaction sets (it writes {', '.join(sorted(SET_WRITERS))})")
        groups.setdefault(FUNCTIONAL_IDS[code], []).append(document)
    key = partner.partner
    isa13 = control_numbers.next_interchange(key)
    out = _Output(partner)
    _isa(out, partner, isa13, now)
    for functional_id, members in groups.items():
        gs06 = control_numbers.next_group(key)
        version = partner.group_version
        if members[0].set_code == "999":
            version = "005010X231"
        out.segment(
            "GS", functional_id, partner.application_sender or partner.sender_id, partner.application_receiver or partner.receiver_id,
            now.strftime("%Y%m%d"), now.strftime("%H%M"), str(gs06), "X", version,
        )  # fmt: skip
        for document in members:
            st02 = f"{control_numbers.next_set(key):04d}"
            body = SET_WRITERS[document.set_code](document, partner)
            out.segment("ST", document.set_code, st02, "005010X231" if document.set_code == "999" else "")
            for segment_id, *elements in body:
                out.segment(str(segment_id), *elements)
            out.segment("SE", str(len(body) + 2), st02)
        out.segment("GE", str(len(members)), str(gs06))
    out.segment("IEA", str(len(groups)), f"{isa13:09d}")
    return _verified(out.text(), verify)


def write_interchange_acknowledgement(
    *,
    control_number: str,
    date: str,
    time: str,
    note_code: str,
    partner: PartnerSettings,
    control_numbers: ControlNumbers,
    now: dt.datetime | None = None,
) -> str:
    """A TA1 refusing the received interchange `control_number` (its ISA13, ISA09 and ISA10) with
    the TA105 `note_code`, in an interchange of its own without functional groups."""
    now = now or dt.datetime.now(dt.UTC)
    isa13 = control_numbers.next_interchange(partner.partner)
    out = _Output(partner)
    _isa(out, partner, isa13, now)
    out.segment("TA1", control_number, date, time, "R", note_code)
    out.segment("IEA", "0", f"{isa13:09d}")
    return _verified(out.text(), True)


def _isa(out: _Output, partner: PartnerSettings, isa13: int, now: dt.datetime) -> None:
    out.segment(
        "ISA", "00", " " * 10, "00", " " * 10, partner.sender_qualifier, partner.sender_id.ljust(15), partner.receiver_qualifier,
        partner.receiver_id.ljust(15), now.strftime("%y%m%d"), now.strftime("%H%M"),
        partner.repetition_separator if partner.version >= "00402" else "U", partner.version, f"{isa13:09d}",
        "1" if partner.acknowledgement_requested else "0", partner.usage, partner.component_separator, isa=True,
    )  # fmt: skip


def _verified(text: str, verify: bool) -> str:
    """With `verify` the text is read back and any error raises EdiFormatError: nothing malformed leaves Baton."""
    if verify:
        from connectors.edi.parse import parse

        errors = parse(text).errors
        if errors:
            raise EdiFormatError(errors)
    return text


class _Output:
    def __init__(self, partner: PartnerSettings) -> None:
        self.partner = partner
        self.parts: list[str] = []
        self.end = partner.segment_terminator + partner.segment_suffix
        forbidden = {partner.element_separator, partner.segment_terminator, partner.component_separator}
        if partner.version >= "00402":
            forbidden.add(partner.repetition_separator)
        self.forbidden = forbidden

    def segment(self, segment_id: str, *elements: Element, isa: bool = False) -> None:
        values = [self._element(segment_id, position, value, isa) for position, value in enumerate(elements, 1)]
        while values and not values[-1] and not isa:
            values.pop()
        self.parts.append(self.partner.element_separator.join([segment_id, *values]) + self.end)

    def _element(self, segment_id: str, position: int, value: Element, isa: bool) -> str:
        components = value if isinstance(value, tuple) else (value,)
        if isa:
            return components[0]
        for component in components:
            clash = next((char for char in self.forbidden if char in component), None)
            if clash is not None or "\n" in component or "\r" in component:
                raise ValueError(
                    f"{segment_id}{position:02d} value {component!r} contains a delimiter or line break ({clash or 'newline'!r})"
                )
        while len(components) > 1 and not components[-1]:
            components = components[:-1]
        return self.partner.component_separator.join(components)

    def text(self) -> str:
        return "".join(self.parts)


def _date(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _time(value: dt.time | None) -> str:
    if value is None:
        return ""
    return value.strftime("%H%M%S" if value.second else "%H%M")


def _real(value: decimal.Decimal | float | int | None) -> str:
    return "" if value is None else format(decimal.Decimal(value), "f")


def _implied(value: decimal.Decimal | None, decimals: int = 2) -> str:
    """An Nn value: 659.40 with N2 is written 65940."""
    return "" if value is None else str(int(value.scaleb(decimals).to_integral_value(rounding=decimal.ROUND_HALF_UP)))


def _integer(value: int | None) -> str:
    return "" if value is None else str(value)


def _dms(degrees: float | None) -> tuple[str, str]:
    """Degrees as DDDMMSS and whether it was negative (MS104/MS105 carry no sign)."""
    if degrees is None:
        return "", ""
    total = round(abs(degrees) * 3600)
    whole, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{whole:03d}{minutes:02d}{seconds:02d}", "-" if degrees < 0 else "+"


Segments = list[tuple[Element, ...]]


def _party(party: Party, segments: Segments, *, references: str | None, contacts: str | None) -> None:
    segments.append(("N1", party.role, party.name, party.id_qualifier, party.id))
    if party.additional_name:
        segments.append(("N2", party.additional_name))
    lines = party.address_lines
    for i in range(0, len(lines), 2):
        segments.append(("N3", *lines[i : i + 2]))
    if party.city or party.state or party.postal_code or party.country:
        segments.append(("N4", party.city, party.state, party.postal_code, party.country))
    if references == "L11":
        segments.extend(_l11(reference) for reference in party.references)
    elif references == "N9":
        segments.extend(_n9(reference) for reference in party.references)
    if contacts is not None:
        segments.extend((contacts, contact.function, contact.name, contact.number_qualifier, contact.number) for contact in party.contacts)


def _l11(reference: Reference) -> tuple[Element, ...]:
    return ("L11", reference.value, reference.qualifier, reference.description)


def _n9(reference: Reference) -> tuple[Element, ...]:
    return ("N9", reference.qualifier, reference.value, reference.description)


def _g62(date: EventDate) -> tuple[Element, ...]:
    return ("G62", date.qualifier, _date(date.date), date.time_qualifier, _time(date.time), date.time_zone_code)


def _tender_response(response: TenderResponse, partner: PartnerSettings) -> Segments:
    action = response.action_code or {True: "A", False: "D", None: ""}[response.accepted]
    segments: Segments = [("B1", response.scac, response.shipment_id, _date(response.date), action, response.reason_code)]
    segments.extend(_n9(reference) for reference in response.references)
    for remark in response.remarks:
        chunks = [remark[i : i + 60] for i in range(0, len(remark), 60)] or [""]
        segments.extend(("K1", chunk[:30], chunk[30:]) for chunk in chunks)
    return segments


def _shipment_status(status: ShipmentStatus, partner: PartnerSettings) -> Segments:
    segments: Segments = [("B10", status.pro_number, status.shipment_id, status.scac)]
    if status.bill_of_lading:
        segments.append(("L11", status.bill_of_lading, "BM"))
    segments.extend(("L11", order, "PO") for order in status.purchase_orders)
    segments.extend(_l11(reference) for reference in status.references)
    for party in status.parties:
        _party(party, segments, references="L11", contacts="G61")
    for number, milestone in enumerate(status.milestones, 1):
        segments.append(("LX", str(number)))
        segments.append((
            "AT7", milestone.status_code, milestone.status_reason, milestone.appointment_status, milestone.appointment_reason,
            _date(milestone.date), _time(milestone.time), milestone.time_zone_code,
        ))  # fmt: skip
        longitude, east = _dms(milestone.longitude)
        latitude, north = _dms(milestone.latitude)
        if milestone.city or milestone.state or milestone.country or longitude or latitude:
            segments.append((
                "MS1", milestone.city, milestone.state, milestone.country, longitude, latitude,
                {"+": "E", "-": "W"}.get(east, ""), {"+": "N", "-": "S"}.get(north, ""),
            ))  # fmt: skip
        if milestone.equipment_number:
            segments.append(("MS2", milestone.scac or status.scac, milestone.equipment_number))
        segments.extend(_l11(reference) for reference in milestone.references)
    return segments


def _load_tender(tender: LoadTender, partner: PartnerSettings) -> Segments:
    segments: Segments = [("B2", "", tender.scac, "", tender.shipment_id, "", tender.payment_method), ("B2A", tender.purpose or "00")]
    segments.extend(_l11(reference) for reference in tender.references)
    segments.extend(_g62(date) for date in tender.dates)
    segments.extend(("NTE", "", note) for note in tender.notes)
    for party in tender.parties:
        _party(party, segments, references="L11", contacts="G61")
    segments.extend(("N7", unit.initial, unit.number, "", "", "", "", "", "", "", "", unit.type_code) for unit in tender.equipment)
    for stop in tender.stops:
        segments.append(("S5", str(stop.sequence), stop.reason_code))
        segments.extend(_l11(reference) for reference in stop.references)
        segments.extend(_g62(date) for date in stop.dates)
        if stop.weight is not None or stop.lading_quantity is not None:
            segments.append(("AT8", stop.weight_qualifier, stop.weight_unit, _real(stop.weight), "", _integer(stop.lading_quantity)))
        segments.extend(("NTE", "", note) for note in stop.notes)
        if stop.party is not None:
            _party(stop.party, segments, references=None, contacts="G61")
        for line in stop.lading:
            segments.append(("L5", "", line.description, "", "", line.packaging, line.marks, line.marks_qualifier))
            if line.weight is not None:
                segments.append(("AT8", line.weight_qualifier, line.weight_unit, _real(line.weight)))
    if tender.total_weight is not None or tender.total_charge is not None or tender.lading_quantity is not None:
        segments.append((
            "L3", _real(tender.total_weight), tender.weight_qualifier, "", "", _implied(tender.total_charge), "", "", "", "", "",
            _integer(tender.lading_quantity),
        ))  # fmt: skip
    return segments


def _freight_invoice(invoice: FreightInvoice, partner: PartnerSettings) -> Segments:
    segments: Segments = [(
        "B3", "", invoice.invoice_number, invoice.shipment_id, invoice.payment_method, "", _date(invoice.invoice_date),
        _implied(invoice.net_amount_due), "", _date(invoice.delivery_date), "035" if invoice.delivery_date else "", invoice.scac,
    )]  # fmt: skip
    if invoice.currency:
        segments.append(("C3", invoice.currency))
    segments.extend(_n9(reference) for reference in invoice.references)
    segments.extend(_g62(date) for date in invoice.dates)
    for party in invoice.parties:
        _party(party, segments, references="N9", contacts=None)
    lines: dict[int, list] = {}
    for position, charge in enumerate(invoice.charges, 1):
        lines.setdefault(charge.line_number if charge.line_number is not None else position, []).append(charge)
    for line_number, charges in lines.items():
        segments.append(("LX", str(line_number)))
        if charges[0].description:
            segments.append(("L5", str(line_number), charges[0].description))
        segments.extend(
            (
                "L1",
                str(line_number),
                _real(charge.rate),
                charge.rate_qualifier,
                _implied(charge.amount),
                "",
                "",
                "",
                charge.special_charge_code,
            )
            for charge in charges
        )
    segments.append((
        "L3", _real(invoice.total_weight), invoice.weight_qualifier, "", "", _implied(invoice.total_charge), "", "", "", "", "",
        _integer(invoice.lading_quantity),
    ))  # fmt: skip
    return segments


def _warehouse_shipping_order(order: WarehouseShippingOrder, partner: PartnerSettings) -> Segments:
    segments: Segments = [("W05", order.status or "N", order.order_number, order.purchase_order)]
    for party in order.parties:
        _party(party, segments, references=None, contacts="PER")
    segments.extend(_n9(reference) for reference in order.references)
    segments.extend(_g62(date) for date in order.dates)
    segments.extend(("NTE", "", note) for note in order.notes)
    if order.payment_method or order.transport_method:
        segments.append(("W66", order.payment_method, order.transport_method, "", "", order.routing, "", "", "", "", order.scac))
    for position, line in enumerate(order.lines, 1):
        segments.append(("LX", str(line.line_number if line.line_number is not None else position)))
        ids = [value for reference in line.product_ids[:2] for value in (reference.qualifier, reference.value)]
        segments.append(("W01", _real(line.quantity), line.unit, line.upc, *ids))
        if line.description:
            segments.append(("G69", line.description))
        segments.extend(_n9(reference) for reference in line.references)
    if order.total_quantity is not None:
        segments.append(("W76", _real(order.total_quantity)))
    return segments


def _acknowledgement(ack: Acknowledgement, partner: PartnerSettings) -> Segments:
    implementation = ack.ack_type == "999"
    segments: Segments = [("AK1", ack.functional_id, ack.group_control_number, ack.version)]
    for answer in ack.sets:
        segments.append(("AK2", answer.set_code, answer.control_number))
        for note in answer.segments:
            segments.append(("IK3" if implementation else "AK3", note.segment_id, str(note.position), note.loop, note.code))
            for element in note.elements:
                position: Element = (str(element.position), str(element.component)) if element.component else str(element.position)
                copy = _copy_of_bad_data(element.value, partner)
                segments.append(("IK4" if implementation else "AK4", position, element.reference, element.code, copy))
        segments.append(("IK5" if implementation else "AK5", answer.status, *answer.error_codes[:5]))
    segments.append(("AK9", ack.status, str(ack.sets_included), str(ack.sets_received), str(ack.sets_accepted), *ack.error_codes[:5]))
    return segments


def _copy_of_bad_data(value: str, partner: PartnerSettings) -> str:
    """AK404/IK404, the optional copy of a bad value, as written: only printable ASCII without the
    reply's delimiters – else left out (the AK403 code still says what was wrong). A copy of a
    control character, of a UTF-8 "Ü" or of the partner's separator would make the 997 itself
    invalid; and what Baton writes stays readable by any translator."""
    delimiters = {partner.element_separator, partner.component_separator, partner.segment_terminator}
    if partner.version >= "00402":
        delimiters.add(partner.repetition_separator)
    if value.isascii() and value.isprintable() and delimiters.isdisjoint(value):
        return value
    return ""


SET_WRITERS: dict[str, Callable[..., Segments]] = {
    "990": _tender_response,
    "214": _shipment_status,
    "204": _load_tender,
    "210": _freight_invoice,
    "940": _warehouse_shipping_order,
    "997": _acknowledgement,
    "999": _acknowledgement,
}
