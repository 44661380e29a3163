"""MQTT telemetry against a real broker (Mosquitto on 127.0.0.1:1883 when it answers, else an
embedded amqtt broker on a free port): the listener keeps each trailer's latest position and
temperature, raises one inbox event per excursion (again after it cleared), counts and skips
malformed messages, raises "ping lost" once the silence outlasts the rule (on a clock the test
moves), keeps two tenants on the same topic names apart, reconnects when its broker comes back,
and as `manage.py mqtt_listen` stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from connectors.inbox import event_dispatch
from connectors.models import Connection, InboundEvent, TelemetryAsset, TelemetryExcursion, TelemetrySubscription
from connectors.telemetry.listener import MESSAGES, TelemetryListener
from connectors.telemetry.readings import PayloadFormat, ReadingRejected, reading_parse
from connectors.telemetry.selectors import telemetry_latest
from connectors.telemetry.services import TelemetryInvalid, telemetry_message_apply, telemetry_rule_set, telemetry_subscription_create
from governance.services import Actor
from tests.processes import ROOT, free_port, suite_env
from tests.workflows.test_metrics import gauge, scrape

ADMIN = Actor.system("tests-telemetry")
WAIT_SECONDS = 15


# --- brokers --------------------------------------------------------------------------------------


def _mosquitto_answers(host: str = "127.0.0.1", port: int = 1883) -> bool:
    """Whether an MQTT broker accepts a connection there (a CONNACK, not just an open port)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"baton-probe-{uuid.uuid4().hex[:8]}")
    try:
        client.connect(host, port, keepalive=5)
    except OSError:
        return False
    try:
        deadline = time.monotonic() + 3
        while not client.is_connected() and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        return client.is_connected()
    finally:
        client.disconnect()


