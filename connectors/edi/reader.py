"""Tolerant X12 reader: delimiters from each ISA, segments with their positions, envelope checks.

Partners send what their translators produce, not what the standard pictures: `~` with or without
a newline, a bare newline as terminator, segments hard-wrapped at 80 columns, padded or unpadded
ISA elements, stray blanks. The reader accepts all of these and reports what is actually wrong
(counts, control numbers, missing trailers) with the position of the segment at fault, so the
caller can acknowledge, quarantine or show it without reading the file again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from connectors.edi.errors import EdiError, Position

_BLANKS = " \t\r\n"
_BLANK_SET = frozenset(_BLANKS)
# What may sit between interchanges without being reported: blanks, a byte order mark (read as
# latin-1 or not), NULs and the SUB (Ctrl-Z) some DOS tools still append.
_FILLER = _BLANKS + "\x00\x1a\ufeff\xef\xbb\xbf"
_ISA_ELEMENTS = 16


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The separators one interchange uses; `suffix` is what follows each terminator (e.g. a newline)."""

    element: str = "*"
    component: str = ">"
    segment: str = "~"
    repetition: str | None = None
    suffix: str = ""


@dataclass(slots=True)
class Segment:
    """One segment; `elements[0]` is its id, so `elements[n]` is data element n (1-based)."""

    id: str
    elements: list[str]
    index: int
    offset: int

    def element(self, n: int) -> str:
        return self.elements[n] if n < len(self.elements) else ""

    def position(self, interchange: int, set_segment: int | None = None, element: int | None = None) -> Position:
        return Position(interchange, self.index, self.offset, self.id, set_segment, element)


@dataclass(slots=True)
class TransactionSet:
    """An ST…SE set; `segments` holds ST and, when present, SE."""

    code: str
    control_number: str
    implementation_reference: str
    interchange: int
    segments: list[Segment]
    trailer: Segment | None = None
    errors: list[EdiError] = field(default_factory=list)

    @property
    def header(self) -> Segment:
        return self.segments[0]

    def position(self, segment: Segment, element: int | None = None) -> Position:
        """Position of one of this set's segments, counting ST as 1 (what AK302 reports)."""
        return segment.position(self.interchange, segment.index - self.header.index + 1, element)


@dataclass(slots=True)
class FunctionalGroup:
    """A GS…GE group."""

    functional_id: str
    sender: str
    receiver: str
    date: str
    time: str
    control_number: str
    agency: str
    version: str
    header: Segment
    sets: list[TransactionSet] = field(default_factory=list)
    trailer: Segment | None = None
    errors: list[EdiError] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        """A group-level problem (AK905 code): the 997 rejects the whole group, so none of its sets is taken."""
        return any(error.group_code for error in self.errors)


@dataclass(slots=True)
class Interchange:
    """An ISA…IEA interchange with the ids and settings its ISA declares."""

    index: int
    delimiters: Delimiters
    header: Segment
    groups: list[FunctionalGroup] = field(default_factory=list)
    trailer: Segment | None = None
    errors: list[EdiError] = field(default_factory=list)
    acknowledgements: list[Segment] = field(default_factory=list)  # TA1 segments (before any GS)

    @property
    def rejected(self) -> bool:
        """An envelope problem (TA105 code): the whole interchange is refused with a TA1."""
        return any(error.interchange_code for error in self.errors)

    @property
    def sender_qualifier(self) -> str:
        return self.header.element(5).strip()

    @property
    def sender_id(self) -> str:
        return self.header.element(6).strip()

    @property
    def receiver_qualifier(self) -> str:
        return self.header.element(7).strip()

    @property
    def receiver_id(self) -> str:
        return self.header.element(8).strip()

    @property
    def version(self) -> str:
        return self.header.element(12).strip()

    @property
    def control_number(self) -> str:
        return self.header.element(13).strip()

    @property
    def usage(self) -> str:
        return self.header.element(15).strip()

    def all_errors(self) -> list[EdiError]:
        errors = list(self.errors)
        for group in self.groups:
            errors += group.errors
            for transaction_set in group.sets:
                errors += transaction_set.errors
        return sorted(errors, key=lambda error: (error.position.segment, error.position.element or 0))


