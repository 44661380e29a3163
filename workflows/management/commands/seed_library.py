"""Publish the platform's starter templates to the library (idempotent).

Two small templates for now; issue 5 builds the full set. Each is published through the same
services the console uses, so it is validated exactly like a partner's template would be.
"""

from typing import Any

import semver
from django.core.management.base import BaseCommand

from governance.services import Actor
from logistics.library import domain_templates
from tenants.db import connection
from workflows.models import TemplateCategory, WorkflowTemplate
from workflows.selectors import template_latest_version, template_version_get
from workflows.services import template_create, template_version_publish

SEED = Actor.system("seed_library")

MILESTONE_CODES = ["PICKED_UP", "DEPARTED", "ARRIVED", "OUT_FOR_DELIVERY", "DELIVERED", "DELAYED"]

CUSTOMER_MILESTONES: dict[str, Any] = {
    "key": "customer-milestone-notifications",
    "name": "Customer milestone notifications",
    "category": TemplateCategory.NOTIFICATIONS,
    "description": "Tell a shipment's customer when it reaches the milestones they care about, and raise delays with customer service.",
    "version": "1.0.0",
    "changelog": "First version.",
    "documentation": """\
Sends the shipment's customer a message when a tracking milestone arrives.

**Trigger**: every `shipment.milestone` event whose code is in *Milestones to announce*.

**Steps**
1. *Delay?* – a `DELAYED` milestone goes to customer service as well as to the customer.
2. *Tell the customer* – the `shipment-milestone` message on the chosen channel.
3. *Raise the delay* – the `shipment-delayed` message to the customer and customer service.

**Parameters**: which milestones to announce and the channel (email or the customer's webhook).
""",
    "parameters_schema": {
        "type": "object",
        "properties": {
            "notify_on": {
                "title": "Milestones to announce",
                "type": "array",
                "items": {"enum": MILESTONE_CODES},
                "minItems": 1,
                "uniqueItems": True,
                "default": ["PICKED_UP", "OUT_FOR_DELIVERY", "DELIVERED", "DELAYED"],
            },
            "channel": {"title": "Channel", "enum": ["email", "webhook"], "default": "email"},
        },
    },
    "definition": {
        "description": "Customer milestone notifications",
        "start": "is-delay",
        "triggers": [{"kind": "event", "event_type": "shipment.milestone", "filter": "event.code in {{params.notify_on}}"}],
        "steps": [
            {
                "id": "is-delay",
                "kind": "decision",
                "name": "Delay?",
                "cases": [{"when": 'event.code == "DELAYED"', "next": "raise-delay", "label": "delayed"}],
                "default": "tell-customer",
            },
            {
                "id": "tell-customer",
                "kind": "notify",
                "name": "Tell the customer",
                "channel": "{{params.channel}}",
                "to_roles": ["customer"],
                "template": "shipment-milestone",
                "next": "done",
            },
            {
                "id": "raise-delay",
                "kind": "notify",
                "name": "Raise the delay",
                "channel": "{{params.channel}}",
                "to_roles": ["customer", "customer_service"],
                "template": "shipment-delayed",
                "next": "done",
            },
            {"id": "done", "kind": "end", "outcome": "succeeded"},
        ],
    },
}

