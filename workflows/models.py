"""Workflow templates (public library) and the tenant definitions cloned from them.

The app lives in both schemas: the library tables (WorkflowTemplate, TemplateVersion) exist only
in public, so a tenant's search path (`t_<slug>, public`) reads the one shared library; the
definition tables are in each tenant's schema. `workflows.routers` keeps migrations from
creating library tables in tenant schemas. Runs, steps, timers and incidents arrive with the
execution engine.
"""

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
