"""The Experience API: what a tenant's customers' systems read about their freight.

`/api/v1/shipments` (filters, keyset pages through an opaque `cursor`), `/shipments/{reference}`,
its `/tracking-events` and `/documents` (metadata and a signed, expiring download URL),
`/invoices` (customer invoices) and `/subscriptions` (milestone subscriptions). Everything goes
through `logistics.shipment_reads`, scoped to the caller: a key bound to a customer account (or a
customer user's session) sees that account only – another account's shipment is 404, never 403 –
while staff and unbound keys see all. Every GET carries an ETag (a hash of its body) and answers
If-None-Match with 304; the per-key rate limit is the API's own (`config.api_policies.PlanRateThrottle`,
counted in Redis per schema and key: 429 with Retry-After). Errors are problem+json.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import HttpResponseNotModified
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from accounts.models import TENANT_STAFF_ROLES, Role
from config.problems import serializer_error_pointers
from logistics import notifications
from logistics import shipment_reads as reads
from logistics.models import CustomerAccount, Document, NotificationChannel, Shipment, TrackingEvent
from logistics.notification_api import MilestoneSubscriptionCreateSerializer, MilestoneSubscriptionSerializer, subscription_created
from logistics.vocabulary import TrackingStatus
from portal.api.permissions import scoped

READ_SCOPE = "shipments:read"
SUBSCRIPTIONS_READ_SCOPE = "subscriptions:read"
SUBSCRIPTIONS_WRITE_SCOPE = "subscriptions:write"
_READERS = (*sorted(TENANT_STAFF_ROLES), Role.CUSTOMER)
CanRead = scoped(READ_SCOPE, *_READERS, customers=True)
CanReadSubscriptions = scoped(SUBSCRIPTIONS_READ_SCOPE, *_READERS, customers=True)
CanWriteSubscriptions = scoped(
    SUBSCRIPTIONS_WRITE_SCOPE, Role.TENANT_ADMIN, Role.PLANNER, Role.CUSTOMER_SERVICE, Role.CUSTOMER, customers=True
)


# --- errors --------------------------------------------------------------------------------------


class QueryInvalid(exceptions.ValidationError):
    """400 problem+json naming the query parameter and why."""

    problem_type = "shipment-query-invalid"

    def __init__(self, parameter: str, reason: str):
        super().__init__(detail={parameter: [reason]})
        self.problem_errors = [{"parameter": parameter, "reason": reason}]


class CursorInvalid(exceptions.ValidationError):
    problem_type = "cursor-invalid"

    def __init__(self, reason: str):
        super().__init__(detail={"cursor": [reason]})
        self.problem_errors = [{"parameter": "cursor", "reason": reason}]


class SubscriptionInvalid(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The subscription cannot be saved as given."
    default_code = "unprocessable"
    problem_type = "subscription-invalid"

    def __init__(self, problems: list[tuple[str, str]]):
        first = problems[0] if problems else ("", "")
        super().__init__(detail=f"{len(problems)} problem{'s' if len(problems) != 1 else ''}, first: {first[0] or '/'} {first[1]}.")
        self.problem_errors = [{"pointer": pointer, "reason": reason} for pointer, reason in problems]


_PROBLEM = inline_serializer(
    "ExperienceProblem",
    fields={
        "type": serializers.CharField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "instance": serializers.CharField(),
        "errors": serializers.ListField(child=serializers.DictField(), required=False),
        "retry_after_seconds": serializers.IntegerField(required=False),
    },
)
_COMMON = {
    304: OpenApiResponse(description="Not modified: the If-None-Match ETag is still current."),
    403: OpenApiResponse(_PROBLEM, description="Missing scope or role."),
    429: OpenApiResponse(_PROBLEM, description="Over the key's rate limit; Retry-After says when to try again."),
}
_NOT_FOUND = {404: OpenApiResponse(_PROBLEM, description="No such shipment among those this key may see.")}
_ETAG_PARAMETER = OpenApiParameter(
    "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, description="An ETag from an earlier response: 304 if unchanged."
)


# --- ETags ---------------------------------------------------------------------------------------


_VOLATILE = frozenset({"download_url", "download_expires_at"})


def _stable(data: Any) -> Any:
    """The body without the signed download URLs, which are minted afresh on every request."""
    if isinstance(data, dict):
        return {key: _stable(value) for key, value in data.items() if key not in _VOLATILE}
    if isinstance(data, list):
        return [_stable(item) for item in data]
    return data


class ETagMixin:
    """Every successful GET carries a strong ETag over its body (the signed download URLs left
    out: they change every request, the documents do not); a matching If-None-Match is 304.
    A 304 keeps the client's copy, whose download URLs may have expired: GET without
    If-None-Match (or the shipment's /documents) for fresh ones."""

    # Whether the body may carry signed download URLs: a view whose bodies never do skips the
    # walk that leaves them out (a whole list page of rows, on every request).
    etag_has_volatile = True

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if request.method not in ("GET", "HEAD") or response.status_code != 200 or not isinstance(response, Response):
            return response
        body = json.dumps(
            _stable(response.data) if self.etag_has_volatile else response.data, cls=JSONEncoder, sort_keys=True, separators=(",", ":")
        )
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:40] + '"'
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        response["Vary"] = "Authorization, Cookie"
        wanted = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",") if tag.strip()}
        if etag in wanted or "*" in wanted:
            not_modified = HttpResponseNotModified()
            for header in ("ETag", "Cache-Control", "Vary"):
                not_modified[header] = response[header]
            return not_modified
        return response


