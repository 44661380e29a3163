"""Per-set validation errors and the 997/999 codes they produce."""

from __future__ import annotations

import pytest

from connectors.edi import acknowledge, group_acknowledgement, parse
from tests.connectors.edi.fixtures import ORDER_940, RESPONSE_990, STATUS_214, TENDER_204, envelope


def _one_set_errors(text: str) -> list[tuple[str, str | None, str | None, str, int | None, int | None]]:
    result = parse(text)
    return [
        (error.code, error.segment_code, error.element_code, error.position.segment_id, error.position.set_segment, error.position.element)
        for error in result.errors
    ]


@pytest.mark.parametrize(
    ("body", "functional_id", "expected"),
    [
        # Mandatory segment missing (AK304 3), reported at the segment where it was due.
        (STATUS_214.replace("B10*PRO778899*SHIP-1001*ABCD~\n", ""), "QM", [("segment.missing", "3", None, "B10", 2, None)]),
        # A segment X12 defines, but not in this set (6); one nobody defines (1).
        (RESPONSE_990 + "BSN*00*X*20260301*1200~\n", "GF", [("segment.not_in_set", "6", None, "BSN", 5, None)]),
        (RESPONSE_990 + "ZZ9*HELLO~\n", "GF", [("segment.not_in_set", "6", None, "ZZ9", 5, None)]),
        (RESPONSE_990 + "zz*HELLO~\n", "GF", [("segment.unrecognized", "1", None, "zz", 5, None)]),
        # In the set but in the wrong place (7), and used more often than allowed (5).
        (RESPONSE_990.replace("N9*CN*PRO778899~\n", "") + "N9*CN*PRO778899~\n", "GF", [("segment.sequence", "7", None, "N9", 4, None)]),
        (RESPONSE_990.replace("N9*CN*PRO778899~", "N9*CN*PRO778899~\nN9*BM*X~"), "GF", [("segment.max_use", "5", None, "N9", 4, None)]),
        # Element errors (AK403): missing, too long, too short, bad code, bad date, bad time, not numeric, too many.
        (RESPONSE_990.replace("B1*ABCD", "B1*"), "GF", [("element.missing", None, "1", "B1", 2, 1)]),
        (RESPONSE_990.replace("B1*ABCD", "B1*ABCDEFG"), "GF", [("element.too_long", None, "5", "B1", 2, 1)]),
        (RESPONSE_990.replace("B1*ABCD", "B1*A"), "GF", [("element.too_short", None, "4", "B1", 2, 1)]),
        (RESPONSE_990.replace("*D*A~", "*Q*A~"), "GF", [("element.invalid_code", None, "7", "B1", 2, 4)]),
        (RESPONSE_990.replace("20260301", "20260231"), "GF", [("element.invalid_date", None, "8", "B1", 2, 3)]),
        (STATUS_214.replace("*0815*", "*2575*"), "QM", [("element.invalid_time", None, "9", "AT7", 14, 6)]),
        (STATUS_214.replace("LX*2~", "LX*TWO~"), "QM", [("element.invalid_character", None, "6", "LX", 17, 1)]),
        (
            RESPONSE_990.replace("K1*NO EQUIPMENT AVAILABLE ON THAT*DATE IN THIS LANE", "K1*A*B*C"),
            "GF",
            [("element.too_many", None, "3", "K1", 4, 3)],
        ),
    ],
)
def test_validation_errors_carry_their_ak3_ak4_codes_and_positions(body: str, functional_id: str, expected: list) -> None:  # type: ignore[type-arg]
    assert _one_set_errors(envelope(body, functional_id=functional_id)) == expected


def test_mandatory_loop_missing_in_204() -> None:
    body = TENDER_204[: TENDER_204.index("S5*1*LD")] + "L3*12000*G~\n"
    assert _one_set_errors(envelope(body, functional_id="SM")) == [("segment.missing", "3", None, "S5", 13, None)]


def test_set_in_the_wrong_functional_group() -> None:
    [error] = parse(envelope(RESPONSE_990, functional_id="QM")).errors
    assert (error.code, error.set_code, error.message) == (
        "set.wrong_group",
        "6",
        "Transaction set 990 belongs in a GF group, not in GS01 'QM'",
    )


