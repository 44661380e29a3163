"""The MSP console: partners, tenants, provisioning, support access, audit."""

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import MSP_ROLES, Role, User
from accounts.selectors import user_for_management, users_filter
from accounts.services import AccountError, user_deactivate, user_invite, user_role_change
from console.forms import (
    MSP_ROLE_CHOICES,
    BrandingForm,
    PartnerForm,
    ReasonForm,
    RoleForm,
    StaffInviteForm,
    SupportAccessForm,
    TemplateVersionForm,
    TenantForm,
    WorkflowTemplateForm,
)
from console.permissions import msp_staff_required
from governance.selectors import audit_actions, audit_events_filter
from tenants import services
from tenants.branding import BrandColourError
from tenants.domains import domain_check_url, domain_token
from tenants.models import Branding, Domain, SupportAccessGrant, Tenant, TenantStatus
from tenants.selectors import partners_with_counts, site_for_console, site_for_tenant, support_grants_for_tenant, tenants_filter
from workflows import services as workflow_services
from workflows.diagram import diagram_svg
from workflows.models import TemplateCategory, WorkflowTemplate
from workflows.selectors import library_templates_all, template_latest_version, template_versions

SUPPORT_ENTER_SALT = "baton.support.enter"


def _page(request, items, per_page: int = 25):
    return Paginator(items, per_page).get_page(request.GET.get("page"))


@msp_staff_required()
def home(request):
    return redirect("console:tenants")


def _form_error(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def _partners_render(request, *, form: PartnerForm | None = None, status: int = 200):
    if form is None and request.user.role == Role.MSP_ADMIN:
        form = PartnerForm()
    return render(request, "console/partners.html", {"partners": partners_with_counts(), "form": form}, status=status)


@msp_staff_required()
def partners(request):
    return _partners_render(request)


@msp_staff_required(Role.MSP_ADMIN)
def partner_new(request):
    form = PartnerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            partner = services.partner_create(
                name=data["name"], slug=data["slug"], branding=services.BrandingInput(product_name=data["product_name"]), actor=request.user
            )
        except (services.TenantError, BrandColourError) as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, _("Partner %(name)s created.") % {"name": partner.name})
            return redirect("console:partners")
    return _partners_render(request, form=form, status=400 if form.errors else 200)


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
            messages.success(request, _("Provisioning %(name)s…") % {"name": tenant.name})
            return redirect("console:tenant", tenant_id=tenant.pk)
    return render(request, "console/tenant_new.html", {"form": form}, status=400 if form.errors else 200)


def _brand_initial(tenant: Tenant) -> dict[str, str]:
    brand = Branding.objects.filter(tenant=tenant).first()
    if brand is None:
        return {"product_name": tenant.name, "primary_color": "#1f4e79", "on_primary_color": "#ffffff", "accent_color": "#b4490c"}
    fields = ("product_name", "primary_color", "on_primary_color", "accent_color", "email_sender_name", "email_sender_address")
    return {name: getattr(brand, name) for name in fields}


def _tenant_detail_render(request, tenant: Tenant, *, brand_form: BrandingForm | None = None, brand_open: bool = False, status: int = 200):
    brand = Branding.objects.filter(tenant=tenant).first()
    domains = [
        {"row": domain, "own_host": services.domain_is_installation_host(domain.domain), "check_url": domain_check_url(domain.domain)}
        for domain in tenant.domains.order_by("-is_primary", "domain")
    ]
    context = {
        "tenant": tenant,
        "tenant_site": site_for_tenant(tenant),
        "brand": brand,
        "domains": domains,
        "example_check_url": next((item["check_url"] for item in domains if not item["own_host"]), domain_check_url("track.example.com")),
        "domain_token": domain_token(tenant),
        "installation_host": f"{tenant.slug}.{settings.BATON_TENANT_DOMAIN_SUFFIX}",
        "steps": tenant.provisioning_steps.all(),
        "grants": support_grants_for_tenant(tenant=tenant)[:20],
        "reason_form": ReasonForm(),
        "support_max_hours": settings.BATON_SUPPORT_ACCESS_MAX_HOURS,
        "can_edit_brand": request.user.role in (Role.MSP_ADMIN, Role.MSP_OPERATOR),
        "brand_form": brand_form or BrandingForm(initial=_brand_initial(tenant)),
        "brand_open": brand_open,
    }
    return render(request, "console/tenant_detail.html", context, status=status)


