"""Turn a transaction set's segments into one of Baton's canonical documents.

Normalizers never raise on bad data: a missing or malformed element gives an empty field. The
validator has already reported what is wrong; the caller decides whether a rejected set's
document is used (it is quarantined with its errors, the document only helps an operator see it).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable

from connectors.edi.documents import (
    Acknowledgement,
    Charge,
    Contact,
    Document,
    ElementNote,
    Equipment,
    EventDate,
    FreightInvoice,
    InventoryAdvice,
    InventoryItem,
    InventoryQuantity,
    LadingLine,
    LoadTender,
    OrderLine,
    Party,
    Reference,
    SegmentNote,
    SetAcknowledgement,
    ShipmentStatus,
    ShipNotice,
    ShipNoticeItem,
    ShipNoticeLevel,
    ShipNoticeOrder,
    ShippedLine,
    StockTransferReceipt,
    StockTransferShipment,
    Stop,
    TenderResponse,
    TrackingMilestone,
    TransferLine,
    WarehouseShippingAdvice,
    WarehouseShippingOrder,
    occurred_at,
)
from connectors.edi.reader import Delimiters, Segment, TransactionSet

PICKUP_REASONS = frozenset({"LD", "CL", "PL"})
DELIVERY_REASONS = frozenset({"UL", "CU", "PU"})
_PARTY_DETAIL = frozenset({"N2", "N3", "N4", "G61", "PER"})


def number(value: str, implied_decimals: int = 0) -> decimal.Decimal | None:
    """R and Nn values; Nn carries `implied_decimals` (N2 "65940" is 659.40)."""
    if not value:
        return None
    try:
        amount = decimal.Decimal(value)
    except decimal.InvalidOperation:
        return None
    return amount.scaleb(-implied_decimals) if implied_decimals else amount


def integer(value: str) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def date(value: str) -> dt.date | None:
    try:
        if len(value) == 8:
            return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        if len(value) == 6:
            return dt.date(2000 + int(value[:2]), int(value[2:4]), int(value[4:]))
    except ValueError:
        return None
    return None


def time(value: str) -> dt.time | None:
    try:
        if len(value) >= 4:
            return dt.time(int(value[:2]), int(value[2:4]), int(value[4:6]) if len(value) >= 6 else 0)
    except ValueError:
        return None
    return None


def coordinate(value: str, direction: str, negative: str) -> float | None:
    """MS104/MS105 as degrees: DDDMMSS (or DDMMSS), or a plain decimal; West and South are negative.

    X12 assumes West and North when the direction (MS106/MS107) is left out.
    """
    if not value:
        return None
    try:
        if "." in value:
            degrees = float(value)
        else:
            seconds, minutes, whole = int(value[-2:]), int(value[-4:-2]), int(value[:-4] or "0")
            degrees = whole + minutes / 60 + seconds / 3600
    except ValueError:
        return None
    return -degrees if direction == negative else degrees


class _Parties:
    """Collects N1 loops: N1 opens a party, N2/N3/N4/G61 and references inside the loop fill it."""

    def __init__(self) -> None:
        self.current: Party | None = None

    def start(self, segment: Segment) -> Party:
        e = segment.element
        self.current = Party(role=e(1), name=e(2), id_qualifier=e(3), id=e(4))
        return self.current

    def detail(self, segment: Segment) -> bool:
        """Apply an N2/N3/N4/G61/PER to the open party; False when no party is open."""
        party = self.current
        if party is None:
            return False
        e = segment.element
        segment_id = segment.id
        if segment_id == "N2":
            party.additional_name = e(1)
        elif segment_id == "N3":
            party.address_lines += [line for line in (e(1), e(2)) if line]
        elif segment_id == "N4":
            party.city, party.state, party.postal_code, party.country = e(1), e(2), e(3), e(4)
        else:
            party.contacts.append(Contact(e(1), e(2), e(3), e(4)))
        return True


def _reference_l11(segment: Segment) -> Reference:
    return Reference(segment.element(2), segment.element(1), segment.element(3))


def _reference_n9(segment: Segment) -> Reference:
    return Reference(segment.element(1), segment.element(2), segment.element(3))


def _g62(segment: Segment) -> EventDate:
    e = segment.element
    return EventDate(e(1), date(e(2)), time(e(4)), e(3), e(5))


def _dtm(segment: Segment) -> EventDate:
    e = segment.element
    return EventDate(e(1), date(e(2)), time(e(3)), "", e(4))


def _body(transaction_set: TransactionSet) -> list[Segment]:
    segments = transaction_set.segments
    return segments[1:-1] if transaction_set.trailer is not None else segments[1:]


def _product_ids(segment: Segment, first: int, last: int) -> list[Reference]:
    e = segment.element
    return [Reference(e(i), e(i + 1)) for i in range(first, last, 2) if e(i + 1)]


def shipment_status(transaction_set: TransactionSet, delimiters: Delimiters) -> ShipmentStatus:
    status = ShipmentStatus(shipment_id="")
    parties = _Parties()
    milestones_of_lx: list[TrackingMilestone] = []
    in_lx = False
    milestone: TrackingMilestone | None = None
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        if segment_id == "N1":
            status.parties.append(parties.start(segment))
            continue
        if segment_id == "L11":
            reference = _reference_l11(segment)
            if parties.current is not None:
                parties.current.references.append(reference)
            elif in_lx:
                for each in milestones_of_lx:
                    each.references.append(reference)
            elif reference.qualifier == "BM" and not status.bill_of_lading:
                status.bill_of_lading = reference.value
            elif reference.qualifier == "PO":
                status.purchase_orders.append(reference.value)
            else:
                status.references.append(reference)
            continue
        if segment_id in ("G62", "PER"):
            continue
        parties.current = None
        if segment_id == "B10":
            status.pro_number, status.shipment_id, status.scac = e(1), e(2), e(3)
        elif segment_id == "LX":
            in_lx = True
            milestones_of_lx = []
            milestone = None
        elif segment_id == "AT7":
            day, moment, zone = date(e(5)), time(e(6)), e(7)
            milestone = TrackingMilestone(
                shipment_id="",
                status_code=e(1),
                status_reason=e(2),
                appointment_status=e(3),
                appointment_reason=e(4),
                date=day,
                time=moment,
                time_zone_code=zone,
                occurred_at=occurred_at(day, moment, zone),
            )
            milestones_of_lx.append(milestone)
            status.milestones.append(milestone)
        elif segment_id == "MS1" and milestone is not None:
            milestone.city, milestone.state, milestone.country = e(1), e(2), e(3)
            milestone.longitude = coordinate(e(4), e(6) or "W", "W")
            milestone.latitude = coordinate(e(5), e(7) or "N", "S")
        elif segment_id == "MS2" and milestone is not None:
            milestone.equipment_number = e(2)
    for each in status.milestones:
        each.shipment_id, each.pro_number, each.scac = status.shipment_id, status.pro_number, status.scac
        each.bill_of_lading, each.purchase_orders = status.bill_of_lading, list(status.purchase_orders)
    return status


def load_tender(transaction_set: TransactionSet, delimiters: Delimiters) -> LoadTender:
    tender = LoadTender(shipment_id="")
    parties = _Parties()
    stop: Stop | None = None
    line: LadingLine | None = None
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        if segment_id == "L11" and stop is None and parties.current is not None:
            parties.current.references.append(_reference_l11(segment))
            continue
        parties.current = None if segment_id != "N1" else parties.current
        if segment_id == "B2":
            tender.scac, tender.shipment_id, tender.payment_method = e(2), e(4), e(6)
        elif segment_id == "B2A":
            tender.purpose = e(1)
        elif segment_id == "L11":
            (stop.references if stop is not None else tender.references).append(_reference_l11(segment))
        elif segment_id == "G62":
            (stop.dates if stop is not None else tender.dates).append(_g62(segment))
        elif segment_id == "NTE":
            (stop.notes if stop is not None else tender.notes).append(e(2))
        elif segment_id == "N1":
            party = parties.start(segment)
            if stop is None:
                tender.parties.append(party)
            else:
                stop.party = party
        elif segment_id == "N7":
            tender.equipment.append(Equipment(e(1), e(2), e(11)))
        elif segment_id == "S5":
            reason = e(2)
            kind = "pickup" if reason in PICKUP_REASONS else "delivery" if reason in DELIVERY_REASONS else "other"
            stop = Stop(sequence=integer(e(1)) or 0, reason_code=reason, kind=kind)
            line = None
            tender.stops.append(stop)
        elif segment_id == "L5" and stop is not None:
            line = LadingLine(e(2), e(5), e(6), e(7))
            stop.lading.append(line)
        elif segment_id == "AT8":
            weight, qualifier, unit = number(e(3)), e(1), e(2)
            if line is not None:
                line.weight, line.weight_qualifier, line.weight_unit = weight, qualifier, unit
            elif stop is not None:
                stop.weight, stop.weight_qualifier, stop.weight_unit = weight, qualifier, unit
                stop.lading_quantity = integer(e(5)) or integer(e(4))
        elif segment_id == "L3":
            tender.total_weight, tender.weight_qualifier = number(e(1)), e(2)
            tender.total_charge, tender.lading_quantity = number(e(5), 2), integer(e(11))
    return tender


def tender_response(transaction_set: TransactionSet, delimiters: Delimiters) -> TenderResponse:
    response = TenderResponse(shipment_id="")
    for segment in _body(transaction_set):
        e = segment.element
        if segment.id == "B1":
            response.scac, response.shipment_id, response.date = e(1), e(2), date(e(3))
            response.action_code, response.reason_code = e(4), e(5)
            response.accepted = {"A": True, "D": False}.get(e(4))
        elif segment.id == "N9":
            response.references.append(_reference_n9(segment))
        elif segment.id == "K1":
            response.remarks.append(e(1) + e(2))
    return response


def freight_invoice(transaction_set: TransactionSet, delimiters: Delimiters) -> FreightInvoice:
    invoice = FreightInvoice(invoice_number="")
    parties = _Parties()
    line_number: int | None = None
    description = ""
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        if segment_id == "N9":
            target = parties.current.references if parties.current is not None else invoice.references
            target.append(_reference_n9(segment))
            continue
        parties.current = None
        if segment_id == "B3":
            invoice.invoice_number, invoice.shipment_id, invoice.payment_method = e(2), e(3), e(4)
            invoice.invoice_date, invoice.net_amount_due, invoice.delivery_date = date(e(6)), number(e(7), 2), date(e(9))
            invoice.scac = e(11)
        elif segment_id == "C3":
            invoice.currency = e(1)
        elif segment_id == "G62":
            invoice.dates.append(_g62(segment))
        elif segment_id == "N1":
            invoice.parties.append(parties.start(segment))
        elif segment_id == "LX":
            line_number, description = integer(e(1)), ""
        elif segment_id == "L5" and not description:
            description = e(2)
        elif segment_id == "L1":
            invoice.charges.append(Charge(line_number, description, number(e(2)), e(3), number(e(4), 2), e(8)))
        elif segment_id == "L3":
            invoice.total_weight, invoice.weight_qualifier = number(e(1)), e(2)
            invoice.total_charge, invoice.lading_quantity = number(e(5), 2), integer(e(11))
    return invoice


def ship_notice(transaction_set: TransactionSet, delimiters: Delimiters) -> ShipNotice:
    notice = ShipNotice(shipment_id="")
    parties = _Parties()
    level: ShipNoticeLevel | None = None
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        if segment_id == "REF" and level is not None:
            target = parties.current.references if parties.current is not None else level.references
            target.append(_reference_n9(segment))
            continue
        parties.current = None
        if segment_id == "BSN":
            notice.purpose, notice.shipment_id, notice.date, notice.time = e(1), e(2), date(e(3)), time(e(4))
        elif segment_id == "HL":
            level = ShipNoticeLevel(e(1), e(2), e(3))
            notice.levels.append(level)
        elif segment_id == "DTM":
            (level.dates if level is not None else notice.dates).append(_dtm(segment))
        elif level is None:
            continue
        elif segment_id == "N1":
            level.parties.append(parties.start(segment))
        elif segment_id == "LIN":
            level.product_ids = _product_ids(segment, 2, 31)
        elif segment_id == "SN1":
            level.quantity, level.unit = number(e(2)), e(3)
        elif segment_id == "PRF":
            level.purchase_order = e(1)
        elif segment_id == "PID" and not level.description:
            level.description = e(5)
        elif segment_id == "MAN":
            level.marks.append(e(2))
        elif segment_id == "TD1":
            level.lading_quantity, level.weight, level.weight_unit = integer(e(2)), number(e(7)), e(8)
        elif segment_id == "TD5":
            level.carrier_scac = e(3) if e(2) == "2" else level.carrier_scac
            level.routing = e(5) or level.routing
    notice.orders = _orders(notice.levels)
    return notice


def _orders(levels: list[ShipNoticeLevel]) -> list[ShipNoticeOrder]:
    """Orders (O levels) with the items (I levels) below them, each item with its pack's marks."""
    by_id = {level.id: level for level in levels}
    orders = {level.id: ShipNoticeOrder(level.id, level.purchase_order) for level in levels if level.level_code == "O"}
    for level in levels:
        if level.level_code != "I":
            continue
        marks: list[str] = list(level.marks)
        parent = by_id.get(level.parent_id)
        seen = {level.id}
        while parent is not None and parent.id not in seen and parent.level_code != "O":
            seen.add(parent.id)
            marks = marks or list(parent.marks)
            parent = by_id.get(parent.parent_id)
        if parent is not None and parent.id in orders:
            orders[parent.id].items.append(
                ShipNoticeItem(level.id, level.product_ids, level.quantity, level.unit, level.description, marks)
            )
    return list(orders.values())


