"""Reads of the audit log for the console and tenant admins."""

from django.db.models import Q, QuerySet

from governance.models import AuditEvent


def audit_events_filter(*, query: str = "", action: str = "", actor: str = "", tenant_slug: str = "") -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if query:
        events = events.filter(Q(target_label__icontains=query) | Q(reason__icontains=query) | Q(target_id=query))
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_email__icontains=actor)
    if tenant_slug:
        events = events.filter(tenant_slug=tenant_slug)
    return events.order_by("-id")


def audit_actions() -> list[str]:
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())
