"""Reads of a tenant's connections and of their inbox, for the pages and the API alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Generic, TypeVar

import redis
from django.db.models import Count, Exists, Model, OuterRef, Q, QuerySet, Subquery

from connectors.auth import AUTH_SECRETS
from connectors.models import (
    CircuitState,
    Connection,
    DeliveryStatus,
    EdiPartner,
    EventDispatch,
    InboundEvent,
    InboundStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from connectors.services import ConnectionInput
from governance.models import AuditEvent
from tenants.db import connection as db
from workflows.models import CORRELATION_KEYS


def connections_list(*, query: str = "", kind: str = "", status: str = "") -> QuerySet[Connection]:
    """Connections by name; `query` matches the name, key or address, `status` is enabled or disabled."""
    connections = Connection.objects.all()
    if query := query.strip():
        connections = connections.filter(Q(name__icontains=query) | Q(key__icontains=query) | Q(base_url__icontains=query))
    if kind:
        connections = connections.filter(kind=kind)
    if status in ("enabled", "disabled"):
        connections = connections.filter(enabled=status == "enabled")
    return connections.order_by("name", "key")


def connections_exist() -> bool:
    return Connection.objects.exists()


def connection_by_key(*, key: str) -> Connection | None:
    return Connection.objects.filter(key=key).first()


@dataclass(frozen=True)
class ConnectionHealth:
    """What outbound calls have recorded: "no calls yet" until there are some."""

    calls: int
    failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    circuit_state: str
    circuit_opened_at: datetime | None

    @property
    def has_calls(self) -> bool:
        return self.calls > 0

    @property
    def error_rate(self) -> float | None:
        """Failed calls out of all calls, 0–1 (None before the first call)."""
        return self.failures / self.calls if self.calls else None

    @property
    def error_percent(self) -> str:
        rate = self.error_rate
        return "" if rate is None else f"{rate * 100:.1f}%".replace(".0%", "%")

    @property
    def circuit_open(self) -> bool:
        return self.circuit_state != CircuitState.CLOSED


def connection_health(connection: Connection) -> ConnectionHealth:
    """What connector steps' calls recorded for this connection (`connectors.guards`, in Redis,
    shared by every worker)."""
    from connectors.guards import CircuitPolicy, circuit_state
    from connectors.guards import connection_health as calls_health

    def moment(seconds: float | None) -> datetime | None:
        return datetime.fromtimestamp(seconds, tz=UTC) if seconds is not None else None

    schema = db.schema_name
    try:
        health, circuit = calls_health(schema, connection.key), circuit_state(schema, connection.key, CircuitPolicy())
    except redis.RedisError:  # the page still works; the health says nothing until Redis is back
        return ConnectionHealth(0, 0, None, None, CircuitState.CLOSED, None)
    return ConnectionHealth(
        calls=health.calls,
        failures=health.failures,
        last_success_at=moment(health.last_success_at),
        last_failure_at=moment(health.last_failure_at),
        circuit_state=circuit.state,
        circuit_opened_at=moment(circuit.opened_at),
    )


def connection_input(connection: Connection) -> ConnectionInput:
    """The connection as a service input, with no secrets: saved unchanged, it keeps them all."""
    return ConnectionInput(
        key=connection.key,
        name=connection.name,
        kind=connection.kind,
        base_url=connection.base_url,
        transport=connection.transport,
        auth_method=connection.auth_method,
        health_path=connection.health_path,
        health_method=connection.health_method,
        connect_timeout=connection.connect_timeout,
        read_timeout=connection.read_timeout,
        settings=dict(connection.settings),
        auth_settings=dict(connection.auth_settings),
    )


def connection_secret_masks(connection: Connection) -> dict[str, str]:
    """Each secret field of the connection's auth method: its mask, or "" when none is stored."""
    return {name: connection.credential_masks.get(name, "") for name in AUTH_SECRETS.get(connection.auth_method, ())}


# --- the inbox ------------------------------------------------------------------------------------

INBOUND_CHANNELS = ("webhook", "api", "upload", "sftp", "mqtt")
REPLAYED = "inbound_event.replayed"


@dataclass(frozen=True)
class InboxFilters:
    """What the inbound event log is narrowed to; every part is optional."""

    connection: str = ""  # a connection key
    status: str = ""
    channel: str = ""
    received_from: date | None = None
    received_to: date | None = None
    query: str = ""  # an external id, or a correlation value or event id found in what normalization produced

    @property
    def active(self) -> bool:
        return bool(self.connection or self.status or self.channel or self.received_from or self.received_to or self.query)


