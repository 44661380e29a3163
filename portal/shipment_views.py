"""The customer portal's shipment pages on the tenant's host: the list (search, filters, sorts,
keyset pages, saved views, CSV export), one shipment (timeline, ETA, stops, route, exceptions,
documents, invoices), its live timeline feed, and document downloads by signed link.

Customers see their account's shipments and tenant staff all of them: every read goes through
`logistics.shipment_reads.shipment_scope(request.user)`, so another customer's id or reference
is simply not found (404).
"""

from __future__ import annotations

import csv
import hashlib
import html
import re
from collections.abc import Iterator
from datetime import datetime
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotModified, JsonResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import dateformat, formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.models import TENANT_STAFF_ROLES, Role
from logistics.models import Document, TransportMode
from logistics.selectors import customer_accounts_all
from logistics.shipment_reads import (
    SORTS,
    DocumentLinkExpired,
    DocumentLinkInvalid,
    ShipmentCursorInvalid,
    ShipmentDetail,
    ShipmentFilters,
    ShipmentFiltersInvalid,
    ShipmentNotFound,
    ShipmentRow,
    document_from_link,
    document_link,
    shipment_detail,
    shipment_scope,
    shipments_page,
    viewer_customer_account_id,
)
from logistics.vocabulary import TrackingStatus
from portal.shipment_pages import (
    SavedViewRefused,
    lateness,
    route_schematic,
    saved_view_delete,
    saved_view_get,
    saved_view_query,
    saved_view_save,
    saved_views_of,
)

PER_PAGE = 25
EXPORT_PAGE = 200
LIVE_EVERY_SECONDS = 10
DOCUMENT_LINK_SECONDS = 600
EXPORT_COOKIE = "baton_shipments_export"
_EXPORT_TOKEN = re.compile(r"^[0-9a-z]{6,40}$")
_PREVIOUS_SECONDS = 3600
# Parameters of the list that are not its filter.
_PAGE_PARAMS = ("after", "token")
_FILTER_PARAMS = ("q", "status", "has_exception", "mode", "origin", "destination", "customer", "date_from", "date_to")
DATE_FIELDS = (("created", "Created"), ("eta", "ETA"), ("delivered", "Delivered"))

STATUS_TONES: dict[str, str] = {
    TrackingStatus.DELIVERED: "ok",
    TrackingStatus.DELIVERY_DELAYED: "warn",
    TrackingStatus.ON_HOLD: "warn",
    TrackingStatus.DELIVERY_FAILED: "danger",
    TrackingStatus.RETURN_TO_SENDER: "danger",
    TrackingStatus.CANCELLED: "muted",
    TrackingStatus.UNKNOWN: "muted",
    TrackingStatus.PENDING: "muted",
}


def portal_viewer_required(view):
    """A signed-in person of this tenant who may follow shipments: tenant staff (and support
    sessions) or a customer user bound to an account. Everyone else is sent to sign in or refused."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        staff = user.role in TENANT_STAFF_ROLES or bool(user.support_grant_id)
        customer = user.role == Role.CUSTOMER and user.customer_account_id is not None
        if not staff and not customer:
            raise PermissionDenied(_("Your account cannot see shipments on this workspace."))
        return view(request, *args, **kwargs)

    return wrapped


def _tenant_zone(request) -> str:
    return getattr(getattr(request, "tenant", None), "time_zone", "") or "UTC"


def _is_staff(user) -> bool:
    return user.role in TENANT_STAFF_ROLES or bool(user.support_grant_id)


# --- the list ----------------------------------------------------------------------------------


def _search_params(request) -> QueryDict:
    """The page's own form (one date field with from/to) as the read model's parameters."""
    params = request.GET.copy()
    date_field = params.get("date_field", "created")
    if date_field not in {value for value, _label in DATE_FIELDS}:
        date_field = "created"
    for edge in ("from", "to"):
        value = params.get(f"date_{edge}", "").strip()
        if value:
            params[f"{date_field}_{edge}"] = value
    if not _is_staff(request.user):
        params.pop("customer", None)  # a customer's list is its account's, whatever the URL says
    return params


def _filter_query(request, *, drop: tuple[str, ...] = _PAGE_PARAMS, **changes: str) -> str:
    """The list's query string without page parameters (and with `changes`), for links."""
    params = request.GET.copy()
    for name in drop:
        params.pop(name, None)
    for name, value in changes.items():
        if value:
            params[name] = value
        else:
            params.pop(name, None)
    for name in [name for name, values in params.lists() if not any(value.strip() for value in values)]:
        params.pop(name)
    return params.urlencode()


