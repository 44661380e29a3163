"""The connections pages: the list with health, new (the kind first, then a form with that kind's
defaults), the detail with its edit form, Test connection, disable and enable, its inbound
webhooks (endpoint, scheme, mapping, secret rotation), and its outbound log (each call's
redacted request and answer, `connectors.exchanges`).

Tenant staff may look; tenant admins and planners (and support sessions) change connections and
test them, since a test calls the partner with the stored credentials. Secrets are never rendered
back: the detail shows masks, and an empty secret input keeps what is stored. A webhook signing
secret Baton generates is shown once, in the answer to the request that made it (never stored
in the session, never on a later page).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import tenant_role_required
from connectors.edi_transport import EdiPartnerInvalid, edi_partner_configure
from connectors.exchanges import (
    FAILED,
    FAILURE_KINDS,
    OK,
    OUTCOME_LABELS,
    OUTCOMES,
    body_pretty,
    exchange_get,
    exchanges_exist,
    exchanges_list,
)
from connectors.forms import AUTH_FIELDS, ConnectionForm, EdiPartnerForm, InboundRotateForm, InboundSettingsForm, form_initial, kind_initial
from connectors.inbox import InboxError, connection_inbound_configure
from connectors.models import AuthMethod, Connection, ConnectionKind, InboundScheme
from connectors.selectors import (
    connection_by_key,
    connection_health,
    connection_input,
    connection_secret_masks,
    connections_exist,
    connections_list,
    edi_partner_of,
    inbound_events_recent,
    keyset_page,
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
from tenants.selectors import site_current

EDITORS = (Role.TENANT_ADMIN, Role.PLANNER)
PER_PAGE = 25


def can_edit(user) -> bool:
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
        "can_edit": can_edit(request.user),
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
                messages.success(request, _("%(name)s saved. Test it to see that Baton can reach it.") % {"name": connection.name})
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
    if request.method != "POST":
        return _detail_page(request, connection)
    if not can_edit(request.user):
        raise PermissionDenied(_("Only tenant admins and planners can change connections."))
    form = ConnectionForm(request.POST, editing=True, masks=connection_secret_masks(connection))
    if form.is_valid():
        try:
            connection_update(connection=connection, data=form.connection_input(key=connection.key), actor=request.user)
        except ConnectionInvalid as error:
            form.add_problems(error.problems, form.cleaned_data["auth_method"])
        else:
            messages.success(request, _("%(name)s saved.") % {"name": connection.name})
            return redirect(reverse("connectors:connection", args=[connection.key]))
    return _detail_page(request, connection, form=form, status=400)


def _detail_page(
    request,
    connection: Connection,
    *,
    form: ConnectionForm | None = None,
    inbound_form: InboundSettingsForm | None = None,
    partner_form: EdiPartnerForm | None = None,
    new_secret: str = "",
    status: int = 200,
):
    masks = connection_secret_masks(connection)
    if form is None:
        form = ConnectionForm(initial=form_initial(connection_input(connection)), editing=True, masks=masks)
    context = {
        "connection": connection,
        "health": connection_health(connection),
        "secrets": [(_secret_label(connection.auth_method, name), mask) for name, mask in masks.items()],
        "auth_settings": [(name.replace("_", " ").capitalize(), value) for name, value in connection.auth_settings.items() if value],
        "form": form,
        "can_edit": can_edit(request.user),
        "auth_methods": AuthMethod.values,
        "inbound_form": inbound_form or InboundSettingsForm.for_connection(connection),
        "inbound_open": inbound_form is not None,
        "rotate_form": InboundRotateForm(),
        "endpoint_url": site_current().base_url + reverse("hooks:webhook", args=[connection.key]),
        "inbound_masks": connection.inbound_secret_masks,
        "recent_events": inbound_events_recent(connection=connection),
        "new_secret": new_secret,
        **_partner_context(connection, partner_form),
    }
    response = render(request, "connectors/connection_detail.html", context, status=status)
    if new_secret:
        add_never_cache_headers(response)  # the one answer that carries the secret is kept by no cache
    return response


@require_POST
@tenant_role_required(*EDITORS)
def connection_inbound_view(request, key: str):
    """Save the inbound settings; a secret Baton had to generate (the first one) is shown now, once."""
    connection = _connection_or_404(key)
    form = InboundSettingsForm(request.POST)
    if not form.is_valid():
        return _detail_page(request, connection, inbound_form=form, status=400)
    data = form.cleaned_data
    scheme = data["scheme"]
    try:
        fresh = connection_inbound_configure(
            connection=connection,
            scheme=scheme,
            actor=request.user,
            secret=data["secret"] or None,
            scheme_settings=data["scheme_settings"] if scheme == InboundScheme.CUSTOM else {},
            mapper=data["mapper"],
            mapping=data["mapping"],
        )
    except (InboxError, ValueError) as error:
        form.add_error(None, str(error))
        return _detail_page(request, connection, inbound_form=form, status=400)
    if fresh and not data["secret"]:
        messages.success(request, _("Inbound webhooks saved. Copy the signing secret below now: it is not shown again."))
        return _detail_page(request, connection, new_secret=fresh)
    if not scheme:
        messages.success(request, _("%(name)s takes no webhooks now: its endpoint answers 404.") % {"name": connection.name})
    elif data["secret"]:
        messages.success(
            request, _("Inbound webhooks saved with the partner's secret (%(mask)s).") % {"mask": connection.inbound_secret_masks[0]}
        )
    else:
        messages.success(request, _("Inbound webhooks saved."))
    return redirect(reverse("connectors:connection", args=[connection.key]) + "#inbound")


@require_POST
@tenant_role_required(*EDITORS)
def connection_inbound_rotate_view(request, key: str):
    """A new signing secret, shown in this answer only; the previous one verifies for the overlap."""
    connection = _connection_or_404(key)
    if not connection.inbound_scheme:
        messages.error(request, _("%(name)s takes no webhooks: choose a signature scheme first.") % {"name": connection.name})
        return redirect(reverse("connectors:connection", args=[connection.key]) + "#inbound")
    form = InboundRotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The overlap is a whole number of hours from 0 to 168. Nothing changed."))
        return redirect(reverse("connectors:connection", args=[connection.key]) + "#inbound")
    hours = form.cleaned_data["overlap_hours"]
    fresh = connection_inbound_configure(
        connection=connection,
        scheme=connection.inbound_scheme,
        actor=request.user,
        rotate=True,
        overlap=timedelta(hours=hours),
        scheme_settings=connection.inbound_scheme_settings,
    )
    kept = (
        ngettext("The previous secret keeps working for %(hours)d hour.", "The previous secret keeps working for %(hours)d hours.", hours)
        % {"hours": hours}
        if hours
        else _("The previous secret no longer works.")
    )
    messages.success(request, _("Signing secret rotated. %(kept)s Copy the new one below now: it is not shown again.") % {"kept": kept})
    return _detail_page(request, connection, new_secret=fresh)


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
    messages.success(request, _("%(name)s is disabled: nothing calls it until it is enabled again.") % {"name": connection.name})
    return redirect(reverse("connectors:connection", args=[connection.key]))


@require_POST
@tenant_role_required(*EDITORS)
def connection_enable_view(request, key: str):
    connection = _connection_or_404(key)
    connection_enable(connection=connection, actor=request.user)
    messages.success(request, _("%(name)s is enabled.") % {"name": connection.name})
    return redirect(reverse("connectors:connection", args=[connection.key]))


def _partner_context(connection: Connection, form: EdiPartnerForm | None) -> dict[str, object]:
    """The EDI partner card, for EDI-partner connections only."""
    if connection.kind != ConnectionKind.EDI_PARTNER:
        return {}
    partner = edi_partner_of(connection)
    return {"edi_partner": partner, "partner_form": form or EdiPartnerForm.for_partner(partner), "partner_open": form is not None}


@require_POST
@tenant_role_required(*EDITORS)
def connection_edi_partner_view(request, key: str):
    """Save the connection's EDI partner settings (its inbound mapper becomes x12)."""
    connection = _connection_or_404(key)
    if connection.kind != ConnectionKind.EDI_PARTNER:
        raise Http404("Only EDI-partner connections have partner settings.")
    form = EdiPartnerForm(request.POST)
    if form.is_valid():
        try:
            edi_partner_configure(connection=connection, data=form.partner_input(), actor=request.user)
        except EdiPartnerInvalid as error:
            form.add_problems(error.problems)
        else:
            messages.success(
                request, _("EDI partner settings of %(name)s saved: interchanges can be sent or uploaded now.") % {"name": connection.name}
            )
            return redirect(reverse("connectors:connection", args=[connection.key]) + "#edi-partner")
    return _detail_page(request, connection, partner_form=form, status=400)


