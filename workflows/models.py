"""Workflow templates (public library) and the tenant definitions cloned from them.

The app lives in both schemas: the library tables (WorkflowTemplate, TemplateVersion) exist only
in public, so a tenant's search path (`t_<slug>, public`) reads the one shared library; the
definition tables are in each tenant's schema. `workflows.routers` keeps migrations from
creating library tables in tenant schemas. Runs and their step executions are per tenant and
advanced by `workflows.engine`; timers (retries, waits, escalations) are rows fired by a periodic
task; a step that exhausts its attempts opens an `Incident`; approvals are `Approval` rows and
event waits `EventWait` rows the engine reads when the run wakes.
"""

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils.translation import gettext_lazy as _


class TemplateCategory(models.TextChoices):
    ORDERS = "orders", _("Orders and release")
    EXCEPTIONS = "exceptions", _("Carrier exceptions")
    INVENTORY = "inventory", _("Inventory and warehouse")
    BILLING = "billing", _("Proof of delivery and invoicing")
    CLAIMS = "claims", _("Claims")
    NOTIFICATIONS = "notifications", _("Customer notifications")
    OTHER = "other", _("Other")


# Models whose tables live only in the public schema (see workflows.routers).
LIBRARY_MODELS = frozenset({"workflowtemplate", "templateversion"})


class WorkflowTemplate(models.Model):
    """A library entry: platform-wide (no partner) or owned by one partner."""

    key = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=120)
    category = models.CharField(max_length=20, choices=TemplateCategory.choices, default=TemplateCategory.OTHER)
    description = models.TextField(blank=True)
    # The owning partner lives in tenants (public schema only); this table exists in tenant
    # schemas too, hence an id without a database constraint. Empty means platform-wide.
    partner_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TemplateVersion(models.Model):
    """An immutable published version of a template (semantic version)."""

    template = models.ForeignKey(WorkflowTemplate, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=40)
    major = models.PositiveIntegerField()
    minor = models.PositiveIntegerField()
    patch = models.PositiveIntegerField()
    definition = models.JSONField()
    parameters_schema = models.JSONField(default=dict)
    documentation = models.TextField(blank=True)
    changelog = models.TextField(blank=True)
    published_at = models.DateTimeField()
    published_by_email = models.CharField(max_length=254)

    class Meta:
        ordering = ["template", "-major", "-minor", "-patch"]
        constraints = [models.UniqueConstraint(fields=["template", "version"], name="template_version_unique")]

    def __str__(self) -> str:
        return f"{self.template.key}@{self.version}"


class WorkflowPolicy(models.Model):
    """A tenant's rules for changing its workflows and keeping their runs (one row per tenant schema)."""

    require_second_approver = models.BooleanField(default=False, help_text="Four eyes: the approver must not be the author.")
    payload_retention_days = models.PositiveIntegerField(
        default=30, help_text="Inputs, contexts and step inputs/outputs of finished runs are erased after this many days."
    )
    metadata_retention_days = models.PositiveIntegerField(
        default=400, help_text="Finished runs (status, timeline, errors) are deleted after this many days."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "four eyes" if self.require_second_approver else "single approver"


class Definition(models.Model):
    """A tenant's workflow, cloned from a template version and pinned to it."""

    key = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=120)
    template_key = models.SlugField(max_length=80, blank=True)
    template_version = models.CharField(max_length=40, blank=True)
    published_version = models.ForeignKey("DefinitionVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by_email = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted for approval"
    APPROVED = "approved", "Approved"
    PUBLISHED = "published", "Published"
    SUPERSEDED = "superseded", "Superseded"
    REJECTED = "rejected", "Rejected"


class DefinitionVersion(models.Model):
    """One version of a definition: its full spec and bound parameters, and who moved it along."""

    definition = models.ForeignKey(Definition, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    spec = models.JSONField()
    parameters = models.JSONField(default=dict)
    connection_bindings = models.JSONField(default=dict)
    based_on_template_version = models.CharField(max_length=40, blank=True)
    comment = models.TextField(blank=True)
    created_by_email = models.CharField(max_length=254)
    submitted_by_email = models.CharField(max_length=254, blank=True)
    approved_by_email = models.CharField(max_length=254, blank=True)
    rejected_by_email = models.CharField(max_length=254, blank=True)
    published_by_email = models.CharField(max_length=254, blank=True)
    # What the approver or the rejecter said (the author's words are in `comment`).
    review_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["definition", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["definition", "number"], name="definition_version_number_unique"),
            models.UniqueConstraint(
                fields=["definition"], condition=models.Q(status="published"), name="one_published_version_per_definition"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.definition.key} v{self.number} ({self.status})"


# --- runs (tenant schema) ------------------------------------------------------------------

CORRELATION_KEYS = ("order", "shipment", "po", "bol", "pro")


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    WAITING = "waiting", _("Waiting")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    COMPENSATING = "compensating", _("Compensating")
    COMPENSATED = "compensated", _("Compensated")


RUN_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.COMPENSATED})
# Statuses the engine advances (when the run is ready, not paused and not leased).
RUN_ADVANCING = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPENSATING})


