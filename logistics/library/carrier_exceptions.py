"""Template 2 of the library: carrier exception management.

A `shipment.delay_detected` event (`logistics.tracking_inbound`: a delay status, an ETA past the
promise, a missed pickup) opens an exception with its priority and SLA due time, alerts on the
urgent ones, proposes recovery options and drafts the customer's update, asks a person to choose
a recovery (escalating when the choice is overdue), tells the customer, and closes only with a
root cause. Its steps act on the domain through the Baton actions of `logistics.actions.exceptions`.
"""

from __future__ import annotations

from typing import Any

from logistics.actions.exceptions import ROOT_CAUSE_PATTERN
from logistics.models import RootCause
from workflows.definition_schema import STAFF_ROLES
from workflows.models import TemplateCategory

EXCEPTION_ID = "$.steps.open-exception.exception_id"
ROOT_CAUSES = ", ".join(RootCause.values)

DOCUMENTATION = f"""\
Turns a detected delay into an exception that people handle to the end.

**Trigger**: `shipment.delay_detected`, which Baton emits once per shipment and cause when a carrier
event (EDI 214, carrier webhook) says *delivery delayed*, *delivery failed* or *on hold*, when the
ETA moves past the promise (the delivery appointment, else the planned delivery, plus the customer
tier's on-time grace), or when a pickup appointment ends without a pickup.

**Priority**: high. The engine advances these runs before normal ones (billing, claims), so a
delay's exception opens within seconds even while a day's invoices are being rendered.

**Steps**
1. *Open the exception* – its priority comes from the SLA risk (how late, whether the promise falls
   due within 24 hours), the customer's service tier and the margin at stake (a load above
   *High-value rate*, a margin already spent); its SLA due time from the tier's SLA policy. A
   shipment that already has that kind of exception open adds the new cause to it and the run ends.
2. *Alert* – high and critical exceptions are announced to the *Handling role* at once.
3. *Propose recovery* – re-tender (not picked up yet), expedite (with its estimated cost at
   *Expedite premium* of the planned rate) or reschedule, with a recommendation; kept on the exception.
4. *Draft the customer's update* – what happened, the new estimate and the plan, kept on the exception.
5. *Choose a recovery* – the *Handling role* approves within *Time to choose*, naming the option in
   the comment (`expedite`, `reschedule`, `re-tender`; none named: the recommended one). Overdue,
   it escalates to the *Escalation role*. The choice is recorded and the approver owns the exception.
6. *Tell the customer* – when *Send the customer's update* is on, by the *Customer channel*.
7. *Close* – the handler approves the closing with the root cause opening the comment ({ROOT_CAUSES});
   without one the run asks again. Rejecting the closing escalates the exception and asks again.

**Parameters**: the handling and escalation roles, the time to choose and to resolve (ISO 8601
durations), the high-value rate, the expedite premium, and whether and how the customer is told.
"""

PARAMETERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "handler_role": {"title": "Handling role", "enum": list(STAFF_ROLES), "default": "dispatcher"},
        "escalation_role": {"title": "Escalation role", "enum": list(STAFF_ROLES), "default": "tenant_admin"},
        "choose_within": {
            "title": "Time to choose",
            "description": "How long the handling role has to choose a recovery before it escalates (ISO 8601, such as PT2H).",
            "type": "string",
            "default": "PT2H",
        },
        "resolve_within": {
            "title": "Time to resolve",
            "description": "How long the closing may wait before it escalates (ISO 8601, such as PT24H).",
            "type": "string",
            "default": "PT24H",
        },
        "high_value_rate": {
            "title": "High-value rate",
            "description": "A planned rate from here up raises the priority.",
            "type": "number",
            "minimum": 0,
            "default": 5000,
        },
        "expedite_premium_percent": {"title": "Expedite premium (%)", "type": "number", "minimum": 0, "maximum": 500, "default": 35},
        "send_customer_update": {"title": "Send the customer's update", "type": "boolean", "default": True},
        "customer_channel": {"title": "Customer channel", "enum": ["email", "webhook"], "default": "email"},
    },
}


def _action(step_id: str, name: str, action: str, payload: dict[str, Any], next_step: str | None) -> dict[str, Any]:
    return {
        "id": step_id,
        "kind": "connector",
        "name": name,
        "connection": "baton",
        "action": action,
        "input": payload,
        "retry": {"attempts": 3, "backoff_seconds": 5, "non_retryable": ["ActionRefused"]},
        "next": next_step,
    }