# --- serializers (the response shapes; the views hand them dicts) --------------------------------

_STATUSES = "A tracking status: " + ", ".join(TrackingStatus.values) + "."


class PlaceSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    city = serializers.CharField()
    region = serializers.CharField()
    country = serializers.CharField()
    time_zone = serializers.CharField()


class CustomerAccountRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()


class ReferencesSerializer(serializers.Serializer):
    bol = serializers.CharField()
    pro = serializers.CharField()
    load = serializers.CharField()
    po = serializers.CharField()
    container = serializers.CharField()
    orders = serializers.ListField(child=serializers.CharField(), required=False, help_text="Order numbers (detail only).")


class ShipmentSummarySerializer(serializers.Serializer):
    reference = serializers.CharField(help_text="Our shipment number; use it in the shipment's URLs.")
    url = serializers.CharField()
    customer_account = CustomerAccountRefSerializer()
    status = serializers.CharField(help_text=_STATUSES)
    status_label = serializers.CharField()
    status_at = serializers.DateTimeField(allow_null=True)
    mode = serializers.CharField()
    carrier_scac = serializers.CharField()
    references = ReferencesSerializer()
    origin = PlaceSerializer(allow_null=True)
    destination = PlaceSerializer(allow_null=True)
    eta = serializers.DateTimeField(allow_null=True)
    original_eta = serializers.DateTimeField(allow_null=True)
    promised_at = serializers.DateTimeField(allow_null=True, help_text="The last delivery appointment, else the planned delivery.")
    promise = serializers.CharField(help_text="'delivery appointment', 'planned delivery' or empty without a promise.")
    late_by_minutes = serializers.IntegerField(
        allow_null=True, help_text="Delivery (or the current ETA) minus the promise: positive is late, negative early."
    )
    delivered_at = serializers.DateTimeField(allow_null=True)
    has_open_exception = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ShipmentListSerializer(serializers.Serializer):
    results = ShipmentSummarySerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="The next page's URL (same filters, the next cursor); null on the last page.")
    limit = serializers.IntegerField()


class LocalTimeSerializer(serializers.Serializer):
    utc = serializers.DateTimeField()
    local = serializers.CharField(help_text="ISO 8601 with the place's offset.")
    time_zone = serializers.CharField()


class StopSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    kind = serializers.CharField()
    location = PlaceSerializer(allow_null=True)
    appointment_start = LocalTimeSerializer(allow_null=True)
    appointment_end = LocalTimeSerializer(allow_null=True)
    arrived_at = LocalTimeSerializer(allow_null=True)
    departed_at = LocalTimeSerializer(allow_null=True)
    late_by_minutes = serializers.IntegerField(allow_null=True, help_text="Actual (arrival) minus planned (appointment).")


class EtaChangeSerializer(serializers.Serializer):
    made_at = serializers.DateTimeField()
    eta = serializers.DateTimeField()
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source: DRF pops declared fields


class TelemetrySerializer(serializers.Serializer):
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)
    position_at = serializers.DateTimeField(allow_null=True)
    temperature_c = serializers.FloatField(allow_null=True)
    temperature_at = serializers.DateTimeField(allow_null=True)
    last_seen_at = serializers.DateTimeField()


class ExceptionSerializer(serializers.Serializer):
    type = serializers.CharField()
    type_label = serializers.CharField()
    status = serializers.CharField()
    open = serializers.BooleanField()
    opened_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    message = serializers.CharField(help_text="What the customer is told; internal notes are never shown.")


class DocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    kind_label = serializers.CharField()
    file_name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    signed_by = serializers.CharField()
    signed_at = serializers.DateTimeField(allow_null=True)
    received_at = serializers.DateTimeField()
    download_url = serializers.CharField(help_text="Signed; works without credentials until download_expires_at.")
    download_expires_at = serializers.DateTimeField()


class InvoiceSerializer(serializers.Serializer):
    number = serializers.CharField()
    shipment = serializers.CharField(help_text="The shipment's reference.")
    total = serializers.CharField(help_text="A decimal amount as text.")
    currency = serializers.CharField()
    status = serializers.CharField(help_text="'issued'.")
    issued_at = serializers.DateTimeField()
    document = DocumentSerializer()


class ShipmentDetailSerializer(ShipmentSummarySerializer):
    stops = StopSerializer(many=True)
    eta_history = EtaChangeSerializer(many=True)
    telemetry = TelemetrySerializer(allow_null=True)
    exceptions = ExceptionSerializer(many=True)
    documents = DocumentSerializer(many=True)
    invoices = InvoiceSerializer(many=True)
    links = inline_serializer("ShipmentLinks", {"tracking_events": serializers.CharField(), "documents": serializers.CharField()})


class TrackingEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text=_STATUSES)
    status_label = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    occurred_at_local = serializers.CharField(help_text="ISO 8601 in the stop's (else the tenant's) time zone.")
    time_zone = serializers.CharField()
    stop_sequence = serializers.IntegerField(allow_null=True)
    place = serializers.CharField()
    eta = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source: DRF pops declared fields
    received_at = serializers.DateTimeField()


class TrackingEventListSerializer(serializers.Serializer):
    results = TrackingEventSerializer(many=True)


class DocumentListSerializer(serializers.Serializer):
    results = DocumentSerializer(many=True)


# --- shaping -------------------------------------------------------------------------------------


