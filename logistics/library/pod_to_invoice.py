"""Template 4: proof of delivery to invoice (`logistics.invoicing`, actions in
`logistics.actions.invoices`)."""

from __future__ import annotations

from typing import Any

from workflows.models import TemplateCategory

_SHIPMENT = {"shipment": "context.pair.shipment"}

TEMPLATE: dict[str, Any] = {
    "key": "pod-to-invoice",
    "name": "Proof of delivery to invoice",
    "category": TemplateCategory.BILLING,
    "description": "Pair the carrier's invoice with the signed POD, match it against the tender, and bill the customer – or dispute it.",
    "version": "1.1.0",
    "changelog": "The waits for the POD and for the invoice also take one that came just before the run: an invoice and its POD paired by two runs at the same moment no longer leave one of them waiting (and chasing finance a day later).",
    "documentation": """\
Takes a delivered shipment from its proof of delivery and the carrier's freight invoice to the
customer's invoice in your ERP. People only see the exceptions: an incomplete POD, a disputed
invoice, a POD or invoice that never comes.

**Triggers**: `invoice.received` (the carrier's EDI 210, or the same fields by API) and
`document.received` of kind `pod` (an upload, an email or the API; the event names the stored
`document_id`, or carries the file as `content_base64` with its `fields`), or started by hand.
Whichever comes first waits for the other, matched on the shipment.

**Steps**
1. *Pair invoice and POD* – records what the event brought and looks for the other half. A run
   that finds another run already matching this invoice ends (*Handled by another run*).
2. *Wait for the POD* / *Wait for the carrier's invoice* / *Wait for delivery* – up to *POD due
   within* or *Invoice due within*; if nothing comes, the dispatcher or finance is told.
3. *Check the POD* – signed (when the carrier rule asks), dated, consignee named, pieces counted,
   exceptions noted or "clean". An incomplete POD opens a *POD incomplete* exception with the
   reason, tells dispatch and finance, and waits for a corrected POD.
4. *Three-way match* – the carrier's charges against the rate confirmation (or the tendered
   rate), with the carrier's tolerances (the lesser of the amount and the percent) and evidence
   rules: detention needs arrival and departure times past the free time, a lumper needs its
   receipt.
5. Matched: the invoice is **approved**, the *customer invoice* PDF is produced in your brand,
   *sent to the ERP* and the ERP's reference noted. Mismatched: the invoice is **disputed**, an
   *Invoice mismatch* exception lists every difference (line, expected, billed, difference,
   rule), and finance is told.

**Parameters**: the ERP connection, and how long to wait for the POD and the invoice.
""",
    "parameters_schema": {
        "type": "object",
        "properties": {
            "erp_connection": {
                "title": "ERP connection",
                "description": "The connection that receives customer invoices (action invoice_create).",
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9_-]{0,79}$",
                "default": "erp",
            },
            "pod_within": {
                "title": "POD due within",
                "description": "How long to wait for the POD (or the delivery) after the invoice; an ISO 8601 duration.",
                "type": "string",
                "default": "P14D",
            },
            "invoice_within": {
                "title": "Invoice due within",
                "description": "How long to wait for the carrier's invoice after the POD; an ISO 8601 duration.",
                "type": "string",
                "default": "P30D",
            },
        },
    },
    "definition": {
        "description": "Proof of delivery to invoice",
        "start": "pair",
        "triggers": [
            {"kind": "event", "event_type": "invoice.received"},
            {"kind": "event", "event_type": "document.received", "filter": 'event.kind == "pod"'},
            {"kind": "manual"},
        ],
        "steps": [
            {
                "id": "pair",
                "kind": "connector",
                "name": "Pair invoice and POD",
                "connection": "baton",
                "action": "pod_to_invoice.pair",
                "retry": {"attempts": 3, "backoff_seconds": 2, "non_retryable": ["ActionRefused"]},
                "input": {
                    "trigger": "$.input",
                    "invoice": "$.steps.wait_invoice.event",
                    "pod": "$.steps.wait_pod.event",
                    "milestone": "$.steps.wait_delivered.event",
                },
                "next": "route",
            },
            {
                "id": "route",
                "kind": "decision",
                "name": "Both halves here?",
                "cases": [
                    {"when": 'context.pair.state == "handled"', "next": "handled", "label": "another run matches it"},
                    {"when": 'context.pair.state == "wait_pod"', "next": "wait_pod", "label": "no POD yet"},
                ],
                "default": "check_pod",
            },
            {
                "id": "wait_pod",
                "kind": "wait_event",
                "name": "Wait for the POD",
                "event_type": "document.received",
                "correlate": _SHIPMENT,
                "earlier_events": True,
                "timeout": "{{params.pod_within}}",
                "next": "pair",
                "on_timeout": "chase_pod",
            },
            {
                "id": "check_pod",
                "kind": "connector",
                "name": "Check the POD",
                "connection": "baton",
                "action": "pod.check",
                "input": {"pod_id": "$.steps.pair.pod_id"},
                "next": "pod_ok",
            },
            {
                "id": "pod_ok",
                "kind": "decision",
                "name": "POD complete?",
                "cases": [
                    {"when": "!context.check_pod.complete", "next": "tell_pod_incomplete", "label": "incomplete"},
                    {"when": 'context.pair.state == "wait_invoice"', "next": "wait_invoice", "label": "no invoice yet"},
                    {"when": 'context.pair.state == "wait_delivered"', "next": "wait_delivered", "label": "not delivered yet"},
                ],
                "default": "match",
            },
            {
                "id": "tell_pod_incomplete",
                "kind": "notify",
                "name": "POD incomplete",
                "channel": "email",
                "to_roles": ["dispatcher", "finance"],
                "template": "pod-incomplete",
                "next": "wait_pod",
            },
            {
                "id": "wait_invoice",
                "kind": "wait_event",
                "name": "Wait for the carrier's invoice",
                "event_type": "invoice.received",
                "correlate": _SHIPMENT,
                "earlier_events": True,
                "timeout": "{{params.invoice_within}}",
                "next": "pair",
                "on_timeout": "chase_invoice",
            },
            {
                "id": "wait_delivered",
                "kind": "wait_event",
                "name": "Wait for delivery",
                "event_type": "shipment.milestone",
                "correlate": _SHIPMENT,
                "timeout": "{{params.pod_within}}",
                "next": "pair",
                "on_timeout": "chase_pod",
            },
            {
                "id": "match",
                "kind": "connector",
                "name": "Three-way match",
                "connection": "baton",
                "action": "invoice.match",
                "input": {"invoice_id": "$.steps.pair.invoice_id"},
                "next": "approved",
            },
            {
                "id": "approved",
                "kind": "decision",
                "name": "Approved?",
                "cases": [{"when": "context.match.approved", "next": "customer_invoice", "label": "approved"}],
                "default": "tell_dispute",
            },
            {
                "id": "customer_invoice",
                "kind": "connector",
                "name": "Produce the customer invoice",
                "connection": "baton",
                "action": "customer_invoice.produce",
                "input": {"invoice_id": "$.steps.pair.invoice_id"},
                "next": "send_to_erp",
            },
            {
                "id": "send_to_erp",
                "kind": "connector",
                "name": "Send to the ERP",
                "connection": "{{params.erp_connection}}",
                "action": "invoice_create",
                "input": {"invoice": "$.steps.customer_invoice.erp_invoice"},
                "retry": {"attempts": 5, "backoff_seconds": 30, "jitter": True, "non_retryable": ["HttpClientError"]},
                "next": "erp_noted",
            },
            {
                "id": "erp_noted",
                "kind": "connector",
                "name": "Note the ERP's reference",
                "connection": "baton",
                "action": "customer_invoice.sent",
                "input": {"invoice_id": "$.steps.pair.invoice_id", "erp": "$.steps.send_to_erp"},
                "next": "invoiced",
            },
            {"id": "invoiced", "kind": "end", "outcome": "succeeded"},
            {
                "id": "tell_dispute",
                "kind": "notify",
                "name": "Invoice disputed",
                "channel": "email",
                "to_roles": ["finance"],
                "template": "invoice-disputed",
                "next": "disputed",
            },
            {"id": "disputed", "kind": "end", "outcome": "failed"},
            {"id": "handled", "kind": "end", "outcome": "succeeded"},
            {
                "id": "chase_pod",
                "kind": "notify",
                "name": "POD overdue",
                "channel": "email",
                "to_roles": ["dispatcher"],
                "template": "pod-overdue",
                "next": "no_pod",
            },
            {"id": "no_pod", "kind": "end", "outcome": "failed"},
            {
                "id": "chase_invoice",
                "kind": "notify",
                "name": "Carrier invoice overdue",
                "channel": "email",
                "to_roles": ["finance"],
                "template": "carrier-invoice-overdue",
                "next": "no_invoice",
            },
            {"id": "no_invoice", "kind": "end", "outcome": "failed"},
        ],
    },
}
