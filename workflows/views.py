"""The tenant's workflow pages: the template library, the clone wizard, definitions with their
versions, diff against upstream and approval, and runs with their step timeline. Each view
translates a request into one selector or service call and its result into a page."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import tenant_role_required
from workflows import selectors, services
from workflows.definition_schema import render_placeholders
from workflows.diagram import diagram_svg
from workflows.forms import (
    SPEC_FORMATS,
    CloneNameForm,
    ConnectionBindingsForm,
    DefinitionEditForm,
    ParametersForm,
    PolicyForm,
    RetentionForm,
    RunRetryForm,
    RunStartForm,
    VersionCommentForm,
    as_dict,
    json_compact,
    json_pretty,
    parameter_names,
    pointer_field,
    pointer_parts,
    readable,
    schema_properties,
    spec_format,
    spec_text,
)
from workflows.models import (
    CORRELATION_KEYS,
    RUN_FINISHED,
    Definition,
    DefinitionVersion,
    Incident,
    IncidentStatus,
    Run,
    RunStatus,
    StepStatus,
    TemplateCategory,
    TemplateVersion,
    TimerKind,
    VersionStatus,
    WorkflowTemplate,
)
from workflows.operations import OperationRefused, incident_restart, incident_retry, run_cancel, run_pause, run_resume
from workflows.retention import RetentionInvalid, workflow_policy_retention_update
from workflows.runs import RunError, run_start
from workflows.triggers import schedule_summary
from workflows.validation import parameters_validate

AUTHORS = (Role.TENANT_ADMIN, Role.PLANNER)
APPROVERS = (Role.TENANT_ADMIN,)
# Who operates runs: pause, resume, cancel, retry and restart them, and start them by hand.
OPERATORS = (Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER)
WIZARD_SESSION_KEY = "workflows.clone.{key}"
WIZARD_STEPS = ("Name", "Parameters", "Review")


def _can(user, roles: tuple[str, ...]) -> bool:
    return user.role in roles or bool(user.support_grant_id)


def _owner_label(request, template: WorkflowTemplate) -> str:
    if template.partner_id is None:
        return _("Platform")
    partner = getattr(request.tenant, "partner", None)
    return _("%(partner)s (your provider)") % {"partner": partner.name} if partner is not None else _("Your provider")


# ---------- documentation: a small, safe subset of Markdown ----------

_HEADING = re.compile(r"^(#{1,4})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_INLINE = re.compile(r"\*\*(?P<strong>[^*]+)\*\*|`(?P<code>[^`]+)`|\*(?P<em>[^*\s][^*]*)\*|_(?P<em2>[^_\s][^_]*)_")


def inline_segments(text: str) -> list[dict[str, str]]:
    """**bold**, *italic* and `code` as (kind, text) pieces; the template escapes each text."""
    segments, position = [], 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            segments.append({"kind": "text", "text": text[position : match.start()]})
        kind = next(name for name in ("strong", "code", "em", "em2") if match.group(name) is not None)
        segments.append({"kind": "em" if kind == "em2" else kind, "text": match.group(kind)})
        position = match.end()
    if position < len(text):
        segments.append({"kind": "text", "text": text[position:]})
    return segments


def documentation_blocks(text: str) -> list[dict[str, Any]]:
    """Headings (#), bullet and numbered lists, and paragraphs with line breaks, as plain data
    for the template, which escapes every word: the text is never marked safe."""
    blocks: list[dict[str, Any]] = []
    paragraph: list[list[dict[str, str]]] = []

    def flush() -> None:
        if paragraph:
            blocks.append({"kind": "p", "lines": list(paragraph)})
            paragraph.clear()

    for line in (text or "").splitlines():
        heading, bullet, numbered = _HEADING.match(line), _BULLET.match(line), _NUMBERED.match(line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            blocks.append({"kind": "h", "segments": inline_segments(heading.group(2).strip())})
        elif bullet or numbered:
            flush()
            kind = "ul" if bullet else "ol"
            item = inline_segments((bullet or numbered).group(1))  # type: ignore[union-attr]
            if blocks and blocks[-1]["kind"] == kind:
                blocks[-1]["items"].append(item)
            else:
                blocks.append({"kind": kind, "items": [item]})
        else:
            paragraph.append(inline_segments(line.strip()))
    flush()
    return blocks


@dataclass
class ParameterRow:
    name: str
    type: str
    default: str
    description: str
    required: bool
    choices: str


def parameter_rows(schema: dict[str, Any]) -> list[ParameterRow]:
    properties = schema_properties(schema)
    required = set(as_dict(schema).get("required") or [])
    rows = []
    for name in parameter_names(schema):
        prop = as_dict(properties[name])
        kind = prop.get("type", "choice" if isinstance(prop.get("enum"), list) else "any")
        if isinstance(kind, list):
            kind = " or ".join(str(k) for k in kind)
        items = as_dict(prop.get("items"))
        options = prop.get("enum") if isinstance(prop.get("enum"), list) else None
        if kind == "array" and isinstance(items.get("enum"), list):
            kind, options = "list of choices", items["enum"]
        elif kind == "array" and items.get("type"):
            kind = f"list of {items['type']}s"
        rows.append(
            ParameterRow(
                name=name,
                type=str(kind),
                default=json_compact(prop["default"]) if "default" in prop else "",
                description=str(prop.get("description") or prop.get("title") or ""),
                required=name in required and "default" not in prop,
                choices=", ".join(json_compact(option) for option in options) if options else "",
            )
        )
    return rows


# ---------- library ----------


def _library(request, query: str = "", category: str = ""):
    return selectors.library_search(query=query, category=category, partner_id=request.tenant.partner_id)


def _template_or_404(request, key: str) -> WorkflowTemplate:
    """A template this tenant may see (platform-wide or its own provider's), else 404."""
    found = selectors.library_template(key=key, partner_id=request.tenant.partner_id)
    if found is None:
        raise Http404("No such template in your library.")
    return found


def _template_version(template: WorkflowTemplate, version: str = "") -> TemplateVersion | None:
    if version:
        return selectors.template_version_get(template=template, version=version)
    return selectors.template_latest_version(template=template)


def _own_definitions_from(template_key: str) -> list[Definition]:
    """This tenant's workflows cloned from a template (so nobody clones it twice by mistake)."""
    return [definition for definition in selectors.definitions_list(query=template_key) if definition.template_key == template_key]


@tenant_role_required()
def library(request):
    query, category = request.GET.get("q", "").strip(), request.GET.get("category", "")
    page = Paginator(_library(request, query, category), 24).get_page(request.GET.get("page"))
    in_use = Counter(definition.template_key for definition in selectors.definitions_list() if definition.template_key)
    cards = [
        {
            "template": template,
            "latest": selectors.template_latest_version(template=template),
            "owner": _owner_label(request, template),
            "in_use": in_use.get(template.key, 0),
        }
        for template in page.object_list
    ]
    context = {"page": page, "cards": cards, "query": query, "category": category, "categories": TemplateCategory.choices}
    template_name = "workflows/_library_results.html" if request.htmx else "workflows/library.html"
    return render(request, template_name, context)


@tenant_role_required()
def template_detail(request, key: str):
    template = _template_or_404(request, key)
    versions = list(selectors.template_versions(template=template))
    requested = request.GET.get("version", "")
    shown = next((v for v in versions if v.version == requested), None) if requested else (versions[0] if versions else None)
    if requested and shown is None:
        raise Http404("No such version of this template.")
    context = {
        "template": template,
        "owner": _owner_label(request, template),
        "versions": versions,
        "shown": shown,
        "is_latest": bool(versions) and shown == versions[0],
        "documentation": documentation_blocks(shown.documentation) if shown else [],
        "parameters": parameter_rows(shown.parameters_schema) if shown else [],
        "diagram": diagram_svg(shown.definition, uid="tpl", title=_("Steps of %(name)s") % {"name": template.name}) if shown else "",
        "can_clone": _can(request.user, AUTHORS),
        "own_definitions": _own_definitions_from(template.key),
    }
    return render(request, "workflows/template_detail.html", context)


# ---------- clone wizard ----------


def _wizard_state(request, key: str) -> dict[str, Any]:
    return dict(request.session.get(WIZARD_SESSION_KEY.format(key=key)) or {})


def _wizard_save(request, key: str, state: dict[str, Any]) -> None:
    request.session[WIZARD_SESSION_KEY.format(key=key)] = state


def _free_key(base: str) -> str:
    """A definition key to suggest: the template's, or the first free "<key>-N"."""
    for candidate in [base, *(f"{base}-{n}" for n in range(2, 10))]:
        if selectors.definition_by_key(key=candidate) is None:
            return candidate
    return ""


def _wizard_render(request, template, version, step: int, *, status: int = 200, **context):
    context.update(
        {
            "template": template,
            "version": version,
            "step": step,
            "steps": [{"number": n, "label": label, "done": n < step, "current": n == step} for n, label in enumerate(WIZARD_STEPS, 1)],
            "step_count": len(WIZARD_STEPS),
        }
    )
    return render(request, "workflows/clone.html", context, status=status)


@tenant_role_required(*AUTHORS)
def clone(request, key: str):
    """Three steps – name and key, parameters, review – kept in the session until created."""
    template = _template_or_404(request, key)
    state = _wizard_state(request, key)
    version = _template_version(template, state.get("version", ""))
    if version is None:
        messages.error(request, _("%(name)s has no published version to clone yet.") % {"name": template.name})
        return redirect("workflows:template", key=key)
    if state.get("version") != version.version:
        state = {"version": version.version}
    try:
        step = int(request.POST.get("step") or request.GET.get("step") or 1)
    except ValueError:
        step = 1
    step = min(max(step, 1), 3)
    if step > 1 and not state.get("key"):
        step = 1
    if step > 2 and "parameters" not in state:
        step = 2

    if step == 1:
        form = CloneNameForm(
            request.POST or None, initial={"name": state.get("name") or template.name, "key": state.get("key") or _free_key(template.key)}
        )
        if request.method == "POST" and form.is_valid():
            state.update(name=form.cleaned_data["name"], key=form.cleaned_data["key"])
            _wizard_save(request, key, state)
            return redirect(reverse("workflows:clone", args=[key]) + "?step=2")
        return _wizard_render(
            request,
            template,
            version,
            1,
            form=form,
            own_definitions=_own_definitions_from(template.key),
            status=400 if form.errors else 200,
        )

    if step == 2:
        schema = version.parameters_schema or {}
        params_form = ParametersForm(request.POST or None, schema=schema, values=state.get("parameters"))
        others: list[Any] = []
        if request.method == "POST":
            valid = params_form.is_valid()
            values = params_form.parameter_values()
            _bound, problems = parameters_validate(schema, values)
            # Every problem at once: the template's rules too for inputs the form itself accepted.
            problems = [problem for problem in problems if pointer_field(problem.pointer) not in params_form.errors]
            others = params_form.add_problems(problems)
            if valid and not problems:
                state["parameters"] = values
                _wizard_save(request, key, state)
                return redirect(reverse("workflows:clone", args=[key]) + "?step=3")
        status = 400 if params_form.errors or others else 200
        return _wizard_render(request, template, version, 2, form=params_form, problems=others, status=status)

    # step 3: review, then create
    parameters = state["parameters"]
    if request.method == "POST":
        try:
            definition = services.definition_clone(
                template_version=version,
                key=state["key"],
                name=state["name"],
                parameters=parameters,
                connection_bindings={},
                actor=request.user,
            )
        except services.DefinitionInvalid as exc:
            refused = ParametersForm.bound_to(schema=version.parameters_schema or {}, values=parameters)
            others = refused.add_problems(exc.problems)
            messages.error(request, _("The template refused these parameters: fix them below."))
            return _wizard_render(request, template, version, 2, form=refused, problems=others, status=400)
        except services.WorkflowError as exc:
            name_form = CloneNameForm(data={"name": state["name"], "key": state["key"]})
            name_form.is_valid()
            name_form.add_error(exc.field if exc.field in name_form.fields else None, exc.message)
            return _wizard_render(request, template, version, 1, form=name_form, status=400)
        request.session.pop(WIZARD_SESSION_KEY.format(key=key), None)
        messages.success(request, _("%(name)s created as draft v1. Submit it for approval when it is ready.") % {"name": definition.name})
        return redirect("workflows:definition", key=definition.key)
    bound, _problems = parameters_validate(version.parameters_schema or {}, parameters)
    rows = parameter_rows(version.parameters_schema or {})
    for row in rows:
        row.default = json_compact(bound[row.name]) if row.name in bound else ""
    return _wizard_render(
        request,
        template,
        version,
        3,
        state=state,
        parameter_values=rows,
        connections=sorted(services.connections_used(_rendered_spec(version, parameters))),
        diagram=diagram_svg(_rendered_spec(version, parameters), uid="clone", title=_("Steps of %(name)s") % {"name": template.name}),
    )


def _rendered_spec(version: TemplateVersion, parameters: dict[str, Any]) -> dict[str, Any]:
    """The template's definition with the chosen parameters filled in, as the clone will hold it."""
    bound, _problems = parameters_validate(version.parameters_schema or {}, parameters)
    spec, _unbound = render_placeholders(version.definition, bound, keep_unbound=True)
    return spec if isinstance(spec, dict) else {}


# ---------- definitions ----------

STATUS_BADGES: dict[str, str] = {
    VersionStatus.DRAFT: "muted",
    VersionStatus.SUBMITTED: "info",
    VersionStatus.APPROVED: "brand",
    VersionStatus.PUBLISHED: "ok",
    VersionStatus.SUPERSEDED: "muted",
    VersionStatus.REJECTED: "danger",
}


def _latest_version(definition: Definition) -> DefinitionVersion | None:
    versions = selectors.definition_versions(definition=definition)
    return versions[0] if versions else None


@tenant_role_required()
def definitions(request):
    return _definitions_page(request)


def _definitions_page(request, *, retention_form: RetentionForm | None = None, status: int = 200):
    """The definitions list with the policy card; `retention_form` is a refused one to show again."""
    query = request.GET.get("q", "").strip()
    page = Paginator(selectors.definitions_list(query=query), 25).get_page(request.GET.get("page"))
    rows = []
    for definition in page.object_list:
        latest = _latest_version(definition)  # its status too, so one query per row on a page of 25
        rows.append(
            {
                "definition": definition,
                "latest": latest,
                "badge": STATUS_BADGES.get(latest.status, "muted") if latest else "muted",
                "newer": selectors.definition_newer_upstream(definition=definition) if definition.template_key else None,
            }
        )
    policy = selectors.workflow_policy()
    context = {
        "page": page,
        "rows": rows,
        "query": query,
        "policy": policy,
        "policy_form": PolicyForm(initial={"require_second_approver": policy.require_second_approver}),
        "retention_form": retention_form
        or RetentionForm(
            initial={
                "payload_retention_days": policy.payload_retention_days,
                "metadata_retention_days": policy.metadata_retention_days,
            }
        ),
        "can_author": _can(request.user, AUTHORS),
        "can_set_policy": _can(request.user, APPROVERS),
    }
    return render(request, "workflows/definitions.html", context, status=status)


@require_POST
@tenant_role_required(*APPROVERS)
def policy_update(request):
    if request.POST.get("section") == "retention":
        return _retention_update(request)
    form = PolicyForm(request.POST)
    form.is_valid()
    required = bool(form.cleaned_data.get("require_second_approver"))
    services.workflow_policy_update(require_second_approver=required, actor=request.user)
    if required:
        messages.success(request, _("Four eyes is on: a version needs an approver other than the person who wrote or submitted it."))
    else:
        messages.success(request, _("Four eyes is off: one tenant admin can approve and publish on their own."))
    return redirect(reverse("workflows:definitions") + "#policy")


def _retention_update(request):
    """The policy card's retention form: how long finished runs keep payloads and metadata."""
    form = RetentionForm(request.POST)
    if form.is_valid():
        try:
            policy = workflow_policy_retention_update(
                payload_retention_days=form.cleaned_data["payload_retention_days"],
                metadata_retention_days=form.cleaned_data["metadata_retention_days"],
                actor=request.user,
            )
        except RetentionInvalid as error:
            form.add_error(error.field or None, error.message)
        else:
            messages.success(
                request,
                _(
                    "Retention saved: payloads of finished runs are erased after %(payload_days)s days, "
                    "the runs deleted after %(metadata_days)s days."
                )
                % {"payload_days": policy.payload_retention_days, "metadata_days": policy.metadata_retention_days},
            )
            return redirect(reverse("workflows:definitions") + "#retention")
    return _definitions_page(request, retention_form=form, status=400)


def _definition_or_404(key: str) -> Definition:
    definition = selectors.definition_by_key(key=key)
    if definition is None:
        raise Http404("No such workflow.")
    return definition


def _spec_changes(changes) -> list[dict[str, Any]]:
    return [
        {
            "pointer": change.pointer or "/",
            "kind": change.kind,
            "old": json_pretty(change.old) if change.kind != "added" else "",
            "new": json_pretty(change.new) if change.kind != "removed" else "",
        }
        for change in changes
    ]


def _version_actions(user, version: DefinitionVersion, definition: Definition, four_eyes: bool) -> list[str]:
    """What this person may do to this version now (the services refuse anything else anyway)."""
    author, approver = _can(user, AUTHORS), _can(user, APPROVERS)
    actions = []
    if version.status == VersionStatus.DRAFT and author:
        actions.append("submit")
    if version.status == VersionStatus.SUBMITTED and approver:
        # Without four eyes a tenant admin may publish a submitted version directly.
        actions += ["approve", "reject"] if four_eyes else ["approve", "publish", "reject"]
    if version.status == VersionStatus.APPROVED and approver:
        actions += ["publish", "reject"]
    if version.published_at and version.pk != definition.published_version_id and approver:
        actions.append("rollback")
    return actions


def _definition_render(
    request, definition: Definition, *, row_error: dict | None = None, start_form: RunStartForm | None = None, status: int = 200
):
    versions = list(selectors.definition_versions(definition=definition))
    requested = request.GET.get("version", "")
    shown = None
    if requested.isdigit():
        shown = next((v for v in versions if v.number == int(requested)), None)
    shown = shown or definition.published_version or (versions[0] if versions else None)
    policy = selectors.workflow_policy()
    rows = [
        {
            "version": version,
            "badge": STATUS_BADGES.get(version.status, "muted"),
            "actions": _version_actions(request.user, version, definition, policy.require_second_approver),
            "error": row_error["message"] if row_error and row_error["number"] == version.number else "",
            "error_action": row_error["action"] if row_error and row_error["number"] == version.number else "",
            "needs_other_approver": policy.require_second_approver
            and version.status == VersionStatus.SUBMITTED
            and request.user.email.lower() in {version.created_by_email.lower(), version.submitted_by_email.lower()},
        }
        for version in versions
    ]
    newer = selectors.definition_newer_upstream(definition=definition) if definition.template_key else None
    preview = None
    if newer:
        try:
            preview = services.definition_upgrade_preview(definition=definition, template_version=newer)
        except services.WorkflowError as exc:
            messages.warning(
                request, _("v%(version)s upstream cannot be previewed: %(reason)s") % {"version": newer.version, "reason": exc.message}
            )
            newer = None
    context = {
        "definition": definition,
        "rows": rows,
        "shown": shown,
        "spec_json": json_pretty(shown.spec) if shown else "",
        "parameters_json": json_pretty(shown.parameters) if shown else "",
        "diagram": diagram_svg(
            shown.spec, uid="def", title=_("Steps of %(name)s v%(number)s") % {"name": definition.name, "number": shown.number}
        )
        if shown
        else "",
        "upstream_changes": _spec_changes(selectors.definition_upstream_diff(definition=definition)) if definition.template_key else [],
        "newer": newer,
        "preview": preview,
        "preview_changes": _spec_changes(preview.spec_diff) if preview else [],
        "preview_kept": {name: json_compact(value) for name, value in preview.kept_parameters.items()} if preview else {},
        "preview_defaults": {name: json_compact(value) for name, value in preview.new_defaults.items()} if preview else {},
        "shown_badge": STATUS_BADGES.get(shown.status, "muted") if shown else "muted",
        "policy": policy,
        "can_author": _can(request.user, AUTHORS),
        "comment_form": VersionCommentForm(),
        "schedule": schedule_summary(spec=definition.published_version.spec, time_zone=request.tenant.time_zone)
        if definition.published_version
        else None,
    }
    context.update(_start_context(request, definition, start_form))
    return render(request, "workflows/definition_detail.html", context, status=status)


@tenant_role_required()
def definition_detail(request, key: str):
    return _definition_render(request, _definition_or_404(key))


def _version_or_404(definition: Definition, number: int) -> DefinitionVersion:
    version = next((v for v in selectors.definition_versions(definition=definition) if v.number == number), None)
    if version is None:
        raise Http404("No such version.")
    return version


DONE_MESSAGES = {
    "submit": gettext_lazy("v%(n)s submitted for approval."),
    "approve": gettext_lazy("v%(n)s approved. Publish it to make new runs use it."),
    "reject": gettext_lazy("v%(n)s rejected; its author sees your comment."),
    "publish": gettext_lazy("v%(n)s published: runs started from now on use it. Runs already going stay on their version."),
    "rollback": gettext_lazy("Rolled back to v%(n)s, published as a new version: runs started from now on use it."),
}


def _transition(request, key: str, number: int, action: str):
    definition = _definition_or_404(key)
    version = _version_or_404(definition, number)
    form = VersionCommentForm(request.POST)
    comment = form.data.get("comment", "").strip()
    try:
        if action == "submit":
            services.definition_version_submit(version=version, actor=request.user)
        elif action == "approve":
            services.definition_version_approve(version=version, actor=request.user, comment=comment)
        elif action == "reject":
            services.definition_version_reject(version=version, actor=request.user, comment=comment)
        elif action == "publish":
            services.definition_version_publish(version=version, actor=request.user)
        elif action == "rollback":
            services.definition_rollback(definition=definition, to_version=version, actor=request.user)
    except (services.WorkflowError, services.ApprovalRefused) as exc:
        message = getattr(exc, "message", str(exc))
        messages.error(request, _("v%(number)s: %(reason)s") % {"number": number, "reason": message})
        return _definition_render(
            request, _definition_or_404(key), row_error={"number": number, "action": action, "message": message}, status=400
        )
    except services.DefinitionInvalid as exc:
        message = "; ".join(f"{problem.pointer or '/'}: {problem.reason}" for problem in exc.problems) or str(exc)
        messages.error(request, _("v%(number)s is not valid: %(reason)s") % {"number": number, "reason": message})
        return _definition_render(
            request, _definition_or_404(key), row_error={"number": number, "action": action, "message": message}, status=400
        )
    messages.success(request, DONE_MESSAGES[action] % {"n": number})
    return redirect(reverse("workflows:definition", args=[key]) + "#versions")


@require_POST
@tenant_role_required(*AUTHORS)
def version_submit(request, key: str, number: int):
    return _transition(request, key, number, "submit")


@require_POST
@tenant_role_required(*APPROVERS)
def version_approve(request, key: str, number: int):
    return _transition(request, key, number, "approve")


@require_POST
@tenant_role_required(*APPROVERS)
def version_reject(request, key: str, number: int):
    return _transition(request, key, number, "reject")


@require_POST
@tenant_role_required(*APPROVERS)
def version_publish(request, key: str, number: int):
    return _transition(request, key, number, "publish")


@require_POST
@tenant_role_required(*APPROVERS)
def version_rollback(request, key: str, number: int):
    return _transition(request, key, number, "rollback")


@require_POST
@tenant_role_required(*AUTHORS)
def definition_upgrade(request, key: str):
    definition = _definition_or_404(key)
    newer = selectors.definition_newer_upstream(definition=definition)
    wanted = request.POST.get("version", "")
    if newer is None or (wanted and newer.version != wanted):
        messages.error(request, _("There is no newer upstream version to take (or it changed while you looked): check the preview again."))
        return redirect(reverse("workflows:definition", args=[key]) + "#upstream")
    try:
        version = services.definition_upgrade(definition=definition, template_version=newer, actor=request.user)
    except services.DefinitionInvalid as exc:
        problems = "; ".join(f"{problem.pointer or '/'}: {problem.reason}" for problem in exc.problems)
        messages.error(
            request,
            _("Upgrading to v%(version)s would make the definition invalid: %(problems)s")
            % {"version": newer.version, "problems": problems},
        )
        return redirect(reverse("workflows:definition", args=[key]) + "#upstream")
    except services.WorkflowError as exc:
        messages.error(request, exc.message)
        return redirect(reverse("workflows:definition", args=[key]) + "#upstream")
    number = getattr(version, "number", None)
    messages.success(
        request,
        (
            _("Took %(template)s v%(version)s as a new draft v%(number)s. Review, submit and publish it.")
            if number
            else _("Took %(template)s v%(version)s as a new draft. Review, submit and publish it.")
        )
        % {"template": definition.template_key, "version": newer.version, "number": number},
    )
    return redirect(reverse("workflows:definition", args=[key]) + "#versions")


# ---------- the definition editor ----------


@dataclass
class DefinitionEditor:
    """One request's editor: its forms, the spec their text holds (None when it does not parse),
    what goes to the service, and what the checks found."""

    form: DefinitionEditForm
    params_form: ParametersForm
    bindings_form: ConnectionBindingsForm
    spec: dict[str, Any] | None
    parameters: dict[str, Any] | None
    bindings: dict[str, str] | None
    problems: list[Any]
    notes: list[Any]

    @property
    def ready(self) -> bool:
        """Every input reads: the service decides the rest."""
        return self.spec is not None and self.params_form.is_valid()

    def show(self, problems: list[Any]) -> None:
        """Problems on their inputs (parameters, connection bindings) and all of them in the checks;
        a parameter the form refused already keeps only the form's error."""
        problems = [
            problem
            for problem in problems
            if not (problem.pointer.startswith("/parameters/") and pointer_field(problem.pointer) in self.params_form.errors)
        ]
        self.params_form.add_problems([problem for problem in problems if problem.pointer.startswith("/parameters/")])
        self.bindings_form.add_problems(problems)
        self.problems = problems


def _steps_by_connection(spec: Any) -> dict[str, list[str]]:
    """For each connection alias, the connector steps that call it (by name, else id)."""
    steps: dict[str, list[str]] = {}
    for step in as_dict(spec).get("steps") or []:
        if isinstance(step, dict) and step.get("kind") == "connector" and isinstance(step.get("connection"), str):
            steps.setdefault(step["connection"], []).append(str(step.get("name") or step.get("id") or "a step"))
    return steps


def _bindings_form(spec: Any, values: dict[str, Any], *, bound: bool, aliases: list[str] | None = None) -> ConnectionBindingsForm:
    return ConnectionBindingsForm(
        aliases=services.connection_aliases(spec) if aliases is None else aliases,
        values=values,
        used_by=_steps_by_connection(spec),
        bound=bound,
    )


def _editor_posted(request, latest: DefinitionVersion | None, schema: dict[str, Any], data=None) -> DefinitionEditor:
    """The posted editor, read: the spec in its format, parameters, and the binding rows.

    An empty binding input is left out, so its steps call the connection named like the alias;
    a page without binding inputs (none were shown) keeps the latest version's bindings.
    """
    data = request.POST if data is None else data
    form = DefinitionEditForm(data)
    params_form = ParametersForm(data, schema=schema, values=latest.parameters if latest else {})
    spec = form.cleaned_data["spec"] if form.is_valid() else None
    posted = ConnectionBindingsForm.posted(data)
    inherited = dict(latest.connection_bindings or {}) if latest else {}
    values = {**inherited, **(posted or {})}
    if spec is not None:
        bindings_form = _bindings_form(spec, values, bound=True)
    else:  # the rows stay as they were until the text reads again
        bindings_form = _bindings_form(latest.spec if latest else {}, values, bound=True, aliases=list(posted or inherited))
    bindings = {alias: name for alias, name in posted.items() if name} if posted is not None else None
    notes = services.connection_bindings_check(spec=spec, bindings=inherited if bindings is None else bindings).notes if spec else []
    return DefinitionEditor(
        form=form,
        params_form=params_form,
        bindings_form=bindings_form,
        spec=spec,
        parameters=params_form.parameter_values() if params_form.has_parameters and params_form.is_valid() else None,
        bindings=bindings,
        problems=[],
        notes=notes,
    )


def _editor_render(
    request,
    definition: Definition,
    latest: DefinitionVersion | None,
    editor: DefinitionEditor,
    *,
    mode: str,
    status: int = 200,
    switch_refused: str = "",
):
    """The editor page, or (for htmx) the parts a check refreshes. `mode`: "open" (GET), "save"
    (a refused save), "check" (Validate) or "switch" (JSON ⇄ YAML, which checks too)."""
    shown_spec = editor.spec if editor.spec is not None else (latest.spec if latest else {})
    text_errors = [str(error) for error in editor.form.errors.get("spec") or []]
    captions = {
        "open": _("Of v%(number)s") % {"number": latest.number} if latest else "",
        "save": _("As you last submitted them"),
        "check": _("As last checked"),
    }
    context = {
        "definition": definition,
        "latest": latest,
        "form": editor.form,
        "params_form": editor.params_form,
        "bindings_form": editor.bindings_form,
        "problems": editor.problems,
        "notes": editor.notes,
        "text_error": text_errors[0] if text_errors else "",
        "mode": mode,
        "checked": mode in ("check", "switch"),
        "text_format": editor.form.text_format,
        "formats": list(SPEC_FORMATS.items()),
        "switch_refused": SPEC_FORMATS.get(switch_refused, ""),
        "diagram": diagram_svg(shown_spec, uid="edit", title=_("Steps of %(name)s") % {"name": definition.name}),
        "diagram_caption": (_("Of v%(number)s, while the text does not read") % {"number": latest.number} if latest else "")
        if text_errors
        else captions.get(mode, captions["check"]),
    }
    if request.htmx and mode in ("check", "switch"):
        return render(request, "workflows/_editor_checked.html", context, status=status)
    return render(request, "workflows/definition_edit.html", context, status=status)


@tenant_role_required(*AUTHORS)
def definition_edit(request, key: str):
    """Edit the spec (as JSON or YAML), the parameters and the connection bindings; saving makes a
    new draft. Every problem comes back at once, on its input and by JSON pointer."""
    definition = _definition_or_404(key)
    latest = _latest_version(definition)
    schema = _definition_parameters_schema(request, definition)
    if request.method != "POST":
        spec = latest.spec if latest else {}
        form = DefinitionEditForm(initial={"spec": readable(spec), "format": spec_format(request.GET.get("format"))})
        bindings = dict(latest.connection_bindings or {}) if latest else {}
        editor = DefinitionEditor(
            form=form,
            params_form=ParametersForm(schema=schema, values=latest.parameters if latest else {}),
            bindings_form=_bindings_form(spec, bindings, bound=False),
            spec=None,
            parameters=None,
            bindings=None,
            problems=[],
            notes=[],
        )
        return _editor_render(request, definition, latest, editor, mode="open")
    editor = _editor_posted(request, latest, schema)
    if editor.ready:
        try:
            version = services.definition_draft_create(
                definition=definition,
                spec=editor.spec or {},
                parameters=editor.parameters,
                connection_bindings=editor.bindings,
                comment=editor.form.cleaned_data["comment"],
                actor=request.user,
            )
        except services.DefinitionInvalid as exc:
            editor.show(exc.problems)
        except services.WorkflowError as exc:
            editor.form.add_error(exc.field if exc.field in editor.form.fields else None, exc.message)
        else:
            messages.success(
                request, _("Draft v%(number)s saved. Submit it for approval from the versions list.") % {"number": version.number}
            )
            for note in editor.notes:
                messages.info(
                    request, _("Connection “%(alias)s” %(note)s.") % {"alias": pointer_parts(note.pointer)[-1], "note": note.text}
                )
            return redirect(reverse("workflows:definition", args=[key]) + "#versions")
    elif editor.spec is not None:
        # The parameters form refused something: list what else the checks find, all at once.
        check = services.definition_draft_check(
            definition=definition, spec=editor.spec, parameters=editor.parameters, connection_bindings=editor.bindings
        )
        editor.show(check.problems)
    return _editor_render(request, definition, latest, editor, mode="save", status=400)


def _editor_data(latest: DefinitionVersion | None, schema: dict[str, Any], text_format: str) -> QueryDict:
    """The editor's inputs as if the latest version had just been posted unchanged."""
    spec = latest.spec if latest else {}
    data = QueryDict(mutable=True)
    data.update({"format": text_format, "spec": spec_text(spec, text_format), "comment": ""})
    if schema:
        parameters = ParametersForm.bound_to(schema=schema, values=latest.parameters if latest else {}).data
        if isinstance(parameters, QueryDict):
            for name, values in parameters.lists():
                data.setlist(name, values)
    bindings = (latest.connection_bindings or {}) if latest else {}
    for index, alias in enumerate(services.connection_aliases(spec)):
        data.update({f"binding-{index}-alias": alias, f"binding-{index}": str(bindings.get(alias) or "")})
    return data


@tenant_role_required(*AUTHORS)
def definition_edit_check(request, key: str):
    """Validate without saving (htmx: the checks, the diagram and the binding rows are swapped in);
    with `show_as`, the text is rewritten as JSON or YAML first. A GET checks the latest version
    as it stands (and is where a reload of a check without JavaScript lands). Nothing is written."""
    definition = _definition_or_404(key)
    latest = _latest_version(definition)
    schema = _definition_parameters_schema(request, definition)
    data = request.POST if request.method == "POST" else _editor_data(latest, schema, spec_format(request.GET.get("format")))
    editor = _editor_posted(request, latest, schema, data=data)
    show_as = str(data.get("show_as", ""))
    mode = "check"
    if show_as in SPEC_FORMATS and editor.spec is not None:
        editor = _editor_posted(request, latest, schema, data=editor.form.converted(show_as))
        mode = "switch"
    if editor.spec is not None:
        check = services.definition_draft_check(
            definition=definition, spec=editor.spec, parameters=editor.parameters, connection_bindings=editor.bindings
        )
        editor.show(check.problems)
        editor.notes = check.connections.notes
    refused = show_as if show_as in SPEC_FORMATS and editor.spec is None else ""
    return _editor_render(request, definition, latest, editor, mode=mode, switch_refused=refused)


def _definition_parameters_schema(request, definition: Definition) -> dict[str, Any]:
    """The parameters schema of the template version the definition is pinned to (empty if none)."""
    if not definition.template_key:
        return {}
    latest = _latest_version(definition)
    template = selectors.library_template(key=definition.template_key, partner_id=request.tenant.partner_id)
    pinned = (latest.based_on_template_version if latest else "") or definition.template_version
    version = _template_version(template, pinned) if template and pinned else None
    return (version.parameters_schema or {}) if version else {}


# ---------- runs ----------

RUN_BADGES: dict[str, str] = {
    RunStatus.QUEUED: "info",
    RunStatus.RUNNING: "info",
    RunStatus.WAITING: "warn",
    RunStatus.SUCCEEDED: "ok",
    RunStatus.FAILED: "danger",
    RunStatus.CANCELLED: "muted",
    RunStatus.COMPENSATING: "warn",
    RunStatus.COMPENSATED: "muted",
}
RUN_LIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
TRIGGER_LABELS = {
    "api": gettext_lazy("API"),
    "manual": gettext_lazy("By hand"),
    "event": gettext_lazy("Event"),
    "schedule": gettext_lazy("Schedule"),
}
RUNS_PER_PAGE = 25


def duration_text(start, end) -> str:
    """A short human duration between two datetimes ("—" without a start)."""
    if start is None or end is None:
        return "—"
    return milliseconds_text(max(int((end - start).total_seconds() * 1000), 0))


def milliseconds_text(ms: int) -> str:
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _run_duration(run: Run) -> str:
    """From the start request to the end; a run not finished yet shows the time so far."""
    if run.finished_at:
        return duration_text(run.created_at, run.finished_at)
    return _("%(duration)s so far") % {"duration": duration_text(run.created_at, timezone.now())}


def _runs_search(text: str) -> dict[str, Any]:
    """`order:123` (a correlation key by name) searches correlation keys; anything else is a business key."""
    name, separator, value = text.partition(":")
    if separator and name.strip().lower() in CORRELATION_KEYS and value.strip():
        return {"correlation": {name.strip().lower(): value.strip()}}
    return {"business_key": text} if text else {}


def _run_row(run: Run) -> dict[str, Any]:
    return {
        "run": run,
        "badge": RUN_BADGES.get(run.status, "muted"),
        "live": run.status in RUN_LIVE,
        "trigger": TRIGGER_LABELS.get(run.trigger, run.trigger),
        "duration": _run_duration(run),
    }


@tenant_role_required()
def runs(request):
    status = request.GET.get("status", "")
    status = status if status in RunStatus.values else ""
    definition_key = request.GET.get("definition", "").strip()
    query = request.GET.get("q", "").strip()
    found = selectors.runs_list(status=status, definition_key=definition_key, **_runs_search(query))
    page = Paginator(found, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [_run_row(run) for run in page.object_list]
    context = {
        "page": page,
        "rows": rows,
        "live": any(row["live"] for row in rows),
        "status": status,
        "definition_key": definition_key,
        "query": query,
        "filtered": bool(status or definition_key or query),
        "statuses": RunStatus.choices,
        "definitions": selectors.definitions_list(),
    }
    template_name = "workflows/_run_rows.html" if request.htmx else "workflows/runs.html"
    return render(request, template_name, context)


def _run_or_404(run_id: int) -> Run:
    run = selectors.run_get(run_id=run_id)
    if run is None:
        raise Http404("No such run in this workspace.")
    return run


_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:\d{2}|Z)")


def _local_moments(text: str, time_zone: str) -> str:
    """The engine writes moments in `waiting_for` as ISO 8601 in UTC; people read them in the
    tenant's time zone."""
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")

    def local(match: re.Match[str]) -> str:
        moment = parse_datetime(match.group(0).replace("Z", "+00:00"))
        return f"{timezone.localtime(moment, zone):%d %b %Y %H:%M} ({zone.key})" if moment else match.group(0)

    return _ISO_MOMENT.sub(local, text)


def _run_problem(run: Run, step_kinds: dict[str, str], incident: Incident | None, time_zone: str = "") -> dict[str, str] | None:
    """What a failed, parked or stopped run's state means, and what to do about it."""
    step = f"“{run.current_step}”" if run.current_step else ""
    if run.status == RunStatus.FAILED and incident is not None:
        return {
            "tone": "error",
            "title": _("Failed at step %(step)s – an incident is open") % {"step": step} if step else _("Failed – an incident is open"),
            "meaning": _(
                "The run stopped at this step and waits for an operator; the steps before it stay done. "
                "Retry the step (after correcting the input or context if they caused it), restart the run from the "
                "beginning on the published version, or cancel it."
            ),
        }
    if run.status == RunStatus.FAILED:
        return {
            "tone": "error",
            "title": _("Failed at step %(step)s") % {"step": step} if step else _("Failed"),
            "meaning": _(
                "The run ended here and nothing more runs for it; the steps before it stay done. "
                "Fix the cause (the input, or the definition in a new version), then start a new run – "
                "with a new business key, since the same key returns this run."
            ),
        }
    if run.status == RunStatus.WAITING:
        kind = step_kinds.get(run.current_step, "")
        waits_for = _local_moments(run.waiting_for, time_zone) or _("waiting for something outside the run")
        return {
            "tone": "warn",
            "title": (_("Waiting at step %(step)s (%(kind)s)") if kind else _("Waiting at step %(step)s")) % {"step": step, "kind": kind},
            "meaning": _(
                "The run is parked, not failed: it is %(waits_for)s. It goes on by itself when that arrives; nothing is lost meanwhile."
            )
            % {"waits_for": waits_for},
        }
    if run.status == RunStatus.COMPENSATING:
        return {
            "tone": "warn",
            "title": _("Undoing the completed steps"),
            "meaning": _("The run runs the compensation handlers of the steps it completed, newest first; it ends as Compensated."),
        }
    if run.status in (RunStatus.CANCELLED, RunStatus.COMPENSATED):
        return {
            "tone": "info",
            "title": run.get_status_display(),
            "meaning": _("Nothing more runs for it; the completed steps were undone by their compensation handlers.")
            if run.status == RunStatus.COMPENSATED
            else _("Nothing more runs for it."),
        }
    return None


def _timeline(run: Run, spec_steps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "step": step,
            "name": str(spec_steps.get(step.step_id, {}).get("name") or ""),
            "badge": "ok" if step.status == StepStatus.SUCCEEDED else "danger",
            "duration": milliseconds_text(step.duration_ms),
            "input": json_pretty(step.input) if step.input not in ({}, None) else "",
            "output": json_pretty(step.output) if step.output not in ({}, None) else "",
        }
        for step in selectors.run_steps(run=run)
    ]


# What a pending timer of each kind means on the run page.
TIMER_LABELS: dict[str, Promise] = {
    TimerKind.RETRY: gettext_lazy("Next attempt"),
    TimerKind.WAIT_UNTIL: gettext_lazy("Wait ends"),
    TimerKind.WAIT_TIMEOUT: gettext_lazy("Event wait times out"),
    TimerKind.APPROVAL_DUE: gettext_lazy("Approval due"),
}
# The run page refreshes its timeline while the engine is working on the run.
RUN_DETAIL_LIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPENSATING})
APPROVAL_BADGES = {"pending": "warn", "approved": "ok", "rejected": "danger", "changes_requested": "info", "cancelled": "muted"}


