"""Every change to the template library and to a tenant's workflow definitions.

Library functions run on the public schema (the console, `seed_library`); definition functions
on a tenant's schema, where the library is read through the search path. Each change writes its
audit row in the same transaction, in the schema it happens in.

Version lifecycle: draft → submitted → (approved →) published; a published version is
superseded by the next one. Authors (tenant admins, planners, API keys with the write scope)
make drafts and submit them; tenant admins approve, reject and publish (MSP support sessions act
as tenant admins). With the tenant's four-eyes policy a version must be approved, by someone who
neither wrote nor submitted it, before it is published. Without it the approval step is
optional: a tenant admin may publish a submitted version directly, which records them as its
approver. A rollback is a tenant admin's emergency action: it publishes a copy of an earlier
published version at once, without the approval step, audited with the reason "rollback to vN".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import semver
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Role
from governance.services import Actor, actor_of, audit_record
from tenants.db import connection
from tenants.selectors import partners_with_counts
from workflows.definition_schema import SLUG_PATTERN, placeholders_used, pointer_join, render_placeholders
from workflows.diff import SpecChange, spec_diff
from workflows.models import (
    Definition,
    DefinitionVersion,
    TemplateCategory,
    TemplateVersion,
    VersionStatus,
    WorkflowPolicy,
    WorkflowTemplate,
)
from workflows.selectors import current_partner_id, definition_current_version, template_latest_version, workflow_policy
from workflows.validation import (
    DefinitionInvalid,
    DefinitionProblem,
    definition_validate,
    parameter_defaults,
    parameters_declared_problems,
    parameters_schema_validate,
    parameters_validate,
    value_problems,
)

__all__ = [
    "ApprovalRefused",
    "BindingNote",
    "BindingsCheck",
    "DefinitionInvalid",
    "DefinitionProblem",
    "UpgradePreview",
    "DraftCheck",
    "WorkflowError",
    "connection_aliases",
    "connection_bindings_check",
    "definition_clone",
    "definition_draft_check",
    "definition_draft_create",
    "definition_rollback",
    "definition_upgrade",
    "definition_upgrade_preview",
    "definition_version_approve",
    "definition_version_publish",
    "definition_version_reject",
    "definition_version_submit",
    "template_create",
    "template_version_publish",
    "workflow_policy_update",
]

_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
_KEY_RULE = "lowercase letters, digits, '-' and '_', starting with a letter or digit (at most 80)"
AUTHOR_ROLES = frozenset({Role.TENANT_ADMIN.value, Role.PLANNER.value, "api_key", "system"})
PUBLISHER_ROLES = frozenset({Role.TENANT_ADMIN.value, "system"})
LIBRARY_ROLES = frozenset({Role.MSP_ADMIN.value, Role.MSP_OPERATOR.value, "system"})


class WorkflowError(Exception):
    """A refused change, with the input field it concerns (if any) and a message for people."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


class ApprovalRefused(WorkflowError):
    """The actor may not move this version along: the wrong role, or the four-eyes rule."""


@dataclass(frozen=True)
class UpgradePreview:
    """What taking a newer upstream version would do, before anything is written."""

    spec_diff: list[SpecChange]
    kept_parameters: dict[str, Any]
    dropped_parameters: dict[str, str]
    new_defaults: dict[str, Any]
    problems: list[DefinitionProblem] = field(default_factory=list)


# --- who may do what --------------------------------------------------------------------


def _role(actor: Any) -> str:
    if isinstance(actor, Actor):
        return actor.kind  # "system" for Baton itself, "api_key" for machine credentials
    if getattr(actor, "support_grant_id", None):
        return Role.TENANT_ADMIN.value  # MSP support sessions act as the tenant's admin
    return str(getattr(actor, "role", "") or "")


def _require_author(actor: Any) -> None:
    if _role(actor) not in AUTHOR_ROLES:
        raise WorkflowError("Only tenant admins and planners can change workflow definitions.", field="role")


def _require_publisher(actor: Any, doing: str) -> None:
    if _role(actor) not in PUBLISHER_ROLES:
        raise ApprovalRefused(f"Only a tenant admin can {doing}.", field="role")


