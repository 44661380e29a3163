"""The tenant's host: the staff workspace shell and its settings pages."""

from django.contrib import messages
from django.contrib.auth import login
from django.core import signing
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import TENANT_STAFF_ROLES, ApiKey, Role, User
from accounts.selectors import user_for_management, users_filter
from accounts.services import (
    AccountError,
    api_key_create,
    api_key_revoke,
    support_user_for_grant,
    user_deactivate,
    user_invite,
    user_role_change,
)
from governance.selectors import audit_actions, audit_events_filter
from governance.services import Actor
from logistics.models import Severity
from logistics.selectors import customer_accounts_all
from portal.forms import STAFF_ROLE_CHOICES, ApiKeyForm, CustomerInviteForm, DeactivateForm, InviteForm, RoleForm
from portal.home_selectors import operations_summary
from portal.navigation import SHIPMENTS_PATH
from portal.permissions import tenant_role_required
from tenants.db import connection
from tenants.models import Branding
from tenants.selectors import site_for_tenant, support_grant_active, support_grants_for_tenant
from tenants.services import support_access_revoke

SUPPORT_ENTER_SALT = "baton.support.enter"
# logistics.models.Severity's labels are plain English (a model's choices): said here in words.
SEVERITY_LABELS = {
    Severity.LOW: gettext_lazy("Low"),
    Severity.MEDIUM: gettext_lazy("Medium"),
    Severity.HIGH: gettext_lazy("High"),
    Severity.CRITICAL: gettext_lazy("Critical"),
}


def home(request):
    """Staff: the operations home, "what needs me now", each count linking to its filtered list.
    Customers: where to follow their shipments."""
    if not request.user.is_authenticated:
        return redirect("account_login")
    context: dict = {"areas": _areas_for(request.user)}
    if not request.user.is_customer:
        now = timezone.now()
        summary = operations_summary(user=request.user, now=now)
        context["summary"] = summary
        context["severity_counts"] = [
            (value, SEVERITY_LABELS.get(value, label), summary.exceptions.by_severity[value]) for value, label in reversed(Severity.choices)
        ]
        context["approval_rows"] = [
            {"approval": approval, "overdue": approval.due_at is not None and approval.due_at <= now} for approval in summary.approvals.rows
        ]
    return render(request, "portal/home.html", context)


def _areas_for(user) -> list[dict[str, str]]:
    """The customer portal's areas; staff find theirs in the navigation and on the home cards."""
    if user.role == Role.CUSTOMER:
        return [
            {"name": _("Shipments"), "description": _("Follow your shipments: milestones, ETA, proof of delivery."), "url": SHIPMENTS_PATH},
            {
                "name": _("Notifications"),
                "description": _("Choose the milestones you hear about, by email or webhook, with quiet hours and digests."),
                "url": reverse("portal:notifications"),
            },
            {
                "name": _("API keys"),
                "description": _("Keys for your own systems to read your shipments."),
                "url": reverse("portal:account_api_keys"),
            },
        ]
    return []


@tenant_role_required(Role.TENANT_ADMIN)
def audit(request):
    filters = {key: request.GET.get(key, "").strip() for key in ("q", "action", "actor")}
    events = audit_events_filter(query=filters["q"], action=filters["action"], actor=filters["actor"])
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(request, "portal/audit.html", {"page": page, "filters": filters, "actions": audit_actions()})


MANAGED_ROLES = TENANT_STAFF_ROLES | {Role.CUSTOMER}


def _users_render(
    request,
    *,
    form: InviteForm | None = None,
    customer_form: CustomerInviteForm | None = None,
    row_error: dict | None = None,
    status: int = 200,
):
    """The users page: staff and customer users, each with its invitation form."""
    query = request.GET.get("q", "").strip()
    accounts = list(customer_accounts_all())
    accounts_by_id = {account.pk: account for account in accounts}
    staff = Paginator(users_filter(roles=TENANT_STAFF_ROLES, query=query), 25).get_page(request.GET.get("page"))
    customers = Paginator(users_filter(roles=[Role.CUSTOMER], query=query), 25).get_page(request.GET.get("cpage"))
    for person in [*staff.object_list, *customers.object_list]:
        person.customer_account = accounts_by_id.get(person.customer_account_id or 0)  # type: ignore[attr-defined]  # for the template
        if row_error and person.pk == row_error["user_id"]:
            setattr(person, f"{row_error['action']}_error", row_error["message"])
    context = {
        "query": query,
        "staff_page": staff,
        "customer_page": customers,
        "customer_accounts": accounts,
        "form": form or InviteForm(),
        "customer_form": customer_form or CustomerInviteForm(),
        "role_choices": STAFF_ROLE_CHOICES,
    }
    return render(request, "portal/users.html", context, status=status)


@tenant_role_required(Role.TENANT_ADMIN)
def users(request):
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user_invite(
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                full_name=form.cleaned_data["full_name"],
                actor=request.user,
                site=site_for_tenant(request.tenant),
            )
        except AccountError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": form.cleaned_data["email"]})
            return redirect("portal:users")
    return _users_render(request, form=form, status=400 if form.errors else 200)