@dataclass(slots=True)
class ReadResult:
    """Everything read from one file; `errors` holds problems outside any interchange."""

    interchanges: list[Interchange] = field(default_factory=list)
    errors: list[EdiError] = field(default_factory=list)

    def all_errors(self) -> list[EdiError]:
        errors = list(self.errors)
        for interchange in self.interchanges:
            errors += interchange.all_errors()
        return sorted(errors, key=lambda error: (error.position.interchange, error.position.segment, error.position.element or 0))


def decoded(data: bytes | bytearray | str) -> str:
    """The text of an interchange: UTF-8 when the bytes are valid UTF-8 (what current translators
    and the inbox's stored text are), else Latin-1, one character per byte. Read as Latin-1, a
    UTF-8 "Ü" became "Ã" and the C1 control U+009C, and its set was rejected for it. Offsets
    count characters of this text: bytes, for an ASCII or Latin-1 file."""
    if not isinstance(data, bytes | bytearray):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read(data: bytes | str) -> ReadResult:
    """Read every interchange in `data` (bytes as `decoded` reads them)."""
    text = decoded(data)
    result = ReadResult()
    pos = 0
    while True:
        start = text.find("ISA", pos)
        gap = text[pos : start if start >= 0 else len(text)]
        junk = gap.lstrip(_FILLER)
        if junk.strip(_FILLER):
            offset = pos + len(gap) - len(junk)
            where = Position(len(result.interchanges) + 1 if start >= 0 else len(result.interchanges), 0, offset)
            result.errors.append(
                EdiError(
                    "file.junk", f"Unexpected data outside an interchange: {junk.strip(_FILLER)[:30]!r}", where, interchange_code="024"
                )
            )
        if start < 0:
            break
        interchange, pos = _read_interchange(text, start, len(result.interchanges) + 1)
        result.interchanges.append(interchange)
    if not result.interchanges:
        result.errors.append(EdiError("file.no_isa", "No ISA segment found: this is not an X12 interchange", Position(0, 0, 0)))
    return result


@dataclass(frozen=True, slots=True)
class FilePart:
    """One piece of a file as `read` sees it: an interchange (from its ISA to the end of its IEA, or
    to where the next ISA starts when it has none) or text outside any interchange (`interchange`
    None; the blanks and filler around it left out). `start` and `end` are offsets in the file."""

    start: int
    end: int
    text: str
    interchange: Interchange | None

    @property
    def outside(self) -> bool:
        return self.interchange is None


def split(data: bytes | str) -> list[FilePart]:
    """The file's interchanges and the text between and after them, in file order, each to be
    stored and acknowledged on its own. The same rules as `read` (delimiters from each ISA, an
    interchange without IEA ends where the next ISA starts); each interchange is read with index 1,
    as it will be when read alone. Blanks, NULs, byte order marks and Ctrl-Z between interchanges
    are no part."""
    text = decoded(data)
    parts: list[FilePart] = []
    pos = 0
    while True:
        start = text.find("ISA", pos)
        gap_end = start if start >= 0 else len(text)
        gap = text[pos:gap_end]
        junk = gap.strip(_FILLER)
        if junk:
            junk_start = pos + len(gap) - len(gap.lstrip(_FILLER))
            parts.append(FilePart(junk_start, junk_start + len(junk), junk, None))
        if start < 0:
            return parts
        interchange, end = _read_interchange(text, start, 1)
        parts.append(FilePart(start, end, text[start:end], interchange))
        pos = end


