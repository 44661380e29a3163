"""Steps that wait for something outside the run: an event, a person, other runs.

Each is executed when the run reaches it and again every time the run wakes. The first visit
writes what it waits for (an `EventWait`, an `Approval`, child runs) and parks the run; a later
visit reads that state and either goes on or parks again. A visit's state is "consumed" once a
succeeded `StepExecution` names it in its output, so a loop that comes back to the step starts
a new wait instead of reusing the old one.

Wake-ups: `event_deliver` (an event matched a wait), `workflows.operations.approval_decide`
(a person decided), `workflows.engine.parent_wake` (the children settled), and timers
(`wait_timeout`, `approval_due`) fired by the scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

from governance.services import Actor, audit_record
from tenants.db import connection, rows_json
from workflows.engine import (
    Park,
    StepFailed,
    StepResult,
    _scope,
    cel_evaluate,
    child_settled,
    engine_wake,
    resolve,
    run_wake_sql,
    step_moment,
    step_visit,
    until_moment,
)
from workflows.models import (
    Approval,
    ApprovalStatus,
    BufferedEvent,
    Definition,
    EventWait,
    EventWaitStatus,
    IncidentStatus,
    Run,
    RunStatus,
    StepExecution,
    StepStatus,
    Timer,
    TimerKind,
)

ENGINE = Actor.system("engine")


def execute(run: Run, step: dict[str, Any]) -> StepResult:
    kind = step["kind"]
    if kind == "wait_event":
        return _wait_event(run, step)
    if kind == "approval":
        return _approval(run, step)
    if kind == "parallel":
        return _parallel(run, step)
    return _child_workflow(run, step)


def _consumed(run: Run, step_id: str, name: str, value: int) -> bool:
    """A succeeded execution of the step already went past this wait (so a revisit starts a new one)."""
    return StepExecution.objects.filter(run=run, step_id=step_id, status=StepStatus.SUCCEEDED, **{f"output__{name}": value}).exists()


def _visit(run: Run, step_id: str) -> int:
    """How many times this generation of the run went past the step (keys of a revisit differ)."""
    return step_visit(run, step_id).number


def _latest_timer(run: Run, step_id: str, kind: str) -> Timer | None:
    return Timer.objects.filter(run=run, step_id=step_id, kind=kind).order_by("-pk").first()


# --- wait for an event ---------------------------------------------------------------------------


def _wait_event(run: Run, step: dict[str, Any]) -> StepResult:
    wait = EventWait.objects.filter(run=run, step_id=step["id"]).order_by("-pk").first()
    if wait is None or _consumed(run, step["id"], "wait", wait.pk):
        correlation: dict[str, str] = {}
        variables = {**_scope(run), "event": run.input}
        for name, expression in (step.get("correlate") or {}).items():
            try:
                value = cel_evaluate(expression, variables)
            except StepFailed as error:
                raise StepFailed(f"correlate.{name} (`{expression}`) has no value to wait for: {error}") from error
            if value is None or isinstance(value, dict | list) or str(value) == "":
                raise StepFailed(f"correlate.{name} (`{expression}`) has no value to wait for")
            correlation[name] = str(value)
        _event_type_lock(step["event_type"])
        early = _buffered_event(run, step["id"], step["event_type"], correlation, earlier=bool(step.get("earlier_events")))
        matched: dict[str, Any] = {}
        if early is not None:  # it came before the run got here
            matched = {
                "status": EventWaitStatus.MATCHED,
                "event_id": early.event_id,
                "event_payload": early.payload,
                "matched_at": timezone.now(),
            }
        wait = EventWait.objects.create(
            run=run,
            step_id=step["id"],
            event_type=step["event_type"],
            correlation=correlation,
            **matched,
        )
        if early is None:
            due_at = until_moment(step["timeout"], timezone.now())
            return StepResult(output={}, park=Park(_waiting_note(wait, due_at), TimerKind.WAIT_TIMEOUT, due_at))
    if wait.status == EventWaitStatus.MATCHED:
        output = {"wait": wait.pk, "event_type": wait.event_type, "event_id": wait.event_id, "event": wait.event_payload}
        return StepResult(output=output, next_step=step.get("next"), step_input={"correlation": wait.correlation})
    timer = _latest_timer(run, step["id"], TimerKind.WAIT_TIMEOUT)
    if wait.status == EventWaitStatus.WAITING and timer is not None and timer.fired_at is not None:
        wait.status = EventWaitStatus.TIMED_OUT
        wait.save(update_fields=["status"])
    if wait.status == EventWaitStatus.TIMED_OUT:
        output = {
            "wait": wait.pk,
            "timed_out": True,
            "event_type": wait.event_type,
            "waited_until": timer.due_at.isoformat() if timer else None,
        }
        return StepResult(output=output, next_step=step["on_timeout"], step_input={"correlation": wait.correlation})
    return StepResult(output={}, park=Park(_waiting_note(wait, timer.due_at if timer else None)))


def _waiting_note(wait: EventWait, due_at: datetime | None) -> str:
    keys = ", ".join(f"{name} {value}" for name, value in wait.correlation.items()) or "any"
    until = f" until {due_at.isoformat(timespec='seconds')}" if due_at else ""
    return f"waiting for {wait.event_type} ({keys}){until}"


def _event_type_lock(event_type: str) -> None:
    """Serialise, per schema and event type, a wait looking at the buffer with an event looking
    at the waits (held to the end of the transaction): either the event sees the committed wait,
    or the wait sees the committed buffered event – never neither."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':event:' || %s))", [event_type])


