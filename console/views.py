"""The MSP console: partners, tenants, provisioning, support access, audit."""

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role
from console.forms import ReasonForm, SupportAccessForm, TenantForm
from console.permissions import msp_staff_required
from governance.selectors import audit_actions, audit_events_filter
from tenants import services
from tenants.branding import BrandColourError
from tenants.models import SupportAccessGrant, Tenant, TenantStatus
from tenants.selectors import partners_with_counts, site_for_tenant, support_grants_for_tenant, tenants_filter

SUPPORT_ENTER_SALT = "baton.support.enter"


def _page(request, items, per_page: int = 25):
    return Paginator(items, per_page).get_page(request.GET.get("page"))


@msp_staff_required()
def home(request):
    return redirect("console:tenants")


@msp_staff_required()
def partners(request):
    return render(request, "console/partners.html", {"partners": partners_with_counts()})


@msp_staff_required()
def tenants(request):
    query, status = request.GET.get("q", "").strip(), request.GET.get("status", "")
    sort = request.GET.get("sort", "name")
    allowed_sorts = {"name", "-name", "created_at", "-created_at", "status", "-status"}
    page = _page(request, tenants_filter(query=query, status=status).order_by(sort if sort in allowed_sorts else "name"))
    context = {"page": page, "query": query, "status": status, "sort": sort, "statuses": TenantStatus.choices}
    template = "console/_tenant_rows.html" if request.htmx else "console/tenants.html"
    return render(request, template, context)


@msp_staff_required(Role.MSP_ADMIN, Role.MSP_OPERATOR)
def tenant_new(request):
    form = TenantForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            tenant = services.tenant_provision(
                partner=data["partner"],
                name=data["name"],
                slug=data["slug"],
                domains=[data["domain"]] if data["domain"] else [],
                branding=services.BrandingInput(
                    product_name=data["product_name"],
                    primary_color=data["primary_color"],
                    on_primary_color=data["on_primary_color"],
                    accent_color=data["accent_color"],
                    email_sender_address=data["email_sender_address"],
                    email_sender_name=data["product_name"],
                    logo=data["logo"],
                ),
                plan=data["plan"],
                time_zone=data["time_zone"],
                admin_email=data["admin_email"],
                actor=request.user,
                run_async=True,
            )
        except services.TenantError as exc:
            field = "domain" if exc.field == "domains" else exc.field
            form.add_error(field if field in form.fields else None, exc.message)
        except BrandColourError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Provisioning {tenant.name}…")
            return redirect("console:tenant", tenant_id=tenant.pk)
    return render(request, "console/tenant_new.html", {"form": form}, status=400 if form.errors else 200)


@msp_staff_required()
def tenant_detail(request, tenant_id: int):
    tenant = get_object_or_404(Tenant.objects.select_related("partner", "branding"), pk=tenant_id)
    context = {
        "tenant": tenant,
        "tenant_site": site_for_tenant(tenant),
        "domains": tenant.domains.all(),
        "steps": tenant.provisioning_steps.all(),
        "grants": support_grants_for_tenant(tenant=tenant)[:20],
        "reason_form": ReasonForm(),
        "support_max_hours": settings.BATON_SUPPORT_ACCESS_MAX_HOURS,
    }
    return render(request, "console/tenant_detail.html", context)


@msp_staff_required()
def tenant_progress(request, tenant_id: int):
    """Polled by the detail page while provisioning: the log and status so far."""
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    context = {"tenant": tenant, "steps": tenant.provisioning_steps.all()}
    if tenant.status != TenantStatus.PROVISIONING:
        context["tenant_site"] = site_for_tenant(tenant)  # the "open workspace" link, once there is one
    return render(request, "console/_provisioning.html", context)


def _tenant_action(request, tenant_id: int, action, done: str):
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    form = ReasonForm(request.POST)
    reason = form.data.get("reason", "")
    try:
        action(tenant=tenant, reason=reason, actor=request.user)
    except services.TenantError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{tenant.name} {done}.")
    return redirect("console:tenant", tenant_id=tenant.pk)


@require_POST
@msp_staff_required(Role.MSP_ADMIN)
def tenant_suspend(request, tenant_id: int):
    return _tenant_action(request, tenant_id, services.tenant_suspend, "suspended")


@require_POST
@msp_staff_required(Role.MSP_ADMIN)
def tenant_resume(request, tenant_id: int):
    return _tenant_action(request, tenant_id, services.tenant_resume, "resumed")


@require_POST
@msp_staff_required(Role.MSP_ADMIN)
def tenant_archive(request, tenant_id: int):
    return _tenant_action(request, tenant_id, services.tenant_archive, "archived")


@require_POST
@msp_staff_required(Role.MSP_ADMIN, Role.MSP_OPERATOR)
def tenant_retry(request, tenant_id: int):
    tenant = get_object_or_404(Tenant, pk=tenant_id, status=TenantStatus.FAILED)
    branding = tenant.branding
    services.tenant_provision(
        partner=tenant.partner,
        name=tenant.name,
        slug=tenant.slug,
        domains=list(tenant.domains.values_list("domain", flat=True)),
        branding=services.BrandingInput(
            product_name=branding.product_name,
            primary_color=branding.primary_color,
            on_primary_color=branding.on_primary_color,
            accent_color=branding.accent_color,
        ),
        plan=tenant.plan,
        time_zone=tenant.time_zone,
        admin_email=tenant.admin_email,
        actor=request.user,
        run_async=True,
    )
    messages.success(request, f"Retrying {tenant.name}…")
    return redirect("console:tenant", tenant_id=tenant.pk)


@require_POST
@msp_staff_required()
def support_request(request, tenant_id: int):
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    form = SupportAccessForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("console:tenant", tenant_id=tenant.pk)
    try:
        services.support_access_request(
            tenant=tenant, staff_user=request.user, reason=form.cleaned_data["reason"], hours=form.cleaned_data["hours"], actor=request.user
        )
    except services.TenantError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Support access to {tenant.name} granted for {form.cleaned_data['hours']:g} h.")
    return redirect("console:tenant", tenant_id=tenant.pk)


@require_POST
@msp_staff_required()
def support_enter(request, grant_id: int):
    """Hand a short-lived, signed ticket to the tenant's host, which opens a support session there."""
    grant = get_object_or_404(SupportAccessGrant.objects.select_related("tenant"), pk=grant_id, staff_user=request.user)
    ticket = signing.dumps({"grant": grant.pk, "schema": grant.tenant.schema_name}, salt=SUPPORT_ENTER_SALT)
    return redirect(site_for_tenant(grant.tenant).base_url + f"/support/enter?ticket={ticket}")


@require_POST
@msp_staff_required()
def support_revoke(request, grant_id: int):
    grant = get_object_or_404(SupportAccessGrant, pk=grant_id)
    services.support_access_revoke(grant=grant, actor=request.user, reason="revoked from the console")
    messages.success(request, "Support access revoked.")
    return redirect("console:tenant", tenant_id=grant.tenant_id)


@msp_staff_required()
def audit(request):
    filters = {key: request.GET.get(key, "").strip() for key in ("q", "action", "actor", "tenant")}
    events = audit_events_filter(query=filters["q"], action=filters["action"], actor=filters["actor"], tenant_slug=filters["tenant"])
    return render(request, "console/audit.html", {"page": _page(request, events, 50), "filters": filters, "actions": audit_actions()})