def _run_incidents(run: Run) -> tuple[Incident | None, list[Incident]]:
    incidents = list(selectors.run_incidents(run=run))
    open_incident = next((incident for incident in incidents if incident.status == IncidentStatus.OPEN), None)
    return open_incident, [incident for incident in incidents if incident is not open_incident]


def _attempts(incident: Incident) -> list[dict[str, Any]]:
    """The incident's attempt history with its times as datetimes (stored as ISO text)."""
    return [
        {"attempt": item.get("attempt"), "error": item.get("error", ""), "at": parse_datetime(str(item.get("at") or ""))}
        for item in incident.attempts
        if isinstance(item, dict)
    ]


def _pending_timers(run: Run) -> list[dict[str, Any]]:
    """Unfired timers that can still wake the run: those of the step it is at. A timer left from
    a step the run went past (an approval decided before its due time) fires harmlessly; not shown."""
    now = timezone.now()
    return [
        {"timer": timer, "label": TIMER_LABELS.get(timer.kind, timer.get_kind_display()), "past": timer.due_at <= now}
        for timer in selectors.run_timers_pending(run=run, current_step_only=True)
    ]


def _compensation_steps(run: Run) -> list[str]:
    """The handlers a cancel would run: those of this generation's completed steps, newest first."""
    handlers_by_step: dict[str, str] = (run.definition_version.spec or {}).get("compensation") or {}
    if not handlers_by_step:
        return []
    done = selectors.run_steps(run=run).filter(status=StepStatus.SUCCEEDED, idempotency_key__startswith=run.step_key(""))
    handlers: list[str] = []
    for step_id in reversed(list(done.values_list("step_id", flat=True))):
        handler = handlers_by_step.get(step_id)
        if handler and handler not in handlers:
            handlers.append(handler)
    return handlers


