"""Circuit breakers and rate limits per (tenant, connection), shared through the real Redis, and
how an outbound call and a connector step's retry go through them."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from django_tenants.utils import schema_context
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors import guards
from connectors.guards import CircuitOpen, CircuitPolicy, RateLimit, RateLimited, circuit_admit, circuit_record, circuit_state, rate_take
from connectors.outbound import CIRCUITS_OPENED, OUTBOUND_CALLS, HttpConnectorPort, OutboundCallFailed, retry_after_seconds
from tests.fake_partner import fake_partner
from tests.workflows.runs_setup import ORDER_SPEC, definition_published, run_advanced, run_started
from workflows.engine import ConnectorError, FakeConnector, connector_port_set
from workflows.models import Timer

POLICY = CircuitPolicy(failures_to_open=3, open_seconds=0.5, probe_seconds=0.5)


@pytest.fixture
def conn() -> str:
    """A connection name of the test's own, so guard state never leaks between tests."""
    return f"conn-{uuid.uuid4().hex[:8]}"


def _fail(conn: str, times: int, probe: bool = False) -> str:
    state = ""
    for _ in range(times):
        state = circuit_record("t_guard", conn, POLICY, ok=False, probe=probe)
    return state


def test_the_circuit_opens_after_consecutive_failures_and_refuses_with_the_time_left(conn):
    assert circuit_admit("t_guard", conn, POLICY) is False
    assert _fail(conn, 2) == "closed"
    assert _fail(conn, 1) == "opened"
    assert _fail(conn, 1) == "open"  # already open: not opened again
    with pytest.raises(CircuitOpen) as refused:
        circuit_admit("t_guard", conn, POLICY)
    assert refused.value.kind == "CircuitOpen" and 0 < refused.value.retry_after <= 0.5
    state = circuit_state("t_guard", conn, POLICY)
    assert (state.state, state.failures) == ("open", 4) and state.retry_at is not None
    assert circuit_state("t_other", conn, POLICY).state == "closed"  # another tenant's circuit is its own


def test_a_success_while_closed_starts_the_count_again(conn):
    _fail(conn, 2)
    circuit_record("t_guard", conn, POLICY, ok=True, probe=False)
    assert _fail(conn, 2) == "closed"


def test_after_the_open_period_one_probe_goes_and_its_success_closes_the_circuit(conn):
    _fail(conn, 3)
    time.sleep(0.55)
    assert circuit_admit("t_guard", conn, POLICY) is True  # the probe
    with pytest.raises(CircuitOpen):
        circuit_admit("t_guard", conn, POLICY)  # a second caller waits for the probe's answer
    assert circuit_record("t_guard", conn, POLICY, ok=True, probe=True) == "closed"
    assert circuit_admit("t_guard", conn, POLICY) is False
    assert circuit_state("t_guard", conn, POLICY).failures == 0


def test_a_failed_probe_opens_the_circuit_for_another_period(conn):
    _fail(conn, 3)
    time.sleep(0.55)
    assert circuit_admit("t_guard", conn, POLICY) is True
    assert _fail(conn, 1, probe=True) == "opened"
    with pytest.raises(CircuitOpen) as refused:
        circuit_admit("t_guard", conn, POLICY)
    assert refused.value.retry_after > 0.3  # a new period, not what was left of the old one


def test_a_late_success_of_a_call_admitted_before_the_circuit_opened_does_not_close_it(conn):
    _fail(conn, 3)
    assert circuit_record("t_guard", conn, POLICY, ok=True, probe=False) == "open"
    with pytest.raises(CircuitOpen):
        circuit_admit("t_guard", conn, POLICY)


def test_the_rate_limit_lets_a_burst_through_then_spaces_turns_and_refuses_long_waits(conn):
    limit = RateLimit(rate=5, burst=2, max_wait=1.0)
    assert rate_take("t_guard", conn, limit) == 0 and rate_take("t_guard", conn, limit) == 0
    third = rate_take("t_guard", conn, limit)
    assert 0.15 < third <= 0.2  # reserved: one turn every 0.2 s
    strict = RateLimit(rate=5, burst=2, max_wait=0.1)
    with pytest.raises(RateLimited) as refused:
        rate_take("t_guard", conn, strict)
    assert refused.value.kind == "RateLimited" and 0.3 < refused.value.retry_after <= 0.4
    with pytest.raises(RateLimited) as again:
        rate_take("t_guard", conn, strict)  # the refusal took no turn
    assert again.value.retry_after <= refused.value.retry_after
    assert rate_take("t_guard", conn, RateLimit(rate=0)) == 0  # no limit set


def test_without_redis_the_guards_let_calls_through(conn, monkeypatch):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(guards, "_redis", lambda: dead)
    assert circuit_admit("t_guard", conn, POLICY) is False
    assert circuit_record("t_guard", conn, POLICY, ok=False, probe=False) == "closed"
    assert rate_take("t_guard", conn, RateLimit(rate=1, burst=1, max_wait=0)) == 0


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    from email.utils import format_datetime

    later = timezone.now() + timedelta(seconds=90)
    assert 85 <= retry_after_seconds(format_datetime(later, usegmt=True)) <= 90


def test_an_unwell_partner_opens_the_circuit_and_is_not_called_while_it_is_open(conn):
    with fake_partner() as partner:
        port = HttpConnectorPort(partner.url, timeout=2, circuit=POLICY)
        partner.fail_next(times=3, status=503)
        for _ in range(3):
            with pytest.raises(OutboundCallFailed):
                port.call(tenant="t_guard", connection=conn, action="tender", payload={}, idempotency_key=uuid.uuid4().hex)
        with pytest.raises(CircuitOpen):
            port.call(tenant="t_guard", connection=conn, action="tender", payload={}, idempotency_key="k-open")
        assert partner.request_count() == 3
        assert OUTBOUND_CALLS.labels("CircuitOpen")._value.get() >= 1 and CIRCUITS_OPENED._value.get() >= 1
        time.sleep(0.55)
        assert port.call(tenant="t_guard", connection=conn, action="tender", payload={}, idempotency_key="k-probe")["accepted"]
        assert circuit_state("t_guard", conn, POLICY).state == "closed"


