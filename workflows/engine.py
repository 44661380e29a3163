"""The execution engine: claim ready runs, advance them one committed step at a time.

PostgreSQL holds the truth; the broker only wakes workers (`workflows.tasks`). A worker claims a
batch of ready runs with `FOR UPDATE SKIP LOCKED` and a lease (`runs_claim`), then advances them
(`runs_advance`) in rounds: one transaction per round locks the batch's rows, checks each lease is
still the worker's, executes one step of every run, writes their `StepExecution`s and the runs'
new state together, and commits. Steps that wait or start other runs go one run at a time
(`_step_once`, a transaction per step). A worker that dies mid-round loses only that round's
uncommitted transaction; its runs become claimable again when their leases run out.

Steps that touch the outside world (connector) hand the connector the key `<run id>:<step id>`
(the same for every attempt), so a repeated step returns the first result instead of doubling
the effect.

Step kinds run here: transform, decision (CEL), notify (recorded, not yet sent), connector
(through `ConnectorPort`, with the step's retry policy), wait_until, end; `workflows.waits` runs
the kinds that wait for something outside the run (wait_event, approval, parallel, child_workflow).
A waiting step parks the run and is executed again when the run wakes; it reads its state rows
(EventWait, Approval, child runs, timers) and either goes on or parks again.

A step that fails for good (attempts exhausted, not retryable, or any other error) opens an
`Incident` and leaves the run `failed` until an operator retries, restarts or cancels it
(`workflows.operations`). An `end` step with outcome failed, and a cancel, run the compensation
handlers of the steps that succeeded, newest first (status `compensating`, then `compensated`).

Timers are rows (`Timer`): a connector step that fails with attempts left, and a `wait_until`
step, write one and park the run (`waiting`, not ready). `timers_fire_due` (run per tenant by
the periodic `workflows.fire_timers`) marks due timers fired and makes their runs ready again;
`runs_reap` in the same task re-readies runs whose worker died (lease expired) and reports
ready runs nobody has picked up, so the task wakes the engine for them.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

import celpy
import structlog
from celpy import celtypes
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Max
from django.utils import timezone
from prometheus_client import Counter, Histogram

from tenants.db import connection, rows_copy
from workflows.models import (
    RUN_ADVANCING,
    RUN_FINISHED,
    DefinitionVersion,
    Incident,
    IncidentStatus,
    Run,
    RunPriority,
    RunStatus,
    StepExecution,
    StepStatus,
    Timer,
    TimerKind,
)
from workflows.validation import DURATION_PATTERN

log = structlog.get_logger("baton.workflows")

CONTEXT_LIMIT_BYTES = 256 * 1024
# Steps one `run_advance` call executes before giving the run back (so one long run cannot
# hold a worker; the task sends itself again when a run is still ready).
STEPS_PER_ADVANCE = 200
DEFAULT_LEASE_SECONDS = 60
# Retry backoff is capped here unless the step's policy sets `max_backoff_seconds`.
DEFAULT_MAX_BACKOFF_SECONDS = 3600
# A partner's Retry-After is honoured up to this (a day); a longer one is taken as a day.
MAX_RETRY_AFTER_SECONDS = 24 * 3600
# A ready run nobody has claimed for this long gets a new wake-up from the reaper.
REAP_READY_AFTER_SECONDS = 30
TIMERS_PER_FIRE = 500

RUNS_STARTED = Counter("baton_workflow_runs_started_total", "Workflow runs started", ["trigger"])
RUNS_FINISHED = Counter("baton_workflow_runs_finished_total", "Workflow runs that reached a final or parked state", ["status"])
STEP_SECONDS = Histogram("baton_workflow_step_duration_seconds", "Workflow step execution time", ["kind"])
STEP_RETRIES = Counter("baton_workflow_step_retries_total", "Failed step attempts that were scheduled for another attempt", ["kind"])
INCIDENTS_OPENED = Counter("baton_workflow_incidents_opened_total", "Incidents opened by steps that failed for good", ["kind"])


# --- connectors: the port and its in-process fake ---------------------------------------------


class ConnectorError(Exception):
    """A connector call failed. `kind` names the error class a step's retry policy matches in
    `non_retryable` (default: the exception's class name, so subclasses work too);
    `retry_after` (seconds) is when the partner said to come back (Retry-After, an open circuit,
    a rate limit): a retry is not scheduled sooner."""

    def __init__(self, message: str = "", *, kind: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind or type(self).__name__
        self.retry_after = retry_after


class ConnectorPort(Protocol):
    def call(self, *, tenant: str, connection: str, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Perform `action` once per (tenant, idempotency_key): a repeated key returns the first result."""
        ...


@dataclass
class FakeConnector:
    """Records calls in memory; the stand-in until the connectors app provides real outbound calls."""

    effects: list[dict[str, Any]] = field(default_factory=list)
    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Scripted failures: `fail_next(action, error, times)` makes the next calls of `action` raise
    # (no effect recorded), so tests can drive retries. Empty by default.
    failures: dict[str, list[ConnectorError]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, action: str, error: ConnectorError, times: int = 1) -> None:
        with self._lock:
            self.failures.setdefault(action, []).extend([error] * times)

    def call(self, *, tenant: str, connection: str, action: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        with self._lock:
            known = self.results.get((tenant, idempotency_key))
            if known is not None:
                return known
            pending = self.failures.get(action)
            if pending:
                raise pending.pop(0)
            self.effects.append(
                {"tenant": tenant, "connection": connection, "action": action, "payload": payload, "idempotency_key": idempotency_key}
            )
            result = {"accepted": True, "connection": connection, "action": action, "reference": f"fake-{len(self.effects)}"}
            self.results[(tenant, idempotency_key)] = result
            return result

    def calls_for(self, idempotency_key: str) -> list[dict[str, Any]]:
        return [effect for effect in self.effects if effect["idempotency_key"] == idempotency_key]


_port: ConnectorPort = FakeConnector()


def connector_port() -> ConnectorPort:
    return _port


def connector_port_set(port: ConnectorPort) -> ConnectorPort:
    """Install `port` (tests, and the connectors app later); returns the previous one."""
    global _port
    previous, _port = _port, port
    return previous


# --- expressions and mappings -------------------------------------------------------------------


class StepFailed(Exception):
    """The step cannot complete; the run fails with this message."""


class ConnectorStepFailed(StepFailed):
    """A connector call failed: the step's retry policy decides whether it is tried again."""

    def __init__(self, message: str, error_class: str, retry_after: float | None = None):
        super().__init__(message)
        self.error_class = error_class
        self.retry_after = retry_after


_CEL = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}
_PROGRAMS_LOCK = threading.Lock()


def _program(expression: str) -> Any:
    """Compile once per expression (per process)."""
    program = _PROGRAMS.get(expression)
    if program is None:
        program = _CEL.program(_CEL.compile(expression))
        with _PROGRAMS_LOCK:
            _PROGRAMS[expression] = program
    return program


def cel_evaluate(expression: str, variables: dict[str, Any]) -> Any:
    """Evaluate a CEL expression against JSON variables; raises StepFailed with the reason."""
    try:
        result = _program(expression).evaluate({name: celpy.json_to_cel(value) for name, value in variables.items()})
    except celpy.CELParseError as error:
        raise StepFailed(f"syntax error at line {error.line}, column {error.column}") from error
    except celpy.CELEvalError as error:
        raise StepFailed(_cel_reason(error)) from error
    if isinstance(result, celpy.CELEvalError):
        raise StepFailed(_cel_reason(result))
    return result


def _cel_reason(error: Exception) -> str:
    return str(error.args[0]) if error.args else str(error)


MISSING = object()
_ROOTS = ("input", "context", "steps", "params")


def resolve(source: Any, scope: dict[str, Any]) -> Any:
    """A mapping value: `$.input.a.b`, `$.context.<step>.field` (or `$.steps.<step>.field`),
    `$.params.name` read from the run; anything else is a literal. Only dictionary keys and list
    indexes are followed: nothing is evaluated."""
    if isinstance(source, dict):
        return {key: resolve(value, scope) for key, value in source.items()}
    if isinstance(source, list):
        return [resolve(value, scope) for value in source]
    if not isinstance(source, str) or not source.startswith("$."):
        return source
    root, *path = source[2:].split(".")
    if root not in _ROOTS:
        raise StepFailed(f"'{source}' must start with $.input, $.context, $.steps or $.params")
    value: Any = scope["context" if root == "steps" else root]
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _assign(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[last] = value


# --- steps ----------------------------------------------------------------------------------------


@dataclass
class Park:
    """The step waits: the run parks (`waiting`) until something wakes it. With `timer_kind` and
    `due_at` a timer is written (one unfired per run, step and kind); without, a decision, an
    event or a child run wakes it. `note` tells people what it waits for."""

    note: str
    timer_kind: str = ""
    due_at: datetime | None = None
    error: str = ""  # why it waits, when a failure made it wait (a retry)


@dataclass
class StepResult:
    output: dict[str, Any]
    next_step: str | None = None  # None: the run ends after this step
    outcome: str = ""  # an `end` step's run status
    step_input: dict[str, Any] = field(default_factory=dict)
    park: Park | None = None
    # Context entries besides the step's own output (a join merges its branches' steps).
    context_updates: dict[str, Any] = field(default_factory=dict)


def _scope(run: Run) -> dict[str, Any]:
    return {"input": run.input, "context": run.context, "params": run.definition_version.parameters}


def _transform(run: Run, step: dict[str, Any]) -> StepResult:
    output: dict[str, Any] = {}
    scope = _scope(run)
    for target, source in step["mapping"].items():
        _assign(output, target, resolve(source, scope))
    return StepResult(output=output, next_step=step.get("next"), step_input={"mapping": step["mapping"]})


def _decision(run: Run, step: dict[str, Any]) -> StepResult:
    scope = _scope(run)
    variables = {**scope, "event": scope["input"]}  # event-triggered templates say `event.code`
    for index, case in enumerate(step["cases"]):
        try:
            matched = cel_evaluate(case["when"], variables)
        except StepFailed as error:
            raise StepFailed(f"expression `{case['when']}` failed: {error}") from error
        if not isinstance(matched, celtypes.BoolType):
            raise StepFailed(f"expression `{case['when']}` gave {type(matched).__name__} {matched}, not true or false")
        if matched:
            label = case.get("label") or f"case {index + 1}"
            return StepResult(output={"matched": label, "next": case["next"]}, next_step=case["next"])
    return StepResult(output={"matched": "default", "next": step["default"]}, next_step=step["default"])


def _notify(run: Run, step: dict[str, Any], idempotency_key: str) -> StepResult:
    """Queue the notification (`workflows.notify`) and record what went into the queue."""
    from workflows.notify import notify_queue

    queued = notify_queue(run, step, idempotency_key)
    output = {"channel": step["channel"], "to_roles": step["to_roles"], "template": step["template"], **queued}
    return StepResult(output=output, next_step=step.get("next"))


@dataclass(frozen=True)
class Call:
    """A connector call made ahead of its step (the batch path makes a round's calls together):
    when it started, and its result or the ConnectorError it raised."""

    started_at: datetime
    clock: float
    result: dict[str, Any] | None = None
    error: ConnectorError | None = None


def _connector_target(run: Run, step: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The bound connection and the resolved payload of a connector step."""
    bindings = run.definition_version.connection_bindings or {}
    return bindings.get(step["connection"]) or step["connection"], resolve(step.get("input") or {}, _scope(run))


def _port_call(
    port: ConnectorPort, *, tenant: str, connection: str, action: str, payload: dict[str, Any], idempotency_key: str
) -> dict[str, Any]:
    """A partner's call through the port, or one of Baton's own actions (`workflows.actions`)."""
    from workflows.actions import BATON_CONNECTION, action_call

    if connection == BATON_CONNECTION:
        return action_call(tenant=tenant, action=action, payload=payload, idempotency_key=idempotency_key)
    return port.call(tenant=tenant, connection=connection, action=action, payload=payload, idempotency_key=idempotency_key)


def _connector(run: Run, step: dict[str, Any], idempotency_key: str, call: Call | None = None) -> StepResult:
    bound, payload = _connector_target(run, step)
    try:
        if call is None:
            result = _port_call(
                connector_port(),
                tenant=connection.schema_name,
                connection=bound,
                action=step["action"],
                payload=payload,
                idempotency_key=idempotency_key,
            )
        elif call.error is not None:
            raise call.error
        else:
            result = call.result or {}
    except ConnectorError as error:
        raise ConnectorStepFailed(f"connector {bound} {step['action']} failed: {error}", error.kind, error.retry_after) from error
    return StepResult(
        output=result, next_step=step.get("next"), step_input={"connection": bound, "action": step["action"], "payload": payload}
    )


_POOLS: dict[str, tuple[int, ThreadPoolExecutor]] = {}
_POOLS_LOCK = threading.Lock()


def _pool(name: str, size: int) -> ThreadPoolExecutor:
    """The process's thread pool `name` (made again after a fork)."""
    with _POOLS_LOCK:
        made = _POOLS.get(name)
        if made is None or made[0] != os.getpid():
            made = _POOLS[name] = (os.getpid(), ThreadPoolExecutor(max_workers=size, thread_name_prefix=name))
        return made[1]


def _callers() -> ThreadPoolExecutor:
    """The pool for a round's connector calls."""
    return _pool("connector", settings.BATON_ENGINE_CONNECTOR_CALLS)


def _heavy_callers() -> ThreadPoolExecutor:
    """The pool for a round's heavy steps (`workflows.actions.Action.heavy`), apart from the
    connector calls. One thread by default: a PDF is mostly Python, so more threads render no
    faster and take the interpreter lock from the threads that hold database locks others wait for."""
    return _pool("heavy", settings.BATON_ENGINE_HEAVY_CALLS)


def _resolvable(run: Run, step: dict[str, Any]) -> bool:
    try:
        _connector_target(run, step)
    except StepFailed:
        return False
    return True


def connector_calls(calls: list[tuple[Run, dict[str, Any], str]]) -> dict[str, Call]:
    """Make the connector calls of a round's steps at once (run, step, idempotency key), so a
    round waits for its slowest partner rather than for the sum of them; keyed by idempotency
    key. A step whose payload does not resolve is left out (its step fails the ordinary way)."""
    schema, port = connection.schema_name, connector_port()
    prepare = getattr(port, "prepare", None)
    if prepare is not None:  # the port reads what it needs here, on this thread's database connection
        prepare(schema, {_connector_target(run, step)[0] for run, step, _key in calls if _resolvable(run, step)})

    def call(bound: str, action: str, payload: dict[str, Any], key: str) -> Call:
        started_at, clock = timezone.now(), time.perf_counter()
        try:
            result = _port_call(port, tenant=schema, connection=bound, action=action, payload=payload, idempotency_key=key)
        except ConnectorError as error:
            return Call(started_at, clock, error=error)
        return Call(started_at, clock, result=result)

    planned: list[tuple[str, str, dict[str, Any], str]] = []
    for run, step, key in calls:
        try:
            bound, payload = _connector_target(run, step)
        except StepFailed:
            continue
        planned.append((bound, step["action"], payload, key))
    # A port that logs its calls writes the round's log with one statement when the block ends
    # (`connectors.exchanges`), on this thread, after every call has returned.
    batch = getattr(port, "batch", None)
    with batch() if batch is not None else nullcontext():
        if len(planned) <= 1:
            return {key: call(bound, action, payload, key) for bound, action, payload, key in planned}
        futures = {
            key: (_heavy_callers() if _heavy({"kind": "connector", "connection": bound, "action": action}) else _callers()).submit(
                call, bound, action, payload, key
            )
            for bound, action, payload, key in planned
        }
        return {key: future.result() for key, future in futures.items()}


def until_moment(text: str, now: datetime) -> datetime:
    """`until` as a moment: an ISO 8601 duration from `now` (a year is 365 days, a month 30) or
    an absolute date-time with its UTC offset. Raises StepFailed for anything else."""
    match = DURATION_PATTERN.match(text)
    if match:
        parts = {name: float(value) for name, value in match.groupdict().items() if value}
        days = parts.get("years", 0) * 365 + parts.get("months", 0) * 30 + parts.get("weeks", 0) * 7 + parts.get("days", 0)
        return now + timedelta(days=days, hours=parts.get("hours", 0), minutes=parts.get("minutes", 0), seconds=parts.get("seconds", 0))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise StepFailed(f"'{text}' is neither an ISO 8601 duration nor a date-time with a UTC offset")
    return moment


def step_moment(text: str, now: datetime, business_time: bool) -> datetime:
    """`until_moment`, or with `business_time` counted in the tenant's working hours."""
    if not business_time:
        return until_moment(text, now)
    from workflows.calendars import business_until, calendar_current

    try:
        return business_until(text, now, calendar_current())
    except ValueError as error:
        raise StepFailed(str(error)) from error


def _wait_until(run: Run, step: dict[str, Any]) -> StepResult:
    """First visit: park until the moment. After its timer fired: record the wait and go on."""
    timer = Timer.objects.filter(run=run, step_id=step["id"], kind=TimerKind.WAIT_UNTIL).order_by("-pk").first()
    business = bool(step.get("business_time"))
    if timer is not None and timer.fired_at is None:  # woken early: keep waiting on the same timer
        return StepResult(
            output={}, park=Park(f"waiting until {timer.due_at.isoformat(timespec='seconds')}", TimerKind.WAIT_UNTIL, timer.due_at)
        )
    if timer is None or StepExecution.objects.filter(run=run, step_id=step["id"], output__timer=timer.pk).exists():
        due_at = step_moment(step["until"], timezone.now(), business)  # a first (or new) visit
        when = "in business time " if business else ""
        return StepResult(output={}, park=Park(f"waiting {when}until {due_at.isoformat(timespec='seconds')}", TimerKind.WAIT_UNTIL, due_at))
    assert timer.fired_at is not None
    output: dict[str, Any] = {
        "until": step["until"],
        "due_at": timer.due_at.isoformat(),
        "fired_at": timer.fired_at.isoformat(),
        "timer": timer.pk,
        "business_time": business,
    }
    return StepResult(output=output, next_step=step.get("next"), step_input={"until": step["until"]})


def _end(run: Run, step: dict[str, Any]) -> StepResult:
    return StepResult(output={"outcome": step["outcome"]}, outcome=step["outcome"])


def _execute(run: Run, step: dict[str, Any], idempotency_key: str, call: Call | None = None) -> StepResult:
    kind = step["kind"]
    if kind in WAITING_KINDS:
        from workflows import waits

        return waits.execute(run, step)
    if kind == "transform":
        return _transform(run, step)
    if kind == "decision":
        return _decision(run, step)
    if kind == "notify":
        return _notify(run, step, idempotency_key)
    if kind == "connector":
        return _connector(run, step, idempotency_key, call)
    if kind == "wait_until":
        return _wait_until(run, step)
    return _end(run, step)


WAITING_KINDS = ("wait_event", "approval", "parallel", "child_workflow")


# --- retries -------------------------------------------------------------------------------------


def retry_delay(policy: dict[str, Any], failures: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt after `failures` failed ones: `backoff_seconds` doubled per
    failure, capped at `max_backoff_seconds` (default one hour); with `jitter`, full jitter –
    uniformly between zero and that."""
    base = float(policy.get("backoff_seconds", 0))
    cap = float(policy.get("max_backoff_seconds", DEFAULT_MAX_BACKOFF_SECONDS))
    delay = min(cap, base * 2 ** max(failures - 1, 0))
    return delay * rand() if policy.get("jitter") else delay


def _failures_in_a_row(run: Run, idempotency_key: str) -> int:
    """Failed attempts of the step since it last succeeded or an operator retried it."""
    executions = StepExecution.objects.filter(idempotency_key=idempotency_key, pk__gt=run.retry_floor)
    last_success = executions.filter(status=StepStatus.SUCCEEDED).aggregate(last=Max("pk"))["last"] or 0
    return executions.filter(status=StepStatus.FAILED, pk__gt=last_success).count()


def _park(run: Run, step_id: str, park: Park) -> None:
    """Park the run until a timer fires or something wakes it (one unfired timer per run, step and kind)."""
    pending = Timer.objects.filter(run=run, step_id=step_id, kind=park.timer_kind, fired_at__isnull=True)
    if park.timer_kind and park.due_at is not None and not pending.exists():
        Timer.objects.create(run=run, kind=park.timer_kind, step_id=step_id, due_at=park.due_at)
    _finish(run, RunStatus.WAITING, park.error)
    run.waiting_for = park.note[:300]


# --- claims and advancing ------------------------------------------------------------------------

_ADVANCING_SQL = "('queued', 'running', 'compensating')"


def runs_claim(*, owner: str, limit: int, lease_seconds: int = DEFAULT_LEASE_SECONDS, priority: int = RunPriority.LOW) -> list[int]:
    """Lease up to `limit` ready runs of the current schema to `owner`, high priority first and
    then the longest ready (only runs of `priority` or higher); concurrent claimers get disjoint
    sets (SKIP LOCKED), and a run whose lease is still running, or that is paused, is not taken."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE workflows_run SET lease_owner = %s, lease_expires_at = %s
            WHERE id IN (
                SELECT id FROM workflows_run
                WHERE ready_at <= %s AND status IN {_ADVANCING_SQL} AND paused_at IS NULL
                  AND (lease_expires_at IS NULL OR lease_expires_at < %s) AND priority <= %s
                ORDER BY priority, ready_at
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """,
            [owner, now + timedelta(seconds=lease_seconds), now, now, int(priority), limit],
        )
        return sorted(row[0] for row in cursor.fetchall())


_VERSIONS: dict[tuple[str, int], tuple[DefinitionVersion, dict[str, dict[str, Any]]]] = {}
_VERSIONS_MAX = 512


def _published_version(version_id: int) -> DefinitionVersion:
    """A run's version, read once per process: a version that runs was published, and a
    published spec never changes (a fix is a new version), so the step loop need not reload and
    parse it for every step. Shared read-only between runs; keyed by schema, since ids are per
    tenant schema."""
    key = (connection.schema_name, version_id)
    cached = _VERSIONS.get(key)
    if cached is None:
        version = DefinitionVersion.objects.get(pk=version_id)
        if len(_VERSIONS) >= _VERSIONS_MAX:
            _VERSIONS.clear()
        cached = _VERSIONS[key] = (version, {step["id"]: step for step in version.spec.get("steps", [])})
    return cached[0]


def _spec_steps(run: Run) -> dict[str, dict[str, Any]]:
    cached = _VERSIONS.get((connection.schema_name, run.definition_version_id))
    if cached is not None and cached[0] is run.definition_version:
        return cached[1]
    return {step["id"]: step for step in run.definition_version.spec.get("steps", [])}


def _finish(run: Run, status: str, error: str = "", *, settled: bool = True) -> None:
    """Set the run's status and take it out of the ready set (the caller saves the run). A
    settled final status of a child run wakes its parent when the siblings are done too."""
    run.status = status
    run.error = error
    run.waiting_for = ""
    run.ready_at = None
    run.lease_owner = ""
    run.lease_expires_at = None
    if status in RUN_FINISHED:
        run.finished_at = timezone.now()
        if settled and run.parent_id is not None:
            parent_wake(run)
    transaction.on_commit(lambda: RUNS_FINISHED.labels(status).inc())


def run_wake_sql(run_ids: list[int], now: datetime) -> list[int]:
    """Make waiting runs ready again (`compensating` when they were compensating); returns the woken ids."""
    if not run_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE workflows_run
            SET status = CASE WHEN compensation_queue IS NULL THEN 'running' ELSE 'compensating' END,
                ready_at = %s, error = '', waiting_for = '', lease_owner = '', lease_expires_at = NULL
            WHERE id = ANY(%s) AND status = 'waiting'
            RETURNING id
            """,
            [now, sorted(set(run_ids))],
        )
        return [row[0] for row in cursor.fetchall()]


def parent_wake(child: Run) -> None:
    """A child or branch run finished: wake its parent when every sibling of the same step has.

    The parent row is locked first, so two last siblings finishing at once serialise here and
    the second sees the first as finished (the reaper also wakes such parents, as a net)."""
    if child.parent_id is None:
        return
    parent = Run.objects.select_for_update().filter(pk=child.parent_id).only("pk", "status").first()
    if parent is None or parent.status != RunStatus.WAITING:
        return
    siblings = Run.objects.filter(parent_id=child.parent_id, parent_step=child.parent_step).exclude(pk=child.pk)
    if any(not child_settled(sibling) for sibling in siblings.only("pk", "status").prefetch_related("incidents")):
        return
    run_wake_sql([parent.pk], timezone.now())
    transaction.on_commit(partial(engine_wake, connection.schema_name))


def child_settled(run: Run) -> bool:
    """Finished as far as its parent is concerned: a final status, except a failure with an open
    incident (an operator may still retry it, so the parent keeps waiting)."""
    if run.status not in RUN_FINISHED:
        return False
    if run.status == RunStatus.FAILED:
        return not any(incident.status == IncidentStatus.OPEN for incident in run.incidents.all())
    return True


def engine_wake(schema: str) -> None:
    """Send `workflows.advance` for `schema`; a broker failure is logged (the reaper wakes it later)."""
    from workflows.runs import _wake

    _wake(schema)


def _step_once(run_id: int, owner: str, lease_seconds: int) -> tuple[str, bool]:
    """Execute the run's current step in one transaction. Returns (status, go on)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        run.definition_version = _published_version(run.definition_version_id)
        now = timezone.now()
        if run.lease_owner != owner:
            return run.status, False  # someone else's now (or the reaper freed it): leave it alone
        # Still ours under the row lock, even if the lease ran out meanwhile (a slow batch): nobody
        # took it, since a claim or the reaper would have changed the owner. Renewed below.
        if run.status not in RUN_ADVANCING or run.ready_at is None or run.paused_at is not None:
            run.lease_owner, run.lease_expires_at = "", None
            run.save(update_fields=["lease_owner", "lease_expires_at"])
            return run.status, False
        if run.status == RunStatus.QUEUED:
            run.status = RunStatus.RUNNING
            run.started_at = run.started_at or now
        run.lease_expires_at = now + timedelta(seconds=lease_seconds)
        step = _spec_steps(run).get(run.current_step)
        if run.stop_at and run.current_step == run.stop_at and run.status == RunStatus.RUNNING:
            _finish(run, RunStatus.SUCCEEDED)  # a parallel branch reached its join
        elif step is None:
            _incident_open(
                run,
                {"id": run.current_step, "kind": ""},
                f"Step '{run.current_step}' is not in version {run.definition_version.number}.",
                "",
            )
        else:
            _run_step(run, step)
        run.save()
        return run.status, run.status in _GOING_ON


@dataclass(frozen=True)
class Visit:
    """The how-many-th time this generation of the run executes a step, and the idempotency key of
    that visit: `<run>:<step>` the first time, `<run>:<step>#<n>` when a loop comes back after n
    successes, so a revisit does its effect again while retries of one visit share the key."""

    number: int
    key: str
    attempts: int  # executions of this visit so far


def step_visit(run: Run, step_id: str, history: list[tuple[str, str]] | None = None) -> Visit:
    """The visit of `step_id` this execution belongs to; `history` is the run's (key, status)
    pairs for the step when the caller has them (the batch path), read here otherwise."""
    base = run.step_key(step_id)
    if history is None:
        history = list(StepExecution.objects.filter(run=run, step_id=step_id).values_list("idempotency_key", "status"))
    done = 0
    keys: list[str] = []
    for key, status in history:
        if key == base or key.startswith(f"{base}#"):
            keys.append(key)
            done += status == StepStatus.SUCCEEDED
    key = base if done == 0 else f"{base}#{done}"
    return Visit(number=done, key=key, attempts=keys.count(key))


def _run_step(
    run: Run,
    step: dict[str, Any],
    visit: Visit | None = None,
    deferred: list[StepExecution] | None = None,
    call: Call | None = None,
) -> bool:
    """Execute the step and move the run on. True when it succeeded; with `deferred` its
    execution is appended there for the caller's bulk insert instead of saved (a failure's
    execution is always saved at once: the retry and incident bookkeeping reads it); `call` is
    the step's connector call when it was made ahead (`connector_calls`)."""
    visit = visit or step_visit(run, step["id"])
    idempotency_key, attempt = visit.key, visit.attempts + 1
    started_at, clock = (call.started_at, call.clock) if call else (timezone.now(), time.perf_counter())
    execution = StepExecution(run=run, step_id=step["id"], kind=step["kind"], attempt=attempt, idempotency_key=idempotency_key)
    try:
        result = _execute(run, step, idempotency_key, call)
        if result.park is not None:
            _park(run, step["id"], result.park)
            return False  # the step's execution is written when the run resumes past the wait
        context = {**run.context, **result.context_updates, step["id"]: result.output}
        if len(json.dumps(context, default=str).encode()) > CONTEXT_LIMIT_BYTES:
            raise StepFailed(f"the run's context would exceed {CONTEXT_LIMIT_BYTES // 1024} KB; store large payloads as documents")
    except StepFailed as error:
        message = f"Step '{step['id']}' ({step['kind']}) failed: {error}"
        execution.status, execution.error = StepStatus.FAILED, message
        execution.input = _failed_input(run, step)
        _record(execution, started_at, clock)
        _failed(run, step, error, message, idempotency_key)
        return False
    execution.status, execution.input, execution.output = StepStatus.SUCCEEDED, result.step_input, result.output
    run.context = context
    _record(execution, started_at, clock, save=deferred is None)
    if deferred is not None:
        deferred.append(execution)
    _advanced(run, result)
    return True


def _record(execution: StepExecution, started_at: datetime, clock: float, *, save: bool = True) -> None:
    elapsed = time.perf_counter() - clock
    execution.started_at, execution.finished_at, execution.duration_ms = started_at, timezone.now(), int(elapsed * 1000)
    if save:
        execution.save()
    STEP_SECONDS.labels(execution.kind).observe(elapsed)


def _failed_input(run: Run, step: dict[str, Any]) -> dict[str, Any]:
    """What the failed step was given, for the timeline and the incident (best effort)."""
    if step["kind"] == "connector":
        try:
            return {"connection": step["connection"], "action": step["action"], "payload": resolve(step.get("input") or {}, _scope(run))}
        except StepFailed:
            return {}
    if step["kind"] == "transform":
        return {"mapping": step["mapping"]}
    return {}


def _advanced(run: Run, result: StepResult) -> None:
    """The step succeeded: move to the next step, end the run, or (compensating) to the next handler."""
    if run.status == RunStatus.COMPENSATING:
        if result.next_step is not None and not result.outcome:
            run.current_step = result.next_step  # a handler may be a chain of steps
            return
        queue = list(run.compensation_queue or [])
        if queue:
            run.current_step, run.compensation_queue = queue[0], queue[1:]
        else:
            _finish(run, RunStatus.COMPENSATED, run.error)
        return
    if result.outcome == RunStatus.FAILED:
        if not compensation_begin(run, "The workflow ended at a failed outcome; undoing the completed steps."):
            _finish(run, RunStatus.FAILED, "The workflow ended at a failed outcome.")
    elif result.outcome:
        _finish(run, result.outcome)
    elif result.next_step is None:
        _finish(run, RunStatus.SUCCEEDED)
    else:
        run.current_step = result.next_step


def compensation_begin(run: Run, reason: str) -> bool:
    """Queue the compensation handlers of this generation's succeeded steps, newest first, and
    make the run `compensating` (ready). False when there is nothing to compensate."""
    handlers_by_step: dict[str, str] = run.definition_version.spec.get("compensation") or {}
    if not handlers_by_step:
        return False
    prefix = run.step_key("")
    done = (
        StepExecution.objects.filter(run=run, status=StepStatus.SUCCEEDED, idempotency_key__startswith=prefix)
        .order_by("-pk")
        .values_list("step_id", flat=True)
    )
    handlers: list[str] = []
    for step_id in done:
        handler = handlers_by_step.get(step_id)
        if handler and handler not in handlers:
            handlers.append(handler)
    if not handlers:
        return False
    run.status, run.error = RunStatus.COMPENSATING, reason
    run.current_step, run.compensation_queue = handlers[0], handlers[1:]
    run.ready_at = timezone.now()
    return True


def _failed(run: Run, step: dict[str, Any], error: StepFailed, message: str, key: str) -> None:
    """Retry a connector step with attempts left (a timer, the run parked); otherwise open an incident."""
    policy = step.get("retry") or {}
    attempts = int(policy.get("attempts", 1))
    error_class = error.error_class if isinstance(error, ConnectorStepFailed) else type(error).__name__
    if not isinstance(error, ConnectorStepFailed) or attempts <= 1:
        _incident_open(run, step, message, error_class, key)
        return
    if error.error_class in policy.get("non_retryable", []):
        _incident_open(run, step, f"{message} ({error.error_class} is not retryable)", error_class, key)
        return
    failures = _failures_in_a_row(run, key)
    if failures >= attempts:
        _incident_open(run, step, f"Step '{step['id']}' ({step['kind']}) failed after {failures} attempts: {error}", error_class, key)
        return
    delay = retry_delay(policy, failures)
    if error.retry_after:  # the partner (or its circuit, or its rate limit) said when: not sooner
        delay = max(delay, min(error.retry_after, MAX_RETRY_AFTER_SECONDS))
    due_at = timezone.now() + timedelta(seconds=delay)
    when = due_at.isoformat(timespec="seconds")
    note = f"{message} (attempt {failures} of {attempts}; next attempt at {when})"
    STEP_RETRIES.labels(step["kind"]).inc()
    _park(run, step["id"], Park(f"attempt {failures + 1} of {attempts} at {when}", TimerKind.RETRY, due_at, error=note))


def _incident_open(run: Run, step: dict[str, Any], message: str, error_class: str, key: str = "") -> None:
    """The step failed for good: the run waits in `failed` with an open incident holding the
    error, the step's last input and the attempts since the last success or operator retry."""
    key = key or run.step_key(step["id"])
    attempts = [
        {"attempt": execution.attempt, "error": execution.error, "at": execution.finished_at.isoformat()}
        for execution in StepExecution.objects.filter(idempotency_key=key, pk__gt=run.retry_floor, status=StepStatus.FAILED).order_by("pk")
    ]
    last = StepExecution.objects.filter(idempotency_key=key).order_by("-pk").only("input").first()
    compensating = run.status == RunStatus.COMPENSATING
    _finish(run, RunStatus.FAILED, f"Compensation failed: {message}" if compensating else message, settled=False)
    Incident.objects.filter(run=run, status=IncidentStatus.OPEN).update(status=IncidentStatus.RESOLVED, resolved_at=timezone.now())
    Incident.objects.create(
        run=run,
        step_id=step["id"],
        step_kind=step.get("kind", ""),
        error=run.error,
        error_class=error_class,
        step_input=last.input if last else {},
        attempts=attempts,
    )
    INCIDENTS_OPENED.labels(step.get("kind") or "missing").inc()


def run_advance(*, run_id: int, owner: str, lease_seconds: int = DEFAULT_LEASE_SECONDS) -> str:
    """Execute consecutive ready steps of a run leased to `owner`. Returns the run's status; a
    run still `running` afterwards is ready for another advance."""
    return runs_advance([run_id], owner=owner, lease_seconds=lease_seconds).get(run_id, "")


def runs_advance_ready(*, owner: str, limit: int = 50, lease_seconds: int = DEFAULT_LEASE_SECONDS) -> dict[int, str]:
    """Claim a batch of the current schema's ready runs and advance them: what a worker does per wake-up."""
    return runs_advance(runs_claim(owner=owner, limit=limit, lease_seconds=lease_seconds), owner=owner, lease_seconds=lease_seconds)


def runs_advance_urgent(*, owner: str, limit: int = 50, lease_seconds: int = DEFAULT_LEASE_SECONDS) -> dict[int, str]:
    """Claim the current schema's ready high-priority runs and advance them now, on the caller's
    worker: the inbox's dispatcher calls this after each batch, so a run its events started (a
    delay's exception) goes on at once instead of queueing for the next `workflows.advance`
    behind the engine's other work. Temporal calls this eager start."""
    return runs_advance(
        runs_claim(owner=owner, limit=limit, lease_seconds=lease_seconds, priority=RunPriority.HIGH),
        owner=owner,
        lease_seconds=lease_seconds,
    )


# A run in one of these, ready, has another step to take in this advance.
_GOING_ON = frozenset({RunStatus.RUNNING, RunStatus.COMPENSATING})

# Kinds the batch path executes: they neither wait nor start other runs, so a round can do one
# for every run of a batch and write them together.
BATCH_KINDS = frozenset({"transform", "decision", "notify", "connector", "end"})


def runs_advance(run_ids: list[int], *, owner: str, lease_seconds: int = DEFAULT_LEASE_SECONDS) -> dict[int, str]:
    """Advance runs leased to `owner`; returns each one's status.

    Rounds first: each round locks the batch's rows (in id order), executes every run's current
    step when its kind is in BATCH_KINDS, and writes all their step executions with one INSERT
    and all their runs with one UPDATE in the round's transaction, so a transition commits with
    the others of its round instead of paying a commit and four statements of its own. A run
    whose step waits, starts other runs, compensates or belongs to a parent takes that one step
    on its own (`_step_once`, after the round commits) and, when it goes on, rejoins the next
    round: a run resumed past a wait does its remaining steps in rounds like the others. If a
    round's transaction fails, its runs go the one-run-at-a-time path for the rest of the
    advance (their connector calls are repeated there under the same idempotency keys, so no
    effect doubles)."""
    statuses: dict[int, str] = {}
    single: list[int] = []
    active = sorted(set(run_ids))
    history = _step_history(active)
    deadline = time.monotonic() + settings.BATON_ENGINE_ADVANCE_SECONDS
    heavy = _HeavyBudget(settings.BATON_ENGINE_HEAVY_PER_ADVANCE)
    for round_number in range(STEPS_PER_ADVANCE):
        if not active or (round_number and time.monotonic() > deadline):  # always one round
            break
        alone: list[int] = []
        try:
            with transaction.atomic():
                active = _round(active, owner, lease_seconds, history, statuses, alone, heavy)
        except DatabaseError as error:
            log.warning("batch round failed; advancing its runs one at a time", runs=len(active), error=f"{type(error).__name__}: {error}")
            single, active = active, []
            break
        if alone:
            active = sorted({*active, *_steps_alone(alone, owner, lease_seconds, history, statuses)})
    if active:  # the step or time budget ran out: give the runs back (still ready) for another advance
        Run.objects.filter(pk__in=active, lease_owner=owner).update(lease_owner="", lease_expires_at=None)
    for run_id in single:
        statuses[run_id] = _run_advance_single(run_id, owner, lease_seconds)
    return statuses


def _steps_alone(
    run_ids: list[int], owner: str, lease_seconds: int, history: dict[tuple[int, str], list[tuple[str, str]]], statuses: dict[int, str]
) -> list[int]:
    """One step, in a transaction of its own, for each run whose step a round cannot take (a
    wait, a child run, compensation); returns those that go on, with their step history read
    again since `_step_once` wrote theirs."""
    go_on: list[int] = []
    for run_id in run_ids:
        statuses[run_id], more = _step_once(run_id, owner, lease_seconds)
        if more:
            go_on.append(run_id)
    if go_on:
        moved = set(go_on)
        for key in [key for key in history if key[0] in moved]:
            del history[key]
        history.update(_step_history(go_on))
    return go_on


def _run_advance_single(run_id: int, owner: str, lease_seconds: int) -> str:
    status = ""
    for _ in range(STEPS_PER_ADVANCE):
        status, go_on = _step_once(run_id, owner, lease_seconds)
        if not go_on:
            return status
    Run.objects.filter(pk=run_id, lease_owner=owner).update(lease_owner="", lease_expires_at=None)
    return status


def _step_history(run_ids: list[int]) -> dict[tuple[int, str], list[tuple[str, str]]]:
    """(run, step) → the (idempotency key, status) of its executions so far, read once per batch."""
    history: dict[tuple[int, str], list[tuple[str, str]]] = {}
    if not run_ids:
        return history
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT run_id, step_id, idempotency_key, status FROM workflows_stepexecution WHERE run_id = ANY(%s) ORDER BY id", [run_ids]
        )
        for run_id, step_id, key, status in cursor.fetchall():
            history.setdefault((run_id, step_id), []).append((key, status))
    return history


@dataclass
class _HeavyBudget:
    """Heavy steps (`workflows.actions.Action.heavy`) one advance may still execute. The runs past
    it are given back, still ready and in their place, for the next advance: an advance lasts
    about a second however many invoice PDFs wait, and the dispatcher gets the worker in between
    instead of waiting behind a batch of two hundred renders."""

    left: int


def _heavy(step: dict[str, Any]) -> bool:
    from workflows.actions import BATON_CONNECTION, action_is_heavy

    return step["kind"] == "connector" and step.get("connection") == BATON_CONNECTION and action_is_heavy(step.get("action", ""))


def _round(
    active: list[int],
    owner: str,
    lease_seconds: int,
    history: dict[tuple[int, str], list[tuple[str, str]]],
    statuses: dict[int, str],
    alone: list[int],
    heavy: _HeavyBudget,
) -> list[int]:
    """One step for each run of `active` (inside the caller's transaction); returns the runs that
    go on. Runs whose step the round cannot take are appended to `alone` (still leased, ready)."""
    now = timezone.now()
    planned: list[tuple[Run, dict[str, Any], Visit]] = []
    deferred: list[int] = []
    for run in Run.objects.select_for_update().filter(pk__in=active).order_by("pk"):
        statuses[run.pk] = run.status
        if run.lease_owner != owner:
            continue  # someone else's now (or the reaper freed it): leave it alone
        if run.status not in RUN_ADVANCING or run.ready_at is None or run.paused_at is not None:
            run.lease_owner, run.lease_expires_at = "", None
            run.save(update_fields=["lease_owner", "lease_expires_at"])
            continue
        run.definition_version = _published_version(run.definition_version_id)
        step = _spec_steps(run).get(run.current_step)
        if step is None or step["kind"] not in BATCH_KINDS or run.status == RunStatus.COMPENSATING or run.parent_id or run.stop_at:
            alone.append(run.pk)
            continue
        if _heavy(step):
            if heavy.left <= 0:
                deferred.append(run.pk)
                continue
            heavy.left -= 1
        if run.status == RunStatus.QUEUED:
            run.status = RunStatus.RUNNING
            run.started_at = run.started_at or now
        run.lease_expires_at = now + timedelta(seconds=lease_seconds)
        planned.append((run, step, step_visit(run, step["id"], history.get((run.pk, step["id"]), []))))
    if deferred:
        Run.objects.filter(pk__in=deferred).update(lease_owner="", lease_expires_at=None)
    calls = connector_calls([(run, step, visit.key) for run, step, visit in planned if step["kind"] == "connector"])
    executions: list[StepExecution] = []
    moved: list[Run] = []
    go_on: list[int] = []
    for run, step, visit in planned:
        steps_of_run = history.setdefault((run.pk, step["id"]), [])
        written = len(executions)
        if _run_step(run, step, visit, executions, calls.get(visit.key)):
            moved.append(run)
            steps_of_run.extend((execution.idempotency_key, execution.status) for execution in executions[written:])
        else:  # failed (retry timer or incident) or parked: rare, written the ordinary way
            run.save()
            steps_of_run[:] = (
                StepExecution.objects.filter(run=run, step_id=step["id"]).order_by("pk").values_list("idempotency_key", "status")
            )
        statuses[run.pk] = run.status
        if run.status in _GOING_ON and run.ready_at is not None:
            go_on.append(run.pk)  # a compensating run's handlers are taken alone in the next round
    _executions_write(executions)
    _runs_write(moved)
    return go_on


_EXECUTION_COLUMNS = (
    "run_id",
    "step_id",
    "kind",
    "attempt",
    "status",
    "input",
    "output",
    "error",
    "idempotency_key",
    "started_at",
    "finished_at",
    "duration_ms",
)


def _executions_write(executions: list[StepExecution]) -> None:
    """A round's step executions with one COPY (`tenants.db.rows_copy`)."""
    if executions:
        rows_copy(
            "workflows_stepexecution",
            _EXECUTION_COLUMNS,
            (
                [
                    json.dumps(getattr(row, name), default=str) if name in ("input", "output") else getattr(row, name)
                    for name in _EXECUTION_COLUMNS
                ]
                for row in executions
            ),
        )


_RUN_WRITE_COLUMNS = (
    ("status", "text"),
    ("started_at", "timestamptz"),
    ("current_step", "text"),
    ("context", "jsonb"),
    ("error", "text"),
    ("waiting_for", "text"),
    ("ready_at", "timestamptz"),
    ("lease_owner", "text"),
    ("lease_expires_at", "timestamptz"),
    ("finished_at", "timestamptz"),
    ("compensation_queue", "jsonb"),
)


def _runs_write(runs: list[Run]) -> None:
    """Write what a round changed on its runs in one UPDATE … FROM (VALUES …)."""
    if not runs:
        return
    names = [name for name, _type in _RUN_WRITE_COLUMNS]
    row = "(" + ", ".join(["%s::bigint"] + [f"%s::{kind}" for _name, kind in _RUN_WRITE_COLUMNS]) + ")"
    params: list[Any] = []
    for run in runs:
        params.append(run.pk)
        for name in names:
            value = getattr(run, name)
            params.append(json.dumps(value) if name in ("context", "compensation_queue") and value is not None else value)
    assignments = ", ".join(f"{name} = v.{name}" for name in names)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE workflows_run AS r SET {assignments} FROM (VALUES {', '.join([row] * len(runs))}) AS v(id, {', '.join(names)}) WHERE r.id = v.id",
            params,
        )


# --- timers and the reaper ---------------------------------------------------------------------


def timers_fire(*, now: datetime | None = None, limit: int = TIMERS_PER_FIRE) -> list[int]:
    """Mark up to `limit` due timers of the current schema fired and make their waiting runs ready
    (running, or compensating), in one transaction; concurrent callers fire disjoint timers (SKIP
    LOCKED). Returns the fired timers' ids. `now` (tests: a later moment) decides what is due; the
    runs are ready from no later than the real clock, so claims take them at once."""
    clock = timezone.now()
    now = now or clock
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE workflows_timer SET fired_at = %s
            WHERE id IN (
                SELECT id FROM workflows_timer
                WHERE fired_at IS NULL AND due_at <= %s
                ORDER BY due_at
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id, run_id
            """,
            [now, now, limit],
        )
        fired = cursor.fetchall()
        run_wake_sql([run_id for _id, run_id in fired], min(now, clock))
    return sorted(timer_id for timer_id, _run_id in fired)


def timers_fire_due(*, now: datetime | None = None, limit: int = TIMERS_PER_FIRE) -> int:
    """Fire the current schema's due timers; returns how many fired."""
    return len(timers_fire(now=now, limit=limit))


def runs_reap(*, now: datetime | None = None) -> int:
    """Runs of the current schema the engine should be woken for: ready runs nobody claimed for
    `REAP_READY_AFTER_SECONDS`, advancing runs whose lease expired (their worker died) – those
    get their lease cleared and are made ready –, and waiting parents whose children have all
    settled (a missed wake-up). Paused runs and runs locked right now are skipped."""
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE workflows_run SET ready_at = COALESCE(ready_at, %s), lease_owner = '', lease_expires_at = NULL
            WHERE id IN (
                SELECT id FROM workflows_run
                WHERE status IN {_ADVANCING_SQL} AND paused_at IS NULL
                  AND (lease_expires_at IS NULL OR lease_expires_at < %s)
                  AND (lease_expires_at IS NOT NULL OR (ready_at IS NOT NULL AND ready_at < %s))
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """,
            [now, now, now - timedelta(seconds=REAP_READY_AFTER_SECONDS)],
        )
        reaped = len(cursor.fetchall())
        cursor.execute(
            """
            SELECT parent.id FROM workflows_run parent
            WHERE parent.status = 'waiting'
              AND EXISTS (SELECT 1 FROM workflows_run child WHERE child.parent_id = parent.id AND child.parent_step = parent.current_step)
              AND NOT EXISTS (
                SELECT 1 FROM workflows_run child
                WHERE child.parent_id = parent.id AND child.parent_step = parent.current_step
                  AND (child.status NOT IN ('succeeded', 'failed', 'cancelled', 'compensated')
                       OR EXISTS (SELECT 1 FROM workflows_incident i WHERE i.run_id = child.id AND i.status = 'open'))
              )
            """
        )
        orphans = [row[0] for row in cursor.fetchall()]
        reaped += len(run_wake_sql(orphans, now))
        return reaped