def _require_library_staff(actor: Any) -> None:
    if _role(actor) not in LIBRARY_ROLES:
        raise WorkflowError("Only MSP admins and operators can manage the template library.", field="role")


def _require_public() -> None:
    if connection.schema_name != "public":
        raise WorkflowError("The template library is managed on the console (public schema), not in a tenant's workspace.")


def _require_tenant() -> None:
    if connection.schema_name == "public":
        raise WorkflowError("Workflow definitions live in a tenant's workspace; this ran on the public schema.")


def _email(actor: Any) -> str:
    return actor_of(actor).email


# --- the library (public schema) --------------------------------------------------------


def template_create(*, key: str, name: str, category: str, description: str, partner_id: int | None, actor: Any) -> WorkflowTemplate:
    """A new library entry, platform-wide (no partner) or owned by one partner; versions follow."""
    _require_public()
    _require_library_staff(actor)
    if not _KEY.match(key or ""):
        raise WorkflowError(f"The key must be {_KEY_RULE}.", field="key")
    if not (name or "").strip():
        raise WorkflowError("Give the template a name.", field="name")
    if category not in TemplateCategory.values:
        raise WorkflowError(f"Unknown category {category!r}: use one of {', '.join(TemplateCategory.values)}.", field="category")
    if partner_id is not None and not partners_with_counts().filter(pk=partner_id).exists():
        raise WorkflowError(f"There is no partner with id {partner_id}.", field="partner_id")
    if WorkflowTemplate.objects.filter(key=key).exists():
        raise WorkflowError(f"A template with the key '{key}' already exists.", field="key")
    try:
        with transaction.atomic():
            template = WorkflowTemplate.objects.create(
                key=key, name=name.strip(), category=category, description=description, partner_id=partner_id
            )
            audit_record(
                actor=actor,
                action="workflow_template.created",
                target=template,
                data={"key": key, "category": category, "partner_id": partner_id},
            )
    except IntegrityError as error:
        raise WorkflowError(f"A template with the key '{key}' already exists.", field="key") from error
    return template


def _semver(version: str) -> semver.Version:
    try:
        parsed = semver.Version.parse(version or "")
    except ValueError as error:
        raise WorkflowError(f"'{version}' is not a semantic version: use MAJOR.MINOR.PATCH, such as 1.2.0.", field="version") from error
    if parsed.prerelease or parsed.build:
        raise WorkflowError("Pre-release and build versions are not published to the library: use MAJOR.MINOR.PATCH.", field="version")
    return parsed


def _attributed(problems: list[DefinitionProblem], template_definition: Any, pointer_for: Any) -> list[DefinitionProblem]:
    """Problems at a place filled by a placeholder are the parameter's: say which and where."""
    locations = placeholders_used(template_definition)
    result = []
    for problem in problems:
        source = next(
            (name for location, name in locations if problem.pointer == location or problem.pointer.startswith(location + "/")),
            None,
        )
        if source is None:
            result.append(problem)
        else:
            result.append(DefinitionProblem(pointer_for(source), f"makes {problem.pointer} invalid: it {problem.reason}"))
    return result


def template_version_publish(
    *,
    template: WorkflowTemplate,
    version: str,
    definition: dict[str, Any],
    parameters_schema: dict[str, Any],
    documentation: str,
    changelog: str,
    actor: Any,
) -> TemplateVersion:
    """Publish an immutable version, newer (by semantic version) than every earlier one.

    The definition may hold `{{params.NAME}}` placeholders, each declared in the parameters
    schema; it is checked as written and once more with the declared defaults filled in.
    """
    _require_public()
    _require_library_staff(actor)
    parsed = _semver(version)
    problems = parameters_schema_validate(parameters_schema)
    problems += definition_validate(definition, placeholders=True)
    if not problems:
        problems += parameters_declared_problems(definition, parameters_schema)
    if not problems:
        with_defaults, _unbound = render_placeholders(definition, parameter_defaults(parameters_schema), keep_unbound=True)
        rendered_problems = definition_validate(with_defaults, placeholders=True)
        problems += _attributed(rendered_problems, definition, lambda name: f"/parameters_schema/properties/{name}/default")
    if problems:
        raise DefinitionInvalid(problems)
    with transaction.atomic():
        template = WorkflowTemplate.objects.select_for_update().get(pk=template.pk)
        latest = template_latest_version(template=template)
        if latest is not None and semver.Version(latest.major, latest.minor, latest.patch) >= parsed:
            raise WorkflowError(
                f"{template.name} is already at {latest.version}: a new version must be greater than {latest.version}.", field="version"
            )
        published = TemplateVersion.objects.create(
            template=template,
            version=str(parsed),
            major=parsed.major,
            minor=parsed.minor,
            patch=parsed.patch,
            definition=definition,
            parameters_schema=parameters_schema,
            documentation=documentation,
            changelog=changelog,
            published_at=timezone.now(),
            published_by_email=_email(actor),
        )
        audit_record(
            actor=actor,
            action="workflow_template.version_published",
            target=published,
            data={"template": template.key, "version": published.version, "previous": latest.version if latest else None},
        )
    return published


