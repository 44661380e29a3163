"""The inbox with a real Celery worker: a signed webhook's dispatch runs there and wakes the
waiting run, which finishes; with the dispatch task lost (broker down at commit), the event waits
in the inbox until the sweeper sends it again, and nothing is applied twice."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django_tenants.utils import schema_context

from connectors import inbox
from connectors.inbox import connection_inbound_configure
from connectors.models import Connection, EventDispatch, InboundEvent
from connectors.signatures import STANDARD_WEBHOOKS
from governance.services import Actor
from tests.conftest import host_client
from tests.processes import celery_worker
from tests.workflows.runs_setup import definition_published, run_advanced, run_started, runs_delete
from workflows.models import Run

pytestmark = pytest.mark.worker

SPEC = {
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


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_setup, django_db_blocker):
    with celery_worker(tmp_path_factory.mktemp("inbox-worker") / "worker.log") as process:
        yield process


@pytest.fixture
def hooks(world, committed):
    key = f"hooks-{uuid.uuid4().hex[:6]}"
    with schema_context(world.acme.schema):
        connection = Connection.objects.create(key=key, name="Carrier hooks", kind="carrier", base_url="https://carrier.example")
        secret = connection_inbound_configure(connection=connection, scheme="standard_webhooks", actor=Actor.system("tests"))
    definition = definition_published(world.acme, SPEC)
    yield key, secret, definition
    runs_delete(world.acme, definition)
    with schema_context(world.acme.schema):
        InboundEvent.objects.filter(connection=connection).delete()
        connection.delete()


def _deliver(world, key: str, secret: str, pro: str, webhook_id: str):
    body = json.dumps(
        {"event_type": "shipment.milestone", "event_id": webhook_id, "correlation": {"pro": pro}, "payload": {"code": "delivered"}}
    )
    headers = STANDARD_WEBHOOKS.sign(body.encode(), secrets=[secret], webhook_id=webhook_id)
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return host_client(world.acme.host).post(f"/hooks/{key}", data=body, content_type="application/json", **extra)


def _until(check, what: str, timeout: float = 30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(what)


def _run(world, run_id: int) -> Run:
    with schema_context(world.acme.schema):
        return Run.objects.get(pk=run_id)


def test_a_webhook_is_dispatched_on_the_worker_and_its_run_finishes(world, hooks, worker, monkeypatch):
    key, secret, definition = hooks
    from workflows import runs as runs_module

    monkeypatch.setattr(runs_module, "_wake", lambda schema: None)  # the test advances the run to its wait itself
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"pro": "PRO-W1"}))
    assert run.status == "waiting"
    monkeypatch.undo()

    answer = _deliver(world, key, secret, "PRO-W1", "msg-w1")
    assert answer.status_code == 202

    _until(lambda: _run(world, run.pk).status == "succeeded", "the run did not finish after its event was dispatched on the worker")
    with schema_context(world.acme.schema):
        event = InboundEvent.objects.get(pk=answer.json()["event_id"])
        assert event.status == "delivered" and event.canonical[0]["woken_runs"] == [run.pk]
        assert not EventDispatch.objects.filter(event=event).exists()


def test_an_event_whose_dispatch_was_never_sent_is_swept_to_the_worker_once(world, hooks, worker, monkeypatch):
    key, secret, definition = hooks
    from workflows import runs as runs_module

    monkeypatch.setattr(runs_module, "_wake", lambda schema: None)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"pro": "PRO-W2"}))
    monkeypatch.setattr(inbox, "dispatch_wake", lambda schema: None)  # the broker was down at commit

    answer = _deliver(world, key, secret, "PRO-W2", "msg-w2")
    assert answer.status_code == 202  # stored and answered all the same
    time.sleep(1.0)
    with schema_context(world.acme.schema):
        assert InboundEvent.objects.get(pk=answer.json()["event_id"]).status == "received"
    monkeypatch.undo()
    with schema_context(world.acme.schema):
        assert inbox.dispatch_sweep(older_than=0) == 1
        assert inbox.dispatch_sweep(older_than=0) in (0, 1)  # a second sweep before the worker took it: harmless

    _until(lambda: _run(world, run.pk).status == "succeeded", "the swept event did not wake its run")
    with schema_context(world.acme.schema):
        event = InboundEvent.objects.get(pk=answer.json()["event_id"])
        assert event.status == "delivered" and event.canonical[0]["woken_runs"] == [run.pk]
