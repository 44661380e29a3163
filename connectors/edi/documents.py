"""Baton's canonical documents: what an X12 set means, without its segments.

Plain dataclasses with no database behind them, so the inbox, the quarantine, the partner pages
and the tests share one shape, and the writer turns the same shapes back into X12.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar

# X12 time codes (AT707, G6205, DTM04) with a fixed offset; LT (local) and the bare zone names
# (ET, CT, MT, PT), whose daylight saving is not stated, stay unresolved.
TIME_ZONE_OFFSETS = {
    "UT": 0, "GM": 0,
    "ES": -5, "ED": -4, "CS": -6, "CD": -5, "MS": -7, "MD": -6, "PS": -8, "PD": -7,
    "AS": -4, "AD": -3, "NS": -3.5, "ND": -2.5, "HS": -10, "TS": -9, "TD": -8,
}  # fmt: skip


def occurred_at(date: dt.date | None, time: dt.time | None, time_zone_code: str) -> dt.datetime | None:
    """The instant a date, time and X12 time code name; naive when the code has no fixed offset."""
    if date is None:
        return None
    moment = dt.datetime.combine(date, time or dt.time())
    hours = TIME_ZONE_OFFSETS.get(time_zone_code)
    return moment if hours is None else moment.replace(tzinfo=dt.timezone(dt.timedelta(hours=hours)))


@dataclass
class Reference:
    qualifier: str
    value: str
    description: str = ""


@dataclass
class Contact:
    function: str
    name: str
    number_qualifier: str = ""
    number: str = ""


@dataclass
class Party:
    """An N1 loop: who (role N101, e.g. SH shipper, CN consignee, ST ship-to, BT bill-to) and where."""

    role: str
    name: str = ""
    id_qualifier: str = ""
    id: str = ""
    additional_name: str = ""
    address_lines: list[str] = field(default_factory=list)
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    references: list[Reference] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)


@dataclass
class EventDate:
    """A G62 or DTM: `qualifier` says which date it is (e.g. 37 ship not before, 011 shipped)."""

    qualifier: str
    date: dt.date | None = None
    time: dt.time | None = None
    time_qualifier: str = ""
    time_zone_code: str = ""


@dataclass
class TrackingMilestone:
    """One AT7 status: the canonical tracking milestone event."""

    shipment_id: str
    status_code: str
    status_reason: str = ""
    appointment_status: str = ""
    appointment_reason: str = ""
    pro_number: str = ""
    scac: str = ""
    bill_of_lading: str = ""
    purchase_orders: list[str] = field(default_factory=list)
    date: dt.date | None = None
    time: dt.time | None = None
    time_zone_code: str = ""
    occurred_at: dt.datetime | None = None
    city: str = ""
    state: str = ""
    country: str = ""
    latitude: float | None = None
    longitude: float | None = None
    equipment_number: str = ""
    references: list[Reference] = field(default_factory=list)


@dataclass
class ShipmentStatus:
    """A 214: the shipment it is about and its milestones."""

    kind: ClassVar[str] = "shipment_status"
    set_code: ClassVar[str] = "214"
    shipment_id: str
    pro_number: str = ""
    scac: str = ""
    bill_of_lading: str = ""
    purchase_orders: list[str] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)
    milestones: list[TrackingMilestone] = field(default_factory=list)


@dataclass
class LadingLine:
    description: str = ""
    packaging: str = ""
    marks: str = ""
    marks_qualifier: str = ""
    weight: decimal.Decimal | None = None
    weight_qualifier: str = ""
    weight_unit: str = ""


@dataclass
class Stop:
    """An S5 loop. `kind` is pickup or delivery when the stop reason code says so, else other."""

    sequence: int
    reason_code: str
    kind: str = "other"
    party: Party | None = None
    dates: list[EventDate] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    weight: decimal.Decimal | None = None
    weight_qualifier: str = ""
    weight_unit: str = ""
    lading_quantity: int | None = None
    lading: list[LadingLine] = field(default_factory=list)


@dataclass
class Equipment:
    initial: str = ""
    number: str = ""
    type_code: str = ""


@dataclass
class LoadTender:
    """A 204."""

    kind: ClassVar[str] = "load_tender"
    set_code: ClassVar[str] = "204"
    shipment_id: str
    scac: str = ""
    purpose: str = ""
    payment_method: str = ""
    references: list[Reference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dates: list[EventDate] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)
    equipment: list[Equipment] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    total_weight: decimal.Decimal | None = None
    weight_qualifier: str = ""
    total_charge: decimal.Decimal | None = None
    lading_quantity: int | None = None


@dataclass
class TenderResponse:
    """A 990: `accepted` is None when the action code is neither A nor D."""

    kind: ClassVar[str] = "tender_response"
    set_code: ClassVar[str] = "990"
    shipment_id: str
    scac: str = ""
    action_code: str = ""
    accepted: bool | None = None
    date: dt.date | None = None
    reason_code: str = ""
    remarks: list[str] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)


@dataclass
class Charge:
    """An L1 line of a 210."""

    line_number: int | None = None
    description: str = ""
    rate: decimal.Decimal | None = None
    rate_qualifier: str = ""
    amount: decimal.Decimal | None = None
    special_charge_code: str = ""


@dataclass
class FreightInvoice:
    """A 210."""

    kind: ClassVar[str] = "freight_invoice"
    set_code: ClassVar[str] = "210"
    invoice_number: str
    shipment_id: str = ""
    scac: str = ""
    payment_method: str = ""
    invoice_date: dt.date | None = None
    delivery_date: dt.date | None = None
    net_amount_due: decimal.Decimal | None = None
    currency: str = ""
    references: list[Reference] = field(default_factory=list)
    dates: list[EventDate] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    total_weight: decimal.Decimal | None = None
    weight_qualifier: str = ""
    total_charge: decimal.Decimal | None = None
    lading_quantity: int | None = None


@dataclass
class ShipNoticeLevel:
    """An HL level of an 856 (S shipment, O order, T tare, P pack, I item)."""

    id: str
    parent_id: str
    level_code: str
    purchase_order: str = ""
    product_ids: list[Reference] = field(default_factory=list)
    quantity: decimal.Decimal | None = None
    unit: str = ""
    description: str = ""
    marks: list[str] = field(default_factory=list)
    carrier_scac: str = ""
    routing: str = ""
    weight: decimal.Decimal | None = None
    weight_unit: str = ""
    lading_quantity: int | None = None
    references: list[Reference] = field(default_factory=list)
    dates: list[EventDate] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)


@dataclass
class ShipNoticeItem:
    level_id: str
    product_ids: list[Reference]
    quantity: decimal.Decimal | None
    unit: str
    description: str
    marks: list[str]


@dataclass
class ShipNoticeOrder:
    level_id: str
    purchase_order: str
    items: list[ShipNoticeItem] = field(default_factory=list)


@dataclass
class ShipNotice:
    """An 856: the HL hierarchy as `levels`, and the orders with their items read from it."""

    kind: ClassVar[str] = "ship_notice"
    set_code: ClassVar[str] = "856"
    shipment_id: str
    purpose: str = ""
    date: dt.date | None = None
    time: dt.time | None = None
    dates: list[EventDate] = field(default_factory=list)
    levels: list[ShipNoticeLevel] = field(default_factory=list)
    orders: list[ShipNoticeOrder] = field(default_factory=list)


@dataclass
class OrderLine:
    """A W01 of a 940."""

    line_number: int | None
    quantity: decimal.Decimal | None
    unit: str
    upc: str = ""
    product_ids: list[Reference] = field(default_factory=list)
    description: str = ""
    references: list[Reference] = field(default_factory=list)


@dataclass
class WarehouseShippingOrder:
    """A 940; `ship_to` is the ST party, also listed in `parties`."""

    kind: ClassVar[str] = "warehouse_shipping_order"
    set_code: ClassVar[str] = "940"
    order_number: str
    status: str = ""
    purchase_order: str = ""
    ship_to: Party | None = None
    parties: list[Party] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    dates: list[EventDate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    payment_method: str = ""
    transport_method: str = ""
    routing: str = ""
    scac: str = ""
    lines: list[OrderLine] = field(default_factory=list)
    total_quantity: decimal.Decimal | None = None


@dataclass
class ShippedLine:
    """A W12 of a 945."""

    line_number: int | None
    status: str
    quantity_ordered: decimal.Decimal | None = None
    quantity_shipped: decimal.Decimal | None = None
    quantity_difference: decimal.Decimal | None = None
    unit: str = ""
    upc: str = ""
    product_ids: list[Reference] = field(default_factory=list)
    lot: str = ""


@dataclass
class WarehouseShippingAdvice:
    """A 945."""

    kind: ClassVar[str] = "warehouse_shipping_advice"
    set_code: ClassVar[str] = "945"
    order_number: str
    shipment_id: str = ""
    date: dt.date | None = None
    purchase_order: str = ""
    scac: str = ""
    transport_method: str = ""
    routing: str = ""
    parties: list[Party] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    dates: list[EventDate] = field(default_factory=list)
    lines: list[ShippedLine] = field(default_factory=list)
    total_quantity: decimal.Decimal | None = None
    total_weight: decimal.Decimal | None = None
    weight_unit: str = ""


@dataclass
class TransferLine:
    """A W04 (943) or W07 (944) item line."""

    quantity: decimal.Decimal | None
    unit: str
    upc: str = ""
    product_ids: list[Reference] = field(default_factory=list)
    lot: str = ""


@dataclass
class StockTransferShipment:
    """A 943: stock sent to a warehouse."""

    kind: ClassVar[str] = "stock_transfer_shipment"
    set_code: ClassVar[str] = "943"
    depositor_order: str
    shipment_id: str = ""
    date: dt.date | None = None
    scac: str = ""
    parties: list[Party] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    lines: list[TransferLine] = field(default_factory=list)
    total_quantity: decimal.Decimal | None = None
    total_weight: decimal.Decimal | None = None


@dataclass
class StockTransferReceipt:
    """A 944: stock a warehouse received."""

    kind: ClassVar[str] = "stock_transfer_receipt"
    set_code: ClassVar[str] = "944"
    receipt_number: str
    date: dt.date | None = None
    depositor_order: str = ""
    shipment_id: str = ""
    parties: list[Party] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    lines: list[TransferLine] = field(default_factory=list)
    total_quantity: decimal.Decimal | None = None


@dataclass
class InventoryQuantity:
    """A QTY of an 846 item: `qualifier` says which quantity (17 on hand, 33 available for sale,
    …); `location` is the N1 (N104, else N102) it was reported under, empty for the header's."""

    qualifier: str
    quantity: decimal.Decimal | None
    unit: str = ""
    location: str = ""