def find_delimiters(text: str, start: int = 0) -> Delimiters | str:
    """Delimiters of the ISA at `start`, or why they cannot be known.

    The element separator is the character after "ISA", the component separator the character
    after the 16th element separator, and the terminator what follows it. Counting separators
    instead of columns accepts unpadded ISAs; CR/LF inside the ISA are skipped (hard wrapping).
    A newline straight after ISA16 followed by a segment id means newlines end the segments.
    """
    n = len(text)
    element = text[start + 3] if start + 3 < n else ""
    if not element or element.isalnum() or element in _BLANKS:
        return "the character after ISA is not a usable element separator"
    at = start + 3
    for _ in range(_ISA_ELEMENTS - 1):
        at = text.find(element, at + 1)
        if at < 0 or at - start > 400:
            return f"the ISA does not have {_ISA_ELEMENTS} elements"
    at += 1
    while at < n and text[at] in "\r\n":
        at += 1
    if at >= n:
        return "the ISA ends before its component separator (ISA16)"
    component = text[at]
    at += 1
    if at < n and text[at] == " ":
        at = _skip(text, at, " ")
    terminator = text[at] if at < n else ""
    if terminator in ("\r", "\n"):
        after = _skip(text, at, _BLANKS)
        if after >= n or text[after].isalpha():
            terminator = "\r" if text[at] == "\r" and text[at + 1 : at + 2] != "\n" else "\n"
            return Delimiters(element, component, terminator, None, "\r\n" if text[at : at + 2] == "\r\n" else terminator)
        terminator, at = text[after], after
    if not terminator or terminator.isalnum() or terminator in (element, component):
        return "no segment terminator follows the ISA16 component separator"
    suffix_end = _skip(text, at + 1, "\r\n")
    return Delimiters(element, component, terminator, None, text[at + 1 : suffix_end])


def _skip(text: str, at: int, chars: str) -> int:
    while at < len(text) and text[at] in chars:
        at += 1
    return at


def _tokenize(text: str, start: int, delimiters: Delimiters) -> tuple[list[Segment], int, bool]:
    """Segments from the ISA at `start` to its IEA; returns them, where reading stopped, and
    whether another ISA started before an IEA was seen."""
    terminator = delimiters.segment
    element = delimiters.element
    wrapped = terminator not in "\r\n"
    segments: list[Segment] = []
    append = segments.append
    find = text.find
    n = len(text)
    pos = start
    index = 0
    while pos < n:
        end = find(terminator, pos)
        if end < 0:
            end = n
        body = text[pos:end]
        offset = pos
        if body[:1] in _BLANK_SET:
            stripped = body.lstrip(_BLANKS)
            offset += len(body) - len(stripped)
            body = stripped
        if body[-1:] in _BLANK_SET:
            body = body.rstrip(_BLANKS)
        if not body:
            pos = end + 1
            continue
        if wrapped and ("\n" in body or "\r" in body):
            body = body.replace("\r", "").replace("\n", "")
        parts = body.split(element)
        segment_id = parts[0]
        if segment_id == "ISA" and index:
            return segments, offset, True
        index += 1
        append(Segment(segment_id, parts, index, offset))
        pos = end + 1
        if segment_id == "IEA":
            break
    return segments, pos, False


def _read_interchange(text: str, start: int, index: int) -> tuple[Interchange, int]:
    delimiters = find_delimiters(text, start)
    if isinstance(delimiters, str):
        header = Segment("ISA", ["ISA"], 1, start)
        interchange = Interchange(index, Delimiters(), header)
        interchange.errors.append(
            EdiError("isa.unreadable", f"Cannot read the ISA: {delimiters}", header.position(index), interchange_code="024")
        )
        following = text.find("ISA", start + 3)
        return interchange, following if following >= 0 else len(text)
    segments, end, next_isa = _tokenize(text, start, delimiters)
    isa = segments[0]
    if isa.element(11) and not isa.element(11).isalnum() and isa.element(12).strip() >= "00402":
        delimiters = dataclasses.replace(delimiters, repetition=isa.element(11))
    interchange = Interchange(index, delimiters, isa)
    _check_envelopes(interchange, segments)
    if interchange.trailer is None:
        why = "another ISA starts" if next_isa else "the file ends"
        interchange.errors.append(
            EdiError(
                "iea.missing",
                f"Interchange {interchange.control_number} has no IEA: {why} before it",
                _end_position(index, segments),
                interchange_code="023",
            )
        )
    return interchange, end


