"""Telemetry writes: subscriptions and rules, messages applied to assets, excursions raised.

A message updates its asset's latest state only with what is newer than what is kept (a late,
buffered reading joins `recent` but does not move the trailer back). Rules are evaluated on the
newest temperature: out of range opens an excursion and raises one canonical event into the
inbox (`inbound_record`, channel "mqtt", the excursion's id as external id), in the same
transaction; readings that stay out change nothing; one back in range clears it, so the next
trip raises again. "No ping for N minutes" is checked by the listener while it is connected to
the broker (`telemetry_silences_check`): silence counts from the asset's last message or from
when the listener started listening, whichever is later, so a listener or broker outage never
looks like a silent trailer; any message from the asset clears it.

The events go the webhooks' way: dispatched after commit, swept if the broker is down, handed to
waiting runs and event triggers. Their body is already canonical, so the connection's
`inbound_mapper` must be "canonical" (the default) for them to pass normalization.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from paho.mqtt.client import topic_matches_sub
from prometheus_client import Counter

from connectors.inbox import inbound_record
from connectors.models import (
    Connection,
    TelemetryAsset,
    TelemetryAssetKind,
    TelemetryExcursion,
    TelemetryRule,
    TelemetryRuleKind,
    TelemetrySubscription,
    Transport,
)
from connectors.telemetry.readings import PayloadFormat, Reading, ReadingRejected, path_problem, reading_parse
from governance.services import audit_record

EXCURSIONS = Counter("baton_telemetry_excursions_total", "Telemetry rule excursions raised into the inbox, by kind", ["kind"])

RECENT_READINGS = 20  # readings kept per asset besides the latest values
TOPIC_FILTER_MAX_CHARS = 250
SILENCE_MAX_MINUTES = 7 * 24 * 60
EVENT_TYPES = {
    TelemetryRuleKind.TEMPERATURE_RANGE: "telemetry.temperature_excursion",
    TelemetryRuleKind.NO_PING: "telemetry.ping_lost",
}


class TelemetryInvalid(Exception):
    """A subscription or rule that cannot be saved as given; every problem by JSON pointer."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{pointer}: {reason}" for pointer, reason in problems))
        self.problems = problems


@dataclass(frozen=True)
class MessageOutcome:
    """What one subscription made of a message: applied, rejected (with the reason) or unmatched."""

    result: str
    subscription_id: int | None = None
    reason: str = ""
    raised: tuple[str, ...] = ()  # event ids put into the inbox


# --- subscriptions and rules ------------------------------------------------------------------------


def topic_filter_problem(topic_filter: str) -> str:
    """Why `topic_filter` is not an MQTT topic filter Baton subscribes to ("" when it is)."""
    if not topic_filter:
        return "is required"
    if len(topic_filter) > TOPIC_FILTER_MAX_CHARS:
        return f"is longer than {TOPIC_FILTER_MAX_CHARS} characters"
    if "\x00" in topic_filter:
        return "must not contain a NUL character"
    if topic_filter.startswith("$"):
        return "must not start with '$': those are the broker's own topics"
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "may use '#' only as the whole last level (fleet/#)"
        if "+" in level and level != "+":
            return "may use '+' only as a whole level (fleet/+/telemetry)"
    return ""


def payload_format_of(subscription: TelemetrySubscription) -> PayloadFormat:
    return PayloadFormat(
        device_path=subscription.device_path,
        device_topic_level=subscription.device_topic_level,
        shipment_path=subscription.shipment_path,
        latitude_path=subscription.latitude_path,
        longitude_path=subscription.longitude_path,
        temperature_path=subscription.temperature_path,
        timestamp_path=subscription.timestamp_path,
    )