def _previous_key(cursor: str) -> str:
    return "portal:shipments:previous:" + hashlib.sha256(cursor.encode()).hexdigest()[:40]


def _sort_links(request, current: str) -> dict[str, dict[str, str]]:
    """Per sortable column: the link that sorts by it (the other direction when already sorted) and its state."""
    links = {}
    for column in ("created_at", "eta"):
        ascending, descending = column, f"-{column}"
        target = ascending if current == descending else descending
        links[column] = {
            "url": "?" + _filter_query(request, sort=target),
            "state": "ascending" if current == ascending else "descending" if current == descending else "",
        }
    return links


# One row of the shipment list. Whitespace stands where the markup had it between elements, so
# a row lays out as before; the cells' `data-label`s name the column on phones (stacked table).
_LIST_ROW = (
    "<tr{row_class}>\n"
    '<td class="cell-main">\n<a href="{url}">{reference}</a>\n{references}\n</td>\n'
    '<td data-label="{label_status}"><span class="badge badge--{status_tone}">{status}</span>'
    '<span class="cell-sub">{mode}</span></td>\n'
    '<td data-label="{label_route}">{origin} <span aria-hidden="true">→</span>'
    '<span class="visually-hidden">{word_to}</span> {destination}</td>\n'
    '<td data-label="{label_eta}" class="nowrap">\n{expected}\n'
    '<span class="cell-sub"><span class="badge badge--{lateness_tone}">{lateness_text}</span></span>\n</td>\n'
    '<td data-label="{label_exception}">{exception}</td>\n'
    '<td data-label="{label_created}" class="nowrap"><time datetime="{created_iso}">{created_text}</time></td>\n'
    "{customer}</tr>"
)


