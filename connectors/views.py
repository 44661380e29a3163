"""The connections pages: the list with health, new (the kind first, then a form with that kind's
defaults), the detail with its edit form, Test connection, disable and enable.

Tenant staff may look; tenant admins and planners (and support sessions) change connections and
test them, since a test calls the partner with the stored credentials. Secrets are never rendered
back: the detail shows masks, and an empty secret input keeps what is stored.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import tenant_role_required
from connectors.forms import AUTH_FIELDS, ConnectionForm, form_initial, kind_initial
from connectors.models import AuthMethod, Connection, ConnectionKind
from connectors.selectors import (
    connection_by_key,
    connection_health,
    connection_input,
    connection_secret_masks,
    connections_exist,
    connections_list,
)
from connectors.services import (
    KIND_DEFAULTS,
    ConnectionInvalid,
    connection_create,
    connection_disable,
    connection_enable,
    connection_test,
    connection_update,
)

EDITORS = (Role.TENANT_ADMIN, Role.PLANNER)
PER_PAGE = 25


def _can_edit(user) -> bool:
    return user.role in EDITORS or bool(user.support_grant_id)


def _secret_label(method: str, name: str) -> str:
    return str(ConnectionForm.base_fields[AUTH_FIELDS[method][name]].label)


def _connection_or_404(key: str) -> Connection:
    connection = connection_by_key(key=key)
    if connection is None:
        raise Http404(f"There is no connection '{key}' in this workspace.")
    return connection


@tenant_role_required()
def connections(request):
    query = request.GET.get("q", "").strip()
    kind = request.GET.get("kind", "")
    status = request.GET.get("status", "")
    kind = kind if kind in ConnectionKind.values else ""
    listed = connections_list(query=query, kind=kind, status=status)
    page = Paginator(listed, PER_PAGE).get_page(request.GET.get("page"))
    rows = [{"connection": connection, "health": connection_health(connection)} for connection in page.object_list]
    context = {
        "rows": rows,
        "page": page,
        "query": query,
        "kind": kind,
        "status": status if status in ("enabled", "disabled") else "",
        "kinds": ConnectionKind.choices,
        "filtered": bool(query or kind or status),
        "any": bool(rows) or connections_exist(),
        "can_edit": _can_edit(request.user),
    }
    return render(request, "connectors/connections.html", context)


@tenant_role_required(*EDITORS)
def connection_new(request):
    kind = request.POST.get("kind") or request.GET.get("kind", "")
    if kind not in ConnectionKind.values:
        choices = [(value, label, KIND_DEFAULTS[value]) for value, label in ConnectionKind.choices]
        return render(request, "connectors/connection_kind.html", {"kinds": choices})
    status = 200
    if request.method == "POST":
        form = ConnectionForm(request.POST)
        if form.is_valid():
            try:
                connection = connection_create(data=form.connection_input(key=""), actor=request.user)
            except ConnectionInvalid as error:
                form.add_problems(error.problems, form.cleaned_data["auth_method"])
            else:
                messages.success(request, f"{connection.name} saved. Test it to see that Baton can reach it.")
                return redirect(reverse("connectors:connection", args=[connection.key]))
        status = 400
    else:
        form = ConnectionForm(initial=kind_initial(kind))
    form.fields["base_url"].widget.attrs["placeholder"] = KIND_DEFAULTS[kind].example_url
    context = {
        "form": form,
        "kind": kind,
        "kind_label": ConnectionKind(kind).label,
        "defaults": KIND_DEFAULTS[kind],
        "auth_methods": AuthMethod.values,
    }
    return render(request, "connectors/connection_new.html", context, status=status)


@tenant_role_required()
def connection_detail(request, key: str):
    connection = _connection_or_404(key)
    can_edit = _can_edit(request.user)
    masks = connection_secret_masks(connection)
    status = 200
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Only tenant admins and planners can change connections.")
        form = ConnectionForm(request.POST, editing=True, masks=masks)
        if form.is_valid():
            try:
                connection_update(connection=connection, data=form.connection_input(key=connection.key), actor=request.user)
            except ConnectionInvalid as error:
                form.add_problems(error.problems, form.cleaned_data["auth_method"])
            else:
                messages.success(request, f"{connection.name} saved.")
                return redirect(reverse("connectors:connection", args=[connection.key]))
        status = 400
    else:
        form = ConnectionForm(initial=form_initial(connection_input(connection)), editing=True, masks=masks)
    context = {
        "connection": connection,
        "health": connection_health(connection),
        "secrets": [(_secret_label(connection.auth_method, name), mask) for name, mask in masks.items()],
        "auth_settings": [(name.replace("_", " ").capitalize(), value) for name, value in connection.auth_settings.items() if value],
        "form": form,
        "can_edit": can_edit,
        "auth_methods": AuthMethod.values,
    }
    return render(request, "connectors/connection_detail.html", context, status=status)


@require_POST
@tenant_role_required(*EDITORS)
def connection_test_view(request, key: str):
    connection = _connection_or_404(key)
    result = connection_test(connection=connection, actor=request.user)
    if result.ok:
        messages.success(request, result.message)
    else:
        messages.error(request, result.message)
    return redirect(reverse("connectors:connection", args=[connection.key]) + "#test")


@require_POST
@tenant_role_required(*EDITORS)
def connection_disable_view(request, key: str):
    connection = _connection_or_404(key)
    connection_disable(connection=connection, actor=request.user, reason=request.POST.get("reason", "")[:500])
    messages.success(request, f"{connection.name} is disabled: nothing calls it until it is enabled again.")
    return redirect(reverse("connectors:connection", args=[connection.key]))


@require_POST
@tenant_role_required(*EDITORS)
def connection_enable_view(request, key: str):
    connection = _connection_or_404(key)
    connection_enable(connection=connection, actor=request.user)
    messages.success(request, f"{connection.name} is enabled.")
    return redirect(reverse("connectors:connection", args=[connection.key]))