# --- definitions (a tenant's schema) ----------------------------------------------------


def _require_visible(template: WorkflowTemplate) -> None:
    if template.partner_id is not None and template.partner_id != current_partner_id():
        raise WorkflowError(f"There is no template '{template.key}' in your library.", field="template")


@dataclass(frozen=True)
class _Rendered:
    spec: dict[str, Any]
    parameters: dict[str, Any]
    problems: list[DefinitionProblem]


def _render(template_version: TemplateVersion, parameters: Any) -> _Rendered:
    """Bind parameters (defaults applied) and render the template into a tenant spec."""
    merged, problems = parameters_validate(template_version.parameters_schema, parameters)
    if problems:
        return _Rendered({}, merged, problems)
    spec, unbound = render_placeholders(template_version.definition, merged)
    problems = [DefinitionProblem(f"/parameters/{item.name}", f"is needed at {item.pointer}: give it a value") for item in unbound]
    if problems:
        return _Rendered(spec, merged, _dedupe(problems))
    spec_problems = definition_validate(spec)
    return _Rendered(spec, merged, _attributed(spec_problems, template_version.definition, lambda name: f"/parameters/{name}"))


def _dedupe(problems: list[DefinitionProblem]) -> list[DefinitionProblem]:
    return list(dict.fromkeys(problems))


def connections_used(spec: dict[str, Any]) -> set[str]:
    """The connection names the spec's connector steps call."""
    steps = spec.get("steps") if isinstance(spec, dict) else None
    return {
        step["connection"]
        for step in (steps or [])
        if isinstance(step, dict) and step.get("kind") == "connector" and isinstance(step.get("connection"), str)
    }


# Keys that would collide with the workflow pages' own addresses (/workflows/library/, …).
RESERVED_DEFINITION_KEYS = frozenset({"library", "policy", "new", "edit", "runs", "calendar", "incidents", "approvals"})


def _check_key_and_name(key: str, name: str) -> None:
    if not _KEY.match(key or ""):
        raise WorkflowError(f"The key must be {_KEY_RULE}.", field="key")
    if key in RESERVED_DEFINITION_KEYS:
        raise WorkflowError(f"'{key}' is reserved for the workflow pages; choose another key.", field="key")
    if not (name or "").strip():
        raise WorkflowError("Give the workflow a name.", field="name")
    if Definition.objects.filter(key=key).exists():
        raise WorkflowError(f"A workflow with the key '{key}' already exists.", field="key")