class _ListRows:
    """The shipment list's rows as HTML, with what every row shares worked out once per page: the
    labels in the viewer's language, the locale's date formats, the shipment link's prefix. A row
    through template tags and filters (a URL reversed, choices and labels translated, dates
    localised, some thirty variables resolved, per row) was most of the list page's time; one
    string format per row, every value escaped as the template escaped it, costs a fraction.
    `portal/shipments/_results.html` prints the rows; tests/portal/test_shipment_list_rows.py
    holds each row to what the template tags printed."""

    # References that `reverse` leaves as they are: their link is the prefix, the reference and "/".
    _PLAIN_REFERENCE = re.compile(r"^[A-Za-z0-9._~-]+$")

    def __init__(self, *, staff: bool) -> None:
        self.staff = staff
        self.status_labels = {value: _(label) for value, label in TrackingStatus.choices}
        self.mode_labels = {value: _(label) for value, label in TransportMode.choices}
        self.reference_labels = tuple(_escaped(label) for label in (_("PO"), _("BOL"), _("PRO"), _("Container"), _("Load")))
        self.datetime_format = formats.get_format("SHORT_DATETIME_FORMAT")
        self.date_format = formats.get_format("SHORT_DATE_FORMAT")
        prefix = reverse("portal:shipments")
        self.link_prefix = prefix if reverse("portal:shipment", args=["x"]) == f"{prefix}x/" else None
        self.labels = {
            name: _escaped(label)
            for name, label in (
                ("label_status", _("Status")),
                ("label_route", _("Route")),
                ("label_eta", _("ETA vs promise")),
                ("label_exception", _("Exception")),
                ("label_created", _("Created")),
                ("word_to", _("to")),
            )
        }
        self.no_eta = format_html('<span class="muted">{}</span>', _("No ETA yet"))
        self.exception_open = format_html('<span class="badge badge--danger"><span aria-hidden="true">⚠</span> {}</span>', _("Open"))
        self.exception_none = format_html('<span class="muted">{}</span>', _("None"))
        self.label_customer = _escaped(_("Customer"))
        self.row_class = mark_safe(' class="shipment-row--exception"')

    def link(self, reference: str) -> str:
        if self.link_prefix is not None and self._PLAIN_REFERENCE.match(reference):
            return f"{self.link_prefix}{reference}/"
        return reverse("portal:shipment", args=[reference])

    def label(self, labels: dict[str, str], value: str) -> str:
        """A choice's label as `{% translate shipment.get_FOO_display %}` gave it (an unknown value translated as it is)."""
        label = labels.get(value)
        return label if label is not None else _(value)

    def moment(self, value: datetime, pattern: str) -> tuple[str, str]:
        """The `<time>` attribute and text, as `|date:'c'` and `|date:pattern` print them (in the active zone)."""
        local = timezone.localtime(value) if settings.USE_TZ and timezone.is_aware(value) else value  # the filter's localtime
        return local.isoformat(), dateformat.format(local, pattern)

    def row(self, row: ShipmentRow) -> SafeString:
        shipment = row.shipment
        delivered = shipment.delivered_at is not None
        expected = shipment.delivered_at if delivered else shipment.eta
        if expected is not None:
            expected_iso, expected_text = self.moment(expected, self.datetime_format)
            expected_html = f'<time datetime="{_escaped(expected_iso)}">{_escaped(expected_text)}</time>'
        else:
            expected_html = self.no_eta
        created_iso, created_text = self.moment(shipment.created_at, self.date_format)
        values = (shipment.po_number, shipment.bol_number, shipment.pro_number, shipment.container_number, shipment.load_number)
        references = " · ".join(f"{label} {_escaped(value)}" for label, value in zip(self.reference_labels, values, strict=True) if value)
        verdict = lateness(row.late_by, delivered=delivered)
        origin, destination = shipment.origin, shipment.destination
        exception = row.has_open_exception
        customer = f'<td data-label="{self.label_customer}">{_escaped(shipment.customer_account.name)}</td>\n' if self.staff else ""
        return mark_safe(  # noqa: S308 - every value is escaped here or was escaped once for the page
            _LIST_ROW.format(
                row_class=self.row_class if exception else "",
                url=_escaped(self.link(shipment.reference)),
                reference=_escaped(shipment.reference),
                references=f'<span class="cell-sub">{references}</span>' if references else "",
                status_tone=_escaped(STATUS_TONES.get(shipment.status, "info")),
                status=_escaped(self.label(self.status_labels, shipment.status)),
                mode=_escaped(self.label(self.mode_labels, shipment.mode)),
                origin=_escaped((origin.name if origin is not None else "") or "—"),
                destination=_escaped((destination.name if destination is not None else "") or "—"),
                expected=expected_html,
                lateness_tone=_escaped(verdict.tone),
                lateness_text=_escaped(verdict.text),
                exception=self.exception_open if exception else self.exception_none,
                created_iso=_escaped(created_iso),
                created_text=_escaped(created_text),
                customer=customer,
                **self.labels,
            )
        )


def _escaped(value: Any) -> str:
    """`conditional_escape` without `keep_lazy`'s look at every argument for a lazy string: the
    same text (Django escapes with `html.escape`), at a fraction of the calls a row made."""
    return value.__html__() if hasattr(value, "__html__") else html.escape(str(value))


def _row_view(row: ShipmentRow) -> dict[str, Any]:
    shipment = row.shipment
    delivered = shipment.delivered_at is not None
    return {
        "row": row,
        "shipment": shipment,
        "status_tone": STATUS_TONES.get(shipment.status, "info"),
        "lateness": lateness(row.late_by, delivered=delivered),
        "delivered": delivered,
        "references": _references(shipment),
    }


