import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from workflows.definition_schema import EVENT_TYPE_PATTERN
from workflows.engine import CONTEXT_LIMIT_BYTES
from workflows.models import (
    APPROVAL_DECISIONS,
    CORRELATION_KEYS,
    Approval,
    ApprovalStatus,
    Definition,
    DefinitionVersion,
    Incident,
    IncidentStatus,
    Run,
    StepExecution,
    TemplateVersion,
    Timer,
    WorkflowTemplate,
)
from workflows.operations import COMMENT_REQUIRED, IncidentFilter, approval_can_decide
from workflows.runs import BATCH_START_LIMIT

# At most this many incidents per bulk retry request (the service's own default).
BULK_RETRY_LIMIT = 1000


class TemplateVersionSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = TemplateVersion
        fields = ["version", "changelog", "published_at"]


class TemplateVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = TemplateVersion
        fields = ["version", "changelog", "published_at", "documentation", "parameters_schema", "definition"]


class TemplateSerializer(serializers.ModelSerializer):
    latest_version = serializers.CharField(read_only=True, help_text="The newest published semantic version.")
    owner = serializers.SerializerMethodField(help_text="'platform' for Baton's own templates, 'partner' for your provider's.")

    class Meta:
        model = WorkflowTemplate
        fields = ["key", "name", "category", "description", "owner", "latest_version"]

    @extend_schema_field(serializers.ChoiceField(choices=["platform", "partner"]))
    def get_owner(self, template: WorkflowTemplate) -> str:
        return "platform" if template.partner_id is None else "partner"


class TemplateDetailSerializer(TemplateSerializer):
    latest = serializers.SerializerMethodField(help_text="The newest version in full: definition, parameters schema, documentation.")
    versions = serializers.SerializerMethodField(help_text="Every published version, newest first.")

    class Meta(TemplateSerializer.Meta):
        fields = [*TemplateSerializer.Meta.fields, "latest", "versions"]

    @extend_schema_field(TemplateVersionSerializer)
    def get_latest(self, template: WorkflowTemplate) -> dict:
        versions = self.context["versions"]
        return TemplateVersionSerializer(versions[0]).data if versions else {}

    @extend_schema_field(TemplateVersionSummarySerializer(many=True))
    def get_versions(self, template: WorkflowTemplate) -> list:
        return list(TemplateVersionSummarySerializer(self.context["versions"], many=True).data)


class DefinitionVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = DefinitionVersion
        fields = [
            "number",
            "status",
            "spec",
            "parameters",
            "connection_bindings",
            "based_on_template_version",
            "comment",
            "review_comment",
            "created_by_email",
            "submitted_by_email",
            "approved_by_email",
            "rejected_by_email",
            "published_by_email",
            "created_at",
            "published_at",
        ]


class DefinitionDraftSerializer(serializers.Serializer):
    """A new draft version of this workflow from an edited spec."""

    spec = serializers.DictField(help_text="The whole definition: triggers, steps and transitions.")
    parameters = serializers.DictField(
        required=False, help_text="Values for the template's parameters schema; the newest version's when left out."
    )
    connection_bindings = serializers.DictField(
        child=serializers.CharField(allow_blank=False, allow_null=True),
        required=False,
        help_text=(
            "Connection name a connector step uses → your connection (lowercase letters, digits, '-' and '_', at most 80). "
            "A name left out or null is called as it is; bindings for names the spec does not use are dropped with a note. "
            "The newest version's bindings when left out."
        ),
    )
    comment = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=500, help_text="What changed and why; approvers read it."
    )


class DraftNoteSerializer(serializers.Serializer):
    pointer = serializers.CharField(help_text="A JSON pointer into the request body.")
    note = serializers.CharField(source="text")


class DefinitionDraftCreatedSerializer(DefinitionVersionSerializer):
    notes = serializers.SerializerMethodField(help_text="What to know that did not stop the draft: unbound or dropped connections.")

    class Meta(DefinitionVersionSerializer.Meta):
        fields = [*DefinitionVersionSerializer.Meta.fields, "notes"]

    @extend_schema_field(DraftNoteSerializer(many=True))
    def get_notes(self, version: DefinitionVersion) -> list:
        return list(DraftNoteSerializer(self.context.get("notes", []), many=True).data)