def telemetry_subscription_create(
    *, connection: Connection, topic_filter: str, actor: Any, payload_format: PayloadFormat | None = None
) -> TelemetrySubscription:
    """Subscribe an MQTT connection to a topic filter; the listener picks it up on its next refresh."""
    fmt = payload_format or PayloadFormat()
    topic_filter = topic_filter.strip()
    problems = []
    if connection.transport != Transport.MQTT:
        problems.append(("/connection", f"'{connection.key}' is an {connection.get_transport_display()} connection, not MQTT"))
    if reason := topic_filter_problem(topic_filter):
        problems.append(("/topic_filter", reason))
    elif connection.pk and TelemetrySubscription.objects.filter(connection=connection, topic_filter=topic_filter).exists():
        problems.append(("/topic_filter", f"'{connection.key}' already subscribes to {topic_filter}"))
    for name in ("device_path", "shipment_path", "latitude_path", "longitude_path", "temperature_path", "timestamp_path"):
        if reason := path_problem(getattr(fmt, name)):
            problems.append((f"/{name}", reason))
    if not fmt.device_path and fmt.device_topic_level is None and not fmt.shipment_path:
        problems.append(("/device_path", "a message must be able to name its trailer or shipment: set a device or shipment path"))
    if problems:
        raise TelemetryInvalid(problems)
    with transaction.atomic():
        subscription = TelemetrySubscription.objects.create(
            connection=connection,
            topic_filter=topic_filter,
            device_path=fmt.device_path,
            device_topic_level=fmt.device_topic_level,
            shipment_path=fmt.shipment_path,
            latitude_path=fmt.latitude_path,
            longitude_path=fmt.longitude_path,
            temperature_path=fmt.temperature_path,
            timestamp_path=fmt.timestamp_path,
        )
        audit_record(
            actor=actor,
            action="telemetry_subscription.created",
            target=subscription,
            data={"connection": connection.key, "topic_filter": topic_filter, "format": asdict(fmt)},
        )
    return subscription


def telemetry_rule_set(
    *,
    subscription: TelemetrySubscription,
    kind: str,
    actor: Any,
    asset_key: str = "",
    temperature_min: float | None = None,
    temperature_max: float | None = None,
    silence_minutes: int | None = None,
    enabled: bool = True,
) -> TelemetryRule:
    """Create or replace the subscription's rule of `kind` (for one asset with `asset_key`). An
    open excursion stays open until a reading clears it under the new thresholds."""
    asset_key = asset_key.strip()
    problems = []
    if kind == TelemetryRuleKind.TEMPERATURE_RANGE:
        if temperature_min is None and temperature_max is None:
            problems.append(("/temperature_min", "a temperature rule needs a minimum, a maximum or both"))
        elif temperature_min is not None and temperature_max is not None and temperature_min >= temperature_max:
            problems.append(("/temperature_max", f"must be above the minimum ({temperature_min:g} °C)"))
        silence_minutes = None
    elif kind == TelemetryRuleKind.NO_PING:
        if silence_minutes is None or not 1 <= silence_minutes <= SILENCE_MAX_MINUTES:
            problems.append(("/silence_minutes", f"must be a number of minutes from 1 to {SILENCE_MAX_MINUTES}"))
        temperature_min = temperature_max = None
    else:
        problems.append(("/kind", f"must be one of {', '.join(TelemetryRuleKind.values)}"))
    if len(asset_key) > 120:
        problems.append(("/asset_key", "is longer than 120 characters"))
    if problems:
        raise TelemetryInvalid(problems)
    with transaction.atomic():
        rule, created = TelemetryRule.objects.update_or_create(
            subscription=subscription,
            kind=kind,
            asset_key=asset_key,
            defaults={
                "temperature_min": temperature_min,
                "temperature_max": temperature_max,
                "silence_minutes": silence_minutes,
                "enabled": enabled,
            },
        )
        audit_record(
            actor=actor,
            action="telemetry_rule.created" if created else "telemetry_rule.changed",
            target=rule,
            data={
                "topic_filter": subscription.topic_filter,
                "asset_key": asset_key,
                "temperature_min": temperature_min,
                "temperature_max": temperature_max,
                "silence_minutes": silence_minutes,
                "enabled": enabled,
            },
        )
    return rule


# --- messages -----------------------------------------------------------------------------------------