def _buffered_event(run: Run, step_id: str, event_type: str, correlation: dict[str, str], *, earlier: bool = False) -> BufferedEvent | None:
    """The event that came before the run got to this wait: the oldest of its type whose
    correlation contains the wait's, news to the run, and not taken by one of the run's earlier
    waits at this step (a loop waits for a new one). News: received after the run was created –
    or, for a run an event started, handed on with that event or after it (the dispatcher buffers
    a batch's events before it starts their runs, so an invoice and its POD in one batch would
    otherwise never see each other); never the run's own event. A step with `earlier_events` also
    takes one that came before the run started: for a run that has just looked for what such an
    event records and not found it (another run was recording it in the same moment)."""
    taken = EventWait.objects.filter(run=run, step_id=step_id, status=EventWaitStatus.MATCHED).values("event_id")
    found = BufferedEvent.objects.filter(event_type=event_type, correlation__contains=correlation).exclude(event_id__in=taken)
    origin_id = run.business_key.removeprefix("event:") if run.trigger == "event" and run.business_key.startswith("event:") else ""
    if earlier:
        return found.exclude(event_id=origin_id).order_by("received_at", "pk").first()
    origin = None
    if origin_id:
        origin = BufferedEvent.objects.filter(event_id=origin_id).order_by("received_at").values_list("received_at", flat=True).first()
    if origin is not None and origin <= run.created_at:
        found = found.filter(received_at__gte=origin).exclude(event_id=origin_id)
    else:
        found = found.filter(received_at__gt=run.created_at)
    return found.order_by("received_at", "pk").first()


@dataclass(frozen=True)
class Delivery:
    """One event handed to `events_deliver`."""

    event_type: str
    correlation: dict[str, Any]
    payload: dict[str, Any]
    event_id: str


def event_deliver(*, event_type: str, correlation: dict[str, Any], payload: dict[str, Any], event_id: str) -> list[int]:
    """Hand one event to the current schema's runs waiting for it (`events_deliver`); returns the woken runs' ids."""
    return events_deliver([Delivery(event_type, correlation, payload, event_id)])[0]


# The batch buffered (a known type and id is kept as it was) and the waits its events match,
# in one statement; its events bound as one JSON document (`tenants.db.rows_json`).
_BUFFER_AND_MATCH = """
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS v(i int, event_type text, event_id text, correlation jsonb, payload jsonb)
), buffered AS (
    INSERT INTO workflows_bufferedevent (event_type, event_id, correlation, payload, received_at)
    SELECT event_type, event_id, correlation, payload, %s FROM batch ORDER BY i
    ON CONFLICT DO NOTHING
)
SELECT v.i, w.id, w.run_id
FROM batch AS v
JOIN workflows_eventwait w ON w.status = 'waiting' AND w.event_type = v.event_type AND w.correlation <@ v.correlation
ORDER BY v.i, w.id
"""


