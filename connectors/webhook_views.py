"""The customer webhooks pages: the endpoints (customer, event types, status, last result,
pending and failed counts), a new endpoint whose signing secret is shown once, and an endpoint's
page: masks, Rotate secret, Enable and Disable, event types, and its delivery log (keyset pages,
filtered by status and event type) with Replay per delivery and "replay all failed shown".

Tenant staff may look, like the connections pages; the connections' editors change endpoints and
replay, through `connectors.deliveries`, which audits each change. A signing secret is shown in
the answer to the request that made it (no-store), never in the session, never again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from accounts.permissions import tenant_role_required
from connectors.deliveries import (
    EndpointInvalid,
    ReplayRefused,
    delivery_replay,
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_enable,
    webhook_endpoint_rotate,
    webhook_endpoint_update,
)
from connectors.forms import (
    DeliveryFilterForm,
    WebhookDisableForm,
    WebhookEndpointEditForm,
    WebhookEndpointForm,
    WebhookRotateForm,
)
from connectors.models import DeliveryStatus, WebhookEndpoint
from connectors.selectors import (
    keyset_page,
    webhook_deliveries_list,
    webhook_delivery_counts,
    webhook_delivery_event_types,
    webhook_delivery_get,
    webhook_endpoint_get,
    webhook_endpoints_exist,
    webhook_endpoints_list,
)
from connectors.views import EDITORS, can_edit
from logistics.selectors import customer_accounts_all

PER_PAGE = 25
BULK_REPLAY_LIMIT = 100  # a page's worth, with room
LOG_FILTERS = ("status", "event_type")


def _cursor(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _endpoint_or_404(endpoint_id: int) -> WebhookEndpoint:
    endpoint = webhook_endpoint_get(endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404(f"There is no webhook endpoint {endpoint_id} in this workspace.")
    return endpoint


def _endpoint_url(endpoint: WebhookEndpoint, filters: str = "") -> str:
    return reverse("connectors:webhook_endpoint", args=[endpoint.pk]) + (f"?{filters}" if filters else "")


@tenant_role_required()
def webhooks(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    customer = request.GET.get("customer", "")
    status = request.GET.get("status", "")
    status = status if status in ("enabled", "disabled", "failing") else ""
    listed = webhook_endpoints_list(query=query, customer_account=customer, status=status)
    page = Paginator(listed, PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "endpoints": list(page.object_list),
        "query": query,
        "customer": customer,
        "status": status,
        "customers": customer_accounts_all(),
        "filtered": bool(query or customer or status),
        "any": bool(page.object_list) or webhook_endpoints_exist(),
        "can_edit": can_edit(request.user),
    }
    return render(request, "connectors/webhooks.html", context)


@tenant_role_required(*EDITORS)
def webhook_new(request: HttpRequest) -> HttpResponse:
    """The form; saved, the endpoint's page with its signing secret, shown this once."""
    if request.method != "POST":
        return render(request, "connectors/webhooks_new.html", {"form": WebhookEndpointForm(initial={"event_types": ["*"]})})
    form = WebhookEndpointForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        account = data["customer_account"]
        try:
            endpoint, secret = webhook_endpoint_create(
                url=data["url"].strip(),
                event_types=data["event_types"],
                description=data["description"],
                customer_account_id=account.pk if account else None,
                actor=request.user,
            )
        except EndpointInvalid as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            messages.success(request, _("Endpoint saved. Copy its signing secret below now: it is not shown again."))
            return _endpoint_page(request, _endpoint_or_404(endpoint.pk), new_secret=secret)
    return render(request, "connectors/webhooks_new.html", {"form": form}, status=400)


