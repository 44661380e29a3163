"""The shipment read model every shipment surface uses (the customer portal's pages, the Experience
API, later the workspace): who may see which shipments, the list with its filters and keyset
pages, one shipment with everything its page shows, and signed links to its documents.

Scoping comes first and is never skipped: `shipment_scope(viewer)` is the only way in, and every
other selector narrows the queryset it returns, so an id or reference taken from a URL can never
reach another customer's shipment (it is simply not found).

Stable names (other modules build on them): `shipment_scope`, `ShipmentFilters` (+ `from_params`),
`shipments_page` → `ShipmentPage(rows: [ShipmentRow], next_cursor, …)`, `shipment_detail` →
`ShipmentDetail`, `document_link` / `document_from_link`, the errors `ShipmentFiltersInvalid`,
`ShipmentCursorInvalid`, `ShipmentNotFound`, `DocumentLinkInvalid`, `DocumentLinkExpired`.

Document links: `document_link` returns the path of the URL named `DOCUMENT_LINK_URL_NAME`
(`portal:shipment_document`, taking `token`) when it exists, else `/shipments/documents/<token>/`.
The token is the credential (it is what a customer's system follows from the API): signed, with
an expiry, bound to the tenant's schema, the document and the viewer's customer account.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core import signing
from django.core.exceptions import EmptyResultSet
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_noop

from connectors.models import TelemetryAsset
from logistics.models import (
    OPEN_EXCEPTION,
    Document,
    DocumentKind,
    ExceptionCase,
    ExceptionStatus,
    ExceptionType,
    Location,
    Order,
    Shipment,
    Stop,
    StopKind,
    TrackingEvent,
    TransportMode,
)
from logistics.selectors import reference_match, reference_normalized
from logistics.vocabulary import TrackingStatus
from tenants.db import connection
from workflows.calendars import tenant_time_zone

__all__ = [
    "CUSTOMER_DOCUMENT_KINDS",
    "DOCUMENT_LINK_URL_NAME",
    "PAGE_LIMIT_MAX",
    "SORTS",
    "CustomerException",
    "CustomerInvoice",
    "DocumentLinkExpired",
    "DocumentLinkInvalid",
    "EtaChange",
    "LocalTime",
    "ShipmentCursorInvalid",
    "ShipmentDetail",
    "ShipmentFilters",
    "ShipmentFiltersInvalid",
    "ShipmentNotFound",
    "ShipmentPage",
    "ShipmentRow",
    "StopView",
    "TelemetryLatest",
    "TimelineEvent",
    "document_from_link",
    "document_link",
    "shipment_detail",
    "shipment_scope",
    "shipments_page",
    "viewer_customer_account_id",
]

PAGE_LIMIT_MAX = 200
PAGE_LIMIT_DEFAULT = 50
# Sorts on indexed columns; the id breaks ties in the sort's direction. A missing ETA counts as
# the latest (PostgreSQL's own order: last in `eta`, first in `-eta`), so one index serves both.
SORTS = ("-created_at", "created_at", "eta", "-eta")
SORT_DEFAULT = "-created_at"
# What a customer sees of a shipment's papers: rate confirmations carry the carrier's price and
# receipts the carrier's costs, so they stay with the tenant's staff.
CUSTOMER_DOCUMENT_KINDS = (DocumentKind.POD, DocumentKind.BOL)
DOCUMENT_LINK_URL_NAME = "portal:shipment_document"
DOCUMENT_LINK_TTL = 600
_CURSOR_SALT = "logistics.shipment_reads.cursor"
_LINK_SALT = "logistics.shipment_reads.document_link"
_REFERENCE_MATCHES_MAX = 500  # a reference that names more shipments than this is not a reference


class ShipmentFiltersInvalid(ValueError):
    """A filter value that cannot be used: `field` names it, the message says why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ShipmentCursorInvalid(ValueError):
    """A cursor this server did not make, or made for another search, sort, scope or tenant."""


class ShipmentNotFound(LookupError):
    """No shipment by that id or reference among those the viewer may see."""


class DocumentLinkInvalid(ValueError):
    """A document link that was not made here, was changed, or names a document the account no longer sees."""


class DocumentLinkExpired(DocumentLinkInvalid):
    """A genuine document link past its lifetime: ask the page or the API for a fresh one."""


# --- scope ---------------------------------------------------------------------------------------


