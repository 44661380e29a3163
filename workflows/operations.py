"""What operators and approvers do to runs: pause, resume, cancel, retry and restart after an
incident, retry many incidents at once, and decide approvals.

Every operation locks the run row (the engine's step transaction holds the same lock, so an
operation waits for a step in flight and never interleaves with one), writes the change and
its audit row in one transaction, and wakes the engine after commit when the run is ready.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.core import signing
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from governance.services import actor_of, audit_record
from tenants.db import connection
from workflows.engine import CONTEXT_LIMIT_BYTES, compensation_begin, engine_wake, parent_wake
from workflows.models import (
    APPROVAL_DECISIONS,
    RUN_FINISHED,
    Approval,
    ApprovalStatus,
    EventWait,
    EventWaitStatus,
    Incident,
    IncidentResolution,
    IncidentStatus,
    Run,
    RunStatus,
    StepExecution,
)


class OperationRefused(Exception):
    """The operation does not apply to the run or task in its current state, or its input is
    wrong (then `field` names the input); says why."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


def _locked(run: Run) -> Run:
    return Run.objects.select_for_update(of=("self",)).select_related("definition_version", "definition").get(pk=run.pk)


def _wake_after_commit() -> None:
    transaction.on_commit(partial(engine_wake, connection.schema_name))


def _open_incident(run: Run) -> Incident | None:
    return Incident.objects.filter(run=run, status=IncidentStatus.OPEN).first()


def _resolve(incident: Incident | None, *, actor: Any, resolution: str, comment: str) -> None:
    if incident is None:
        return
    incident.status = IncidentStatus.RESOLVED
    incident.resolution = resolution
    incident.resolved_at = timezone.now()
    incident.resolved_by_email = actor_of(actor).email
    incident.comment = comment
    incident.save(update_fields=["status", "resolution", "resolved_at", "resolved_by_email", "comment"])


def _release_waits(run: Run) -> None:
    """Nothing may wake a run that stopped waiting: close its pending approvals and event waits."""
    Approval.objects.filter(run=run, status=ApprovalStatus.PENDING).update(status=ApprovalStatus.CANCELLED)
    EventWait.objects.filter(run=run, status=EventWaitStatus.WAITING).update(status=EventWaitStatus.CANCELLED)


# --- pause, resume, cancel -------------------------------------------------------------------------


def run_pause(*, run: Run, actor: Any, reason: str = "") -> Run:
    """Stop the engine from taking the run (a step in flight finishes first). Timers still fire;
    the run goes on where it was once resumed."""
    with transaction.atomic():
        run = _locked(run)
        if run.status in RUN_FINISHED:
            raise OperationRefused(f"Run {run.pk} is {run.status}; only unfinished runs can be paused.")
        if run.paused_at is not None:
            raise OperationRefused(f"Run {run.pk} is already paused.")
        run.paused_at, run.paused_by_email = timezone.now(), actor_of(actor).email
        run.lease_owner, run.lease_expires_at = "", None
        run.save(update_fields=["paused_at", "paused_by_email", "lease_owner", "lease_expires_at"])
        audit_record(actor=actor, action="workflow_run.paused", target=run, reason=reason, data={"status": run.status})
    return run


def run_resume(*, run: Run, actor: Any, reason: str = "") -> Run:
    with transaction.atomic():
        run = _locked(run)
        if run.paused_at is None:
            raise OperationRefused(f"Run {run.pk} is not paused.")
        run.paused_at, run.paused_by_email = None, ""
        run.save(update_fields=["paused_at", "paused_by_email"])
        audit_record(actor=actor, action="workflow_run.resumed", target=run, reason=reason, data={"status": run.status})
        if run.ready_at is not None:
            _wake_after_commit()
    return run