def definition_clone(
    *,
    template_version: TemplateVersion,
    key: str,
    name: str,
    parameters: dict[str, Any],
    connection_bindings: dict[str, Any],
    actor: Any,
) -> Definition:
    """Clone a library template into this tenant as a definition pinned to that version, with
    version 1 as a draft holding the rendered spec and the bound parameters."""
    _require_tenant()
    _require_author(actor)
    template = template_version.template
    _require_visible(template)
    _check_key_and_name(key, name)
    rendered = _render(template_version, parameters)
    if rendered.problems:
        raise DefinitionInvalid(rendered.problems)
    # The editor's check; a clone also refuses bindings for connections the template does not
    # use (a typo in a wizard is better said than silently dropped).
    check = connection_bindings_check(spec=rendered.spec, bindings=connection_bindings)
    known = ", ".join(check.aliases) or "none"
    unused = [
        DefinitionProblem(pointer_join(BINDINGS_POINTER, alias), f"is not a connection this workflow uses (it uses: {known})")
        for alias in check.dropped
    ]
    if check.problems or unused:
        raise DefinitionInvalid(check.problems + unused)
    connection_bindings = check.bindings
    try:
        with transaction.atomic():
            definition = Definition.objects.create(
                key=key,
                name=name.strip(),
                template_key=template.key,
                template_version=template_version.version,
                created_by_email=_email(actor),
            )
            DefinitionVersion.objects.create(
                definition=definition,
                number=1,
                status=VersionStatus.DRAFT,
                spec=rendered.spec,
                parameters=rendered.parameters,
                connection_bindings=connection_bindings,
                based_on_template_version=template_version.version,
                comment=f"Cloned from {template.name} {template_version.version}",
                created_by_email=_email(actor),
            )
            audit_record(
                actor=actor,
                action="workflow_definition.cloned",
                target=definition,
                data={"template": template.key, "version": template_version.version, "parameters": rendered.parameters},
            )
    except IntegrityError as error:
        raise WorkflowError(f"A workflow with the key '{key}' already exists.", field="key") from error
    return definition


def _locked(definition: Definition) -> Definition:
    return Definition.objects.select_for_update().get(pk=definition.pk)


def _next_number(definition: Definition) -> int:
    return (DefinitionVersion.objects.filter(definition=definition).aggregate(top=Max("number"))["top"] or 0) + 1


def _base_template_version(definition: Definition, version: DefinitionVersion | None) -> TemplateVersion | None:
    pinned = (version.based_on_template_version if version else "") or definition.template_version
    if not definition.template_key or not pinned:
        return None
    return TemplateVersion.objects.filter(template__key=definition.template_key, version=pinned).first()


@dataclass(frozen=True)
class BindingNote:
    """Something to know about a connection binding that does not stop a draft."""

    pointer: str
    text: str


@dataclass(frozen=True)
class BindingsCheck:
    """What a draft's connection bindings come to for its spec.

    `aliases` are the connection names the spec's connector steps use, in document order;
    `bindings` what the draft stores (each used alias to one of the tenant's connections);
    `unbound` the used aliases left without one – their steps call the connection named like the
    alias, as the engine does (`bindings.get(alias) or alias`) and as a fresh clone does;
    `dropped` the bindings given for aliases the spec no longer uses, left out.
    """

    aliases: list[str]
    bindings: dict[str, str]
    unbound: list[str]
    dropped: dict[str, Any]
    problems: list[DefinitionProblem]

    @property
    def notes(self) -> list[BindingNote]:
        notes = [
            BindingNote(pointer_join(BINDINGS_POINTER, alias), f"is not bound, so its steps call your connection named '{alias}'")
            for alias in self.unbound
        ]
        notes += [
            BindingNote(pointer_join(BINDINGS_POINTER, alias), f"was dropped: no connector step uses '{alias}' any more")
            for alias in self.dropped
        ]
        return notes


BINDINGS_POINTER = "/connection_bindings"
CONNECTION_NAME_RULE = "lowercase letters, digits, '-' and '_', starting with a letter or digit (at most 80)"
_CONNECTION_NAME = re.compile(SLUG_PATTERN)


def connection_aliases(spec: Any) -> list[str]:
    """The connection names the spec's connector steps call, each once, in document order."""
    steps = spec.get("steps") if isinstance(spec, dict) else None
    aliases: dict[str, None] = {}
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and step.get("kind") == "connector" and isinstance(step.get("connection"), str):
            aliases.setdefault(step["connection"], None)
    return list(aliases)