def _run_detail_render(request, run: Run, *, retry_form: RunRetryForm | None = None, status: int = 200):
    spec = run.definition_version.spec or {}
    spec_steps = {step["id"]: step for step in spec.get("steps", []) if isinstance(step, dict) and "id" in step}
    step_kinds = {step_id: str(step.get("kind", "")) for step_id, step in spec_steps.items()}
    step_now = spec_steps.get(run.current_step, {})
    incident, past_incidents = _run_incidents(run)
    unfinished = run.status not in RUN_FINISHED
    operator = _can(request.user, OPERATORS)
    published = run.definition.published_version
    context = {
        "run": run,
        "badge": RUN_BADGES.get(run.status, "muted"),
        "live": run.status in RUN_DETAIL_LIVE and run.paused_at is None,
        "trigger": TRIGGER_LABELS.get(run.trigger, run.trigger),
        "duration": _run_duration(run),
        "problem": _run_problem(run, step_kinds, incident, getattr(request.tenant, "time_zone", "")),
        "timeline": _timeline(run, spec_steps),
        "next_step": {"id": run.current_step, "kind": step_kinds.get(run.current_step, ""), "name": step_now.get("name") or ""},
        "correlation": sorted(run.correlation.items()) if isinstance(run.correlation, dict) else [],
        "input_json": json_pretty(run.input),
        "context_json": json_pretty(run.context) if run.context else "",
        # operations
        "incident": incident,
        "incident_input_json": json_pretty(incident.step_input) if incident and incident.step_input else "",
        "incident_attempts": _attempts(incident) if incident else [],
        "past_incidents": past_incidents,
        "timers": _pending_timers(run),
        "approvals": [
            {
                "approval": approval,
                "badge": APPROVAL_BADGES.get(approval.status, "muted"),
                "overdue": approval.status == "pending" and approval.due_at is not None and approval.due_at <= timezone.now(),
                "roles": ", ".join(Role(role).label if role in Role.values else role for role in approval.assignee_roles),
            }
            for approval in selectors.run_approvals(run=run).reverse()  # newest first
        ],
        "parent": run.parent,
        "children": [
            {"run": child, "badge": RUN_BADGES.get(child.status, "muted"), "branch": child.business_key.rsplit(":", 1)[-1]}
            for child in selectors.run_children(run=run)
        ],
        "operator": operator,
        "can_pause": operator and unfinished and run.paused_at is None,
        "can_resume": operator and run.paused_at is not None,
        "can_cancel": operator and (unfinished or incident is not None) and run.status != RunStatus.COMPENSATING,
        "published": published,
        "compensation_steps": _compensation_steps(run) if operator else [],
        "retry_form": retry_form or RunRetryForm(initial={"input": run.input, "context": run.context}),
        "retry_edit_open": retry_form is not None,
    }
    return render(request, "workflows/run_detail.html", context, status=status)