@msp_staff_required()
def tenant_detail(request, tenant_id: int):
    tenant = get_object_or_404(Tenant.objects.select_related("partner"), pk=tenant_id)
    return _tenant_detail_render(request, tenant)


@msp_staff_required(Role.MSP_ADMIN, Role.MSP_OPERATOR)
def tenant_brand(request, tenant_id: int):
    """The "Edit brand" form of the detail page; a GET opens the page with the form unfolded."""
    tenant = get_object_or_404(Tenant.objects.select_related("partner"), pk=tenant_id)
    if request.method != "POST":
        return _tenant_detail_render(request, tenant, brand_open=True)
    form = BrandingForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.tenant_branding_update(
                tenant=tenant,
                branding=services.BrandingInput(
                    product_name=data["product_name"],
                    primary_color=data["primary_color"],
                    on_primary_color=data["on_primary_color"],
                    accent_color=data["accent_color"],
                    email_sender_name=data["email_sender_name"],
                    email_sender_address=data["email_sender_address"],
                    logo=data["logo"],  # None keeps the current one
                    favicon=data["favicon"],
                ),
                actor=request.user,
            )
        except (services.TenantError, BrandColourError) as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, _("Brand of %(name)s saved: its pages and emails use it from now on.") % {"name": tenant.name})
            return redirect("console:tenant", tenant_id=tenant.pk)
    return _tenant_detail_render(request, tenant, brand_form=form, brand_open=True, status=400)


@require_POST
@msp_staff_required(Role.MSP_ADMIN, Role.MSP_OPERATOR)
def tenant_domain_add(request, tenant_id: int):
    """A custom domain for the tenant; its DNS must point at this installation."""
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    try:
        domain = services.tenant_domain_add(tenant=tenant, host=request.POST.get("domain", ""), actor=request.user)
    except services.TenantError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("%(domain)s now serves %(name)s.") % {"domain": domain.domain, "name": tenant.name})
    return redirect("console:tenant", tenant_id=tenant.pk)


def _tenant_domain(tenant_id: int, domain_id: int) -> Domain:
    """A domain of that tenant only: another tenant's domain id is not found."""
    return get_object_or_404(Domain.objects.select_related("tenant"), pk=domain_id, tenant_id=tenant_id)


@require_POST
@msp_staff_required(Role.MSP_ADMIN, Role.MSP_OPERATOR)
def tenant_domain_remove(request, tenant_id: int, domain_id: int):
    domain = _tenant_domain(tenant_id, domain_id)
    try:
        services.tenant_domain_remove(domain=domain, actor=request.user, reason=request.POST.get("reason", ""))
    except services.TenantError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("%(domain)s no longer serves %(name)s.") % {"domain": domain.domain, "name": domain.tenant.name})
    return redirect("console:tenant", tenant_id=tenant_id)


@require_POST
@msp_staff_required(Role.MSP_ADMIN, Role.MSP_OPERATOR)
def tenant_domain_primary(request, tenant_id: int, domain_id: int):
    domain = _tenant_domain(tenant_id, domain_id)
    try:
        services.tenant_domain_make_primary(domain=domain, actor=request.user)
    except services.TenantError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("%(domain)s is now the primary domain: links in emails point at it.") % {"domain": domain.domain})
    return redirect("console:tenant", tenant_id=tenant_id)


@require_POST
@msp_staff_required(Role.MSP_ADMIN, Role.MSP_OPERATOR)
def tenant_domain_verify(request, tenant_id: int, domain_id: int):
    domain = services.tenant_domain_verify(domain=_tenant_domain(tenant_id, domain_id), actor=request.user)
    if domain.verified_at:
        messages.success(
            request,
            _("%(domain)s is verified: it reaches this installation and %(name)s.") % {"domain": domain.domain, "name": domain.tenant.name},
        )
    else:
        messages.error(request, _("%(domain)s is not verified: %(error)s") % {"domain": domain.domain, "error": domain.verification_error})
    return redirect("console:tenant", tenant_id=tenant_id)


@msp_staff_required()
def tenant_progress(request, tenant_id: int):
    """Polled by the detail page while provisioning: the log and status so far."""
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    context = {"tenant": tenant, "steps": tenant.provisioning_steps.all()}
    if tenant.status != TenantStatus.PROVISIONING:
        context["tenant_site"] = site_for_tenant(tenant)  # the "open workspace" link, once there is one
    return render(request, "console/_provisioning.html", context)


