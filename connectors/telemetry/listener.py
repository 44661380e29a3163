"""`manage.py mqtt_listen`: one process per installation listening to every tenant's MQTT connections.

Each enabled MQTT connection with an enabled subscription gets a paho client (its own network
thread) bound to its tenant's schema: a message from it is only ever applied in that schema, so
two tenants using the same topic names never meet. The clients only queue what they receive; one
thread – the caller's – does every database write, so the process holds one database connection.

Delivery is at least once end to end: subscriptions are QoS 1 in a persistent session (a stable
client id, clean session off), and a message is acknowledged to the broker only after it was
applied (or found unreadable: counted on its subscription, logged with the reason, skipped). With
the database away the message waits and is retried with backoff; on SIGTERM the unacknowledged
ones stay with the broker, which delivers them again on the next connect. Clients reconnect with
backoff (1 s doubling to 60 s); an unreachable broker is logged once, then retried quietly.

Every `refresh_seconds` the listener reads the tenants' connections again: new ones are joined,
removed or disabled ones are unsubscribed and left, changed topics are subscribed or unsubscribed
in place, and changed broker settings or credentials reconnect. Every `silence_check_seconds` it
raises "ping lost" for silent assets of the connections it is connected to (only it knows whether
silence is the trailer's or its own). Brokers are reached through the same guard as every other
outbound call: private, loopback and link-local addresses only when `BATON_OUTBOUND_ALLOW` says so.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import structlog
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone
from django_tenants.utils import schema_context
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import Counter

from config.encryption import SecretUnreadable
from connectors.auth import connection_secrets, failure_text
from connectors.models import AuthMethod, Connection
from connectors.safety import HostUnresolved, OutboundRefused, host_check
from connectors.telemetry.selectors import telemetry_connections
from connectors.telemetry.services import telemetry_message_apply, telemetry_silences_check
from tenants.db import connection as db
from tenants.selectors import ready_schemas

log = structlog.get_logger("baton.connectors.telemetry")

MESSAGES = Counter("baton_telemetry_messages_total", "MQTT telemetry messages, by result", ["result"])

QOS = 1
KEEPALIVE_SECONDS = 60
RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS = 1, 60
DATABASE_RETRY_MAX_SECONDS = 30
SUMMARY_SECONDS = 300
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class BrokerEndpoint:
    """How to reach one tenant connection's broker, and what to subscribe there."""

    schema: str
    connection_id: int
    connection_key: str
    host: str
    port: int
    tls: bool
    client_id: str
    connect_timeout: float
    username: str = ""
    password: str = field(default="", repr=False)
    topics: frozenset[str] = frozenset()

    @property
    def link_key(self) -> tuple[str, int]:
        return (self.schema, self.connection_id)

    def same_session(self, other: BrokerEndpoint) -> bool:
        """Everything but the topics is the same: the client can stay connected."""
        return replace(self, topics=other.topics) == other


def endpoint_of(*, schema: str, connection: Connection, client_prefix: str) -> BrokerEndpoint:
    """The connection as a broker endpoint; ValueError saying why it cannot be one."""
    parts = urlsplit(connection.base_url.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"its base URL {connection.base_url!r} is not an mqtt:// or mqtts:// address with a host")
    username = password = ""
    if connection.auth_method == AuthMethod.BASIC:
        try:
            secrets = connection_secrets(connection)
        except SecretUnreadable as error:
            raise ValueError("its credentials cannot be decrypted with the keys in BATON_ENCRYPTION_KEYS") from error
        username, password = str(connection.auth_settings.get("username", "")), secrets.get("password", "")
    subscriptions = getattr(connection, "listened_subscriptions", [])
    return BrokerEndpoint(
        schema=schema,
        connection_id=connection.pk,
        connection_key=connection.key,
        host=parts.hostname,
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        # Never a tenant's choice: a client id is a persistent session, and whoever names it on a
        # shared broker takes its queued messages.
        client_id=f"{client_prefix}-{schema}-{connection.pk}",
        connect_timeout=connection.connect_timeout,
        username=username,
        password=password,
        topics=frozenset(subscription.topic_filter for subscription in subscriptions),
    )


@dataclass(frozen=True)
class Delivery:
    link: BrokerLink
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime


class _GuardedClient(mqtt.Client):
    """A paho client whose sockets go only to addresses the outbound guard allows, and which
    tells its link why a connection attempt failed (paho's own callback does not say)."""

    link: BrokerLink

    def _create_socket_connection(self) -> socket.socket:
        try:
            addresses = host_check(self._host, self._port)
        except (OutboundRefused, HostUnresolved) as error:
            raise ConnectionRefusedError(str(error)) from error
        failure: OSError | None = None
        for address in addresses:
            try:
                return socket.create_connection((address, self._port), timeout=self._connect_timeout)
            except OSError as error:
                failure = error
        assert failure is not None
        raise failure

    def _create_socket(self) -> Any:
        try:
            return super()._create_socket()
        except OSError as error:
            reason = str(error) if isinstance(error.__cause__, OutboundRefused | HostUnresolved) else ""
            self.link.failed(reason or failure_text(error, connect_timeout=self._connect_timeout, read_timeout=self._connect_timeout))
            raise