def test_unsupported_set_is_reported_and_rejected_with_ak5_code_1() -> None:
    result = parse(envelope("810|\nBIG*20260301*INV1~\n", functional_id="IN"))
    [parsed] = result.sets
    assert (parsed.supported, parsed.document, parsed.accepted) == (False, None, False)
    [error] = parsed.errors
    assert error.code == "set.unsupported"
    assert error.message.startswith(
        "Transaction set 810 is not supported (supported: 204, 210, 214, 846, 856, 940, 943, 944, 945, 990, 997, 999)"
    )
    ack = group_acknowledgement(result.interchanges[0].groups[0])
    assert [(answer.status, answer.error_codes, answer.segments) for answer in ack.sets] == [("R", ["1"], [])]
    assert (ack.status, ack.sets_accepted) == ("R", 0)


def test_997_names_every_set_and_rejects_the_bad_one_with_ak3_ak4() -> None:
    bad = ORDER_940.replace("N9*LI*001", "N9**001").replace("W01*6*CA", "W01*6*CASE")
    result = parse(envelope(ORDER_940, bad, ORDER_940, functional_id="OW"))
    text = acknowledge(result.interchanges[0], now=None)
    assert text is not None
    body = [line for line in text.splitlines() if line[:2] in ("AK", "ST", "SE")]
    assert body == [
        "ST*997*0001~",
        "AK1*OW*7001~",
        "AK2*940*0001~",
        "AK5*A~",
        "AK2*940*0002~",
        "AK3*N9*15**8~",
        "AK4*1**1~",
        "AK3*W01*17**8~",
        "AK4*2**5*CASE~",
        "AK5*R*5~",
        "AK2*940*0003~",
        "AK5*A~",
        "AK9*P*3*3*2~",
        "SE*14*0001~",
    ]
    assert text.startswith("ISA*00*          *00*          *ZZ*BATON          *ZZ*SHIPPERCO      *")
    assert parse(text).errors == []


def test_997_for_envelope_errors_uses_ak5_and_ak9_codes() -> None:
    text = envelope(RESPONSE_990, RESPONSE_990, functional_id="GF").replace("SE*5*0002", "SE*6*0002").replace("GE*2*7001", "GE*3*7001")
    ack = group_acknowledgement(parse(text).interchanges[0].groups[0])
    assert [(answer.status, answer.error_codes) for answer in ack.sets] == [("A", []), ("R", ["4"])]
    assert (ack.status, ack.sets_included, ack.sets_received, ack.sets_accepted, ack.error_codes) == ("R", 3, 2, 1, ["5"])


def test_999_on_request_uses_ik3_ik4_ik5() -> None:
    bad = RESPONSE_990.replace("B1*ABCD", "B1*")
    result = parse(envelope(bad, functional_id="GF"))
    text = acknowledge(result.interchanges[0], kind="999")
    assert text is not None
    lines = text.splitlines()
    assert "ST*999*0001*005010X231~" in lines
    assert [line for line in lines if line[:2] in ("AK", "IK")] == [
        "AK1*GF*7001*004010~",
        "AK2*990*0001~",
        "IK3*B1*2**8~",
        "IK4*1**1~",
        "IK5*R*5~",
        "AK9*R*1*1*0~",
    ]
    assert "*00501*" in lines[0]
    assert parse(text).errors == []


def test_clean_interchange_is_accepted() -> None:
    ack = group_acknowledgement(parse(envelope(STATUS_214, STATUS_214)).interchanges[0].groups[0])
    assert (ack.status, [answer.status for answer in ack.sets], ack.sets_accepted) == ("A", ["A", "A"], 2)


def test_generated_element_checks_agree_with_the_detailed_ones() -> None:
    """The compiled fast path may only say "valid" when the detailed check finds nothing."""
    import random

    from connectors.edi.reader import Segment, TransactionSet
    from connectors.edi.specs import SEGMENTS
    from connectors.edi.validate import _VALID, _check_elements

    rng = random.Random(4)
    samples = [
        "",
        "A",
        "AB",
        "ABC",
        "12",
        "-5",
        "1.5",
        "20260229",
        "20250229",
        "2359",
        "2460",
        "X" * 31,
        "00",
        "LT",
        "ZZ",
        "\x01A",
        "12345678901",
    ]
    for segment_id, definition in SEGMENTS.items():
        for _ in range(60):
            elements = [segment_id] + [rng.choice(samples) for _ in range(rng.randint(0, len(definition.elements) + 1))]
            segment = Segment(segment_id, elements, 2, 0)
            transaction_set = TransactionSet("990", "0001", "", 1, [Segment("ST", ["ST", "990", "0001"], 1, 0), segment])
            _check_elements(transaction_set, segment, definition)
            if _VALID[segment_id](elements):
                assert transaction_set.errors == [], (segment_id, elements)