def viewer_customer_account_id(viewer: Any) -> int | None:
    """The customer account a viewer is bound to (a customer user, a customer-bound API key or
    its request principal), or None for tenant staff and unbound keys."""
    key = getattr(viewer, "key", None)  # accounts.api.authentication.ApiKeyPrincipal
    if key is not None and hasattr(key, "prefix"):
        viewer = key
    account = getattr(viewer, "customer_account_id", None)
    return int(account) if account is not None else None


def _is_tenant_staff(viewer: Any) -> bool:
    from accounts.models import TENANT_STAFF_ROLES, ApiKey

    key = getattr(viewer, "key", None)
    if isinstance(viewer, ApiKey) or isinstance(key, ApiKey):
        return True
    if not getattr(viewer, "is_authenticated", False) or not getattr(viewer, "is_active", False):
        return False
    return getattr(viewer, "role", "") in TENANT_STAFF_ROLES or bool(getattr(viewer, "support_grant_id", None))


def shipment_scope(viewer: Any) -> QuerySet[Shipment]:
    """The shipments `viewer` may see: a customer user's or customer-bound API key's account
    only; everything for tenant staff (and support sessions) and unbound API keys; nothing for
    anyone else (anonymous, an MSP user outside a support session)."""
    account = viewer_customer_account_id(viewer)
    if account is not None:
        return Shipment.objects.filter(customer_account_id=account)
    if _is_tenant_staff(viewer):
        return Shipment.objects.all()
    return Shipment.objects.none()


def _scope_signature(scope: QuerySet[Shipment]) -> str:
    """What distinguishes one scope from another (its SQL carries the account), for cursors."""
    try:
        return str(scope.query)
    except EmptyResultSet:  # an empty scope (`none()`) has no SQL
        return "none"


