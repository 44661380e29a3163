"""The durable inbox: signed webhooks stored before the answer, redeliveries answered with the
first id, refusals that say why, dispatch to workflows exactly once, quarantine with fix and
replay, the sweeper, and one tenant's secrets never opening another's endpoint."""

from __future__ import annotations

import copy
import json
import time
from datetime import timedelta

import pytest
from django.db import connection as db
from django.db.models.functions import Length
from django_tenants.utils import schema_context

from connectors import inbox
from connectors.inbox import WEBHOOKS, connection_inbound_configure, dispatch_sweep, event_dispatch, inbound_replay
from connectors.models import Connection, EventDispatch, InboundEvent
from connectors.signatures import GITHUB, STANDARD_WEBHOOKS
from governance.models import AuditEvent
from governance.services import Actor
from tests.conftest import host_client
from tests.workflows.runs_setup import definition_published, run_advanced, run_started
from workflows.models import Run

pytestmark = pytest.mark.django_db

ADMIN = Actor.system("tests-inbox")
DELIVERED_SPEC = {
    "start": "pod",
    "steps": [
        {
            "id": "pod",
            "kind": "wait_event",
            "event_type": "shipment.milestone",
            "correlate": {"pro": "input.pro"},
            "timeout": "PT4H",
            "next": "done",
            "on_timeout": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def _connection(tenant_world, key: str = "carrier-hooks", scheme: str = "standard_webhooks", **options) -> tuple[Connection, str]:
    with schema_context(tenant_world.schema):
        connection = Connection.objects.create(key=key, name="Carrier hooks", kind="carrier", base_url="https://carrier.example")
        secret = connection_inbound_configure(connection=connection, scheme=scheme, actor=ADMIN, **options)
    return connection, secret


def _milestone(event_id: str = "evt-1", pro: str = "PRO-1", note: str = "") -> bytes:
    payload = {"code": "delivered", **({"note": note} if note else {})}
    return json.dumps({"event_type": "shipment.milestone", "event_id": event_id, "correlation": {"pro": pro}, "payload": payload}).encode()


def _post(tenant_world, key: str, body: bytes, headers: dict[str, str], content_type: str = "application/json"):
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return host_client(tenant_world.host).post(f"/hooks/{key}", data=body, content_type=content_type, **extra)


def _signed(body: bytes, secret: str, webhook_id: str = "msg-1", timestamp: int | None = None) -> dict[str, str]:
    return STANDARD_WEBHOOKS.sign(body, secrets=[secret], webhook_id=webhook_id, timestamp=timestamp)


def _count(kind: str) -> float:
    return WEBHOOKS.labels(kind)._value.get()


def test_a_signed_webhook_is_stored_with_its_dispatch_before_the_202_and_wakes_the_waiting_run(world):
    _connection_, secret = _connection(world.acme)
    definition = definition_published(world.acme, DELIVERED_SPEC)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"pro": "PRO-1"}))
    assert run.status == "waiting"
    accepted = _count("accepted")

    body = _milestone()
    answer = _post(world.acme, "carrier-hooks", body, _signed(body, secret))

    assert answer.status_code == 202, answer.content
    event_id = answer.json()["event_id"]
    assert _count("accepted") == accepted + 1
    with schema_context(world.acme.schema):
        event = InboundEvent.objects.get(pk=event_id)
        assert (event.status, event.external_id, event.body) == ("received", "msg-1", body.decode())
        assert EventDispatch.objects.filter(event=event).exists()
        assert "webhook-signature" in {name.lower() for name in event.headers}
        assert event_dispatch(event_id) == "delivered"
        assert event_dispatch(event_id) == "gone"  # a repeated task changes nothing
        event.refresh_from_db()
        assert event.status == "delivered" and event.canonical[0]["woken_runs"] == [run.pk]
        assert not EventDispatch.objects.filter(event=event).exists()
        assert Run.objects.get(pk=run.pk).status == "running"


def test_a_redelivery_gets_the_first_events_id_and_no_second_dispatch(world):
    _connection_, secret = _connection(world.acme)
    body = _milestone()
    first = _post(world.acme, "carrier-hooks", body, _signed(body, secret))
    duplicates = _count("duplicate")
    again = _post(world.acme, "carrier-hooks", body, _signed(body, secret))
    assert (again.status_code, again.json()["event_id"], again.json()["duplicate"]) == (200, first.json()["event_id"], True)
    assert _count("duplicate") == duplicates + 1
    with schema_context(world.acme.schema):
        assert InboundEvent.objects.count() == 1 and EventDispatch.objects.count() == 1


