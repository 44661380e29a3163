"""Every problem found in an X12 file, with where it is and the codes an acknowledgement needs.

One type for envelope, segment and element problems, so a caller (inbox, quarantine, the CLI, the
997 builder) lists them the same way and never has to parse a message to find the position.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Position:
    """Where a problem is: 1-based indexes, and the offset of the segment's first character (in the
    text `reader.decoded` made of the file: the byte offset for an ASCII or Latin-1 file)."""

    interchange: int
    segment: int
    offset: int
    segment_id: str = ""
    set_segment: int | None = None
    element: int | None = None
    component: int | None = None

    def describe(self) -> str:
        if not self.segment:
            return f"byte {self.offset}"
        where = f"interchange {self.interchange}, segment {self.segment}"
        if self.segment_id:
            where += f" ({self.segment_id})"
        if self.set_segment is not None:
            where += f", segment {self.set_segment} of its transaction set"
        if self.element is not None:
            where += f", element {self.element:02d}"
            if self.component is not None:
                where += f"-{self.component}"
        return f"{where}, byte {self.offset}"


@dataclass(frozen=True, slots=True)
class EdiError:
    """A problem, its stable `code` for machines, a `message` for people, and its X12 codes.

    `segment_code` is AK304/IK304, `element_code` AK403/IK403, `set_code` AK502/IK502,
    `group_code` AK905 and `interchange_code` the TA105 note code; each is set only where the
    problem belongs at that level. `value` is the offending data (AK404), when there is one.
    """

    code: str
    message: str
    position: Position
    segment_code: str | None = None
    element_code: str | None = None
    set_code: str | None = None
    group_code: str | None = None
    interchange_code: str | None = None
    value: str | None = None

    def describe(self) -> str:
        return f"{self.position.describe()}: {self.message}"


class EdiFormatError(ValueError):
    """Raised by entry points that need a clean input (the writer's own round-trip check)."""

    def __init__(self, errors: list[EdiError]) -> None:
        self.errors = errors
        super().__init__("; ".join(error.describe() for error in errors[:5]))