def _references(shipment) -> list[tuple[str, str]]:
    pairs = [
        (_("PO"), shipment.po_number),
        (_("BOL"), shipment.bol_number),
        (_("PRO"), shipment.pro_number),
        (_("Container"), shipment.container_number),
        (_("Load"), shipment.load_number),
    ]
    return [(label, value) for label, value in pairs if value]


def _list_context(request) -> dict[str, Any]:
    sort = request.GET.get("sort", "") or SORTS[0]
    filtered = any(request.GET.get(name, "").strip() for name in _FILTER_PARAMS)
    context: dict[str, Any] = {
        "query": request.GET.get("q", "").strip(),
        "statuses": [(value, _(label)) for value, label in TrackingStatus.choices if value != TrackingStatus.UNKNOWN],
        "selected_statuses": request.GET.getlist("status"),
        "has_exception": request.GET.get("has_exception", ""),
        "modes": [(value, _(label)) for value, label in TransportMode.choices],
        "mode": request.GET.get("mode", ""),
        "origin": request.GET.get("origin", "").strip(),
        "destination": request.GET.get("destination", "").strip(),
        "date_fields": DATE_FIELDS,
        "date_field": request.GET.get("date_field", "created"),
        "date_from": request.GET.get("date_from", ""),
        "date_to": request.GET.get("date_to", ""),
        "sort": sort,
        "sorts": [
            ("-created_at", _("Newest first")),
            ("created_at", _("Oldest first")),
            ("eta", _("ETA, soonest first")),
            ("-eta", _("ETA, latest first")),
        ],
        "sort_links": _sort_links(request, sort),
        "filtered": filtered,
        "advanced_filtered": sum(1 for name in _FILTER_PARAMS if name != "q" and any(v.strip() for v in request.GET.getlist(name)))
        + (1 if sort != SORTS[0] else 0),
        "is_staff": _is_staff(request.user),
        "customer": request.GET.get("customer", ""),
        "customer_options": _customer_options(request.GET.get("customer", "")) if _is_staff(request.user) else "",
        "filter_query": _filter_query(request),
        "saved_views": list(saved_views_of(request.user)),
        "saved_query": saved_view_query(_filter_query(request)),
        "export_cookie": EXPORT_COOKIE,
        "rows": [],
        "problem": None,
    }
    return context


def _customer_options(chosen: str) -> str:
    """The staff filter's customer options as HTML, joined in Python: a tenant has hundreds of
    accounts, and a template loop over them was a fifth of the list page's time."""
    return format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        (
            (code, mark_safe(" selected") if code == chosen else "", name)
            for code, name in customer_accounts_all().values_list("code", "name")
        ),
    )


@require_GET
@portal_viewer_required
def shipments(request):
    context = _list_context(request)
    status = 200
    try:
        filters = ShipmentFilters.from_params(_search_params(request), time_zone=_tenant_zone(request))
        after = request.GET.get("after") or None
        page = shipments_page(shipment_scope(request.user), filters, after=after, limit=PER_PAGE)
    except ShipmentFiltersInvalid as exc:
        field = {"created_from": "date_from", "eta_from": "date_from", "delivered_from": "date_from"}.get(exc.field, exc.field)
        field = {"created_to": "date_to", "eta_to": "date_to", "delivered_to": "date_to"}.get(field, field)
        context["problem"] = {"kind": "filter", "field": field, "message": _filter_message(exc)}
        status = 400
    except ShipmentCursorInvalid:
        context["problem"] = {"kind": "cursor"}
        status = 400
    else:
        list_rows = _ListRows(staff=context["is_staff"])
        context["rows"] = [list_rows.row(row) for row in page.rows]
        context["after"] = after
        if page.next_cursor:
            cache.set(_previous_key(page.next_cursor), after or "", _PREVIOUS_SECONDS)
            context["next_url"] = "?" + _filter_query(request, after=page.next_cursor)
        if after:
            previous = cache.get(_previous_key(after))
            context["previous_url"] = "?" + _filter_query(request, after=previous or "")
            context["previous_is_first"] = not previous
    template = (
        "portal/shipments/_results.html" if request.htmx and request.htmx.target == "shipment-results" else "portal/shipments/list.html"
    )
    return render(request, template, context, status=status)