@pytest.mark.parametrize(
    ("case", "status", "kind", "detail"),
    [
        ("unknown", 404, "unknown-endpoint", "takes no webhooks at 'nope'"),
        ("disabled", 403, "connection-disabled", "is disabled"),
        ("too_large", 413, "too-large", "takes at most"),
        ("text", 415, "unsupported-media-type", "'text/plain'"),
        ("tampered", 401, "bad-signature", ""),
        ("stale", 401, "stale-timestamp", "beyond the 300 s tolerance"),
        ("unsigned", 401, "bad-signature", "webhook-signature"),
    ],
)
def test_a_refused_delivery_says_why_is_counted_and_stores_nothing(world, settings, case, status, kind, detail):
    connection, secret = _connection(world.acme)
    body, key, content_type = _milestone(), "carrier-hooks", "application/json"
    headers = _signed(body, secret)
    if case == "unknown":
        key = "nope"
    elif case == "disabled":
        with schema_context(world.acme.schema):
            Connection.objects.filter(pk=connection.pk).update(enabled=False)
    elif case == "too_large":
        settings.BATON_WEBHOOK_MAX_BYTES = 20
    elif case == "text":
        content_type = "text/plain"
    elif case == "tampered":
        body = body.replace(b"delivered", b"lost")
    elif case == "stale":
        headers = _signed(body, secret, timestamp=int(time.time()) - 400)
    elif case == "unsigned":
        headers = {name: value for name, value in headers.items() if name != "webhook-signature"}
    before = _count(kind)

    answer = _post(world.acme, key, body, headers, content_type=content_type)

    assert answer.status_code == status and answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"].endswith(f"webhook-{kind}") and detail in problem["detail"]
    assert _count(kind) == before + 1
    with schema_context(world.acme.schema):
        assert not InboundEvent.objects.exists()


def test_after_a_rotation_the_previous_secret_verifies_until_its_overlap_ends(world):
    connection, old = _connection(world.acme)
    with schema_context(world.acme.schema):
        new = connection_inbound_configure(connection=connection, scheme="standard_webhooks", actor=ADMIN, rotate=True)
        assert new and new != old and len(connection.inbound_secret_masks) == 2
        assert old not in json.dumps(connection.inbound_secret_masks) and old not in connection.inbound_secrets
    for index, secret in enumerate((old, new)):
        body = _milestone(f"evt-{index}")
        assert _post(world.acme, "carrier-hooks", body, _signed(body, secret, webhook_id=f"msg-{index}")).status_code == 202
    with schema_context(world.acme.schema):
        connection_inbound_configure(connection=connection, scheme="standard_webhooks", actor=ADMIN, rotate=True, overlap=timedelta(0))
        audit = AuditEvent.objects.filter(action="connection.inbound_configured").last()
        assert audit is not None and new not in json.dumps(audit.data)
    body = _milestone("evt-9")
    assert _post(world.acme, "carrier-hooks", body, _signed(body, new, webhook_id="msg-9")).status_code == 401


def test_a_vendor_scheme_uses_the_body_id_to_know_a_redelivery(world):
    _connection_, secret = _connection(world.acme, scheme="github", secret="It's a Secret to Everybody")
    body = json.dumps({"id": "gh-77", "event_type": "shipment.milestone", "event_id": "gh-77", "payload": {}}).encode()
    headers = GITHUB.sign(body, secrets=[secret])
    first, again = (_post(world.acme, "carrier-hooks", body, headers) for _ in range(2))
    assert (first.status_code, again.status_code) == (202, 200)
    with schema_context(world.acme.schema):
        assert InboundEvent.objects.get().external_id == "gh-77"