class DefinitionSerializer(serializers.ModelSerializer):
    published_version = serializers.SerializerMethodField(help_text="The number of the version new runs use (null until one is published).")
    latest_version = serializers.SerializerMethodField(help_text="The number of the newest version, whatever its status.")

    class Meta:
        model = Definition
        fields = [
            "key",
            "name",
            "template_key",
            "template_version",
            "published_version",
            "latest_version",
            "created_by_email",
            "created_at",
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_published_version(self, definition: Definition) -> int | None:
        return definition.published_version.number if definition.published_version else None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_latest_version(self, definition: Definition) -> int | None:
        return getattr(definition, "latest_number", None)


class DefinitionDetailSerializer(DefinitionSerializer):
    current = serializers.SerializerMethodField(help_text="The published version, or the newest while nothing is published.")

    class Meta(DefinitionSerializer.Meta):
        fields = [*DefinitionSerializer.Meta.fields, "current"]

    @extend_schema_field(DefinitionVersionSerializer(allow_null=True))
    def get_current(self, definition: Definition) -> dict | None:
        current = self.context.get("current")
        return DefinitionVersionSerializer(current).data if current else None


class DefinitionCloneSerializer(serializers.Serializer):
    """Clone a library template into this workspace (version 1 is a draft)."""

    template = serializers.SlugField(max_length=80, help_text="The template's key.")
    version = serializers.CharField(max_length=40, required=False, default="", help_text="A published version; the newest when left out.")
    key = serializers.SlugField(max_length=80, help_text="The new workflow's key in this workspace.")
    name = serializers.CharField(max_length=120)
    parameters = serializers.DictField(required=False, default=dict, help_text="Values for the template's parameters schema.")
    connection_bindings = serializers.DictField(
        child=serializers.CharField(), required=False, default=dict, help_text="Connection name used by the workflow → your connection."
    )


class ProblemErrorSerializer(serializers.Serializer):
    pointer = serializers.CharField(help_text="A JSON pointer into the request body.")
    reason = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    # A declared field, so the metaclass removes the attribute; only the stubs see the clash with .errors.
    errors = ProblemErrorSerializer(many=True, required=False)  # type: ignore[assignment]


class RunStartSerializer(serializers.Serializer):
    """Start a run of the workflow's published version."""

    input = serializers.DictField(required=False, default=dict, help_text="The run's input (at most 256 KB as JSON).")
    business_key = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True, help_text="Starting twice with the same key returns the first run."
    )
    correlation = serializers.DictField(
        child=serializers.CharField(max_length=200),
        required=False,
        default=dict,
        help_text="Searchable keys: order, shipment, po, bol, pro.",
    )


class RunBatchItemSerializer(RunStartSerializer):
    """One run of a batch: the single start's body, with its own idempotency key."""

    input = serializers.DictField(help_text="The run's input (at most 256 KB as JSON).")
    idempotency_key = serializers.CharField(
        max_length=200,
        required=False,
        default="",
        allow_blank=True,
        help_text="What the single start takes as the Idempotency-Key header: the same key and run body return the same run, "
        "another body is refused (409).",
    )


class RunBatchStartSerializer(serializers.Serializer):
    """Start many runs of the workflow's published version in one request."""

    runs = serializers.ListField(
        child=RunBatchItemSerializer(),
        min_length=1,
        max_length=BATCH_START_LIMIT,
        help_text=f"1 to {BATCH_START_LIMIT} runs. Each is started, found (its key started it before) or refused on its own.",
    )


class RunBatchProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField(help_text="What the single start would answer: 409 or 422.")
    detail = serializers.CharField()
    pointer = serializers.CharField(help_text="A JSON pointer into the request body, e.g. /runs/2/input.")


class RunBatchOutcomeSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The run's position in the request's `runs`.")
    id = serializers.IntegerField(required=False, help_text="The run: started now, or the one its key started before.")
    status = serializers.CharField(required=False, help_text="The run's status now.")
    created = serializers.BooleanField(required=False, help_text="False when its key (or an earlier run of the batch) started it.")
    error = RunBatchProblemSerializer(required=False, help_text="Why this run was refused; the other runs are not affected.")