def connection_bindings_check(*, spec: Any, bindings: Any) -> BindingsCheck:
    """Check a draft's bindings against its spec: every problem by JSON pointer, and notes.

    An alias left unbound (absent or null) is not an error, as after cloning: its steps call the
    connection named like the alias. It must then be a connection name itself, or there is
    nothing to call. A binding for an alias the spec does not use is dropped with a note, so
    removing a connector step never stops a save.
    """
    aliases = connection_aliases(spec)
    if not isinstance(bindings, Mapping):
        problem = DefinitionProblem(BINDINGS_POINTER, "must be an object mapping connection names to your connections")
        return BindingsCheck(aliases, {}, [], {}, [problem])
    kept: dict[str, str] = {}
    dropped: dict[str, Any] = {}
    problems: list[DefinitionProblem] = []
    for alias, name in bindings.items():
        pointer = pointer_join(BINDINGS_POINTER, alias)
        if alias not in aliases:
            dropped[alias] = name
        elif name is None:
            continue  # bound explicitly to nothing: the alias itself is called
        elif not isinstance(name, str) or not name.strip():
            problems.append(DefinitionProblem(pointer, f"must name one of your connections (leave it out to call '{alias}' itself)"))
        elif not _CONNECTION_NAME.match(name.strip()):
            problems.append(DefinitionProblem(pointer, f"'{name}' is not a connection name: use {CONNECTION_NAME_RULE}"))
        else:
            kept[alias] = name.strip()
    erroneous = {problem.pointer for problem in problems}
    unbound = [alias for alias in aliases if alias not in kept and pointer_join(BINDINGS_POINTER, alias) not in erroneous]
    for alias in unbound:
        if not _CONNECTION_NAME.match(alias):
            problems.append(
                DefinitionProblem(
                    pointer_join(BINDINGS_POINTER, alias),
                    f"must be bound: '{alias}' is not a connection name itself, so its steps would have nothing to call",
                )
            )
    unbound = [alias for alias in unbound if _CONNECTION_NAME.match(alias)]
    ordered = {alias: kept[alias] for alias in aliases if alias in kept}
    return BindingsCheck(aliases, ordered, unbound, dropped, problems)


@dataclass(frozen=True)
class DraftCheck:
    """What saving a draft would store, and every problem with it, before anything is written."""

    spec: Any
    parameters: dict[str, Any]
    connections: BindingsCheck
    problems: list[DefinitionProblem]
    based_on_template_version: str = ""


def _latest(definition: Definition) -> DefinitionVersion | None:
    return DefinitionVersion.objects.filter(definition=definition).order_by("-number").first()


def _draft_check(
    definition: Definition,
    latest: DefinitionVersion | None,
    spec: Any,
    parameters: Any,
    connection_bindings: Mapping[str, str | None] | None,
) -> DraftCheck:
    base = _base_template_version(definition, latest)
    problems = definition_validate(spec)
    if parameters is None:
        parameters = latest.parameters if latest else {}
    merged = parameters if isinstance(parameters, dict) else {}
    if base is not None:
        merged, parameter_problems = parameters_validate(base.parameters_schema, parameters)
        problems += parameter_problems
    elif not isinstance(parameters, dict):
        problems.append(DefinitionProblem("/parameters", "must be an object of parameter values"))
    bindings = connection_bindings if connection_bindings is not None else (latest.connection_bindings if latest else {})
    connections = connection_bindings_check(spec=spec, bindings=bindings)
    return DraftCheck(spec, merged, connections, problems + connections.problems, base.version if base else "")


def definition_draft_check(
    *,
    definition: Definition,
    spec: Any,
    parameters: dict[str, Any] | None = None,
    connection_bindings: Mapping[str, str | None] | None = None,
) -> DraftCheck:
    """The checks `definition_draft_create` makes, without saving: the editor's Validate."""
    _require_tenant()
    return _draft_check(definition, _latest(definition), spec, parameters, connection_bindings)


def _bindings_changes(before: dict[str, Any], after: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        alias: {"from": before.get(alias), "to": after.get(alias)}
        for alias in sorted(set(before) | set(after))
        if before.get(alias) != after.get(alias)
    }