class RunPriority(models.IntegerChoices):
    """The order in which the engine takes ready runs: a definition's `priority` (high, normal,
    low), copied to each run at its start; among runs of one priority, the longest ready first."""

    HIGH = 1, _("High")
    NORMAL = 2, _("Normal")
    LOW = 3, _("Low")


class Run(models.Model):
    """One execution of a definition, pinned to the version it started on.

    `ready_at` not null means the engine may advance it now (claims order by `priority`, then
    by it); the lease
    (`lease_owner`, `lease_expires_at`) says which worker holds it, so a dead worker's run is
    claimable again once the lease runs out. `context` holds step outputs by step id.

    `waiting_for` says in words what a waiting run waits for (a timer, an event, a person).
    A run started by a `parallel` step (one per branch, `stop_at` = the join step) or a
    `child_workflow` step has a `parent`; the parent waits until its children finish. `paused_at`
    keeps the engine from claiming it. `generation` counts restarts from the beginning (it is part
    of step idempotency keys, so a restart does its effects again); `retry_floor` is the last step
    execution before an operator's retry, so attempts are counted afresh after it.
    `compensation_queue` is null unless the run compensates; then it lists the handler steps still
    to run after the current one, and a woken run resumes as `compensating`, not `running`.
    """

    definition = models.ForeignKey(Definition, on_delete=models.PROTECT, related_name="runs")
    definition_version = models.ForeignKey(DefinitionVersion, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=20)
    business_key = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    input = models.JSONField(default=dict)
    context = models.JSONField(default=dict)
    correlation = models.JSONField(default=dict)
    current_step = models.CharField(max_length=80, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(choices=RunPriority.choices, default=RunPriority.NORMAL, db_default=RunPriority.NORMAL)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_by_email = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    waiting_for = models.CharField(max_length=300, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    parent_step = models.CharField(max_length=80, blank=True)
    stop_at = models.CharField(max_length=80, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by_email = models.CharField(max_length=254, blank=True)
    generation = models.PositiveIntegerField(default=0)
    retry_floor = models.BigIntegerField(default=0)
    compensation_queue = models.JSONField(null=True, blank=True, default=None)
    payload_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["definition", "business_key"], condition=~models.Q(business_key=""), name="run_business_key_unique"
            ),
            models.UniqueConstraint(
                fields=["definition", "idempotency_key"], condition=~models.Q(idempotency_key=""), name="run_idempotency_key_unique"
            ),
        ]
        indexes = [
            GinIndex(fields=["correlation"], name="run_correlation_gin"),
            models.Index(fields=["ready_at"], condition=models.Q(ready_at__isnull=False), name="run_ready_at"),
            models.Index(fields=["priority", "ready_at"], condition=models.Q(ready_at__isnull=False), name="run_claim_order"),
            models.Index(fields=["status"], name="run_status"),
            models.Index(fields=["finished_at"], condition=models.Q(finished_at__isnull=False), name="run_finished_at"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.definition_id} ({self.status})"

    def step_key(self, step_id: str) -> str:
        """The idempotency key an outside-world step hands its connector: the same for every
        attempt of the step in this generation of the run."""
        return f"{self.pk}:{step_id}" if self.generation == 0 else f"{self.pk}.{self.generation}:{step_id}"


class StepStatus(models.TextChoices):
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class StepExecution(models.Model):
    """One attempt of one step: the run's timeline. `idempotency_key` is `<run id>:<step id>`, the
    same for every attempt, and is what an outside-world step hands its connector."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=80)
    kind = models.CharField(max_length=20)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=StepStatus.choices)
    input = models.JSONField(default=dict)
    output = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run", "pk"]
        constraints = [models.UniqueConstraint(fields=["idempotency_key", "attempt"], name="step_execution_attempt_unique")]

    def __str__(self) -> str:
        return f"{self.step_id} #{self.attempt} ({self.status})"


class TimerKind(models.TextChoices):
    RETRY = "retry", _("Retry a failed step")
    WAIT_UNTIL = "wait_until", _("Wait until a moment")
    WAIT_TIMEOUT = "wait_timeout", _("Event wait timed out")
    APPROVAL_DUE = "approval_due", _("Approval due")


class Timer(models.Model):
    """A durable timer: when `due_at` passes, `workflows.engine.timers_fire_due` marks it fired
    and makes its (waiting) run ready again. Fired rows stay as the run's history."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="timers")
    kind = models.CharField(max_length=20, choices=TimerKind.choices)
    step_id = models.CharField(max_length=80)
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "pk"]
        indexes = [models.Index(fields=["due_at"], condition=models.Q(fired_at__isnull=True), name="timer_due_unfired")]

    def __str__(self) -> str:
        return f"{self.kind} timer of run {self.run_id} due {self.due_at:%Y-%m-%d %H:%M:%S}"


# --- incidents, human tasks, event waits -----------------------------------------------------


class IncidentStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class IncidentResolution(models.TextChoices):
    RETRIED = "retried", _("Retried from the failed step")
    RESTARTED = "restarted", _("Restarted from the beginning")
    CANCELLED = "cancelled", _("Run cancelled")


class Incident(models.Model):
    """A step that failed for good (attempts exhausted, or not retryable): the run waits in
    `failed` for an operator, who retries it (after fixing input or context), restarts it, or
    cancels it. `attempts` is the history: [{attempt, error, at}]."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="incidents")
    step_id = models.CharField(max_length=80)
    step_kind = models.CharField(max_length=20)
    status = models.CharField(max_length=20, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    error = models.TextField()
    error_class = models.CharField(max_length=120, blank=True)
    step_input = models.JSONField(default=dict)
    attempts = models.JSONField(default=list)
    opened_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by_email = models.CharField(max_length=254, blank=True)
    resolution = models.CharField(max_length=20, choices=IncidentResolution.choices, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(fields=["run"], condition=models.Q(status="open"), name="one_open_incident_per_run"),
        ]
        indexes = [models.Index(fields=["status", "opened_at"], name="incident_status_opened")]

    def __str__(self) -> str:
        return f"incident {self.pk} on run {self.run_id} step {self.step_id} ({self.status})"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    CANCELLED = "cancelled", "Cancelled"


APPROVAL_DECISIONS = (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.CHANGES_REQUESTED)


class Approval(models.Model):
    """A human decision an `approval` step waits for. People with one of `assignee_roles` decide;
    past `due_at` it escalates: `escalation_level` goes up and `escalate_to` roles join the
    assignees (the engine does this when the `approval_due` timer wakes the run)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    step_id = models.CharField(max_length=80)
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    assignee_roles = models.JSONField(default=list)
    escalate_to = models.JSONField(default=list)
    escalation_level = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by_email = models.CharField(max_length=254, blank=True)
    decided_via = models.CharField(max_length=20, blank=True)  # web, api, email
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step_id"], condition=models.Q(status="pending"), name="one_pending_approval_per_run_step"
            ),
        ]
        indexes = [models.Index(fields=["status", "due_at"], name="approval_status_due")]

    def __str__(self) -> str:
        return f"approval {self.pk} of run {self.run_id} ({self.status})"


class EventWaitStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    MATCHED = "matched", _("Matched")
    TIMED_OUT = "timed_out", _("Timed out")
    CANCELLED = "cancelled", _("Cancelled")


class EventWait(models.Model):
    """A `wait_event` step waiting for an event of `event_type` whose correlation contains
    `correlation` (e.g. {"shipment": "SHP-1"}); the first match wins, the timeout timer otherwise."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="event_waits")
    step_id = models.CharField(max_length=80)
    event_type = models.CharField(max_length=120)
    correlation = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=EventWaitStatus.choices, default=EventWaitStatus.WAITING)
    event_id = models.CharField(max_length=200, blank=True)
    event_payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    matched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["event_type"], condition=models.Q(status="waiting"), name="event_wait_waiting"),
            GinIndex(fields=["correlation"], name="event_wait_correlation_gin"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} waits for {self.event_type} ({self.status})"


class BufferedEvent(models.Model):
    """An event as `event_deliver` received it, kept so that a run reaching its `wait_event` step
    after the event came still gets it: a new wait takes the oldest buffered event of its type
    whose correlation contains the wait's, received after the run was created and not taken by
    one of the run's earlier waits at that step. Deleted with the tenant's payload retention."""

    event_type = models.CharField(max_length=120)
    event_id = models.CharField(max_length=200, blank=True)
    correlation = models.JSONField(default=dict)
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["event_type", "received_at"], name="buffered_event_type_received"),
            GinIndex(fields=["correlation"], name="buffered_event_correlation_gin"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event_type", "event_id"], condition=~models.Q(event_id=""), name="buffered_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id or self.pk}"


# --- calendars and schedules -----------------------------------------------------------------


def default_weekly_hours() -> dict[str, list[list[str]]]:
    return {day: [["08:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")} | {"sat": [], "sun": []}


class BusinessCalendar(models.Model):
    """The tenant's working time for business-time waits and due times: opening hours per weekday
    (local time of `time_zone`, empty = the tenant's) and holidays [{"date": "2026-12-25", "name": ...}]."""

    name = models.CharField(max_length=80, unique=True, default="default")
    time_zone = models.CharField(max_length=64, blank=True)
    weekly_hours = models.JSONField(default=default_weekly_hours)
    holidays = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class ScheduleCursor(models.Model):
    """The last minute a definition's schedule trigger was fired for, so the scheduler fires each
    due minute once and catches up (within limits) after downtime."""

    definition = models.ForeignKey(Definition, on_delete=models.CASCADE, related_name="schedule_cursors")
    trigger_index = models.PositiveIntegerField()
    cron = models.CharField(max_length=120)
    last_fired_for = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["definition", "trigger_index"], name="schedule_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.definition_id}#{self.trigger_index} {self.cron} at {self.last_fired_for:%Y-%m-%d %H:%M}"


class ActionReceipt(models.Model):
    """One applied call of a Baton action (`workflows.actions`), by the step's idempotency key:
    a repeated call answers `result` instead of acting twice."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    action = models.CharField(max_length=120)
    result = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.idempotency_key}"