def test_what_cannot_be_normalized_is_quarantined_and_a_fixed_replay_goes_through(world):
    _connection_, secret = _connection(world.acme)
    broken = json.dumps({"event_type": "shipment.milestone", "correlation": {"pro": "PRO-5"}, "payload": {}}).encode()
    event_id = _post(world.acme, "carrier-hooks", broken, _signed(broken, secret)).json()["event_id"]
    with schema_context(world.acme.schema):
        assert event_dispatch(event_id) == "quarantined"
        event = InboundEvent.objects.get(pk=event_id)
        assert (event.status, event.error_pointer) == ("quarantined", "/event_id")
        assert "event id must be a non-empty text" in event.error
        event = inbound_replay(event=event, actor=ADMIN)  # as it was: quarantined again
        assert event_dispatch(event_id) == "quarantined"
        fixed = json.dumps({**json.loads(broken), "event_id": "evt-5"})
        event = inbound_replay(event=InboundEvent.objects.get(pk=event_id), actor=ADMIN, body=fixed)
        assert event_dispatch(event_id) == "delivered"
        event.refresh_from_db()
        assert (event.status, event.replays, event.original_body, event.body) == ("delivered", 2, broken.decode(), fixed)
        audits = list(
            AuditEvent.objects.filter(action="inbound_event.replayed", target_id=str(event_id))
            .order_by("pk")
            .values_list("data", flat=True)
        )
        assert [data["fixed"] for data in audits] == [False, True]
        with pytest.raises(inbox.InboxError, match="not quarantined"):
            inbound_replay(event=event, actor=ADMIN)


def test_a_dispatch_that_keeps_failing_is_counted_then_quarantined_with_the_error(world, monkeypatch):
    _connection_, secret = _connection(world.acme)
    body = _milestone()
    event_id = _post(world.acme, "carrier-hooks", body, _signed(body, secret)).json()["event_id"]

    def broken(deliveries):
        raise RuntimeError("workflows unavailable")

    monkeypatch.setattr("workflows.waits.events_deliver", broken)
    with schema_context(world.acme.schema):
        for attempt in range(1, inbox.DISPATCH_ATTEMPTS):
            assert event_dispatch(event_id) == "failed"
            assert EventDispatch.objects.get(event_id=event_id).attempts == attempt
        assert event_dispatch(event_id) == "failed"
        event = InboundEvent.objects.get(pk=event_id)
        assert event.status == "quarantined" and "failed 5 times: RuntimeError: workflows unavailable" in event.error
        assert not EventDispatch.objects.filter(event_id=event_id).exists()


def test_a_batch_hands_on_the_oldest_events_and_one_failure_leaves_the_others_delivered(world, monkeypatch):
    _connection_, secret = _connection(world.acme)
    ids = []
    for n in range(4):
        body = _milestone(event_id=f"evt-b{n}", pro=f"PRO-B{n}")
        ids.append(_post(world.acme, "carrier-hooks", body, _signed(body, secret, webhook_id=f"msg-b{n}")).json()["event_id"])
    from workflows import waits

    real = waits.events_deliver

    def flaky(deliveries):
        if any(item.correlation == {"pro": "PRO-B1"} for item in deliveries):
            raise RuntimeError("workflows unavailable")
        return real(deliveries)

    monkeypatch.setattr("workflows.waits.events_deliver", flaky)
    with schema_context(world.acme.schema):
        assert inbox.events_dispatch(limit=3) == {ids[0]: "delivered", ids[1]: "failed", ids[2]: "delivered"}
        statuses = dict(InboundEvent.objects.filter(pk__in=ids).values_list("pk", "status"))
        assert statuses == {ids[0]: "delivered", ids[1]: "received", ids[2]: "delivered", ids[3]: "received"}
        assert {row.event_id: row.attempts for row in EventDispatch.objects.filter(event_id__in=ids)} == {ids[1]: 1, ids[3]: 0}
        monkeypatch.undo()
        assert inbox.events_dispatch() == {ids[1]: "delivered", ids[3]: "delivered"}
        assert inbox.events_dispatch() == {}


def test_the_sweeper_sends_dispatches_left_behind_again(world, monkeypatch):
    _connection_, secret = _connection(world.acme)
    sent: list[str] = []
    monkeypatch.setattr(inbox, "dispatch_wake", lambda schema: None)  # the wake-up was lost
    monkeypatch.setattr(inbox, "dispatch_send", sent.append)
    body = _milestone()
    assert _post(world.acme, "carrier-hooks", body, _signed(body, secret)).status_code == 202
    with schema_context(world.acme.schema):
        assert dispatch_sweep() == 0  # not old enough yet: its own wake-up may still come
        assert sent == []
        assert dispatch_sweep(older_than=-1) == 1
    assert sent == [world.acme.schema]