def definition_draft_create(
    *,
    definition: Definition,
    spec: dict[str, Any],
    parameters: dict[str, Any] | None = None,
    comment: str,
    actor: Any,
    connection_bindings: Mapping[str, str | None] | None = None,
) -> DefinitionVersion:
    """A new draft from an edited spec; parameters are checked against the template's schema.

    `parameters` and `connection_bindings` left as None keep the latest version's. Bindings are
    checked against the spec (`connection_bindings_check`); the audit row says how they changed.
    """
    _require_tenant()
    _require_author(actor)
    with transaction.atomic():
        definition = _locked(definition)
        latest = _latest(definition)
        check = _draft_check(definition, latest, spec, parameters, connection_bindings)
        if check.problems:
            raise DefinitionInvalid(check.problems)
        bindings = check.connections.bindings
        version = DefinitionVersion.objects.create(
            definition=definition,
            number=_next_number(definition),
            status=VersionStatus.DRAFT,
            spec=spec,
            parameters=check.parameters,
            connection_bindings=bindings,
            based_on_template_version=check.based_on_template_version,
            comment=comment,
            created_by_email=_email(actor),
        )
        audit_record(
            actor=actor,
            action="workflow_version.draft_created",
            target=version,
            reason=comment,
            data={
                "definition": definition.key,
                "number": version.number,
                "connection_bindings": {
                    "changed": _bindings_changes(latest.connection_bindings if latest else {}, bindings),
                    "unbound": check.connections.unbound,
                    "dropped": check.connections.dropped,
                },
            },
        )
    return version


def _locked_version(version: DefinitionVersion) -> DefinitionVersion:
    return DefinitionVersion.objects.select_for_update().select_related("definition").get(pk=version.pk)


def _state_error(version: DefinitionVersion, doing: str, allowed: str) -> WorkflowError:
    return WorkflowError(f"Only {allowed} version can be {doing}; v{version.number} is {version.get_status_display().lower()}.")


def definition_version_submit(*, version: DefinitionVersion, actor: Any) -> DefinitionVersion:
    _require_tenant()
    _require_author(actor)
    with transaction.atomic():
        version = _locked_version(version)
        if version.status != VersionStatus.DRAFT:
            raise _state_error(version, "submitted", "a draft")
        version.status = VersionStatus.SUBMITTED
        version.submitted_by_email = _email(actor)
        version.save(update_fields=["status", "submitted_by_email"])
        audit_record(actor=actor, action="workflow_version.submitted", target=version, data={"definition": version.definition.key})
    return version


def _four_eyes_check(version: DefinitionVersion, actor: Any, policy: WorkflowPolicy) -> None:
    if not policy.require_second_approver:
        return
    email = _email(actor).lower()
    if email in {version.created_by_email.lower(), version.submitted_by_email.lower()}:
        raise ApprovalRefused(
            f"This workspace requires a second approver: you wrote or submitted v{version.number}, so someone else must approve it."
        )


def definition_version_approve(*, version: DefinitionVersion, actor: Any, comment: str = "") -> DefinitionVersion:
    _require_tenant()
    _require_publisher(actor, "approve workflow versions")
    with transaction.atomic():
        version = _locked_version(version)
        if version.status != VersionStatus.SUBMITTED:
            raise _state_error(version, "approved", "a submitted")
        policy = workflow_policy()
        _four_eyes_check(version, actor, policy)
        version.status = VersionStatus.APPROVED
        version.approved_by_email = _email(actor)
        version.review_comment = comment
        version.save(update_fields=["status", "approved_by_email", "review_comment"])
        audit_record(
            actor=actor,
            action="workflow_version.approved",
            target=version,
            reason=comment,
            data={"definition": version.definition.key, "four_eyes": policy.require_second_approver},
        )
    return version


def definition_version_reject(*, version: DefinitionVersion, actor: Any, comment: str) -> DefinitionVersion:
    _require_tenant()
    _require_publisher(actor, "reject workflow versions")
    if not (comment or "").strip():
        raise WorkflowError("Say why the version is rejected, so its author can fix it.", field="comment")
    with transaction.atomic():
        version = _locked_version(version)
        if version.status not in (VersionStatus.SUBMITTED, VersionStatus.APPROVED):
            raise _state_error(version, "rejected", "a submitted or approved")
        version.status = VersionStatus.REJECTED
        version.rejected_by_email = _email(actor)
        version.review_comment = comment.strip()
        version.save(update_fields=["status", "rejected_by_email", "review_comment"])
        audit_record(
            actor=actor,
            action="workflow_version.rejected",
            target=version,
            reason=comment.strip(),
            data={"definition": version.definition.key},
        )
    return version


