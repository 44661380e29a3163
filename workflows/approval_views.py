"""The people side of approval steps: "My approvals" (what the signed-in person may decide, by
due time), one approval with its run's context and the decision form, and the confirmation page
behind the signed links in approval emails (which decides only in the addressee's own session,
with MFA where their account needs it).

Deciding always goes through `workflows.operations.approval_decide`, which checks the person is
an assignee (or a tenant admin), wants a comment for reject and request changes, and wakes the run.
"""

from __future__ import annotations

from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from accounts.models import TENANT_STAFF_ROLES, Role, User
from accounts.permissions import tenant_role_required
from workflows.forms import DecisionForm, json_pretty
from workflows.models import APPROVAL_DECISIONS, Approval, ApprovalStatus
from workflows.operations import (
    COMMENT_REQUIRED,
    OperationRefused,
    approval_can_decide,
    approval_decide,
    approval_link_read,
)
from workflows.selectors import approval_get, approvals_decided, approvals_pending, approvals_search, run_approvals

APPROVALS_PER_PAGE = 25
DECISION_LABELS: dict[str, Promise] = {
    ApprovalStatus.APPROVED: gettext_lazy("Approve"),
    ApprovalStatus.REJECTED: gettext_lazy("Reject"),
    ApprovalStatus.CHANGES_REQUESTED: gettext_lazy("Request changes"),
}
DECISION_DONE: dict[str, Promise] = {
    ApprovalStatus.APPROVED: gettext_lazy("Approved"),
    ApprovalStatus.REJECTED: gettext_lazy("Rejected"),
    ApprovalStatus.CHANGES_REQUESTED: gettext_lazy("Changes requested"),
}
STATUS_BADGES: dict[str, str] = {
    ApprovalStatus.PENDING: "warn",
    ApprovalStatus.APPROVED: "ok",
    ApprovalStatus.REJECTED: "danger",
    ApprovalStatus.CHANGES_REQUESTED: "info",
    ApprovalStatus.CANCELLED: "muted",
}
TABS = ("mine", "all", "decided")


def _approval_or_404(approval_id: int) -> Approval:
    approval = approval_get(approval_id=approval_id)
    if approval is None:
        raise Http404("No such approval in this workspace.")
    return approval


# --- pages ----------------------------------------------------------------------------------------


def _roles_text(roles: list[str]) -> str:
    return ", ".join(Role(role).label if role in Role.values else role for role in roles) or _("nobody")


def _row(approval: Approval, now) -> dict[str, Any]:
    return {
        "approval": approval,
        "overdue": approval.status == ApprovalStatus.PENDING and approval.due_at is not None and approval.due_at <= now,
        "roles": _roles_text(approval.assignee_roles),
        "badge": STATUS_BADGES.get(approval.status, "muted"),
    }