def _minutes(delta: timedelta | None) -> int | None:
    return None if delta is None else int(delta.total_seconds() // 60)


def _place(location: Any) -> dict[str, str] | None:
    if location is None:
        return None
    return {
        "code": location.code,
        "name": location.name,
        "city": location.city,
        "region": location.region,
        "country": location.country,
        "time_zone": location.time_zone,
    }


def _local(moment: reads.LocalTime | None) -> dict[str, Any] | None:
    if moment is None:
        return None
    return {"utc": moment.utc, "local": moment.local.isoformat(), "time_zone": moment.time_zone}


_STATUS_LABELS: dict[str, str] = dict(TrackingStatus.choices)


def _moment(value: datetime | None) -> str | None:
    """A date-time as the API's JSON encoder writes it (ISO 8601, UTC as "Z"), done once here
    rather than by the encoder twice (the ETag's body and the response's)."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _summary(row: reads.ShipmentRow) -> dict[str, Any]:
    """A list row (and the head of the shipment's page) as plain values: the list's time is
    spent per row, and DRF's field-by-field serialisation was no part of it anyway."""
    shipment = row.shipment
    account = shipment.customer_account
    status = shipment.status
    return {
        "reference": shipment.reference,
        "url": f"/api/v1/shipments/{shipment.reference}",
        "customer_account": {"id": account.pk, "code": account.code, "name": account.name},
        "status": status,
        "status_label": _STATUS_LABELS.get(status, status),
        "status_at": _moment(shipment.status_at),
        "mode": shipment.mode,
        "carrier_scac": shipment.carrier_scac,
        "references": {
            "bol": shipment.bol_number,
            "pro": shipment.pro_number,
            "load": shipment.load_number,
            "po": shipment.po_number,
            "container": shipment.container_number,
        },
        "origin": _place(shipment.origin),
        "destination": _place(shipment.destination),
        "eta": _moment(shipment.eta),
        "original_eta": _moment(shipment.original_eta),
        "promised_at": _moment(row.promised_at),
        "promise": row.promise,
        "late_by_minutes": _minutes(row.late_by),
        "delivered_at": _moment(shipment.delivered_at),
        "has_open_exception": row.has_open_exception,
        "created_at": _moment(shipment.created_at),
        "updated_at": _moment(shipment.updated_at),
    }


def _document(request: Request, document: Document, ttl: int = reads.DOCUMENT_LINK_TTL) -> dict[str, Any]:
    return {
        "id": document.pk,
        "kind": document.kind,
        "kind_label": document.get_kind_display(),
        "file_name": document.original_name,
        "content_type": document.content_type,
        "size": document.size,
        "sha256": document.sha256,
        "signed_by": document.signed_by,
        "signed_at": document.signed_at,
        "received_at": document.received_at,
        "download_url": request.build_absolute_uri(reads.document_link(document, request.user, ttl=ttl)),
        "download_expires_at": timezone.now() + timedelta(seconds=ttl),
    }


def _invoice(request: Request, invoice: reads.CustomerInvoice, shipment_reference: str) -> dict[str, Any]:
    return {
        "number": invoice.number,
        "shipment": shipment_reference,
        "total": invoice.total,
        "currency": invoice.currency,
        "status": invoice.status,
        "issued_at": invoice.issued_at,
        "document": _document(request, invoice.document),
    }


def _detail(request: Request, detail: reads.ShipmentDetail) -> dict[str, Any]:
    shipment = detail.shipment
    body = _summary(detail.row)
    body["references"]["orders"] = sorted(shipment.orders.values_list("number", flat=True))
    base = body["url"]
    body.update(
        stops=[
            {
                "sequence": view.stop.sequence,
                "kind": view.stop.kind,
                "location": _place(view.stop.location),
                "appointment_start": _local(view.appointment_start),
                "appointment_end": _local(view.appointment_end),
                "arrived_at": _local(view.arrived_at),
                "departed_at": _local(view.departed_at),
                "late_by_minutes": _minutes(view.late_by),
            }
            for view in detail.stops
        ],
        eta_history=[{"made_at": change.made_at, "eta": change.eta, "source": change.source} for change in detail.eta_history],
        telemetry=None
        if detail.telemetry is None
        else {
            "latitude": detail.telemetry.latitude,
            "longitude": detail.telemetry.longitude,
            "position_at": detail.telemetry.position_at,
            "temperature_c": detail.telemetry.temperature,
            "temperature_at": detail.telemetry.temperature_at,
            "last_seen_at": detail.telemetry.last_seen_at,
        },
        exceptions=[
            {
                "type": case.type,
                "type_label": case.type_label,
                "status": case.status,
                "open": case.open,
                "opened_at": case.opened_at,
                "closed_at": case.closed_at,
                "message": case.message,
            }
            for case in detail.exceptions
        ],
        documents=[_document(request, document) for document in detail.documents],
        invoices=[_invoice(request, invoice, shipment.reference) for invoice in detail.invoices],
        links={"tracking_events": f"{base}/tracking-events", "documents": f"{base}/documents"},
    )
    return body


def _event(event: TrackingEvent, tenant_zone: str) -> dict[str, Any]:
    stop = event.stop
    zone = stop.location.time_zone if stop is not None and stop.location is not None and stop.location.time_zone else tenant_zone
    local = reads._local(event.occurred_at, zone)
    assert local is not None
    return {
        "id": event.pk,
        "status": event.status,
        "status_label": event.get_status_display(),
        "occurred_at": event.occurred_at,
        "occurred_at_local": local.local.isoformat(),
        "time_zone": zone,
        "stop_sequence": stop.sequence if stop is not None else None,
        "place": event.location_text or (stop.location.name if stop is not None and stop.location is not None else ""),
        "eta": event.eta,
        "source": event.source,
        "received_at": event.received_at,
    }


def _scope(request: Request) -> QuerySet[Shipment]:
    return reads.shipment_scope(request.user)


def _shipment_detail(request: Request, reference: str) -> reads.ShipmentDetail:
    try:
        return reads.shipment_detail(_scope(request), reference)
    except reads.ShipmentNotFound as missing:
        raise exceptions.NotFound(str(missing)) from missing


# --- shipments -----------------------------------------------------------------------------------

_LIST_PARAMETERS = [
    OpenApiParameter(
        "q", OpenApiTypes.STR, description="Any one reference: ours, an order number, PO, BOL, PRO, container or load (exact)."
    ),
    OpenApiParameter("status", OpenApiTypes.STR, many=True, description="Tracking statuses; repeat or separate with commas."),
    OpenApiParameter("has_exception", OpenApiTypes.BOOL, description="Only shipments with (true) or without (false) an open exception."),
    *[
        OpenApiParameter(
            f"{name}_{end}",
            OpenApiTypes.STR,
            description=f"{name.capitalize()} {'from' if end == 'from' else 'up to'}: a date (YYYY-MM-DD, whole days in the tenant's "
            "time zone, inclusive) or an ISO 8601 date-time.",
        )
        for name in ("created", "delivered", "eta")
        for end in ("from", "to")
    ],
    OpenApiParameter("mode", OpenApiTypes.STR, description="ftl, ltl, parcel, intermodal, drayage, ocean, air or rail."),
    OpenApiParameter("origin", OpenApiTypes.STR, description="A location code or a city."),
    OpenApiParameter("destination", OpenApiTypes.STR, description="A location code or a city."),
    OpenApiParameter("customer", OpenApiTypes.STR, description="Staff: a customer account's id or code."),
    OpenApiParameter("sort", OpenApiTypes.STR, enum=list(reads.SORTS), description="Default -created_at; no ETA sorts as the latest."),
    OpenApiParameter(
        "limit", OpenApiTypes.INT, description=f"Rows per page, 1–{reads.PAGE_LIMIT_MAX} (default {reads.PAGE_LIMIT_DEFAULT})."
    ),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="From `next`: only valid with the same filters and sort."),
    _ETAG_PARAMETER,
]


class ShipmentList(ETagMixin, APIView):
    """The caller's shipments, newest first by default, in keyset pages."""

    permission_classes = [CanRead]
    etag_has_volatile = False  # summaries carry no document links

    @extend_schema(
        operation_id="experience_shipments_list",
        parameters=_LIST_PARAMETERS,
        responses={
            200: ShipmentListSerializer,
            400: OpenApiResponse(_PROBLEM, description="A filter or the cursor cannot be used; `errors` names the parameter."),
            **_COMMON,
        },
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        limit_text = params.get("limit", str(reads.PAGE_LIMIT_DEFAULT)).strip()
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= reads.PAGE_LIMIT_MAX:
            raise QueryInvalid("limit", f"'{limit_text[:20]}' is not a whole number from 1 to {reads.PAGE_LIMIT_MAX}")
        try:
            filters = reads.ShipmentFilters.from_params(params)
            page = reads.shipments_page(_scope(request), filters, after=params.get("cursor") or None, limit=int(limit_text))
        except reads.ShipmentFiltersInvalid as invalid:
            raise QueryInvalid(invalid.field, invalid.message) from invalid
        except reads.ShipmentCursorInvalid as invalid:
            raise CursorInvalid(str(invalid)) from invalid
        next_url = None
        if page.next_cursor:
            query = [(key, item) for key, values in params.lists() for item in values if key != "cursor"]
            next_url = request.build_absolute_uri(f"{request.path}?{urlencode([*query, ('cursor', page.next_cursor)])}")
        response = Response({"results": [_summary(row) for row in page.rows], "next": next_url, "limit": page.limit})
        if next_url:
            response["Link"] = f'<{next_url}>; rel="next"'
        return response


class ShipmentDetailView(ETagMixin, APIView):
    permission_classes = [CanRead]

    @extend_schema(
        operation_id="experience_shipment_retrieve",
        parameters=[_ETAG_PARAMETER],
        responses={200: ShipmentDetailSerializer, **_NOT_FOUND, **_COMMON},
    )
    def get(self, request: Request, reference: str) -> Response:
        return Response(_detail(request, _shipment_detail(request, reference)))


class ShipmentTrackingEvents(ETagMixin, APIView):
    """The events that moved the shipment, in the order they happened."""

    permission_classes = [CanRead]

    @extend_schema(
        operation_id="experience_shipment_tracking_events_list",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.INT, description="Only events with a greater id (poll for news)."),
            _ETAG_PARAMETER,
        ],
        responses={200: TrackingEventListSerializer, 400: OpenApiResponse(_PROBLEM), **_NOT_FOUND, **_COMMON},
    )
    def get(self, request: Request, reference: str) -> Response:
        since = request.query_params.get("since", "").strip()
        if since and not since.isdigit():
            raise QueryInvalid("since", f"'{since[:20]}' is not an event id")
        try:
            events = reads.shipment_events(_scope(request), reference, since_id=int(since) if since else None)
        except reads.ShipmentNotFound as missing:
            raise exceptions.NotFound(str(missing)) from missing
        from workflows.calendars import tenant_time_zone

        zone = tenant_time_zone()
        return Response({"results": [_event(event, zone) for event in events[:1000]]})