def run_cancel(*, run: Run, actor: Any, reason: str = "") -> Run:
    """Cancel an unfinished run: its waits are closed, an open incident is resolved as cancelled,
    and the compensation handlers of its completed steps run (status `compensating`, then
    `compensated`); with nothing to compensate it is `cancelled` at once. Unfinished child runs
    are cancelled after this commits, each in its own transaction."""
    with transaction.atomic():
        run = _locked(run)
        incident = _open_incident(run)
        if run.status in RUN_FINISHED and incident is None:
            raise OperationRefused(f"Run {run.pk} is already {run.status}.")
        if run.status == RunStatus.COMPENSATING:
            raise OperationRefused(f"Run {run.pk} is already compensating.")
        who = actor_of(actor).email
        _resolve(incident, actor=actor, resolution=IncidentResolution.CANCELLED, comment=reason)
        _release_waits(run)
        run.lease_owner, run.lease_expires_at, run.paused_at = "", None, None
        note = f"Cancelled by {who}" + (f": {reason}" if reason else ".")
        if compensation_begin(run, f"{note} Undoing the completed steps."):
            run.finished_at, run.waiting_for = None, ""
            _wake_after_commit()
        else:
            run.status, run.error, run.ready_at, run.finished_at = RunStatus.CANCELLED, note, None, timezone.now()
            run.waiting_for = ""
            if run.parent_id is not None:
                parent_wake(run)
        run.save()
        audit_record(actor=actor, action="workflow_run.cancelled", target=run, reason=reason, data={"status": run.status})
        children = list(Run.objects.filter(parent=run).exclude(status__in=RUN_FINISHED).values_list("pk", flat=True))
    for child_id in children:
        with suppress(OperationRefused):  # finished or compensating meanwhile
            run_cancel(run=Run.objects.get(pk=child_id), actor=actor, reason=f"parent run {run.pk} cancelled")
    return run


# --- incidents --------------------------------------------------------------------------------------