@dataclass
class InventoryItem:
    """A LIN loop of an 846: the item's ids and its quantities."""

    line_id: str
    product_ids: list[Reference] = field(default_factory=list)
    description: str = ""
    quantities: list[InventoryQuantity] = field(default_factory=list)


@dataclass
class InventoryAdvice:
    """An 846: what a warehouse (or an ERP) holds per item, as of `date` and `time`; `location` is
    the header's warehouse (N1 WH, SF or RL: N104, else N102)."""

    kind: ClassVar[str] = "inventory_advice"
    set_code: ClassVar[str] = "846"
    reference: str
    purpose: str = ""
    report_type: str = ""
    date: dt.date | None = None
    time: dt.time | None = None
    time_zone_code: str = ""
    as_of: dt.datetime | None = None
    location: str = ""
    parties: list[Party] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    items: list[InventoryItem] = field(default_factory=list)


@dataclass
class ElementNote:
    """An AK4/IK4: element `position` (and `component`) of the segment, its AK403 `code`."""

    position: int
    code: str
    component: int | None = None
    reference: str = ""
    value: str = ""


@dataclass
class SegmentNote:
    """An AK3/IK3: `position` counts from ST = 1."""

    segment_id: str
    position: int
    code: str
    loop: str = ""
    elements: list[ElementNote] = field(default_factory=list)


