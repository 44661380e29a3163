"""Reads of the template library (public) and a tenant's definitions, runs, incidents and
approvals (its schema): the pages and the API read through the same functions.

The library tables exist only in public, so on a tenant's search path (`t_<slug>, public`) the
same queries read the shared library; definitions are always the current tenant's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import semver
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery

from accounts.models import Role
from tenants.db import connection
from tenants.selectors import tenants_filter
from workflows.definition_schema import render_placeholders
from workflows.diff import SpecChange, spec_diff
from workflows.models import (
    RUN_FINISHED,
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
    TimerKind,
    WorkflowPolicy,
    WorkflowTemplate,
)
from workflows.validation import step_edges

if TYPE_CHECKING:  # the filter is the operations module's; reads need only its `apply`
    from workflows.operations import IncidentFilter

_NEWEST_FIRST = ("-major", "-minor", "-patch")


def _latest_version_string() -> Subquery:
    return Subquery(TemplateVersion.objects.filter(template=OuterRef("pk")).order_by(*_NEWEST_FIRST).values("version")[:1])


def current_partner_id() -> int | None:
    """The partner that serves the tenant whose schema is active (None on the public schema)."""
    if connection.schema_name == "public":
        return None
    partner_id = getattr(getattr(connection, "tenant", None), "partner_id", None)
    if partner_id is None:  # schema_context() sets a stand-in tenant without its row
        partner_id = tenants_filter().filter(schema_name=connection.schema_name).values_list("partner_id", flat=True).first()
    return partner_id


def library_search(*, query: str = "", category: str = "", partner_id: int | None = None) -> QuerySet[WorkflowTemplate]:
    """Published templates a tenant of `partner_id` may use: the platform's and that partner's.

    Each carries `latest_version` (its newest semantic version); templates with no published
    version are not in the library yet.
    """
    owners = Q(partner_id__isnull=True)
    if partner_id is not None:
        owners |= Q(partner_id=partner_id)
    templates = (
        WorkflowTemplate.objects.filter(owners).annotate(latest_version=_latest_version_string()).filter(latest_version__isnull=False)
    )
    if query:
        templates = templates.filter(Q(name__icontains=query) | Q(key__icontains=query) | Q(description__icontains=query))
    if category:
        templates = templates.filter(category=category)
    return templates.order_by("name", "pk")


def library_template(*, key: str, partner_id: int | None = None) -> WorkflowTemplate | None:
    """One template of the library as `library_search` sees it (None when not visible)."""
    return library_search(partner_id=partner_id).filter(key=key).first()


def template_latest_version(*, template: WorkflowTemplate) -> TemplateVersion | None:
    return template.versions.order_by(*_NEWEST_FIRST).first()


def template_versions(*, template: WorkflowTemplate) -> QuerySet[TemplateVersion]:
    """Newest first."""
    return TemplateVersion.objects.filter(template=template).order_by(*_NEWEST_FIRST)


def template_version_get(*, template: WorkflowTemplate, version: str) -> TemplateVersion | None:
    return TemplateVersion.objects.filter(template=template, version=version).select_related("template").first()


def definitions_list(*, query: str = "") -> QuerySet[Definition]:
    """The tenant's definitions, each with `latest_number` (its newest version's number)."""
    definitions = Definition.objects.select_related("published_version").annotate(latest_number=Max("versions__number"))
    if query:
        definitions = definitions.filter(Q(name__icontains=query) | Q(key__icontains=query) | Q(template_key__icontains=query))
    return definitions.order_by("name", "pk")


def definition_by_key(*, key: str) -> Definition | None:
    return definitions_list().filter(key=key).first()


def definition_versions(*, definition: Definition) -> QuerySet[DefinitionVersion]:
    """Newest first."""
    return DefinitionVersion.objects.filter(definition=definition).order_by("-number")


def definition_current_version(*, definition: Definition) -> DefinitionVersion | None:
    """The published version, or the newest one while nothing is published."""
    if definition.published_version_id:
        return definition.published_version
    return definition_versions(definition=definition).first()


def _template_version_of(definition: Definition, version: str) -> TemplateVersion | None:
    if not definition.template_key or not version:
        return None
    return TemplateVersion.objects.filter(template__key=definition.template_key, version=version).select_related("template").first()


def definition_upstream_diff(*, definition: Definition) -> list[SpecChange]:
    """How the definition (published, or newest) differs from the template version it is based
    on, rendered with the same parameters: `added` is what the tenant added."""
    current = definition_current_version(definition=definition)
    if current is None:
        return []
    upstream = _template_version_of(definition, current.based_on_template_version or definition.template_version)
    if upstream is None:
        return []
    rendered, _problems = render_placeholders(upstream.definition, current.parameters, keep_unbound=True)
    return spec_diff(rendered, current.spec)


def definition_newer_upstream(*, definition: Definition) -> TemplateVersion | None:
    """The template's newest version when it is newer than the one the definition is pinned to."""
    if not definition.template_key:
        return None
    latest = TemplateVersion.objects.filter(template__key=definition.template_key).order_by(*_NEWEST_FIRST).first()
    if latest is None:
        return None
    try:
        pinned = semver.Version.parse(definition.template_version)
    except ValueError:
        return latest
    return latest if semver.Version(latest.major, latest.minor, latest.patch) > pinned else None


