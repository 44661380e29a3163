"""Baton actions of the `freight-claims` template (`logistics.claims_flow` does the work): open a
claim from a POD's notes or a customer's report, check its Carmack clock, apply the carrier's
answers."""

from __future__ import annotations

from typing import Any

from governance.services import Actor
from logistics.actions.invoices import record_id
from logistics.claims_flow import claim_answer, claim_clock, claim_open
from logistics.invoicing import pod_from_event
from logistics.models import Claim
from logistics.services import LogisticsRefused
from workflows.actions import ActionRefused

ACTOR = Actor.system("freight-claims")


def open_claim(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """`report`: a `document.received` POD or a `claim.reported` customer report."""
    report = _object(payload.get("report"))
    try:
        if report.get("kind") == "pod" and report.get("document_id") in (None, ""):
            report = {"document_id": pod_from_event(report, actor=ACTOR).pk}  # a POD sent by API with its file
        return claim_open(report=report, actor=ACTOR).as_data()
    except LogisticsRefused as refused:
        raise ActionRefused(refused.message) from refused


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _claim(payload: dict[str, Any]) -> Claim:
    claim = Claim.objects.select_related("shipment").filter(pk=record_id(payload.get("claim_id"))).first()
    if claim is None:
        raise ActionRefused(f"there is no claim with id {payload.get('claim_id')!r}")
    return claim


def clock(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Where the claim's Carmack clock stands; escalates a missed deadline once."""
    return claim_clock(claim=_claim(payload), actor=ACTOR).as_data()


def answer(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Apply a carrier's `claim.updated` answer when it is about this claim."""
    claim = _claim(payload)
    event = _object(payload.get("event"))
    if str(event.get("claim") or claim.number) != claim.number:
        return {"applied": False, "claim": claim.number, "reason": f"the answer is about claim {event.get('claim')}, not {claim.number}"}
    try:
        claim = claim_answer(claim=claim, answer=event, actor=ACTOR)
    except LogisticsRefused as refused:
        raise ActionRefused(refused.message) from refused
    late = claim.acknowledged_at is not None and claim.acknowledged_at > claim.acknowledge_due_at
    return {
        "applied": True,
        "claim": claim.number,
        "status": claim.status,
        "acknowledged_late": late,
        "amount_settled": str(claim.amount_settled) if claim.amount_settled is not None else None,
    }


ACTIONS = [
    ("claim.open", open_claim, "Open a freight claim from a POD's damage or shortage notes or a customer's report."),
    ("claim.clock", clock, "Check a claim's Carmack deadlines (acknowledge 30 days, decide 120); escalate a missed one once."),
    ("claim.answer", answer, "Apply the carrier's answer to a claim: acknowledged, decided, paid or denied."),
]