class RunBatchStartedSerializer(serializers.Serializer):
    runs = RunBatchOutcomeSerializer(many=True, help_text="One entry per run of the request, in its order.")
    created = serializers.IntegerField(help_text="Runs started now.")
    existing = serializers.IntegerField(help_text="Runs their keys had started before: returned, not started again.")
    refused = serializers.IntegerField()


class RunLinksSerializer(serializers.Serializer):
    self = serializers.CharField()
    definition = serializers.CharField()


class RunSerializer(serializers.ModelSerializer):
    definition = serializers.CharField(source="definition.key", read_only=True)
    version = serializers.IntegerField(source="definition_version.number", read_only=True, help_text="The pinned definition version.")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "definition",
            "version",
            "status",
            "trigger",
            "business_key",
            "correlation",
            "current_step",
            "input",
            "context",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    @extend_schema_field(RunLinksSerializer)
    def get_links(self, run: Run) -> dict:
        return {"self": f"/api/v1/runs/{run.pk}", "definition": f"/api/v1/definitions/{run.definition.key}"}


class StepExecutionSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepExecution
        fields = ["step_id", "kind", "attempt", "status", "input", "output", "error", "started_at", "finished_at", "duration_ms"]


# --- operations: the run's operational state, incidents, approvals, events --------------------


class RunChildSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = ["id", "status", "trigger"]


class PendingTimerSerializer(serializers.ModelSerializer):
    step = serializers.CharField(source="step_id", read_only=True)

    class Meta:
        model = Timer
        fields = ["kind", "step", "due_at"]


class RunApprovalSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Approval
        fields = ["id", "status", "due_at"]


class IncidentReferenceSerializer(serializers.Serializer):
    id = serializers.IntegerField()


class RunDetailSerializer(RunSerializer):
    steps = serializers.SerializerMethodField(help_text="Step executions in order: the run's timeline.")
    # Declared fields are taken off the class by the metaclass; only the stubs see a clash with Field.parent.
    parent = serializers.IntegerField(  # type: ignore[assignment]
        source="parent_id", read_only=True, allow_null=True, help_text="The run that started this one."
    )
    children = serializers.SerializerMethodField(help_text="Runs this one started (parallel branches, child workflows).")
    pending_timers = serializers.SerializerMethodField(
        help_text="Unfired timers of an unfinished run: next attempt, wait timeout, approval due."
    )
    open_incident = serializers.SerializerMethodField(help_text="The incident the run waits on for an operator, if any.")
    approvals = serializers.SerializerMethodField(help_text="Every approval the run asked for, oldest first.")

    class Meta(RunSerializer.Meta):
        fields = [
            *RunSerializer.Meta.fields,
            "waiting_for",
            "paused_at",
            "parent",
            "children",
            "generation",
            "pending_timers",
            "open_incident",
            "approvals",
            "steps",
        ]
        extra_kwargs = {
            "waiting_for": {"help_text": "What a waiting run waits for, in words."},
            "paused_at": {"help_text": "Set while an operator holds the run; the engine does not take it."},
            "generation": {"help_text": "How many times the run was restarted from the beginning."},
        }

    @extend_schema_field(StepExecutionSerializer(many=True))
    def get_steps(self, run: Run) -> list:
        return list(StepExecutionSerializer(self.context.get("steps", []), many=True).data)

    @extend_schema_field(RunChildSerializer(many=True))
    def get_children(self, run: Run) -> list:
        return list(RunChildSerializer(self.context.get("children", []), many=True).data)

    @extend_schema_field(PendingTimerSerializer(many=True))
    def get_pending_timers(self, run: Run) -> list:
        return list(PendingTimerSerializer(self.context.get("pending_timers", []), many=True).data)

    @extend_schema_field(IncidentReferenceSerializer(allow_null=True))
    def get_open_incident(self, run: Run) -> dict | None:
        incident = self.context.get("open_incident")
        return {"id": incident.pk} if incident is not None else None

    @extend_schema_field(RunApprovalSummarySerializer(many=True))
    def get_approvals(self, run: Run) -> list:
        return list(RunApprovalSummarySerializer(self.context.get("approvals", []), many=True).data)