def events_deliver(deliveries: Sequence[Delivery]) -> list[list[int]]:
    """Hand events to the current schema's runs waiting for them, in order: every waiting
    `EventWait` of an event's type whose correlation is contained in the event's is matched
    (the first event wins) and its run woken. Each event is also buffered (once per type and
    id), so a run that reaches its wait later still gets it. Returns the woken runs' ids per
    event. A handful of statements whatever the number of events: the event types' locks, one
    insert into the buffer, one look-up of the waits, and for the matched waits one lock of
    their runs (before the waits: the engine's order), one update of each and one wake-up."""
    if not deliveries:
        return []
    now = timezone.now()
    keys = [{name: str(value) for name, value in item.correlation.items()} for item in deliveries]
    woken: list[list[int]] = [[] for _ in deliveries]
    with transaction.atomic():
        for event_type in sorted({item.event_type for item in deliveries}):  # one order: concurrent batches never deadlock
            _event_type_lock(event_type)
        with connection.cursor() as cursor:
            cursor.execute(
                _BUFFER_AND_MATCH,
                [
                    rows_json(
                        {
                            "i": index,
                            "event_type": item.event_type,
                            "event_id": item.event_id,
                            "correlation": keys[index],
                            "payload": item.payload,
                        }
                        for index, item in enumerate(deliveries)
                    ),
                    now,
                ],
            )
            candidates = cursor.fetchall()
        matches: dict[int, tuple[int, int]] = {}  # wait → (event index, run): the first event wins
        for index, wait_id, run_id in candidates:
            matches.setdefault(wait_id, (index, run_id))
        if matches:
            list(
                Run.objects.select_for_update()
                .filter(pk__in={run_id for _index, run_id in matches.values()})
                .order_by("pk")
                .values_list("pk")
            )
            matched_runs: dict[int, int] = {}
            for wait_id, (index, run_id) in sorted(matches.items()):
                item = deliveries[index]
                if EventWait.objects.filter(pk=wait_id, status=EventWaitStatus.WAITING).update(
                    status=EventWaitStatus.MATCHED, event_id=item.event_id, event_payload=item.payload, matched_at=now
                ):
                    matched_runs[run_id] = index
            for run_id in run_wake_sql(list(matched_runs), now):
                woken[matched_runs[run_id]].append(run_id)
    if any(woken):
        transaction.on_commit(partial(engine_wake, connection.schema_name))
    return woken


# --- human approval --------------------------------------------------------------------------------


def _approval(run: Run, step: dict[str, Any]) -> StepResult:
    approval = Approval.objects.filter(run=run, step_id=step["id"]).order_by("-pk").first()
    if approval is None or _consumed(run, step["id"], "approval", approval.pk):
        return _approval_request(run, step)
    if approval.status == ApprovalStatus.PENDING:
        timer = _latest_timer(run, step["id"], TimerKind.APPROVAL_DUE)
        if timer is not None and timer.fired_at is not None and approval.due_at is not None:  # its due timer fired
            return _approval_escalate(run, step, approval)
        park = Park(_approval_note(approval))
        if timer is not None and timer.fired_at is None:
            park = Park(park.note, TimerKind.APPROVAL_DUE, timer.due_at)
        return StepResult(output={}, park=park)
    if approval.status == ApprovalStatus.CANCELLED:
        raise StepFailed(f"approval {approval.pk} was cancelled")
    output = {
        "approval": approval.pk,
        "decision": approval.status,
        "decided_by": approval.decided_by_email,
        "decided_via": approval.decided_via,
        "comment": approval.comment,
        "escalation_level": approval.escalation_level,
    }
    if approval.status == ApprovalStatus.APPROVED:
        target = step.get("next")
    elif approval.status == ApprovalStatus.CHANGES_REQUESTED:
        target = step.get("on_changes_requested", step.get("on_reject"))
    else:
        target = step.get("on_reject")
    return StepResult(output=output, next_step=target, step_input={"assignee_roles": approval.assignee_roles})


