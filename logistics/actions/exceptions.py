"""Baton actions for carrier exceptions (template `carrier-exception-management`): open the
exception a detected delay calls for, propose recovery options, draft the customer's update,
record the option a person chose, escalate, and close with the root cause.

Each takes the step's resolved input and acts through `logistics.services` (`exception_open`,
`_assign`, `_escalate`, `_close`); the recovery options and the customer's draft are kept in the
exception's `details`, where people and the portal read them. The actor is the run
(`system:workflow-run:<id>`). Input the action cannot take raises ActionRefused with what and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import TENANT_STAFF_ROLES, User
from accounts.selectors import users_of_customer_account
from governance.services import Actor, audit_record
from logistics.models import ExceptionCase, ExceptionStatus, ExceptionType, RootCause, Severity, Shipment
from logistics.services import LogisticsRefused, exception_assign, exception_close, exception_escalate, exception_open
from logistics.vocabulary import TrackingStatus, rank
from workflows.actions import ActionRefused

TIER_WEIGHT = {"standard": 0, "priority": 1, "critical": 2}
SEVERITY_BY_SCORE = ((6, Severity.CRITICAL), (4, Severity.HIGH), (2, Severity.MEDIUM), (0, Severity.LOW))
URGENT = (Severity.HIGH, Severity.CRITICAL)
RECOVERY_OPTIONS = ("re-tender", "expedite", "reschedule")
# What a person may write for an option (the first one named in the comment counts).
OPTION_WORDS = re.compile(r"\b(re-?tender|expedite|reschedule)\b", re.IGNORECASE)
# A root cause opening the comment: "weather", "Root cause: carrier – driver ran out of hours"…
# Written without backslashes so the template's CEL decision can use the same pattern (RE2).
ROOT_CAUSE_WORDS = "|".join(value.replace("_", "[ _-]?") for value in RootCause.values)
ROOT_CAUSE_PATTERN = f"(?i)^[^a-zA-Z]*(root[ _-]?cause[^a-zA-Z]*)?({ROOT_CAUSE_WORDS})([^a-zA-Z]|$)"
ROOT_CAUSE = re.compile(ROOT_CAUSE_PATTERN)


def _actor(idempotency_key: str) -> Actor:
    return Actor.system(f"workflow-run:{idempotency_key.split(':', 1)[0]}")


def _exception(payload: dict[str, Any], name: str = "exception_id") -> ExceptionCase:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ActionRefused(f"{name} must be the id of an exception, not {value!r}")
    exception = ExceptionCase.objects.select_related("shipment", "customer_account").filter(pk=value).first()
    if exception is None:
        raise ActionRefused(f"There is no exception {value} in this workspace.")
    return exception


def _number(payload: dict[str, Any], name: str, default: Decimal) -> Decimal:
    value = payload.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ActionRefused(f"{name} must be a number, not {value!r}")
    try:
        return Decimal(str(value))
    except ArithmeticError as error:
        raise ActionRefused(f"{name} must be a number, not {value!r}") from error


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _details_merge(exception: ExceptionCase, changes: dict[str, Any], *, actor: Actor, action: str, data: dict[str, Any]) -> ExceptionCase:
    """Add to what the exception holds for people (recovery, customer update), audited."""
    with transaction.atomic():
        locked = ExceptionCase.objects.select_for_update().get(pk=exception.pk)
        locked.details = {**locked.details, **changes}
        locked.save(update_fields=["details"])
        audit_record(actor=actor, action=action, target=locked, data=data)
    return locked


# --- open ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Priority:
    severity: str
    score: int
    factors: list[str]


def priority_of(*, delay: dict[str, Any], shipment: Shipment, tier: str, high_value_rate: Decimal, now: datetime) -> Priority:
    """An exception's priority from its SLA risk (how late, how soon the promise falls due), the
    customer's tier and the margin at stake (a high-value load; a margin already spent)."""
    factors: list[str] = []
    late = delay.get("late_by_minutes")
    if isinstance(late, int) and not isinstance(late, bool):
        risk = 3 if late >= 24 * 60 else 2 if late >= 4 * 60 else 1
        factors.append(f"late by {late // 60} h {late % 60:02d} min (+{risk})")
    else:
        risk = 2 if delay.get("cause") in ("delivery_failed", "pickup_missed") else 1
        factors.append(f"{str(delay.get('cause') or 'delay').replace('_', ' ')} (+{risk})")
    score = risk
    promised_at = _moment(delay.get("promised_at"))
    if promised_at is not None and promised_at <= now + timedelta(hours=24):
        score += 1
        factors.append("the promise falls due within 24 h (+1)")
    weight = TIER_WEIGHT.get(tier, 0)
    if weight:
        score += weight
        factors.append(f"{tier} customer (+{weight})")
    if shipment.planned_rate is not None and shipment.planned_rate >= high_value_rate:
        score += 1
        factors.append(f"high-value load: {shipment.planned_rate} {shipment.currency} (+1)")
    if shipment.planned_rate is not None and shipment.actual_rate is not None and shipment.actual_rate >= shipment.planned_rate:
        score += 1
        factors.append("no margin left: the actual rate is at or above the planned one (+1)")
    severity = next(level for threshold, level in SEVERITY_BY_SCORE if score >= threshold)
    return Priority(severity, score, factors)