def workflow_policy() -> WorkflowPolicy:
    """The tenant's single policy row (made with the defaults on first use)."""
    policy = WorkflowPolicy.objects.order_by("pk").first()
    return policy if policy is not None else WorkflowPolicy.objects.create()


_EDGE_LABELS = {"next": "", "default": "otherwise", "on_timeout": "timed out", "on_reject": "rejected", "branch": "branch", "join": "then"}


def definition_diagram(*, spec: dict[str, Any]) -> dict[str, Any]:
    """Nodes and labelled edges for drawing a spec (tolerates an invalid one: what cannot be
    drawn is left out). `rank` is the distance from the start step, for a top-down layout."""
    steps = [step for step in (spec.get("steps") or []) if isinstance(step, dict) and isinstance(step.get("id"), str)]
    ids = {step["id"] for step in steps}
    declared = spec.get("compensation")
    compensation: dict[str, Any] = declared if isinstance(declared, dict) else {}
    handlers = {handler: undone for undone, handler in compensation.items()}
    edges: list[dict[str, str]] = []
    for step in steps:
        for pointer, field, target in step_edges(step):
            if target not in ids:
                continue
            if field == "when":
                case = step["cases"][int(pointer.split("/")[2])]
                label = case.get("label") or case.get("when") or ""
                edges.append({"source": step["id"], "target": target, "label": str(label), "kind": "case"})
            else:
                edges.append({"source": step["id"], "target": target, "label": _EDGE_LABELS.get(field, field), "kind": field})
        if step["id"] in compensation and compensation[step["id"]] in ids:
            edges.append({"source": step["id"], "target": compensation[step["id"]], "label": "compensate", "kind": "compensation"})
    ranks = _ranks(spec.get("start"), edges)
    nodes = [
        {
            "id": step["id"],
            "kind": step.get("kind", ""),
            "label": step.get("name") or step["id"],
            "start": step["id"] == spec.get("start"),
            "terminal": not any(edge["source"] == step["id"] and edge["kind"] != "compensation" for edge in edges),
            "compensates": handlers.get(step["id"], ""),
            "rank": ranks.get(step["id"]),
        }
        for step in steps
    ]
    triggers = [
        {"kind": trigger.get("kind", ""), "label": _trigger_label(trigger)}
        for trigger in (spec.get("triggers") or [])
        if isinstance(trigger, dict)
    ]
    return {"nodes": nodes, "edges": edges, "triggers": triggers}


def _ranks(start: Any, edges: list[dict[str, str]]) -> dict[str, int]:
    if not isinstance(start, str):
        return {}
    ranks = {start: 0}
    queue = deque([start])
    while queue:
        source = queue.popleft()
        for edge in edges:
            if edge["source"] == source and edge["target"] not in ranks:
                ranks[edge["target"]] = ranks[source] + 1
                queue.append(edge["target"])
    return ranks


def _trigger_label(trigger: dict[str, Any]) -> str:
    kind = trigger.get("kind")
    if kind == "event":
        text = f"on {trigger.get('event_type', '?')}"
        return f"{text} if {trigger['filter']}" if trigger.get("filter") else text
    if kind == "schedule":
        return f"schedule {trigger.get('cron', '?')}"
    if kind == "api":
        return f"API start ({trigger.get('key', '?')})"
    return "started by hand" if kind == "manual" else str(kind)


