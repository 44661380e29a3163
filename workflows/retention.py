"""How long finished runs keep their payloads and their metadata (the tenant's `WorkflowPolicy`).

`runs_purge` runs daily per tenant (`workflows.purge_runs`). Runs finished more than
`payload_retention_days` ago lose their payloads – the run's input and context, its steps' inputs
and outputs, its incidents' step input, the events its waits matched – and get
`payload_purged_at`; their status, timeline, errors and correlation stay. Runs finished more than
`metadata_retention_days` ago are deleted with everything that hangs off them. Events buffered
for waits (`BufferedEvent`) received before the payload cutoff are deleted too.

Only finished business is touched: a run that is not finished, whose parent is not finished (the
parent's join may still read it), with an unfinished child, or with an open incident (an operator
may still retry it) is left alone. Work goes in batches of `PURGE_BATCH` runs, each its own
transaction that locks its runs (`SKIP LOCKED`: a run someone is changing waits for the next
purge), so a big tenant never holds long locks; a purge stops between batches after
`PURGE_TIME_LIMIT_SECONDS` and says it is incomplete (the task sends itself again). One audit row
records each purge that removed something – written even when the purge is interrupted, for the
batches that committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from governance.services import audit_record
from tenants.db import connection
from workflows.models import ActionReceipt, BufferedEvent, EventWait, Incident, IncidentStatus, Run, StepExecution, WorkflowPolicy
from workflows.selectors import workflow_policy
from workflows.services import WorkflowError, _require_publisher

log = structlog.get_logger("baton.workflows")

PURGE_BATCH = 500
PURGE_TIME_LIMIT_SECONDS = 10 * 60  # below the 14-minute soft task limit
RETENTION_DAYS_MIN = 1
RETENTION_DAYS_MAX = 3650


class RetentionInvalid(WorkflowError):
    """Retention periods out of range, or payloads kept longer than the runs themselves."""


def retention_problems(*, payload_retention_days: int, metadata_retention_days: int) -> dict[str, str]:
    """What is wrong with a pair of retention periods, by field (empty when they are fine)."""
    problems: dict[str, str] = {}
    for name, days in (("payload_retention_days", payload_retention_days), ("metadata_retention_days", metadata_retention_days)):
        if not RETENTION_DAYS_MIN <= days <= RETENTION_DAYS_MAX:
            problems[name] = f"Choose between {RETENTION_DAYS_MIN} and {RETENTION_DAYS_MAX} days."
    if not problems and payload_retention_days > metadata_retention_days:
        problems["payload_retention_days"] = (
            f"Payloads cannot be kept longer than the runs themselves ({metadata_retention_days} days): "
            "a deleted run takes its payload with it."
        )
    return problems


def workflow_policy_retention_update(*, payload_retention_days: int, metadata_retention_days: int, actor: Any) -> WorkflowPolicy:
    """Tenant admins set how long finished runs keep payloads and metadata."""
    _require_tenant()
    _require_publisher(actor, "change how long workflow runs are kept")
    problems = retention_problems(payload_retention_days=payload_retention_days, metadata_retention_days=metadata_retention_days)
    if problems:
        name, message = next(iter(problems.items()))
        raise RetentionInvalid(message, field=name)
    with transaction.atomic():
        policy = WorkflowPolicy.objects.select_for_update().get(pk=workflow_policy().pk)
        before = (policy.payload_retention_days, policy.metadata_retention_days)
        policy.payload_retention_days, policy.metadata_retention_days = payload_retention_days, metadata_retention_days
        policy.save()
        audit_record(
            actor=actor,
            action="workflow_policy.retention_updated",
            target=policy,
            data={
                "payload_retention_days": {"from": before[0], "to": payload_retention_days},
                "metadata_retention_days": {"from": before[1], "to": metadata_retention_days},
            },
        )
    return policy


def _require_tenant() -> None:
    if connection.schema_name == "public":
        raise WorkflowError("Workflow runs live in a tenant's workspace; this ran on the public schema.")


@dataclass
class _Tally:
    """What one kind of purge did so far: row counts by table, and the span of run ids selected."""

    counts: dict[str, int] = field(default_factory=dict)
    first_run_id: int | None = None
    last_run_id: int | None = None

    def add(self, run_ids: list[int], counts: dict[str, int]) -> None:
        for name, count in counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
        self.first_run_id = min(run_ids) if self.first_run_id is None else min(self.first_run_id, *run_ids)
        self.last_run_id = max(run_ids) if self.last_run_id is None else max(self.last_run_id, *run_ids)

    @property
    def runs(self) -> int:
        return self.counts.get("runs", 0)

    def as_data(self) -> dict[str, Any]:
        return {"runs": 0, **self.counts, "first_run_id": self.first_run_id, "last_run_id": self.last_run_id}


def _finished_before(cutoff: datetime) -> QuerySet[Run]:
    """Finished runs older than `cutoff` that nothing unfinished depends on."""
    return (
        Run.objects.filter(finished_at__lt=cutoff)
        .exclude(Exists(Run.objects.filter(parent=OuterRef("pk"), finished_at__isnull=True)))
        .exclude(Exists(Run.objects.filter(pk=OuterRef("parent_id"), finished_at__isnull=True)))
        .exclude(Exists(Incident.objects.filter(run=OuterRef("pk"), status=IncidentStatus.OPEN)))
    )


def _batch(runs: QuerySet[Run], size: int) -> list[int]:
    """Lock up to `size` of `runs` (inside the caller's transaction), skipping rows locked now."""
    return list(runs.select_for_update(skip_locked=True, of=("self",)).order_by("pk").values_list("pk", flat=True)[:size])


def _payloads_purge_batch(cutoff: datetime, size: int, stamp: datetime) -> tuple[list[int], dict[str, int]]:
    with transaction.atomic():
        run_ids = _batch(_finished_before(cutoff).filter(payload_purged_at__isnull=True), size)
        if not run_ids:
            return [], {}
        counts = {
            "step_executions": StepExecution.objects.filter(run_id__in=run_ids).update(input={}, output={}),
            "incidents": Incident.objects.filter(run_id__in=run_ids).update(step_input={}),
            "event_waits": EventWait.objects.filter(run_id__in=run_ids).update(event_payload={}),
            "runs": Run.objects.filter(pk__in=run_ids).update(input={}, context={}, payload_purged_at=stamp),
        }
    return run_ids, counts


_DELETED_NAMES = {
    "workflows.Run": "runs",
    "workflows.StepExecution": "step_executions",
    "workflows.Timer": "timers",
    "workflows.Incident": "incidents",
    "workflows.Approval": "approvals",
    "workflows.EventWait": "event_waits",
}


def _runs_delete_batch(cutoff: datetime, size: int) -> tuple[list[int], dict[str, int]]:
    with transaction.atomic():
        run_ids = _batch(_finished_before(cutoff), size)
        if not run_ids:
            return [], {}
        # The collector deletes the runs' rows in every table that refers to them, and their
        # (finished) children with theirs.
        _total, by_model = Run.objects.filter(pk__in=run_ids).delete()
    return run_ids, {_DELETED_NAMES.get(label, label): count for label, count in by_model.items() if count}


def runs_purge(
    *,
    actor: Any,
    now: datetime | None = None,
    batch_size: int = PURGE_BATCH,
    time_limit: float = PURGE_TIME_LIMIT_SECONDS,
) -> dict[str, Any]:
    """Apply the current tenant's retention policy to its finished runs (see the module's doc).

    `now` (tests: a later moment) is what the retention periods count back from. Returns what
    was done – the same data as the audit row, which is written only when something was removed –
    with `complete` false when the time limit stopped it between batches."""
    _require_tenant()
    policy = workflow_policy()
    now = now or timezone.now()
    payload_cutoff = now - timedelta(days=policy.payload_retention_days)
    metadata_cutoff = now - timedelta(days=policy.metadata_retention_days)
    deadline = time.monotonic() + time_limit
    purged, deleted = _Tally(), _Tally()
    complete = False
    events_deleted = receipts_deleted = 0

    def report() -> dict[str, Any]:
        return {
            "payload_retention_days": policy.payload_retention_days,
            "metadata_retention_days": policy.metadata_retention_days,
            "payload_cutoff": payload_cutoff.isoformat(),
            "metadata_cutoff": metadata_cutoff.isoformat(),
            "payload_purged": purged.as_data(),
            "deleted": deleted.as_data(),
            "buffered_events_deleted": events_deleted,
            "action_receipts_deleted": receipts_deleted,
            "complete": complete,
        }

    try:
        # Deleting first spares blanking the payloads of runs about to go.
        complete = _drain(lambda: _runs_delete_batch(metadata_cutoff, batch_size), deleted, deadline) and _drain(
            lambda: _payloads_purge_batch(payload_cutoff, batch_size, timezone.now()), purged, deadline
        )
        events_deleted = _buffered_events_delete(payload_cutoff)
        receipts_deleted = _action_receipts_delete(metadata_cutoff)
    except BaseException:
        # Batches commit one by one: an interrupted purge still records the ones that did.
        if purged.runs or deleted.runs or events_deleted or receipts_deleted:
            try:
                _audit(actor, purged, deleted, report())
            except Exception:  # noqa: BLE001 - the original error is the one to raise
                log.exception("runs purge interrupted and its audit row not written", payload_purged=purged.runs, deleted=deleted.runs)
        raise
    if purged.runs or deleted.runs or events_deleted or receipts_deleted:
        _audit(actor, purged, deleted, report())
    log.info("runs purged", payload_purged=purged.runs, deleted=deleted.runs, complete=complete)
    return report()


def _drain(batch: Callable[[], tuple[list[int], dict[str, int]]], tally: _Tally, deadline: float) -> bool:
    """Run `batch` until it finds nothing (True) or time is up (False)."""
    while time.monotonic() < deadline:
        run_ids, counts = batch()
        if not run_ids:
            return True
        tally.add(run_ids, counts)
    return False


def _action_receipts_delete(cutoff: datetime) -> int:
    """Receipts of Baton actions (`workflows.actions`) go with the runs' metadata: by then no step
    that made them can be tried again."""
    deleted, _by_model = ActionReceipt.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def _buffered_events_delete(cutoff: datetime) -> int:
    """Events kept for runs that had not reached their wait yet are payloads too: the same cutoff."""
    deleted, _by_model = BufferedEvent.objects.filter(received_at__lt=cutoff).delete()
    return deleted


def _audit(actor: Any, purged: _Tally, deleted: _Tally, data: dict[str, Any]) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="workflow_runs.purged",
            target_type="workflows.run",
            target_label=f"payloads of {_runs(purged.runs)} erased, {_runs(deleted.runs)} deleted",
            data=data,
        )


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"