def exception_open_action(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Open the exception a `shipment.delay_detected` event calls for (`event`), prioritised;
    a shipment with one of that type open already gets that one (`created` false)."""
    delay = payload.get("event")
    if not isinstance(delay, dict):
        raise ActionRefused("event must be the shipment.delay_detected event's payload")
    kind = delay.get("type")
    if kind not in ExceptionType.values:
        raise ActionRefused(f"event.type {kind!r} is not an exception type: use one of {', '.join(ExceptionType.values)}")
    shipment_id = delay.get("shipment_id")
    shipment = (
        Shipment.objects.select_related("customer_account").filter(pk=shipment_id).first()
        if isinstance(shipment_id, int) and not isinstance(shipment_id, bool)
        else None
    )
    if shipment is None:
        raise ActionRefused(f"There is no shipment {shipment_id!r} in this workspace.")
    now = timezone.now()
    priority = priority_of(
        delay=delay,
        shipment=shipment,
        tier=shipment.customer_account.service_tier,
        high_value_rate=_number(payload, "high_value_rate", Decimal("5000")),
        now=now,
    )
    details = {
        "cause": delay.get("cause"),
        "promise": delay.get("promise"),
        "promised_at": delay.get("promised_at"),
        "estimated_at": delay.get("estimated_at"),
        "late_by_minutes": delay.get("late_by_minutes"),
        "detected_at": delay.get("detected_at"),
        "tracking_event_id": delay.get("tracking_event_id"),
        "priority": {"score": priority.score, "factors": priority.factors},
    }
    try:
        opened = exception_open(
            type=kind,
            reason=str(delay.get("reason") or f"{kind} on {shipment.reference}"),
            severity=priority.severity,
            shipment=shipment,
            details=details,
            actor=_actor(idempotency_key),
        )
    except LogisticsRefused as refused:
        raise ActionRefused(refused.message) from refused
    exception = opened.exception
    if not opened.created:
        causes = exception.details.get("also", [])
        cause = {"cause": delay.get("cause"), "reason": delay.get("reason"), "detected_at": delay.get("detected_at")}
        if cause not in causes:
            exception = _details_merge(
                exception,
                {"also": [*causes, cause]},
                actor=_actor(idempotency_key),
                action="exception.cause_added",
                data={"cause": delay.get("cause")},
            )
    return {
        "exception_id": exception.pk,
        "created": opened.created,
        "type": exception.type,
        "severity": exception.severity,
        "urgent": exception.severity in URGENT,
        "priority_score": exception.details.get("priority", {}).get("score"),
        "sla_due_at": exception.sla_due_at.isoformat() if exception.sla_due_at else None,
        "shipment": shipment.reference,
        "customer_account_id": shipment.customer_account_id,
    }


# --- recovery --------------------------------------------------------------------------------------


def _recovery_options(exception: ExceptionCase, premium_percent: Decimal) -> tuple[list[dict[str, Any]], str]:
    """Options that fit the shipment's state, and the one to recommend: a load not picked up yet
    is re-tendered; one on its way is expedited when the exception is urgent, else rescheduled."""
    shipment = exception.shipment
    assert shipment is not None
    estimated = exception.details.get("estimated_at")
    on_its_way = rank(shipment.status) >= rank(TrackingStatus.PICKED_UP)
    options: list[dict[str, Any]] = []
    if not on_its_way:
        options.append(
            {
                "key": "re-tender",
                "title": "Re-tender to the next carrier",
                "detail": "Offer the load to the next carrier in the routing guide.",
            }
        )
    expedite: dict[str, Any] = {"key": "expedite", "title": "Expedite", "detail": "Team driver or a faster service to win back the time."}
    if shipment.planned_rate is not None:
        cost = (shipment.planned_rate * premium_percent / 100).quantize(Decimal("0.01"))
        expedite["cost_estimate"] = f"{cost} {shipment.currency}"
        expedite["detail"] += f" About {cost} {shipment.currency} more ({premium_percent}% of the planned rate)."
    options.append(expedite)
    options.append(
        {
            "key": "reschedule",
            "title": "Reschedule the delivery appointment",
            "detail": f"Agree a new appointment with the consignee after the estimated arrival ({estimated})."
            if estimated
            else "Agree a new appointment with the consignee.",
        }
    )
    if exception.type == ExceptionType.MISSED_PICKUP or not on_its_way:
        recommended = "re-tender" if not on_its_way else "reschedule"
    elif exception.type == ExceptionType.MISSED_DELIVERY:
        recommended = "reschedule"
    else:
        recommended = "expedite" if exception.severity in URGENT else "reschedule"
    return options, recommended


def recovery_propose_action(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Propose recovery options for a person to choose from; kept on the exception."""
    exception = _exception(payload)
    if exception.shipment is None:
        raise ActionRefused(f"Exception {exception.pk} concerns no shipment: there is nothing to recover.")
    options, recommended = _recovery_options(exception, _number(payload, "expedite_premium_percent", Decimal("35")))
    recovery = {"options": options, "recommended": recommended, "proposed_at": timezone.now().isoformat()}
    _details_merge(
        exception,
        {"recovery": recovery},
        actor=_actor(idempotency_key),
        action="exception.recovery_proposed",
        data={"options": [option["key"] for option in options], "recommended": recommended},
    )
    summary = "; ".join(f"{option['key']}{' (recommended)' if option['key'] == recommended else ''}" for option in options)
    return {"exception_id": exception.pk, "options": options, "recommended": recommended, "summary": summary}


def _staff(email: Any) -> User | None:
    if not isinstance(email, str) or not email:
        return None
    return User.objects.filter(email=email, role__in=TENANT_STAFF_ROLES, is_active=True).first()


def recovery_choose_action(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Record the recovery a person approved – the option their comment names (one not proposed
    is kept and marked so), else the recommended one – and make them the exception's owner; a
    rejection records that none was chosen."""
    exception = _exception(payload)
    if exception.status == ExceptionStatus.CLOSED:
        raise ActionRefused(f"Exception {exception.pk} is closed: its recovery can no longer change.")
    decision, comment = payload.get("decision"), str(payload.get("comment") or "").strip()
    if decision not in ("approved", "rejected", "changes_requested"):
        raise ActionRefused(f"decision must be the approval's decision (approved or rejected), not {decision!r}")
    recovery = dict(exception.details.get("recovery") or {})
    offered = [option["key"] for option in recovery.get("options", [])] or list(RECOVERY_OPTIONS)
    named = OPTION_WORDS.search(comment)
    chosen: str | None = None
    if decision == "approved":
        chosen = named.group(1).lower().replace("retender", "re-tender") if named else recovery.get("recommended")
    actor = _actor(idempotency_key)
    recovery.update(
        {
            "chosen": chosen,
            # A person may know better than the proposal (a re-tender after pickup is a transfer): kept, and marked.
            "off_the_list": chosen is not None and chosen not in offered,
            "decision": decision,
            "decided_by": payload.get("decided_by") or "",
            "comment": comment,
            "chosen_at": timezone.now().isoformat(),
        }
    )
    exception = _details_merge(exception, {"recovery": recovery}, actor=actor, action="exception.recovery_chosen", data={"chosen": chosen})
    owner = _staff(payload.get("decided_by"))
    if owner is not None and exception.owner_id != owner.pk:
        try:
            exception = exception_assign(exception=exception, owner=owner, actor=actor)
        except LogisticsRefused as refused:
            raise ActionRefused(refused.message) from refused
    return {"exception_id": exception.pk, "chosen": chosen, "off_the_list": recovery["off_the_list"], "owner": owner.email if owner else ""}


# --- the customer's update -------------------------------------------------------------------------


def customer_update_draft_action(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Draft the update the customer gets (kept on the exception for a person to edit and send):
    what happened, the new estimate, and what is being done."""
    exception = _exception(payload)
    shipment = exception.shipment
    if shipment is None or exception.customer_account is None:
        raise ActionRefused(f"Exception {exception.pk} concerns no customer's shipment: there is no one to tell.")
    details = exception.details
    estimated = _moment(details.get("estimated_at"))
    recovery = details.get("recovery") or {}
    plan = {
        "re-tender": "we are moving the load to another carrier",
        "expedite": "we are expediting it to win back the time",
        "reschedule": "we will agree a new delivery appointment with the consignee",
    }.get(recovery.get("chosen") or recovery.get("recommended") or "", "we are working with the carrier on it")
    references = ", ".join(f"{label} {value}" for label, value in (("PRO", shipment.pro_number), ("PO", shipment.po_number)) if value)
    lines = [
        f"Your shipment {shipment.reference}{f' ({references})' if references else ''} is running late: {exception.get_type_display().lower()}.",
        f"New estimated delivery: {estimated:%Y-%m-%d %H:%M} UTC."
        if estimated
        else "We will send a new estimated delivery as soon as we have it.",
        f"What we are doing: {plan}.",
    ]
    recipients = list(users_of_customer_account(exception.customer_account.pk).values_list("email", flat=True))
    draft = {
        "subject": f"Update on shipment {shipment.reference}",
        "body": "\n".join(lines),
        "to": recipients,
        "drafted_at": timezone.now().isoformat(),
    }
    _details_merge(
        exception,
        {"customer_update": draft},
        actor=_actor(idempotency_key),
        action="exception.customer_update_drafted",
        data={"to": len(recipients)},
    )
    return {"exception_id": exception.pk, "draft": draft}


# --- escalate and close ------------------------------------------------------------------------------


def exception_escalate_action(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """One level up, with the reason a person gave (a closing that was turned down)."""
    exception = _exception(payload)
    reason = str(payload.get("reason") or "").strip() or "not resolved when the closing was asked for"
    try:
        exception = exception_escalate(exception=exception, reason=reason, actor=_actor(idempotency_key))
    except LogisticsRefused as refused:
        raise ActionRefused(refused.message) from refused
    return {"exception_id": exception.pk, "escalation_level": exception.escalation_level}


def root_cause_read(text: Any) -> str:
    """The root cause a comment opens with ("weather – snow on I-80", "Root cause: carrier"), or ""."""
    found = ROOT_CAUSE.search(str(text or "")) if isinstance(text, str) else None
    if found is None:
        return ""
    word = re.sub(r"[ _-]", "", found.group(2).lower())
    return next(value for value in RootCause.values if value.replace("_", "") == word)


def exception_close_action(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Close the exception with its root cause (`root_cause`: a code, or a comment opening with
    one); refused without one, saying which are accepted."""
    exception = _exception(payload)
    root_cause = root_cause_read(payload.get("root_cause"))
    if not root_cause:
        raise ActionRefused(
            f"Closing exception {exception.pk} needs its root cause: start the comment with one of {', '.join(RootCause.values)} "
            f"(got {str(payload.get('root_cause') or 'nothing')!r})."
        )
    if exception.status == ExceptionStatus.CLOSED:
        return {"exception_id": exception.pk, "root_cause": exception.root_cause, "closed": True, "already_closed": True}
    recovery = exception.details.get("recovery") or {}
    resolution = str(payload.get("resolution") or "").strip() or f"Recovery: {recovery.get('chosen') or 'none chosen'}."
    try:
        exception = exception_close(exception=exception, root_cause=root_cause, resolution=resolution, actor=_actor(idempotency_key))
    except LogisticsRefused as refused:
        raise ActionRefused(refused.message) from refused
    return {"exception_id": exception.pk, "root_cause": root_cause, "closed": True, "already_closed": False}


ACTIONS = [
    ("exception.open", exception_open_action, "Open the exception a detected delay calls for, with its priority and SLA due time."),
    ("exception.recovery_propose", recovery_propose_action, "Propose recovery options (re-tender, expedite, reschedule)."),
    ("exception.customer_update_draft", customer_update_draft_action, "Draft the customer's update and keep it on the exception."),
    ("exception.recovery_choose", recovery_choose_action, "Record the recovery option a person approved; they own the exception."),
    ("exception.escalate", exception_escalate_action, "Escalate the exception one level, with the reason."),
    ("exception.close", exception_close_action, "Close the exception; refused without a root cause."),
]