def _tenant_action(request, tenant_id: int, action, done: str):
    """`done` is the success message, with %(name)s for the tenant's name."""
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    form = ReasonForm(request.POST)
    reason = form.data.get("reason", "")
    try:
        action(tenant=tenant, reason=reason, actor=request.user)
    except services.TenantError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done % {"name": tenant.name})
    return redirect("console:tenant", tenant_id=tenant.pk)


@require_POST
@msp_staff_required(Role.MSP_ADMIN)
def tenant_suspend(request, tenant_id: int):
    return _tenant_action(request, tenant_id, services.tenant_suspend, _("%(name)s suspended."))


@require_POST
@msp_staff_required(Role.MSP_ADMIN)
def tenant_resume(request, tenant_id: int):
    return _tenant_action(request, tenant_id, services.tenant_resume, _("%(name)s resumed."))


@require_POST
@msp_staff_required(Role.MSP_ADMIN)
def tenant_archive(request, tenant_id: int):
    return _tenant_action(request, tenant_id, services.tenant_archive, _("%(name)s archived."))


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
    messages.success(request, _("Retrying %(name)s…") % {"name": tenant.name})
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
        messages.success(
            request,
            _("Support access to %(name)s granted for %(hours)s h.") % {"name": tenant.name, "hours": f"{form.cleaned_data['hours']:g}"},
        )
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
    messages.success(request, _("Support access revoked."))
    return redirect("console:tenant", tenant_id=grant.tenant_id)


@msp_staff_required()
def audit(request):
    filters = {key: request.GET.get(key, "").strip() for key in ("q", "action", "actor", "tenant")}
    events = audit_events_filter(query=filters["q"], action=filters["action"], actor=filters["actor"], tenant_slug=filters["tenant"])
    return render(request, "console/audit.html", {"page": _page(request, events, 50), "filters": filters, "actions": audit_actions()})


def _row_error_attach(people, row_error: dict | None) -> None:
    """Put a refused row action's message on its person (`role_error`, `deactivate_error`) for the template."""
    for person in people:
        if row_error and person.pk == row_error["user_id"]:
            setattr(person, f"{row_error['action']}_error", row_error["message"])


def _staff_render(request, *, form: StaffInviteForm | None = None, row_error: dict | None = None, status: int = 200):
    query = request.GET.get("q", "").strip()
    page = _page(request, users_filter(roles=MSP_ROLES, query=query))
    _row_error_attach(page.object_list, row_error)
    context = {"page": page, "query": query, "form": form or StaffInviteForm(), "role_choices": MSP_ROLE_CHOICES}
    return render(request, "console/staff.html", context, status=status)


def _staff_member(user_id: int) -> User:
    person = user_for_management(user_id=user_id, roles=MSP_ROLES)
    if person is None:
        raise Http404("No such MSP staff member.")
    return person


def _staff_refused(request, person: User, action: str, message: str):
    messages.error(request, f"{person.email}: {message}")
    return _staff_render(request, row_error={"user_id": person.pk, "action": action, "message": message}, status=400)


@msp_staff_required(Role.MSP_ADMIN)
def staff(request):
    form = StaffInviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user_invite(email=data["email"], role=data["role"], full_name=data["full_name"], actor=request.user, site=site_for_console())
        except AccountError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": data["email"]})
            return redirect("console:staff")
    return _staff_render(request, form=form, status=400 if form.errors else 200)