def warehouse_shipping_order(transaction_set: TransactionSet, delimiters: Delimiters) -> WarehouseShippingOrder:
    order = WarehouseShippingOrder(order_number="")
    parties = _Parties()
    line: OrderLine | None = None
    line_number: int | None = None
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        parties.current = None
        if segment_id == "W05":
            order.status, order.order_number, order.purchase_order = e(1), e(2), e(3)
        elif segment_id == "N1":
            order.parties.append(parties.start(segment))
        elif segment_id == "N9":
            (line.references if line is not None else order.references).append(_reference_n9(segment))
        elif segment_id == "G62":
            order.dates.append(_g62(segment))
        elif segment_id == "NTE":
            order.notes.append(e(2))
        elif segment_id == "W66":
            order.payment_method, order.transport_method, order.routing, order.scac = e(1), e(2), e(5), e(10)
        elif segment_id == "LX":
            line_number, line = integer(e(1)), None
        elif segment_id == "W01":
            line = OrderLine(line_number, number(e(1)), e(2), e(3), _product_ids(segment, 4, 7))
            order.lines.append(line)
        elif segment_id == "G69" and line is not None:
            line.description = e(1)
        elif segment_id == "W76":
            order.total_quantity = number(e(1))
    order.ship_to = next((party for party in order.parties if party.role == "ST"), None)
    return order


