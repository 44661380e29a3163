"""The status mapping pages: the tables that translate carriers' codes into Baton's tracking
vocabulary, their versions and codes.

Tenant staff may look; tenant admins and planners draft a new version and change its codes;
tenant admins publish it (and put a retired version back in force). A published version never
changes – the services refuse and the database refuses – so the pages offer "draft a new
version" instead of editing one."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import tenant_role_required
from logistics import selectors, services
from logistics.mapping_defaults import STATUS_KINDS
from logistics.models import MappingKind, MappingVersionStatus, Responsibility, StatusMappingVersion
from logistics.vocabulary import PROGRESSION_RANK, Signal, TrackingStatus

EDITORS = (Role.TENANT_ADMIN, Role.PLANNER)
PUBLISHERS = (Role.TENANT_ADMIN,)
PER_PAGE = 50


def _can(user, roles: tuple[str, ...]) -> bool:
    return user.role in roles or bool(user.support_grant_id)


def _version_or_404(kind: str, number: int) -> StatusMappingVersion:
    version = selectors.mapping_version_get(kind, number) if kind in MappingKind.values else None
    if version is None:
        raise Http404("No such mapping version.")
    return version


def _version_url(version: StatusMappingVersion, anchor: str = "") -> str:
    return reverse("logistics:mapping_version", args=[version.kind, version.number]) + anchor


class EntryForm(forms.Form):
    """One code of a draft; the status fields or the reason fields, by the table's kind."""

    code = forms.CharField(
        max_length=40, label=gettext_lazy("Code"), help_text=gettext_lazy("Exactly as partners send it, such as X6 or in_transit.")
    )
    description = forms.CharField(max_length=200, label=gettext_lazy("Meaning"))
    status = forms.ChoiceField(
        required=False,
        label=gettext_lazy("Baton status"),
        choices=[("", gettext_lazy("Choose a status")), *((value, gettext_lazy(label)) for value, label in TrackingStatus.choices)],
    )
    estimate = forms.BooleanField(required=False, label=gettext_lazy("An estimate (moves the ETA, never the status)"))
    responsible = forms.ChoiceField(
        required=False,
        label=gettext_lazy("Responsible"),
        choices=[("", gettext_lazy("Choose who is responsible")), *Responsibility.choices],
    )
    signal = forms.ChoiceField(
        required=False,
        label=gettext_lazy("Signal for exceptions"),
        choices=[("", gettext_lazy("None")), *Signal.choices],
        help_text=gettext_lazy("What exception handling looks for."),
    )

    def __init__(self, *args: Any, kind: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kind = kind
        if kind in STATUS_KINDS:
            del self.fields["responsible"]
            self.fields["status"].required = True
        else:
            del self.fields["status"]
            del self.fields["estimate"]
            self.fields["responsible"].required = True


def _rows(version: StatusMappingVersion, query: str, status: str) -> Any:
    return selectors.mapping_entries(version, query=query, status=status)


def _version_page(request, version: StatusMappingVersion, *, form: EntryForm | None = None, status: int = 200):
    query = request.GET.get("q", "").strip()
    status_filter = request.GET.get("status", "")
    is_status_kind = version.kind in STATUS_KINDS
    valid_filters = TrackingStatus.values if is_status_kind else Responsibility.values
    status_filter = status_filter if status_filter in valid_filters else ""
    page = Paginator(_rows(version, query, status_filter), PER_PAGE).get_page(request.GET.get("page"))
    can_edit = version.status == MappingVersionStatus.DRAFT and _can(request.user, EDITORS)
    editing = request.GET.get("edit", "").strip()
    if form is None and can_edit:
        initial: dict[str, Any] = {}
        entry = version.entries.filter(code=editing).first() if editing else None
        if entry is not None:
            initial = {
                "code": entry.code,
                "description": entry.description,
                "status": entry.status,
                "estimate": entry.estimate,
                "responsible": entry.responsible,
                "signal": entry.signal,
            }
        form = EntryForm(initial=initial, kind=version.kind)
    active = StatusMappingVersion.objects.filter(kind=version.kind, status=MappingVersionStatus.ACTIVE).first()
    against = active if version.status == MappingVersionStatus.DRAFT else version.based_on
    context = {
        "version": version,
        "kind_label": MappingKind(version.kind).label,
        "is_status_kind": is_status_kind,
        "page": page,
        "entries": page.object_list,
        "query": query,
        "status_filter": status_filter,
        "filter_choices": TrackingStatus.choices if is_status_kind else Responsibility.choices,
        "filtered": bool(query or status_filter),
        "total": version.entries.count(),
        "form": form,
        "editing": editing,
        "can_edit": can_edit,
        "can_publish": version.status == MappingVersionStatus.DRAFT and _can(request.user, PUBLISHERS),
        "can_activate": version.status == MappingVersionStatus.RETIRED and _can(request.user, PUBLISHERS),
        "active": active,
        "against": against,
        "changes": selectors.mapping_changes(version, against) if against is not None and against.pk != version.pk else None,
        "has_errors": status == 400,
    }
    return render(request, "logistics/mapping_version.html", context, status=status)


def _progression() -> list[tuple[int, list[tuple[str, str]]]]:
    """The vocabulary by rank, lowest first: statuses of one rank share a row."""
    ranks: dict[int, list[tuple[str, str]]] = {}
    for value, label in TrackingStatus.choices:
        ranks.setdefault(PROGRESSION_RANK[value], []).append((value, label))
    return sorted(ranks.items())


@tenant_role_required()
def mappings(request):
    tables = selectors.mapping_tables()
    context = {
        "tables": tables,
        "can_edit": _can(request.user, EDITORS),
        "any": any(table.versions for table in tables),
        "progression": _progression(),
    }
    return render(request, "logistics/mappings.html", context)


@require_POST
@tenant_role_required(*EDITORS)
def mapping_draft_new(request, kind: str):
    if kind not in MappingKind.values:
        raise Http404("No such mapping table.")
    try:
        version = services.mapping_version_draft_create(kind=kind, actor=request.user, notes=request.POST.get("notes", ""))
    except services.MappingRefused as error:
        messages.error(request, error.message)
        return redirect(reverse("logistics:mappings") + f"#{kind}")
    if version.based_on:
        made = _("Draft v%(number)s made from v%(origin)s. Change its codes, then publish it to put it in force.") % {
            "number": version.number,
            "origin": version.based_on.number,
        }
    else:
        made = _("Draft v%(number)s made. Change its codes, then publish it to put it in force.") % {"number": version.number}
    messages.success(request, made)
    return redirect(_version_url(version))


@tenant_role_required()
def mapping_version(request, kind: str, number: int):
    return _version_page(request, _version_or_404(kind, number))


@require_POST
@tenant_role_required(*EDITORS)
def mapping_entry_save(request, kind: str, number: int):
    version = _version_or_404(kind, number)
    form = EntryForm(request.POST, kind=version.kind)
    if form.is_valid():
        data = form.cleaned_data
        try:
            entry = services.mapping_entry_set(
                version=version,
                code=data["code"],
                description=data["description"],
                status=data.get("status", ""),
                estimate=bool(data.get("estimate")),
                responsible=data.get("responsible", ""),
                signal=data.get("signal", ""),
                actor=request.user,
            )
        except services.MappingRefused as error:
            if error.field not in form.fields:  # not about the input: the version or the actor
                messages.error(request, error.message)
                return redirect(_version_url(version))
            form.add_error(error.field, error.message)
        else:
            messages.success(request, _("%(code)s saved in draft v%(number)s.") % {"code": entry.code, "number": version.number})
            return redirect(_version_url(version, f"?q={entry.code}#entries"))
    return _version_page(request, version, form=form, status=400)


@require_POST
@tenant_role_required(*EDITORS)
def mapping_entry_remove(request, kind: str, number: int):
    version = _version_or_404(kind, number)
    code = request.POST.get("code", "")
    try:
        services.mapping_entry_remove(version=version, code=code, actor=request.user)
    except services.MappingRefused as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("%(code)s removed from draft v%(number)s.") % {"code": code, "number": version.number})
    return redirect(_version_url(version, "#entries"))