class BrokerLink:
    """One tenant connection's MQTT client: connects, subscribes at QoS 1, queues what arrives."""

    def __init__(self, endpoint: BrokerEndpoint, deliveries: queue.Queue[Delivery], clock: Clock):
        self.endpoint = endpoint
        self.listening_since: datetime | None = None
        self.subscribed: frozenset[str] = frozenset()  # topics the broker granted since the last connect
        self._pending: dict[int, list[str]] = {}  # subscribe packet id -> its topics, until the broker answers
        self._lock = threading.Lock()
        self._deliveries = deliveries
        self._clock = clock
        self._closing = False
        self._reported = ""  # the failure last logged, so a broker that stays away is logged once
        client = _GuardedClient(
            CallbackAPIVersion.VERSION2,
            client_id=endpoint.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        client.link = self
        client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        client.connect_timeout = endpoint.connect_timeout
        if endpoint.username:
            client.username_pw_set(endpoint.username, endpoint.password or None)
        if endpoint.tls:
            client.tls_set_context(ssl.create_default_context())
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client

    @property
    def label(self) -> dict[str, Any]:
        return {
            "schema": self.endpoint.schema,
            "connection": self.endpoint.connection_key,
            "broker": f"{self.endpoint.host}:{self.endpoint.port}",
        }

    def start(self) -> None:
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=KEEPALIVE_SECONDS)
        self._client.loop_start()

    def topics_set(self, endpoint: BrokerEndpoint) -> None:
        """Subscribe added topics and unsubscribe removed ones without reconnecting."""
        added, removed = endpoint.topics - self.endpoint.topics, self.endpoint.topics - endpoint.topics
        self.endpoint = endpoint
        if self.listening_since is not None:
            self._subscribe(added)
            if removed:
                self._client.unsubscribe(sorted(removed))
                self.subscribed -= removed
        log.info("mqtt subscriptions changed", **self.label, added=sorted(added), removed=sorted(removed))

    def close(self, *, forget: bool) -> None:
        """Disconnect. With `forget` the topics are unsubscribed first, so the broker stops keeping
        messages for a connection Baton no longer listens to; without, they wait for the next start."""
        self._closing = True
        if forget and self.listening_since is not None and self.endpoint.topics:
            self._client.unsubscribe(sorted(self.endpoint.topics))
        self._client.disconnect()
        self._client.loop_stop()
        self.listening_since, self.subscribed = None, frozenset()

    def ack(self, delivery: Delivery) -> None:
        if delivery.qos > 0:
            self._client.ack(delivery.mid, delivery.qos)

    def _subscribe(self, topics: frozenset[str]) -> None:
        if not topics:
            return
        with self._lock:  # the answer may come back on paho's thread before subscribe() returns here
            result, mid = self._client.subscribe([(topic, QOS) for topic in sorted(topics)])
            if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._pending[mid] = sorted(topics)

    def failed(self, reason: str) -> None:
        if reason != self._reported:
            log.warning("mqtt broker unreachable; retrying with backoff", **self.label, reason=reason)
            self._reported = reason

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.failed(f"the broker refused the connection: {reason_code}")
            return
        self._reported = ""
        self.listening_since, self.subscribed = self._clock(), frozenset()
        self._subscribe(self.endpoint.topics)
        log.info("mqtt connected", **self.label, topics=sorted(self.endpoint.topics), session_present=flags.session_present)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was_listening, self.listening_since, self.subscribed = self.listening_since is not None, None, frozenset()
        if was_listening and not self._closing:
            log.warning("mqtt connection lost; reconnecting", **self.label, reason=str(reason_code))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[Any], properties: Any) -> None:
        with self._lock:
            topics = self._pending.pop(mid, [])
        granted = {topic for topic, code in zip(topics, reason_codes, strict=False) if not code.is_failure}
        self.subscribed |= granted
        if granted:
            log.info("mqtt subscribed", **self.label, topics=sorted(granted))
        refused = sorted(set(topics) - granted)
        if refused:
            log.warning("mqtt broker refused a subscription", **self.label, topics=refused, reasons=[str(code) for code in reason_codes])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._deliveries.put(Delivery(self, message.topic, bytes(message.payload), message.mid, message.qos, self._clock()))