class RunOperationSerializer(serializers.Serializer):
    """Pause, resume or cancel a run."""

    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000, help_text="Kept in the audit log.")


class IncidentLinksSerializer(serializers.Serializer):
    self = serializers.CharField()
    run = serializers.CharField()


class IncidentSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id", read_only=True)
    definition = serializers.CharField(source="run.definition.key", read_only=True)
    step = serializers.CharField(source="step_id", read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "run",
            "definition",
            "step",
            "step_kind",
            "status",
            "error",
            "error_class",
            "opened_at",
            "resolution",
            "resolved_at",
            "links",
        ]

    @extend_schema_field(IncidentLinksSerializer)
    def get_links(self, incident: Incident) -> dict:
        return {"self": f"/api/v1/incidents/{incident.pk}", "run": f"/api/v1/runs/{incident.run_id}"}


class IncidentAttemptSerializer(serializers.Serializer):
    attempt = serializers.IntegerField()
    error = serializers.CharField()
    at = serializers.DateTimeField()


class IncidentDetailSerializer(IncidentSerializer):
    attempts = IncidentAttemptSerializer(
        many=True, read_only=True, help_text="Failed attempts since the step last succeeded or was retried."
    )

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "attempts", "step_input", "resolved_by_email", "comment"]
        extra_kwargs = {"step_input": {"help_text": "What the step was given on its last attempt."}}


def _json_object_within_limit(name: str, value: dict) -> dict:
    size = len(json.dumps(value, default=str).encode())
    if size > CONTEXT_LIMIT_BYTES:
        raise serializers.ValidationError(f"The {name} is {size // 1024} KB; the limit is {CONTEXT_LIMIT_BYTES // 1024} KB.")
    return value


class IncidentRetrySerializer(serializers.Serializer):
    """Retry the failed step, optionally after correcting the run's input or context (each replaced whole)."""

    input = serializers.DictField(required=False, help_text="The run's corrected input; left out, the input stays as it is.")
    # As `parent` above: the stubs see a clash with Serializer.context, the metaclass removes the attribute.
    context = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="The run's corrected context; left out, the context stays as it is."
    )
    comment = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=2000, help_text="Kept with the incident and in the audit log."
    )

    def validate_input(self, value: dict) -> dict:
        return _json_object_within_limit("input", value)

    def validate_context(self, value: dict) -> dict:
        return _json_object_within_limit("context", value)


class IncidentRestartSerializer(serializers.Serializer):
    """Start the run again from the beginning on the workflow's published version."""

    comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


class IncidentFilterSerializer(serializers.Serializer):
    """Which incidents: every field narrows, none means all."""

    definition = serializers.CharField(required=False, default="", allow_blank=True, max_length=80, help_text="A workflow's key.")
    step = serializers.CharField(required=False, default="", allow_blank=True, max_length=80, help_text="A step id.")
    error_class = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=120, help_text="e.g. Unavailable, AuthError."
    )
    opened_after = serializers.DateTimeField(required=False, default=None, allow_null=True, help_text="Opened at or after this moment.")
    opened_before = serializers.DateTimeField(required=False, default=None, allow_null=True, help_text="Opened before this moment.")

    def incident_filter(self) -> IncidentFilter:
        data = self.validated_data
        return IncidentFilter(
            definition=data["definition"],
            step_id=data["step"],
            error_class=data["error_class"],
            opened_after=data["opened_after"],
            opened_before=data["opened_before"],
        )


class IncidentListFilterSerializer(IncidentFilterSerializer):
    status = serializers.ChoiceField(choices=IncidentStatus.choices, required=False, default="", allow_blank=True)


class IncidentsRetrySerializer(IncidentFilterSerializer):
    """Retry every open incident the filter matches (at most `limit`), each on its own."""

    comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)
    limit = serializers.IntegerField(required=False, default=BULK_RETRY_LIMIT, min_value=1, max_value=BULK_RETRY_LIMIT)


class IncidentSkippedSerializer(serializers.Serializer):
    incident = serializers.IntegerField()
    reason = serializers.CharField()