def library_templates_all(*, query: str = "", category: str = "", owner: str = "") -> QuerySet[WorkflowTemplate]:
    """Every library template, published or not, the platform's and every partner's: the console's
    view (`library_search` is a tenant's: published only, one partner). `owner` is "platform" or a
    partner id."""
    templates = WorkflowTemplate.objects.all()
    if query:
        templates = templates.filter(Q(name__icontains=query) | Q(key__icontains=query) | Q(description__icontains=query))
    if category:
        templates = templates.filter(category=category)
    if owner == "platform":
        templates = templates.filter(partner_id__isnull=True)
    elif owner.isdigit():
        templates = templates.filter(partner_id=int(owner))
    return templates.order_by("name", "pk")


# --- runs --------------------------------------------------------------------------------


def runs_list(
    *, status: str = "", business_key: str = "", definition_key: str = "", correlation: dict[str, str] | None = None
) -> QuerySet[Run]:
    """Runs newest first; `correlation` matches runs holding every given key (GIN index, @>)."""
    runs = Run.objects.select_related("definition", "definition_version")
    if status:
        runs = runs.filter(status=status)
    if business_key:
        runs = runs.filter(business_key=business_key)
    if definition_key:
        runs = runs.filter(definition__key=definition_key)
    if correlation:
        runs = runs.filter(correlation__contains=correlation)
    return runs.order_by("-pk")


def run_get(*, run_id: int) -> Run | None:
    return Run.objects.select_related("definition", "definition_version").filter(pk=run_id).first()


def run_steps(*, run: Run) -> QuerySet[StepExecution]:
    """The run's timeline, in execution order."""
    return StepExecution.objects.filter(run=run).order_by("pk")


def run_children(*, run: Run) -> QuerySet[Run]:
    """The runs this one started (parallel branches, child workflows), in the order it started them."""
    return Run.objects.filter(parent=run).select_related("definition", "definition_version").order_by("pk")


def run_timers_pending(*, run: Run, current_step_only: bool = False) -> list[Timer]:
    """Unfired timers of an unfinished run, soonest first (a finished run's are left to fire
    harmlessly). With `current_step_only`, only those that can still wake it: the current step's,
    and its approval's due time only while that approval is pending (the run page's view; the API
    lists every unfired timer)."""
    if run.status in RUN_FINISHED:
        return []
    timers = Timer.objects.filter(run=run, fired_at__isnull=True).order_by("due_at", "pk")
    if current_step_only:
        timers = timers.filter(step_id=run.current_step)
        if not run_approvals(run=run).filter(step_id=run.current_step, status=ApprovalStatus.PENDING).exists():
            timers = timers.exclude(kind=TimerKind.APPROVAL_DUE)
    return list(timers)


def run_incidents(*, run: Run) -> QuerySet[Incident]:
    """Every incident of the run, newest first (at most one is open)."""
    return Incident.objects.filter(run=run).order_by("-pk")


def run_incident_open(*, run: Run) -> Incident | None:
    return Incident.objects.select_related("run").filter(run=run, status=IncidentStatus.OPEN).first()


def run_approvals(*, run: Run) -> QuerySet[Approval]:
    """The run's approvals in the order its steps asked for them."""
    return Approval.objects.filter(run=run).order_by("pk")


@dataclass(frozen=True)
class RunOperations:
    """What an operator needs next to a run's timeline: its children, what it waits for and what is open."""

    steps: list[StepExecution]
    children: list[Run]
    pending_timers: list[Timer]
    open_incident: Incident | None
    approvals: list[Approval]

    def as_context(self) -> dict[str, Any]:
        return self.__dict__.copy()


def run_operations(*, run: Run) -> RunOperations:
    """The run's operational state as the API answers it with the run."""
    return RunOperations(
        steps=list(run_steps(run=run)),
        children=list(run_children(run=run)),
        pending_timers=run_timers_pending(run=run),
        open_incident=run_incident_open(run=run),
        approvals=list(run_approvals(run=run)),
    )


# --- incidents ---------------------------------------------------------------------------


