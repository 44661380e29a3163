"""Baton actions of the `customer-milestone-notifications` template (`logistics.notifications`
does the work): send the milestone notifications that are due."""

from __future__ import annotations

from typing import Any

from logistics.notifications import SEND_ACTION, SEND_LIMIT, notifications_send
from workflows.actions import ActionRefused


def send_due(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """`sender_name`: the name emails come from (empty: the workspace's brand); `batch_size`: at
    most this many notifications per pass (the next pass takes the rest)."""
    sender_name = payload.get("sender_name") or ""
    if not isinstance(sender_name, str) or len(sender_name) > 80:
        raise ActionRefused("sender_name must be a text of at most 80 characters")
    batch_size = payload.get("batch_size", SEND_LIMIT)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= 5000:
        raise ActionRefused(f"batch_size must be a whole number from 1 to 5000, not {batch_size!r}")
    return notifications_send(sender_name=sender_name.strip(), limit=batch_size).as_data()


ACTIONS = [
    (SEND_ACTION, send_due, "Send the customer milestone notifications that are due: webhooks at once, emails in the tenant's brand."),
]