def telemetry_message_apply(*, connection_id: int, topic: str, payload: bytes, received_at: datetime) -> list[MessageOutcome]:
    """Apply one MQTT message to every enabled subscription of the connection whose filter
    matches its topic, each in its own transaction; a message that one subscription cannot read
    is counted there with the reason."""
    subscriptions = [
        subscription
        for subscription in TelemetrySubscription.objects.filter(connection_id=connection_id, enabled=True).select_related("connection")
        if topic_matches_sub(subscription.topic_filter, topic)
    ]
    if not subscriptions:
        return [MessageOutcome("unmatched")]
    outcomes = []
    for subscription in subscriptions:
        try:
            reading = reading_parse(payload=payload, topic=topic, payload_format=payload_format_of(subscription), received_at=received_at)
        except ReadingRejected as rejected:
            TelemetrySubscription.objects.filter(pk=subscription.pk).update(
                messages_total=F("messages_total") + 1,
                messages_rejected=F("messages_rejected") + 1,
                last_rejection=f"{topic}: {rejected.reason}"[:1000],
                last_rejection_at=received_at,
            )
            outcomes.append(MessageOutcome("rejected", subscription.pk, rejected.reason))
            continue
        with transaction.atomic():
            raised = _reading_apply(subscription, topic, reading, received_at)
            TelemetrySubscription.objects.filter(pk=subscription.pk).update(
                messages_total=F("messages_total") + 1, last_message_at=received_at
            )
        outcomes.append(MessageOutcome("applied", subscription.pk, raised=tuple(raised)))
    return outcomes


def _newer(at: datetime, than: datetime | None) -> bool:
    return than is None or at >= than


def _reading_apply(subscription: TelemetrySubscription, topic: str, reading: Reading, received_at: datetime) -> list[str]:
    """The reading into its asset's latest state, then the rules; returns the event ids raised."""
    kind, key = (TelemetryAssetKind.TRAILER, reading.device) if reading.device else (TelemetryAssetKind.SHIPMENT, reading.shipment_ref)
    asset, _ = TelemetryAsset.objects.select_for_update().get_or_create(
        subscription=subscription, kind=kind, key=key, defaults={"last_seen_at": received_at}
    )
    at = reading.measured_at
    newest = max((moment for moment in (asset.position_at, asset.temperature_at) if moment is not None), default=None)
    if reading.shipment_ref and _newer(at, newest):
        asset.shipment_ref = reading.shipment_ref
    if reading.has_position and _newer(at, asset.position_at):
        asset.latitude, asset.longitude, asset.position_at = reading.latitude, reading.longitude, at
    temperature_is_newest = reading.temperature is not None and _newer(at, asset.temperature_at)
    if temperature_is_newest:
        asset.temperature, asset.temperature_at = reading.temperature, at
    if reading.has_position or reading.temperature is not None:
        entry: dict[str, Any] = {"at": at.isoformat()}
        if reading.has_position:
            entry.update(lat=reading.latitude, lon=reading.longitude)
        if reading.temperature is not None:
            entry["temperature"] = reading.temperature
        asset.recent = sorted([*asset.recent, entry], key=lambda item: item["at"])[-RECENT_READINGS:]
    asset.last_seen_at = max(asset.last_seen_at, received_at)
    asset.last_topic = topic
    asset.save()

    raised = []
    TelemetryExcursion.objects.filter(asset=asset, kind=TelemetryRuleKind.NO_PING, cleared_at__isnull=True).update(cleared_at=received_at)
    if temperature_is_newest:
        raised += _temperature_evaluate(subscription, asset, topic)
    return raised


def _rule_for(subscription: TelemetrySubscription, kind: str, asset: TelemetryAsset) -> TelemetryRule | None:
    """The asset's own rule of `kind` if it has one (enabled or not), else the subscription-wide one."""
    rules = {
        rule.asset_key: rule for rule in TelemetryRule.objects.filter(subscription=subscription, kind=kind, asset_key__in=[asset.key, ""])
    }
    rule = rules.get(asset.key) or rules.get("")
    return rule if rule is not None and rule.enabled else None


def _temperature_evaluate(subscription: TelemetrySubscription, asset: TelemetryAsset, topic: str) -> list[str]:
    rule = _rule_for(subscription, TelemetryRuleKind.TEMPERATURE_RANGE, asset)
    temperature = asset.temperature
    assert temperature is not None and asset.temperature_at is not None
    direction = ""
    if rule is not None and rule.temperature_min is not None and temperature < rule.temperature_min:
        direction = "below"
    elif rule is not None and rule.temperature_max is not None and temperature > rule.temperature_max:
        direction = "above"
    open_excursion = TelemetryExcursion.objects.filter(asset=asset, kind=TelemetryRuleKind.TEMPERATURE_RANGE, cleared_at__isnull=True)
    if not direction:
        open_excursion.update(cleared_at=asset.temperature_at)
        return []
    if open_excursion.exists():
        return []
    assert rule is not None
    detail = {
        "temperature": temperature,
        "temperature_min": rule.temperature_min,
        "temperature_max": rule.temperature_max,
        "direction": direction,
        "measured_at": asset.temperature_at.isoformat(),
        "topic": topic,
    }
    return [_excursion_raise(subscription=subscription, asset=asset, rule=rule, started_at=asset.temperature_at, detail=detail)]