def _approval_due(step: dict[str, Any], start: datetime) -> datetime | None:
    return step_moment(step["due"], start, bool(step.get("business_time"))) if step.get("due") else None


def _approval_request(run: Run, step: dict[str, Any]) -> StepResult:
    due_at = _approval_due(step, timezone.now())
    approval = Approval.objects.create(
        run=run,
        step_id=step["id"],
        title=step.get("title") or step.get("name") or f"Approve {step['id'].replace('_', ' ')}",
        instructions=step.get("instructions", ""),
        assignee_roles=list(step["assignee_roles"]),
        escalate_to=list(step.get("escalate_to") or []),
        due_at=due_at,
    )
    audit_record(
        actor=ENGINE,
        action="workflow_approval.requested",
        target=approval,
        data={"run": run.pk, "step": step["id"], "roles": approval.assignee_roles, "due_at": due_at.isoformat() if due_at else None},
    )
    transaction.on_commit(partial(_approval_announce, connection.schema_name, approval.pk))
    park = Park(_approval_note(approval), TimerKind.APPROVAL_DUE, due_at) if due_at else Park(_approval_note(approval))
    return StepResult(output={}, park=park)


def _approval_escalate(run: Run, step: dict[str, Any], approval: Approval) -> StepResult:
    """Past due: one level up. The escalation roles join the assignees and get a new due time
    (the same span again); with nowhere to escalate to, it stays overdue and is announced again."""
    now = timezone.now()
    approval.escalation_level += 1
    approval.escalated_at = now
    added = [role for role in approval.escalate_to if role not in approval.assignee_roles]
    approval.assignee_roles = [*approval.assignee_roles, *added]
    due_at = _approval_due(step, now) if added else None
    approval.due_at = due_at or approval.due_at
    approval.save(update_fields=["escalation_level", "escalated_at", "assignee_roles", "due_at"])
    audit_record(
        actor=ENGINE,
        action="workflow_approval.escalated",
        target=approval,
        data={"run": run.pk, "level": approval.escalation_level, "added_roles": added, "due_at": due_at.isoformat() if due_at else None},
    )
    transaction.on_commit(partial(_approval_announce, connection.schema_name, approval.pk))
    park = Park(_approval_note(approval), TimerKind.APPROVAL_DUE, due_at) if due_at else Park(_approval_note(approval))
    return StepResult(output={}, park=park)


def _approval_note(approval: Approval) -> str:
    roles = ", ".join(role.replace("_", " ") for role in approval.assignee_roles)
    due = f", due {approval.due_at.isoformat(timespec='minutes')}" if approval.due_at else ""
    level = f" (escalated, level {approval.escalation_level})" if approval.escalation_level else ""
    return f"waiting for approval by {roles}{due}{level}"


def _approval_announce(schema: str, approval_id: int) -> None:
    """Tell the assignees (email with signed decision links) after the request or escalation committed."""
    from workflows.tasks import approval_announce

    try:
        approval_announce.apply_async(args=[approval_id], headers={"_schema_name": schema})
    except Exception:  # noqa: BLE001 - the approval is in the inbox either way
        structlog.get_logger("baton.workflows").warning("approval announcement not sent", approval=approval_id, exc_info=True)


# --- parallel branches and child workflows ---------------------------------------------------------


def _visit_children(run: Run, step_id: str) -> tuple[str, list[Run]]:
    """The business-key prefix of this visit's children, and the children it already started
    (with their incidents, which decide whether a failed child is settled)."""
    prefix = f"{run.step_key(step_id)}#{_visit(run, step_id)}:"
    children = Run.objects.filter(parent=run, parent_step=step_id, business_key__startswith=prefix)
    return prefix, list(children.select_related("definition").prefetch_related("incidents").order_by("pk"))


