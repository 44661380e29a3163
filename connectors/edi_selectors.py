"""Reads for the EDI pages: a partner connection by key, what became of uploaded files (each
event's status, its problems with their positions, the 997 and where it goes), the recent uploads."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from connectors.edi import parse
from connectors.edi_transport import FILE_HEADER_PART
from connectors.models import Connection, EdiAcknowledgement, EdiPartner, InboundEvent, InboundStatus
from connectors.selectors import connection_by_key

ERRORS_SHOWN = 100
RESULTS_SHOWN = 20  # events of one uploaded file shown at once
RECENT_UPLOADS = 10


@dataclass(frozen=True)
class ErrorRow:
    where: str
    code: str
    message: str


@dataclass(frozen=True)
class UploadResult:
    """What became of one stored event of an upload: its status, the reader's problems (the first
    `ERRORS_SHOWN`), how many Baton events it became, and the 997 queued for the partner if any."""

    event: InboundEvent
    waiting: bool
    errors: list[ErrorRow]
    errors_total: int
    milestones: int
    outbox: EdiAcknowledgement | None
    part: str  # where in a file of several parts it was, in words; "" for a file of one
    outside: bool  # text that was outside any interchange of its file


def _outside(event: InboundEvent, has_interchange: bool) -> bool:
    """Text stored apart because it sat outside the interchanges of a file (its reason says so: the
    reader's "no ISA" adds nothing)."""
    return not has_interchange and FILE_HEADER_PART in (event.headers or {})


def _part_words(event: InboundEvent) -> str:
    headers = event.headers or {}
    if FILE_HEADER_PART not in headers:
        return ""
    words = f"part {headers[FILE_HEADER_PART]}"
    if headers.get("X-Baton-File"):
        words += f" of {headers['X-Baton-File']}"
    if headers.get("X-Baton-File-Bytes"):
        words += f", bytes {headers['X-Baton-File-Bytes']}"
    return words


def edi_partner_by_key(*, key: str) -> tuple[Connection, EdiPartner] | None:
    """The connection keyed `key` and its EDI partner settings; None unless it has both."""
    connection = connection_by_key(key=key)
    partner = EdiPartner.objects.filter(connection=connection).first() if connection is not None else None
    if connection is None or partner is None:
        return None
    return connection, partner


def edi_upload_results(*, connection: Connection, event_ids: list[str]) -> list[UploadResult]:
    """The connection's events among `event_ids` (as typed in the address; others are ignored), in
    the order given, at most `RESULTS_SHOWN`."""
    wanted = list(dict.fromkeys(int(value) for value in event_ids if value.isdigit() and len(value) <= 18))[:RESULTS_SHOWN]
    events = InboundEvent.objects.filter(connection=connection, pk__in=wanted).in_bulk()
    outboxes = {item.event_id: item for item in EdiAcknowledgement.objects.filter(event_id__in=list(events))}
    results = []
    for pk in wanted:
        event = events.get(pk)
        if event is None:
            continue
        parsed = parse(event.body)
        errors = [] if (outside := _outside(event, bool(parsed.interchanges))) else parsed.errors
        results.append(
            UploadResult(
                event=event,
                waiting=event.status == InboundStatus.RECEIVED,
                errors=[ErrorRow(error.position.describe(), error.code, error.message) for error in errors[:ERRORS_SHOWN]],
                errors_total=len(errors),
                milestones=len(event.canonical),
                outbox=outboxes.get(pk),
                part=_part_words(event),
                outside=outside,
            )
        )
    return results


def edi_uploads_recent(*, connection: Connection, limit: int = RECENT_UPLOADS) -> QuerySet[InboundEvent]:
    """The connection's latest uploaded events, newest first."""
    return InboundEvent.objects.filter(connection=connection, channel="upload").order_by("-pk")[:limit]