# ---------- the outbound log ------------------------------------------------------------------------


def _cursor(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@tenant_role_required()
def connection_exchanges(request, key: str):
    """The connection's outbound log, newest first in keyset pages, filtered by outcome."""
    connection = _connection_or_404(key)
    outcome = request.GET.get("outcome", "")
    outcome = outcome if outcome == FAILED or outcome in OUTCOMES else ""
    rows = exchanges_list(connection=connection, outcome=outcome)
    page = keyset_page(rows, before=_cursor(request.GET.get("before")), after=_cursor(request.GET.get("after")), size=PER_PAGE)
    context = {
        "connection": connection,
        "page": page,
        "rows": [(exchange, OUTCOME_LABELS.get(exchange.outcome, exchange.outcome)) for exchange in page.rows],
        "outcome": outcome,
        "failed_view": bool(outcome) and outcome != OK,
        "failures": [(FAILED, _("Any failure")), *((value, OUTCOME_LABELS[value]) for value in FAILURE_KINDS)],
        "page_query": f"outcome={outcome}" if outcome else "",
        "any": bool(page.rows) or (bool(outcome) and exchanges_exist(connection=connection)),
        "can_edit": can_edit(request.user),
        "keep_days": settings.BATON_CONNECTOR_EXCHANGE_DAYS,
        "empty_text": (
            _(
                "Use “Test connection” above, or run a workflow whose connector step calls “%(key)s”. "
                "Each call's request and answer show up here within seconds, credentials redacted."
            )
            if can_edit(request.user)
            else _(
                "Run a workflow whose connector step calls “%(key)s”, or ask a tenant admin or planner to test the connection. "
                "Each call's request and answer show up here within seconds, credentials redacted."
            )
        )
        % {"key": connection.key},
    }
    return render(request, "connectors/exchanges.html", context)


@tenant_role_required()
def connection_exchange(request, key: str, exchange_id: int):
    """One exchange: the request as sent and the answer as received, both redacted."""
    connection = _connection_or_404(key)
    exchange = exchange_get(connection=connection, exchange_id=exchange_id)
    if exchange is None:
        raise Http404(f"There is no call {exchange_id} in the outbound log of '{key}'.")
    context = {
        "connection": connection,
        "exchange": exchange,
        "outcome_label": OUTCOME_LABELS.get(exchange.outcome, exchange.outcome),
        "request_headers": sorted(exchange.request_headers.items(), key=lambda item: item[0].lower()),
        "response_headers": sorted(exchange.response_headers.items(), key=lambda item: item[0].lower()),
        "request_body": body_pretty(exchange.request_body),
        "response_body": body_pretty(exchange.response_body),
    }
    return render(request, "connectors/exchange.html", context)