def _child_create(
    run: Run,
    step_id: str,
    *,
    prefix: str,
    definition: Definition,
    version_id: int,
    start: str,
    stop_at: str,
    input: dict[str, Any],
    context: dict[str, Any],
    key: str,
    trigger: str,
) -> Run:
    child, _created = Run.objects.get_or_create(
        definition=definition,
        business_key=f"{prefix}{key}",
        defaults={
            "definition_version_id": version_id,
            "status": RunStatus.QUEUED,
            "trigger": trigger,
            "input": input,
            "context": context,
            "correlation": run.correlation,
            "current_step": start,
            "ready_at": timezone.now(),
            "created_by_email": "system:engine",
            "parent": run,
            "parent_step": step_id,
            "stop_at": stop_at,
        },
    )
    return child


def _children_settled(children: list[Run]) -> bool:
    return all(child_settled(child) for child in children)


def _parallel(run: Run, step: dict[str, Any]) -> StepResult:
    prefix, children = _visit_children(run, step["id"])
    if not children:
        for branch in step["branches"]:
            _child_create(
                run,
                step["id"],
                prefix=prefix,
                definition=run.definition,
                version_id=run.definition_version_id,
                start=branch,
                stop_at=step["join"],
                input=run.input,
                context=run.context,
                key=branch,
                trigger="branch",
            )
        transaction.on_commit(partial(engine_wake, connection.schema_name))
        return StepResult(output={}, park=Park(f"waiting for {len(step['branches'])} branches to reach {step['join']}"))
    if not _children_settled(children):
        waiting = sum(1 for child in children if child.status not in (RunStatus.SUCCEEDED,))
        return StepResult(output={}, park=Park(f"waiting for {waiting} of {len(children)} branches to reach {step['join']}"))
    failed = [child for child in children if child.status != RunStatus.SUCCEEDED]
    if failed:
        child = failed[0]
        raise StepFailed(f"branch '{child.current_step}' (run {child.pk}) ended {child.status}: {child.error or 'no error recorded'}")
    merged: dict[str, Any] = {}
    for child in children:
        merged.update({key: value for key, value in child.context.items() if key not in run.context})
    output = {"branches": {child.business_key.rsplit(":", 1)[-1]: {"run": child.pk, "status": child.status} for child in children}}
    return StepResult(output=output, next_step=step["join"], context_updates=merged, step_input={"branches": step["branches"]})


def _child_workflow(run: Run, step: dict[str, Any]) -> StepResult:
    prefix, children = _visit_children(run, step["id"])
    if not children:
        definition = Definition.objects.select_related("published_version").filter(key=step["definition"]).first()
        if definition is None or definition.published_version is None:
            raise StepFailed(f"the workflow '{step['definition']}' does not exist or has no published version")
        child_input = resolve(step.get("input") or {}, _scope(run))
        child = _child_create(
            run,
            step["id"],
            prefix=prefix,
            definition=definition,
            version_id=definition.published_version.pk,
            start=definition.published_version.spec["start"],
            stop_at="",
            input=child_input,
            context={},
            key=definition.key,
            trigger="child",
        )
        audit_record(
            actor=ENGINE,
            action="workflow_run.started",
            target=child,
            data={"definition": definition.key, "version": definition.published_version.number, "trigger": "child", "parent": run.pk},
        )
        transaction.on_commit(partial(engine_wake, connection.schema_name))
        return StepResult(output={}, park=Park(f"waiting for child workflow {definition.key} (run {child.pk})"))
    child = children[0]
    if not _children_settled([child]):
        open_incident = any(incident.status == IncidentStatus.OPEN for incident in child.incidents.all())
        note = " (it has an open incident)" if open_incident else ""
        return StepResult(output={}, park=Park(f"waiting for child workflow {child.definition.key} (run {child.pk}){note}"))
    if child.status != RunStatus.SUCCEEDED:
        raise StepFailed(f"child workflow run {child.pk} ended {child.status}: {child.error or 'no error recorded'}")
    return StepResult(
        output={"run": child.pk, "status": child.status, "output": child.context},
        next_step=step.get("next"),
        step_input={"definition": step["definition"], "input": child.input},
    )