def _end_position(interchange: int, segments: list[Segment]) -> Position:
    last = segments[-1]
    return last.position(interchange)


def _check_envelopes(interchange: Interchange, segments: list[Segment]) -> None:
    """Split the segments into groups and sets and check every header against its trailer."""
    index = interchange.index
    isa = segments[0]
    if len(isa.elements) != _ISA_ELEMENTS + 1:
        interchange.errors.append(
            EdiError(
                "isa.element_count", f"ISA has {len(isa.elements) - 1} elements, 16 expected", isa.position(index), interchange_code="024"
            )
        )
    if not interchange.control_number.isdigit():
        interchange.errors.append(
            EdiError(
                "isa.control_number",
                f"ISA13 interchange control number {interchange.control_number!r} is not numeric",
                isa.position(index, element=13),
                interchange_code="018",
            )
        )
    if interchange.usage not in ("P", "T", "I"):
        interchange.errors.append(
            EdiError(
                "isa.usage",
                f"ISA15 usage indicator {interchange.usage!r} is not P, T or I",
                isa.position(index, element=15),
                interchange_code="020",
            )
        )
    group: FunctionalGroup | None = None
    set_numbers: set[str] = set()
    current: TransactionSet | None = None
    orphan = False
    for segment in segments[1:]:
        segment_id = segment.id
        if current is not None:
            if segment_id == "SE":
                _close_set(current, segment)
                current = None
                continue
            if segment_id not in ("ST", "GS", "GE", "IEA"):
                current.segments.append(segment)
                continue
            current.errors.append(
                EdiError(
                    "se.missing",
                    f"Transaction set {current.code} {current.control_number} has no SE: {segment_id} found before it",
                    segment.position(index),
                    set_code="2",
                )
            )
            current = None
        if orphan:
            if segment_id not in ("ST", "GS", "GE", "IEA"):
                orphan = segment_id != "SE"
                continue
            orphan = False
        if segment_id == "ST":
            if group is None:
                interchange.errors.append(
                    EdiError(
                        "st.outside_group",
                        "ST found outside a functional group (no GS before it)",
                        segment.position(index),
                        interchange_code="024",
                    )
                )
                orphan = True
                continue
            current = _open_set(interchange, group, segment, set_numbers)
        elif segment_id == "GS":
            if group is not None:
                _missing_ge(group, segment, index)
            group = _open_group(segment, index)
            set_numbers = set()
            interchange.groups.append(group)
        elif segment_id == "GE":
            if group is None:
                interchange.errors.append(
                    EdiError("ge.unexpected", "GE found without a GS before it", segment.position(index), interchange_code="024")
                )
            else:
                _close_group(group, segment, index)
                group = None
        elif segment_id == "IEA":
            if group is not None:
                _missing_ge(group, segment, index)
                group = None
            _close_interchange(interchange, segment)
        elif segment_id == "TA1" and group is None and not interchange.groups:
            interchange.acknowledgements.append(segment)
        elif segment_id == "SE":
            interchange.errors.append(
                EdiError("se.unexpected", "SE found without an ST before it", segment.position(index), interchange_code="024")
            )
        else:
            where = "outside a transaction set" if group is not None else "outside a functional group"
            interchange.errors.append(
                EdiError("segment.outside_set", f"Segment {segment_id} found {where}", segment.position(index), interchange_code="024")
            )
    if current is not None:
        current.errors.append(
            EdiError(
                "se.missing",
                f"Transaction set {current.code} {current.control_number} has no SE: the interchange ends before it",
                current.segments[-1].position(index),
                set_code="2",
            )
        )
    if group is not None and interchange.trailer is None:
        _missing_ge(group, segments[-1], index)


def _open_group(gs: Segment, index: int) -> FunctionalGroup:
    group = FunctionalGroup(
        functional_id=gs.element(1),
        sender=gs.element(2),
        receiver=gs.element(3),
        date=gs.element(4),
        time=gs.element(5),
        control_number=gs.element(6),
        agency=gs.element(7),
        version=gs.element(8),
        header=gs,
    )
    if not group.control_number.isdigit():
        group.errors.append(
            EdiError(
                "gs.control_number",
                f"GS06 group control number {group.control_number!r} is not numeric",
                gs.position(index, element=6),
                group_code="6",
            )
        )
    return group