def _checked_json(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OperationRefused(f"The {name} must be a JSON object.", field=name)
    size = len(json.dumps(value, default=str).encode())
    if size > CONTEXT_LIMIT_BYTES:
        raise OperationRefused(f"The {name} is {size // 1024} KB; the limit is {CONTEXT_LIMIT_BYTES // 1024} KB.", field=name)
    return value


def _edited(edits: dict[str, Any], name: str, before: dict[str, Any], after: Any) -> dict[str, Any]:
    """The corrected `after` (checked), noting in `edits[name]` the keys that changed, with
    their values before and after, for the audit row."""
    after = _checked_json(name, after)
    changed = sorted(key for key in set(before) | set(after) if before.get(key, object()) != after.get(key, object()))
    if changed:
        edits[name] = {"keys": changed, "before": {k: before.get(k) for k in changed}, "after": {k: after.get(k) for k in changed}}
    return after


def _floor(run: Run) -> int:
    return StepExecution.objects.filter(run=run).aggregate(last=Max("pk"))["last"] or 0


def incident_retry(
    *, incident: Incident, actor: Any, input: dict[str, Any] | None = None, context: dict[str, Any] | None = None, comment: str = ""
) -> Run:
    """Retry the failed step, optionally with a corrected input or context (the audit row names
    the keys that changed, with before and after). Attempts are counted afresh."""
    with transaction.atomic():
        run = _locked(incident.run)
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.status != IncidentStatus.OPEN:
            raise OperationRefused(f"Incident {incident.pk} is already resolved ({incident.resolution}).")
        edits: dict[str, Any] = {}
        if input is not None:
            run.input = _edited(edits, "input", run.input, input)
        if context is not None:
            run.context = _edited(edits, "context", run.context, context)
        _resolve(incident, actor=actor, resolution=IncidentResolution.RETRIED, comment=comment)
        run.status = RunStatus.RUNNING if run.compensation_queue is None else RunStatus.COMPENSATING
        run.ready_at, run.finished_at, run.error, run.waiting_for = timezone.now(), None, "", ""
        run.retry_floor = _floor(run)
        run.lease_owner, run.lease_expires_at = "", None
        run.save()
        audit_record(
            actor=actor,
            action="workflow_incident.retried",
            target=incident,
            reason=comment,
            data={"run": run.pk, "step": incident.step_id, "edited": edits},
        )
        _wake_after_commit()
    return run


def incident_restart(*, incident: Incident, actor: Any, comment: str = "") -> Run:
    """Start the run again from the beginning on the definition's published version (a newer
    one when a fix was published): a new generation, so step keys and effects are new; the run
    keeps its id, business key and correlation."""
    with transaction.atomic():
        run = _locked(incident.run)
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.status != IncidentStatus.OPEN:
            raise OperationRefused(f"Incident {incident.pk} is already resolved ({incident.resolution}).")
        version = run.definition.published_version
        if version is None:
            raise OperationRefused(f"The workflow '{run.definition.key}' has no published version to restart on.")
        previous = run.definition_version
        _resolve(incident, actor=actor, resolution=IncidentResolution.RESTARTED, comment=comment)
        _release_waits(run)
        run.definition_version = version
        run.generation += 1
        run.context, run.compensation_queue = {}, None
        run.current_step = version.spec["start"]
        run.status, run.ready_at, run.finished_at, run.error, run.waiting_for = RunStatus.RUNNING, timezone.now(), None, "", ""
        run.retry_floor = _floor(run)
        run.lease_owner, run.lease_expires_at = "", None
        run.save()
        audit_record(
            actor=actor,
            action="workflow_incident.restarted",
            target=incident,
            reason=comment,
            data={"run": run.pk, "from_version": previous.number, "to_version": version.number, "generation": run.generation},
        )
        _wake_after_commit()
    return run


@dataclass(frozen=True)
class IncidentFilter:
    definition: str = ""
    step_id: str = ""
    error_class: str = ""
    opened_after: datetime | None = None
    opened_before: datetime | None = None

    def apply(self, incidents: QuerySet[Incident]) -> QuerySet[Incident]:
        if self.definition:
            incidents = incidents.filter(run__definition__key=self.definition)
        if self.step_id:
            incidents = incidents.filter(step_id=self.step_id)
        if self.error_class:
            incidents = incidents.filter(error_class=self.error_class)
        if self.opened_after:
            incidents = incidents.filter(opened_at__gte=self.opened_after)
        if self.opened_before:
            incidents = incidents.filter(opened_at__lt=self.opened_before)
        return incidents


@dataclass
class BulkOutcome:
    retried: list[int]
    skipped: dict[int, str]


def incidents_retry(*, filter: IncidentFilter, actor: Any, comment: str = "", limit: int = 1000) -> BulkOutcome:
    """Retry every open incident the filter matches (up to `limit`), each in its own transaction;
    one that changed meanwhile is skipped with the reason."""
    ids = list(filter.apply(Incident.objects.filter(status=IncidentStatus.OPEN)).order_by("pk").values_list("pk", flat=True)[:limit])
    outcome = BulkOutcome(retried=[], skipped={})
    for incident_id in ids:
        try:
            run = incident_retry(incident=Incident.objects.select_related("run").get(pk=incident_id), actor=actor, comment=comment)
        except OperationRefused as refused:
            outcome.skipped[incident_id] = str(refused)
        else:
            outcome.retried.append(run.pk)
    audit_record(
        actor=actor,
        action="workflow_incidents.bulk_retried",
        target=None,
        reason=comment,
        data={
            "filter": {k: str(v) for k, v in filter.__dict__.items() if v},
            "retried": len(outcome.retried),
            "skipped": len(outcome.skipped),
        },
    )
    return outcome


# --- approvals ---------------------------------------------------------------------------------------

COMMENT_REQUIRED = (ApprovalStatus.REJECTED, ApprovalStatus.CHANGES_REQUESTED)


def approval_can_decide(approval: Approval, user: Any) -> bool:
    """Assignees decide; tenant admins may always step in (audited as themselves)."""
    role = getattr(user, "role", "")
    return role == "tenant_admin" or role in approval.assignee_roles


def approval_decide(*, approval: Approval, decision: str, actor: Any, comment: str = "", via: str = "web") -> Approval:
    """Record a decision on a pending approval and wake its run. Only assignees (or tenant admins;
    API keys are checked by scope at the API) may decide; reject and request changes need a comment."""
    if decision not in APPROVAL_DECISIONS:
        raise OperationRefused(f"Unknown decision '{decision}'; use approved, rejected or changes_requested.", field="decision")
    comment = comment.strip()
    if decision in COMMENT_REQUIRED and not comment:
        raise OperationRefused("Say why in a comment: the requester needs it to act on the decision.", field="comment")
    if getattr(actor, "is_authenticated", False) and not approval_can_decide(approval, actor):
        raise OperationRefused("This approval is assigned to other roles.")
    with transaction.atomic():
        run = _locked(approval.run)
        approval = Approval.objects.select_for_update().get(pk=approval.pk)
        if approval.status != ApprovalStatus.PENDING:
            who = f" by {approval.decided_by_email}" if approval.decided_by_email else ""
            raise OperationRefused(f"This approval was already {approval.get_status_display().lower()}{who}.")
        approval.status, approval.comment, approval.decided_via = decision, comment, via
        approval.decided_at, approval.decided_by_email = timezone.now(), actor_of(actor).email
        approval.save(update_fields=["status", "comment", "decided_via", "decided_at", "decided_by_email"])
        audit_record(
            actor=actor,
            action="workflow_approval.decided",
            target=approval,
            reason=comment,
            data={"run": run.pk, "step": approval.step_id, "decision": decision, "via": via},
        )
        if run.status == RunStatus.WAITING and run.current_step == approval.step_id:
            run.status, run.ready_at, run.error, run.waiting_for = RunStatus.RUNNING, timezone.now(), "", ""
            run.save(update_fields=["status", "ready_at", "error", "waiting_for"])
            _wake_after_commit()
    return approval


APPROVAL_LINK_SALT = "baton.workflows.approval-link"
APPROVAL_LINK_MAX_AGE = 7 * 24 * 3600


def approval_link_token(*, approval: Approval, user_id: int, decision: str) -> str:
    """A signed, expiring token for an email link: it names the schema, the approval, the person
    and the decision, so it cannot be replayed on another tenant, task or decision. It is no
    credential: following it needs that person's own session (with MFA where their account has
    it), a confirmation (no decision on GET), and the person must still be an assignee."""
    payload = {"s": connection.schema_name, "a": approval.pk, "u": user_id, "d": decision}
    return signing.dumps(payload, salt=APPROVAL_LINK_SALT, compress=True)


@dataclass(frozen=True)
class ApprovalLink:
    approval_id: int
    user_id: int
    decision: str


def approval_link_read(token: str, *, max_age: int = APPROVAL_LINK_MAX_AGE) -> ApprovalLink:
    """The link's content if the signature is valid, unexpired and for the current schema;
    raises OperationRefused saying which of those failed."""
    try:
        payload = signing.loads(token, salt=APPROVAL_LINK_SALT, max_age=max_age)
    except signing.SignatureExpired as error:
        raise OperationRefused("This approval link has expired; open the approval from your inbox instead.") from error
    except signing.BadSignature as error:
        raise OperationRefused("This approval link is not valid (it may have been cut short or altered).") from error
    if payload.get("s") != connection.schema_name or payload.get("d") not in APPROVAL_DECISIONS:
        raise OperationRefused("This approval link belongs to another workspace.")
    return ApprovalLink(approval_id=int(payload["a"]), user_id=int(payload["u"]), decision=str(payload["d"]))