def _filter_message(exc: ShipmentFiltersInvalid) -> str:
    if exc.field.endswith("_to") and "before it starts" in exc.message:
        return _("The end date is before the start date: swap them or clear one.")
    if exc.field.endswith(("_from", "_to")):
        return _("Write the date as YYYY-MM-DD (the date picker does this for you).")
    if exc.field == "has_exception":
        return _("Choose “Any”, “With an open exception” or “Without”.")
    return _("This value is not one the list knows: choose one from the menu.")


def _csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _moment(value: datetime | None, zone) -> str:
    return timezone.localtime(value, zone).isoformat(timespec="minutes") if value else ""


@require_GET
@portal_viewer_required
def shipments_export(request):
    """The current filter as CSV, every page of it (read page by page through the keyset),
    streamed as it is read; the header in the viewer's language, times in the tenant's zone."""
    from zoneinfo import ZoneInfo

    try:
        filters = ShipmentFilters.from_params(_search_params(request), time_zone=_tenant_zone(request))
    except ShipmentFiltersInvalid as exc:
        context = _list_context(request)
        context["problem"] = {"kind": "filter", "field": exc.field, "message": _filter_message(exc)}
        return render(request, "portal/shipments/list.html", context, status=400)
    scope = shipment_scope(request.user)
    staff = _is_staff(request.user)
    zone = ZoneInfo(_tenant_zone(request))
    header = [
        _("Reference"),
        *([_("Customer")] if staff else []),
        _("Status"),
        _("Mode"),
        _("Origin"),
        _("Destination"),
        _("PO"),
        _("BOL"),
        _("PRO"),
        _("Container"),
        _("Created"),
        _("ETA"),
        _("Promised"),
        _("Late by (minutes)"),
        _("Open exception"),
        _("Delivered"),
    ]

    def lines() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield "\ufeff" + writer.writerow(header)  # the BOM: spreadsheets then read UTF-8
        after: str | None = None
        while True:
            page = shipments_page(scope, filters, after=after, limit=EXPORT_PAGE)
            for row in page.rows:
                shipment = row.shipment
                late = round(row.late_by.total_seconds() / 60) if row.late_by is not None else ""
                cells = [
                    shipment.reference,
                    *([shipment.customer_account.name] if staff else []),
                    shipment.get_status_display(),
                    shipment.get_mode_display(),
                    shipment.origin.name if shipment.origin else "",
                    shipment.destination.name if shipment.destination else "",
                    shipment.po_number,
                    shipment.bol_number,
                    shipment.pro_number,
                    shipment.container_number,
                    _moment(shipment.created_at, zone),
                    _moment(shipment.eta, zone),
                    _moment(row.promised_at, zone),
                    late,
                    _("yes") if row.has_open_exception else _("no"),
                    _moment(shipment.delivered_at, zone),
                ]
                yield writer.writerow([_csv_safe(cell) for cell in cells])
            if not page.next_cursor:
                return
            after = page.next_cursor

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime(timezone.now(), zone).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="shipments-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    token = request.GET.get("token", "")
    if _EXPORT_TOKEN.match(token):  # tells the page's script the download has started
        response.set_cookie(EXPORT_COOKIE, token, max_age=120, path="/shipments/", samesite="Lax")
    return response


# --- saved views ---------------------------------------------------------------------------------


@require_POST
@portal_viewer_required
def saved_view_create(request):
    query = request.POST.get("query", "")
    try:
        view, created = saved_view_save(owner=request.user, name=request.POST.get("name", ""), query=query, actor=request.user)
    except SavedViewRefused as exc:
        messages.error(request, exc.message)
        return redirect(reverse("portal:shipments") + ("?" + saved_view_query(query) if saved_view_query(query) else ""))
    if created:
        messages.success(request, _("View “%(name)s” saved: it is in your views above the list.") % {"name": view.name})
    else:
        messages.success(request, _("View “%(name)s” now shows this filter.") % {"name": view.name})
    return redirect(reverse("portal:shipments") + ("?" + view.query if view.query else ""))


