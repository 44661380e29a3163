"""Freight claims as the `freight-claims` template runs them: a claim opened from a POD's damage
or shortage notes or from a customer's report, its document checklist, the Carmack clock
(acknowledge within 30 days of filing, decide within 120 – `Claim.acknowledge_due_at` and
`decide_due_at`, set by `claim_file`) and the carrier's answers.

The run checks the clock once a day and whenever the carrier answers (`claim_clock`): a reminder
on the first check inside the reminder window, and an escalation the first time a deadline has
passed – an `other` exception on the shipment for a late acknowledgement, raised one level when
the decision is late too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from governance.services import audit_record
from logistics.models import (
    OPEN_EXCEPTION,
    Claim,
    ClaimKind,
    ClaimStatus,
    Document,
    DocumentKind,
    ExceptionCase,
    ExceptionType,
    Severity,
    Shipment,
)
from logistics.selectors import shipment_find
from logistics.services import (
    ClaimRefused,
    LogisticsRefused,
    claim_file,
    claim_status_set,
    exception_escalate,
    exception_open,
)

# What a carrier needs to consider a claim, by kind (shown as the claim's checklist).
CHECKLIST: dict[str, tuple[str, ...]] = {
    ClaimKind.DAMAGE: ("pod", "photos", "invoice", "bol"),
    ClaimKind.SHORTAGE: ("pod", "invoice", "bol"),
    ClaimKind.LOSS: ("bol", "invoice"),
}
CHECKLIST_OTHER = ("pod", "invoice", "bol")
DAMAGE_WORDS = ("damage", "damaged", "crushed", "broken", "wet", "torn", "dented", "punctured")
SHORTAGE_WORDS = ("short", "shortage", "missing")
FINAL = (ClaimStatus.DECIDED, ClaimStatus.PAID, ClaimStatus.DENIED)


def _amount(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number > 0 else None


def _count(value: Any) -> int | None:
    text = str(value if value is not None else "").strip()
    return int(text) if text.isdigit() else None


def _moment(value: Any) -> datetime | None:
    parsed = parse_datetime(value.strip()) if isinstance(value, str) and value.strip() else None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def damage_from_notes(notes: list[str], *, pieces: int | None = None, pieces_expected: int | None = None) -> tuple[str, str]:
    """(kind, what) from a POD's exception notes or piece count: damage, shortage, or ("", "")."""
    text = " ".join(notes).lower()
    if any(word in text for word in DAMAGE_WORDS):
        return ClaimKind.DAMAGE, "; ".join(notes)
    if any(word in text for word in SHORTAGE_WORDS):
        return ClaimKind.SHORTAGE, "; ".join(notes)
    if pieces is not None and pieces_expected is not None and pieces < pieces_expected:
        return ClaimKind.SHORTAGE, f"{pieces} of {pieces_expected} pieces delivered"
    return "", ""


def claim_checklist(shipment: Shipment, kind: str) -> dict[str, bool]:
    """Which of the claim's papers are on file: photos are images kept with the shipment."""
    documents = list(Document.objects.filter(shipment=shipment).values_list("kind", "content_type"))
    kinds = {kind for kind, _type in documents}
    photos = any(content_type.startswith("image/") for _kind, content_type in documents)
    present = {"pod": DocumentKind.POD in kinds, "bol": DocumentKind.BOL in kinds, "invoice": DocumentKind.INVOICE in kinds}
    present["photos"] = photos
    return {name: present[name] for name in CHECKLIST.get(kind, CHECKLIST_OTHER)}


