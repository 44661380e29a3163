"""One call from bytes to documents: read, check envelopes, validate each set, normalize it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from connectors.edi.documents import Document
from connectors.edi.errors import EdiError
from connectors.edi.normalize import normalize
from connectors.edi.reader import Interchange, ReadResult, read
from connectors.edi.validate import validate_set


@dataclass(slots=True)
class ParsedSet:
    """A transaction set's outcome: its document (None when unsupported) and its errors.

    A set with errors is rejected in the 997; its document is still filled as far as it could be
    read, for an operator looking at it in quarantine.
    """

    interchange: int
    functional_id: str
    group_control_number: str
    code: str
    control_number: str
    supported: bool
    document: Document | None
    errors: list[EdiError] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.errors


@dataclass(slots=True)
class ParseResult:
    interchanges: list[Interchange]
    sets: list[ParsedSet]
    errors: list[EdiError]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def documents(self) -> list[Document]:
        return [parsed.document for parsed in self.sets if parsed.document is not None]


_shared: ContextVar[dict[bytes, ParseResult] | None] = ContextVar("edi_parses_shared", default=None)


@contextmanager
def parses_shared() -> Iterator[None]:
    """Within the block, parsing the same data again returns the first result instead of reading
    it again: the inbox acknowledges, checks the parties of and normalizes one interchange, and a
    214 file of a thousand milestones took three parses. Results are not to be changed."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def parse(data: bytes | str) -> ParseResult:
    """Read every interchange in `data`, validate and normalize each set. Never raises on bad input.

    The cyclic garbage collector is paused meanwhile: a file makes hundreds of thousands of small
    acyclic objects, and collections triggered by their allocation cost as much as the parsing.
    """
    shared = _shared.get()
    key = (data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data) if shared is not None else b""
    if shared is not None and key in shared:
        return shared[key]
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = _parse(data)
    finally:
        if collecting:
            gc.enable()
    if shared is not None:
        shared[key] = result
    return result


def _parse(data: bytes | str) -> ParseResult:
    result: ReadResult = read(data)
    parsed_sets: list[ParsedSet] = []
    for interchange in result.interchanges:
        for group in interchange.groups:
            for transaction_set in group.sets:
                spec = validate_set(transaction_set, group)
                document = normalize(transaction_set, interchange.delimiters) if spec is not None else None
                parsed_sets.append(
                    ParsedSet(
                        interchange=interchange.index,
                        functional_id=group.functional_id,
                        group_control_number=group.control_number,
                        code=transaction_set.code,
                        control_number=transaction_set.control_number,
                        supported=spec is not None,
                        document=document,
                        errors=transaction_set.errors,
                    )
                )
    return ParseResult(result.interchanges, parsed_sets, result.all_errors())