def warehouse_shipping_advice(transaction_set: TransactionSet, delimiters: Delimiters) -> WarehouseShippingAdvice:
    advice = WarehouseShippingAdvice(order_number="")
    parties = _Parties()
    line_number: int | None = None
    in_lines = False
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        parties.current = None
        if segment_id == "W06":
            advice.order_number, advice.date, advice.shipment_id, advice.purchase_order = e(2), date(e(3)), e(4), e(6)
        elif segment_id == "N1":
            advice.parties.append(parties.start(segment))
        elif segment_id == "N9" and not in_lines:
            advice.references.append(_reference_n9(segment))
        elif segment_id == "G62":
            advice.dates.append(_g62(segment))
        elif segment_id == "W27":
            advice.transport_method, advice.scac, advice.routing = e(1), e(2), e(3)
        elif segment_id == "LX":
            line_number, in_lines = integer(e(1)), True
        elif segment_id == "W12":
            in_lines = True
            advice.lines.append(
                ShippedLine(line_number, e(1), number(e(2)), number(e(3)), number(e(4)), e(5), e(6), _product_ids(segment, 7, 8), e(9))
            )
        elif segment_id == "W03":
            advice.total_quantity, advice.total_weight, advice.weight_unit = number(e(1)), number(e(2)), e(3)
    return advice