def test_a_refused_call_says_when_to_come_back_and_does_not_count_against_the_partner(conn):
    with fake_partner() as partner:
        port = HttpConnectorPort(partner.url, timeout=2, circuit=POLICY)
        partner.answer_next(429, {"title": "slow down"}, times=4, headers={"Retry-After": "42"})
        for _ in range(4):
            with pytest.raises(OutboundCallFailed) as refused:
                port.call(tenant="t_guard", connection=conn, action="tender", payload={}, idempotency_key=uuid.uuid4().hex)
            assert (refused.value.kind, refused.value.retry_after) == ("RateLimited", 42)
        assert circuit_state("t_guard", conn, POLICY).state == "closed"


@pytest.mark.django_db
def test_a_connector_step_retries_no_sooner_than_the_partner_said(world):
    spec = {**ORDER_SPEC, "steps": [dict(step) for step in ORDER_SPEC["steps"]]}
    for step in spec["steps"]:
        if step["id"] == "tender":
            step["retry"] = {"attempts": 3, "backoff_seconds": 1}
    definition = definition_published(world.acme, spec)
    fake = FakeConnector()
    fake.fail_next("tender_load", ConnectorError("come back later", kind="RateLimited", retry_after=600))
    before = timezone.now()
    previous = connector_port_set(fake)
    try:
        run = run_advanced(world.acme, run_started(world.acme, definition))
    finally:
        connector_port_set(previous)
    assert run.status == "waiting"
    with schema_context(world.acme.schema):
        timer = Timer.objects.get(run=run, kind="retry")
    assert timer.due_at >= before + timedelta(seconds=600)


# --- circuit gauges (`/metrics`) ---------------------------------------------------------------------


def test_circuits_are_counted_open_then_half_open_then_gone_when_the_probe_closes_them(conn):
    before = guards.circuits_count()
    _fail(conn, 3)
    assert guards.circuits_count() == {"open": before["open"] + 1, "half_open": before["half_open"]}
    time.sleep(0.55)
    assert circuit_admit("t_guard", conn, POLICY) is True  # the probe
    assert guards.circuits_count() == {"open": before["open"], "half_open": before["half_open"] + 1}
    assert circuit_record("t_guard", conn, POLICY, ok=True, probe=True) == "closed"
    assert guards.circuits_count() == before


def test_a_circuit_that_fails_below_the_threshold_or_closes_by_expiring_is_not_counted(conn):
    before = guards.circuits_count()
    _fail(conn, 2)  # failures counted, circuit still closed
    assert guards.circuits_count() == before
    _fail(conn, 1)
    assert guards.circuits_count()["open"] == before["open"] + 1
    guards._redis().delete(guards._key("circuit", "t_guard", conn))  # what KEY_SECONDS of quiet does
    assert guards.circuits_count() == before
    assert guards._redis().zcard(guards._circuits_not_closed_key()) == before["open"] + before["half_open"]  # the index forgot it


def test_recording_a_call_stays_one_redis_round_trip_when_it_opens_or_closes_the_circuit(conn, monkeypatch):
    client = guards._redis()
    sent: list[str] = []

    class Counting:
        def eval(self, *arguments):
            sent.append("eval")
            return client.eval(*arguments)

    before = guards.circuits_count()
    monkeypatch.setattr(guards, "_redis", lambda: Counting())
    outcomes = [guards.call_record("t_guard", conn, POLICY, circuit_ok=False, probe=False, error="HTTP 503") for _ in range(3)]
    assert outcomes[-1] == "opened" and len(sent) == 3
    assert guards.call_record("t_guard", conn, POLICY, circuit_ok=True, probe=True) == "closed" and len(sent) == 4
    monkeypatch.undo()
    assert guards.circuits_count() == before


@pytest.mark.django_db
def test_metrics_count_circuits_by_state_only_never_by_tenant_or_connection(world, conn):
    from tests.workflows.test_metrics import gauge, scrape

    before = guards.circuits_count()
    _fail(conn, 3)
    for _ in range(3):
        circuit_record(world.acme.schema, f"{conn}-acme", POLICY, ok=False, probe=False)
    samples, families = scrape(world.acme.host)  # from a tenant's host too: totals, not that tenant's
    assert gauge(samples, "baton_connector_circuits_up") == 1
    assert gauge(samples, "baton_connector_circuits", state="open") == before["open"] + 2
    assert gauge(samples, "baton_connector_circuits", state="half_open") == before["half_open"]
    circuits = [sample for family in families if family.name.startswith("baton_connector_circuits") for sample in family.samples]
    assert {tuple(sample.labels) for sample in circuits} <= {(), ("state",)}
    assert {sample.labels["state"] for sample in circuits if sample.labels} == {"open", "half_open"}


@pytest.mark.django_db
def test_metrics_without_redis_say_the_circuits_are_unknown_not_closed(world, monkeypatch):
    from tests.workflows.test_metrics import gauge, scrape

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(guards, "_redis", lambda: dead)
    samples, families = scrape()
    assert gauge(samples, "baton_connector_circuits_up") == 0
    assert "baton_connector_circuits" not in {family.name for family in families}
    assert gauge(samples, "baton_inbox_gauges_up") == 1  # the other gauges are read on their own