def _make_published(definition: Definition, version: DefinitionVersion, actor: Any) -> None:
    """Supersede the published version (if any) and publish `version`; the caller holds the
    definition's row lock, and the partial unique index allows one published version."""
    DefinitionVersion.objects.filter(definition=definition, status=VersionStatus.PUBLISHED).exclude(pk=version.pk).update(
        status=VersionStatus.SUPERSEDED
    )
    version.status = VersionStatus.PUBLISHED
    version.published_at = timezone.now()
    version.published_by_email = _email(actor)
    version.save()
    definition.published_version = version
    definition.template_version = version.based_on_template_version or definition.template_version
    definition.save(update_fields=["published_version", "template_version"])


def definition_version_publish(*, version: DefinitionVersion, actor: Any) -> DefinitionVersion:
    """Make `version` the one new runs use; the previously published version is superseded."""
    _require_tenant()
    _require_publisher(actor, "publish workflow versions")
    with transaction.atomic():
        definition = _locked(version.definition)
        version = _locked_version(version)
        policy = workflow_policy()
        if policy.require_second_approver and version.status == VersionStatus.SUBMITTED:
            raise ApprovalRefused(f"This workspace requires a second approver: v{version.number} must be approved before it is published.")
        if version.status not in (VersionStatus.SUBMITTED, VersionStatus.APPROVED):
            raise _state_error(version, "published", "a submitted or approved")
        problems = definition_validate(version.spec)
        if problems:
            raise DefinitionInvalid(problems)
        previous = definition.published_version
        implicit_approval = version.status == VersionStatus.SUBMITTED
        if implicit_approval:
            version.approved_by_email = _email(actor)
        _make_published(definition, version, actor)
        audit_record(
            actor=actor,
            action="workflow_version.published",
            target=version,
            data={
                "definition": definition.key,
                "number": version.number,
                "superseded": previous.number if previous else None,
                "approval": "implicit" if implicit_approval else "explicit",
            },
        )
    return version


def definition_rollback(*, definition: Definition, to_version: DefinitionVersion | int, actor: Any) -> DefinitionVersion:
    """Publish, as a new version, a copy of an earlier published one (spec, parameters, bindings).

    An emergency action of a tenant admin: it skips the approval step, whatever the policy,
    and is audited with the reason "rollback to vN".
    """
    _require_tenant()
    _require_publisher(actor, "roll a workflow back")
    with transaction.atomic():
        definition = _locked(definition)
        number = to_version if isinstance(to_version, int) else to_version.number
        if not isinstance(to_version, int) and to_version.definition_id != definition.pk:
            raise WorkflowError(f"That version belongs to another workflow than {definition.name}.", field="to_version")
        target = DefinitionVersion.objects.filter(definition=definition, number=number).first()
        if target is None:
            raise WorkflowError(f"{definition.name} has no version {number}.", field="to_version")
        if target.published_at is None:
            raise WorkflowError(
                f"v{number} was never published: only a version that ran in production can be restored.", field="to_version"
            )
        if target.pk == definition.published_version_id:
            raise WorkflowError(f"v{number} is already the published version.", field="to_version")
        problems = definition_validate(target.spec)
        if problems:
            raise DefinitionInvalid(problems)
        previous = definition.published_version
        reason = f"rollback to v{number}"
        email = _email(actor)
        restored = DefinitionVersion.objects.create(
            definition=definition,
            number=_next_number(definition),
            status=VersionStatus.DRAFT,
            spec=target.spec,
            parameters=target.parameters,
            connection_bindings=target.connection_bindings,
            based_on_template_version=target.based_on_template_version,
            comment=f"Rollback to v{number}",
            created_by_email=email,
            submitted_by_email=email,
            approved_by_email=email,
        )
        _make_published(definition, restored, actor)
        audit_record(
            actor=actor,
            action="workflow_definition.rolled_back",
            target=restored,
            reason=reason,
            data={
                "definition": definition.key,
                "to": number,
                "new_number": restored.number,
                "superseded": previous.number if previous else None,
            },
        )
    return restored


