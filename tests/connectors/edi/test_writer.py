"""The writer: documents out, read back unchanged; partner settings; control numbers per partner."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.edi import EdiFormatError, InMemoryControlNumbers, PartnerSettings, parse, write_interchange
from connectors.edi.documents import Party, ShipmentStatus, TenderResponse
from tests.connectors.edi.fixtures import ACK_997, ACK_999, INVOICE_210, ORDER_940, RESPONSE_990, STATUS_214, TENDER_204, envelope

NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
PARTNER = PartnerSettings("carrier-abcd", "ZZ", "BATON", "02", "ABCD")


def _document(body: str, functional_id: str):  # type: ignore[no-untyped-def]
    [document] = parse(envelope(body, functional_id=functional_id)).documents
    return document


@pytest.mark.parametrize(
    ("body", "functional_id"),
    [
        (RESPONSE_990, "GF"),
        (ACK_997, "FA"),
        (ACK_999, "FA"),
        (TENDER_204, "SM"),
        (STATUS_214, "QM"),
        (INVOICE_210, "IM"),
        (ORDER_940, "OW"),
    ],
)
def test_written_sets_read_back_without_errors_and_unchanged(body: str, functional_id: str) -> None:
    document = _document(body, functional_id)
    text = write_interchange([document], partner=PARTNER, control_numbers=InMemoryControlNumbers(), now=NOW)
    result = parse(text)
    assert result.errors == [], [error.describe() for error in result.errors]
    assert result.documents == [document]
    assert result.sets[0].functional_id == functional_id


def test_interchange_envelope_follows_partner_settings() -> None:
    partner = PartnerSettings(
        "wms-1", "01", "123456789", "ZZ", "WAREHOUSE", version="00501", group_version="005010", usage="T",
        element_separator="|", component_separator=":", segment_terminator="!", segment_suffix="\r\n", repetition_separator="^",
    )  # fmt: skip
    text = write_interchange([_document(ORDER_940, "OW")], partner=partner, control_numbers=InMemoryControlNumbers(), now=NOW)
    assert text.startswith("ISA|00|          |00|          |01|123456789      |ZZ|WAREHOUSE      |260301|0930|^|00501|000000001|0|T|:!\r\n")
    assert "GS|OW|123456789|WAREHOUSE|20260301|0930|1|X|005010!\r\n" in text
    interchange = parse(text).interchanges[0]
    assert (interchange.delimiters.element, interchange.delimiters.segment, interchange.delimiters.repetition, interchange.usage) == (
        "|",
        "!",
        "^",
        "T",
    )


def test_control_numbers_increase_per_partner() -> None:
    numbers = InMemoryControlNumbers()
    other = PartnerSettings("carrier-xpol", "ZZ", "BATON", "02", "XPOL")
    response = _document(RESPONSE_990, "GF")
    first = parse(write_interchange([response, response], partner=PARTNER, control_numbers=numbers, now=NOW))
    second = parse(write_interchange([response], partner=PARTNER, control_numbers=numbers, now=NOW))
    elsewhere = parse(write_interchange([response], partner=other, control_numbers=numbers, now=NOW))
    assert [interchange.control_number for interchange in (first.interchanges + second.interchanges + elsewhere.interchanges)] == [
        "000000001", "000000002", "000000001",
    ]  # fmt: skip
    assert [parsed.control_number for parsed in first.sets + second.sets + elsewhere.sets] == ["0001", "0002", "0003", "0001"]
    assert [parsed.group_control_number for parsed in first.sets + second.sets + elsewhere.sets] == ["1", "1", "2", "1"]


def test_documents_of_different_sets_go_to_one_group_each() -> None:
    text = write_interchange(
        [_document(RESPONSE_990, "GF"), _document(STATUS_214, "QM"), _document(RESPONSE_990, "GF")],
        partner=PARTNER,
        control_numbers=InMemoryControlNumbers(),
        now=NOW,
    )
    interchange = parse(text).interchanges[0]
    assert [(group.functional_id, [each.code for each in group.sets]) for group in interchange.groups] == [
        ("GF", ["990", "990"]),
        ("QM", ["214"]),
    ]


def test_partner_settings_refuse_unusable_values() -> None:
    with pytest.raises(ValueError, match="separators must be distinct single non-alphanumeric characters"):
        PartnerSettings("p", "ZZ", "A", "ZZ", "B", element_separator="~")
    with pytest.raises(ValueError, match="usage indicator must be P or T, got 'X'"):
        PartnerSettings("p", "ZZ", "A", "ZZ", "B", usage="X")
    with pytest.raises(ValueError, match="sender id must be 1 to 15 characters"):
        PartnerSettings("p", "ZZ", "A" * 16, "ZZ", "B")


def test_writer_refuses_values_containing_a_delimiter() -> None:
    response = TenderResponse(shipment_id="LOAD*42", scac="ABCD", action_code="A")
    with pytest.raises(ValueError, match=r"B102 value 'LOAD\*42' contains a delimiter"):
        write_interchange([response], partner=PARTNER, control_numbers=InMemoryControlNumbers(), now=NOW)


def test_writer_refuses_a_document_that_would_not_validate() -> None:
    status = ShipmentStatus(shipment_id="SHIP-1", scac="ABCD", parties=[Party("SH", "X")])  # no PRO: B1001 is mandatory
    with pytest.raises(EdiFormatError, match="B1001 is mandatory and missing"):
        write_interchange([status], partner=PARTNER, control_numbers=InMemoryControlNumbers(), now=NOW)


def test_writer_refuses_sets_it_does_not_write() -> None:
    notice = _document(ACK_997, "FA")
    notice.ack_type = "998"
    with pytest.raises(ValueError, match="Baton does not write 998 transaction sets"):
        write_interchange([notice], partner=PARTNER, control_numbers=InMemoryControlNumbers(), now=NOW)
