"""X12 846 (inventory inquiry/advice): read into an `InventoryAdvice`, validated against its spec,
acknowledged, and normalized into the `inventory.snapshot` event the inventory workflow takes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.edi import group_acknowledgement, parse
from connectors.edi.documents import InventoryAdvice, Reference
from connectors.normalize import NormalizationFailed, normalize
from tests.connectors.edi.fixtures import envelope

ADVICE_846 = """846|
BIA*00*DD*INV-2026-0301*20260301*0600~
DTM*405*20260301*0600*CS~
N1*WH*DALLAS DC*92*DAL1~
N3*4000 LOGISTICS WAY~
N4*DALLAS*TX*75201*US~
LIN*1*VN*SKU-PALLET-A*UP*012345678905~
PID*F****PALLET A~
QTY*33*130*EA~
QTY*17*140*EA~
LIN*2*UP*000000000017*SK*SKU-CARTON-B~
QTY*17*2300*CA~
LIN*3*BP*SKU-REEFER-C~
N1*WH*MEMPHIS DC*92*MEM1~
QTY*17*48*EA~
N1*WH*DALLAS DC*92*DAL1~
QTY*17*0*EA~
CTT*3~
"""


def _advice(body: str = ADVICE_846) -> InventoryAdvice:
    result = parse(envelope(body, functional_id="IB"))
    assert result.errors == [], [error.describe() for error in result.errors]
    [document] = result.documents
    assert isinstance(document, InventoryAdvice)
    return document


def test_846_becomes_an_inventory_advice_with_items_quantities_and_places() -> None:
    advice = _advice()
    assert (advice.reference, advice.purpose, advice.report_type, advice.location) == ("INV-2026-0301", "00", "DD", "DAL1")
    assert advice.as_of == dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.timezone(dt.timedelta(hours=-6)))  # CS: central standard
    first, second, third = advice.items
    assert first.product_ids == [Reference("VN", "SKU-PALLET-A"), Reference("UP", "012345678905")]
    assert first.description == "PALLET A"
    assert [(q.qualifier, q.quantity, q.unit, q.location) for q in first.quantities] == [
        ("33", Decimal("130"), "EA", ""),
        ("17", Decimal("140"), "EA", ""),
    ]
    assert [(q.quantity, q.unit) for q in second.quantities] == [(Decimal("2300"), "CA")]
    assert [(q.quantity, q.location) for q in third.quantities] == [(Decimal("48"), "MEM1"), (Decimal("0"), "DAL1")]


def test_846_is_accepted_in_its_997_and_a_quantity_in_the_wrong_place_is_rejected() -> None:
    result = parse(envelope(ADVICE_846, functional_id="IB"))
    ack = group_acknowledgement(result.interchanges[0].groups[0])
    assert [answer.status for answer in ack.sets] == ["A"]

    bad = parse(
        envelope(ADVICE_846.replace("BIA*00*DD*INV-2026-0301*20260301*0600~", "QTY*17*5*EA~\nBIA*00*DD*X*20260301~"), functional_id="IB")
    )
    [parsed] = bad.sets
    assert not parsed.accepted
    assert any(error.position.segment_id == "QTY" for error in parsed.errors), [error.describe() for error in parsed.errors]
    missing_date = parse(envelope(ADVICE_846.replace("*20260301*0600~\nDTM", "~\nDTM", 1), functional_id="IB"))
    assert not missing_date.sets[0].accepted
    assert "BIA" in missing_date.sets[0].errors[0].describe()


def test_846_in_the_wrong_group_is_rejected() -> None:
    [parsed] = parse(envelope(ADVICE_846, functional_id="SW")).sets
    assert [error.code for error in parsed.errors] == ["set.wrong_group"]


def test_846_normalizes_to_one_inventory_snapshot_event_with_a_position_per_item_and_place() -> None:
    [event] = normalize(mapper="x12", body=envelope(ADVICE_846, functional_id="IB").encode())
    assert event.event_type == "inventory.snapshot"
    assert event.event_id.startswith("x12:SHIPPERCO:000000101:7001:")
    assert event.correlation == {}
    payload = event.payload
    assert (payload["set"], payload["system"], payload["location"], payload["reference"]) == ("846", "wms", "DAL1", "INV-2026-0301")
    assert payload["as_of"] == "2026-03-01T06:00:00-06:00"
    assert payload["positions"] == [
        # on hand (17) wins over available (33); the vendor's item number is the SKU
        {"sku": "SKU-PALLET-A", "quantity": "140", "unit": "EA", "qualifier": "17", "description": "PALLET A"},
        # the SKU qualifier wins over a UPC listed first
        {"sku": "SKU-CARTON-B", "quantity": "2300", "unit": "CA", "qualifier": "17"},
        {"sku": "SKU-REEFER-C", "quantity": "48", "unit": "EA", "qualifier": "17", "location": "MEM1"},
        {"sku": "SKU-REEFER-C", "quantity": "0", "unit": "EA", "qualifier": "17", "location": "DAL1"},
    ]


def test_846_without_a_time_zone_gives_a_naive_as_of_and_without_items_no_positions() -> None:
    body = ADVICE_846.replace("DTM*405*20260301*0600*CS~\n", "")
    [event] = normalize(mapper="x12", body=envelope(body, functional_id="IB").encode())
    assert event.payload["as_of"] == "2026-03-01T06:00:00"
    empty = "846|\nBIA*00*DD*INV-EMPTY*20260301~\nN1*WH*DALLAS DC~\n"
    [event] = normalize(mapper="x12", body=envelope(empty, functional_id="IB").encode())
    assert (event.payload["location"], event.payload["positions"], event.payload["as_of"]) == ("DALLAS DC", [], "2026-03-01T00:00:00")


def test_a_rejected_846_alone_cannot_be_normalized_and_says_where() -> None:
    body = ADVICE_846.replace("QTY*17*2300*CA~", "QTY*17*LOTS*CA~")
    with pytest.raises(NormalizationFailed) as refused:
        normalize(mapper="x12", body=envelope(body, functional_id="IB").encode())
    assert "QTY" in refused.value.reason
