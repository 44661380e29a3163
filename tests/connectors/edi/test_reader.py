"""The reader: delimiters from the ISA in all their real-world variants, and envelope checks."""

from __future__ import annotations

import pytest

from connectors.edi import parse, read, split
from tests.connectors.edi.fixtures import ISA, RESPONSE_990, STATUS_214, envelope

TWO_SETS = envelope(STATUS_214, STATUS_214)


def _shape(text: str) -> list[tuple[str, int, int]]:
    result = parse(text)
    assert result.errors == []
    return [(parsed.code, len(parsed.document.milestones), parsed.interchange) for parsed in result.sets]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "transform"),
    [
        ("tilde and LF", lambda text: text),
        ("tilde and CRLF", lambda text: text.replace("~\n", "~\r\n")),
        ("tilde, no newline", lambda text: text.replace("~\n", "~")),
        ("newline only", lambda text: text.replace("~\n", "\n")),
        ("CRLF only", lambda text: text.replace("~\n", "\r\n")),
        ("hard-wrapped at 80 columns", lambda text: "\n".join(text.replace("~\n", "~")[i : i + 80] for i in range(0, len(text), 80))),
        ("stray blanks and blank lines", lambda text: text.replace("~\n", "~\n\n   \t")),
        ("multi-character terminator ~|", lambda text: text.replace(">~", ">|").replace("~\n", "|")),
    ],
)
def test_reader_accepts_delimiter_variants(name: str, transform) -> None:  # type: ignore[no-untyped-def]
    assert _shape(transform(TWO_SETS)) == [("214", 3, 1), ("214", 3, 1)], name


def test_reader_takes_delimiters_from_the_isa_not_fixed_columns() -> None:
    unpadded = "ISA*00**00**ZZ*SHIPPERCO*ZZ*BATON*260301*0930*^*00501*101*0*P*:~"
    text = envelope(STATUS_214, isa=unpadded).replace("*", "|").replace("~", "!").replace("IEA|1|000000101", "IEA|1|101")
    result = parse(text)
    assert result.errors == []
    interchange = result.interchanges[0]
    assert (interchange.delimiters.element, interchange.delimiters.component, interchange.delimiters.segment) == ("|", ":", "!")
    assert interchange.delimiters.repetition == "^"
    assert interchange.sender_id == "SHIPPERCO" and interchange.version == "00501"


def test_several_interchanges_with_their_own_delimiters_in_one_file() -> None:
    second = envelope(RESPONSE_990, functional_id="GF").replace("*", "^").replace("~", "\n").replace("\n\n", "\n").replace("^>\n", "^:\n")
    # The second ISA uses ^ as element separator, a newline as terminator and : as component separator.
    second = second.replace("^U^00401^", "^U^00401^")
    result = parse(TWO_SETS + second)
    assert result.errors == []
    assert [(interchange.index, interchange.delimiters.element, interchange.delimiters.segment) for interchange in result.interchanges] == [
        (1, "*", "~"),
        (2, "^", "\n"),
    ]
    assert [parsed.code for parsed in result.sets] == ["214", "214", "990"]


def test_segment_positions_count_from_the_isa_and_the_st_with_byte_offsets() -> None:
    text = envelope(STATUS_214)
    interchange = read(text.encode()).interchanges[0]
    transaction_set = interchange.groups[0].sets[0]
    b10 = transaction_set.segments[1]
    assert (b10.id, b10.index, b10.offset) == ("B10", 4, text.index("B10"))
    assert transaction_set.position(b10).set_segment == 2


def _errors(text: str) -> list[tuple[str, str, int, int | None]]:
    return [(error.code, error.message, error.position.segment, error.position.element) for error in parse(text).errors]


def test_se_segment_count_mismatch_names_both_counts_and_the_se_position() -> None:
    text = envelope(RESPONSE_990, functional_id="GF").replace("SE*5*0001", "SE*9*0001")
    [(code, message, segment, element)] = _errors(text)
    assert code == "se.segment_count"
    assert message == "SE01 says 9 segments, transaction set 0001 has 5 (ST to SE inclusive)"
    assert (segment, element) == (7, 1)
    assert parse(text).errors[0].set_code == "4"


def test_se_control_number_mismatch() -> None:
    text = envelope(RESPONSE_990, functional_id="GF").replace("SE*5*0001", "SE*5*0002")
    [(code, message, _, element)] = _errors(text)
    assert (code, element) == ("se.control_number", 2)
    assert message == "SE02 control number '0002' does not match ST02 '0001'"


def test_missing_se_is_reported_where_the_next_envelope_starts() -> None:
    text = envelope(RESPONSE_990, functional_id="GF").replace("SE*5*0001~\n", "")
    errors = parse(text).errors
    assert [(error.code, error.set_code, error.position.segment_id) for error in errors][:1] == [("se.missing", "2", "GE")]
    assert errors[0].message == "Transaction set 990 0001 has no SE: GE found before it"