@tenant_role_required()
def run_detail(request, run_id: int):
    run = _run_or_404(run_id)
    if request.htmx:
        if run.status not in RUN_DETAIL_LIVE or run.paused_at is not None:
            # The run finished, parked or was paused since the page polled: reload it once for the new state.
            response = HttpResponse(status=204)
            response["HX-Refresh"] = "true"
            return response
        spec_steps = {
            step["id"]: step for step in (run.definition_version.spec or {}).get("steps", []) if isinstance(step, dict) and "id" in step
        }
        step_now = spec_steps.get(run.current_step, {})
        context = {
            "run": run,
            "live": True,
            "timeline": _timeline(run, spec_steps),
            "next_step": {"id": run.current_step, "kind": str(step_now.get("kind", "")), "name": step_now.get("name") or ""},
        }
        return render(request, "workflows/_run_timeline.html", context)
    return _run_detail_render(request, run)


def _run_operation(request, run_id: int, operation, done: str):
    """Pause, resume or cancel: the service's refusal (e.g. already finished) becomes an error message."""
    run = _run_or_404(run_id)
    reason = str(request.POST.get("reason", "")).strip()[:500]
    try:
        run = operation(run=run, actor=request.user, reason=reason)
    except OperationRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, done % {"number": run.pk, "status": run.get_status_display().lower()})
    return redirect("workflows:run", run_id=run_id)


