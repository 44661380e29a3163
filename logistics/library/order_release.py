"""Template 1 of issue 5, "Order to shipment release" 2.0.0: the real one, over the domain.

Version 1.0.0 (seed_library's ORDER_RELEASE) stays in the library as the engine's fixture; this
version of the same key acts on Baton's records through the `order.*` actions
(`logistics.actions.orders`) and on the partners through connector steps: the tender to the
carrier connection (the TMS's order tender, with the routing guide's SCAC), the carrier's answer
as its EDI 990 (`edi.990`, correlated on the shipment reference the tender carried), the release
to the WMS and the confirmation to the ERP."""

from __future__ import annotations

from typing import Any

SCAC = {"type": "string", "pattern": "^[A-Z]{2,4}$"}
CONNECTION = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,79}$"}
ORDER = {"order_id": "$.context.validate.order_id", "customer": "$.context.validate.customer"}
SHIPMENT = "$.context.plan.shipment"

TEMPLATE: dict[str, Any] = {
    "key": "order-to-shipment-release",
    "name": "Order to shipment release",
    "category": "orders",
    "description": "Check a new order, plan its shipment, tender it down the routing guide until a carrier accepts, release it to the warehouse and confirm it to the ERP.",
    "version": "2.0.0",
    "changelog": """\
Acts on Baton's own records: the order is kept and checked against the master data (customer, \
locations and their addresses, line weights, required fields) and the credit hold, and what fails \
opens an exception with every reason instead of an email. Credit holds go to finance for approval. \
The order becomes a shipment, tendered to the carriers of the new *Routing guide* parameter in \
turn: a declined or unanswered 990 moves to the next carrier, and when all decline a tender-declined \
exception is opened. An accepted tender is released to the WMS and confirmed to the ERP through \
their own connections (*WMS connection*, *ERP connection*). The order-value approval of 1.0.0 is \
gone (credit decides); `carrier_connection` and `tender_timeout` keep their meaning.""",
    "documentation": """\
Takes an order from the ERP to a shipment released to the warehouse, and only bothers people
with the exceptions.

**Trigger**: the canonical `order.received` event (ERP webhook, API or EDI 940 through the inbox),
a start through the process API (`POST /api/v1/processes/<key>/runs` with an `Idempotency-Key`:
a repeated start answers the same run), or by hand.

**Input**: `order_id`, `customer` (the customer account's code), `ship_from` and `ship_to`
(location codes), `po_number`, `credit_hold`, and `lines` of `sku`, `qty`, `weight`,
`weight_unit` (lb or kg).

**Steps**
1. *Check the order* – required fields, customer and locations in the master data, street, city
   and country on both addresses, a weight on every line, and the credit hold (the ERP's flag on
   the order, or the customer in *Accounts on credit hold*). Every problem is listed.
2. Invalid orders open an *Order failed validation* exception with the reasons, and the order is
   rejected. An order released before is not released again.
3. *Credit hold* – finance (*Credit approver*) approves the release within *Credit approval time*,
   escalating to the tenant admins; keeping the hold opens an exception with finance's comment.
4. *Plan the shipment* – from the order's locations and weight, for the routing guide's first
   carrier.
5. *Tender* – through *Carrier connection* (retried 5 times with backoff; cancelled again when
   the run fails later), then *wait for the 990* matched on the shipment reference within
   *Tender timeout*. A decline, or no answer, moves to the next carrier of the *Routing guide*;
   when the last one declines, a *Tender declined* exception is opened.
6. *Release to the warehouse* through *WMS connection*, and *confirm to the ERP* through
   *ERP connection*, each retried; the order is then released.

**Parameters**: the routing guide (SCACs in order), the three connections, the accounts on credit
hold, the credit approver and approval time, the tender timeout and the transport mode.
""",
    "parameters_schema": {
        "type": "object",
        "required": ["routing_guide"],
        "properties": {
            "routing_guide": {
                "title": "Routing guide",
                "description": "The carriers' SCACs, tendered in this order until one accepts.",
                "type": "array",
                "items": SCAC,
                "minItems": 1,
                "uniqueItems": True,
                "default": ["SBXF"],
            },
            "carrier_connection": {
                "title": "Carrier connection",
                "description": "The connection that tenders loads (your TMS or the carrier's API).",
                **CONNECTION,
                "default": "tms",
            },
            "wms_connection": {"title": "WMS connection", "description": "Where released orders go.", **CONNECTION, "default": "wms"},
            "erp_connection": {"title": "ERP connection", "description": "Where confirmations go.", **CONNECTION, "default": "erp"},
            "credit_hold_accounts": {
                "title": "Accounts on credit hold",
                "description": "Customer account codes whose orders need finance's approval.",
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": True,
                "default": [],
            },
            "credit_approver_role": {
                "title": "Credit approver",
                "enum": ["finance", "tenant_admin", "planner"],
                "default": "finance",
            },
            "credit_approval_due": {
                "title": "Credit approval time",
                "description": "An ISO 8601 duration, such as PT4H.",
                "type": "string",
                "default": "PT4H",
            },
            "tender_timeout": {
                "title": "Tender timeout",
                "description": "How long a carrier has to answer with its 990 (ISO 8601, such as PT2H).",
                "type": "string",
                "default": "PT2H",
            },
            "mode": {
                "title": "Transport mode",
                "enum": ["ftl", "ltl", "parcel", "intermodal", "drayage", "ocean", "air", "rail"],
                "default": "ftl",
            },
        },
    },
    "definition": {
        "description": "Order to shipment release",
        "start": "validate",
        "triggers": [{"kind": "event", "event_type": "order.received"}, {"kind": "manual"}],
        "steps": [
            {
                "id": "validate",
                "kind": "connector",
                "name": "Check the order",
                "connection": "baton",
                "action": "order.validate",
                "input": {"order": "$.input", "credit_hold_accounts": "{{params.credit_hold_accounts}}"},
                "next": "route",
            },
            {
                "id": "route",
                "kind": "decision",
                "name": "Valid order?",
                "cases": [
                    {"when": 'context["validate"].outcome == "valid"', "next": "plan", "label": "valid"},
                    {"when": 'context["validate"].outcome == "credit_hold"', "next": "approve-credit", "label": "credit hold"},
                    {"when": 'context["validate"].outcome == "duplicate"', "next": "already-released", "label": "released before"},
                ],
                "default": "route-invalid",
            },
            {
                "id": "route-invalid",
                "kind": "connector",
                "name": "Open an exception: order failed validation",
                "connection": "baton",
                "action": "order.exception_open",
                "input": {
                    **ORDER,
                    "type": "order_invalid",
                    "reason": "$.context.validate.reason",
                    "details": {"problems": "$.context.validate.problems"},
                },
                "next": "not-released",
            },
            {
                "id": "approve-credit",
                "kind": "approval",
                "name": "Release an order on credit hold?",
                "title": "Release an order on credit hold",
                "instructions": "The order is on credit hold. Approve to plan and tender it; reject (saying why) to keep the hold.",
                "assignee_roles": ["{{params.credit_approver_role}}"],
                "escalate_to": ["tenant_admin"],
                "due": "{{params.credit_approval_due}}",
                "next": "plan",
                "on_reject": "route-credit-held",
            },
            {
                "id": "route-credit-held",
                "kind": "connector",
                "name": "Open an exception: credit hold kept",
                "connection": "baton",
                "action": "order.exception_open",
                "input": {
                    **ORDER,
                    "type": "order_invalid",
                    "reason_parts": ["$.context.validate.credit_hold", "finance kept the hold", "$.context.approve-credit.comment"],
                    "details": {"decided_by": "$.context.approve-credit.decided_by"},
                },
                "next": "not-released",
            },
            {
                "id": "plan",
                "kind": "connector",
                "name": "Plan the shipment",
                "connection": "baton",
                "action": "order.shipment_plan",
                "input": {**ORDER, "routing_guide": "{{params.routing_guide}}", "mode": "{{params.mode}}"},
                "next": "prepare-tender",
            },
            {
                "id": "prepare-tender",
                "kind": "connector",
                "name": "Mark tendered",
                "connection": "baton",
                "action": "order.tender_prepare",
                "input": {"shipment": SHIPMENT},
                "next": "tender",
            },
            {
                "id": "tender",
                "kind": "connector",
                "name": "Tender to the carrier",
                "connection": "{{params.carrier_connection}}",
                "action": "tender_load",
                "input": {"order": "$.context.prepare-tender.order", "carrier": "$.context.prepare-tender.carrier"},
                "retry": {"attempts": 5, "backoff_seconds": 30, "jitter": True, "non_retryable": ["HttpClientError"]},
                "next": "wait-990",
            },
            {
                "id": "wait-990",
                "kind": "wait_event",
                "name": "Wait for the 990",
                "event_type": "edi.990",
                "correlate": {"shipment": 'context["plan"].shipment'},
                "timeout": "{{params.tender_timeout}}",
                "next": "tender-answer",
                "on_timeout": "tender-answer",
            },
            {
                "id": "tender-answer",
                "kind": "connector",
                "name": "Take the carrier's answer",
                "connection": "baton",
                "action": "order.tender_answer",
                "input": {
                    "shipment": SHIPMENT,
                    "routing_guide": "{{params.routing_guide}}",
                    "answer": "$.context.wait-990",
                    "tender": "$.context.tender",
                },
                "next": "answered",
            },
            {
                "id": "answered",
                "kind": "decision",
                "name": "Accepted?",
                "cases": [
                    {"when": 'context["tender-answer"].outcome == "accepted"', "next": "release", "label": "accepted"},
                    {"when": 'context["tender-answer"].outcome == "next_carrier"', "next": "prepare-tender", "label": "next carrier"},
                    {"when": 'context["tender-answer"].outcome == "stale"', "next": "wait-990", "label": "an earlier carrier's answer"},
                ],
                "default": "route-declined",
            },
            {
                "id": "route-declined",
                "kind": "connector",
                "name": "Open an exception: every carrier declined",
                "connection": "baton",
                "action": "order.exception_open",
                "input": {
                    **ORDER,
                    "type": "tender_declined",
                    "shipment": SHIPMENT,
                    "reason": "$.context.tender-answer.reason",
                    "details": {"tried": "$.context.tender-answer.tried"},
                },
                "next": "not-released",
            },
            {
                "id": "release",
                "kind": "connector",
                "name": "Release to the warehouse",
                "connection": "{{params.wms_connection}}",
                "action": "release_order",
                "input": {
                    "order_number": "$.context.tender-answer.release.order_number",
                    "shipment": "$.context.tender-answer.release.shipment",
                    "carrier": "$.context.tender-answer.release.carrier",
                    "ship_to": "$.context.tender-answer.release.ship_to",
                    "lines": "$.context.tender-answer.release.lines",
                },
                "retry": {"attempts": 5, "backoff_seconds": 30, "jitter": True, "non_retryable": ["HttpClientError"]},
                "next": "record-release",
            },
            {
                "id": "record-release",
                "kind": "connector",
                "name": "Record the release",
                "connection": "baton",
                "action": "order.release_record",
                "input": {"shipment": SHIPMENT, "release": "$.context.release"},
                "next": "confirm-erp",
            },
            {
                "id": "confirm-erp",
                "kind": "connector",
                "name": "Confirm to the ERP",
                "connection": "{{params.erp_connection}}",
                "action": "confirm_order",
                "input": {
                    "order_number": "$.context.record-release.confirmation.order_number",
                    "decision": "$.context.record-release.confirmation.decision",
                    "reference": "$.context.record-release.confirmation.reference",
                    "note": "$.context.record-release.confirmation.note",
                },
                "retry": {"attempts": 5, "backoff_seconds": 30, "jitter": True, "non_retryable": ["HttpClientError"]},
                "next": "released",
            },
            {"id": "released", "kind": "end", "outcome": "succeeded"},
            {"id": "already-released", "kind": "end", "outcome": "succeeded"},
            {"id": "not-released", "kind": "end", "outcome": "failed"},
            {
                "id": "cancel-tender",
                "kind": "connector",
                "name": "Cancel the tender",
                "connection": "{{params.carrier_connection}}",
                "action": "cancel_tender",
                "input": {"order": {"order_id": SHIPMENT}},
                "next": None,
            },
        ],
        "compensation": {"tender": "cancel-tender"},
    },
}