class IncidentsRetriedSerializer(serializers.Serializer):
    retried = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of the runs retried.")
    skipped = IncidentSkippedSerializer(many=True, help_text="Incidents that changed meanwhile, with why.")


class ApprovalLinksSerializer(serializers.Serializer):
    self = serializers.CharField()
    run = serializers.CharField()
    decision = serializers.CharField()


class ApprovalSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id", read_only=True)
    definition = serializers.CharField(source="run.definition.key", read_only=True)
    business_key = serializers.CharField(source="run.business_key", read_only=True)
    step = serializers.CharField(source="step_id", read_only=True)
    can_decide = serializers.SerializerMethodField(help_text="Whether the caller may decide it now.")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Approval
        fields = [
            "id",
            "run",
            "definition",
            "business_key",
            "step",
            "title",
            "instructions",
            "status",
            "assignee_roles",
            "escalation_level",
            "due_at",
            "created_at",
            "decided_at",
            "decided_by_email",
            "decided_via",
            "comment",
            "can_decide",
            "links",
        ]

    @extend_schema_field(serializers.BooleanField())
    def get_can_decide(self, approval: Approval) -> bool:
        decider = self.context.get("decider")
        return approval.status == ApprovalStatus.PENDING and (decider is None or approval_can_decide(approval, decider))

    @extend_schema_field(ApprovalLinksSerializer)
    def get_links(self, approval: Approval) -> dict:
        return {
            "self": f"/api/v1/approvals/{approval.pk}",
            "run": f"/api/v1/runs/{approval.run_id}",
            "decision": f"/api/v1/approvals/{approval.pk}/decision",
        }


class ApprovalDecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=[(value, value) for value in APPROVAL_DECISIONS])
    comment = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=4000, help_text="Required to reject or request changes."
    )

    def validate(self, attrs: dict) -> dict:
        if attrs["decision"] in COMMENT_REQUIRED and not attrs["comment"].strip():
            raise serializers.ValidationError({"comment": "Say why in a comment: the requester needs it to act on the decision."})
        return attrs


class EventSerializer(serializers.Serializer):
    """An event from a partner or internal system."""

    event_type = serializers.RegexField(
        EVENT_TYPE_PATTERN,
        max_length=120,
        help_text="Dotted lower-case name, e.g. tracking.delivered.",
        error_messages={"invalid": "Use a dotted lower-case name such as tracking.delivered."},
    )
    event_id = serializers.CharField(
        max_length=200, help_text="The sender's id of the event: a redelivery with the same id starts nothing new."
    )
    correlation = serializers.DictField(
        child=serializers.CharField(max_length=200),
        required=False,
        default=dict,
        help_text="Keys that tie it to runs: order, shipment, po, bol, pro.",
    )
    payload = serializers.DictField(required=False, default=dict, help_text="The event's content (at most 256 KB as JSON).")

    def validate_correlation(self, value: dict) -> dict:
        unknown = sorted(set(value) - set(CORRELATION_KEYS))
        if unknown:
            raise serializers.ValidationError(f"Unknown correlation key '{unknown[0]}'; use {', '.join(CORRELATION_KEYS)}.")
        return value

    def validate_payload(self, value: dict) -> dict:
        return _json_object_within_limit("payload", value)


class TriggerProblemSerializer(serializers.Serializer):
    definition = serializers.CharField(help_text="The workflow's key.")
    trigger_index = serializers.IntegerField(help_text="Position of the trigger in the published version's `triggers`.")
    reason = serializers.CharField()


class EventAcceptedSerializer(serializers.Serializer):
    event_id = serializers.CharField()
    woken_runs = serializers.ListField(child=serializers.IntegerField(), help_text="Runs that were waiting for this event and go on now.")
    started_runs = serializers.ListField(child=serializers.IntegerField(), help_text="Runs its event triggers started.")
    duplicate_runs = serializers.ListField(
        child=serializers.IntegerField(), help_text="Runs an earlier delivery of the same event id already started."
    )
    problems = TriggerProblemSerializer(many=True, help_text="Event triggers that could not be evaluated or started.")
