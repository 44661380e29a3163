"""Connector steps calling a tenant's own connections: the sandbox TMS reached at its base URL
with the action's path, the connection's auth and the step's idempotency key; disabled, unsafe
and unknown connections; health kept per connection."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django_tenants.utils import schema_context

from connectors.auth import credentials_seal
from connectors.guards import connection_health
from connectors.models import Connection
from connectors.outbound import ConnectionPort, guard_defaults
from connectors.sandbox import TmsSandbox
from tests.workflows.runs_setup import ORDER_SPEC, definition_published, run_advanced, run_started, run_timeline
from workflows.engine import FakeConnector, connector_port_set
from workflows.models import Incident

pytestmark = pytest.mark.django_db

TENDER_INPUT = {
    "shipment_reference": "$.input.order_id",
    "origin": {"city": "Reno", "country": "US"},
    "destination": {"city": "Denver", "country": "US"},
    "pickup_date": "2026-12-01",
    "weight_kg": 1200,
}


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(ORDER_SPEC)
    for step in spec["steps"]:
        if step["id"] == "tender":
            step["input"] = TENDER_INPUT
    return spec


@pytest.fixture
def port():
    fallback = FakeConnector()
    installed = ConnectionPort(fallback, *guard_defaults())
    previous = connector_port_set(installed)
    yield installed
    connector_port_set(previous)


@pytest.fixture
def tms():
    with TmsSandbox() as running:
        yield running


def _connection(tenant_world, base_url: str, **fields: Any) -> Connection:
    with schema_context(tenant_world.schema):
        return Connection.objects.create(
            key="live-tms",
            name="Live TMS",
            kind="tms",
            base_url=base_url,
            auth_method="api_key",
            auth_settings={"header": "X-Api-Key"},
            credentials=credentials_seal({"key": "tms-key-0042-secret"}),
            settings={"actions": {"tender_load": {"method": "POST", "path": "/api/tenders"}}},
            connect_timeout=2,
            read_timeout=5,
            **fields,
        )


def test_a_step_calls_the_tenants_connection_with_its_path_auth_and_run_key(world, port, tms):
    _connection(world.acme, tms.url)
    definition = definition_published(world.acme, _spec(), bindings={"carrier": "live-tms"})

    run = run_advanced(world.acme, run_started(world.acme, definition))

    assert run.status == "succeeded", run.error
    assert run.context["tender"]["tender_id"].startswith("TND-") and run.context["tender"]["shipment_reference"] == "SO-1"
    (request,) = [request for request in tms.requests if request.path == "/api/tenders"]
    assert request.idempotency_key == f"{run.pk}:tender"
    assert {name.lower(): value for name, value in request.headers.items()}["x-api-key"] == "tms-key-0042-secret"
    assert port.fallback.effects == []  # the in-process fake was not used
    health = connection_health(world.acme.schema, "live-tms")
    assert (health.calls, health.failures) == (1, 0) and health.last_success_at is not None
    # A repeated call with the same key (a worker died before its step committed) is the same tender.
    again = port.call(
        tenant=world.acme.schema,
        connection="live-tms",
        action="tender_load",
        payload=json.loads(json.dumps(request.body)),
        idempotency_key=f"{run.pk}:tender",
    )
    assert again["tender_id"] == run.context["tender"]["tender_id"] and len(tms.effects_for("tender")) <= 1


def test_a_partner_refusal_names_the_connection_action_and_answer(world, port, tms):
    _connection(world.acme, tms.url)
    spec = _spec()
    for step in spec["steps"]:
        if step["id"] == "tender":
            step["input"] = {**TENDER_INPUT, "weight_kg": -5}
    definition = definition_published(world.acme, spec, bindings={"carrier": "live-tms"})
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert run.status == "failed" and "live-tms tender_load refused the call: HTTP 4" in run.error
    health = connection_health(world.acme.schema, "live-tms")
    assert (health.calls, health.failures) == (1, 1) and "HTTP 4" in health.last_error


@pytest.mark.parametrize(
    ("base_url", "fields", "kind", "reason"),
    [
        ("http://10.20.30.40:8080", {}, "Refused", "10.20.30.40 is a private address"),
        ("{tms}", {"enabled": False}, "ConnectionDisabled", "live-tms is disabled"),
    ],
)
def test_a_connection_that_must_not_be_called_fails_the_step_without_a_call(world, port, tms, base_url, fields, kind, reason):
    _connection(world.acme, base_url.format(tms=tms.url), **fields)
    definition = definition_published(world.acme, _spec(), bindings={"carrier": "live-tms"})
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert run.status == "failed" and reason in run.error
    with schema_context(world.acme.schema):
        assert Incident.objects.get(run=run, status="open").error_class == kind
    assert not [request for request in tms.requests if request.path == "/api/tenders"]


def test_a_name_with_no_connection_goes_to_the_fallback(world, port):
    definition = definition_published(world.acme)  # binds "carrier" to "acme-tms", which is no connection here
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert run.status == "succeeded" and [step for step, *_ in run_timeline(world.acme, run)][-2] == "tender"
    assert [effect["connection"] for effect in port.fallback.effects] == ["acme-tms"]