@contextmanager
def embedded_broker(port: int) -> Iterator[tuple[str, int]]:
    """An amqtt broker on 127.0.0.1:`port` in its own thread and event loop, shut down after."""
    from amqtt.broker import Broker

    loop = asyncio.new_event_loop()
    started = threading.Event()
    brokers: list[Broker] = []
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            broker = Broker(config)
            await broker.start()
            brokers.append(broker)

        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name=f"amqtt-{port}", daemon=True)
    thread.start()
    assert started.wait(10), "the embedded MQTT broker did not start"
    try:
        yield ("127.0.0.1", port)
    finally:
        asyncio.run_coroutine_threadsafe(brokers[0].shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def broker() -> Iterator[tuple[str, int]]:
    """The shared Mosquitto when it runs (never stopped here), else an embedded broker."""
    if _mosquitto_answers():
        yield ("127.0.0.1", 1883)
    else:
        with embedded_broker(free_port()) as address:
            yield address


@pytest.fixture(scope="module")
def other_broker() -> Iterator[tuple[str, int]]:
    with embedded_broker(free_port()) as address:
        yield address


def publish(address: tuple[str, int], topic: str, payload: bytes | dict) -> None:
    """Publish one message at QoS 1 and wait for the broker to take it."""
    body = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-device-{uuid.uuid4().hex[:8]}")
    client.connect(*address)
    client.loop_start()
    try:
        client.publish(topic, body, qos=1).wait_for_publish(WAIT_SECONDS)
    finally:
        client.disconnect()
        client.loop_stop()


# --- the listener -----------------------------------------------------------------------------------


class Clock:
    """The listener's clock: real time plus what the test moved it by."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return timezone.now() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def listener(committed, clock) -> Iterator[TelemetryListener]:
    """The listener in a thread, reading connections and checking silences every 0.2 s."""
    running = TelemetryListener(clock=clock, refresh_seconds=0.2, silence_check_seconds=0.2, client_prefix=f"test-{uuid.uuid4().hex[:8]}")
    thread = threading.Thread(target=running.run, name="mqtt-listener", daemon=True)
    thread.start()
    yield running
    running.stop()
    thread.join(10)
    assert not thread.is_alive(), "the listener did not stop"


def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT_SECONDS) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wait_subscribed(running: TelemetryListener, schema: str, connection: Connection) -> None:
    def subscribed() -> bool:
        link = running.links.get((schema, connection.pk))
        with schema_context(schema):
            wanted = set(TelemetrySubscription.objects.filter(connection=connection, enabled=True).values_list("topic_filter", flat=True))
        return link is not None and wanted <= link.subscribed

    wait_for(subscribed, f"the listener to subscribe {connection.key}")


@pytest.fixture
def made(world):
    """Connections made by a test, deleted (with their events) afterwards."""
    made: list[tuple[str, Connection]] = []
    yield made
    for schema, connection in made:
        with schema_context(schema):
            InboundEvent.objects.filter(connection=connection).delete()
            connection.delete()


def iot_connection(made, tenant_world, address: tuple[str, int], key: str | None = None) -> Connection:
    with schema_context(tenant_world.schema):
        connection = Connection.objects.create(
            key=key or f"sensors-{uuid.uuid4().hex[:6]}",
            name="Reefer sensors",
            kind="iot",
            transport="mqtt",
            base_url=f"mqtt://{address[0]}:{address[1]}",
            connect_timeout=2,
        )
    made.append((tenant_world.schema, connection))
    return connection


def subscribed_connection(made, tenant_world, address, topic_filter: str, **rules) -> tuple[Connection, TelemetrySubscription]:
    connection = iot_connection(made, tenant_world, address)
    with schema_context(tenant_world.schema):
        subscription = telemetry_subscription_create(connection=connection, topic_filter=topic_filter, actor=ADMIN)
        if "temperature" in rules:
            low, high = rules["temperature"]
            telemetry_rule_set(subscription=subscription, kind="temperature_range", temperature_min=low, temperature_max=high, actor=ADMIN)
        if "silence_minutes" in rules:
            telemetry_rule_set(subscription=subscription, kind="no_ping", silence_minutes=rules["silence_minutes"], actor=ADMIN)
    return connection, subscription


def asset_of(schema: str, subscription: TelemetrySubscription, key: str) -> TelemetryAsset | None:
    with schema_context(schema):
        return TelemetryAsset.objects.filter(subscription=subscription, key=key).first()


def mqtt_events(schema: str, connection: Connection) -> list[InboundEvent]:
    with schema_context(schema):
        return list(InboundEvent.objects.filter(connection=connection, channel="mqtt").order_by("pk"))


def topic_root() -> str:
    """A topic prefix no other test run on the shared broker uses."""
    return f"baton-test/{uuid.uuid4().hex[:8]}"


# --- tests ------------------------------------------------------------------------------------------


def test_position_and_temperature_messages_keep_the_trailers_latest_state(world, broker, listener, made):
    root = topic_root()
    connection, subscription = subscribed_connection(made, world.acme, broker, f"{root}/trailers/+/telemetry")
    wait_subscribed(listener, world.acme.schema, connection)
    now = datetime.now(UTC).replace(microsecond=0)

    publish(
        broker,
        f"{root}/trailers/TR-1/telemetry",
        {"device_id": "TR-1", "shipment": "SHP-1", "lat": 51.5, "lon": -0.12, "ts": now.isoformat()},
    )
    publish(broker, f"{root}/trailers/TR-1/telemetry", {"device_id": "TR-1", "temperature": 4.5, "ts": int(now.timestamp()) + 5})
    # A buffered reading from before: kept in the recent list, but it does not move the trailer back.
    publish(
        broker,
        f"{root}/trailers/TR-1/telemetry",
        {"device_id": "TR-1", "lat": 48.85, "lon": 2.35, "ts": (now - timedelta(hours=1)).isoformat()},
    )

    asset = wait_for(lambda: (a := asset_of(world.acme.schema, subscription, "TR-1")) and len(a.recent) == 3 and a, "three readings")
    assert (asset.kind, asset.shipment_ref) == ("trailer", "SHP-1")
    assert (asset.latitude, asset.longitude, asset.position_at) == (51.5, -0.12, now)
    assert (asset.temperature, asset.temperature_at) == (4.5, now + timedelta(seconds=5))
    assert [entry.get("lat") for entry in asset.recent] == [48.85, 51.5, None]
    assert asset.last_topic == f"{root}/trailers/TR-1/telemetry"
    with schema_context(world.acme.schema):
        assert telemetry_latest(shipment_ref="SHP-1").pk == asset.pk
        assert TelemetrySubscription.objects.get(pk=subscription.pk).messages_total == 3
    assert mqtt_events(world.acme.schema, connection) == []


def test_an_excursion_raises_one_inbox_event_and_another_only_after_it_cleared(world, broker, listener, made):
    root = topic_root()
    connection, subscription = subscribed_connection(made, world.acme, broker, f"{root}/reefers/#", temperature=(2.0, 8.0))
    wait_subscribed(listener, world.acme.schema, connection)
    topic = f"{root}/reefers/TR-7"

    for temperature in (5.0, 9.5, 11.0, 10.2):
        publish(broker, topic, {"device_id": "TR-7", "shipment": "SHP-7", "temperature": temperature})
    wait_for(lambda: (a := asset_of(world.acme.schema, subscription, "TR-7")) and a.temperature == 10.2, "the fourth reading")
    [first] = mqtt_events(world.acme.schema, connection)
    body = json.loads(first.body)
    assert body["event_type"] == "telemetry.temperature_excursion"
    assert body["event_id"] == first.external_id
    assert body["correlation"] == {"shipment": "SHP-7"}
    assert body["payload"]["temperature"] == 9.5 and body["payload"]["direction"] == "above"
    assert body["payload"]["trailer"] == "TR-7" and body["payload"]["temperature_max"] == 8.0

    publish(broker, topic, {"device_id": "TR-7", "temperature": 6.0})
    wait_for(lambda: asset_of(world.acme.schema, subscription, "TR-7").temperature == 6.0, "the reading back in range")
    with schema_context(world.acme.schema):
        assert TelemetryExcursion.objects.get(asset__subscription=subscription).cleared_at is not None
    assert len(mqtt_events(world.acme.schema, connection)) == 1

    publish(broker, topic, {"device_id": "TR-7", "temperature": 0.5})
    events = wait_for(lambda: len(e := mqtt_events(world.acme.schema, connection)) == 2 and e, "the second excursion")
    assert json.loads(events[1].body)["payload"]["direction"] == "below"
    with schema_context(world.acme.schema):
        # The events take the inbox's way: normalized as canonical events and handed to workflows.
        assert [event_dispatch(event.pk) for event in events] == ["delivered", "delivered"]
        assert InboundEvent.objects.get(pk=events[0].pk).canonical[0]["event_type"] == "telemetry.temperature_excursion"


def test_a_malformed_message_is_counted_with_its_reason_and_skipped(world, broker, listener, made):
    root = topic_root()
    connection, subscription = subscribed_connection(made, world.acme, broker, f"{root}/+/data")
    wait_subscribed(listener, world.acme.schema, connection)
    rejected_before = MESSAGES.labels("rejected")._value.get()

    publish(broker, f"{root}/TR-2/data", b"{not json")
    publish(broker, f"{root}/TR-2/data", {"device_id": "TR-2", "lat": 51.5})
    publish(broker, f"{root}/TR-2/data", {"device_id": "TR-2", "temperature": 3.0})

    asset = wait_for(lambda: asset_of(world.acme.schema, subscription, "TR-2"), "the good message")
    assert asset.temperature == 3.0 and asset.latitude is None
    with schema_context(world.acme.schema):
        counted = TelemetrySubscription.objects.get(pk=subscription.pk)
    assert (counted.messages_total, counted.messages_rejected) == (3, 2)
    assert counted.last_rejection == f"{root}/TR-2/data: a position needs both coordinates; nothing at $.lon"
    assert MESSAGES.labels("rejected")._value.get() - rejected_before == 2


def test_no_ping_for_n_minutes_raises_ping_lost_once_and_a_message_clears_it(world, broker, listener, clock, made):
    root = topic_root()
    connection, subscription = subscribed_connection(made, world.acme, broker, f"{root}/gps", silence_minutes=10)
    wait_subscribed(listener, world.acme.schema, connection)
    publish(broker, f"{root}/gps", {"device_id": "TR-3", "shipment": "SHP-3", "lat": 40.4, "lon": -3.7})
    wait_for(lambda: asset_of(world.acme.schema, subscription, "TR-3"), "the first position")

    clock.offset = timedelta(minutes=9)
    time.sleep(1)  # several silence checks: nine minutes is not ten
    assert mqtt_events(world.acme.schema, connection) == []

    clock.offset = timedelta(minutes=11)
    [event] = wait_for(lambda: mqtt_events(world.acme.schema, connection), "ping lost")
    body = json.loads(event.body)
    assert body["event_type"] == "telemetry.ping_lost"
    assert body["correlation"] == {"shipment": "SHP-3"}
    assert body["payload"]["silence_minutes"] == 10 and body["payload"]["position"]["lat"] == 40.4
    time.sleep(1)
    assert len(mqtt_events(world.acme.schema, connection)) == 1

    publish(broker, f"{root}/gps", {"device_id": "TR-3", "lat": 40.5, "lon": -3.7})
    with schema_context(world.acme.schema):
        wait_for(
            lambda: TelemetryExcursion.objects.filter(asset__subscription=subscription, cleared_at__isnull=False).exists(), "the clear"
        )


def test_two_tenants_with_the_same_topics_and_trailer_ids_never_see_each_others_readings(world, broker, other_broker, listener, made):
    root = topic_root()
    topic_filter = f"{root}/fleet/+/telemetry"
    acme, acme_subscription = subscribed_connection(made, world.acme, broker, topic_filter)
    globex, globex_subscription = subscribed_connection(made, world.globex, other_broker, topic_filter)
    wait_subscribed(listener, world.acme.schema, acme)
    wait_subscribed(listener, world.globex.schema, globex)
    trailer = f"TR-{uuid.uuid4().hex[:6]}"

    publish(broker, f"{root}/fleet/{trailer}/telemetry", {"device_id": trailer, "temperature": 3.0})
    publish(other_broker, f"{root}/fleet/{trailer}/telemetry", {"device_id": trailer, "temperature": 21.0})

    assert wait_for(lambda: asset_of(world.acme.schema, acme_subscription, trailer), "acme's reading").temperature == 3.0
    assert wait_for(lambda: asset_of(world.globex.schema, globex_subscription, trailer), "globex's reading").temperature == 21.0
    time.sleep(0.5)
    with schema_context(world.acme.schema):
        assert list(TelemetryAsset.objects.filter(key=trailer).values_list("temperature", flat=True)) == [3.0]
        assert TelemetrySubscription.objects.get(pk=acme_subscription.pk).messages_total == 1
    with schema_context(world.globex.schema):
        assert list(TelemetryAsset.objects.filter(key=trailer).values_list("temperature", flat=True)) == [21.0]
        assert TelemetrySubscription.objects.get(pk=globex_subscription.pk).messages_total == 1


def test_the_listener_keeps_retrying_an_absent_broker_and_connects_when_it_comes(world, listener, made):
    port = free_port()
    root = topic_root()
    connection, subscription = subscribed_connection(made, world.acme, ("127.0.0.1", port), f"{root}/t")
    link = wait_for(lambda: listener.links.get((world.acme.schema, connection.pk)), "the listener to take the connection")
    time.sleep(1.5)
    assert link.listening_since is None
    with embedded_broker(port) as address:
        wait_subscribed(listener, world.acme.schema, connection)  # reconnect backoff: 1 s, then 2 s
        publish(address, f"{root}/t", {"device_id": "TR-4", "temperature": 5.0})
        wait_for(lambda: asset_of(world.acme.schema, subscription, "TR-4"), "the reading")


def test_a_broker_on_an_address_the_outbound_guard_refuses_is_never_connected(world, broker, listener, made, settings, caplog):
    settings.BATON_OUTBOUND_ALLOW = []
    connection, _subscription = subscribed_connection(made, world.acme, broker, f"{topic_root()}/t")
    link = wait_for(lambda: listener.links.get((world.acme.schema, connection.pk)), "the listener to take the connection")
    wait_for(lambda: any("is a loopback address" in str(record.msg) for record in caplog.records), "the refusal to be logged")
    assert link.listening_since is None


def _metrics_read(url: str, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_mqtt_listen_applies_messages_serves_its_counters_and_stops_cleanly_on_sigterm(
    world, broker, committed, made, tmp_path, monkeypatch
):
    """Its counters show on its own `/metrics` (BATON_MQTT_METRICS_LISTEN, as in Kubernetes) and,
    through a shared PROMETHEUS_MULTIPROC_DIR (as under `make run`), on the web's."""
    root = topic_root()
    connection, subscription = subscribed_connection(made, world.acme, broker, f"{root}/t")
    output, shared = tmp_path / "listener.log", tmp_path / "prometheus"
    shared.mkdir()
    listen, token = f"127.0.0.1:{free_port()}", "mqtt-scrape-token"
    env = suite_env(LOG_FORMAT="console", BATON_MQTT_METRICS_LISTEN=listen, BATON_METRICS_TOKEN=token, PROMETHEUS_MULTIPROC_DIR=str(shared))
    with open(output, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "mqtt_listen", "--refresh", "0.5", "--client-prefix", f"test-{uuid.uuid4().hex[:8]}"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "mqtt subscribed" in output.read_text(), "the listener to subscribe", timeout=30)
        url = f"http://{listen}/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
        applied = ("baton_telemetry_messages_total", (("result", "applied"),))
        assert _metrics_read(url, token).get(applied, 0) == 0

        publish(broker, f"{root}/t", {"device_id": "TR-5", "temperature": 7.0})
        wait_for(lambda: asset_of(world.acme.schema, subscription, "TR-5"), "the reading")
        assert wait_for(lambda: _metrics_read(url, token).get(applied), "the counter on the listener's /metrics") == 1

        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
        samples, _families = scrape()
        assert gauge(samples, "baton_telemetry_messages_total", result="applied") == 1

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "MQTT listener stopped." in output.read_text()


# --- rules (no broker) ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_assets_own_rule_replaces_the_subscriptions_and_a_disabled_one_silences_it(world):
    with schema_context(world.acme.schema):
        connection = Connection.objects.create(
            key="reefers-rules", name="Reefers", kind="iot", transport="mqtt", base_url="mqtt://broker.example"
        )
        subscription = telemetry_subscription_create(connection=connection, topic_filter="reefers/+", actor=ADMIN)
        telemetry_rule_set(subscription=subscription, kind="temperature_range", temperature_max=8.0, actor=ADMIN)
        telemetry_rule_set(subscription=subscription, kind="temperature_range", asset_key="TR-WARM", temperature_max=12.0, actor=ADMIN)
        telemetry_rule_set(
            subscription=subscription, kind="temperature_range", asset_key="TR-OFF", temperature_max=1.0, enabled=False, actor=ADMIN
        )
        for trailer in ("TR-COLD", "TR-WARM", "TR-OFF"):
            [outcome] = telemetry_message_apply(
                connection_id=connection.pk,
                topic=f"reefers/{trailer}",
                payload=json.dumps({"device_id": trailer, "temperature": 10.0}).encode(),
                received_at=RECEIVED,
            )
            assert outcome.result == "applied"
        tripped = TelemetryExcursion.objects.filter(asset__subscription=subscription).values_list("asset__key", flat=True)
        assert list(tripped) == ["TR-COLD"]
        assert (
            telemetry_message_apply(connection_id=connection.pk, topic="elsewhere/TR-1", payload=b"{}", received_at=RECEIVED)[0].result
            == "unmatched"
        )


# --- reading messages and validating settings (no broker) ------------------------------------------


RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "the message is not UTF-8 text (byte 0)"),
        (b"[1, 2]", "the message must be a JSON object"),
        (b'{"temperature": 3}', "the message names no trailer or shipment (nothing at $.device_id or $.shipment)"),
        (b'{"device_id": "T", "temperature": true}', "the temperature at $.temperature must be a number, not true"),
        (b'{"device_id": "T", "lat": 91, "lon": 0}', "the latitude at $.lat is 91, outside -90 to 90"),
        (b'{"device_id": "T", "ts": "yesterday"}', 'the time at $.ts must be ISO 8601 or Unix seconds, not "yesterday"'),
        (
            b'{"device_id": "T", "ts": "2026-03-01T12:10:00Z"}',
            "the time at $.ts (2026-03-01T12:10:00+00:00) is more than 5 minutes ahead of Baton's clock",
        ),
    ],
)
def test_a_message_that_cannot_be_read_says_why(payload, reason):
    with pytest.raises(ReadingRejected) as rejected:
        reading_parse(payload=payload, topic="fleet/T", payload_format=PayloadFormat(), received_at=RECEIVED)
    assert rejected.value.reason == reason


