"""The batch path (`workflows.engine.runs_advance`): a claimed batch advances in rounds, one step
per run per round, written together; what cannot go in a round goes one run at a time."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from tests.workflows.runs_setup import ORDER, ORDER_SPEC, definition_published, run_started, run_timeline
from workflows import engine
from workflows.engine import ConnectorError, connector_port_set, runs_advance_ready, runs_claim
from workflows.models import Run, StepExecution, Timer

FOUR_STEPS = [("check", "succeeded", 1), ("price", "succeeded", 1), ("tender", "succeeded", 1), ("done", "succeeded", 1)]


def _spec_with(step_changes: dict[str, dict], start: str | None = None, extra: list[dict] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(ORDER_SPEC)
    for step in spec["steps"]:
        step.update(step_changes.get(step["id"], {}))
    spec["steps"].extend(extra or [])
    if start:
        spec["start"] = start
    return spec


def _advance_all(world, owner: str = "batch") -> dict[int, str]:
    with schema_context(world.acme.schema):
        return runs_advance_ready(owner=owner, limit=100, lease_seconds=60)


@pytest.mark.django_db
def test_a_mixed_batch_ends_each_run_as_one_at_a_time_would(world, fake):
    plain = definition_published(world.acme)
    retrying = definition_published(world.acme, _spec_with({"tender": {"retry": {"attempts": 3, "backoff_seconds": 60}}}))
    waiting = definition_published(
        world.acme, _spec_with({}, start="pause", extra=[{"id": "pause", "kind": "wait_until", "until": "PT1H", "next": "check"}])
    )
    failing = definition_published(world.acme, _spec_with({"done": {"outcome": "failed"}}))
    small = [run_started(world.acme, plain, {**ORDER, "order_id": f"SO-{n}"}) for n in range(6)]
    large = run_started(world.acme, plain, {**ORDER, "total": 5000})
    retried = [run_started(world.acme, retrying, {**ORDER, "order_id": f"RT-{n}"}) for n in range(2)]
    parked = run_started(world.acme, waiting)
    failed = run_started(world.acme, failing)
    fake.fail_next("tender_load", ConnectorError("carrier down", kind="Unavailable"), times=1)

    statuses = _advance_all(world)

    # A round's calls go out together: whichever tender call came first got the failure.
    (first,) = [run.pk for run in small if statuses[run.pk] != "succeeded"]
    assert statuses[first] == "failed"  # no retry policy on `plain`: an incident
    for run in small:
        if run.pk != first:
            assert statuses[run.pk] == "succeeded" and run_timeline(world.acme, run) == FOUR_STEPS
    assert run_timeline(world.acme, Run(pk=first)) == FOUR_STEPS[:2] + [("tender", "failed", 1)]
    with schema_context(world.acme.schema):
        assert Run.objects.get(pk=first).incidents.filter(status="open", step_id="tender").count() == 1
        assert Run.objects.get(pk=large.pk).context["hold"]["template"] == "large-order"
        assert list(Timer.objects.filter(run=parked).values_list("kind", flat=True)) == ["wait_until"]
    assert statuses[large.pk] == "succeeded" and [step for step, *_ in run_timeline(world.acme, large)] == ["check", "hold"]
    assert all(statuses[run.pk] == "succeeded" for run in retried)
    assert statuses[parked.pk] == "waiting" and run_timeline(world.acme, parked) == []
    assert statuses[failed.pk] == "failed"
    assert len(fake.effects) == len(small) - 1 + len(retried) + 1  # one effect per tender that went through


@pytest.mark.django_db
def test_a_connector_failure_with_attempts_left_parks_that_run_on_a_retry_timer_and_the_others_go_on(world, fake):
    retrying = definition_published(world.acme, _spec_with({"tender": {"retry": {"attempts": 3, "backoff_seconds": 60}}}))
    runs = [run_started(world.acme, retrying, {**ORDER, "order_id": f"RT-{n}"}) for n in range(4)]
    fake.fail_next("tender_load", ConnectorError("carrier down", kind="Unavailable"), times=1)

    statuses = _advance_all(world)

    (first,) = [run for run in runs if statuses[run.pk] != "succeeded"]
    assert statuses[first.pk] == "waiting" and sorted(statuses.values()) == ["succeeded", "succeeded", "succeeded", "waiting"]
    with schema_context(world.acme.schema):
        first.refresh_from_db()
        assert "attempt 1 of 3" in first.error and first.incidents.count() == 0
        assert list(Timer.objects.filter(run=first).values_list("kind", flat=True)) == ["retry"]
    assert run_timeline(world.acme, first) == FOUR_STEPS[:2] + [("tender", "failed", 1)]


@pytest.mark.django_db
def test_a_round_writes_its_steps_with_one_copy_whatever_the_batch_size(world, fake, monkeypatch):
    from workflows import engine

    definition = definition_published(world.acme)
    copies: list[tuple[str, int]] = []
    real = engine.rows_copy

    def counted(table, columns, rows):
        rows = list(rows)
        copies.append((table, len(rows)))
        return real(table, columns, rows)

    monkeypatch.setattr(engine, "rows_copy", counted)

    def writes_for(count: int) -> list[tuple[str, int]]:
        copies.clear()
        for n in range(count):
            run_started(world.acme, definition, {**ORDER, "order_id": f"N{count}-{n}"})
        with schema_context(world.acme.schema), CaptureQueriesContext(connection) as queries:
            statuses = runs_advance_ready(owner="batch", limit=100, lease_seconds=60)
        assert list(statuses.values()) == ["succeeded"] * count
        assert not any('INSERT INTO "workflows_stepexecution"' in query["sql"] for query in queries.captured_queries)
        return list(copies)

    assert writes_for(2) == [("workflows_stepexecution", 2)] * 4  # one per round, four steps
    assert writes_for(20) == [("workflows_stepexecution", 20)] * 4
    with schema_context(world.acme.schema):
        assert StepExecution.objects.filter(status="succeeded").count() == 88  # 22 runs, four steps each


@pytest.mark.django_db
def test_a_failed_round_falls_back_to_one_run_at_a_time_with_no_effect_twice(world, fake, monkeypatch):
    definition = definition_published(world.acme)
    runs = [run_started(world.acme, definition, {**ORDER, "order_id": f"FB-{n}"}) for n in range(5)]
    real_write = engine._runs_write
    calls = {"n": 0}

    def write_failing_in_the_third_round(moved):
        calls["n"] += 1
        if calls["n"] == 3:  # the tender round: the calls were made, then the transaction fails
            raise DatabaseError("lost the connection")
        real_write(moved)

    monkeypatch.setattr(engine, "_runs_write", write_failing_in_the_third_round)
    statuses = _advance_all(world)

    assert calls["n"] >= 3 and [statuses[run.pk] for run in runs] == ["succeeded"] * 5
    for run in runs:
        assert run_timeline(world.acme, run) == FOUR_STEPS
        assert len(fake.calls_for(f"{run.pk}:tender")) == 1
    assert len(fake.effects) == 5


@pytest.mark.django_db
def test_an_advance_past_its_time_budget_gives_the_rest_back_ready_after_one_round(world, fake, settings):
    settings.BATON_ENGINE_ADVANCE_SECONDS = 0  # every round is past the budget: one round per advance
    definition = definition_published(world.acme)
    runs = [run_started(world.acme, definition, {**ORDER, "order_id": f"TB-{n}"}) for n in range(3)]
    statuses = _advance_all(world)
    assert [statuses[run.pk] for run in runs] == ["running"] * 3
    with schema_context(world.acme.schema):
        for run in Run.objects.filter(pk__in=[run.pk for run in runs]):
            assert (run.current_step, run.lease_owner, run.ready_at is not None) == ("price", "", True)
    for _ in range(3):
        statuses = _advance_all(world)
    assert [statuses[run.pk] for run in runs] == ["succeeded"] * 3
    assert [step for step, _status, _attempt in run_timeline(world.acme, runs[0])] == ["check", "price", "tender", "done"]


@pytest.mark.django_db
def test_a_run_paused_or_taken_after_the_claim_is_left_alone(world, fake):
    definition = definition_published(world.acme)
    runs = [run_started(world.acme, definition, {**ORDER, "order_id": f"PZ-{n}"}) for n in range(3)]
    with schema_context(world.acme.schema):
        claimed = runs_claim(owner="batch", limit=100, lease_seconds=60)
        assert claimed == [run.pk for run in runs]
        Run.objects.filter(pk=runs[0].pk).update(lease_owner="someone-else")
        Run.objects.filter(pk=runs[1].pk).update(paused_at=runs[1].created_at)
        statuses = engine.runs_advance(claimed, owner="batch")
        assert statuses == {runs[0].pk: "queued", runs[1].pk: "queued", runs[2].pk: "succeeded"}
        assert not StepExecution.objects.filter(run_id__in=[runs[0].pk, runs[1].pk]).exists()
        assert Run.objects.get(pk=runs[0].pk).lease_owner == "someone-else"
        assert Run.objects.get(pk=runs[1].pk).lease_owner == ""


@pytest.mark.django_db
def test_a_rounds_connector_calls_go_out_together_each_with_its_own_key(world):
    class SlowPartner:
        """Answers after a pause, noting how many calls were in flight at once."""

        def __init__(self) -> None:
            self.lock, self.in_flight, self.most, self.keys = threading.Lock(), 0, 0, []

        def call(self, *, tenant, connection, action, payload, idempotency_key):
            with self.lock:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                self.keys.append(idempotency_key)
            time.sleep(0.2)
            with self.lock:
                self.in_flight -= 1
            return {"accepted": True, "order": payload["order"]}

    partner = SlowPartner()
    previous = connector_port_set(partner)
    try:
        definition = definition_published(world.acme)
        runs = [run_started(world.acme, definition, {**ORDER, "order_id": f"CC-{n}"}) for n in range(6)]
        statuses = _advance_all(world)
    finally:
        connector_port_set(previous)
    assert [statuses[run.pk] for run in runs] == ["succeeded"] * 6
    assert partner.most == 6  # all six in flight at once, not one after another
    assert sorted(partner.keys) == sorted(f"{run.pk}:tender" for run in runs)
    with schema_context(world.acme.schema):
        for run in runs:
            tender = StepExecution.objects.get(run=run, step_id="tender")
            assert tender.output == {"accepted": True, "order": run.input["order_id"]} and tender.duration_ms >= 200


@pytest.mark.django_db
def test_ready_runs_of_a_high_priority_definition_are_claimed_before_older_normal_ones(world):
    normal = definition_published(world.acme)
    urgent = definition_published(world.acme, {**ORDER_SPEC, "priority": "high"})
    older = [run_started(world.acme, normal, {**ORDER, "order_id": f"SO-{n}"}) for n in range(3)]
    newer = run_started(world.acme, urgent)
    with schema_context(world.acme.schema):
        assert Run.objects.get(pk=newer.pk).priority == 1 and {
            run.priority for run in Run.objects.filter(pk__in=[r.pk for r in older])
        } == {2}
        assert runs_claim(owner="first", limit=2, lease_seconds=60) == sorted([newer.pk, older[0].pk])
        assert runs_claim(owner="second", limit=5, lease_seconds=60) == [older[1].pk, older[2].pk]


def test_heavy_steps_run_on_a_thread_of_their_own_apart_from_the_connector_calls():
    from workflows.engine import _callers, _heavy_callers

    def name() -> str:
        return threading.current_thread().name

    assert _heavy_callers().submit(name).result().startswith("heavy")
    assert _callers().submit(name).result().startswith("connector")
    assert _heavy_callers() is _heavy_callers() and _heavy_callers()._max_workers == 1


@pytest.mark.django_db
def test_an_advance_with_runs_left_sends_no_second_wake_up_when_one_is_on_its_way(
    world, fake, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """A run started while the advance works sends its own wake-up (the advance dropped the token
    when it began); the advance, with runs left, sends none beside it. Two per task, each sending
    two, queued a busy day's engine with dozens of advances."""
    from workflows.tasks import advance

    settings.BATON_ENGINE_BATCH = 1  # a full batch: more may be ready
    definition = definition_published(world.acme)
    run_started(world.acme, definition, {**ORDER, "order_id": "WK-1"})
    sent: list[dict] = []
    monkeypatch.setattr(advance, "apply_async", lambda **options: sent.append(options))
    advance_ready = engine.runs_advance_ready

    def advance_while_a_run_starts(**kwargs: Any) -> dict[int, str]:
        statuses = advance_ready(**kwargs)
        with django_capture_on_commit_callbacks(execute=True):  # the start's commit wakes the engine
            run_started(world.acme, definition, {**ORDER, "order_id": "WK-2"})
        return statuses

    monkeypatch.setattr(engine, "runs_advance_ready", advance_while_a_run_starts)
    with schema_context(world.acme.schema):
        assert advance() == 1
    assert len(sent) == 1  # the new run's own
    monkeypatch.setattr(engine, "runs_advance_ready", advance_ready)
    with schema_context(world.acme.schema):
        assert advance() == 1
    assert len(sent) == 2  # a full batch again, and nothing on its way: this one sends