def _missing_ge(group: FunctionalGroup, at: Segment, index: int) -> None:
    group.errors.append(
        EdiError(
            "ge.missing",
            f"Functional group {group.control_number} has no GE: {at.id} found before it",
            at.position(index),
            group_code="3",
        )
    )


def _close_group(group: FunctionalGroup, ge: Segment, index: int) -> None:
    group.trailer = ge
    declared = ge.element(1)
    if declared != str(len(group.sets)):
        group.errors.append(
            EdiError(
                "ge.set_count",
                f"GE01 says {declared or 'nothing'} transaction sets, group {group.control_number} has {len(group.sets)}",
                ge.position(index, element=1),
                group_code="5",
                value=declared,
            )
        )
    if ge.element(2) != group.control_number:
        group.errors.append(
            EdiError(
                "ge.control_number",
                f"GE02 control number {ge.element(2)!r} does not match GS06 {group.control_number!r}",
                ge.position(index, element=2),
                group_code="4",
                value=ge.element(2),
            )
        )


def _open_set(interchange: Interchange, group: FunctionalGroup, st: Segment, seen: set[str]) -> TransactionSet:
    """Open a set; `seen` holds the group's ST02 numbers so far (a duplicate is refused)."""
    index = interchange.index
    transaction_set = TransactionSet(st.element(1), st.element(2), st.element(3), index, [st])
    if not transaction_set.code:
        transaction_set.errors.append(
            EdiError("st.code_missing", "ST01 transaction set identifier is missing", st.position(index, 1, 1), set_code="6")
        )
    control = transaction_set.control_number
    if not 4 <= len(control) <= 9:
        transaction_set.errors.append(
            EdiError(
                "st.control_number",
                f"ST02 control number {control!r} must be 4 to 9 characters",
                st.position(index, 1, 2),
                set_code="7",
                value=control,
            )
        )
    elif control in seen:
        transaction_set.errors.append(
            EdiError(
                "st.control_number_duplicate",
                f"ST02 control number {control} is used twice in group {group.control_number}",
                st.position(index, 1, 2),
                set_code="23",
                value=control,
            )
        )
    seen.add(control)
    group.sets.append(transaction_set)
    return transaction_set


def _close_set(transaction_set: TransactionSet, se: Segment) -> None:
    transaction_set.segments.append(se)
    transaction_set.trailer = se
    declared = se.element(1)
    actual = len(transaction_set.segments)
    if declared != str(actual):
        transaction_set.errors.append(
            EdiError(
                "se.segment_count",
                f"SE01 says {declared or 'nothing'} segments, transaction set {transaction_set.control_number} has {actual} (ST to SE inclusive)",
                transaction_set.position(se, 1),
                set_code="4",
                value=declared,
            )
        )
    if se.element(2) != transaction_set.control_number:
        transaction_set.errors.append(
            EdiError(
                "se.control_number",
                f"SE02 control number {se.element(2)!r} does not match ST02 {transaction_set.control_number!r}",
                transaction_set.position(se, 2),
                set_code="3",
                value=se.element(2),
            )
        )


def _close_interchange(interchange: Interchange, iea: Segment) -> None:
    interchange.trailer = iea
    index = interchange.index
    declared = iea.element(1)
    if declared != str(len(interchange.groups)):
        interchange.errors.append(
            EdiError(
                "iea.group_count",
                f"IEA01 says {declared or 'nothing'} functional groups, the interchange has {len(interchange.groups)}",
                iea.position(index, element=1),
                interchange_code="021",
                value=declared,
            )
        )
    if iea.element(2).strip() != interchange.control_number:
        interchange.errors.append(
            EdiError(
                "iea.control_number",
                f"IEA02 control number {iea.element(2)!r} does not match ISA13 {interchange.control_number!r}",
                iea.position(index, element=2),
                interchange_code="001",
                value=iea.element(2),
            )
        )