def stock_transfer_shipment(transaction_set: TransactionSet, delimiters: Delimiters) -> StockTransferShipment:
    shipment = StockTransferShipment(depositor_order="")
    parties = _Parties()
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        parties.current = None
        if segment_id == "W06":
            shipment.depositor_order, shipment.date, shipment.shipment_id = e(2), date(e(3)), e(4)
        elif segment_id == "N1":
            shipment.parties.append(parties.start(segment))
        elif segment_id == "N9" and not shipment.lines:
            shipment.references.append(_reference_n9(segment))
        elif segment_id == "W27":
            shipment.scac = e(2)
        elif segment_id == "W04":
            shipment.lines.append(TransferLine(number(e(1)), e(2), e(3), _product_ids(segment, 4, 7), e(8)))
        elif segment_id == "W03":
            shipment.total_quantity, shipment.total_weight = number(e(1)), number(e(2))
    return shipment


def stock_transfer_receipt(transaction_set: TransactionSet, delimiters: Delimiters) -> StockTransferReceipt:
    receipt = StockTransferReceipt(receipt_number="")
    parties = _Parties()
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        parties.current = None
        if segment_id == "W17":
            receipt.date, receipt.receipt_number, receipt.depositor_order, receipt.shipment_id = date(e(2)), e(3), e(4), e(5)
        elif segment_id == "N1":
            receipt.parties.append(parties.start(segment))
        elif segment_id == "N9" and not receipt.lines:
            receipt.references.append(_reference_n9(segment))
        elif segment_id == "W07":
            receipt.lines.append(TransferLine(number(e(1)), e(2), e(3), _product_ids(segment, 4, 5), e(6)))
        elif segment_id == "W14":
            receipt.total_quantity = number(e(1))
    return receipt