@require_POST
@portal_viewer_required
def saved_view_remove(request, view_id: int):
    view = saved_view_get(owner=request.user, view_id=view_id)
    if view is None:
        raise Http404(_("You have no saved view with this number."))
    name = view.name
    saved_view_delete(view=view, actor=request.user)
    messages.success(request, _("View “%(name)s” deleted.") % {"name": name})
    return redirect("portal:shipments")


# --- one shipment --------------------------------------------------------------------------------


class _ShipmentMissing(Exception):
    pass


def _detail_or_missing(request, reference: str) -> ShipmentDetail:
    try:
        return shipment_detail(shipment_scope(request.user), reference)
    except ShipmentNotFound:
        raise _ShipmentMissing(reference) from None


def _shipment_not_found(request, reference: str) -> HttpResponse:
    """Another customer's shipment, a mistyped reference and one that never existed all read the same."""
    return render(request, "portal/shipments/not_found.html", {"reference": reference[:80]}, status=404)


def _stop_dicts(detail: ShipmentDetail) -> list[dict[str, Any]]:
    stops = []
    for view in detail.stops:
        location = view.stop.location
        stops.append(
            {
                "label": location.name if location else _("Stop %(number)d") % {"number": view.stop.sequence},
                "kind": view.stop.kind,
                "latitude": location.latitude if location else None,
                "longitude": location.longitude if location else None,
                "reached": view.actual is not None,
            }
        )
    return stops


def _detail_context(request, detail: ShipmentDetail) -> dict[str, Any]:
    shipment = detail.shipment
    telemetry = detail.telemetry
    position = {"latitude": telemetry.latitude, "longitude": telemetry.longitude} if telemetry and telemetry.latitude is not None else None
    documents = [
        {"document": document, "url": document_link(document, request.user, ttl=DOCUMENT_LINK_SECONDS)} for document in detail.documents
    ]
    invoices = [
        {"invoice": invoice, "url": document_link(invoice.document, request.user, ttl=DOCUMENT_LINK_SECONDS)} for invoice in detail.invoices
    ]
    eta_changes: list[dict[str, Any]] = []
    previous = None
    if shipment.original_eta is not None and shipment.original_eta_at is None:  # the planned ETA, before any estimate
        eta_changes.append({"eta": shipment.original_eta, "planned": True, "moved_by": None})
        previous = shipment.original_eta
    for change in detail.eta_history:
        if previous is not None and change.eta == previous:
            continue
        eta_changes.append(
            {"eta": change.eta, "made_at": change.made_at, "moved_by": change.eta - previous if previous is not None else None}
        )
        previous = change.eta
    newest = max((item.event.pk for item in detail.timeline), default=0)
    return {
        "detail": detail,
        "shipment": shipment,
        "row_view": _row_view(detail.row),
        "references": _references(shipment),
        "route": route_schematic(_stop_dicts(detail), position, settings.BATON_MAP_TILE_URL),
        "map_attribution": settings.BATON_MAP_ATTRIBUTION,
        "documents": documents,
        "invoices": invoices,
        "eta_changes": list(reversed(eta_changes)),
        "open_exceptions": [case for case in detail.exceptions if case.open],
        "closed_exceptions": [case for case in detail.exceptions if not case.open],
        "since": newest,
        "live_every": LIVE_EVERY_SECONDS,
        "viewer_zone": _tenant_zone(request),
        "is_staff": _is_staff(request.user),
        "link_minutes": DOCUMENT_LINK_SECONDS // 60,
    }


@require_GET
@portal_viewer_required
def shipment(request, reference: str):
    try:
        detail = _detail_or_missing(request, reference)
    except _ShipmentMissing:
        return _shipment_not_found(request, reference)
    return render(request, "portal/shipments/detail.html", _detail_context(request, detail))