@require_POST
@tenant_role_required(Role.TENANT_ADMIN)
def customer_invite(request):
    form = CustomerInviteForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            user_invite(
                email=data["email"],
                role=Role.CUSTOMER,
                full_name=data["full_name"],
                customer_account_id=data["customer_account"].pk,
                actor=request.user,
                site=site_for_tenant(request.tenant),
            )
        except AccountError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(
                request,
                _("Invitation sent to %(email)s for %(account)s.") % {"email": data["email"], "account": data["customer_account"].name},
            )
            return redirect(reverse("portal:users") + "#customers")
    return _users_render(request, customer_form=form, status=400)


def _person(user_id: int) -> User:
    person = user_for_management(user_id=user_id, roles=MANAGED_ROLES)
    if person is None:
        raise Http404("No such person here.")
    return person


def _user_refused(request, person: User, action: str, message: str):
    messages.error(request, f"{person.email}: {message}")
    return _users_render(request, row_error={"user_id": person.pk, "action": action, "message": message}, status=400)


@require_POST
@tenant_role_required(Role.TENANT_ADMIN)
def user_role(request, user_id: int):
    person = _person(user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _user_refused(request, person, "role", " ".join(str(error) for errors in form.errors.values() for error in errors))
    try:
        user_role_change(user=person, role=form.cleaned_data["role"], actor=request.user)
    except AccountError as exc:
        return _user_refused(request, person, "role", exc.message)
    messages.success(request, _("%(email)s is now %(role)s.") % {"email": person.email, "role": _(person.get_role_display())})
    return redirect("portal:users")


@require_POST
@tenant_role_required(Role.TENANT_ADMIN)
def user_deactivate_view(request, user_id: int):
    person = _person(user_id)
    form = DeactivateForm(request.POST)
    if not form.is_valid():
        return _user_refused(request, person, "deactivate", _("Say why you deactivate them: the reason goes into the audit log."))
    try:
        user_deactivate(user=person, reason=form.cleaned_data["reason"], actor=request.user)
    except AccountError as exc:
        return _user_refused(request, person, "deactivate", exc.message)
    messages.success(request, _("%(email)s is deactivated and can no longer sign in.") % {"email": person.email})
    return redirect("portal:users")


@tenant_role_required(Role.TENANT_ADMIN)
def api_keys(request):
    form = ApiKeyForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            account = form.cleaned_data["customer_account"]
            _key, new_secret = api_key_create(
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                actor=request.user,
                customer_account_id=account.pk if account else None,
            )
        except AccountError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            form = ApiKeyForm()
    accounts = dict(customer_accounts_all().values_list("pk", "name"))
    keys = list(ApiKey.objects.all())
    for key in keys:
        key.customer_account_name = accounts.get(key.customer_account_id or 0, "")  # type: ignore[attr-defined]  # for the template
    status = 400 if form.errors else 200
    return render(request, "portal/api_keys.html", {"form": form, "keys": keys, "new_secret": new_secret}, status=status)


@require_POST
@tenant_role_required(Role.TENANT_ADMIN)
def api_key_revoke_view(request, key_id: int):
    api_key_revoke(key=get_object_or_404(ApiKey, pk=key_id), actor=request.user)
    messages.success(request, _("Key revoked: requests with it are refused from now on."))
    return redirect("portal:api_keys")


@tenant_role_required(Role.TENANT_ADMIN)
def support_access(request):
    return render(request, "portal/support_access.html", {"grants": support_grants_for_tenant(tenant=request.tenant)})


@require_POST
@tenant_role_required(Role.TENANT_ADMIN)
def support_access_revoke_view(request, grant_id: int):
    grant = get_object_or_404(support_grants_for_tenant(tenant=request.tenant), pk=grant_id)
    support_access_revoke(grant=grant, actor=request.user, reason=request.POST.get("reason", "revoked by the tenant admin"))
    messages.success(request, _("Support access for %(email)s revoked.") % {"email": grant.staff_email})
    return redirect("portal:support_access")


def support_enter(request):
    """Open a support session from the console's signed ticket: valid once, for 60 s, on this tenant only."""
    try:
        ticket = signing.loads(request.GET.get("ticket", ""), salt=SUPPORT_ENTER_SALT, max_age=60)
    except signing.BadSignature:
        return HttpResponseForbidden(_("This support link is invalid or expired. Start again from the console."))
    if ticket.get("schema") != connection.schema_name:
        return HttpResponseForbidden(_("This support link is for another tenant."))
    grant = support_grant_active(grant_id=ticket["grant"], tenant=request.tenant)
    if grant is None:
        return HttpResponseForbidden(_("This support access was revoked or has expired."))
    if not cache.add(f"support-ticket:{request.GET['ticket'][-32:]}", 1, timeout=120):
        return HttpResponseForbidden(_("This support link was already used. Start again from the console."))
    user = support_user_for_grant(grant_id=grant.pk, staff_email=grant.staff_email, actor=Actor(email=grant.staff_email, kind="support"))
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.set_expiry(grant.expires_at)
    messages.info(request, _("Support session until %(time)s UTC. Everything you do is audited.") % {"time": f"{grant.expires_at:%H:%M}"})
    return redirect("portal:home")


def brand_asset(request, kind: str):
    if kind not in ("logo", "favicon"):
        raise Http404("No such brand asset.")
    """The tenant's logo or favicon, served from this host so the portal needs no outside access."""
    brand = Branding.objects.filter(tenant=request.tenant).first()
    asset = getattr(brand, kind, None) if brand else None
    if not asset:
        raise Http404("No such brand asset.")
    return FileResponse(asset.open("rb"))