ORDER_RELEASE: dict[str, Any] = {
    "key": "order-to-shipment-release",
    "name": "Order to shipment release",
    "category": TemplateCategory.ORDERS,
    "description": "Check a new order, get large ones approved, tender the load to the carrier and release it once the carrier accepts.",
    "version": "1.0.0",
    "changelog": "First version.",
    "documentation": """\
Takes an order from the ERP to a released shipment.

**Trigger**: `order.received` with a positive total, or started by hand.

**Steps**
1. *Valid order?* – lines present and no credit hold; otherwise the order goes to the planners' queue.
2. *Large order?* – above *Approval threshold* a planner (or the chosen role) approves it first, within 2 hours.
3. *Tender to carrier* – through *Carrier connection*, retried 5 times with backoff; cancelled again if the run fails later.
4. *Wait for the 990* – the carrier's EDI 990 response, matched on the order id, within *Tender timeout*.
5. *Release* and *Tell customer service*.

**Parameters**: the carrier connection (required), the approval threshold, the approving role and the tender timeout.
""",
    "parameters_schema": {
        "type": "object",
        "required": ["carrier_connection"],
        "properties": {
            "carrier_connection": {
                "title": "Carrier connection",
                "description": "The connection that tenders loads to your carrier (TMS or carrier API).",
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9_-]{0,79}$",
            },
            "approval_over_value": {"title": "Approval threshold", "type": "number", "minimum": 0, "default": 50000},
            "approver_role": {"title": "Approving role", "enum": ["planner", "tenant_admin", "dispatcher"], "default": "planner"},
            "tender_timeout": {
                "title": "Tender timeout",
                "description": "An ISO 8601 duration, such as PT4H.",
                "type": "string",
                "default": "PT4H",
            },
        },
    },
    "definition": {
        "description": "Order to shipment release",
        "start": "check-order",
        "triggers": [{"kind": "event", "event_type": "order.received", "filter": "event.total > 0"}, {"kind": "manual"}],
        "steps": [
            {
                "id": "check-order",
                "kind": "decision",
                "name": "Valid order?",
                "cases": [{"when": "input.lines.size() > 0 && !input.credit_hold", "next": "large-order", "label": "valid"}],
                "default": "route-to-queue",
            },
            {
                "id": "large-order",
                "kind": "decision",
                "name": "Large order?",
                "cases": [{"when": "input.total > {{params.approval_over_value}}", "next": "approve", "label": "over threshold"}],
                "default": "tender",
            },
            {
                "id": "approve",
                "kind": "approval",
                "name": "Approve large order",
                "assignee_roles": ["{{params.approver_role}}"],
                "due": "PT2H",
                "escalate_to": ["tenant_admin"],
                "next": "tender",
                "on_reject": "route-to-queue",
            },
            {
                "id": "tender",
                "kind": "connector",
                "name": "Tender to carrier",
                "connection": "{{params.carrier_connection}}",
                "action": "tender_load",
                "input": {"order": "$.input"},
                "retry": {"attempts": 5, "backoff_seconds": 30, "jitter": True, "non_retryable": ["InvalidRequest"]},
                "next": "wait-990",
            },
            {
                "id": "wait-990",
                "kind": "wait_event",
                "name": "Wait for the 990",
                "event_type": "edi.990",
                "correlate": {"order": "input.order_id"},
                "timeout": "{{params.tender_timeout}}",
                "next": "release",
                "on_timeout": "route-to-queue",
            },
            {
                "id": "release",
                "kind": "transform",
                "name": "Release",
                "mapping": {"release.order_id": "$.input.order_id", "release.carrier_reference": "$.steps.wait-990.event.reference"},
                "next": "tell-customer-service",
            },
            {
                "id": "tell-customer-service",
                "kind": "notify",
                "name": "Tell customer service",
                "channel": "email",
                "to_roles": ["customer_service"],
                "template": "order-released",
                "next": "released",
            },
            {"id": "released", "kind": "end", "outcome": "succeeded"},
            {
                "id": "route-to-queue",
                "kind": "notify",
                "name": "Route to the planners' queue",
                "channel": "email",
                "to_roles": ["planner"],
                "template": "order-needs-attention",
                "next": "not-released",
            },
            {"id": "not-released", "kind": "end", "outcome": "failed"},
            {
                "id": "cancel-tender",
                "kind": "connector",
                "name": "Cancel the tender",
                "connection": "{{params.carrier_connection}}",
                "action": "cancel_tender",
                "input": {"order": "$.input"},
                "next": None,
            },
        ],
        "compensation": {"tender": "cancel-tender"},
    },
}

# The starter templates, then the logistics domain's (`logistics.library`).
LIBRARY = [CUSTOMER_MILESTONES, ORDER_RELEASE, *domain_templates()]


class Command(BaseCommand):
    help = "Publish the platform's starter workflow templates to the library (idempotent)."

    def handle(self, *args, **options):
        connection.set_schema_to_public()
        for number, entry in enumerate(LIBRARY, 1):
            template = WorkflowTemplate.objects.filter(key=entry["key"]).first() or template_create(
                key=entry["key"],
                name=entry["name"],
                category=entry["category"],
                description=entry["description"],
                partner_id=None,
                actor=SEED,
            )
            if template_version_get(template=template, version=entry["version"]) is not None:
                self.stdout.write(f"[{number}/{len(LIBRARY)}] {entry['key']} {entry['version']}: already published")
                continue
            latest = template_latest_version(template=template)
            if latest is not None and semver.Version.parse(latest.version) > semver.Version.parse(entry["version"]):
                # Versions only go up: a library that already has a later one keeps its history as it is.
                self.stdout.write(
                    f"[{number}/{len(LIBRARY)}] {entry['key']} {entry['version']}: skipped, the library is at {latest.version}"
                )
                continue
            template_version_publish(
                template=template,
                version=entry["version"],
                definition=entry["definition"],
                parameters_schema=entry["parameters_schema"],
                documentation=entry["documentation"],
                changelog=entry["changelog"],
                actor=SEED,
            )
            self.stdout.write(f"[{number}/{len(LIBRARY)}] {entry['key']} {entry['version']}: published")
