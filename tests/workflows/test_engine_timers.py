"""Retries, timers, `wait_until` and the reaper, in process (no worker)."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.workflows.runs_setup import ORDER_SPEC, SYSTEM, definition_published, run_advanced, run_started, run_timeline, runs_delete
from workflows import tasks
from workflows.engine import (
    ConnectorError,
    retry_delay,
    run_advance,
    runs_claim,
    runs_reap,
    timers_fire,
    timers_fire_due,
)
from workflows.models import Run, Timer
from workflows.runs import run_start

RETRY = {"attempts": 3, "backoff_seconds": 10, "non_retryable": ["AuthError"]}


def _retry_spec(policy: dict) -> dict:
    spec = copy.deepcopy(ORDER_SPEC)
    for step in spec["steps"]:
        if step["id"] == "tender":
            step["retry"] = policy
    return spec


def _wait_spec(until: str, business_time: bool = False) -> dict:
    wait = {"id": "wait", "kind": "wait_until", "until": until, "next": "done"}
    if business_time:
        wait["business_time"] = True
    return {"start": "wait", "steps": [wait, {"id": "done", "kind": "end", "outcome": "succeeded"}]}


def _timers(world, run: Run) -> list[Timer]:
    with schema_context(world.acme.schema):
        return list(Timer.objects.filter(run=run).order_by("pk"))


def _fire(world, now: datetime) -> int:
    with schema_context(world.acme.schema):
        return timers_fire_due(now=now)


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failing_connector_step_with_attempts_left_parks_the_run_on_a_retry_timer(world, fake):
    fake.fail_next("tender_load", ConnectorError("carrier timed out"))
    definition = definition_published(world.acme, _retry_spec(RETRY))
    before = timezone.now()
    run = run_advanced(world.acme, run_started(world.acme, definition))
    after = timezone.now()
    assert (run.status, run.current_step, run.ready_at, run.lease_owner, run.finished_at) == ("waiting", "tender", None, "", None)
    assert run.error.startswith("Step 'tender' (connector) failed: connector acme-tms tender_load failed: carrier timed out")
    assert "(attempt 1 of 3; next attempt at " in run.error
    assert run_timeline(world.acme, run) == [("check", "succeeded", 1), ("price", "succeeded", 1), ("tender", "failed", 1)]
    (timer,) = _timers(world, run)
    assert (timer.kind, timer.step_id, timer.fired_at) == ("retry", "tender", None)
    assert before + timedelta(seconds=10) <= timer.due_at <= after + timedelta(seconds=10)
    with schema_context(world.acme.schema):
        assert run.pk not in runs_claim(owner="worker-1", limit=100)

    # Not due yet: nothing fires. Due: the run is ready again and the second attempt succeeds.
    assert _fire(world, timer.due_at - timedelta(seconds=1)) == 0
    assert _fire(world, timer.due_at) == 1
    with schema_context(world.acme.schema):
        run.refresh_from_db()
        assert (run.status, run.error) == ("running", "") and run.ready_at is not None
        assert Timer.objects.get(pk=timer.pk).fired_at == timer.due_at
    run = run_advanced(world.acme, run)
    assert (run.status, run.error) == ("succeeded", "")
    assert run_timeline(world.acme, run)[2:] == [("tender", "failed", 1), ("tender", "succeeded", 2), ("done", "succeeded", 1)]
    assert len(fake.calls_for(f"{run.pk}:tender")) == 1
    assert _fire(world, timer.due_at + timedelta(hours=1)) == 0  # fired once only


@pytest.mark.django_db
def test_exhausted_attempts_fail_the_run_with_the_last_error_after_doubling_backoff(world, fake):
    fake.fail_next("tender_load", ConnectorError("carrier timed out"), times=2)
    fake.fail_next("tender_load", ConnectorError("carrier refused"))
    definition = definition_published(world.acme, _retry_spec(RETRY))
    run = run_advanced(world.acme, run_started(world.acme, definition))
    for _ in range(2):
        (timer,) = [timer for timer in _timers(world, run) if timer.fired_at is None]
        assert _fire(world, timer.due_at) == 1
        run = run_advanced(world.acme, run)
    assert (run.status, run.ready_at) == ("failed", None) and run.finished_at
    assert run.error == "Step 'tender' (connector) failed after 3 attempts: connector acme-tms tender_load failed: carrier refused"
    assert [attempt for step, status, attempt in run_timeline(world.acme, run) if step == "tender"] == [1, 2, 3]
    delays = [round((timer.due_at - timer.created_at).total_seconds()) for timer in _timers(world, run)]
    assert delays == [10, 20]
    assert fake.calls_for(f"{run.pk}:tender") == []


@pytest.mark.django_db
def test_a_non_retryable_error_class_fails_at_once(world, fake):
    fake.fail_next("tender_load", ConnectorError("bad credentials", kind="AuthError"))
    definition = definition_published(world.acme, _retry_spec(RETRY))
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert run.status == "failed"
    assert run.error == (
        "Step 'tender' (connector) failed: connector acme-tms tender_load failed: bad credentials (AuthError is not retryable)"
    )
    assert _timers(world, run) == []


@pytest.mark.django_db
def test_without_a_retry_policy_a_connector_error_fails_the_run(world, fake):
    fake.fail_next("tender_load", ConnectorError("carrier timed out"))
    run = run_advanced(world.acme, run_started(world.acme, definition_published(world.acme)))
    assert (run.status, run.error) == (
        "failed",
        "Step 'tender' (connector) failed: connector acme-tms tender_load failed: carrier timed out",
    )
    assert _timers(world, run) == []


def test_backoff_doubles_up_to_the_cap_and_full_jitter_stays_within_it():
    policy = {"backoff_seconds": 2, "max_backoff_seconds": 30}
    assert [retry_delay(policy, failures) for failures in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    assert retry_delay({"backoff_seconds": 5}, 20) == 3600  # the default cap
    jittered = {**policy, "jitter": True}
    for failures in range(1, 7):
        bound = min(30, 2 * 2 ** (failures - 1))
        samples = [retry_delay(jittered, failures) for _ in range(300)]
        assert all(0 <= sample <= bound for sample in samples)
        assert max(samples) > bound / 2 and min(samples) < bound / 2  # spread over the range, not fixed
    assert retry_delay(jittered, 3, rand=lambda: 1.0) == 8 and retry_delay(jittered, 3, rand=lambda: 0.0) == 0


@pytest.mark.django_db
def test_a_jittered_retry_timer_is_due_within_the_backoff(world, fake):
    fake.fail_next("tender_load", ConnectorError("carrier timed out"))
    definition = definition_published(world.acme, _retry_spec({**RETRY, "jitter": True}))
    before = timezone.now()
    run = run_advanced(world.acme, run_started(world.acme, definition))
    (timer,) = _timers(world, run)
    assert before <= timer.due_at <= timezone.now() + timedelta(seconds=10)


# --- wait_until ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_wait_until_a_duration_parks_the_run_until_its_timer_fires(world, fake):
    definition = definition_published(world.acme, _wait_spec("PT1H"))
    before = timezone.now()
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert (run.status, run.current_step, run.ready_at, run.error, run.finished_at) == ("waiting", "wait", None, "", None)
    assert run.waiting_for.startswith("waiting until ")
    assert run_timeline(world.acme, run) == []
    (timer,) = _timers(world, run)
    assert timer.kind == "wait_until" and before + timedelta(hours=1) <= timer.due_at <= timezone.now() + timedelta(hours=1)
    assert _fire(world, before + timedelta(minutes=30)) == 0
    assert _fire(world, before + timedelta(hours=2)) == 1
    run = run_advanced(world.acme, run)
    assert run.status == "succeeded"
    assert run_timeline(world.acme, run) == [("wait", "succeeded", 1), ("done", "succeeded", 1)]
    output = run.context["wait"]
    assert (output["until"], output["due_at"], output["timer"]) == ("PT1H", timer.due_at.isoformat(), timer.pk)
    assert output["business_time"] is False


@pytest.mark.django_db
def test_wait_until_an_absolute_moment(world, fake):
    definition = definition_published(world.acme, _wait_spec("2031-01-31T06:00:00+01:00"))
    run = run_advanced(world.acme, run_started(world.acme, definition))
    (timer,) = _timers(world, run)
    assert timer.due_at == datetime(2031, 1, 31, 5, 0, tzinfo=UTC)
    assert _fire(world, datetime(2031, 1, 31, 5, 0, tzinfo=UTC)) == 1
    assert run_advanced(world.acme, run).status == "succeeded"


def test_two_concurrent_firings_fire_each_timer_once(world, committed, fake):
    definition = definition_published(world.acme, _wait_spec("PT1H"))
    try:
        with schema_context(world.acme.schema):
            runs = [run_start(definition=definition, input={}, trigger="api", actor=SYSTEM)[0] for _ in range(12)]
            assert {run.pk for run in runs} <= set(runs_claim(owner="w", limit=100))
            for run in runs:
                assert run_advance(run_id=run.pk, owner="w") == "waiting"
            ours = set(Timer.objects.filter(run__in=runs).values_list("pk", flat=True))
        assert len(ours) == 12
        later = timezone.now() + timedelta(hours=2)
        barrier = threading.Barrier(2)
        fired: dict[str, list[int]] = {}

        def fire(name: str):
            try:
                with schema_context(world.acme.schema):
                    barrier.wait(timeout=10)
                    fired[name] = timers_fire(now=later, limit=7)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=fire, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        first, second = set(fired["a"]), set(fired["b"])
        assert not first & second
        with schema_context(world.acme.schema):
            rest = set(timers_fire(now=later))
            assert not rest & (first | second)
            assert ours <= first | second | rest
            assert all(timer.fired_at == later for timer in Timer.objects.filter(pk__in=ours))
            assert set(Run.objects.filter(pk__in=[run.pk for run in runs]).values_list("status", flat=True)) == {"running"}
    finally:
        runs_delete(world.acme, definition)


# --- the reaper and the periodic task ------------------------------------------------------------


@pytest.mark.django_db
def test_the_reaper_re_readies_a_run_whose_worker_died_and_advancing_completes_it(world, fake):
    definition = definition_published(world.acme)
    run = run_started(world.acme, definition)
    with schema_context(world.acme.schema):
        now = timezone.now()
        assert runs_reap(now=now) == 0  # ready for a moment only: the wake-up it got is enough
        assert run.pk in runs_claim(owner="dead-worker", limit=100)
        Run.objects.filter(pk=run.pk).update(status="running", ready_at=None)  # died mid-step
        assert runs_reap(now=now) == 0  # the lease is still running
        Run.objects.filter(pk=run.pk).update(lease_expires_at=now - timedelta(seconds=1))
        assert runs_reap(now=now) == 1
        run.refresh_from_db()
        assert (run.lease_owner, run.lease_expires_at, run.ready_at) == ("", None, now)
        assert runs_reap(now=now + timedelta(seconds=31)) == 1  # ready and waited too long: wake again
        assert run.pk in runs_claim(owner="me", limit=100)
        assert run_advance(run_id=run.pk, owner="me") == "succeeded"
        assert runs_reap(now=now + timedelta(minutes=5)) == 0


@pytest.mark.django_db
def test_the_periodic_task_fires_reaps_and_wakes_the_engine_only_when_needed(world, fake, monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr(tasks.advance, "apply_async", lambda **kwargs: sent.append(kwargs))
    with schema_context(world.acme.schema):
        assert tasks.fire_timers() == {"fired": 0, "reaped": 0}
    assert sent == []
    definition = definition_published(world.acme, _wait_spec("PT1S"))
    run = run_advanced(world.acme, run_started(world.acme, definition))
    with schema_context(world.acme.schema):
        Timer.objects.filter(run=run).update(due_at=timezone.now() - timedelta(seconds=1))
        assert tasks.fire_timers() == {"fired": 1, "reaped": 0}
    assert sent == [{"headers": {"_schema_name": world.acme.schema}}]


@pytest.mark.django_db
def test_the_fan_out_sends_fire_timers_to_ready_tenants(world, monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr(tasks.fire_timers, "apply_async", lambda **kwargs: sent.append(kwargs))
    schemas = tasks.dispatch_fire_timers()
    assert world.acme.schema in schemas and world.globex.schema in schemas
    assert [kwargs["headers"]["_schema_name"] for kwargs in sent] == schemas