def incidents_list(*, filter: IncidentFilter | None = None, status: str = "") -> QuerySet[Incident]:
    """Incidents newest first with their run and workflow, narrowed like a bulk retry is (plus the status)."""
    incidents = Incident.objects.select_related("run", "run__definition", "run__definition_version")
    if filter is not None:
        incidents = filter.apply(incidents)
    if status:
        incidents = incidents.filter(status=status)
    return incidents.order_by("-pk")


def incidents_queue(*, filter: IncidentFilter, resolved: bool = False) -> QuerySet[Incident]:
    """The incidents page's tabs: open ones by when they opened, resolved ones by when they were
    resolved, newest first."""
    if resolved:
        return incidents_list(filter=filter, status=IncidentStatus.RESOLVED).order_by("-resolved_at", "-pk")
    return incidents_list(filter=filter, status=IncidentStatus.OPEN).order_by("-opened_at", "-pk")


def incident_get(*, incident_id: int) -> Incident | None:
    return incidents_list().filter(pk=incident_id).first()


def incident_counts() -> dict[str, list[dict[str, Any]]]:
    """Open incidents by workflow and by error class, largest first, each with its share of the
    largest (the bar's length)."""
    open_ = Incident.objects.filter(status=IncidentStatus.OPEN)
    by_workflow = list(
        open_.values("run__definition__key", "run__definition__name").annotate(count=Count("id")).order_by("-count", "run__definition__key")
    )
    by_class = list(open_.values("error_class").annotate(count=Count("id")).order_by("-count", "error_class"))

    def bars(rows: list[Any], value: str, label: str) -> list[dict[str, Any]]:
        top = max((row["count"] for row in rows), default=0) or 1
        return [
            {"value": row[value], "label": row[label] or "(no class)", "count": row["count"], "percent": round(row["count"] * 100 / top)}
            for row in rows
        ]

    return {
        "workflows": bars(by_workflow, "run__definition__key", "run__definition__name"),
        "error_classes": bars(by_class, "error_class", "error_class"),
    }


def incident_filter_choices() -> dict[str, list[str]]:
    """The steps and error classes open incidents have, for the incidents filter."""
    open_ = Incident.objects.filter(status=IncidentStatus.OPEN)
    return {
        "steps": sorted(set(open_.values_list("step_id", flat=True))),
        "error_classes": sorted(set(open_.exclude(error_class="").values_list("error_class", flat=True))),
    }


# --- approvals ---------------------------------------------------------------------------


def approvals_list(*, status: str = "", decider: Any = None) -> QuerySet[Approval]:
    """Approvals newest first. With `decider`, only those that person may decide, the rule of
    `approval_can_decide`: their role among the assignees, tenant admins every one."""
    approvals = Approval.objects.select_related("run", "run__definition", "run__definition_version")
    if status:
        approvals = approvals.filter(status=status)
    if decider is not None:
        role = getattr(decider, "role", "")
        if not role:
            return approvals.none()
        if role != Role.TENANT_ADMIN:
            approvals = approvals.filter(assignee_roles__contains=[role])
    return approvals.order_by("-pk")


def approvals_pending(*, decider: Any = None) -> QuerySet[Approval]:
    """Pending approvals (those `decider` may decide, when given), soonest due first, no due time last."""
    return approvals_list(status=ApprovalStatus.PENDING, decider=decider).order_by(F("due_at").asc(nulls_last=True), "pk")


def approvals_decided() -> QuerySet[Approval]:
    """Approvals that are no longer pending (decided, or cancelled with their run), newest first."""
    return approvals_list().exclude(status=ApprovalStatus.PENDING).order_by(F("decided_at").desc(nulls_last=True), "-pk")


def approvals_search(*, approvals: QuerySet[Approval], query: str) -> QuerySet[Approval]:
    """Narrow a listing to approvals whose title, run's business key or workflow name has `query`,
    or whose run is `query` (a number, with or without "#")."""
    if not query:
        return approvals
    condition = Q(title__icontains=query) | Q(run__business_key__icontains=query) | Q(run__definition__name__icontains=query)
    if query.lstrip("#").isdigit():
        condition |= Q(run_id=int(query.lstrip("#")))
    return approvals.filter(condition)


def approval_get(*, approval_id: int) -> Approval | None:
    return approvals_list().filter(pk=approval_id).first()
