"""Workflow templates (public library) and the tenant definitions cloned from them.

The app lives in both schemas: the library tables (WorkflowTemplate, TemplateVersion) exist only
in public, so a tenant's search path (`t_<slug>, public`) reads the one shared library; the
definition tables are in each tenant's schema. `workflows.routers` keeps migrations from
creating library tables in tenant schemas. Runs and their step executions are per tenant and
advanced by `workflows.engine`; timers (retries, waits) are rows fired by a periodic task;
incidents arrive with a later slice of the engine.
"""

from django.contrib.postgres.indexes import GinIndex
from django.db import models


class TemplateCategory(models.TextChoices):
    ORDERS = "orders", "Orders and release"
    EXCEPTIONS = "exceptions", "Carrier exceptions"
    INVENTORY = "inventory", "Inventory and warehouse"
    BILLING = "billing", "Proof of delivery and invoicing"
    CLAIMS = "claims", "Claims"
    NOTIFICATIONS = "notifications", "Customer notifications"
    OTHER = "other", "Other"


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
    """A tenant's rules for changing its workflows (one row per tenant schema)."""

    require_second_approver = models.BooleanField(default=False, help_text="Four eyes: the approver must not be the author.")
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
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


RUN_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class Run(models.Model):
    """One execution of a definition, pinned to the version it started on.

    `ready_at` not null means the engine may advance it now (claims order by it); the lease
    (`lease_owner`, `lease_expires_at`) says which worker holds it, so a dead worker's run is
    claimable again once the lease runs out. `context` holds step outputs by step id.
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
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_by_email = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

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
            models.Index(fields=["status"], name="run_status"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.definition_id} ({self.status})"


class StepStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


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
    RETRY = "retry", "Retry a failed step"
    WAIT_UNTIL = "wait_until", "Wait until a moment"
    WAIT_TIMEOUT = "wait_timeout", "Event wait timed out"
    APPROVAL_DUE = "approval_due", "Approval due"


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