def test_one_tenants_secret_never_opens_another_tenants_endpoint(world):
    _acme, acme_secret = _connection(world.acme)
    _globex, globex_secret = _connection(world.globex)
    body = _milestone()
    answer = _post(world.globex, "carrier-hooks", body, _signed(body, acme_secret))
    assert answer.status_code == 401
    assert _post(world.globex, "carrier-hooks", body, _signed(body, globex_secret)).status_code == 202
    with schema_context(world.acme.schema):
        assert not InboundEvent.objects.exists()
    with schema_context(world.globex.schema):
        assert InboundEvent.objects.count() == 1
    db.set_schema_to_public()


def test_a_custom_scheme_is_checked_when_it_is_set(world):
    connection, _secret = _connection(world.acme)
    with schema_context(world.acme.schema), pytest.raises(ValueError):
        connection_inbound_configure(
            connection=connection, scheme="custom", actor=ADMIN, scheme_settings=copy.deepcopy({"signature_header": "", "algorithm": "md5"})
        )


def test_an_x12_interchange_is_acknowledged_and_its_accepted_sets_delivered(world):
    import re

    from connectors.inbox import inbound_record
    from tests.connectors.edi.fixtures import RESPONSE_990, envelope

    connection, _secret = _connection(world.acme, mapper="x12")
    rejected = re.sub(r"SE\*\d+\*0002~", "SE*99*0002~", envelope(RESPONSE_990, RESPONSE_990, functional_id="GF"))
    with schema_context(world.acme.schema):
        received = inbound_record(
            connection=connection,
            channel="api",
            external_id="x12:SHIPPERCO:000000101",
            body=rejected,
            content_type="application/edi-x12",
            headers={},
        )
        assert event_dispatch(received.event.pk) == "delivered"
        event = InboundEvent.objects.get(pk=received.event.pk)
    assert [item["event_type"] for item in event.canonical] == ["edi.990"]  # the second set was rejected: left to the 997
    assert "ST*997*" in event.acknowledgement and "AK5*R" in event.acknowledgement and "AK5*A" in event.acknowledgement


def _triggered(priority: str) -> dict:
    return {
        "priority": priority,
        "start": "note",
        "triggers": [{"kind": "event", "event_type": "shipment.milestone"}],
        "steps": [
            {"id": "note", "kind": "transform", "mapping": {"code": "$.input.code"}, "next": "done"},
            {"id": "done", "kind": "end", "outcome": "succeeded"},
        ],
    }


def test_the_dispatcher_advances_the_high_priority_runs_its_batch_started_and_leaves_the_rest_to_the_engine(world):
    from connectors.tasks import dispatch_ready

    _connection_, secret = _connection(world.acme)
    urgent = definition_published(world.acme, _triggered("high"))
    batch_work = definition_published(world.acme, _triggered("normal"))
    body = _milestone()
    assert _post(world.acme, "carrier-hooks", body, _signed(body, secret)).status_code == 202

    with schema_context(world.acme.schema):
        assert dispatch_ready() == 1
        started = {run.definition_id: run for run in Run.objects.filter(definition__in=[urgent, batch_work])}
        assert started[urgent.pk].status == "succeeded" and started[urgent.pk].context["note"] == {"code": "delivered"}
        assert started[batch_work.pk].status == "queued" and started[batch_work.pk].lease_owner == ""  # the engine's


def test_a_dispatcher_takes_batch_after_batch_until_its_time_is_up_then_sends_itself_again(world, settings, monkeypatch):
    from connectors.tasks import dispatch_ready

    _connection_, secret = _connection(world.acme)
    for number in range(5):
        body = _milestone(f"evt-{number}", pro=f"PRO-{number}")
        assert _post(world.acme, "carrier-hooks", body, _signed(body, secret, webhook_id=f"msg-{number}")).status_code == 202
    sent: list[dict] = []
    monkeypatch.setattr(dispatch_ready, "apply_async", lambda **options: sent.append(options))
    settings.BATON_INBOX_BATCH = 2
    with schema_context(world.acme.schema):
        settings.BATON_INBOX_DISPATCH_SECONDS = 0  # time is up after the first batch
        assert dispatch_ready() == 2 and len(sent) == 1
        settings.BATON_INBOX_DISPATCH_SECONDS = 60
        assert dispatch_ready() == 3 and len(sent) == 1  # the rest in one task, nothing sent
        assert not EventDispatch.objects.exists()