def test_ge_count_and_control_number_mismatches() -> None:
    text = envelope(RESPONSE_990, functional_id="GF").replace("GE*1*7001", "GE*2*7002")
    assert [(code, message) for code, message, *_ in _errors(text)] == [
        ("ge.set_count", "GE01 says 2 transaction sets, group 7001 has 1"),
        ("ge.control_number", "GE02 control number '7002' does not match GS06 '7001'"),
    ]
    assert [error.group_code for error in parse(text).errors] == ["5", "4"]


def test_missing_ge() -> None:
    text = envelope(RESPONSE_990, functional_id="GF").replace("GE*1*7001~\n", "")
    [(code, message, *_)] = _errors(text)
    assert (code, message) == ("ge.missing", "Functional group 7001 has no GE: IEA found before it")


def test_iea_count_and_control_number_mismatches() -> None:
    text = envelope(RESPONSE_990, functional_id="GF").replace("IEA*1*000000101", "IEA*3*000000999")
    assert [(code, message) for code, message, *_ in _errors(text)] == [
        ("iea.group_count", "IEA01 says 3 functional groups, the interchange has 1"),
        ("iea.control_number", "IEA02 control number '000000999' does not match ISA13 '000000101'"),
    ]
    assert [error.interchange_code for error in parse(text).errors] == ["021", "001"]


def test_missing_iea_at_end_of_file_and_before_another_isa() -> None:
    one = envelope(RESPONSE_990, functional_id="GF").replace("IEA*1*000000101~\n", "")
    assert [(code, message) for code, message, *_ in _errors(one)] == [
        ("iea.missing", "Interchange 000000101 has no IEA: the file ends before it")
    ]
    two = one + envelope(RESPONSE_990, functional_id="GF")
    result = parse(two)
    assert len(result.interchanges) == 2
    assert [error.message for error in result.errors] == ["Interchange 000000101 has no IEA: another ISA starts before it"]


def test_duplicate_set_control_number_in_a_group() -> None:
    text = envelope(RESPONSE_990, RESPONSE_990, functional_id="GF").replace("0002", "0001")
    [(code, message, segment, _)] = _errors(text)
    assert code == "st.control_number_duplicate"
    assert message == "ST02 control number 0001 is used twice in group 7001"


def test_junk_between_interchanges_and_no_isa_at_all() -> None:
    text = envelope(RESPONSE_990, functional_id="GF") + "garbage here\n"
    [(code, message, *_)] = _errors(text)
    assert (code, message) == ("file.junk", "Unexpected data outside an interchange: 'garbage here'")
    assert [(error.code, error.message) for error in parse(b'{"not": "x12"}').errors] == [
        ("file.junk", 'Unexpected data outside an interchange: \'{"not": "x12"}\''),
        ("file.no_isa", "No ISA segment found: this is not an X12 interchange"),
    ]


def test_unreadable_isa_says_why() -> None:
    [error] = parse("ISA*00*short~").errors
    assert (error.code, error.message) == ("isa.unreadable", "Cannot read the ISA: the ISA does not have 16 elements")


def test_segment_outside_a_set() -> None:
    text = envelope(RESPONSE_990, functional_id="GF").replace("GE*1*7001~", "N1*ZZ*STRAY~\nGE*1*7001~")
    [(code, message, segment, _)] = _errors(text)
    assert (code, message, segment) == ("segment.outside_set", "Segment N1 found outside a transaction set", 8)


def test_isa_string_is_the_fixture_isa() -> None:
    assert len(ISA) == 106


_FIRST = envelope(STATUS_214)
_SECOND = envelope(RESPONSE_990, functional_id="GF").replace("000000101", "000000102")
_THIRD = envelope(STATUS_214).replace("000000101", "000000103").replace("*", "|").replace("~", "!")  # its own delimiters


# --- splitting a file into its interchanges -----------------------------------------------------


def test_a_file_is_split_at_each_interchange_with_its_own_delimiters_and_the_text_outside_kept_apart():
    text = "\ufeff" + _FIRST + "\n\nGARBAGE BETWEEN\n" + _SECOND + _THIRD + "\x1a trailing words\n"
    parts = split(text)
    assert [(part.outside, part.interchange.control_number if part.interchange else part.text) for part in parts] == [
        (False, "000000101"),
        (True, "GARBAGE BETWEEN"),
        (False, "000000102"),
        (False, "000000103"),
        (True, "trailing words"),
    ]
    assert [part.text for part in parts if not part.outside] == [_FIRST.rstrip("\n"), _SECOND.rstrip("\n"), _THIRD.rstrip("\n")]
    assert all(text[part.start : part.end] == part.text for part in parts)
    for part in parts:
        if part.interchange is not None:
            assert read(part.text).all_errors() == []
    assert parts[3].interchange is not None and parts[3].interchange.delimiters.element == "|"


def test_an_interchange_without_iea_ends_where_the_next_isa_starts():
    cut = _FIRST.replace("IEA*1*000000101~\n", "")
    parts = split(cut + _SECOND)
    assert [part.interchange.control_number for part in parts if part.interchange] == ["000000101", "000000102"]
    assert parts[0].text == cut and [error.code for error in read(parts[0].text).all_errors()] == ["iea.missing"]