def _asset_payload(subscription: TelemetrySubscription, asset: TelemetryAsset) -> dict[str, Any]:
    position = None
    if asset.latitude is not None and asset.longitude is not None and asset.position_at is not None:
        position = {"lat": asset.latitude, "lon": asset.longitude, "at": asset.position_at.isoformat()}
    return {
        "asset": {"kind": asset.kind, "key": asset.key},
        "trailer": asset.key if asset.kind == TelemetryAssetKind.TRAILER else "",
        "shipment": asset.shipment_ref or (asset.key if asset.kind == TelemetryAssetKind.SHIPMENT else ""),
        "position": position,
        "last_seen_at": asset.last_seen_at.isoformat(),
        "connection": subscription.connection.key,
        "subscription": subscription.topic_filter,
    }


def _excursion_raise(
    *, subscription: TelemetrySubscription, asset: TelemetryAsset, rule: TelemetryRule, started_at: datetime, detail: dict[str, Any]
) -> str:
    """Open the excursion and put its canonical event into the inbox, in the caller's transaction."""
    excursion = TelemetryExcursion.objects.create(asset=asset, rule=rule, kind=rule.kind, started_at=started_at, detail=detail)
    event_id = f"telemetry-excursion-{excursion.pk}"
    shipment = asset.shipment_ref or (asset.key if asset.kind == TelemetryAssetKind.SHIPMENT else "")
    body = {
        "event_type": EVENT_TYPES[TelemetryRuleKind(rule.kind)],
        "event_id": event_id,
        "correlation": {"shipment": shipment} if shipment else {},
        "payload": {**_asset_payload(subscription, asset), **detail, "started_at": started_at.isoformat()},
    }
    received = inbound_record(
        connection=subscription.connection,
        channel="mqtt",
        external_id=event_id,
        body=json.dumps(body, sort_keys=True),
        content_type="application/json",
        headers={},
    )
    excursion.inbound_event_id = received.event.pk
    excursion.save(update_fields=["inbound_event"])
    transaction.on_commit(EXCURSIONS.labels(rule.kind).inc)
    return event_id


def telemetry_silences_check(*, connection_id: int, listening_since: datetime, now: datetime) -> list[str]:
    """Raise "ping lost" for each asset of the connection silent longer than its no-ping rule
    allows, counting silence from `listening_since` at the earliest; returns the event ids."""
    raised = []
    has_open = TelemetryExcursion.objects.filter(asset=OuterRef("pk"), kind=TelemetryRuleKind.NO_PING, cleared_at__isnull=True)
    for subscription in TelemetrySubscription.objects.filter(connection_id=connection_id, enabled=True).select_related("connection"):
        rules = list(TelemetryRule.objects.filter(subscription=subscription, kind=TelemetryRuleKind.NO_PING))
        shortest = min((rule.silence_minutes for rule in rules if rule.enabled and rule.silence_minutes), default=None)
        if shortest is None or now - listening_since < timedelta(minutes=shortest):
            continue
        silent = subscription.assets.filter(last_seen_at__lte=now - timedelta(minutes=shortest)).exclude(Exists(has_open))
        for asset_id in silent.values_list("pk", flat=True):
            with transaction.atomic():
                asset = TelemetryAsset.objects.select_for_update().filter(pk=asset_id).exclude(Exists(has_open)).first()
                if asset is None:
                    continue
                rule = _rule_for(subscription, TelemetryRuleKind.NO_PING, asset)
                silent_since = max(asset.last_seen_at, listening_since)
                if rule is None or rule.silence_minutes is None or now - silent_since < timedelta(minutes=rule.silence_minutes):
                    continue
                detail = {
                    "silence_minutes": rule.silence_minutes,
                    "silent_since": silent_since.isoformat(),
                    "temperature": asset.temperature,
                }
                raised.append(_excursion_raise(subscription=subscription, asset=asset, rule=rule, started_at=now, detail=detail))
    return raised