def _search(query: str) -> Q:
    """The external id; a correlation value (a PRO, an order number…) or canonical event id among
    what normalization produced; and, for events not handed on (no canonical yet), the body's text."""
    found = Q(external_id=query)
    for key in CORRELATION_KEYS:
        found |= Q(canonical__contains=[{"correlation": {key: query}}])
    found |= Q(canonical__contains=[{"event_id": query}])
    found |= Q(status__in=(InboundStatus.QUARANTINED, InboundStatus.RECEIVED), body__contains=query)
    if query.isdigit():
        found |= Q(pk=int(query))
    return found


def inbound_events_list(filters: InboxFilters, *, with_status: bool = True) -> QuerySet[InboundEvent]:
    """Inbound events narrowed by `filters`, newest first (`with_status=False` leaves the status
    filter out, for counting by status)."""
    events = InboundEvent.objects.select_related("connection")
    if filters.connection:
        events = events.filter(connection__key=filters.connection)
    if filters.status and with_status:
        events = events.filter(status=filters.status)
    if filters.channel:
        events = events.filter(channel=filters.channel)
    if filters.received_from:
        events = events.filter(received_at__date__gte=filters.received_from)
    if filters.received_to:
        events = events.filter(received_at__date__lte=filters.received_to)
    if query := filters.query.strip():
        events = events.filter(_search(query))
    return events.order_by("-pk")


def inbound_status_counts(filters: InboxFilters) -> dict[str, int]:
    """How many events match the other filters, by status (every status present, 0 when none)."""
    counted = inbound_events_list(filters, with_status=False).order_by().values("status").annotate(count=Count("pk"))
    counts = {status: 0 for status in InboundStatus.values}
    counts.update({row["status"]: row["count"] for row in counted})
    return counts


def inbound_event_get(*, event_id: int) -> InboundEvent | None:
    return InboundEvent.objects.select_related("connection").filter(pk=event_id).first()


def inbound_event_is_json(event: InboundEvent) -> bool:
    """Whether a fixed body must be JSON: the event came as JSON, or its body is JSON."""
    if "json" in event.content_type:
        return True
    try:
        json.loads(event.body)
    except ValueError:
        return False
    return True


def inbound_fix_of(event: InboundEvent, body: str | None) -> str | None:
    """The fixed body to replay with, or None when it is none or means the same JSON as the
    stored body (a pretty-printed copy is no fix: the bytes that arrived are kept)."""
    if body is None or not inbound_event_is_json(event):
        return body
    try:
        return None if json.loads(body) == json.loads(event.body) else body
    except ValueError:
        return body


def inbound_event_dispatch(event: InboundEvent) -> EventDispatch | None:
    """The pending dispatch row of an event (None once it has been handed on or quarantined)."""
    return EventDispatch.objects.filter(event=event).first()


def inbound_event_replays(event: InboundEvent) -> QuerySet[AuditEvent]:
    """The audit rows of the event's replays, oldest first."""
    return AuditEvent.objects.filter(action=REPLAYED, target_type="connectors.inboundevent", target_id=str(event.pk)).order_by("pk")


@dataclass(frozen=True)
class QuarantineGroup:
    connection_key: str
    connection_name: str
    reason: str
    pointer: str
    count: int


def quarantine_groups(*, limit: int = 20) -> list[QuarantineGroup]:
    """Quarantined events counted by connection and reason, the largest groups first."""
    rows = (
        InboundEvent.objects.filter(status=InboundStatus.QUARANTINED)
        .order_by()
        .values("connection__key", "connection__name", "error", "error_pointer")
        .annotate(count=Count("pk"))
        .order_by("-count", "connection__key", "error")[:limit]
    )
    return [
        QuarantineGroup(row["connection__key"], row["connection__name"], row["error"], row["error_pointer"], row["count"]) for row in rows
    ]


def inbound_events_recent(*, connection: Connection, limit: int = 5) -> list[InboundEvent]:
    return list(InboundEvent.objects.filter(connection=connection).order_by("-pk")[:limit])


def connections_taking_events() -> QuerySet[Connection]:
    """Connections that take webhooks or have received events: the log's connection filter."""
    received = Exists(InboundEvent.objects.filter(connection=OuterRef("pk")))
    return Connection.objects.filter(Q(inbound_scheme__gt="") | Q(received)).order_by("name", "key")


# --- customer webhooks: endpoints and their deliveries ---------------------------------------------

