"""Check a transaction set against its specification: segment order, use counts, loops, elements.

Errors carry the codes a 997 reports (AK304 for segments, AK403 for elements, AK502 for the set),
so the acknowledgement is built from them without re-reading the set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from connectors.edi.errors import EdiError, Position
from connectors.edi.reader import FunctionalGroup, Segment, TransactionSet
from connectors.edi.specs import SEGMENTS, SPECS, ElementRule, LoopUse, Node, SegmentDefinition, SegmentUse, TransactionSpec

SEGMENT_MESSAGES = {
    "1": "Unrecognized segment ID",
    "2": "Unexpected segment",
    "3": "Mandatory segment missing",
    "4": "Loop occurs over maximum times",
    "5": "Segment exceeds maximum use",
    "6": "Segment not in defined transaction set",
    "7": "Segment not in proper sequence",
    "8": "Segment has data element errors",
}
ELEMENT_MESSAGES = {
    "1": "Mandatory data element missing",
    "3": "Too many data elements",
    "4": "Data element too short",
    "5": "Data element too long",
    "6": "Invalid character in data element",
    "7": "Invalid code value",
    "8": "Invalid date",
    "9": "Invalid time",
}
_TEXT = frozenset({"AN", "ID"})
_SEGMENT_CODES = {"1": "unrecognized", "2": "unexpected", "4": "loop_repeat", "5": "max_use", "6": "not_in_set", "7": "sequence"}
_ELEMENT_CODES = {
    "1": "missing",
    "3": "too_many",
    "4": "too_short",
    "5": "too_long",
    "6": "invalid_character",
    "7": "invalid_code",
    "8": "invalid_date",
    "9": "invalid_time",
}


# Where each segment id may go in a level (node positions, by id() of the level's node tuple;
# specs are module constants), so placing a segment is a dict lookup per level.
_WHERE: dict[int, dict[str, tuple[int, ...]]] = {}


def _where(nodes: tuple[Node, ...]) -> dict[str, tuple[int, ...]]:
    where = _WHERE.get(id(nodes))
    if where is None:
        found: dict[str, list[int]] = {}
        for position, node in enumerate(nodes):
            found.setdefault(node.id if isinstance(node, SegmentUse) else node.trigger, []).append(position)
        where = _WHERE[id(nodes)] = {segment_id: tuple(positions) for segment_id, positions in found.items()}
    return where


class _Frame:
    """Where the walk is in one level of the structure (the set's body or one loop repetition)."""

    __slots__ = ("nodes", "where", "index", "counts", "loop")

    def __init__(self, nodes: tuple[Node, ...], loop: LoopUse | None) -> None:
        self.nodes = nodes
        self.where = _where(nodes)
        self.loop = loop
        self.index = 0
        self.counts = [0] * len(nodes)
        if loop is not None:
            self.counts[0] = 1


def validate_set(transaction_set: TransactionSet, group: FunctionalGroup) -> TransactionSpec | None:
    """Append the set's syntax errors to `transaction_set.errors`; returns its spec when supported."""
    spec = SPECS.get(transaction_set.code)
    st = transaction_set.header
    if spec is None:
        transaction_set.errors.append(
            EdiError(
                "set.unsupported",
                f"Transaction set {transaction_set.code or '(none)'} is not supported (supported: {', '.join(sorted(SPECS))})",
                transaction_set.position(st, 1),
                set_code="1",
                value=transaction_set.code,
            )
        )
        return None
    if group.functional_id != spec.functional_id:
        transaction_set.errors.append(
            EdiError(
                "set.wrong_group",
                f"Transaction set {spec.code} belongs in a {spec.functional_id} group, not in GS01 {group.functional_id!r}",
                transaction_set.position(st, 1),
                set_code="6",
                value=group.functional_id,
            )
        )
    _walk(transaction_set, spec)
    return spec


def _walk(transaction_set: TransactionSet, spec: TransactionSpec) -> None:
    errors = transaction_set.errors
    checks = _CHECKS_OF[spec.code]
    stack = [_Frame(spec.body, None)]
    body = transaction_set.segments[1:-1] if transaction_set.trailer is not None else transaction_set.segments[1:]
    for segment in body:
        segment_id = segment.id
        valid = checks.get(segment_id)
        if valid is None:
            code = "6" if segment_id in SEGMENTS or _looks_like_id(segment_id) else "1"
            errors.append(
                _segment_error(transaction_set, segment, code, f"{SEGMENT_MESSAGES[code]}: {segment_id} is not part of {spec.code}")
            )
            continue
        placed = _place(stack, segment, transaction_set)
        if not placed:
            errors.append(_segment_error(transaction_set, segment, "7", f"{SEGMENT_MESSAGES['7']}: {segment_id} cannot appear here"))
            continue
        if not valid(segment.elements):
            _check_elements(transaction_set, segment, SEGMENTS[segment_id])
    end = transaction_set.trailer or transaction_set.segments[-1]
    for frame in reversed(stack):
        _report_missing(transaction_set, frame, frame.index, len(frame.nodes), end)


def _looks_like_id(segment_id: str) -> bool:
    return 2 <= len(segment_id) <= 3 and segment_id.isascii() and segment_id.isalnum() and segment_id.isupper() and segment_id[0].isalpha()


def _place(stack: list[_Frame], segment: Segment, transaction_set: TransactionSet) -> bool:
    """Find where `segment` goes, searching the innermost loop first, then the levels around it."""
    segment_id = segment.id
    for depth in range(len(stack) - 1, -1, -1):
        frame = stack[depth]
        positions = frame.where.get(segment_id)
        if positions is None:
            continue
        start = frame.index if frame.index or frame.loop is None else 1
        for j in positions:
            if j >= start:
                break
        else:
            continue
        node = frame.nodes[j]
        for inner in stack[depth + 1 :]:
            _report_missing(transaction_set, inner, inner.index, len(inner.nodes), segment)
        del stack[depth + 1 :]
        if j > frame.index:
            _report_missing(transaction_set, frame, frame.index, j, segment)
        frame.index = j
        frame.counts[j] += 1
        if isinstance(node, SegmentUse):
            if frame.counts[j] > node.max_use:
                transaction_set.errors.append(
                    _segment_error(
                        transaction_set, segment, "5", f"{SEGMENT_MESSAGES['5']}: {segment_id} may appear {node.max_use} time(s) here"
                    )
                )
        else:
            if frame.counts[j] > node.max_repeat:
                transaction_set.errors.append(
                    _segment_error(
                        transaction_set,
                        segment,
                        "4",
                        f"{SEGMENT_MESSAGES['4']}: loop {node.id} ({segment_id}) may repeat {node.max_repeat} time(s)",
                    )
                )
            stack.append(_Frame(node.children, node))
        return True
    return False


def _report_missing(transaction_set: TransactionSet, frame: _Frame, start: int, stop: int, at: Segment) -> None:
    for j in range(start, stop):
        node = frame.nodes[j]
        if node.required and not frame.counts[j]:
            missing = node.id if isinstance(node, SegmentUse) else node.trigger
            where = f" in loop {frame.loop.id}" if frame.loop is not None else ""
            transaction_set.errors.append(
                EdiError(
                    "segment.missing",
                    f"{SEGMENT_MESSAGES['3']}: {missing}{where} expected before {at.id}",
                    _position_for(transaction_set, at, missing),
                    segment_code="3",
                )
            )


def _position_for(transaction_set: TransactionSet, at: Segment, segment_id: str) -> Position:
    """The position of `at`, naming the segment that should have been there (AK301 names the missing one)."""
    return dataclasses.replace(transaction_set.position(at), segment_id=segment_id)


def _segment_error(transaction_set: TransactionSet, segment: Segment, code: str, message: str) -> EdiError:
    return EdiError(f"segment.{_SEGMENT_CODES[code]}", message, transaction_set.position(segment), segment_code=code)


def _check_elements(transaction_set: TransactionSet, segment: Segment, definition: SegmentDefinition) -> None:
    rules = definition.elements
    values = segment.elements
    count = len(values) - 1
    if count > len(rules):
        extra = len(rules) + 1
        _element_error(
            transaction_set, segment, extra, "3", f"{segment.id} has {count} elements, at most {len(rules)} allowed", values[extra]
        )
    position = 0
    for value, rule in zip(values[1:], rules, strict=False):
        position += 1
        if not value:
            if rule.required:
                _element_error(transaction_set, segment, position, "1", f"{segment.id}{position:02d} is mandatory and missing", None)
            continue
        # Fast path for the common case: a text or code value of the right length.
        if (
            rule.type in _TEXT
            and rule.min <= len(value) <= rule.max
            and (rule.codes is None or value in rule.codes)
            and value.isprintable()
        ):
            continue
        problem = _check_value(value, rule)
        if problem is not None:
            code, detail = problem
            _element_error(transaction_set, segment, position, code, f"{segment.id}{position:02d} {detail}", value)
    for missing in range(count + 1, len(rules) + 1):
        if rules[missing - 1].required:
            _element_error(transaction_set, segment, missing, "1", f"{segment.id}{missing:02d} is mandatory and missing", None)


def _element_error(transaction_set: TransactionSet, segment: Segment, element: int, code: str, message: str, value: str | None) -> None:
    transaction_set.errors.append(
        EdiError(f"element.{_ELEMENT_CODES[code]}", message, transaction_set.position(segment, element), element_code=code, value=value)
    )


def _check_value(value: str, rule: ElementRule) -> tuple[str, str] | None:
    """The AK403 code and a description when `value` breaks `rule`, else None."""
    kind = rule.type
    if kind == "C":
        return None
    if kind == "AN" or kind == "ID":
        size = len(value)
        if not value.isprintable():
            return "6", _unprintable(value)
    elif kind == "DT":
        if not (value.isascii() and value.isdigit()) or len(value) not in (6, 8):
            return "8", f"{value!r} is not a date (CCYYMMDD)"
        if not _valid_date(value):
            return "8", f"{value!r} is not a valid calendar date"
        size = len(value)
    elif kind == "TM":
        if not (value.isascii() and value.isdigit()) or len(value) not in (4, 6, 7, 8) or not _valid_time(value):
            return "9", f"{value!r} is not a valid time (HHMM[SS[d..]])"
        size = len(value)
    else:
        digits = value[1:] if value[0] == "-" else value
        if kind == "R" and "." in digits:
            whole, _, fraction = digits.partition(".")
            digits = whole + fraction
        if not (digits.isascii() and digits.isdigit()):
            return "6", f"{value!r} is not a {'decimal' if kind == 'R' else 'numeric'} value"
        size = len(digits)
    if size < rule.min:
        return "4", f"{value!r} is shorter than {rule.min}"
    if size > rule.max:
        return "5", f"{value!r} is longer than {rule.max}"
    if rule.codes is not None and value not in rule.codes:
        return "7", f"{value!r} is not a valid code here"
    return None


_KINDS = {"Cc": "a control character", "Cf": "an invisible format character", "Zs": "a space other than the plain space"}


def _unprintable(value: str) -> str:
    """Text elements take graphic characters and the plain space: X12.6's basic and extended sets,
    including the "select language" characters (Ü, é, ß) partners send by agreement. What else a
    value holds is named, with where, for the operator reading the quarantine."""
    at, char = next((at, char) for at, char in enumerate(value, 1) if not char.isprintable())
    kind = _KINDS.get(unicodedata.category(char), "a character X12 text may not hold")
    return f"contains {kind} (U+{ord(char):04X}) at character {at}: {value!r}"


@lru_cache(maxsize=4096)
def _valid_date(value: str) -> bool:
    try:
        if len(value) == 8:
            dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        else:
            dt.date(2000 + int(value[:2]), int(value[2:4]), int(value[4:]))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _valid_time(value: str) -> bool:
    return int(value[:2]) < 24 and int(value[2:4]) < 60 and (len(value) < 6 or int(value[4:6]) < 60)


def _real_ok(value: str, shortest: int, longest: int) -> bool:
    digits = value[1:] if value[0] == "-" else value
    if "." in digits:
        whole, _, fraction = digits.partition(".")
        digits = whole + fraction
    return digits.isascii() and digits.isdigit() and shortest <= len(digits) <= longest


def _date_ok(value: str) -> bool:
    return value.isascii() and value.isdigit() and _valid_date(value)


def _time_ok(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) in (4, 6, 7, 8) and _valid_time(value)


def _compile(definition: SegmentDefinition) -> Callable[[list[str]], bool]:
    """A function saying whether a segment's elements are all valid, generated from its rules.

    Generated code has no loop and no rule lookups, which makes checking a valid segment (nearly
    all of them) several times cheaper; when it says no, `_check_elements` finds out why.
    """
    rules = definition.elements
    namespace: dict[str, object] = {"_real_ok": _real_ok, "_date_ok": _date_ok, "_time_ok": _time_ok}
    lines = ["def valid(v):", "    n = len(v)", f"    if n > {len(rules) + 1}: return False"]
    for i, rule in enumerate(rules, 1):
        lo, hi = rule.min, rule.max
        if rule.type == "C":
            test = None
        elif rule.type in _TEXT:
            test = f"not ({lo} <= len(x) <= {hi} and x.isprintable())"
            if rule.codes is not None:
                namespace[f"codes{i}"] = rule.codes
                test = f"x not in codes{i} or not x.isprintable()"
        elif rule.type == "DT":
            test = f"not ({lo} <= len(x) <= {hi} and _date_ok(x))"
        elif rule.type == "TM":
            test = f"not ({lo} <= len(x) <= {hi} and _time_ok(x))"
        elif rule.type == "R":
            test = f"not _real_ok(x, {lo}, {hi})"
        else:
            test = f"not ({lo} <= len(x) <= {hi} and x.isdigit() and x.isascii())"
        lines.append(f"    x = v[{i}] if n > {i} else ''")
        if rule.required:
            lines.append("    if not x: return False")
            if test:
                lines.append(f"    if {test}: return False")
        elif test:
            lines.append(f"    if x and ({test}): return False")
    lines.append("    return True")
    exec("\n".join(lines), namespace)  # noqa: S102 - source built above from the specs, not from input
    return namespace["valid"]  # type: ignore[return-value]


_VALID: dict[str, Callable[[list[str]], bool]] = {segment_id: _compile(definition) for segment_id, definition in SEGMENTS.items()}
# Per set: the element check of each segment the set may contain (ST and SE are the reader's).
_CHECKS_OF: dict[str, dict[str, Callable[[list[str]], bool]]] = {
    code: {segment_id: _VALID[segment_id] for segment_id in spec.segment_ids() - {"ST", "SE"}} for code, spec in SPECS.items()
}