def test_a_reading_takes_the_trailer_from_the_topic_and_milliseconds_as_time():
    fmt = PayloadFormat(device_path="", device_topic_level=1, temperature_path="$.data.t", timestamp_path="$.data.at")
    reading = reading_parse(
        payload=b'{"data": {"t": -18.5, "at": 1772366400000}}', topic="fleet/TR-9/temp", payload_format=fmt, received_at=RECEIVED
    )
    assert (reading.device, reading.temperature, reading.measured_at) == ("TR-9", -18.5, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.mark.django_db
def test_a_subscription_or_rule_that_cannot_work_is_refused_with_every_problem(world):
    with schema_context(world.acme.schema):
        connection = Connection.objects.create(
            key="sensors-invalid", name="Sensors", kind="iot", transport="mqtt", base_url="mqtt://broker.example"
        )
        with pytest.raises(TelemetryInvalid) as invalid:
            telemetry_subscription_create(
                connection=connection, topic_filter="fleet/#/temp", actor=ADMIN, payload_format=PayloadFormat(temperature_path="data.t")
            )
        assert invalid.value.problems == [
            ("/topic_filter", "may use '#' only as the whole last level (fleet/#)"),
            ("/temperature_path", "must be empty or a JSON path like $.data.temperature"),
        ]
        subscription = telemetry_subscription_create(connection=connection, topic_filter="fleet/+/temp", actor=ADMIN)
        with pytest.raises(TelemetryInvalid) as invalid:
            telemetry_rule_set(subscription=subscription, kind="temperature_range", temperature_min=8, temperature_max=2, actor=ADMIN)
        assert invalid.value.problems == [("/temperature_max", "must be above the minimum (8 °C)")]