Row = TypeVar("Row", bound=Model)


@dataclass(frozen=True)
class KeysetPage(Generic[Row]):
    """One page of a list newest first, keyset on the id: `newer` and `older` are the neighbouring
    pages' cursors, None at either end."""

    rows: list[Row]
    newer: int | None
    older: int | None


def keyset_page(rows: QuerySet[Row], *, before: int | None = None, after: int | None = None, size: int = 25) -> KeysetPage[Row]:
    """The page of `rows` (newest first) just older than `before`, or just newer than `after`, or
    the newest; deep pages cost what the first does."""
    if after is not None:
        ahead = list(rows.filter(pk__gt=after).order_by("pk")[: size + 1])
        page = list(reversed(ahead[:size]))
        edge = page[-1].pk if page else after + 1
        return KeysetPage(page, page[0].pk if len(ahead) > size else None, edge if rows.filter(pk__lt=edge).exists() else None)
    behind = list((rows.filter(pk__lt=before) if before is not None else rows)[: size + 1])
    page = behind[:size]
    older = page[-1].pk if len(behind) > size else None
    if before is None:
        return KeysetPage(page, None, older)
    edge = page[0].pk if page else before - 1
    return KeysetPage(page, edge if rows.filter(pk__gt=edge).exists() else None, older)


def _last_attempted(field: str) -> Subquery:
    attempted = WebhookDelivery.objects.filter(endpoint=OuterRef("pk"), attempts__gt=0).order_by("-pk")
    return Subquery(attempted.values(field)[:1])


def webhook_endpoints_list(*, query: str = "", customer_account: str = "", status: str = "") -> QuerySet[WebhookEndpoint]:
    """Endpoints with their customer, counts of pending and failed deliveries and the newest
    attempted delivery's result. `customer_account` is an account id or "workspace" (the tenant's
    own); `status` is enabled, disabled or failing; `query` matches the URL or description."""
    endpoints = WebhookEndpoint.objects.select_related("customer_account").annotate(
        pending_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.PENDING)),
        failed_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
        last_status=_last_attempted("status"),
        last_status_code=_last_attempted("last_status_code"),
        last_error=_last_attempted("last_error"),
    )
    if query := query.strip():
        endpoints = endpoints.filter(Q(url__icontains=query) | Q(description__icontains=query))
    if customer_account == "workspace":
        endpoints = endpoints.filter(customer_account__isnull=True)
    elif customer_account.isdigit():
        endpoints = endpoints.filter(customer_account_id=int(customer_account))
    if status == "enabled":
        endpoints = endpoints.filter(enabled=True)
    elif status == "disabled":
        endpoints = endpoints.filter(enabled=False)
    elif status == "failing":
        endpoints = endpoints.filter(enabled=True, failing_since__isnull=False)
    return endpoints.order_by("-pk")


def webhook_endpoints_exist() -> bool:
    return WebhookEndpoint.objects.exists()


def webhook_endpoint_get(*, endpoint_id: int) -> WebhookEndpoint | None:
    """One endpoint of this workspace, with the list's counts and last result."""
    return webhook_endpoints_list().filter(pk=endpoint_id).first()


def webhook_deliveries_list(*, endpoint: WebhookEndpoint, status: str = "", event_type: str = "") -> QuerySet[WebhookDelivery]:
    """The endpoint's deliveries newest first, narrowed by status and exact event type."""
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    if status:
        deliveries = deliveries.filter(status=status)
    if event_type:
        deliveries = deliveries.filter(event_type=event_type)
    return deliveries.order_by("-pk")


def webhook_delivery_counts(endpoint: WebhookEndpoint, *, event_type: str = "") -> dict[str, int]:
    """The endpoint's deliveries by status (every status present, 0 when none)."""
    counted = webhook_deliveries_list(endpoint=endpoint, event_type=event_type).order_by().values("status").annotate(count=Count("pk"))
    counts = {status: 0 for status in DeliveryStatus.values}
    counts.update({row["status"]: row["count"] for row in counted})
    return counts


def webhook_delivery_event_types(endpoint: WebhookEndpoint) -> list[str]:
    """The event types the endpoint has deliveries of: the log's filter."""
    return list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("event_type").values_list("event_type", flat=True).distinct())


def webhook_delivery_get(*, delivery_id: int) -> WebhookDelivery | None:
    return WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()


def edi_partner_of(connection: Connection) -> EdiPartner | None:
    """The connection's EDI partner settings, if it has them."""
    return EdiPartner.objects.filter(connection=connection).first()