DEFINITION: dict[str, Any] = {
    "description": "Carrier exception management",
    "priority": "high",
    "start": "open-exception",
    "triggers": [{"kind": "event", "event_type": "shipment.delay_detected"}],
    "steps": [
        _action(
            "open-exception",
            "Open the exception",
            "exception.open",
            {"event": "$.input", "high_value_rate": "{{params.high_value_rate}}"},
            "is-new",
        ),
        {
            "id": "is-new",
            "kind": "decision",
            "name": "New exception?",
            "cases": [{"when": "context['open-exception'].created", "next": "is-urgent", "label": "new"}],
            "default": "joined",
        },
        {"id": "joined", "kind": "end", "outcome": "succeeded"},
        {
            "id": "is-urgent",
            "kind": "decision",
            "name": "Urgent?",
            "cases": [{"when": "context['open-exception'].urgent", "next": "alert", "label": "high or critical"}],
            "default": "propose-recovery",
        },
        {
            "id": "alert",
            "kind": "notify",
            "name": "Alert the handlers",
            "channel": "email",
            "to_roles": ["{{params.handler_role}}"],
            "template": "carrier-exception-urgent",
            "next": "propose-recovery",
        },
        _action(
            "propose-recovery",
            "Propose recovery options",
            "exception.recovery_propose",
            {"exception_id": EXCEPTION_ID, "expedite_premium_percent": "{{params.expedite_premium_percent}}"},
            "draft-update",
        ),
        _action(
            "draft-update",
            "Draft the customer's update",
            "exception.customer_update_draft",
            {"exception_id": EXCEPTION_ID},
            "choose-recovery",
        ),
        {
            "id": "choose-recovery",
            "kind": "approval",
            "name": "Choose a recovery",
            "title": "Choose how to recover the delayed shipment",
            "instructions": "The exception lists the options (re-tender, expedite, reschedule) and the recommended one. "
            "Approve with the option you choose in the comment; without one the recommended option is taken. "
            "Reject if none will do.",
            "assignee_roles": ["{{params.handler_role}}"],
            "due": "{{params.choose_within}}",
            "escalate_to": ["{{params.escalation_role}}"],
            "next": "record-recovery",
            "on_reject": "record-recovery",
        },
        _action(
            "record-recovery",
            "Record the recovery",
            "exception.recovery_choose",
            {
                "exception_id": EXCEPTION_ID,
                "decision": "$.steps.choose-recovery.decision",
                "comment": "$.steps.choose-recovery.comment",
                "decided_by": "$.steps.choose-recovery.decided_by",
            },
            "tell-customer",
        ),
        {
            "id": "tell-customer",
            "kind": "decision",
            "name": "Tell the customer?",
            "cases": [{"when": "params.send_customer_update", "next": "customer-update", "label": "update on"}],
            "default": "confirm-close",
        },
        {
            "id": "customer-update",
            "kind": "notify",
            "name": "Send the customer's update",
            "channel": "{{params.customer_channel}}",
            "to_roles": ["customer"],
            "template": "shipment-delay-update",
            "next": "confirm-close",
        },
        {
            "id": "confirm-close",
            "kind": "approval",
            "name": "Close with the root cause",
            "title": "Close the exception with its root cause",
            "instructions": f"Approve once the shipment is back on track, starting the comment with the root cause ({ROOT_CAUSES}). "
            "Reject if it is not resolved: the exception escalates.",
            "assignee_roles": ["{{params.handler_role}}"],
            "due": "{{params.resolve_within}}",
            "escalate_to": ["{{params.escalation_role}}"],
            "next": "has-root-cause",
            "on_reject": "escalate",
        },
        {
            "id": "has-root-cause",
            "kind": "decision",
            "name": "Root cause given?",
            "cases": [
                {"when": f"context['confirm-close'].comment.matches('{ROOT_CAUSE_PATTERN}')", "next": "close-exception", "label": "given"}
            ],
            "default": "ask-root-cause",
        },
        {
            "id": "ask-root-cause",
            "kind": "notify",
            "name": "Ask for the root cause",
            "channel": "email",
            "to_roles": ["{{params.handler_role}}"],
            "template": "carrier-exception-root-cause-needed",
            "next": "confirm-close",
        },
        _action(
            "escalate",
            "Escalate",
            "exception.escalate",
            {"exception_id": EXCEPTION_ID, "reason": "$.steps.confirm-close.comment"},
            "confirm-close",
        ),
        _action(
            "close-exception",
            "Close the exception",
            "exception.close",
            {"exception_id": EXCEPTION_ID, "root_cause": "$.steps.confirm-close.comment"},
            "closed",
        ),
        {"id": "closed", "kind": "end", "outcome": "succeeded"},
    ],
}

TEMPLATE: dict[str, Any] = {
    "key": "carrier-exception-management",
    "name": "Carrier exception management",
    "category": TemplateCategory.EXCEPTIONS,
    "description": "Open an exception for every detected delay, prioritised; choose a recovery, tell the customer, close with the root cause.",
    "version": "1.1.0",
    "changelog": "Runs at high priority: a delay's exception is opened before the engine's batch work, such as invoice PDFs.",
    "documentation": DOCUMENTATION,
    "parameters_schema": PARAMETERS_SCHEMA,
    "definition": DEFINITION,
}