@require_POST
@tenant_role_required(*OPERATORS)
def run_pause_view(request, run_id: int):
    return _run_operation(request, run_id, run_pause, _("Run #%(number)s paused: the engine leaves it alone until someone resumes it."))


@require_POST
@tenant_role_required(*OPERATORS)
def run_resume_view(request, run_id: int):
    return _run_operation(request, run_id, run_resume, _("Run #%(number)s resumed: it goes on where it was."))


@require_POST
@tenant_role_required(*OPERATORS)
def run_cancel_view(request, run_id: int):
    return _run_operation(request, run_id, run_cancel, _("Run #%(number)s cancelled: it is %(status)s now."))


def _open_incident_or_refuse(request, run: Run) -> Incident | None:
    incident = selectors.run_incident_open(run=run)
    if incident is None:
        messages.error(request, _("Run #%(number)s has no open incident (someone may have just resolved it).") % {"number": run.pk})
    return incident


@require_POST
@tenant_role_required(*OPERATORS)
def run_retry_view(request, run_id: int):
    """Retry the open incident's step; with `edit`, the corrected input and/or context go with it."""
    run = _run_or_404(run_id)
    incident = _open_incident_or_refuse(request, run)
    if incident is None:
        return redirect("workflows:run", run_id=run_id)
    editing = bool(request.POST.get("edit"))
    form = RunRetryForm(request.POST if editing else {"comment": request.POST.get("comment", "")})
    if form.is_valid():
        try:
            incident_retry(
                incident=incident,
                actor=request.user,
                input=form.edited("input") if editing else None,
                context=form.edited("context") if editing else None,
                comment=form.cleaned_data["comment"],
            )
        except OperationRefused as refused:
            # The service names the input it refused (too large, not an object): show it next to that field.
            field = refused.field if refused.field in ("input", "context") else None
            form.add_error(field if editing else None, refused.message)
        else:
            messages.success(request, _("Retrying step “%(step)s” of run #%(number)s.") % {"step": incident.step_id, "number": run.pk})
            return redirect("workflows:run", run_id=run_id)
    if not editing:
        messages.error(request, "; ".join(str(error) for error in form.non_field_errors()) or _("The retry was refused."))
        return redirect("workflows:run", run_id=run_id)
    return _run_detail_render(request, _run_or_404(run_id), retry_form=form, status=400)


