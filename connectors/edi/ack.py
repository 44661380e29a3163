"""Functional acknowledgements (997, or 999 on request) for interchanges Baton received.

Built from the errors `parse` attached to each set and group, so an acknowledgement always says
exactly what the parse found: every group and set named, rejected ones with their AK3/AK4 notes.
"""

from __future__ import annotations

import datetime as dt

from connectors.edi.documents import Acknowledgement, ElementNote, SegmentNote, SetAcknowledgement
from connectors.edi.reader import FunctionalGroup, Interchange, TransactionSet
from connectors.edi.writer import (
    ControlNumbers,
    InMemoryControlNumbers,
    PartnerSettings,
    write_interchange,
    write_interchange_acknowledgement,
)

_MAX_CODES = 5


def set_acknowledgement(transaction_set: TransactionSet) -> SetAcknowledgement:
    notes: dict[tuple[int, str], SegmentNote] = {}
    codes: list[str] = []
    for error in transaction_set.errors:
        if error.set_code and error.set_code not in codes:
            codes.append(error.set_code)
        if not (error.segment_code or error.element_code):
            continue
        position = error.position
        key = (position.set_segment or 0, position.segment_id)
        note = notes.get(key)
        if note is None:
            note = notes[key] = SegmentNote(position.segment_id, position.set_segment or 0, error.segment_code or "8")
        elif error.segment_code and note.code == "8":
            note.code = error.segment_code
        if error.element_code:
            note.elements.append(ElementNote(position.element or 0, error.element_code, position.component, "", (error.value or "")[:99]))
    if notes and "5" not in codes:
        codes.append("5")
    return SetAcknowledgement(
        transaction_set.code,
        transaction_set.control_number,
        "R" if codes else "A",
        codes[:_MAX_CODES],
        sorted(notes.values(), key=lambda note: note.position),
    )


def group_acknowledgement(group: FunctionalGroup, kind: str = "997") -> Acknowledgement:
    """The 997/999 content for one group; its sets must have been through `parse` (validated)."""
    if kind not in ("997", "999"):
        raise ValueError(f"Acknowledgements are 997 or 999, not {kind!r}")
    answers = [set_acknowledgement(transaction_set) for transaction_set in group.sets]
    accepted = sum(answer.accepted for answer in answers)
    codes = list(dict.fromkeys(error.group_code for error in group.errors if error.group_code))
    status = "R" if codes or accepted == 0 else "A" if accepted == len(answers) else "P"
    declared = group.trailer.element(1) if group.trailer is not None else ""
    return Acknowledgement(
        ack_type=kind,
        functional_id=group.functional_id,
        group_control_number=group.control_number,
        status=status,
        sets_included=int(declared) if declared.isdigit() else len(answers),
        sets_received=len(answers),
        sets_accepted=accepted,
        version=group.version if kind == "999" or group.version.startswith("005") else "",
        error_codes=codes[:_MAX_CODES],
        sets=answers,
    )


def reply_settings(interchange: Interchange, kind: str = "997") -> PartnerSettings:
    """Settings to answer the sender of `interchange`: ids swapped, its delimiters and version."""
    delimiters = interchange.delimiters
    group = interchange.groups[0] if interchange.groups else None
    version = interchange.version if interchange.version.isdigit() and len(interchange.version) == 5 else "00401"
    return PartnerSettings(
        partner=f"{interchange.sender_qualifier}:{interchange.sender_id}",
        sender_qualifier=interchange.receiver_qualifier,
        sender_id=interchange.receiver_id,
        receiver_qualifier=interchange.sender_qualifier,
        receiver_id=interchange.sender_id,
        version="00501" if kind == "999" else version,
        group_version=(group.version if group is not None and group.version else "004010"),
        usage=interchange.usage if interchange.usage in ("P", "T") else "P",
        element_separator=delimiters.element,
        component_separator=delimiters.component,
        segment_terminator=delimiters.segment,
        segment_suffix=delimiters.suffix if delimiters.segment not in "\r\n" else "",
        repetition_separator=delimiters.repetition
        or next(char for char in "^{|!" if char not in (delimiters.element, delimiters.component, delimiters.segment)),
        application_sender=group.receiver if group is not None else "",
        application_receiver=group.sender if group is not None else "",
    )


def acknowledge(
    interchange: Interchange,
    *,
    kind: str = "997",
    partner: PartnerSettings | None = None,
    control_numbers: ControlNumbers | None = None,
    now: dt.datetime | None = None,
) -> str | None:
    """An interchange acknowledging every group of `interchange` (None when it has no group), or,
    when its envelope is broken (an IEA that does not match, a missing trailer, a segment outside
    any group), a TA1 refusing the whole interchange with the first problem's note code: no group
    of a refused interchange is taken, so none is acknowledged."""
    if interchange.rejected:
        if not (interchange.control_number.isdigit() and interchange.sender_id):
            return None  # an ISA too broken to say who sent it or which interchange it is: nobody to answer
        code = next(error.interchange_code for error in interchange.errors if error.interchange_code)
        assert code is not None
        return write_interchange_acknowledgement(
            control_number=interchange.control_number,
            date=interchange.header.element(9).strip(),
            time=interchange.header.element(10).strip(),
            note_code=code,
            partner=partner or reply_settings(interchange, kind),
            control_numbers=control_numbers or InMemoryControlNumbers(),
            now=now,
        )
    if not interchange.groups:
        return None
    acknowledgements = [group_acknowledgement(group, kind) for group in interchange.groups]
    return write_interchange(
        acknowledgements,
        partner=partner or reply_settings(interchange, kind),
        control_numbers=control_numbers or InMemoryControlNumbers(),
        now=now,
    )
