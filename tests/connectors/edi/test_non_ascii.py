"""Non-ASCII and control characters in what partners send, and the 997 that answers them.

Baton's rule for text (AN and ID) elements: graphic characters are taken – X12.6's basic and
extended sets, including its "select language" characters (Ü, é, ß…), which partners send by
agreement – whether the file is UTF-8 or Latin-1; a control or format character (C0, DEL, C1,
zero-width) is a syntax error, the set rejected with AK403 "6" (invalid character). The 997
itself is plain ASCII: AK404, the optional copy of the bad data, is left out when the value holds
anything outside printable ASCII or one of the reply's delimiters, so writing it never fails and
the inbox never retries an interchange it has already read.
"""

from __future__ import annotations

import dataclasses

import pytest
from django_tenants.utils import schema_context

from connectors.edi import acknowledge, parse, reply_settings
from connectors.edi.documents import ShipmentStatus
from connectors.normalize import x12_acknowledgement
from tests.connectors.edi.fixtures import STATUS_214, envelope

# The 214 of the fixtures, its consignee in Düsseldorf (upper case, as X12 text usually is) and its
# second milestone's city written the way people write it.
DUESSELDORF_214 = STATUS_214.replace("N4*BRATTLEBORO*VT*05301*US~", "N4*DÜSSELDORF*NW*40213*DE~").replace(
    "MS1*BRATTLEBORO*VT*USA~", "MS1*Düsseldorf**DEU~"
)
N4_AT = 12  # the consignee's N4 is the 12th segment of the set, counting ST as 1


def _with_consignee_city(city: str) -> str:
    return STATUS_214.replace("N4*BRATTLEBORO*VT*05301*US~", f"N4*{city}*VT*05301*US~")


def _with_consignee_state(state: str) -> str:
    return STATUS_214.replace("N4*BRATTLEBORO*VT*05301*US~", f"N4*BRATTLEBORO*{state}*05301*US~")


def _ak_lines(acknowledgement: str) -> list[str]:
    return [line for line in acknowledgement.split("\n") if line.startswith(("AK", "IK"))]


def _plain_ascii(text: str) -> bool:
    return all(" " <= char <= "~" or char == "\n" for char in text)


# --- non-ASCII letters are data ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_a_214_from_duesseldorf_is_read_as_written_and_accepted(encoding):
    data = envelope(DUESSELDORF_214).encode(encoding)

    result = parse(data)

    assert result.errors == []
    (document,) = result.documents
    assert isinstance(document, ShipmentStatus)
    assert [party.city for party in document.parties] == ["RUMFORD", "DÜSSELDORF"]
    assert [milestone.city for milestone in document.milestones][1] == "Düsseldorf"
    acknowledgement = x12_acknowledgement(data)
    assert _ak_lines(acknowledgement) == ["AK1*QM*7001~", "AK2*214*0001~", "AK5*A~", "AK9*A*1*1*1~"]
    assert _plain_ascii(acknowledgement)


def test_lengths_count_characters_not_the_bytes_of_their_encoding():
    # 30 characters, 31 bytes in UTF-8: N401 is at most 30 long.
    city = "MÜNCHEN-" + "X" * 22
    assert len(city) == 30
    assert parse(envelope(_with_consignee_city(city)).encode()).errors == []


# --- control characters are a syntax error, answered in the 997 ---------------------------------------


@pytest.mark.parametrize(
    "char", ["\x07", "\t", "\x1b", "\x7f", "\x85", "\x9c", "\u200b"], ids=["bel", "tab", "esc", "del", "nel", "c1", "zwsp"]
)
def test_a_control_character_rejects_its_set_with_ak4_code_6_and_no_copy_of_the_value(char):
    data = envelope(_with_consignee_city(f"BRATTLE{char}BORO")).encode()

    (error,) = parse(data).errors
    assert (error.code, error.element_code, error.position.segment_id, error.position.element) == (
        "element.invalid_character",
        "6",
        "N4",
        1,
    )

    acknowledgement = x12_acknowledgement(data)

    assert _ak_lines(acknowledgement) == [
        "AK1*QM*7001~",
        "AK2*214*0001~",
        f"AK3*N4*{N4_AT}**8~",
        "AK4*1**6~",
        "AK5*R*5~",
        "AK9*R*1*1*0~",
    ]
    assert _plain_ascii(acknowledgement) and parse(acknowledgement).errors == []


def test_a_999_answers_a_control_character_the_same_way():
    (interchange,) = parse(envelope(_with_consignee_city("BRATTLE\x9cBORO")).encode()).interchanges

    written = acknowledge(interchange, kind="999") or ""

    assert f"IK3*N4*{N4_AT}**8~" in written and "IK4*1**6~" in written and "IK5*R*5~" in written
    assert _plain_ascii(written) and parse(written).errors == []


def test_one_set_with_a_control_character_leaves_the_others_of_the_interchange_accepted():
    data = envelope(_with_consignee_city("BRATTLE\x07BORO"), DUESSELDORF_214).encode()

    result = parse(data)

    assert [parsed.accepted for parsed in result.sets] == [False, True]
    lines = _ak_lines(x12_acknowledgement(data))
    assert lines[lines.index("AK2*214*0001~") + 3] == "AK5*R*5~" and lines[lines.index("AK2*214*0002~") + 1] == "AK5*A~"
    assert lines[-1] == "AK9*P*2*2*1~"


# --- AK404, the copy of the bad data, only when it can be written -------------------------------------