@require_GET
@portal_viewer_required
def shipment_timeline(request, reference: str):
    """What changed since the page's newest milestone (`?since=<event id>`): the new milestones
    as timeline items and the status and ETA regions, for the page's script every 10 s. The
    ETag covers the answer, so an unchanged shipment costs a 304."""
    since_text = request.GET.get("since", "0").strip() or "0"
    if not since_text.isdigit() or len(since_text) > 18:
        return JsonResponse({"error": _("“since” is the id of the newest milestone the page shows: a whole number.")}, status=400)
    since = int(since_text)
    try:
        detail = _detail_or_missing(request, reference)
    except _ShipmentMissing:
        return JsonResponse({"error": _("There is no shipment with this reference among yours.")}, status=404)
    new = [item for item in detail.timeline if item.event.pk > since]
    shipment = detail.shipment
    fingerprint = "|".join(
        str(part)
        for part in (
            since,
            detail.updated_at.isoformat(),
            shipment.status,
            shipment.eta,
            [item.event.pk for item in new],
            detail.row.has_open_exception,
        )
    )
    etag = '"' + hashlib.sha256(fingerprint.encode()).hexdigest()[:32] + '"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        unchanged = HttpResponseNotModified()
        unchanged["ETag"] = etag
        return unchanged
    context = _detail_context(request, detail)
    with timezone.override(_tenant_zone(request)):
        events = [
            {
                "id": item.event.pk,
                "html": render_to_string(
                    "portal/shipments/_timeline_item.html", {"item": item, "viewer_zone": context["viewer_zone"]}, request
                ),
                "announce": _("New milestone: %(status)s") % {"status": _(item.status_label)},
            }
            for item in new
        ]
        regions = {
            "shipment-summary": render_to_string("portal/shipments/_summary.html", context, request),
            "shipment-exceptions": render_to_string("portal/shipments/_exceptions.html", context, request),
        }
    response = JsonResponse(
        {
            "reference": shipment.reference,
            "status": shipment.status,
            "since": max([since, *(item.event.pk for item in new)]),
            "events": events,
            "regions": regions,
        }
    )
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response


# --- documents -----------------------------------------------------------------------------------


def _link_refused(request, *, title: str, detail: str, status: int) -> HttpResponse:
    return render(request, "portal/shipments/link_refused.html", {"title": title, "detail": detail, "code": status}, status=status)


@require_GET
def document_download(request, token: str):
    """A document by its signed link: the link is the credential (a customer's system follows it
    from the API without a session), bound to this workspace, the document and the account it
    was made for. A signed-in customer of another account is refused even with a valid link."""
    try:
        document: Document = document_from_link(token)
    except DocumentLinkExpired:
        return _link_refused(
            request,
            title=_("This download link has expired"),
            detail=_("Download links work for %(minutes)d minutes. Open the shipment again and download the document from there.")
            % {"minutes": DOCUMENT_LINK_SECONDS // 60},
            status=410,
        )
    except DocumentLinkInvalid:
        return _link_refused(
            request,
            title=_("This download link does not work here"),
            detail=_(
                "It was changed, made for another workspace or account, or the document is no longer available. Open the shipment and download it from there."
            ),
            status=403,
        )
    user = request.user
    owner_account = document.shipment.customer_account_id if document.shipment is not None else None
    if user.is_authenticated and user.role == Role.CUSTOMER and viewer_customer_account_id(user) != owner_account:
        return _link_refused(
            request,
            title=_("This download link is for another account"),
            detail=_(
                "You are signed in with an account this document does not belong to. Open your own shipments to download their documents."
            ),
            status=403,
        )
    try:
        handle = document.file.open("rb")
    except (FileNotFoundError, OSError):
        return _link_refused(
            request,
            title=_("This document's file is missing"),
            detail=_("We have the document's record but not its file. Contact us and quote the shipment's reference."),
            status=404,
        )
    filename = document.original_name or f"{document.kind}-{document.shipment.reference if document.shipment else document.pk}"
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type=document.content_type or "application/octet-stream")
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
