"""Approval emails: when an approval step asks for a decision (or escalates), each assignee gets
one email in the tenant's brand with three signed links – approve, reject, request changes.

A link opens a confirmation page (`workflows.approval_views.approval_link`) once its person has
signed in (with their second factor where their account has one): a link names who may decide
but does not stand in for them, so someone who can read the mailbox cannot decide. Nothing is
decided by following it, so mail scanners that prefetch links decide nothing. Links point at the
tenant's primary host, like invitations, and expire with `APPROVAL_LINK_MAX_AGE`.

Sent by the Celery task `workflows.approval_announce` (`workflows.waits` queues it after the
request or the escalation committed), inside the tenant's schema.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import TENANT_STAFF_ROLES, Role, User
from accounts.selectors import users_filter
from governance.services import Actor, audit_record
from tenants.db import connection
from tenants.selectors import Site, recipient_language, site_for_tenant, tenants_filter
from workflows.models import APPROVAL_DECISIONS, Approval, ApprovalStatus
from workflows.operations import APPROVAL_LINK_MAX_AGE, approval_link_token

log = structlog.get_logger("baton.workflows")
ANNOUNCER = Actor.system("approvals")
LINK_LABELS = {
    ApprovalStatus.APPROVED: gettext_lazy("Approve"),
    ApprovalStatus.REJECTED: gettext_lazy("Reject"),
    ApprovalStatus.CHANGES_REQUESTED: gettext_lazy("Request changes"),
}


def approval_recipients(approval: Approval) -> QuerySet[User]:
    """Active staff people whose role is among the approval's assignees (support sessions and
    customer users never are)."""
    roles = [role for role in approval.assignee_roles if role in TENANT_STAFF_ROLES]
    return users_filter(roles=roles).filter(is_active=True)


def _when(moment: datetime | None, time_zone: str) -> str:
    if moment is None:
        return ""
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return f"{timezone.localtime(moment, zone):%a %d %b %Y, %H:%M} ({zone.key})"


def _absolute(site: Site, path: str) -> str:
    return site.base_url + path


def _sent_key(approval: Approval) -> str:
    """One announcement per request or escalation level (a redelivered task sends nothing new).
    The creation time keeps ids reused by a recreated schema apart."""
    return f"workflows:approval-announced:{approval.pk}:{approval.created_at.timestamp():.6f}:{approval.escalation_level}"


def approvals_announce(approval_id: int) -> int:
    """Email each assignee of a pending approval in the current tenant; returns how many were sent."""
    approval = Approval.objects.select_related("run", "run__definition", "run__definition_version").filter(pk=approval_id).first()
    if approval is None or approval.status != ApprovalStatus.PENDING:
        return 0
    if cache.get(_sent_key(approval)):
        return 0
    tenant = tenants_filter().get(schema_name=connection.schema_name)
    site = site_for_tenant(tenant)
    run = approval.run
    urlconf = settings.ROOT_URLCONF
    escalated = approval.escalation_level > 0
    base = {
        "site": site,
        "approval": approval,
        "run": run,
        "escalated": escalated,
        "due": _when(approval.due_at, tenant.time_zone),
        "inbox_link": _absolute(site, reverse("workflows:approval", args=[approval.pk], urlconf=urlconf)),
        "run_link": _absolute(site, reverse("workflows:run", args=[run.pk], urlconf=urlconf)),
        "expires_days": APPROVAL_LINK_MAX_AGE // 86400,
    }
    emails = []
    for person in approval_recipients(approval):
        links = [
            {
                "decision": decision,
                "label": LINK_LABELS[decision],
                "url": _absolute(
                    site,
                    reverse(
                        "workflows:approval_link",
                        args=[approval_link_token(approval=approval, user_id=person.pk, decision=decision)],
                        urlconf=urlconf,
                    ),
                ),
            }
            for decision in APPROVAL_DECISIONS
        ]
        # The mail says what signing in will ask for; `has_mfa` comes with `users_filter`.
        second_factor = person.requires_mfa or getattr(person, "has_mfa", False)
        # In the language the person chose, else the workspace's default (tenants.Tenant.default_language).
        with translation.override(recipient_language(chosen=person.language, tenant=tenant)):
            roles = ", ".join(_(Role(role).label) if role in Role.values else role for role in approval.assignee_roles)
            links = [{**link, "label": str(link["label"])} for link in links]
            context = {**base, "person": person, "links": links, "second_factor": second_factor, "roles": roles}
            words = {"title": approval.title, "run": run.pk, "product": site.product_name}
            email = EmailMultiAlternatives(
                subject=(
                    _("Escalated: Approval needed – %(title)s (run #%(run)s) – %(product)s")
                    if escalated
                    else _("Approval needed – %(title)s (run #%(run)s) – %(product)s")
                )
                % words,
                body=render_to_string("email/approval_request.txt", context),
                from_email=site.from_email,
                to=[person.email],
            )
            email.attach_alternative(render_to_string("email/approval_request.html", context), "text/html")
        emails.append(email)
    if emails:
        with get_connection() as mail:
            mail.send_messages(emails)
    cache.set(_sent_key(approval), 1, timeout=APPROVAL_LINK_MAX_AGE)
    audit_record(
        actor=ANNOUNCER,
        action="workflow_approval.announced",
        target=approval,
        data={"run": run.pk, "recipients": len(emails), "level": approval.escalation_level},
    )
    if not emails:
        log.warning("approval has nobody to email", approval=approval.pk, roles=approval.assignee_roles)
    return len(emails)