def test_the_copy_of_a_bad_value_is_kept_when_it_is_plain_text():
    acknowledgement = x12_acknowledgement(envelope(_with_consignee_state("BAVARIA")).encode())
    assert f"AK3*N4*{N4_AT}**8~" in acknowledgement and "AK4*2**5*BAVARIA~" in acknowledgement


@pytest.mark.parametrize(
    "state",
    ["BAYÉRN", "B>Y"],
    ids=["non-ascii", "the-component-separator"],
)
def test_the_copy_of_a_bad_value_that_cannot_be_written_is_left_out(state):
    data = envelope(_with_consignee_state(state)).encode()

    acknowledgement = x12_acknowledgement(data)

    assert "AK4*2**5~" in acknowledgement and "AK5*R*5~" in acknowledgement
    assert _plain_ascii(acknowledgement) and parse(acknowledgement).errors == []


def test_a_reply_in_the_partners_own_delimiters_leaves_out_a_copy_holding_one_of_them():
    (interchange,) = parse(envelope(_with_consignee_state("B|Y")).encode()).interchanges  # its sets validated
    theirs = dataclasses.replace(reply_settings(interchange), element_separator="|")

    assert "AK4*2**5*B|Y~" in (acknowledge(interchange) or "")
    written = acknowledge(interchange, partner=theirs) or ""

    assert "AK4|2||5~" in written and parse(written).errors == []


# --- through the inbox ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_a_214_from_duesseldorf_through_the_inbox_is_delivered_and_answered(world, encoding):
    from connectors.edi_transport import edi_receive
    from connectors.inbox import event_dispatch
    from connectors.models import EdiAcknowledgement, EventDispatch, InboundEvent
    from tests.connectors.test_edi_partners import partner_made

    with schema_context(world.acme.schema):
        partner = partner_made()
        received = edi_receive(connection=partner.connection, data=envelope(DUESSELDORF_214).encode(encoding), channel="sftp")

        assert event_dispatch(received.event.pk) == "delivered"

        event = InboundEvent.objects.get(pk=received.event.pk)
        assert [item["payload"]["location"]["city"] for item in event.canonical] == ["RUMFORD", "Düsseldorf", ""]
        assert "AK5*A~" in event.acknowledgement and "AK9*A*1*1*1~" in event.acknowledgement
        assert EdiAcknowledgement.objects.get(event=event).text == event.acknowledgement
        assert _plain_ascii(event.acknowledgement) and not EventDispatch.objects.filter(event_id=event.pk).exists()


@pytest.mark.django_db
def test_a_control_character_through_the_inbox_is_answered_in_the_997_and_the_rest_delivered(world):
    from connectors.edi_transport import edi_receive
    from connectors.inbox import event_dispatch
    from connectors.models import EdiAcknowledgement, EventDispatch, InboundEvent
    from tests.connectors.test_edi_partners import partner_made

    with schema_context(world.acme.schema):
        partner = partner_made()
        data = envelope(_with_consignee_city("BRATTLE\x07BORO"), DUESSELDORF_214).encode()
        received = edi_receive(connection=partner.connection, data=data, channel="sftp")

        assert event_dispatch(received.event.pk) == "delivered"

        event = InboundEvent.objects.get(pk=received.event.pk)
        assert [item["payload"]["location"]["city"] for item in event.canonical] == ["RUMFORD", "Düsseldorf", ""]
        assert "AK4*1**6~" in event.acknowledgement and "AK5*R*5~" in event.acknowledgement and "AK9*P*2*2*1~" in event.acknowledgement
        assert EdiAcknowledgement.objects.get(event=event).text == event.acknowledgement
        assert _plain_ascii(event.acknowledgement) and not EventDispatch.objects.filter(event_id=event.pk).exists()


@pytest.mark.django_db
def test_an_interchange_whose_only_set_has_a_control_character_is_quarantined_once_with_its_997(world):
    from connectors.edi_transport import edi_receive
    from connectors.inbox import event_dispatch
    from connectors.models import EdiAcknowledgement, EventDispatch, InboundEvent
    from tests.connectors.test_edi_partners import partner_made

    with schema_context(world.acme.schema):
        partner = partner_made()
        data = envelope(_with_consignee_city("BRATTLE\x1bBORO")).encode()
        received = edi_receive(connection=partner.connection, data=data, channel="sftp")

        assert event_dispatch(received.event.pk) == "quarantined"

        event = InboundEvent.objects.get(pk=received.event.pk)
        assert "N401 contains a control character" in event.error and "handing it on failed" not in event.error
        assert "AK4*1**6~" in event.acknowledgement and "AK9*R*1*1*0~" in event.acknowledgement
        assert EdiAcknowledgement.objects.get(event=event).text == event.acknowledgement
        assert not EventDispatch.objects.filter(event_id=event.pk).exists()


@pytest.mark.django_db
def test_a_partner_with_other_delimiters_gets_its_997_when_a_bad_value_holds_one_of_them(world):
    from connectors.edi_transport import edi_receive
    from connectors.inbox import event_dispatch
    from connectors.models import EdiAcknowledgement, InboundEvent
    from tests.connectors.test_edi_partners import partner_made

    with schema_context(world.acme.schema):
        partner = partner_made(element_separator="|")
        data = envelope(_with_consignee_state("B|Y"), DUESSELDORF_214).encode()
        received = edi_receive(connection=partner.connection, data=data, channel="sftp")

        assert event_dispatch(received.event.pk) == "delivered"

        event = InboundEvent.objects.get(pk=received.event.pk)
        assert "AK4|2||5~" in event.acknowledgement and "AK9|P|2|2|1~" in event.acknowledgement
        assert EdiAcknowledgement.objects.get(event=event).text == event.acknowledgement