# --- filters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShipmentFilters:
    """A shipment list's search. Times are half-open ranges [from, to); `q` is one reference of
    any kind (ours, an order number, PO, BOL, PRO, container, load), matched exactly after the
    references' normalisation; `origin` / `destination` a location code or a city; `customer`
    (an account id or code) narrows a staff list and cannot widen a customer's."""

    q: str = ""
    status: tuple[str, ...] = ()
    has_exception: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    delivered_from: datetime | None = None
    delivered_to: datetime | None = None
    eta_from: datetime | None = None
    eta_to: datetime | None = None
    mode: str = ""
    origin: str = ""
    destination: str = ""
    customer: str = ""
    sort: str = SORT_DEFAULT

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ShipmentFiltersInvalid("sort", f"'{self.sort}' is not a sort; use one of {', '.join(SORTS)}")
        unknown = [value for value in self.status if value not in TrackingStatus.values]
        if unknown:
            raise ShipmentFiltersInvalid("status", f"'{unknown[0]}' is not a status; use {', '.join(TrackingStatus.values)}")
        if self.mode and self.mode not in TransportMode.values:
            raise ShipmentFiltersInvalid("mode", f"'{self.mode}' is not a mode; use {', '.join(TransportMode.values)}")
        for name in ("created", "delivered", "eta"):
            start, end = getattr(self, f"{name}_from"), getattr(self, f"{name}_to")
            if start is not None and end is not None and end <= start:
                raise ShipmentFiltersInvalid(f"{name}_to", f"the range ends ({end.isoformat()}) before it starts ({start.isoformat()})")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, time_zone: str | None = None) -> ShipmentFilters:
        """Filters from a query string (a Django QueryDict or a plain mapping). Dates (YYYY-MM-DD)
        are whole days in `time_zone` (the tenant's by default), `*_to` inclusive; ISO date-times
        are taken as they are. `status` may repeat or be comma-separated."""
        zone = _zone(time_zone or tenant_time_zone())

        def text(name: str, limit: int = 100) -> str:
            return str(params.get(name) or "").strip()[:limit]

        statuses: list[str] = []
        raw_statuses = params.getlist("status") if hasattr(params, "getlist") else [params.get("status") or ""]
        for value in raw_statuses:
            statuses += [part.strip() for part in str(value).split(",") if part.strip()]
        has_exception_text = text("has_exception").lower()
        if has_exception_text in ("", "any"):
            has_exception = None
        elif has_exception_text in ("1", "true", "yes", "on"):
            has_exception = True
        elif has_exception_text in ("0", "false", "no", "off"):
            has_exception = False
        else:
            raise ShipmentFiltersInvalid("has_exception", f"'{has_exception_text}' is not true or false")
        bounds: dict[str, datetime | None] = {}
        for name in ("created", "delivered", "eta"):
            bounds[f"{name}_from"] = _moment(f"{name}_from", text(f"{name}_from"), zone, end=False)
            bounds[f"{name}_to"] = _moment(f"{name}_to", text(f"{name}_to"), zone, end=True)
        return cls(
            q=text("q", 80),
            status=tuple(dict.fromkeys(statuses)),
            has_exception=has_exception,
            mode=text("mode"),
            origin=text("origin"),
            destination=text("destination"),
            customer=text("customer"),
            sort=text("sort") or SORT_DEFAULT,
            **bounds,
        )

    def fingerprint(self) -> str:
        values = asdict(self)
        return json.dumps(
            {key: (value.isoformat() if isinstance(value, datetime) else value) for key, value in values.items()}, sort_keys=True
        )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _moment(field_name: str, text: str, zone: ZoneInfo, *, end: bool) -> datetime | None:
    if not text:
        return None
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text) + (timedelta(days=1) if end else timedelta(0))
            return datetime.combine(day, time(0), tzinfo=zone)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ShipmentFiltersInvalid(field_name, f"'{text}' is neither a date (YYYY-MM-DD) nor an ISO 8601 date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _locations(text: str) -> QuerySet[Location]:
    return Location.objects.filter(Q(code=text) | Q(city__iexact=text)).values("id")  # type: ignore[return-value]


def _reference_ids(scope: QuerySet[Shipment], text: str) -> list[int]:
    """Shipments a reference names: any of the shipment's own (each an index look-up) or an
    order's number or PO through the orders it carries. Resolved apart so each look-up uses its
    own index instead of an OR the planner can only answer with a scan."""
    normalized = reference_normalized(text)
    ids = list(scope.filter(reference_match(text)).values_list("id", flat=True)[:_REFERENCE_MATCHES_MAX])
    numbers = {text.strip(), normalized} - {""}
    orders = Order.objects.filter(Q(number__in=numbers) | Q(po_number__in=numbers)).values("id")[:_REFERENCE_MATCHES_MAX]
    through = Shipment.orders.through.objects.filter(order_id__in=Subquery(orders)).values("shipment_id")
    ids += list(scope.filter(id__in=Subquery(through)).values_list("id", flat=True)[:_REFERENCE_MATCHES_MAX])
    return sorted(set(ids))


def _open_exception() -> Exists:
    return Exists(ExceptionCase.objects.filter(OPEN_EXCEPTION, shipment_id=OuterRef("pk")))


def _open_exception_probe() -> Subquery:
    """One open exception's id, else NULL: the "has an open exception" filter as a test per row.
    As EXISTS, PostgreSQL turned the filter into a semi-join and, guessing that a tenth of the
    matches had one, planned to read the whole date range before sorting (25 ms for a 50-row page
    at 1M shipments); a per-row test lets the page stop at its last row, as the 25-row page did."""
    return Subquery(ExceptionCase.objects.filter(OPEN_EXCEPTION, shipment_id=OuterRef("pk")).values("pk")[:1])


def _promise_appointment() -> Subquery:
    """The last delivery stop's appointment end (or start): what `tracking_inbound._promise` reads first."""
    last_delivery = Stop.objects.filter(shipment_id=OuterRef("pk"), kind=StopKind.DELIVERY).order_by("-sequence")
    return Subquery(last_delivery.annotate(promise=Coalesce("appointment_end", "appointment_start")).values("promise")[:1])


# Columns no list (portal page, CSV, Experience API) reads: left in the database, since turning
# them into Python per row – the places' dock hours and holidays (JSON), coordinates, weights and
# rates (decimals) – cost more than the rest of a row's columns together. Reading one of them on a
# page's shipment is a query per row: tests/portal/test_shipment_list_rows.py counts the queries.
LIST_UNREAD = (
    "carrier",
    "tender_status",
    "weight_unit",
    "planned_weight",
    "actual_weight",
    "currency",
    "planned_rate",
    "actual_rate",
    "status_event",
    "eta_at",
    "eta_event",
    *(
        f"{place}__{column}"
        for place in ("origin", "destination")
        for column in (
            "party",
            "address_line1",
            "address_line2",
            "postal_code",
            "latitude",
            "longitude",
            "geofence_radius_m",
            "weekly_hours",
            "holidays",
            "created_at",
        )
    ),
)


def _annotated(shipments: QuerySet[Shipment]) -> QuerySet[Shipment]:
    return shipments.select_related("customer_account", "origin", "destination").annotate(
        has_open_exception=_open_exception(), promise_appointment=_promise_appointment()
    )


def _filtered(scope: QuerySet[Shipment], filters: ShipmentFilters) -> QuerySet[Shipment]:
    shipments = scope
    if filters.q:
        shipments = shipments.filter(id__in=_reference_ids(scope, filters.q))
    if filters.status:
        shipments = shipments.filter(status__in=filters.status)
    if filters.has_exception is not None:
        if filters.has_exception:
            shipments = shipments.alias(open_exception_probe=_open_exception_probe()).filter(open_exception_probe__isnull=False)
        else:
            shipments = shipments.filter(~_open_exception())
    for name, column in (("created", "created_at"), ("delivered", "delivered_at"), ("eta", "eta")):
        start, end = getattr(filters, f"{name}_from"), getattr(filters, f"{name}_to")
        if start is not None:
            shipments = shipments.filter(**{f"{column}__gte": start})
        if end is not None:
            shipments = shipments.filter(**{f"{column}__lt": end})
    if filters.mode:
        shipments = shipments.filter(mode=filters.mode)
    if filters.origin:
        shipments = shipments.filter(origin_id__in=_locations(filters.origin))
    if filters.destination:
        shipments = shipments.filter(destination_id__in=_locations(filters.destination))
    if filters.customer:
        customer = filters.customer
        shipments = (
            shipments.filter(customer_account_id=int(customer)) if customer.isdigit() else shipments.filter(customer_account__code=customer)
        )
    return shipments


# --- rows and pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShipmentRow:
    """One list row: the shipment (customer account, origin and destination loaded), its promise
    and how late it runs against it, and whether an exception is open."""

    shipment: Shipment
    promised_at: datetime | None
    promise: str  # "delivery appointment", "planned delivery" or "" (none)
    has_open_exception: bool

    @property
    def expected_at(self) -> datetime | None:
        """When it arrived, else when it is expected."""
        return self.shipment.delivered_at or self.shipment.eta

    @property
    def late_by(self) -> timedelta | None:
        """Delivery (or the current ETA) minus the promise: positive is late, negative early; None without both."""
        if self.promised_at is None or self.expected_at is None:
            return None
        return self.expected_at - self.promised_at

    @property
    def is_late(self) -> bool:
        return self.late_by is not None and self.late_by > timedelta(0)


def _row(shipment: Shipment) -> ShipmentRow:
    appointment = getattr(shipment, "promise_appointment", None)
    if appointment is not None:
        promised_at, promise = appointment, "delivery appointment"
    elif shipment.original_eta is not None and shipment.original_eta_at is None:
        promised_at, promise = shipment.original_eta, "planned delivery"
    else:
        promised_at, promise = None, ""
    return ShipmentRow(shipment, promised_at, promise, bool(getattr(shipment, "has_open_exception", False)))


@dataclass(frozen=True)
class ShipmentPage:
    rows: list[ShipmentRow]
    next_cursor: str | None  # None on the last page
    limit: int
    filters: ShipmentFilters

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None


def _cursor_binding(scope: QuerySet[Shipment], filters: ShipmentFilters) -> str:
    text = "\n".join((connection.schema_name, _scope_signature(scope), filters.fingerprint()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cursor_make(shipment: Shipment, filters: ShipmentFilters, binding: str) -> str:
    column = filters.sort.lstrip("-")
    value = getattr(shipment, column)
    return signing.dumps({"v": value.isoformat() if value is not None else None, "id": shipment.pk, "b": binding}, salt=_CURSOR_SALT)


def _cursor_read(token: str, binding: str) -> tuple[datetime | None, int]:
    try:
        data = signing.loads(token, salt=_CURSOR_SALT)
    except signing.BadSignature:
        raise ShipmentCursorInvalid("This cursor was not made here or was changed; start again from the first page.") from None
    if not isinstance(data, dict) or data.get("b") != binding:
        raise ShipmentCursorInvalid("This cursor belongs to another search, sort or account; start again from the first page.")
    try:
        value = datetime.fromisoformat(data["v"]) if data.get("v") is not None else None
        return value, int(data["id"])
    except (KeyError, TypeError, ValueError):
        raise ShipmentCursorInvalid("This cursor is damaged; start again from the first page.") from None


def _after(sort: str, value: datetime | None, pk: int) -> Q:
    """Rows strictly after (value, pk) in `sort`'s order. Nulls (only ETAs have them) sort as the
    latest: last ascending, first descending."""
    column, descending = sort.lstrip("-"), sort.startswith("-")
    if value is None:  # only an ETA can be missing
        return Q(**{f"{column}__isnull": True, "id__lt" if descending else "id__gt": pk}) | (
            Q(**{f"{column}__isnull": False}) if descending else Q(pk__in=[])
        )
    if descending:
        return Q(**{f"{column}__lte": value}) & (Q(**{f"{column}__lt": value}) | Q(**{column: value, "id__lt": pk}))
    after = Q(**{f"{column}__gte": value}) & (Q(**{f"{column}__gt": value}) | Q(**{column: value, "id__gt": pk}))
    return after | Q(**{f"{column}__isnull": True}) if column == "eta" else after


def _ordering(sort: str) -> list[Any]:
    column = sort.lstrip("-")
    if sort.startswith("-"):
        return [F(column).desc(nulls_first=True), "-id"]
    return [F(column).asc(nulls_last=True), "id"]


def shipments_page(
    scope: QuerySet[Shipment], filters: ShipmentFilters, *, after: str | None = None, limit: int = PAGE_LIMIT_DEFAULT
) -> ShipmentPage:
    """One page of the scope's shipments matching `filters`, in `filters.sort` order, after the
    cursor `after` (None: the first page). Keyset pages: no OFFSET, every page costs what the
    first does. The cursor is signed and bound to the tenant, the scope and the filters, so it
    cannot be edited or replayed under another search (`ShipmentCursorInvalid`)."""
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise ShipmentFiltersInvalid("limit", f"{limit} is not between 1 and {PAGE_LIMIT_MAX}")
    binding = _cursor_binding(scope, filters)
    shipments = _filtered(scope, filters)
    if after:
        value, pk = _cursor_read(after, binding)
        shipments = shipments.filter(_after(filters.sort, value, pk))
    # The page's ids first, then their annotations: planned over the whole filtered set, the
    # open-exception EXISTS became a hashed subplan that read every open exception of the tenant
    # on each page (bench/portal.py); over limit + 1 ids it is one index probe per row.
    ordering = _ordering(filters.sort)
    page_ids = shipments.order_by(*ordering).values("pk")[: limit + 1]
    found = list(_annotated(Shipment.objects.filter(pk__in=Subquery(page_ids))).defer(*LIST_UNREAD).order_by(*ordering))
    rows = [_row(shipment) for shipment in found[:limit]]
    next_cursor = _cursor_make(found[limit - 1], filters, binding) if len(found) > limit else None
    return ShipmentPage(rows=rows, next_cursor=next_cursor, limit=limit, filters=filters)


# --- one shipment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalTime:
    """A moment in UTC and in a place's zone (the stop's, else the tenant's)."""

    utc: datetime
    local: datetime
    time_zone: str


def _local(moment: datetime | None, zone_name: str) -> LocalTime | None:
    if moment is None:
        return None
    return LocalTime(utc=moment.astimezone(UTC), local=moment.astimezone(_zone(zone_name)), time_zone=zone_name)


@dataclass(frozen=True)
class StopView:
    """A stop with its promise (appointment) and what happened (arrival, departure), in its local
    time: the timeline's planned-versus-actual per stop."""

    stop: Stop
    time_zone: str
    appointment_start: LocalTime | None
    appointment_end: LocalTime | None
    arrived_at: LocalTime | None
    departed_at: LocalTime | None

    @property
    def planned(self) -> LocalTime | None:
        return self.appointment_end or self.appointment_start

    @property
    def actual(self) -> LocalTime | None:
        """Arrival for a pickup's and a delivery's call alike (departure when no arrival was reported)."""
        return self.arrived_at or self.departed_at

    @property
    def late_by(self) -> timedelta | None:
        if self.planned is None or self.actual is None:
            return None
        return self.actual.utc - self.planned.utc


@dataclass(frozen=True)
class TimelineEvent:
    """An event that moved the shipment, in the stop's (or tenant's) time and UTC."""

    event: TrackingEvent
    status: str
    status_label: str
    occurred: LocalTime
    place: str


@dataclass(frozen=True)
class EtaChange:
    """One estimate, in the order it was made."""

    made_at: datetime
    eta: datetime
    source: str
    event_id: int


@dataclass(frozen=True)
class TelemetryLatest:
    latitude: float | None
    longitude: float | None
    position_at: datetime | None
    temperature: float | None  # degrees Celsius
    temperature_at: datetime | None
    last_seen_at: datetime


@dataclass(frozen=True)
class CustomerException:
    """What a customer may read of an exception: its kind, state and a message made from those
    two alone – never the case's reason, details, notes or resolution."""

    id: int
    type: str
    type_label: str
    status: str
    open: bool
    opened_at: datetime
    closed_at: datetime | None
    message: str


@dataclass(frozen=True)
class CustomerInvoice:
    """A customer invoice the invoicing flow produced (a Document of kind invoice)."""

    document: Document
    number: str
    total: str
    currency: str
    status: str  # "issued": Baton keeps no payment state for customer invoices
    issued_at: datetime


@dataclass(frozen=True)
class ShipmentDetail:
    row: ShipmentRow
    stops: list[StopView]
    timeline: list[TimelineEvent]
    eta_history: list[EtaChange]
    telemetry: TelemetryLatest | None
    exceptions: list[CustomerException]
    documents: list[Document]
    invoices: list[CustomerInvoice]
    time_zone: str  # the tenant's, for times without a place

    @property
    def shipment(self) -> Shipment:
        return self.row.shipment

    @property
    def updated_at(self) -> datetime:
        """The newest change among what the page shows (for ETags and live polling)."""
        moments = [self.shipment.updated_at, *(item.event.received_at for item in self.timeline)]
        moments += [document.received_at for document in self.documents] + [invoice.issued_at for invoice in self.invoices]
        moments += [case.closed_at or case.opened_at for case in self.exceptions]
        return max(moments)


# Customer-facing words, translated where shown (portal/shipments/_exceptions.html).
_EXCEPTION_MESSAGES: dict[str, str] = {
    ExceptionType.DELAY: gettext_noop("Your shipment is running late. We are working with the carrier on a new delivery time."),
    ExceptionType.MISSED_PICKUP: gettext_noop("The carrier missed the pickup. We are arranging a new pickup."),
    ExceptionType.MISSED_DELIVERY: gettext_noop("The delivery did not happen as planned. We are arranging a new delivery time."),
    ExceptionType.ROUTE_DEVIATION: gettext_noop("The truck left its planned route. We are checking with the carrier."),
    ExceptionType.TEMPERATURE_EXCURSION: gettext_noop(
        "The load's temperature went outside its range. We are checking the load with the carrier."
    ),
    ExceptionType.DAMAGE: gettext_noop("Damage was reported on this shipment. We are looking into it."),
    ExceptionType.SHORTAGE: gettext_noop("A shortage was reported on this shipment. We are looking into it."),
    ExceptionType.TENDER_DECLINED: gettext_noop("The carrier could not take this shipment. We are booking another carrier."),
    ExceptionType.ORDER_INVALID: gettext_noop(
        "Some order details need checking before this shipment can move. We will contact you if we need anything."
    ),
    ExceptionType.INVENTORY_VARIANCE: gettext_noop("Stock counts differ between systems. We are reconciling them."),
    ExceptionType.POD_INCOMPLETE: gettext_noop("The proof of delivery is incomplete. We are requesting a complete copy from the carrier."),
    ExceptionType.INVOICE_MISMATCH: gettext_noop("We are checking the carrier's charges for this shipment."),
    ExceptionType.OTHER: gettext_noop("Something needs our attention on this shipment. We are working on it."),
}
_EXCEPTION_CLOSED = "Resolved: {label}."


def customer_exception_message(case_type: str, status: str) -> str:
    """The customer-facing sentence of an exception, from its type and status only."""
    label = ExceptionType(case_type).label if case_type in ExceptionType.values else ExceptionType.OTHER.label
    if status == ExceptionStatus.CLOSED:
        return _EXCEPTION_CLOSED.format(label=label.lower())
    return _EXCEPTION_MESSAGES.get(case_type, _EXCEPTION_MESSAGES[ExceptionType.OTHER])


def _shipment_get(scope: QuerySet[Shipment], shipment_id_or_reference: int | str) -> Shipment:
    """By our reference, else (all digits) by id, else by any other reference naming exactly one shipment."""
    text = str(shipment_id_or_reference).strip()
    if not text:
        raise ShipmentNotFound("No shipment reference was given.")
    shipments = _annotated(scope)
    found = shipments.filter(reference=text).first()
    if found is None and text.isdigit() and len(text) < 19:
        found = shipments.filter(pk=int(text)).first()
    if found is None:
        matches = list(shipments.filter(id__in=_reference_ids(scope, text)[:2]))
        found = matches[0] if len(matches) == 1 else None
    if found is None:
        raise ShipmentNotFound(f"There is no shipment '{text[:80]}' here.")
    return found


def _telemetry(shipment: Shipment) -> TelemetryLatest | None:
    """The newest telemetry that names the shipment (by any of its references): the MQTT
    listener keeps one latest-state row per trailer or shipment (`TelemetryAsset`)."""
    references = {shipment.reference, shipment.container_number, shipment.load_number} - {""}
    asset = TelemetryAsset.objects.filter(shipment_ref__in=references).order_by("-last_seen_at").first()
    if asset is None:
        return None
    return TelemetryLatest(asset.latitude, asset.longitude, asset.position_at, asset.temperature, asset.temperature_at, asset.last_seen_at)


def _customer_invoice(document: Document) -> CustomerInvoice | None:
    fields = document.extracted_fields or {}
    number = fields.get("customer_invoice")
    if not number:
        return None
    return CustomerInvoice(
        document=document,
        number=str(number),
        total=str(fields.get("total", "")),
        currency=str(fields.get("currency", "")),
        status="issued",
        issued_at=document.received_at,
    )


def customer_invoices(documents: Iterable[Document]) -> list[CustomerInvoice]:
    """The customer invoices among documents (kind invoice, made by `customer_invoice_produce`)."""
    found = (_customer_invoice(document) for document in documents if document.kind == DocumentKind.INVOICE)
    return [invoice for invoice in found if invoice is not None]


def invoice_documents(scope: QuerySet[Shipment]) -> QuerySet[Document]:
    """Customer invoice documents of the scope's shipments, newest first (the `/invoices` list)."""
    return (
        Document.objects.filter(kind=DocumentKind.INVOICE, shipment__in=scope, extracted_fields__has_key="customer_invoice")
        .select_related("shipment")
        .order_by("-received_at", "-id")
    )


def shipment_detail(scope: QuerySet[Shipment], shipment_id_or_reference: int | str) -> ShipmentDetail:
    """Everything a shipment's page shows, in seven queries: the shipment, its stops, its events,
    its exceptions, its documents, its telemetry. `ShipmentNotFound` outside the scope."""
    shipment = _shipment_get(scope, shipment_id_or_reference)
    tenant_zone = tenant_time_zone()
    stops = list(Stop.objects.filter(shipment=shipment).select_related("location").order_by("sequence"))
    stop_zones = {stop.pk: (stop.location.time_zone if stop.location and stop.location.time_zone else tenant_zone) for stop in stops}
    stop_views = [
        StopView(
            stop=stop,
            time_zone=stop_zones[stop.pk],
            appointment_start=_local(stop.appointment_start, stop_zones[stop.pk]),
            appointment_end=_local(stop.appointment_end, stop_zones[stop.pk]),
            arrived_at=_local(stop.arrived_at, stop_zones[stop.pk]),
            departed_at=_local(stop.departed_at, stop_zones[stop.pk]),
        )
        for stop in stops
    ]
    stops_by_id = {stop.pk: stop for stop in stops}
    events = list(
        TrackingEvent.objects.filter(Q(applied=True) | Q(eta__isnull=False), shipment=shipment)
        .only("id", "status", "source", "occurred_at", "received_at", "eta", "stop_id", "location_text", "applied", "shipment_id")
        .order_by("occurred_at", "id")
    )
    timeline = []
    for event in events:
        if not event.applied:
            continue
        stop = stops_by_id.get(event.stop_id) if event.stop_id else None
        place = event.location_text or (stop.location.name if stop is not None and stop.location else "")
        occurred = _local(event.occurred_at, stop_zones.get(event.stop_id or 0, tenant_zone))
        assert occurred is not None
        label = TrackingStatus(event.status).label if event.status in TrackingStatus.values else event.status
        timeline.append(TimelineEvent(event=event, status=event.status, status_label=label, occurred=occurred, place=place))
    eta_history = [
        EtaChange(made_at=event.occurred_at, eta=event.eta, source=event.source, event_id=event.pk)
        for event in events
        if event.eta is not None
    ]
    cases = (
        ExceptionCase.objects.filter(shipment=shipment).only("id", "type", "status", "opened_at", "closed_at").order_by("-opened_at", "-id")
    )
    exceptions = [
        CustomerException(
            id=case.pk,
            type=case.type,
            type_label=case.get_type_display(),
            status=case.status,
            open=case.status != ExceptionStatus.CLOSED,
            opened_at=case.opened_at,
            closed_at=case.closed_at,
            message=customer_exception_message(case.type, case.status),
        )
        for case in cases
    ]
    papers = list(
        Document.objects.filter(shipment=shipment, kind__in=[*CUSTOMER_DOCUMENT_KINDS, DocumentKind.INVOICE]).order_by(
            "-received_at", "-id"
        )
    )
    return ShipmentDetail(
        row=_row(shipment),
        stops=stop_views,
        timeline=timeline,
        eta_history=eta_history,
        telemetry=_telemetry(shipment),
        exceptions=exceptions,
        documents=[paper for paper in papers if paper.kind in CUSTOMER_DOCUMENT_KINDS],
        invoices=customer_invoices(papers),
        time_zone=tenant_zone,
    )


def shipment_events(
    scope: QuerySet[Shipment], shipment_id_or_reference: int | str, *, since_id: int | None = None
) -> QuerySet[TrackingEvent]:
    """A shipment's tracking events as the customer sees them (applied ones: what moved it), in
    order; `since_id` keeps only newer rows (live polling). `ShipmentNotFound` outside the scope."""
    shipment = _shipment_get(scope, shipment_id_or_reference)
    events = TrackingEvent.objects.filter(shipment=shipment, applied=True).select_related("stop__location").order_by("occurred_at", "id")
    return events.filter(id__gt=since_id) if since_id is not None else events


# --- document links ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LinkClaims:
    document: int
    account: int | None
    schema: str
    purpose: str = field(default="download")


def document_link(document: Document, viewer: Any, *, ttl: int = DOCUMENT_LINK_TTL) -> str:
    """A signed URL path to download `document` for `ttl` seconds, bound to this tenant, the
    document and the viewer's customer account (staff: none). The caller must already have
    found the document through `shipment_scope(viewer)`."""
    account = viewer_customer_account_id(viewer)
    payload = {"d": document.pk, "a": account, "s": connection.schema_name, "e": int(ttl)}
    token = signing.TimestampSigner(salt=_LINK_SALT).sign_object(payload, compress=False)
    try:
        return reverse(DOCUMENT_LINK_URL_NAME, kwargs={"token": token})
    except NoReverseMatch:
        return f"/shipments/documents/{token}/"


def document_from_link(token: str) -> Document:
    """The document a link names, once its signature, lifetime, tenant and account check out:
    `DocumentLinkExpired` past its lifetime, `DocumentLinkInvalid` otherwise (changed, another
    tenant's, or a document the account no longer sees)."""
    signer = signing.TimestampSigner(salt=_LINK_SALT)
    try:
        payload = signer.unsign_object(token)
    except signing.BadSignature:
        raise DocumentLinkInvalid("This download link is not valid: it was changed or not made here.") from None
    if not isinstance(payload, dict) or payload.get("s") != connection.schema_name:
        raise DocumentLinkInvalid("This download link belongs to another workspace.")
    try:
        signer.unsign_object(token, max_age=timedelta(seconds=int(payload.get("e", DOCUMENT_LINK_TTL))))
    except signing.SignatureExpired:
        raise DocumentLinkExpired("This download link has expired; open the shipment again for a fresh one.") from None
    account = payload.get("a")
    documents = Document.objects.select_related("shipment").filter(
        pk=int(payload.get("d") or 0), kind__in=[*CUSTOMER_DOCUMENT_KINDS, DocumentKind.INVOICE]
    )
    if account is not None:
        documents = documents.filter(shipment__customer_account_id=account)
    document = documents.first()
    if document is None:
        raise DocumentLinkInvalid("This download link names a document that is not available.")
    return document
