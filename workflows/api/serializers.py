from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from workflows.models import Definition, DefinitionVersion, Run, StepExecution, TemplateVersion, WorkflowTemplate


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


class RunDetailSerializer(RunSerializer):
    steps = serializers.SerializerMethodField(help_text="Step executions in order: the run's timeline.")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "steps"]

    @extend_schema_field(StepExecutionSerializer(many=True))
    def get_steps(self, run: Run) -> list:
        return list(StepExecutionSerializer(self.context.get("steps", []), many=True).data)