class ShipmentDocuments(ETagMixin, APIView):
    """Proofs of delivery, bills of lading and customer invoices, each with a download URL that
    works without credentials for ten minutes. The ETag covers the documents, not the URLs."""

    permission_classes = [CanRead]

    @extend_schema(
        operation_id="experience_shipment_documents_list",
        parameters=[_ETAG_PARAMETER],
        responses={200: DocumentListSerializer, **_NOT_FOUND, **_COMMON},
    )
    def get(self, request: Request, reference: str) -> Response:
        detail = _shipment_detail(request, reference)
        papers = [*detail.documents, *(invoice.document for invoice in detail.invoices)]
        return Response({"results": [_document(request, document) for document in papers]})


# --- invoices ------------------------------------------------------------------------------------


class _InvoicePages(CursorPagination):
    ordering = "-pk"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = reads.PAGE_LIMIT_MAX


class InvoiceList(ETagMixin, APIView):
    """The caller's customer invoices, newest first (cursor pages)."""

    permission_classes = [CanRead]

    @extend_schema(
        operation_id="experience_invoices_list",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"1–{reads.PAGE_LIMIT_MAX}, default 50."),
            _ETAG_PARAMETER,
        ],
        responses={
            200: inline_serializer(
                "ExperienceInvoicePage",
                {
                    "next": serializers.CharField(allow_null=True),
                    "previous": serializers.CharField(allow_null=True),
                    "results": InvoiceSerializer(many=True),
                },
            ),
            **_COMMON,
        },
    )
    def get(self, request: Request) -> Response:
        paginator = _InvoicePages()
        documents = paginator.paginate_queryset(reads.invoice_documents(_scope(request)), request, view=self) or []
        results = []
        for document in documents:
            invoice = reads.customer_invoices([document])
            if invoice and document.shipment is not None:
                results.append(_invoice(request, invoice[0], document.shipment.reference))
        return paginator.get_paginated_response(results)


