"""Template 6: customer milestone notifications with subscriptions, quiet hours and digests
(`logistics.notifications`, the action in `logistics.actions.notifications`). Version 2.0.0 of
the starter template's key: 1.x told every milestone event to the customer as it came; 2.x tells
what each customer account subscribed to."""

from __future__ import annotations

from typing import Any

from logistics.models import Milestone
from logistics.notifications import DEFAULT_MILESTONES, DUE_EVENT, SEND_ACTION
from workflows.models import TemplateCategory

TEMPLATE: dict[str, Any] = {
    "key": "customer-milestone-notifications",
    "name": "Customer milestone notifications",
    "category": TemplateCategory.NOTIFICATIONS,
    "description": "Tell each customer account the milestones it subscribed to, by email or webhook, with quiet hours and digests.",
    "version": "2.0.0",
    "changelog": (
        "Subscriptions per customer account (milestones, email or webhook, quiet hours, hourly or daily digests) "
        "replace the one list of milestones for every customer; nothing is told twice; emails carry the tenant's brand."
    ),
    "documentation": """\
Tells your customers about their shipments the way each of them asked. Customer accounts
**subscribe** (staff page `/logistics/notifications/`, or `/api/v1/milestone-subscriptions`):
which milestones – a tracking status such as picked up, out for delivery or delivered, a *delay
detected* (an ETA past the promise, a delay status, a missed pickup) or an *exception opened* on
the shipment –, by **email** (to one person, an address, or every person of the account) or
**webhook** (to the account's customer webhook endpoints, event type `shipment.milestone` by
default), with optional **quiet hours** in the subscriber's time zone and an optional **digest**
(hourly, or daily at a local time).

Publishing this workflow is what turns notifications on: without a published version nothing is
noted or sent, and subscriptions wait.

**How it runs.** Carriers' tracking events reach shipments through the inbox; when a shipment
reaches a milestone that a subscription wants, a notification is noted for it – once per
subscription, shipment and milestone, so a carrier's resent event or a replay adds nothing. It is
due at once, at the end of quiet hours (held until then), or at the subscription's next digest
(a digest that would fall in quiet hours goes when they end). Something due at once starts a run
right away (`milestone.notifications_due`); every *Check every* minutes a scheduled run sends
what has come due since (released quiet hours, digests, exceptions opened).

**Steps**
1. *Send what is due* – one message per milestone, or one per digest; webhooks are signed and
   retried by the webhook deliveries, emails go in your brand (logo, colours, product name) from
   *Sender name*. An email that could not be sent is tried again a few times.
2. *Anything failed?* – an account subscribed by webhook without an endpoint, or by email without
   anyone to email: customer service hears about it.

**Parameters**: the milestones a new subscription starts with, the sender name of the emails,
how often held notifications and digests are checked, and how many notifications one pass sends.

Every notification – pending (and why: quiet hours, digest), sent, failed – is listed on the
subscription's page.
""",
    "parameters_schema": {
        "type": "object",
        "properties": {
            "default_milestones": {
                "title": "Default milestones",
                "description": "What a new subscription starts with; each subscription chooses its own.",
                "type": "array",
                "items": {"enum": list(Milestone.values)},
                "minItems": 1,
                "uniqueItems": True,
                "default": [str(value) for value in DEFAULT_MILESTONES],
            },
            "sender_name": {
                "title": "Sender name",
                "description": "The name emails come from; empty for your workspace's brand name.",
                "type": "string",
                "maxLength": 80,
                "default": "",
            },
            "check_every_minutes": {
                "title": "Check every (minutes)",
                "description": "How often held notifications and digests that came due are sent.",
                "enum": [1, 2, 5, 10, 15, 30],
                "default": 1,
            },
            "batch_size": {
                "title": "Notifications per pass",
                "type": "integer",
                "minimum": 1,
                "maximum": 5000,
                "default": 500,
            },
        },
    },
    "definition": {
        "description": "Customer milestone notifications",
        "start": "send",
        "triggers": [
            {"kind": "event", "event_type": DUE_EVENT},
            {"kind": "schedule", "cron": "*/{{params.check_every_minutes}} * * * *"},
            {"kind": "manual"},
        ],
        "steps": [
            {
                "id": "send",
                "kind": "connector",
                "name": "Send what is due",
                "connection": "baton",
                "action": SEND_ACTION,
                "retry": {"attempts": 3, "backoff_seconds": 5, "non_retryable": ["ActionRefused"]},
                "input": {
                    "sender_name": "{{params.sender_name}}",
                    "batch_size": "{{params.batch_size}}",
                    "default_milestones": "{{params.default_milestones}}",
                },
                "next": "failed",
            },
            {
                "id": "failed",
                "kind": "decision",
                "name": "Anything failed?",
                "cases": [{"when": "context.send.failed > 0", "next": "tell_failed", "label": "failed"}],
                "default": "done",
            },
            {
                "id": "tell_failed",
                "kind": "notify",
                "name": "Milestone notifications failed",
                "channel": "email",
                "to_roles": ["customer_service"],
                "template": "milestone-notifications-failed",
                "next": "done",
            },
            {"id": "done", "kind": "end", "outcome": "succeeded"},
        ],
    },
}