def _upgrade_plan(definition: Definition, template_version: TemplateVersion) -> tuple[UpgradePreview, _Rendered | None]:
    if definition.template_key != template_version.template.key:
        raise WorkflowError(
            f"{definition.name} comes from '{definition.template_key or 'no template'}', not '{template_version.template.key}'.",
            field="template_version",
        )
    _require_visible(template_version.template)
    current = definition_current_version(definition=definition)
    old_parameters = current.parameters if current else {}
    schema = template_version.parameters_schema or {}
    properties = schema.get("properties", {})
    closed = not {"additionalProperties", "patternProperties", "unevaluatedProperties"} & set(schema)
    label = f"{template_version.template.name} {template_version.version}"
    kept: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    for name, value in old_parameters.items():
        if name not in properties:
            if closed:
                dropped[name] = f"{label} no longer has this parameter"
            else:
                kept[name] = value
            continue
        reasons = value_problems(properties[name], value)
        if reasons:
            dropped[name] = f"the value {value!r} no longer fits: it {reasons[0]}"
        else:
            kept[name] = value
    new_defaults = {name: value for name, value in parameter_defaults(schema).items() if name not in kept}
    rendered = _render(template_version, kept)
    diff = spec_diff(current.spec if current else {}, rendered.spec) if rendered.spec else []
    preview = UpgradePreview(
        spec_diff=diff, kept_parameters=kept, dropped_parameters=dropped, new_defaults=new_defaults, problems=rendered.problems
    )
    return preview, rendered


def definition_upgrade_preview(*, definition: Definition, template_version: TemplateVersion) -> UpgradePreview:
    """The spec changes, the parameter values kept and dropped (with why), and the new defaults
    of moving `definition` onto `template_version`. The new spec is upstream's, rendered with
    the kept values: local edits to the spec show up in the diff as changes that would go."""
    preview, _rendered = _upgrade_plan(definition, template_version)
    return preview


def definition_upgrade(*, definition: Definition, template_version: TemplateVersion, actor: Any) -> DefinitionVersion:
    """A new draft on a newer upstream version, keeping the parameter values that still fit;
    the definition's pin moves when that draft is published."""
    _require_tenant()
    _require_author(actor)
    pinned = definition.template_version
    try:
        newer = not pinned or semver.Version.parse(template_version.version) > semver.Version.parse(pinned)
    except ValueError:
        newer = True
    if not newer:
        raise WorkflowError(f"{definition.name} is on {pinned} already: pick a newer version to upgrade to.", field="template_version")
    preview, rendered = _upgrade_plan(definition, template_version)
    if preview.problems or rendered is None:
        raise DefinitionInvalid(preview.problems)
    with transaction.atomic():
        definition = _locked(definition)
        current = definition_current_version(definition=definition)
        used = connections_used(rendered.spec)
        bindings = {name: bound for name, bound in (current.connection_bindings if current else {}).items() if name in used}
        version = DefinitionVersion.objects.create(
            definition=definition,
            number=_next_number(definition),
            status=VersionStatus.DRAFT,
            spec=rendered.spec,
            parameters=rendered.parameters,
            connection_bindings=bindings,
            based_on_template_version=template_version.version,
            comment=f"Upgrade to {template_version.template.name} {template_version.version}",
            created_by_email=_email(actor),
        )
        audit_record(
            actor=actor,
            action="workflow_definition.upgrade_drafted",
            target=version,
            data={
                "definition": definition.key,
                "from": pinned,
                "to": template_version.version,
                "kept": sorted(preview.kept_parameters),
                "dropped": preview.dropped_parameters,
            },
        )
    return version


def workflow_policy_update(*, require_second_approver: bool, actor: Any) -> WorkflowPolicy:
    _require_tenant()
    _require_publisher(actor, "change the workflow approval policy")
    with transaction.atomic():
        policy = workflow_policy()
        policy = WorkflowPolicy.objects.select_for_update().get(pk=policy.pk)
        before = policy.require_second_approver
        policy.require_second_approver = bool(require_second_approver)
        policy.save()
        audit_record(
            actor=actor,
            action="workflow_policy.updated",
            target=policy,
            data={"require_second_approver": {"from": before, "to": policy.require_second_approver}},
        )
    return policy