# --- subscriptions -------------------------------------------------------------------------------


class SubscriptionCreateSerializer(MilestoneSubscriptionCreateSerializer):
    customer_account = serializers.IntegerField(required=False, help_text="Staff: the account's id. Customer keys: their own (implied).")


def _subscription_account(request: Request, wanted: int | None) -> CustomerAccount:
    own = reads.viewer_customer_account_id(request.user)
    if own is not None and wanted not in (None, own):
        raise SubscriptionInvalid([("/customer_account", "A customer key subscribes its own account only; leave customer_account out.")])
    account_id = own if own is not None else wanted
    if account_id is None:
        raise SubscriptionInvalid([("/customer_account", "Name the customer account to subscribe.")])
    account = CustomerAccount.objects.filter(pk=account_id).first()
    if account is None:
        raise SubscriptionInvalid([("/customer_account", f"There is no customer account {account_id} here.")])
    return account


class SubscriptionList(ETagMixin, APIView):
    """Milestone subscriptions (the same as `/milestone-subscriptions`), limited to the caller's
    account for customer keys and users; POST subscribes (the caller's account when bound)."""

    def get_permissions(self):
        return [CanWriteSubscriptions()] if self.request.method == "POST" else [CanReadSubscriptions()]

    @extend_schema(
        operation_id="experience_subscriptions_list",
        parameters=[
            OpenApiParameter("customer_account", OpenApiTypes.INT, description="Staff: one account's."),
            OpenApiParameter("channel", OpenApiTypes.STR, enum=list(NotificationChannel.values)),
            OpenApiParameter("state", OpenApiTypes.STR, enum=["enabled", "disabled"]),
            _ETAG_PARAMETER,
        ],
        responses={
            200: inline_serializer("ExperienceSubscriptionList", {"results": MilestoneSubscriptionSerializer(many=True)}),
            **_COMMON,
        },
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        own = reads.viewer_customer_account_id(request.user)
        wanted = params.get("customer_account", "")
        account = own if own is not None else (int(wanted) if wanted.isdigit() else None)
        rows = notifications.subscriptions_list(
            notifications.SubscriptionFilter(customer_account_id=account, channel=params.get("channel", ""), state=params.get("state", ""))
        )
        if own is not None:
            rows = rows.filter(customer_account_id=own)  # never widened, whatever the filter did
        return Response({"results": MilestoneSubscriptionSerializer(rows[:500], many=True).data})

    @extend_schema(
        operation_id="experience_subscriptions_create",
        request=SubscriptionCreateSerializer,
        responses={
            201: MilestoneSubscriptionSerializer,
            403: _COMMON[403],
            422: OpenApiResponse(_PROBLEM, description="Every problem, as `errors: [{pointer, reason}]`."),
            429: _COMMON[429],
        },
    )
    def post(self, request: Request) -> Response:
        serializer = SubscriptionCreateSerializer(data=request.data)
        if not serializer.is_valid():
            raise SubscriptionInvalid(serializer_error_pointers(serializer.errors))
        body = dict(serializer.validated_data)
        account = _subscription_account(request, body.get("customer_account"))
        return subscription_created(request, body, account, SubscriptionInvalid)


urlpatterns = [
    path("shipments", ShipmentList.as_view(), name="api-experience-shipments"),
    path("shipments/<str:reference>", ShipmentDetailView.as_view(), name="api-experience-shipment"),
    path("shipments/<str:reference>/tracking-events", ShipmentTrackingEvents.as_view(), name="api-experience-shipment-events"),
    path("shipments/<str:reference>/documents", ShipmentDocuments.as_view(), name="api-experience-shipment-documents"),
    path("invoices", InvoiceList.as_view(), name="api-experience-invoices"),
    path("subscriptions", SubscriptionList.as_view(), name="api-experience-subscriptions"),
]
