"""Normalized fields of every supported set."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from connectors.edi import parse
from connectors.edi.documents import (
    Acknowledgement,
    FreightInvoice,
    LoadTender,
    Reference,
    ShipmentStatus,
    ShipNotice,
    StockTransferReceipt,
    StockTransferShipment,
    TenderResponse,
    WarehouseShippingAdvice,
    WarehouseShippingOrder,
)
from tests.connectors.edi.fixtures import (
    ACK_997,
    ACK_999,
    ADVICE_945,
    INVOICE_210,
    NOTICE_856,
    ORDER_940,
    RECEIPT_944,
    RESPONSE_990,
    STATUS_214,
    TENDER_204,
    TRANSFER_943,
    envelope,
)


def _document(body: str, functional_id: str):  # type: ignore[no-untyped-def]
    result = parse(envelope(body, functional_id=functional_id))
    assert result.errors == [], [error.describe() for error in result.errors]
    [document] = result.documents
    return document


def test_214_becomes_tracking_milestones_with_refs_time_zone_location() -> None:
    status = _document(STATUS_214, "QM")
    assert isinstance(status, ShipmentStatus)
    assert (status.shipment_id, status.pro_number, status.scac, status.bill_of_lading, status.purchase_orders) == (
        "SHIP-1001", "PRO778899", "ABCD", "BOL-55", ["PO-1", "PO-2"],
    )  # fmt: skip
    assert status.references == [Reference("SI", "DLV-9", "Delivery number")]
    first, second, third = status.milestones
    assert (first.status_code, first.status_reason, first.shipment_id, first.bill_of_lading, first.pro_number) == (
        "X3",
        "NS",
        "SHIP-1001",
        "BOL-55",
        "PRO778899",
    )
    assert first.occurred_at == dt.datetime(2026, 3, 1, 8, 15)  # ET: daylight saving unknown, left naive
    assert (first.city, first.state, first.country, first.equipment_number) == ("RUMFORD", "ME", "USA", "TR1234")
    assert (round(first.latitude or 0, 4), round(first.longitude or 0, 4)) == (44.5439, -70.5478)
    assert second.occurred_at == dt.datetime(2026, 3, 2, 14, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    assert (second.latitude, second.references) == (None, [Reference("AO", "APPT-77")])
    assert (third.status_code, third.status_reason, third.time_zone_code, third.city) == ("SD", "AH", "LT", "")
    assert [party.role for party in status.parties] == ["SH", "CN"]
    assert status.parties[1].address_lines == ["55 MARKET ST", "DOCK 4"]


def test_204_becomes_a_load_tender_with_stops() -> None:
    tender = _document(TENDER_204, "SM")
    assert isinstance(tender, LoadTender)
    assert (tender.shipment_id, tender.scac, tender.purpose, tender.payment_method) == ("LOAD-42", "ABCD", "00", "PP")
    assert tender.notes == ["LIFTGATE REQUIRED"]
    assert tender.parties[0].contacts[0].number == "5551234567"
    assert (tender.equipment[0].number, tender.equipment[0].type_code) == ("555001", "TL")
    pickup, delivery = tender.stops
    assert (pickup.sequence, pickup.reason_code, pickup.kind, pickup.weight, pickup.lading_quantity) == (
        1,
        "LD",
        "pickup",
        Decimal("12000"),
        10,
    )
    assert [(date.qualifier, date.date, date.time, date.time_zone_code) for date in pickup.dates] == [
        ("37", dt.date(2026, 3, 2), dt.time(9), "ET"),
        ("38", dt.date(2026, 3, 2), dt.time(17), "ET"),
    ]
    assert pickup.party is not None and (pickup.party.name, pickup.party.city) == ("ACME DC", "RUMFORD")
    assert (pickup.lading[0].description, pickup.lading[0].packaging, pickup.lading[0].weight) == ("PAPER ROLLS", "ROL", Decimal("12000"))
    assert (delivery.kind, delivery.party and delivery.party.city) == ("delivery", "CHICAGO")
    assert (tender.total_weight, tender.total_charge, tender.lading_quantity) == (Decimal("12000"), Decimal("1557.21"), 10)


def test_990_becomes_a_tender_response() -> None:
    response = _document(RESPONSE_990, "GF")
    assert isinstance(response, TenderResponse)
    assert (response.shipment_id, response.scac, response.accepted, response.action_code, response.reason_code) == (
        "LOAD-42",
        "ABCD",
        False,
        "D",
        "A",
    )
    assert response.remarks == ["NO EQUIPMENT AVAILABLE ON THATDATE IN THIS LANE"]


def test_210_becomes_a_freight_invoice_with_charges() -> None:
    invoice = _document(INVOICE_210, "IM")
    assert isinstance(invoice, FreightInvoice)
    assert (invoice.invoice_number, invoice.shipment_id, invoice.scac, invoice.net_amount_due, invoice.currency) == (
        "INV-3001", "LOAD-42", "ABCD", Decimal("659.40"), "USD",
    )  # fmt: skip
    assert [(charge.line_number, charge.description, charge.amount, charge.special_charge_code) for charge in invoice.charges] == [
        (1, "PAPER ROLLS", Decimal("630.00"), ""),
        (2, "FUEL SURCHARGE", Decimal("29.40"), "FUE"),
        (2, "FUEL SURCHARGE", Decimal("-10.00"), "DSC"),
    ]
    assert invoice.total_charge == Decimal("659.40")
    assert invoice.parties[1].references == [Reference("VN", "V-77")]


def test_856_becomes_a_ship_notice_with_orders_and_items() -> None:
    notice = _document(NOTICE_856, "SH")
    assert isinstance(notice, ShipNotice)
    assert [(level.id, level.parent_id, level.level_code) for level in notice.levels] == [
        ("1", "", "S"), ("2", "1", "O"), ("3", "2", "P"), ("4", "3", "I"), ("5", "2", "I"),
    ]  # fmt: skip
    shipment = notice.levels[0]
    assert (shipment.carrier_scac, shipment.weight, shipment.lading_quantity, shipment.parties[0].role) == (
        "ABCD",
        Decimal("45.5"),
        3,
        "ST",
    )
    [order] = notice.orders
    assert order.purchase_order == "PO-1"
    assert [(item.product_ids[0].value, item.quantity, item.marks) for item in order.items] == [
        ("012345678905", Decimal("12"), ["00012345678901234567"]),
        ("SKU-2", Decimal("6"), []),
    ]
    assert order.items[0].description == "BLUE WIDGET"


def test_940_becomes_a_warehouse_shipping_order() -> None:
    order = _document(ORDER_940, "OW")
    assert isinstance(order, WarehouseShippingOrder)
    assert (order.order_number, order.purchase_order, order.scac, order.routing) == ("ORD-5001", "PO-1", "ABCD", "ABCD GROUND")
    assert order.ship_to is not None and (order.ship_to.name, order.ship_to.contacts[0].name) == ("GLOBEX STORE 118", "SAM DOCK")
    assert [(line.line_number, line.quantity, line.unit, line.upc, line.description) for line in order.lines] == [
        (1, Decimal("12"), "EA", "012345678905", "BLUE WIDGET"),
        (2, Decimal("6"), "CA", "", ""),
    ]
    assert order.lines[0].references == [Reference("LI", "001")]
    assert order.total_quantity == Decimal("18")


def test_945_becomes_a_shipping_advice() -> None:
    advice = _document(ADVICE_945, "SW")
    assert isinstance(advice, WarehouseShippingAdvice)
    assert (advice.order_number, advice.shipment_id, advice.scac, advice.total_quantity) == ("ORD-5001", "SHP-9", "ABCD", Decimal("16"))
    assert [(line.line_number, line.status, line.quantity_shipped, line.quantity_difference, line.lot) for line in advice.lines] == [
        (1, "SH", Decimal("12"), Decimal("0"), "LOT-A"),
        (2, "PR", Decimal("4"), Decimal("2"), ""),
    ]


def test_943_and_944_become_stock_transfers() -> None:
    shipment = _document(TRANSFER_943, "AR")
    assert isinstance(shipment, StockTransferShipment)
    assert (shipment.depositor_order, shipment.shipment_id, shipment.scac, shipment.total_quantity) == (
        "DEP-300",
        "TRF-1",
        "ABCD",
        Decimal("50"),
    )
    assert [(line.quantity, line.lot) for line in shipment.lines] == [(Decimal("40"), "LOT-B"), (Decimal("10"), "")]
    receipt = _document(RECEIPT_944, "RE")
    assert isinstance(receipt, StockTransferReceipt)
    assert (receipt.receipt_number, receipt.depositor_order, receipt.date, receipt.total_quantity) == (
        "RCPT-77",
        "DEP-300",
        dt.date(2026, 3, 8),
        Decimal("49"),
    )
    assert receipt.lines[0].product_ids == [Reference("VN", "SKU-1")]


def test_997_and_999_become_acknowledgements() -> None:
    ack = _document(ACK_997, "FA")
    assert isinstance(ack, Acknowledgement)
    assert (ack.functional_id, ack.group_control_number, ack.status, ack.sets_accepted) == ("SM", "4401", "P", 1)
    assert [(answer.control_number, answer.accepted) for answer in ack.sets] == [("0001", True), ("0002", False)]
    notes = ack.sets[1].segments
    assert [(note.segment_id, note.position, note.code) for note in notes] == [("N4", 6, "8"), ("S5", 9, "3")]
    assert [(element.position, element.code, element.value) for element in notes[0].elements] == [(2, "7", "ZZ")]
    implementation = _document(ACK_999, "FA")
    assert implementation.ack_type == "999"
    note = implementation.sets[0].segments[0]
    assert (note.segment_id, note.loop, note.elements[0].position, note.elements[0].component) == ("NM1", "2010BB", 9, 1)