@dataclass
class SetAcknowledgement:
    """An AK2…AK5: A accepted, E accepted with errors, R rejected."""

    set_code: str
    control_number: str
    status: str
    error_codes: list[str] = field(default_factory=list)
    segments: list[SegmentNote] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status in ("A", "E")


@dataclass
class Acknowledgement:
    """A 997 or 999 about one functional group."""

    kind: ClassVar[str] = "acknowledgement"
    ack_type: str
    functional_id: str
    group_control_number: str
    status: str
    sets_included: int
    sets_received: int
    sets_accepted: int
    version: str = ""
    error_codes: list[str] = field(default_factory=list)
    sets: list[SetAcknowledgement] = field(default_factory=list)

    @property
    def set_code(self) -> str:
        return self.ack_type


Document = (
    ShipmentStatus
    | LoadTender
    | TenderResponse
    | FreightInvoice
    | ShipNotice
    | WarehouseShippingOrder
    | WarehouseShippingAdvice
    | StockTransferShipment
    | StockTransferReceipt
    | InventoryAdvice
    | Acknowledgement
)


def to_jsonable(value: Any) -> Any:
    """JSON-ready form of a document: dates as ISO 8601, amounts as strings, `kind` on each document."""
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        kind = getattr(type(value), "kind", None)
        if isinstance(kind, str):
            out["kind"] = kind
        for item in fields(value):
            out[item.name] = to_jsonable(getattr(value, item.name))
        return out
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value