WAREHOUSE_ROLES = frozenset({"WH", "SF", "RL", "SW", "ST"})  # N101 of the place an 846 counts at


def _place_of(party: Party) -> str:
    return party.id or party.name


def inventory_advice(transaction_set: TransactionSet, delimiters: Delimiters) -> InventoryAdvice:
    """An 846: BIA header, the warehouse from a header N1 (WH, SF, RL…), and per LIN its QTYs –
    those under an N1 inside the LIN loop are at that N1's place."""
    advice = InventoryAdvice(reference="")
    parties = _Parties()
    item: InventoryItem | None = None
    item_place: str | None = None  # the LIN loop's N1, while its QTYs follow
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id in _PARTY_DETAIL and parties.detail(segment):
            continue
        if segment_id == "REF" and parties.current is not None:
            parties.current.references.append(_reference_n9(segment))
            continue
        if segment_id == "QTY" and item is not None:
            unit = e(3).split(delimiters.component)[0]
            item.quantities.append(InventoryQuantity(e(1), number(e(2)), unit, item_place or ""))
            continue
        if segment_id == "DTM" and item is None:
            dated = _dtm(segment)
            if not advice.time_zone_code and dated.time_zone_code:
                advice.time_zone_code = dated.time_zone_code
            continue
        parties.current = None
        if segment_id == "BIA":
            advice.purpose, advice.report_type, advice.reference = e(1), e(2), e(3)
            advice.date, advice.time = date(e(4)), time(e(5))
        elif segment_id == "REF" and item is None:
            advice.references.append(_reference_n9(segment))
        elif segment_id == "N1":
            party = parties.start(segment)
            if item is None:
                advice.parties.append(party)
                if not advice.location and party.role in WAREHOUSE_ROLES:
                    advice.location = _place_of(party)
            else:
                item_place = _place_of(party)
        elif segment_id == "LIN":
            item, item_place = InventoryItem(e(1), _product_ids(segment, 2, 31)), None
            advice.items.append(item)
        elif segment_id == "PID" and item is not None and not item.description:
            item.description = e(5)
    advice.as_of = occurred_at(advice.date, advice.time, advice.time_zone_code)
    return advice


def acknowledgement(transaction_set: TransactionSet, delimiters: Delimiters) -> Acknowledgement:
    ack = Acknowledgement(transaction_set.code, "", "", "", 0, 0, 0)
    current: SetAcknowledgement | None = None
    note: SegmentNote | None = None
    for segment in _body(transaction_set):
        segment_id = segment.id
        e = segment.element
        if segment_id == "AK1":
            ack.functional_id, ack.group_control_number, ack.version = e(1), e(2), e(3)
        elif segment_id == "AK2":
            current = SetAcknowledgement(e(1), e(2), "")
            ack.sets.append(current)
            note = None
        elif segment_id in ("AK3", "IK3") and current is not None:
            note = SegmentNote(e(1), integer(e(2)) or 0, e(4), e(3))
            current.segments.append(note)
        elif segment_id in ("AK4", "IK4") and note is not None:
            parts = e(1).split(delimiters.component)
            note.elements.append(ElementNote(integer(parts[0]) or 0, e(3), integer(parts[1]) if len(parts) > 1 else None, e(2), e(4)))
        elif segment_id in ("AK5", "IK5") and current is not None:
            current.status, current.error_codes = e(1), [code for code in segment.elements[2:7] if code]
        elif segment_id == "AK9":
            ack.status, ack.sets_included, ack.sets_received, ack.sets_accepted = (
                e(1),
                integer(e(2)) or 0,
                integer(e(3)) or 0,
                integer(e(4)) or 0,
            )
            ack.error_codes = [code for code in segment.elements[5:10] if code]
    return ack


NORMALIZERS: dict[str, Callable[[TransactionSet, Delimiters], Document]] = {
    "204": load_tender,
    "990": tender_response,
    "214": shipment_status,
    "210": freight_invoice,
    "856": ship_notice,
    "940": warehouse_shipping_order,
    "945": warehouse_shipping_advice,
    "943": stock_transfer_shipment,
    "944": stock_transfer_receipt,
    "846": inventory_advice,
    "997": acknowledgement,
    "999": acknowledgement,
}


def normalize(transaction_set: TransactionSet, delimiters: Delimiters) -> Document | None:
    normalizer = NORMALIZERS.get(transaction_set.code)
    return normalizer(transaction_set, delimiters) if normalizer is not None else None
