"""Telemetry reads: the latest state of a trailer or shipment, and what the listener connects to."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from connectors.models import Connection, TelemetryAsset, TelemetryAssetKind, TelemetrySubscription, Transport


def telemetry_connections() -> QuerySet[Connection]:
    """Enabled MQTT connections with at least one enabled subscription, those prefetched."""
    enabled = TelemetrySubscription.objects.filter(enabled=True).order_by("topic_filter")
    return (
        Connection.objects.filter(transport=Transport.MQTT, enabled=True, telemetry_subscriptions__enabled=True)
        .distinct()
        .order_by("pk")
        .prefetch_related(Prefetch("telemetry_subscriptions", queryset=enabled, to_attr="listened_subscriptions"))
    )


def telemetry_latest(*, trailer: str = "", shipment_ref: str = "") -> TelemetryAsset | None:
    """What was last heard of a trailer, or of a shipment (its own messages, or a trailer carrying
    it), across subscriptions; None when nothing was."""
    if trailer:
        condition = Q(kind=TelemetryAssetKind.TRAILER, key=trailer)
    elif shipment_ref:
        condition = Q(shipment_ref=shipment_ref) | Q(kind=TelemetryAssetKind.SHIPMENT, key=shipment_ref)
    else:
        return None
    return TelemetryAsset.objects.filter(condition).select_related("subscription__connection").order_by("-last_seen_at", "-pk").first()
