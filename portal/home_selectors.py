"""What the operations home page counts: "what needs me now", read through the apps' own
selectors, one query per card (four at most), so the page stays cheap on a busy tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, Window

from accounts.models import Role
from connectors.models import InboundStatus
from connectors.selectors import InboxFilters, inbound_events_list
from logistics.selectors import ExceptionCounts, exception_counts
from portal.navigation import BUILDERS, OPERATORS
from workflows.models import Approval, IncidentStatus
from workflows.selectors import approvals_pending, incidents_list

APPROVALS_SHOWN = 5


@dataclass(frozen=True)
class ApprovalsDue:
    rows: list[Approval]  # the soonest due, at most APPROVALS_SHOWN
    total: int
    overdue: int


@dataclass(frozen=True)
class OperationsSummary:
    """The home page's cards; a card the person's role does not work in is None."""

    approvals: ApprovalsDue
    exceptions: ExceptionCounts
    incidents_open: int | None
    inbox_quarantined: int | None


def _approvals_due(*, user: Any, now: datetime) -> ApprovalsDue:
    """The first few pending approvals `user` may decide, with the total counted in the same
    query (a window over the whole set, computed before the limit)."""
    counted = approvals_pending(decider=user).annotate(total=Window(Count("pk")), overdue=Window(Count("pk", filter=Q(due_at__lte=now))))
    rows: list[Any] = list(counted[:APPROVALS_SHOWN])
    if not rows:
        return ApprovalsDue(rows=[], total=0, overdue=0)
    return ApprovalsDue(rows=rows, total=rows[0].total, overdue=rows[0].overdue)


def operations_summary(*, user: Any, now: datetime) -> OperationsSummary:
    """The cards for `user`: approvals they may decide, open exceptions (theirs among them), and
    for operators the open incidents, for builders the quarantined inbox."""
    role = Role.TENANT_ADMIN if getattr(user, "support_grant_id", None) else user.role
    return OperationsSummary(
        approvals=_approvals_due(user=user, now=now),
        exceptions=exception_counts(owner_id=user.pk, now=now),
        incidents_open=incidents_list(status=IncidentStatus.OPEN).count() if role in OPERATORS else None,
        inbox_quarantined=inbound_events_list(InboxFilters(status=InboundStatus.QUARANTINED)).count() if role in BUILDERS else None,
    )