@require_POST
@tenant_role_required(*OPERATORS)
def run_restart_view(request, run_id: int):
    run = _run_or_404(run_id)
    incident = _open_incident_or_refuse(request, run)
    if incident is not None:
        try:
            run = incident_restart(incident=incident, actor=request.user, comment=str(request.POST.get("comment", "")).strip()[:500])
        except OperationRefused as refused:
            messages.error(request, str(refused))
        else:
            messages.success(
                request,
                _("Run #%(number)s restarted from the beginning on v%(version)s.")
                % {"number": run.pk, "version": run.definition_version.number},
            )
    return redirect("workflows:run", run_id=run_id)


# ---------- starting a run by hand ----------


def _manual_trigger(definition: Definition) -> bool:
    version = definition.published_version
    triggers = (version.spec or {}).get("triggers") or [] if version else []
    return any(isinstance(trigger, dict) and trigger.get("kind") == "manual" for trigger in triggers)


def _can_start(user, definition: Definition) -> bool:
    """Operators start runs of workflows with a manual trigger; tenant admins may start any."""
    if definition.published_version_id is None:
        return False
    if user.role == Role.TENANT_ADMIN or user.support_grant_id:
        return True
    return user.role in OPERATORS and _manual_trigger(definition)


def _start_context(request, definition: Definition, start_form: RunStartForm | None) -> dict[str, Any]:
    return {
        "can_start": _can_start(request.user, definition),
        "start_manual": _manual_trigger(definition),
        "start_form": start_form or RunStartForm(),
        "start_open": start_form is not None,
    }


@require_POST
@tenant_role_required(*OPERATORS)
def definition_start(request, key: str):
    definition = _definition_or_404(key)
    if not _can_start(request.user, definition):
        raise PermissionDenied(_("This workflow has no manual trigger; only tenant admins start it by hand."))
    form = RunStartForm(request.POST)
    if form.is_valid():
        try:
            run, created = run_start(
                definition=definition,
                input=form.cleaned_data["input"],
                business_key=form.cleaned_data["business_key"],
                correlation=form.cleaned_data["correlation"],
                trigger="manual",
                actor=request.user,
            )
        except RunError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            if created:
                messages.success(
                    request, _("Run #%(number)s started on v%(version)s.") % {"number": run.pk, "version": run.definition_version.number}
                )
            else:
                messages.info(
                    request,
                    _("The business key “%(key)s” already started run #%(number)s: here it is.")
                    % {"key": run.business_key, "number": run.pk},
                )
            return redirect("workflows:run", run_id=run.pk)
    return _definition_render(request, definition, start_form=form, status=400)