def test_a_large_event_is_handed_on_in_a_batch_of_its_own_and_the_dispatcher_goes_on_with_the_rest(world, settings, monkeypatch):
    """A large body (a 214 file of a thousand events) is handed on alone: the delays in it wait
    for its events only, and the small events before it do not wait for it. Small ones batch."""
    from connectors.tasks import dispatch_ready

    _connection_, secret = _connection(world.acme)
    ids = []
    for number, padding in enumerate((0, 0, 3000, 0, 0, 3000)):
        body = _milestone(f"evt-w{number}", pro=f"PRO-W{number}", note="x" * padding)
        ids.append(_post(world.acme, "carrier-hooks", body, _signed(body, secret, webhook_id=f"msg-w{number}")).json()["event_id"])
    with schema_context(world.acme.schema):
        small = max(InboundEvent.objects.filter(pk__in=[ids[0], ids[1]]).values_list(Length("body"), flat=True))
        before = inbox.events_dispatch(limit=10, large=small + 100)
        assert before == {ids[0]: "delivered", ids[1]: "delivered"} and before.more  # up to the large one
        alone = inbox.events_dispatch(limit=10, large=small + 100)
        assert alone == {ids[2]: "delivered"} and alone.more
        assert set(EventDispatch.objects.values_list("event_id", flat=True)) == {ids[3], ids[4], ids[5]}
        sent: list[dict] = []
        monkeypatch.setattr(dispatch_ready, "apply_async", lambda **options: sent.append(options))
        settings.BATON_INBOX_LARGE_BYTES = small + 100
        assert dispatch_ready() == 3 and sent == []  # the small two, then the large one, in one task
        assert InboundEvent.objects.filter(pk__in=ids, status="delivered").count() == 6


def test_a_dispatcher_sends_no_second_wake_up_when_an_events_own_is_on_its_way(world, monkeypatch, django_capture_on_commit_callbacks):
    """An event that comes while the dispatcher works sends its own wake-up (the dispatcher dropped
    the token when it began); the dispatcher, finding rows left, sends none beside it. Two per
    task, each sending two, filled a busy day's queue with thousands of dispatchers."""
    from connectors import tasks
    from connectors.tasks import dispatch_ready

    _connection_, secret = _connection(world.acme)
    body = _milestone("evt-first", pro="PRO-first")
    assert _post(world.acme, "carrier-hooks", body, _signed(body, secret, webhook_id="msg-first")).status_code == 202
    sent: list[dict] = []
    monkeypatch.setattr(dispatch_ready, "apply_async", lambda **options: sent.append(options))
    batches = tasks._batches

    def batches_while_an_event_comes() -> tuple[int, bool]:
        handed = batches()
        late = _milestone("evt-late", pro="PRO-late")
        with django_capture_on_commit_callbacks(execute=True):  # the webhook's commit wakes the dispatcher
            assert _post(world.acme, "carrier-hooks", late, _signed(late, secret, webhook_id="msg-late")).status_code == 202
        return handed

    monkeypatch.setattr(tasks, "_batches", batches_while_an_event_comes)
    with schema_context(world.acme.schema):
        assert dispatch_ready() == 1 and EventDispatch.objects.count() == 1
    assert len(sent) == 1 and sent[0]["countdown"]  # the late event's own, with the gather time
    monkeypatch.setattr(tasks, "_batches", batches)
    with schema_context(world.acme.schema):
        assert dispatch_ready() == 1 and not EventDispatch.objects.exists()
    assert len(sent) == 1


def test_while_the_schemas_dispatcher_is_at_work_another_leaves_the_events_to_it(world):
    import psycopg
    from django.db import connection as django_connection

    from connectors.tasks import dispatch_ready

    _connection_, secret = _connection(world.acme)
    body = _milestone()
    assert _post(world.acme, "carrier-hooks", body, _signed(body, secret)).status_code == 202
    params = django_connection.get_connection_params()
    with psycopg.connect(
        dbname=params["dbname"], host=params.get("host"), port=params.get("port"), user=params.get("user"), autocommit=True
    ) as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s || ':dispatcher'))", [world.acme.schema])  # the one at work
        with schema_context(world.acme.schema):
            assert dispatch_ready() == 0 and EventDispatch.objects.count() == 1
        other.execute("SELECT pg_advisory_unlock(hashtext(%s || ':dispatcher'))", [world.acme.schema])
    with schema_context(world.acme.schema):
        assert dispatch_ready() == 1 and not EventDispatch.objects.exists()
