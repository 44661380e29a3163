"""Template 5: freight claims with the Carmack clock (`logistics.claims_flow`, actions in
`logistics.actions.claims`)."""

from __future__ import annotations

from typing import Any

from workflows.models import TemplateCategory

TEMPLATE: dict[str, Any] = {
    "key": "freight-claims",
    "name": "Freight claims",
    "category": TemplateCategory.CLAIMS,
    "description": "Open a cargo claim from POD damage notes or a customer's report and hold the carrier to the Carmack deadlines.",
    "version": "1.0.0",
    "changelog": "First version.",
    "documentation": """\
Files a cargo claim with the carrier as soon as damage or a shortage is known, keeps its papers
in a checklist and holds the carrier to the US Carmack deadlines (49 CFR 1005): acknowledge within
30 days of filing, pay, decline or offer a settlement within 120.

**Triggers**: `document.received` of kind `pod` (its exception notes: damaged, crushed, wet,
short, missing… or fewer pieces than expected), `claim.reported` (a customer's report: `shipment`,
`kind` damage / shortage / loss / delay, `amount`, `description`, optionally `filed_at`), or
started by hand.

**Steps**
1. *Open the claim* – one per shipment and kind, with its checklist (POD, photos, invoice, BOL)
   and its due dates. A POD without the amount to claim opens a damage or shortage exception for a
   person to file it (*Claim needs the amount*); a clean POD ends the run.
2. *Tell claims* – customer service and finance learn what was filed and which papers are missing.
3. *Carmack clock* – checked every *Check every* and whenever the carrier answers: a reminder 5
   days before a deadline, and when one is missed an exception on the shipment (raised a level
   when the decision is late too) and an escalation to finance and the tenant admin.
4. *Wait for the carrier* – `claim.updated` events (`claim`, `status` acknowledged, decided,
   paid or denied, `at`, `amount_settled`, `note`) move the claim; a decision ends the run.

**Parameters**: how often the clock is checked.
""",
    "parameters_schema": {
        "type": "object",
        "properties": {
            "check_every": {
                "title": "Check every",
                "description": "How often the deadlines are checked while waiting for the carrier; an ISO 8601 duration.",
                "type": "string",
                "default": "P1D",
            },
        },
    },
    "definition": {
        "description": "Freight claims",
        "start": "open",
        "triggers": [
            {"kind": "event", "event_type": "document.received", "filter": 'event.kind == "pod"'},
            {"kind": "event", "event_type": "claim.reported"},
            {"kind": "manual"},
        ],
        "steps": [
            {
                "id": "open",
                "kind": "connector",
                "name": "Open the claim",
                "connection": "baton",
                "action": "claim.open",
                "retry": {"attempts": 3, "backoff_seconds": 2, "non_retryable": ["ActionRefused"]},
                "input": {"report": "$.input"},
                "next": "opened",
            },
            {
                "id": "opened",
                "kind": "decision",
                "name": "Claim opened?",
                "cases": [
                    {"when": "context.open.opened", "next": "tell_filed", "label": "filed"},
                    {"when": "context.open.needs_amount", "next": "tell_needs_amount", "label": "needs the amount"},
                ],
                "default": "no_claim",
            },
            {
                "id": "tell_filed",
                "kind": "notify",
                "name": "Claim filed",
                "channel": "email",
                "to_roles": ["customer_service", "finance"],
                "template": "claim-filed",
                "next": "clock",
            },
            {
                "id": "clock",
                "kind": "connector",
                "name": "Carmack clock",
                "connection": "baton",
                "action": "claim.clock",
                "input": {"claim_id": "$.steps.open.claim_id"},
                "next": "deadline",
            },
            {
                "id": "deadline",
                "kind": "decision",
                "name": "Deadline?",
                "cases": [
                    {"when": 'context.clock.stage == "closed"', "next": "closed", "label": "decided"},
                    {"when": "context.clock.escalate", "next": "escalate", "label": "deadline missed"},
                    {"when": "context.clock.remind", "next": "remind", "label": "deadline near"},
                ],
                "default": "wait_carrier",
            },
            {
                "id": "escalate",
                "kind": "notify",
                "name": "Carrier missed a Carmack deadline",
                "channel": "email",
                "to_roles": ["finance", "tenant_admin"],
                "template": "claim-deadline-missed",
                "next": "wait_carrier",
            },
            {
                "id": "remind",
                "kind": "notify",
                "name": "Carmack deadline near",
                "channel": "email",
                "to_roles": ["finance"],
                "template": "claim-deadline-near",
                "next": "wait_carrier",
            },
            {
                "id": "wait_carrier",
                "kind": "wait_event",
                "name": "Wait for the carrier",
                "event_type": "claim.updated",
                "correlate": {"shipment": "context.open.shipment"},
                "timeout": "{{params.check_every}}",
                "next": "answer",
                "on_timeout": "clock",
            },
            {
                "id": "answer",
                "kind": "connector",
                "name": "Record the carrier's answer",
                "connection": "baton",
                "action": "claim.answer",
                "input": {"claim_id": "$.steps.open.claim_id", "event": "$.steps.wait_carrier.event"},
                "next": "clock",
            },
            {"id": "closed", "kind": "end", "outcome": "succeeded"},
            {
                "id": "tell_needs_amount",
                "kind": "notify",
                "name": "Claim needs the amount",
                "channel": "email",
                "to_roles": ["customer_service"],
                "template": "claim-needs-amount",
                "next": "not_filed",
            },
            {"id": "not_filed", "kind": "end", "outcome": "succeeded"},
            {"id": "no_claim", "kind": "end", "outcome": "succeeded"},
        ],
    },
}