@require_POST
@tenant_role_required(*EDITORS)
def mapping_version_discard(request, kind: str, number: int):
    version = _version_or_404(kind, number)
    try:
        services.mapping_version_discard(version=version, actor=request.user)
    except services.MappingRefused as error:
        messages.error(request, error.message)
        return redirect(_version_url(version))
    messages.success(request, _("Draft v%(number)s discarded.") % {"number": number})
    return redirect(reverse("logistics:mappings") + f"#{kind}")


@require_POST
@tenant_role_required(*PUBLISHERS)
def mapping_version_publish(request, kind: str, number: int):
    version = _version_or_404(kind, number)
    try:
        services.mapping_version_publish(version=version, notes=request.POST.get("notes", ""), actor=request.user)
    except services.MappingRefused as error:
        messages.error(request, error.message)
        return redirect(_version_url(version))
    messages.success(
        request,
        _("v%(number)s is now in force: new events are translated with it. Events already stored keep their version.") % {"number": number},
    )
    return redirect(_version_url(version))


@require_POST
@tenant_role_required(*PUBLISHERS)
def mapping_version_activate(request, kind: str, number: int):
    version = _version_or_404(kind, number)
    try:
        services.mapping_version_activate(version=version, reason=request.POST.get("reason", ""), actor=request.user)
    except services.MappingRefused as error:
        messages.error(request, error.message)
        return redirect(_version_url(version, "#activate"))
    messages.success(request, _("v%(number)s is back in force.") % {"number": number})
    return redirect(_version_url(version))