@tenant_role_required()
def approvals(request):
    tab = request.GET.get("tab", "mine")
    tab = tab if tab in TABS else "mine"
    query = request.GET.get("q", "").strip()
    mine = approvals_pending(decider=request.user)
    listed = {"mine": mine, "all": approvals_pending(), "decided": approvals_decided()}[tab]
    page = Paginator(approvals_search(approvals=listed, query=query), APPROVALS_PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    context = {
        "tab": tab,
        "query": query,
        "page": page,
        "rows": [_row(approval, now) for approval in page.object_list],
        "mine_count": mine.count(),
        "pending_count": approvals_pending().count(),
        "overdue_count": mine.filter(due_at__lte=now).count(),
    }
    return render(request, "workflows/approvals.html", context)


def _decide(request, approval: Approval, *, actor: Any, via: str, form: DecisionForm, decision: str) -> Approval | None:
    """Run the service; a refusal goes next to the comment when the comment is what it refused."""
    comment = form.data.get("comment", "")
    try:
        return approval_decide(approval=approval, decision=decision, actor=actor, comment=comment, via=via)
    except OperationRefused as refused:
        form.is_valid()
        form.add_error("comment" if refused.field == "comment" else None, refused.message)
        return None


def _run_summary(approval: Approval) -> dict[str, Any]:
    run = approval.run
    return {
        "correlation": sorted(run.correlation.items()) if isinstance(run.correlation, dict) else [],
        "input_json": json_pretty(run.input) if run.input else "",
        "context_json": json_pretty(run.context) if run.context else "",
        "earlier": list(run_approvals(run=run).exclude(pk=approval.pk).reverse()[:10]),  # newest first
    }


@require_http_methods(["GET", "POST"])
@tenant_role_required()
def approval_detail(request, approval_id: int):
    approval = _approval_or_404(approval_id)
    can_decide = approval_can_decide(approval, request.user)
    form = DecisionForm(request.POST or None)
    status = 200
    if request.method == "POST":
        decision = request.POST.get("decision", "")
        if not can_decide:
            form.add_error(
                None,
                _("This approval is assigned to %(roles)s; your role cannot decide it.") % {"roles": _roles_text(approval.assignee_roles)},
            )
            status = 403
        else:
            decided = _decide(request, approval, actor=request.user, via="web", form=form, decision=decision)
            if decided is not None:
                label = DECISION_DONE.get(decision, decision)
                messages.success(
                    request,
                    _("%(decision)s: “%(title)s”. Run #%(number)s goes on from here.")
                    % {"decision": label, "title": decided.title, "number": decided.run_id},
                )
                return redirect("workflows:approvals")
            status = 400
            approval = _approval_or_404(approval_id)
    now = timezone.now()
    context = {
        **_row(approval, now),
        "form": form,
        "can_decide": can_decide and approval.status == ApprovalStatus.PENDING,
        "decisions": [(value, DECISION_LABELS[value]) for value in APPROVAL_DECISIONS],
        **_run_summary(approval),
    }
    return render(request, "workflows/approval_detail.html", context, status=status)


# --- signed email links -----------------------------------------------------------------------------
#
# A link names the approval, the person and the decision, but it is not a credential on its own: a
# mailbox is easier to take over than an account. Deciding needs that person's own session, with
# the second factor when their account has one or their role requires it (`_mfa_step`); the link
# keeps its place through the sign-in (`next=`), so the person lands on the confirmation page.


def _link_refused(request, reason: str, *, status: int = 403, title: str = ""):
    context = {"refused": reason, "refused_title": title or _("This link cannot be used")}
    return render(request, "workflows/approval_link.html", context, status=status)


def _mfa_step(request, person: User) -> HttpResponseRedirect | None:
    """The second-factor step this session owes before the person may decide (it comes back to
    the link), or None.

    Owed when the person's role requires MFA or they set up an authenticator (allauth then asks
    for it at every sign-in) and this session has not passed one – e.g. it signed in with the
    password alone before the authenticator existed. allauth's own step records the pass."""
    has_authenticator = is_mfa_enabled(person, types=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN])
    if not (person.requires_mfa or has_authenticator):
        return None
    if any(record.get("method") == "mfa" for record in get_authentication_records(request, person)):
        return None
    if not has_authenticator:  # required but not set up yet: the same step as MfaRequiredMiddleware
        return HttpResponseRedirect(reverse("mfa_activate_totp") + "?required=1")
    return redirect_to_login(request.get_full_path(), login_url=reverse("mfa_reauthenticate"))


@require_http_methods(["GET", "POST"])
def approval_link(request, token: str):
    """An approval email's link. Nobody signed in: off to sign-in, then back here. Signed in as
    someone else: refused, with a way to switch accounts. The addressee, with MFA where their
    account needs it: GET shows what will be decided and asks to confirm (mail scanners follow
    links, so GET never decides); POST decides as them, audited with `via="email"`."""
    try:
        link = approval_link_read(token)
    except OperationRefused as refused:
        return _link_refused(request, str(refused))
    approval = approval_get(approval_id=link.approval_id)
    if approval is None:
        return _link_refused(request, _("This approval no longer exists; its run may have been deleted."), status=404)
    person = User.objects.filter(pk=link.user_id, support_grant_id__isnull=True).first()
    if person is None or not person.is_active or person.role not in TENANT_STAFF_ROLES:
        return _link_refused(request, _("The person this link was sent to can no longer decide in this workspace."))
    here = request.get_full_path()
    if not request.user.is_authenticated:
        return redirect_to_login(here)
    if request.user.pk != person.pk:
        someone_else = {"wrong_person": True, "person": person, "switch_next": here}
        return render(request, "workflows/approval_link.html", someone_else, status=403)
    mfa_step = _mfa_step(request, person)
    if mfa_step is not None:
        return mfa_step
    if not approval_can_decide(approval, person):
        return _link_refused(
            request,
            _("Your role (%(role)s) is no longer among the people who decide this approval (%(roles)s).")
            % {"role": Role(person.role).label, "roles": _roles_text(approval.assignee_roles)},
        )
    form = DecisionForm(request.POST or None)
    context: dict[str, Any] = {
        **_row(approval, timezone.now()),
        "person": person,
        "decision": link.decision,
        "decision_label": DECISION_LABELS[link.decision],
        "comment_required": link.decision in COMMENT_REQUIRED,
        "form": form,
    }
    if approval.status != ApprovalStatus.PENDING:
        return render(request, "workflows/approval_link.html", {**context, "already": True})
    if request.method == "POST":
        decided = _decide(request, approval, actor=person, via="email", form=form, decision=link.decision)
        if decided is not None:
            return render(request, "workflows/approval_link.html", {**context, **_row(decided, timezone.now()), "done": True})
        return render(request, "workflows/approval_link.html", context, status=400)
    return render(request, "workflows/approval_link.html", context)