@dataclass(frozen=True)
class ClaimOpened:
    """What `claim_open` did: `opened` a claim, or why not (`needs_amount`: a person must say how much)."""

    opened: bool
    reason: str
    shipment: str = ""
    claim: str = ""
    claim_id: int | None = None
    kind: str = ""
    checklist: dict[str, bool] | None = None
    missing: list[str] | None = None
    filed_at: str = ""
    acknowledge_due_at: str = ""
    decide_due_at: str = ""
    needs_amount: bool = False
    exception_id: int | None = None

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def claim_checklist_update(*, claim: Claim, actor: Any) -> dict[str, bool]:
    """Mark the claim's papers on file again (photos are images kept with the shipment), keeping
    the other items `claim_file` listed."""
    checklist = claim_checklist(claim.shipment, claim.kind)
    merged = {**claim.checklist, **checklist}
    if merged != claim.checklist:
        with transaction.atomic():
            locked = Claim.objects.select_for_update().get(pk=claim.pk)
            before, locked.checklist = locked.checklist, {**locked.checklist, **checklist}
            locked.save(update_fields=["checklist"])
            audit_record(actor=actor, action="claim.checklist_updated", target=locked, data={"from": before, "to": locked.checklist})
        claim.checklist = merged
    return checklist


def _opened(claim: Claim, reason: str, actor: Any) -> ClaimOpened:
    checklist = claim_checklist_update(claim=claim, actor=actor)
    return ClaimOpened(
        True,
        reason,
        claim.shipment.reference,
        claim.number,
        claim.pk,
        claim.kind,
        checklist,
        [name for name, present in checklist.items() if not present],
        claim.filed_at.isoformat(),
        claim.acknowledge_due_at.isoformat(),
        claim.decide_due_at.isoformat(),
    )


def claim_open(*, report: dict[str, Any], actor: Any) -> ClaimOpened:
    """Open a claim from a `document.received` POD (its exception notes) or a `claim.reported`
    customer report (`shipment`, `kind`, `amount`, `description`, optionally `filed_at`). One
    claim per shipment and kind: a second report of the same finds the first."""
    if report.get("document_id") not in (None, ""):
        pod = Document.objects.select_related("shipment").filter(pk=report["document_id"], kind=DocumentKind.POD).first()
        if pod is None or pod.shipment is None:
            raise LogisticsRefused(f"there is no proof of delivery with id {report['document_id']} for a shipment", "document_id")
        shipment = pod.shipment
        fields = pod.extracted_fields or {}
        raw_notes = fields.get("exceptions")
        notes = [str(note) for note in (raw_notes if isinstance(raw_notes, list) else [raw_notes]) if note not in (None, "")]
        kind, what = damage_from_notes(
            [note for note in notes if note.strip().lower() not in ("none", "clean")],
            pieces=_count(fields.get("pieces")),
            pieces_expected=_count(fields.get("pieces_expected")),
        )
        if not kind:
            return ClaimOpened(False, f"the POD for {shipment.reference} notes no damage or shortage", shipment.reference)
        amount = _amount(fields.get("claim_amount"))
        description = f"Noted on the POD: {what}"
        filed_at = None
    else:
        reference = str(report.get("shipment") or "").strip()
        found = shipment_find(reference) if reference else None
        if found is None:
            raise ClaimRefused(f"the report names shipment {reference!r}, which Baton does not know", "shipment")
        shipment = found
        kind = str(report.get("kind") or "")
        if kind not in ClaimKind.values:
            raise ClaimRefused(f"{kind!r} is not a kind of claim: use one of {', '.join(ClaimKind.values)}", "kind")
        amount = _amount(report.get("amount"))
        description = str(report.get("description") or "Reported by the customer")
        filed_at = _moment(report.get("filed_at"))
    existing = Claim.objects.filter(shipment=shipment, kind=kind).order_by("filed_at").first()
    if existing is not None:  # the run that filed it follows it
        return replace(_opened(existing, f"claim {existing.number} for this {kind} is already filed", actor), opened=False)
    if amount is None:
        exception = exception_open(
            type=ExceptionType.DAMAGE if kind == ClaimKind.DAMAGE else ExceptionType.SHORTAGE,
            reason=f"{description}. File the claim against {shipment.carrier_scac or 'the carrier'}: say the amount claimed.",
            severity=Severity.HIGH,
            shipment=shipment,
            details={"claim_kind": kind, "what": description},
            actor=actor,
        ).exception
        return ClaimOpened(
            False,
            "the claim needs the amount: a person files it",
            shipment.reference,
            kind=kind,
            needs_amount=True,
            exception_id=exception.pk,
        )
    claim = claim_file(shipment=shipment, kind=kind, amount_claimed=amount, description=description, filed_at=filed_at, actor=actor)
    return _opened(
        claim, f"{claim.get_kind_display().lower()} claim {claim.number} filed with {claim.carrier_scac or 'the carrier'}", actor
    )