@require_POST
@msp_staff_required(Role.MSP_ADMIN)
def staff_role(request, user_id: int):
    person = _staff_member(user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _staff_refused(request, person, "role", _form_error(form))
    try:
        user_role_change(user=person, role=form.cleaned_data["role"], actor=request.user)
    except AccountError as exc:
        return _staff_refused(request, person, "role", exc.message)
    messages.success(request, _("%(email)s is now %(role)s.") % {"email": person.email, "role": person.get_role_display()})
    return redirect("console:staff")


@require_POST
@msp_staff_required(Role.MSP_ADMIN)
def staff_deactivate(request, user_id: int):
    person = _staff_member(user_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _staff_refused(request, person, "deactivate", _("Say why you deactivate them: the reason goes into the audit log."))
    try:
        user_deactivate(user=person, reason=form.cleaned_data["reason"], actor=request.user)
    except AccountError as exc:
        return _staff_refused(request, person, "deactivate", exc.message)
    messages.success(request, _("%(email)s is deactivated and can no longer sign in.") % {"email": person.email})
    return redirect("console:staff")


# ---------- workflow template library ----------

LIBRARY_WRITERS = (Role.MSP_ADMIN, Role.MSP_OPERATOR)
NO_PARAMETERS = {"type": "object", "properties": {}}


def _template_rows(templates) -> list[dict]:
    partners = {partner.pk: partner.name for partner in partners_with_counts()}
    return [
        {
            "template": template,
            "latest": template_latest_version(template=template),
            "owner": partners.get(template.partner_id, _("Partner #%(id)s") % {"id": template.partner_id})
            if template.partner_id
            else _("Platform"),
        }
        for template in templates
    ]


@msp_staff_required()
def workflow_templates(request):
    filters = {key: request.GET.get(key, "").strip() for key in ("q", "category", "owner")}
    templates = library_templates_all(query=filters["q"], category=filters["category"], owner=filters["owner"])
    page = _page(request, templates)
    context = {
        "page": page,
        "rows": _template_rows(page.object_list),
        "filters": filters,
        "categories": TemplateCategory.choices,
        "partners": partners_with_counts(),
        "can_write": request.user.role in LIBRARY_WRITERS,
    }
    return render(request, "console/templates.html", context)


@msp_staff_required(*LIBRARY_WRITERS)
def workflow_template_new(request):
    form = WorkflowTemplateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            template = workflow_services.template_create(
                key=data["key"],
                name=data["name"],
                category=data["category"],
                description=data["description"],
                partner_id=data["partner"].pk if data["partner"] else None,
                actor=request.user,
            )
        except workflow_services.WorkflowError as exc:
            field = "partner" if exc.field == "partner_id" else exc.field
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            messages.success(
                request, _("Template %(name)s created. Publish its first version to put it in the library.") % {"name": template.name}
            )
            return redirect("console:workflow_template", key=template.key)
    return render(request, "console/templates_new.html", {"form": form}, status=400 if form.errors else 200)


def _next_version(latest) -> str:
    return f"{latest.major}.{latest.minor + 1}.0" if latest else "1.0.0"


@msp_staff_required()
def workflow_template_detail(request, key: str):
    template = get_object_or_404(WorkflowTemplate, key=key)
    versions = list(template_versions(template=template))
    latest = versions[0] if versions else None
    can_write = request.user.role in LIBRARY_WRITERS
    form = None
    problems: list = []
    if can_write:
        initial = {"version": _next_version(latest), "parameters_schema": NO_PARAMETERS}
        if latest:
            initial.update(definition=latest.definition, parameters_schema=latest.parameters_schema, documentation=latest.documentation)
        form = TemplateVersionForm(request.POST or None, initial=initial)
    elif request.method == "POST":
        raise PermissionDenied(_("Your role cannot publish templates."))
    if form is not None and request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            published = workflow_services.template_version_publish(
                template=template,
                version=data["version"].strip(),
                definition=data["definition"],
                parameters_schema=data["parameters_schema"] or NO_PARAMETERS,
                documentation=data["documentation"],
                changelog=data["changelog"],
                actor=request.user,
            )
        except workflow_services.DefinitionInvalid as exc:
            problems = exc.problems
        except workflow_services.WorkflowError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(
                request,
                _("%(name)s v%(version)s published: tenants see it in their library now.")
                % {"name": template.name, "version": published.version},
            )
            return redirect("console:workflow_template", key=template.key)
    partner = next((p for p in partners_with_counts() if p.pk == template.partner_id), None) if template.partner_id else None
    context = {
        "template": template,
        "owner": partner.name
        if partner
        else (_("Platform") if not template.partner_id else _("Partner #%(id)s") % {"id": template.partner_id}),
        "versions": versions,
        "latest": latest,
        "form": form,
        "problems": problems,
        "diagram": diagram_svg(
            latest.definition,
            uid="console-tpl",
            title=_("Steps of %(name)s v%(version)s") % {"name": template.name, "version": latest.version},
        )
        if latest
        else "",
    }
    invalid = form is not None and form.is_bound and (form.errors or problems)
    return render(request, "console/templates_detail.html", context, status=400 if invalid else 200)