class TelemetryListener:
    """The listener's loop (see the module); `run` returns after `stop`."""

    def __init__(
        self,
        *,
        clock: Clock = timezone.now,
        refresh_seconds: float = 30.0,
        silence_check_seconds: float = 30.0,
        client_prefix: str | None = None,
    ):
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.silence_check_seconds = silence_check_seconds
        self.client_prefix = client_prefix or str(getattr(settings, "BATON_MQTT_CLIENT_PREFIX", "baton"))
        self.links: dict[tuple[str, int], BrokerLink] = {}
        self.tally: Tally[str] = Tally()
        self._deliveries: queue.Queue[Delivery] = queue.Queue()
        self._stopping = threading.Event()
        self._unusable: dict[tuple[str, int], str] = {}  # connections skipped, with why (logged once)

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        next_refresh = next_silence_check = 0.0
        next_summary = time.monotonic() + SUMMARY_SECONDS
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_refresh:
                    next_refresh = now + self.refresh_seconds
                    self._guarded(self._refresh, "reading the tenants' MQTT connections failed")
                if now >= next_silence_check:
                    next_silence_check = now + self.silence_check_seconds
                    self._guarded(self._silences_check, "checking silent assets failed")
                if now >= next_summary:
                    next_summary = now + SUMMARY_SECONDS
                    self._summary()
                try:
                    delivery = self._deliveries.get(timeout=0.1)
                except queue.Empty:
                    continue
                self._handle(delivery)
        finally:
            for link in self.links.values():
                link.close(forget=False)
            self.links.clear()
            db.close()
            log.info("mqtt listener stopped")

    def _guarded(self, work: Callable[[], None], failure: str) -> None:
        """Periodic work that must not stop the listener: a failure is logged and tried next round."""
        try:
            work()
        except (OperationalError, InterfaceError) as error:
            log.warning(f"{failure}: the database is unavailable", error=str(error))
            db.close()
        except Exception:  # noqa: BLE001 - the listener outlives any one round
            log.exception(failure)
            db.close()

    def _endpoints(self) -> dict[tuple[str, int], BrokerEndpoint]:
        wanted: dict[tuple[str, int], BrokerEndpoint] = {}
        unusable: dict[tuple[str, int], str] = {}
        db.set_schema_to_public()
        for schema in ready_schemas():
            with schema_context(schema):
                for connection in telemetry_connections():
                    try:
                        endpoint = endpoint_of(schema=schema, connection=connection, client_prefix=self.client_prefix)
                    except ValueError as error:
                        unusable[(schema, connection.pk)] = str(error)
                        continue
                    wanted[endpoint.link_key] = endpoint
        for key, reason in unusable.items():
            if self._unusable.get(key) != reason:
                log.warning("mqtt connection skipped", schema=key[0], connection_id=key[1], reason=reason)
        self._unusable = unusable
        return wanted

    def _refresh(self) -> None:
        wanted = self._endpoints()
        changed = False
        for key, link in list(self.links.items()):
            endpoint = wanted.get(key)
            if endpoint is None:
                link.close(forget=True)
                del self.links[key]
                log.info("mqtt connection left", **link.label)
                changed = True
            elif not link.endpoint.same_session(endpoint):
                link.close(forget=False)
                del self.links[key]
            elif link.endpoint.topics != endpoint.topics:
                link.topics_set(endpoint)
        for key, endpoint in wanted.items():
            if key not in self.links:
                self.links[key] = BrokerLink(endpoint, self._deliveries, self.clock)
                self.links[key].start()
                changed = True
        if changed:
            log.info("mqtt listening", connections=len(self.links), tenants=len({key[0] for key in self.links}))

    def _silences_check(self) -> None:
        for link in list(self.links.values()):
            listening_since = link.listening_since
            if listening_since is None:
                continue
            with schema_context(link.endpoint.schema):
                raised = telemetry_silences_check(
                    connection_id=link.endpoint.connection_id, listening_since=listening_since, now=self.clock()
                )
            for event_id in raised:
                log.info("telemetry ping lost", **link.label, event_id=event_id)

    def _handle(self, delivery: Delivery) -> None:
        """Apply one message, then acknowledge it; a database outage keeps it (retried with backoff)."""
        link, delay = delivery.link, 1.0
        while True:
            try:
                with schema_context(link.endpoint.schema):
                    outcomes = telemetry_message_apply(
                        connection_id=link.endpoint.connection_id,
                        topic=delivery.topic,
                        payload=delivery.payload,
                        received_at=delivery.received_at,
                    )
                break
            except (OperationalError, InterfaceError) as error:
                log.warning("database unavailable; the message waits", **link.label, topic=delivery.topic, retry_in=delay, error=str(error))
                db.close()
                if self._stopping.wait(delay):
                    return  # not acknowledged: the broker delivers it again
                delay = min(delay * 2, DATABASE_RETRY_MAX_SECONDS)
            except Exception:  # noqa: BLE001 - one message never stops the listener
                log.exception("telemetry message failed; skipped", **link.label, topic=delivery.topic)
                self._count("failed")
                link.ack(delivery)
                return
        for outcome in outcomes:
            self._count(outcome.result)
            if outcome.result == "rejected":
                log.warning("telemetry message rejected", **link.label, topic=delivery.topic, reason=outcome.reason)
            for event_id in outcome.raised:
                log.info("telemetry excursion raised", **link.label, topic=delivery.topic, event_id=event_id)
        link.ack(delivery)

    def _count(self, result: str) -> None:
        MESSAGES.labels(result).inc()
        self.tally[result] += 1

    def _summary(self) -> None:
        if not self.links and not self.tally:
            return  # nothing to listen to (a development machine without IoT connections): stay quiet
        connected = sum(1 for link in self.links.values() if link.listening_since is not None)
        log.info("mqtt listener", connections=len(self.links), connected=connected, messages=dict(self.tally))
        self.tally.clear()