@tenant_role_required()
def webhook_endpoint(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """The endpoint's page; POST saves its event types and description."""
    endpoint = _endpoint_or_404(endpoint_id)
    if request.method != "POST":
        return _endpoint_page(request, endpoint)
    if not can_edit(request.user):
        raise PermissionDenied(_("Only tenant admins and planners can change webhook endpoints."))
    form = WebhookEndpointEditForm(request.POST)
    if form.is_valid():
        try:
            webhook_endpoint_update(
                endpoint=endpoint,
                event_types=form.cleaned_data["event_types"],
                description=form.cleaned_data["description"],
                actor=request.user,
            )
        except EndpointInvalid as error:
            form.add_error("event_types", error.message)
        else:
            messages.success(request, _("Endpoint saved: new events are delivered by these event types."))
            return redirect(_endpoint_url(endpoint))
    return _endpoint_page(request, endpoint, edit_form=form, status=400)


def _endpoint_page(
    request: HttpRequest,
    endpoint: WebhookEndpoint,
    *,
    new_secret: str = "",
    edit_form: WebhookEndpointEditForm | None = None,
    status: int = 200,
) -> HttpResponse:
    filters = DeliveryFilterForm(request.GET)
    delivery_status, event_type = filters.values()
    deliveries = webhook_deliveries_list(endpoint=endpoint, status=delivery_status, event_type=event_type)
    page = keyset_page(deliveries, before=_cursor(request.GET.get("before")), after=_cursor(request.GET.get("after")), size=PER_PAGE)
    counts = webhook_delivery_counts(endpoint, event_type=event_type)
    shown = {name: request.GET[name] for name in LOG_FILTERS if request.GET.get(name)}
    kept = {"event_type": event_type} if event_type else {}
    editor = can_edit(request.user)
    context: dict[str, Any] = {
        "endpoint": endpoint,
        "new_secret": new_secret,
        "can_edit": editor,
        "edit_form": edit_form
        or WebhookEndpointEditForm(initial={"event_types": endpoint.event_types, "description": endpoint.description}),
        "edit_open": edit_form is not None,
        "rotate_form": WebhookRotateForm(),
        "disable_form": WebhookDisableForm(),
        "page": page,
        "deliveries": page.rows,
        "counts": counts,
        "total": sum(counts.values()),
        "delivery_status": delivery_status,
        "event_type": event_type,
        "event_types": webhook_delivery_event_types(endpoint),
        "status_links": [
            (value, label, counts[value], "?" + urlencode({**kept, "status": value})) for value, label in DeliveryStatus.choices
        ],
        "all_link": "?" + urlencode(kept),
        "page_query": urlencode(shown),
        "filtered": bool(delivery_status or event_type),
        "failed_shown": [delivery.pk for delivery in page.rows if delivery.status == DeliveryStatus.FAILED] if editor else [],
    }
    response = render(request, "connectors/webhooks_endpoint.html", context, status=status)
    if new_secret:
        add_never_cache_headers(response)  # the one answer that carries the secret is kept by no cache
    return response


@require_POST
@tenant_role_required(*EDITORS)
def webhook_endpoint_rotate_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """A new signing secret, shown in this answer only; the previous one signs along for the overlap."""
    endpoint = _endpoint_or_404(endpoint_id)
    form = WebhookRotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The overlap is a whole number of hours from 0 to 168. Nothing changed."))
        return redirect(_endpoint_url(endpoint) + "#secrets")
    hours = form.cleaned_data["overlap_hours"]
    secret = webhook_endpoint_rotate(endpoint=endpoint, actor=request.user, overlap=timedelta(hours=hours))
    kept = (
        ngettext(
            "Deliveries are signed with the previous secret too for %(hours)d hour.",
            "Deliveries are signed with the previous secret too for %(hours)d hours.",
            hours,
        )
        % {"hours": hours}
        if hours
        else _("The previous secret no longer signs.")
    )
    messages.success(request, _("Signing secret rotated. %(kept)s Copy the new one below now: it is not shown again.") % {"kept": kept})
    return _endpoint_page(request, _endpoint_or_404(endpoint.pk), new_secret=secret)


@require_POST
@tenant_role_required(*EDITORS)
def webhook_endpoint_enable_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    webhook_endpoint_enable(endpoint=endpoint, actor=request.user)
    failed_count = webhook_delivery_counts(endpoint)[DeliveryStatus.FAILED]
    done = _("The endpoint is enabled: new events are delivered again.")
    if failed_count:
        done += " " + ngettext(
            "Replay the %(count)d failed deliveries below to send them again.",
            "Replay the %(count)d failed deliveries below to send them again.",
            failed_count,
        ) % {"count": failed_count}
    messages.success(request, done)
    return redirect(_endpoint_url(endpoint))


@require_POST
@tenant_role_required(*EDITORS)
def webhook_endpoint_disable_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    form = WebhookDisableForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    webhook_endpoint_disable(endpoint=endpoint, actor=request.user, reason=reason)
    messages.success(request, _("The endpoint is disabled: no events are sent to it until it is enabled again."))
    return redirect(_endpoint_url(endpoint))


REPLAY_REFUSED = gettext_lazy("The endpoint is disabled: enable it first, or the replay fails at once. Nothing was replayed.")


@require_POST
@tenant_role_required(*EDITORS)
def webhook_delivery_replay_view(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = webhook_delivery_get(delivery_id=delivery_id)
    if delivery is None:
        raise Http404(f"There is no webhook delivery {delivery_id} in this workspace.")
    filters = _kept_filters(request.POST.get("filters", ""))
    try:
        delivery_replay(delivery=delivery, actor=request.user)
    except ReplayRefused:
        messages.error(request, REPLAY_REFUSED)
    else:
        messages.success(request, _("Delivery %(id)s (%(type)s) is being sent again.") % {"id": delivery.pk, "type": delivery.event_type})
    return redirect(_endpoint_url(delivery.endpoint, filters))


@require_POST
@tenant_role_required(*EDITORS)
def webhook_replay_failed_view(request: HttpRequest) -> HttpResponse:
    """“Replay all failed shown”: the failed deliveries of the endpoint page the operator was
    looking at (the first one's endpoint), each through `delivery_replay` (each audited); any no
    longer failed is left alone and counted."""
    ids = [int(value) for value in request.POST.getlist("delivery") if value.isdigit()][:BULK_REPLAY_LIMIT]
    shown = [delivery for delivery in (webhook_delivery_get(delivery_id=delivery_id) for delivery_id in ids) if delivery is not None]
    if not shown:
        raise Http404("None of these webhook deliveries is in this workspace.")
    endpoint = shown[0].endpoint
    filters = _kept_filters(request.POST.get("filters", ""))
    failed = [delivery for delivery in shown if delivery.endpoint_id == endpoint.pk and delivery.status == DeliveryStatus.FAILED]
    try:
        with transaction.atomic():  # one endpoint: all of them go again, or none
            for delivery in failed:
                delivery_replay(delivery=delivery, actor=request.user)
    except ReplayRefused:
        messages.error(request, REPLAY_REFUSED)
        return redirect(_endpoint_url(endpoint, filters))
    skipped = len(ids) - len(failed)
    if failed:
        note = (
            " "
            + ngettext("%(count)d was no longer failed and left alone.", "%(count)d were no longer failed and left alone.", skipped)
            % {"count": skipped}
            if skipped
            else ""
        )
        sent = ngettext("%(count)d delivery is being sent again.", "%(count)d deliveries are being sent again.", len(failed)) % {
            "count": len(failed)
        }
        messages.success(request, sent + note)
    else:
        messages.error(request, _("Nothing was replayed: none of these deliveries has failed."))
    return redirect(_endpoint_url(endpoint, filters))


def _kept_filters(raw: str) -> str:
    shown = QueryDict(raw)
    return urlencode({name: shown[name] for name in LOG_FILTERS if shown.get(name)})