def _overdue_case(claim: Claim) -> ExceptionCase | None:
    return (
        ExceptionCase.objects.filter(OPEN_EXCEPTION, shipment=claim.shipment, type=ExceptionType.OTHER, details__claim=claim.number)
        .order_by("-opened_at")
        .first()
    )


@dataclass(frozen=True)
class ClaimClock:
    """Where the claim's Carmack clock stands now: `stage` is acknowledge, decide or closed;
    `remind` / `escalate` are true on the one check that should say so."""

    claim: str
    status: str
    stage: str
    due_at: str
    overdue: bool
    remind: bool
    escalate: bool
    reason: str
    exception_id: int | None = None

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def claim_clock(*, claim: Claim, actor: Any, now: datetime | None = None, remind_before: timedelta = timedelta(days=5)) -> ClaimClock:
    """Check the claim against its deadlines (see the module); escalates at most once per stage."""
    now = now or timezone.now()
    claim.refresh_from_db()
    if claim.status in FINAL:
        return ClaimClock(
            claim.number, claim.status, "closed", "", False, False, False, f"the carrier {claim.get_status_display().lower()}"
        )
    stage, due = ("acknowledge", claim.acknowledge_due_at) if claim.status == ClaimStatus.FILED else ("decide", claim.decide_due_at)
    if stage == "acknowledge" and now > claim.decide_due_at:
        stage, due = "decide", claim.decide_due_at  # never acknowledged, and the decision is late too
    left = due - now
    remind = timedelta(0) < left <= remind_before and left > remind_before - timedelta(days=1)
    case = _overdue_case(claim)
    escalate = False
    what = "acknowledge" if stage == "acknowledge" else "decide on"
    if left < timedelta(0):
        late_by = -left
        reason = f"{claim.carrier_scac or 'The carrier'} did not {what} claim {claim.number} by {due:%Y-%m-%d} (Carmack: {'30' if stage == 'acknowledge' else '120'} days); late by {late_by.days} days"
        if case is None:
            opened = exception_open(
                type=ExceptionType.OTHER,
                reason=reason,
                severity=Severity.HIGH,
                shipment=claim.shipment,
                details={"claim": claim.number, "stage": stage, "due_at": due.isoformat()},
                actor=actor,
            )
            case, escalate = opened.exception, opened.created  # an unrelated open case of the shipment is not ours to escalate
        elif stage == "decide" and case.escalation_level == 0 and case.details.get("stage") != "decide":
            case = exception_escalate(exception=case, reason=reason, actor=actor)
            escalate = True
        return ClaimClock(claim.number, claim.status, stage, due.isoformat(), True, False, escalate, reason, case.pk)
    reason = f"claim {claim.number}: the carrier must {what} it by {due:%Y-%m-%d} ({left.days} days left)"
    return ClaimClock(claim.number, claim.status, stage, due.isoformat(), False, remind, False, reason, case.pk if case else None)


def claim_answer(*, claim: Claim, answer: dict[str, Any], actor: Any) -> Claim:
    """Apply the carrier's answer from a `claim.updated` event: `status` acknowledged, decided
    (with `amount_settled`), paid or denied (with its `note`), `at` when it said so."""
    status = str(answer.get("status") or "")
    if status not in (ClaimStatus.ACKNOWLEDGED, *FINAL):
        raise ClaimRefused(f"{status!r} is not a carrier's answer to a claim: use acknowledged, decided, paid or denied", "status")
    claim.refresh_from_db()
    if claim.status == status:
        return claim  # the carrier said it twice
    return claim_status_set(
        claim=claim,
        status=status,
        at=_moment(answer.get("at")),
        amount_settled=answer.get("amount_settled"),
        note=str(answer.get("note") or ""),
        actor=actor,
    )
