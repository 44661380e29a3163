"""The workspace navigation's counts: approvals waiting for the signed-in person, open incidents."""

from __future__ import annotations

from typing import Any

from django import template

from accounts.models import TENANT_STAFF_ROLES
from workflows.models import IncidentStatus
from workflows.selectors import approvals_pending, incidents_list

register = template.Library()


@register.simple_tag(takes_context=True)
def workflow_counts(context: dict[str, Any]) -> dict[str, int]:
    """{"approvals": pending approvals the person may decide, "incidents": open incidents}; empty
    for anyone who is not tenant staff. Counted once per request."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or user is None or not user.is_authenticated:
        return {}
    if user.role not in TENANT_STAFF_ROLES and not user.support_grant_id:
        return {}
    counts = getattr(request, "_workflow_counts", None)
    if counts is None:
        counts = {
            "approvals": approvals_pending(decider=user).count(),
            "incidents": incidents_list(status=IncidentStatus.OPEN).count(),
        }
        request._workflow_counts = counts
    return counts
