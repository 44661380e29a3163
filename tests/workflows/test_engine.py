"""The engine in process (no worker): starting runs, claims, steps, the connector's idempotency key."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tests.workflows.runs_setup import (
    ORDER,
    ORDER_SPEC,
    SYSTEM,
    definition_published,
    run_advanced,
    run_started,
    run_timeline,
    runs_delete,
    version_publish,
)
from workflows.engine import run_advance, runs_claim
from workflows.models import Definition, Run, StepExecution
from workflows.runs import DefinitionNotPublished, RunConflict, RunError, RunInputTooLarge, run_start
from workflows.services import definition_clone

# --- starting runs -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_started_run_is_queued_ready_on_the_published_version_and_audited(world):
    definition = definition_published(world.acme)
    run = run_started(world.acme, definition, correlation={"order": "SO-1", "po": 42})
    with schema_context(world.acme.schema):
        assert (run.status, run.current_step, run.definition_version.number) == ("queued", "check", 1)
        assert run.ready_at is not None and run.correlation == {"order": "SO-1", "po": "42"}
        audit = AuditEvent.objects.filter(action="workflow_run.started", target_id=str(run.pk)).get()
        assert audit.data["definition"] == definition.key


@pytest.mark.django_db
def test_the_same_business_key_or_idempotency_key_returns_the_same_run(world):
    definition = definition_published(world.acme)
    with schema_context(world.acme.schema):
        first, created = run_start(definition=definition, input=ORDER, business_key="SO-1", trigger="api", actor=SYSTEM)
        again, created_again = run_start(definition=definition, input={"other": 1}, business_key="SO-1", trigger="event", actor=SYSTEM)
        assert created and not created_again and again.pk == first.pk
        keyed, _ = run_start(definition=definition, input=ORDER, idempotency_key="k-1", request_hash="h1", trigger="api", actor=SYSTEM)
        same, created_same = run_start(
            definition=definition, input=ORDER, idempotency_key="k-1", request_hash="h1", trigger="api", actor=SYSTEM
        )
        assert same.pk == keyed.pk and not created_same
        with pytest.raises(RunConflict, match="'k-1' was already used for run"):
            run_start(definition=definition, input=ORDER, idempotency_key="k-1", request_hash="h2", trigger="api", actor=SYSTEM)
        assert Run.objects.filter(definition=definition).count() == 2


@pytest.mark.django_db
def test_starting_needs_a_published_version_and_a_small_input(world, order_release):
    with schema_context(world.acme.schema):
        draft_only = definition_clone(
            template_version=order_release,
            key="draft-only",
            name="Draft only",
            parameters={"carrier_connection": "acme-tms"},
            connection_bindings={},
            actor=world.acme.users["tenant_admin"],
        )
        with pytest.raises(DefinitionNotPublished, match="'draft-only' has no published version yet"):
            run_start(definition=draft_only, input={}, trigger="api", actor=SYSTEM)
    definition = definition_published(world.acme)
    with schema_context(world.acme.schema):
        with pytest.raises(RunInputTooLarge, match="the limit is 256 KB. Store large payloads as documents"):
            run_start(definition=definition, input={"blob": "x" * 300_000}, trigger="api", actor=SYSTEM)
        with pytest.raises(RunError, match="Unknown correlation key 'invoice'"):
            run_start(definition=definition, input={}, correlation={"invoice": "1"}, trigger="api", actor=SYSTEM)
        assert not Run.objects.filter(definition=definition).exists()


def test_three_concurrent_starts_with_one_key_make_one_run(world, committed):
    definition = definition_published(world.acme)
    barrier = threading.Barrier(3)

    def start() -> tuple[int, bool]:
        try:
            with schema_context(world.acme.schema):
                barrier.wait(timeout=10)
                run, created = run_start(
                    definition=definition, input=ORDER, idempotency_key="same-key", request_hash="h", trigger="api", actor=SYSTEM
                )
                return run.pk, created
        finally:
            connections.close_all()

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = [future.result(timeout=30) for future in [pool.submit(start) for _ in range(3)]]
        assert len({pk for pk, _created in results}) == 1
        assert sorted(created for _pk, created in results) == [False, False, True]
        with schema_context(world.acme.schema):
            assert Run.objects.filter(definition=definition).count() == 1
    finally:
        runs_delete(world.acme, definition)


# --- steps -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_four_step_run_succeeds_with_its_context_and_timeline(world, fake):
    definition = definition_published(world.acme)
    run = run_advanced(world.acme, run_started(world.acme, definition))
    assert (run.status, run.error, run.ready_at, run.lease_owner) == ("succeeded", "", None, "")
    assert run.started_at and run.finished_at
    assert run_timeline(world.acme, run) == [
        ("check", "succeeded", 1),
        ("price", "succeeded", 1),
        ("tender", "succeeded", 1),
        ("done", "succeeded", 1),
    ]
    assert run.context == {
        "check": {"matched": "default", "next": "price"},
        "price": {"order": {"id": "SO-1", "total": 250, "first_sku": "A-1"}, "source": "api"},
        "tender": {"accepted": True, "connection": "acme-tms", "action": "tender_load", "reference": "fake-1"},
        "done": {"outcome": "succeeded"},
    }
    assert fake.effects == [
        {
            "tenant": world.acme.schema,
            "connection": "acme-tms",
            "action": "tender_load",
            "payload": {"order": "SO-1", "threshold": 1000},
            "idempotency_key": f"{run.pk}:tender",
        }
    ]
    with schema_context(world.acme.schema):
        tender = StepExecution.objects.get(run=run, step_id="tender")
        assert tender.idempotency_key == f"{run.pk}:tender"
        assert tender.input == {"connection": "acme-tms", "action": "tender_load", "payload": {"order": "SO-1", "threshold": 1000}}


@pytest.mark.django_db
def test_a_decision_takes_the_first_matching_case(world, fake):
    definition = definition_published(world.acme)
    run = run_advanced(world.acme, run_started(world.acme, definition, {**ORDER, "total": 5000}))
    assert run.status == "succeeded"
    assert run_timeline(world.acme, run) == [("check", "succeeded", 1), ("hold", "succeeded", 1)]
    assert run.context["check"] == {"matched": "large", "next": "hold"}
    assert run.context["hold"]["template"] == "large-order" and run.context["hold"]["queued"] == {"email": True}
    assert fake.effects == []


@pytest.mark.django_db
def test_a_failing_expression_fails_the_run_naming_the_step_and_the_expression(world, fake):
    definition = definition_published(world.acme)
    run = run_advanced(world.acme, run_started(world.acme, definition, {"order_id": "SO-2"}))
    assert run.status == "failed" and run.finished_at and run.ready_at is None
    assert run.error == "Step 'check' (decision) failed: expression `input.total > 1000` failed: no such member in mapping: 'total'"
    assert run_timeline(world.acme, run) == [("check", "failed", 1)]
    with schema_context(world.acme.schema):
        assert StepExecution.objects.get(run=run).error == run.error


@pytest.mark.django_db
def test_a_connector_step_repeated_after_a_crash_reuses_its_key_and_causes_no_second_effect(world, fake):
    definition = definition_published(world.acme)
    run = run_started(world.acme, definition)
    # A worker called the carrier and died before its step committed: the effect happened, the
    # step's execution was rolled back. The next worker repeats the step with the same key.
    fake.call(
        tenant=world.acme.schema, connection="acme-tms", action="tender_load", payload={"order": "SO-1"}, idempotency_key=f"{run.pk}:tender"
    )
    run = run_advanced(world.acme, run, owner="worker-2")
    assert run.status == "succeeded"
    assert [(step, attempt) for step, _status, attempt in run_timeline(world.acme, run)] == [
        ("check", 1),
        ("price", 1),
        ("tender", 1),
        ("done", 1),
    ]
    assert len(fake.calls_for(f"{run.pk}:tender")) == 1
    assert run.context["tender"] == {"accepted": True, "connection": "acme-tms", "action": "tender_load", "reference": "fake-1"}


@pytest.mark.django_db
def test_a_run_leased_to_another_worker_is_neither_claimed_nor_advanced(world, fake):
    definition = definition_published(world.acme)
    run = run_started(world.acme, definition)
    with schema_context(world.acme.schema):
        assert run.pk in runs_claim(owner="other-worker", limit=100)
        assert run.pk not in runs_claim(owner="me", limit=100)
        assert run_advance(run_id=run.pk, owner="me") == "queued"
        assert not StepExecution.objects.filter(run=run).exists()
        # Once the other worker's lease has run out (it died), the run is claimable again.
        Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert run.pk in runs_claim(owner="me", limit=100)
        assert run_advance(run_id=run.pk, owner="me") == "succeeded"


@pytest.mark.django_db
def test_an_end_step_with_a_failed_outcome_fails_the_run(world, fake):
    spec = {"start": "done", "steps": [{"id": "done", "kind": "end", "outcome": "failed"}]}
    run = run_advanced(world.acme, run_started(world.acme, definition_published(world.acme, spec)))
    assert (run.status, run.context) == ("failed", {"done": {"outcome": "failed"}})


@pytest.mark.django_db
def test_a_run_stays_on_its_pinned_version_after_a_newer_one_is_published(world, fake):
    definition = definition_published(world.acme)
    old = run_started(world.acme, definition)
    newer = version_publish(world.acme, definition, {"start": "stop", "steps": [{"id": "stop", "kind": "end", "outcome": "failed"}]})
    with schema_context(world.acme.schema):
        assert Definition.objects.get(pk=definition.pk).published_version_id == newer.pk
    old = run_advanced(world.acme, old)
    assert (old.status, old.definition_version_id) == ("succeeded", definition.published_version_id)
    assert [step for step, _s, _a in run_timeline(world.acme, old)] == ["check", "price", "tender", "done"]
    new = run_advanced(world.acme, run_started(world.acme, definition))
    assert (new.status, new.definition_version_id, list(new.context)) == ("failed", newer.pk, ["stop"])


def test_two_workers_claiming_at_once_get_disjoint_runs(world, committed):
    definition = definition_published(world.acme, ORDER_SPEC)
    try:
        with schema_context(world.acme.schema):
            ids = {run_start(definition=definition, input=ORDER, trigger="api", actor=SYSTEM)[0].pk for _ in range(10)}
        barrier = threading.Barrier(2)
        claimed: dict[str, list[int]] = {}

        def claim(owner: str):
            try:
                with schema_context(world.acme.schema):
                    barrier.wait(timeout=10)
                    claimed[owner] = runs_claim(owner=owner, limit=6, lease_seconds=60)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=claim, args=(owner,)) for owner in ("w1", "w2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        first, second = set(claimed["w1"]), set(claimed["w2"])
        assert not first & second
        assert first | second == ids and sorted([len(first), len(second)]) == [4, 6]
        with schema_context(world.acme.schema):
            owners = dict(Run.objects.filter(pk__in=ids).values_list("pk", "lease_owner"))
        assert all(owners[pk] == "w1" for pk in first) and all(owners[pk] == "w2" for pk in second)
    finally:
        runs_delete(world.acme, definition)
