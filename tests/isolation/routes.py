"""Every tenant-host route, for the isolation suite. A new feature adds its routes here: its
pages and API endpoints, reads and writes alike.

`private_object` makes something that belongs to one tenant (and, for customer-scoped routes,
one customer account) and returns its id and a marker text that must never show up in another
tenant's or another customer's response.

A write (`method="post"`) also names its `body` – JSON for an API route, form fields for a page;
"{id}" and "{marker}" in its strings are replaced like in the path – and a `state` hook: given
the private object's id and marker, it reads the row(s) the write would change, in the owner's
schema, as a value to compare. The suite sends each write refused ways and asserts the state is
unchanged; the owner's own write must change it (so the hook is not blind and the route not broken).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django_tenants.utils import schema_context

from accounts.services import user_create
from governance.services import Actor, audit_record
from logistics.models import CustomerAccount
from workflows.models import WorkflowTemplate
from workflows.services import definition_clone, definition_draft_create, template_create, template_version_publish


@dataclass(frozen=True)
class Route:
    name: str
    path: str  # "{id}" and "{marker}" are replaced by the private object's id and marker
    kind: str  # "page" or "api"
    private_object: Callable | None = None
    api_scope: str = ""
    customer_scoped: bool = False
    method: str = "get"  # "post" for a write
    body: Mapping[str, Any] | None = None  # a write's JSON (api) or form fields (page)
    state: Callable[[str, str], Any] | None = None  # a write's target, read in the owner's schema from (id, marker)


def _audit_probe(tenant_world):
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    token = uuid.uuid4().hex[:12]
    with schema_context(tenant_world.schema):
        event = audit_record(
            actor=Actor(email="owner@example.test"),
            action="isolation.probe",
            target_type="probe",
            target_id=token,
            target_label=marker,
            reason=marker,
        )
    return event, token, marker


def audit_event(tenant_world, customer_account=None) -> tuple[str, str]:
    event, _token, marker = _audit_probe(tenant_world)
    return str(event.pk), marker


def audit_event_search(tenant_world, customer_account=None) -> tuple[str, str]:
    """Searchable by a token that is not the marker, so a page echoing the query can't leak it."""
    _event, token, marker = _audit_probe(tenant_world)
    return token, marker


def tenant_name(tenant_world, customer_account=None) -> tuple[str, str]:
    return "", tenant_world.tenant.name


def tenant_person(tenant_world, customer_account=None) -> tuple[str, str]:
    """A staff member whose name is the marker; the id is a search token found in their email only."""
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    token = uuid.uuid4().hex[:12]
    with schema_context(tenant_world.schema):
        user_create(email=f"{token}@people.test", role="planner", full_name=marker, actor=Actor(email="owner@example.test"))
    return token, marker


def customer_account_named(tenant_world, customer_account=None) -> tuple[str, str]:
    """A customer account (listed in the customer-user invitation form) whose name is the marker."""
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        CustomerAccount.objects.create(code=marker, name=marker)
    return "", marker


_PROBE_TEMPLATE = {
    "start": "notify",
    "steps": [
        {"id": "notify", "kind": "notify", "channel": "email", "to_roles": ["planner"], "template": "probe", "next": "done"},
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def workflow_definition_drafted(tenant_world, customer_account=None) -> tuple[str, str]:
    """A definition (cloned from a platform template) named by the marker, whose newest version's
    comment is the marker too; the id is its key."""
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    owner = Actor(email="owner@example.test", kind="system")
    with schema_context("public"):
        template = WorkflowTemplate.objects.filter(key="isolation-probe").first() or template_create(
            key="isolation-probe", name="Isolation probe", category="other", description="", partner_id=None, actor=owner
        )
        version = template.versions.first() or template_version_publish(
            template=template,
            version="1.0.0",
            definition=_PROBE_TEMPLATE,
            parameters_schema={"type": "object"},
            documentation="",
            changelog="",
            actor=owner,
        )
    key = f"probe-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        definition = definition_clone(template_version=version, key=key, name=marker, parameters={}, connection_bindings={}, actor=owner)
        definition_draft_create(definition=definition, spec=_PROBE_TEMPLATE, parameters={}, comment=marker, actor=owner)
    return key, marker


TENANT_ROUTES: list[Route] = [
    Route("home", "/", "page", tenant_name),
    Route("audit page", "/settings/audit/?q={id}", "page", audit_event_search),
    Route("users page", "/settings/users/", "page", tenant_name),
    Route("users page, staff member", "/settings/users/", "page", tenant_person),
    Route("users page, search", "/settings/users/?q={id}", "page", tenant_person),
    Route("users page, customer accounts", "/settings/users/", "page", customer_account_named),
    Route("api keys page", "/settings/api-keys/", "page", tenant_name),
    Route("support access page", "/settings/support-access/", "page", tenant_name),
    Route("api tenant", "/api/v1/tenant", "api", tenant_name, api_scope="tenant:read"),
    Route("api audit list", "/api/v1/audit-events", "api", audit_event, api_scope="audit:read"),
    Route("api audit detail", "/api/v1/audit-events/{id}", "api", audit_event, api_scope="audit:read"),
    Route("api definitions list", "/api/v1/definitions", "api", workflow_definition_drafted, api_scope="workflows:read"),
    Route("api definitions search", "/api/v1/definitions?search={id}", "api", workflow_definition_drafted, api_scope="workflows:read"),
    Route("api definition detail", "/api/v1/definitions/{id}", "api", workflow_definition_drafted, api_scope="workflows:read"),
    Route("api definition versions", "/api/v1/definitions/{id}/versions", "api", workflow_definition_drafted, api_scope="workflows:read"),
]

CONSOLE_ROUTES: list[str] = [
    "/",
    "/tenants/",
    "/partners/",
    "/audit/",
    "/tenants/new/",
    "/api/v1/tenants",
    "/staff/",
    "/partners/new/",
    "/tenants/1/brand/",
]


# ---------- workflow pages (issue 3) ----------

_WORKFLOW_SPEC = {
    "start": "tell",
    "triggers": [{"kind": "manual"}],
    "steps": [
        {"id": "tell", "kind": "notify", "name": "Tell", "channel": "email", "to_roles": ["planner"], "template": "probe", "next": "done"},
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def _workflow_template_version(spec: dict | None = None, *, template_key: str = "", version: str = "1.0.0"):
    """A published version of a platform template (public, the same for every tenant): of a new
    template, or of the one keyed `template_key`."""
    from workflows.services import template_create, template_version_publish

    actor = Actor.system("isolation")
    with schema_context("public"):
        template = (
            WorkflowTemplate.objects.get(key=template_key)
            if template_key
            else template_create(
                key=f"probe-{uuid.uuid4().hex[:10]}", name="Isolation probe", category="other", description="", partner_id=None, actor=actor
            )
        )
        return template_version_publish(
            template=template,
            version=version,
            definition=spec or _WORKFLOW_SPEC,
            parameters_schema={"type": "object", "properties": {}},
            documentation="",
            changelog="",
            actor=actor,
        )


def _workflow_cloned(tenant_world):
    from workflows.services import definition_clone

    version = _workflow_template_version()
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    key = f"wf-{uuid.uuid4().hex[:12]}"
    with schema_context(tenant_world.schema):
        definition_clone(
            template_version=version, key=key, name=marker, parameters={}, connection_bindings={}, actor=Actor.system("isolation")
        )
    return version.template.key, key, marker


def workflow_definition(tenant_world, customer_account=None) -> tuple[str, str]:
    """A definition whose name is the marker; the id is its key (also a search token)."""
    _template_key, key, marker = _workflow_cloned(tenant_world)
    return key, marker


def workflow_template_in_use(tenant_world, customer_account=None) -> tuple[str, str]:
    """A library template (shared by design) that the tenant cloned into a definition named the
    marker: its page and the clone wizard list the tenant's own workflows from it."""
    template_key, _key, marker = _workflow_cloned(tenant_world)
    return template_key, marker


TENANT_ROUTES += [
    Route("workflows list", "/workflows/", "page", workflow_definition),
    Route("workflows list, search", "/workflows/?q={id}", "page", workflow_definition),
    Route("workflow detail", "/workflows/{id}/", "page", workflow_definition),
    Route("workflow detail, a version", "/workflows/{id}/?version=1", "page", workflow_definition),
    Route("workflow editor", "/workflows/{id}/edit/", "page", workflow_definition),
    Route("workflow library", "/workflows/library/", "page", tenant_name),
    Route("workflow library, search", "/workflows/library/?q=probe", "page", tenant_name),
    Route("workflow template", "/workflows/library/{id}/", "page", workflow_template_in_use),
    Route("workflow template, a version", "/workflows/library/{id}/?version=1.0.0", "page", workflow_template_in_use),
    Route("workflow clone wizard", "/workflows/library/{id}/clone/", "page", workflow_template_in_use),
]

CONSOLE_ROUTES += [
    "/templates/",
    "/templates/new/",
    "/templates/customer-milestone-notifications/",
]


# ---------- workflow runs and the process API (issue 3, engine core) ----------


def _definition_published(tenant_world, spec: dict | None = None, name: str = "Run probe"):
    """A definition of a fresh platform template with version 1 published by the tenant's admin."""
    from workflows.models import DefinitionVersion
    from workflows.services import definition_version_publish, definition_version_submit

    version = _workflow_template_version(spec)
    admin = tenant_world.users["tenant_admin"]
    with schema_context(tenant_world.schema):
        definition = definition_clone(
            template_version=version,
            key=f"run-{uuid.uuid4().hex[:12]}",
            name=name,
            parameters={},
            connection_bindings={},
            actor=admin,
        )
        draft = DefinitionVersion.objects.get(definition=definition, number=1)
        definition_version_submit(version=draft, actor=admin)
        definition_version_publish(version=draft, actor=admin)
        definition.refresh_from_db()
    return definition


def workflow_run(tenant_world, customer_account=None) -> tuple[str, str]:
    """A run of a published definition whose input carries the marker; the id is the run's id."""
    from workflows.runs import run_start

    definition = _definition_published(tenant_world)
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        run, _created = run_start(
            definition=definition, input={"note": marker}, business_key=marker, trigger="manual", actor=Actor.system("isolation")
        )
    return str(run.pk), marker


TENANT_ROUTES += [
    Route("api runs list", "/api/v1/runs", "api", workflow_run, api_scope="workflows:read"),
    Route("api runs by business key", "/api/v1/runs?business_key={marker}", "api", workflow_run, api_scope="workflows:read"),
    Route("api run detail", "/api/v1/runs/{id}", "api", workflow_run, api_scope="workflows:read"),
]

TENANT_ROUTES += [
    Route("workflow runs page", "/workflows/runs/", "page", workflow_run),
    Route("workflow runs page, a status", "/workflows/runs/?status=queued", "page", workflow_run),
    Route("workflow run page", "/workflows/runs/{id}/", "page", workflow_run),
]


# ---------- business calendar (business-time waits) ----------


def business_calendar_holiday(tenant_world, customer_account=None) -> tuple[str, str]:
    """The tenant's business calendar with a holiday named by the marker."""
    from workflows.calendars import calendar_update
    from workflows.models import default_weekly_hours

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        calendar_update(
            weekly_hours=default_weekly_hours(),
            holidays=[{"date": "2026-12-24", "name": marker}],
            time_zone="",
            actor=Actor.system("isolation"),
        )
    return "", marker


TENANT_ROUTES += [
    Route("workflow business calendar", "/workflows/calendar/", "page", business_calendar_holiday),
]


# ---------- the operations API: incidents and approvals (issue 4) ----------
# Its writes (run pause / resume / cancel, incident retry / restart, bulk retry, approval
# decision, events) are registered with the pages' under "writes" below.


def _operations_run(tenant_world):
    from workflows.models import Run

    run_id, _marker = workflow_run(tenant_world)
    with schema_context(tenant_world.schema):
        return Run.objects.get(pk=int(run_id))


def workflow_incident(tenant_world, customer_account=None) -> tuple[str, str]:
    """An open incident whose error is the marker; the id is the incident's."""
    from workflows.models import Incident

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    run = _operations_run(tenant_world)
    with schema_context(tenant_world.schema):
        incident = Incident.objects.create(
            run=run, step_id="tell", step_kind="notify", error=marker, error_class="Probe", step_input={"note": marker}
        )
    return str(incident.pk), marker


def workflow_approval(tenant_world, customer_account=None) -> tuple[str, str]:
    """A pending approval (assigned to planners) whose title is the marker; the id is the approval's."""
    from workflows.models import Approval

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    run = _operations_run(tenant_world)
    with schema_context(tenant_world.schema):
        approval = Approval.objects.create(run=run, step_id="tell", title=marker, assignee_roles=["planner"])
    return str(approval.pk), marker


TENANT_ROUTES += [
    Route("api incidents list", "/api/v1/incidents", "api", workflow_incident, api_scope="workflows:operate"),
    Route(
        "api incidents, open", "/api/v1/incidents?status=open&error_class=Probe", "api", workflow_incident, api_scope="workflows:operate"
    ),
    Route("api incident detail", "/api/v1/incidents/{id}", "api", workflow_incident, api_scope="workflows:operate"),
    Route("api approvals list", "/api/v1/approvals", "api", workflow_approval, api_scope="workflows:approve"),
    Route("api approval detail", "/api/v1/approvals/{id}", "api", workflow_approval, api_scope="workflows:approve"),
]


# ---------- operating runs: run actions, incidents, approvals, signed approval links ----------


def _run_probe(tenant_world):
    """A run of a published definition whose business key is the marker (see `workflow_run`)."""
    from workflows.models import Run

    run_id, marker = workflow_run(tenant_world)
    with schema_context(tenant_world.schema):
        return Run.objects.get(pk=int(run_id)), marker


def run_page_incident(tenant_world, customer_account=None) -> tuple[str, str]:
    """An open incident (its error is the marker) on a failed run; the id is the run's id."""
    from workflows.models import Incident, Run

    run, marker = _run_probe(tenant_world)
    with schema_context(tenant_world.schema):
        Run.objects.filter(pk=run.pk).update(status="failed", ready_at=None, error=marker)
        Incident.objects.create(
            run=run, step_id="tell", step_kind="notify", error=marker, error_class="ProbeError", step_input={"note": marker}
        )
    return str(run.pk), marker


def run_page_incident_resolved(tenant_world, customer_account=None) -> tuple[str, str]:
    """A resolved incident whose comment is the marker."""
    from workflows.models import Incident

    run, marker = _run_probe(tenant_world)
    with schema_context(tenant_world.schema):
        Incident.objects.create(
            run=run, step_id="tell", step_kind="notify", error="probe", status="resolved", resolution="retried", comment=marker
        )
    return str(run.pk), marker


def run_page_approval(tenant_world, customer_account=None) -> tuple[str, str]:
    """A pending approval for tenant admins and planners whose title is the marker; the id is the approval's."""
    from workflows.models import Approval

    run, marker = _run_probe(tenant_world)
    with schema_context(tenant_world.schema):
        approval = Approval.objects.create(run=run, step_id="tell", title=marker, assignee_roles=["planner", "tenant_admin"])
    return str(approval.pk), marker


def run_page_approval_decided(tenant_world, customer_account=None) -> tuple[str, str]:
    from workflows.models import Approval

    run, marker = _run_probe(tenant_world)
    with schema_context(tenant_world.schema):
        Approval.objects.create(
            run=run, step_id="tell", title=marker, assignee_roles=["planner"], status="approved", decided_by_email="p@example.test"
        )
    return "", marker


def run_page_approval_link(tenant_world, customer_account=None) -> tuple[str, str]:
    """A signed email link for the tenant admin to approve an approval titled by the marker; the id is the token."""
    from workflows.models import Approval
    from workflows.operations import approval_link_token

    approval_id, marker = run_page_approval(tenant_world)
    with schema_context(tenant_world.schema):
        approval = Approval.objects.get(pk=int(approval_id))
        token = approval_link_token(approval=approval, user_id=tenant_world.users["tenant_admin"].pk, decision="approved")
    return token, marker


TENANT_ROUTES += [
    Route("workflow run page, open incident", "/workflows/runs/{id}/", "page", run_page_incident),
    Route("workflow incidents", "/workflows/incidents/", "page", run_page_incident),
    Route("workflow incidents, filtered", "/workflows/incidents/?error_class=ProbeError&since=1h", "page", run_page_incident),
    Route("workflow incidents, resolved", "/workflows/incidents/?tab=resolved", "page", run_page_incident_resolved),
    Route("workflow incidents, bulk retry confirmation", "/workflows/incidents/retry/?error_class=ProbeError", "page", run_page_incident),
    Route("workflow approvals inbox", "/workflows/approvals/", "page", run_page_approval),
    Route("workflow approvals, all pending", "/workflows/approvals/?tab=all", "page", run_page_approval),
    Route("workflow approvals, decided", "/workflows/approvals/?tab=decided", "page", run_page_approval_decided),
    Route("workflow approval page", "/workflows/approvals/{id}/", "page", run_page_approval),
    Route("workflow approval email link", "/workflows/approvals/link/{id}/", "page", run_page_approval_link),
    Route("workflow definition, start form", "/workflows/{id}/#start", "page", workflow_definition),
]


# ---------- writes: every POST route of the workflow pages and API ----------
# Each is sent with another tenant's host, ids, tokens, session and API key, and by a customer
# user; its `state` hook reads what it would change in the owner's schema, which must stay as it was.


def _marker(tenant_world) -> str:
    return f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"


# What a write would change: read in the owner's schema from the private object's (id, marker).


def run_state(object_id: str, marker: str) -> Any:
    """The run whose business key is the marker, with its incidents."""
    from workflows.models import Incident, Run

    run = Run.objects.get(business_key=marker)
    incidents = list(Incident.objects.filter(run=run).order_by("pk").values_list("pk", "status", "resolution"))
    return (run.status, run.paused_at, run.generation, run.ready_at is not None, run.current_step, incidents)


def approval_state(object_id: str, marker: str) -> Any:
    """The approval titled by the marker."""
    from workflows.models import Approval

    return Approval.objects.filter(title=marker).values_list("status", "decided_at", "decided_by_email", "comment").get()


def definition_state(object_id: str, marker: str) -> Any:
    """The definition keyed by the id (None while there is none): its versions, which one is
    published, and its runs."""
    from workflows.models import Definition, DefinitionVersion, Run

    definition = Definition.objects.filter(key=object_id).first()
    if definition is None:
        return None
    versions = list(DefinitionVersion.objects.filter(definition=definition).order_by("number").values_list("number", "status"))
    runs = list(Run.objects.filter(definition=definition).order_by("pk").values_list("pk", "status"))
    return (definition.name, definition.published_version_id, versions, runs)


def policy_state(object_id: str, marker: str) -> Any:
    from workflows.models import WorkflowPolicy

    fields = ("require_second_approver", "payload_retention_days", "metadata_retention_days")
    return list(WorkflowPolicy.objects.order_by("pk").values_list(*fields))


def calendar_state(object_id: str, marker: str) -> Any:
    from workflows.models import BusinessCalendar

    return list(BusinessCalendar.objects.order_by("pk").values_list("weekly_hours", "holidays", "time_zone"))


def clone_wizard_state(object_id: str, marker: str) -> Any:
    """What the clone wizard of the template keyed by the id keeps in the owner's sessions (the
    wizard's first steps write only there)."""
    from django.contrib.sessions.models import Session

    from workflows.views import WIZARD_SESSION_KEY

    wizard = WIZARD_SESSION_KEY.format(key=object_id)
    kept = (session.get_decoded() for session in Session.objects.all())
    return sorted(json.dumps(data[wizard], sort_keys=True) for data in kept if wizard in data)


# What the writes act on.


def run_paused(tenant_world, customer_account=None) -> tuple[str, str]:
    """A paused run whose business key is the marker; the id is the run's."""
    from workflows.models import Run
    from workflows.operations import run_pause

    run_id, marker = workflow_run(tenant_world)
    with schema_context(tenant_world.schema):
        run_pause(run=Run.objects.get(pk=int(run_id)), actor=Actor.system("isolation"), reason="probe")
    return run_id, marker


def incident_open(tenant_world, customer_account=None) -> tuple[str, str]:
    """The open incident of a failed run (see `run_page_incident`); the id is the incident's."""
    from workflows.models import Incident

    run_id, marker = run_page_incident(tenant_world)
    with schema_context(tenant_world.schema):
        return str(Incident.objects.get(run_id=int(run_id), status="open").pk), marker


_WAIT_SPEC = {
    "start": "delivered",
    "triggers": [{"kind": "manual"}],
    "steps": [
        {
            "id": "delivered",
            "kind": "wait_event",
            "event_type": "isolation.probe",
            "correlate": {"shipment": "input.shipment"},
            "timeout": "PT1H",
            "next": "done",
            "on_timeout": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def run_waiting_for_event(tenant_world, customer_account=None) -> tuple[str, str]:
    """A run parked until an `isolation.probe` event for shipment <marker> (its business key too);
    the id is an event id to send."""
    from workflows.engine import run_advance, runs_claim
    from workflows.runs import run_start

    definition = _definition_published(tenant_world, _WAIT_SPEC)
    marker = _marker(tenant_world)
    with schema_context(tenant_world.schema):
        run, _created = run_start(
            definition=definition, input={"shipment": marker}, business_key=marker, trigger="manual", actor=Actor.system("isolation")
        )
        assert run.pk in runs_claim(owner="isolation", limit=100, lease_seconds=60)
        run_advance(run_id=run.pk, owner="isolation")
        run.refresh_from_db()
        assert run.status == "waiting", run.status
    return uuid.uuid4().hex, marker


def workflow_policy_known(tenant_world, customer_account=None) -> tuple[str, str]:
    """The policy at one admin's approval and 30/365 days of retention. The policy holds no text,
    so the marker is stored nowhere: the state hook does the checking."""
    from workflows.retention import workflow_policy_retention_update
    from workflows.services import workflow_policy_update

    admin = tenant_world.users["tenant_admin"]
    with schema_context(tenant_world.schema):
        workflow_policy_update(require_second_approver=False, actor=admin)
        workflow_policy_retention_update(payload_retention_days=30, metadata_retention_days=365, actor=admin)
    return "", _marker(tenant_world)


def definition_submitted(tenant_world, customer_account=None) -> tuple[str, str]:
    """A definition named by the marker whose version 1 is submitted; the id is its key."""
    from workflows.models import DefinitionVersion
    from workflows.services import definition_version_submit

    key, marker = workflow_definition(tenant_world)
    with schema_context(tenant_world.schema):
        version = DefinitionVersion.objects.get(definition__key=key, number=1)
        definition_version_submit(version=version, actor=tenant_world.users["tenant_admin"])
    return key, marker


def definition_republished(tenant_world, customer_account=None) -> tuple[str, str]:
    """A definition named by the marker with version 1 published, then superseded by version 2."""
    from workflows.services import definition_draft_create, definition_version_publish, definition_version_submit

    marker = _marker(tenant_world)
    definition = _definition_published(tenant_world, name=marker)
    admin = tenant_world.users["tenant_admin"]
    with schema_context(tenant_world.schema):
        draft = definition_draft_create(definition=definition, spec=_WORKFLOW_SPEC, parameters={}, comment="v2", actor=admin)
        definition_version_submit(version=draft, actor=admin)
        definition_version_publish(version=draft, actor=admin)
    return definition.key, marker


def definition_behind_upstream(tenant_world, customer_account=None) -> tuple[str, str]:
    """A definition named by the marker, cloned from template 1.0.0 when 1.1.0 is out."""
    template_key, key, marker = _workflow_cloned(tenant_world)
    _workflow_template_version(template_key=template_key, version="1.1.0")
    return key, marker


def definition_startable(tenant_world, customer_account=None) -> tuple[str, str]:
    """A published definition with a manual trigger, named by the marker; the id is its key."""
    marker = _marker(tenant_world)
    return _definition_published(tenant_world, name=marker).key, marker


_ISOLATION_START = "isolation-start"
_OPEN_HOURS = "09:00-17:00"
_CALENDAR_FORM = {
    "action": "save",
    **{day: _OPEN_HOURS for day in ("mon", "tue", "wed", "thu", "fri")},
    "sat": "",
    "sun": "",
    "time_zone": "",
    "holidays-TOTAL_FORMS": "0",
    "holidays-INITIAL_FORMS": "0",
}


def _write(name, path, kind, private_object, state, body=None, api_scope=""):
    return Route(name, path, kind, private_object, api_scope=api_scope, method="post", body=body or {}, state=state)


TENANT_ROUTES += [
    # pages (workflows/urls.py)
    _write(
        "write: workflow policy, four eyes",
        "/workflows/policy/",
        "page",
        workflow_policy_known,
        policy_state,
        {"require_second_approver": "on"},
    ),
    _write(
        "write: workflow policy, retention",
        "/workflows/policy/",
        "page",
        workflow_policy_known,
        policy_state,
        {"section": "retention", "payload_retention_days": "31", "metadata_retention_days": "366"},
    ),
    _write(
        "write: clone wizard",
        "/workflows/library/{id}/clone/",
        "page",
        workflow_template_in_use,
        clone_wizard_state,
        {"step": "1", "name": "Isolation clone", "key": "{id}"},
    ),
    _write("write: run pause", "/workflows/runs/{id}/pause/", "page", workflow_run, run_state, {"reason": "probe"}),
    _write("write: run resume", "/workflows/runs/{id}/resume/", "page", run_paused, run_state),
    _write("write: run cancel", "/workflows/runs/{id}/cancel/", "page", workflow_run, run_state, {"reason": "probe"}),
    _write("write: run retry", "/workflows/runs/{id}/retry/", "page", run_page_incident, run_state, {"comment": "probe"}),
    _write(
        "write: run retry, edited input",
        "/workflows/runs/{id}/retry/",
        "page",
        run_page_incident,
        run_state,
        {"edit": "1", "input": '{"note": "edited"}', "context": "", "comment": "probe"},
    ),
    _write("write: run restart", "/workflows/runs/{id}/restart/", "page", run_page_incident, run_state, {"comment": "probe"}),
    _write(
        "write: incidents bulk retry",
        "/workflows/incidents/retry/",
        "page",
        run_page_incident,
        run_state,
        {"error_class": "ProbeError", "comment": "probe"},
    ),
    _write("write: approval decision", "/workflows/approvals/{id}/", "page", run_page_approval, approval_state, {"decision": "approved"}),
    _write("write: approval email link", "/workflows/approvals/link/{id}/", "page", run_page_approval_link, approval_state),
    _write("write: business calendar", "/workflows/calendar/", "page", business_calendar_holiday, calendar_state, _CALENDAR_FORM),
    _write(
        "write: definition edit",
        "/workflows/{id}/edit/",
        "page",
        workflow_definition,
        definition_state,
        {"spec": json.dumps(_WORKFLOW_SPEC), "comment": "probe"},
    ),
    _write(
        "write: definition start",
        "/workflows/{id}/start/",
        "page",
        definition_startable,
        definition_state,
        {"input": "{}", "business_key": _ISOLATION_START},
    ),
    _write(
        "write: definition upgrade", "/workflows/{id}/upgrade/", "page", definition_behind_upstream, definition_state, {"version": "1.1.0"}
    ),
    _write("write: version submit", "/workflows/{id}/versions/1/submit/", "page", workflow_definition, definition_state),
    _write("write: version approve", "/workflows/{id}/versions/1/approve/", "page", definition_submitted, definition_state),
    _write(
        "write: version reject", "/workflows/{id}/versions/1/reject/", "page", definition_submitted, definition_state, {"comment": "probe"}
    ),
    _write("write: version publish", "/workflows/{id}/versions/1/publish/", "page", definition_submitted, definition_state),
    _write("write: version rollback", "/workflows/{id}/versions/1/rollback/", "page", definition_republished, definition_state),
    # API (workflows/api/urls.py)
    _write(
        "write: api definition clone",
        "/api/v1/definitions",
        "api",
        workflow_template_in_use,
        definition_state,
        {"template": "{id}", "key": "{id}", "name": "Isolation clone"},
        "workflows:write",
    ),
    _write(
        "write: api process run start",
        "/api/v1/processes/{id}/runs",
        "api",
        definition_startable,
        definition_state,
        {"input": {}, "business_key": _ISOLATION_START},
        "workflows:run",
    ),
    _write("write: api run pause", "/api/v1/runs/{id}/pause", "api", workflow_run, run_state, {"reason": "probe"}, "workflows:operate"),
    _write("write: api run resume", "/api/v1/runs/{id}/resume", "api", run_paused, run_state, {}, "workflows:operate"),
    _write("write: api run cancel", "/api/v1/runs/{id}/cancel", "api", workflow_run, run_state, {}, "workflows:operate"),
    _write(
        "write: api incident retry",
        "/api/v1/incidents/{id}/retry",
        "api",
        incident_open,
        run_state,
        {"input": {"note": "edited"}, "comment": "probe"},
        "workflows:operate",
    ),
    _write("write: api incident restart", "/api/v1/incidents/{id}/restart", "api", incident_open, run_state, {}, "workflows:operate"),
    _write(
        "write: api incidents bulk retry",
        "/api/v1/incidents/retry",
        "api",
        run_page_incident,
        run_state,
        {"error_class": "ProbeError"},
        "workflows:operate",
    ),
    _write(
        "write: api approval decision",
        "/api/v1/approvals/{id}/decision",
        "api",
        run_page_approval,
        approval_state,
        {"decision": "approved"},
        "workflows:approve",
    ),
    _write(
        "write: api event",
        "/api/v1/events",
        "api",
        run_waiting_for_event,
        run_state,
        {"event_type": "isolation.probe", "event_id": "{id}", "correlation": {"shipment": "{marker}"}},
        "events:write",
    ),
]


# ---------- the definition editor: bindings, YAML view, Validate, drafts through the API ----------

_CONNECTOR_SPEC = {
    "start": "tender",
    "triggers": [{"kind": "manual"}],
    "steps": [
        {"id": "tender", "kind": "connector", "name": "Tender", "connection": "carrier", "action": "tender", "next": "done"},
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def workflow_definition_bound(tenant_world, customer_account=None) -> tuple[str, str]:
    """A definition whose connector step's connection "carrier" is bound to the marker (a valid
    connection name); the id is its key."""
    version = _workflow_template_version(_CONNECTOR_SPEC)
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    key = f"wf-{uuid.uuid4().hex[:12]}"
    with schema_context(tenant_world.schema):
        definition_clone(
            template_version=version,
            key=key,
            name="Bound probe",
            parameters={},
            connection_bindings={"carrier": marker},
            actor=Actor.system("isolation"),
        )
    return key, marker


# Validate (POST /workflows/<key>/edit/check/) writes nothing, so it has no place among the writes
# (whose owner's request must change something); its refusals are in tests/workflows/test_definition_editor.py.
TENANT_ROUTES += [
    Route("workflow editor, bindings", "/workflows/{id}/edit/", "page", workflow_definition_bound),
    Route("workflow editor, YAML view", "/workflows/{id}/edit/?format=yaml", "page", workflow_definition_bound),
    Route("workflow editor, latest version checked", "/workflows/{id}/edit/check/", "page", workflow_definition_bound),
    Route(
        "api definition versions, bindings",
        "/api/v1/definitions/{id}/versions",
        "api",
        workflow_definition_bound,
        api_scope="workflows:read",
    ),
    _write(
        "write: api definition draft",
        "/api/v1/definitions/{id}/versions",
        "api",
        workflow_definition,
        definition_state,
        {"spec": _WORKFLOW_SPEC, "comment": "probe"},
        "workflows:write",
    ),
]

TENANT_ROUTES += [
    _write(
        "write: api process run batch start",
        "/api/v1/processes/{id}/runs/batch",
        "api",
        definition_startable,
        definition_state,
        {"runs": [{"input": {}, "business_key": _ISOLATION_START}]},
        "workflows:run",
    ),
]


# ---------- connections and their credentials (issue 4) ----------


def _connection_probe(tenant_world, *, enabled: bool = True) -> tuple[str, str]:
    """A connection named by the marker, with an API key; the id is its key. Its address is a
    closed loopback port, so a Test connection is refused at once."""
    from connectors.services import ConnectionInput, connection_create, connection_disable
    from tests.processes import free_port

    marker = _marker(tenant_world)
    key = f"conn-{uuid.uuid4().hex[:10]}"
    data = ConnectionInput(
        key=key,
        name=marker,
        kind="tms",
        base_url=f"http://127.0.0.1:{free_port()}",
        auth_method="api_key",
        secrets={"key": f"isolation-key-{uuid.uuid4().hex}"},
        connect_timeout=1,
        read_timeout=1,
    )
    with schema_context(tenant_world.schema):
        connection = connection_create(data=data, actor=Actor.system("isolation"))
        if not enabled:
            connection_disable(connection=connection, actor=Actor.system("isolation"))
    return key, marker


def connection_named(tenant_world, customer_account=None) -> tuple[str, str]:
    return _connection_probe(tenant_world)


def connection_disabled(tenant_world, customer_account=None) -> tuple[str, str]:
    return _connection_probe(tenant_world, enabled=False)


def connection_key_free(tenant_world, customer_account=None) -> tuple[str, str]:
    """A key no connection has yet (a create's target); nothing carries the marker."""
    return f"conn-{uuid.uuid4().hex[:10]}", _marker(tenant_world)


def connection_state(object_id: str, marker: str) -> Any:
    """The connection keyed by the id (None while there is none), secrets sealed as stored."""
    from connectors.models import Connection

    fields = ("name", "base_url", "auth_method", "auth_settings", "credentials", "credential_masks", "enabled", "last_test_at")
    return Connection.objects.filter(key=object_id).values_list(*fields).first()


_CONNECTION_FORM = {
    "name": "Isolation rename",
    "kind": "tms",
    "transport": "https",
    "base_url": "http://127.0.0.1:9",
    "health_path": "",
    "health_method": "GET",
    "connect_timeout": "1",
    "read_timeout": "1",
    "settings": "",
    "auth_method": "none",
    "oauth2_client_auth": "basic",
    "hmac_algorithm": "sha256",
}

TENANT_ROUTES += [
    Route("connections list", "/connections/", "page", connection_named),
    Route("connections list, search", "/connections/?q={id}", "page", connection_named),
    Route("connections list, a kind", "/connections/?kind=tms&status=enabled", "page", connection_named),
    Route("connection detail", "/connections/{id}/", "page", connection_named),
    Route("connection kinds", "/connections/new/", "page", tenant_name),
    Route("connection new form", "/connections/new/?kind=erp", "page", tenant_name),
    Route("api connections list", "/api/v1/connections", "api", connection_named, api_scope="connections:read"),
    Route("api connections search", "/api/v1/connections?search={id}", "api", connection_named, api_scope="connections:read"),
    Route("api connection detail", "/api/v1/connections/{id}", "api", connection_named, api_scope="connections:read"),
    _write(
        "write: connection create",
        "/connections/new/?kind=tms",
        "page",
        connection_key_free,
        connection_state,
        {**_CONNECTION_FORM, "key": "{id}"},
    ),
    _write("write: connection edit", "/connections/{id}/", "page", connection_named, connection_state, _CONNECTION_FORM),
    _write("write: connection test", "/connections/{id}/test/", "page", connection_named, connection_state),
    _write("write: connection disable", "/connections/{id}/disable/", "page", connection_named, connection_state, {"reason": "probe"}),
    _write("write: connection enable", "/connections/{id}/enable/", "page", connection_disabled, connection_state),
    _write(
        "write: api connection create",
        "/api/v1/connections",
        "api",
        connection_key_free,
        connection_state,
        {"key": "{id}", "name": "Isolation", "kind": "tms", "base_url": "https://tms.example.com", "auth": {"method": "none"}},
        "connections:write",
    ),
    Route(
        "write: api connection update",
        "/api/v1/connections/{id}",
        "api",
        connection_named,
        api_scope="connections:write",
        method="patch",
        body={"name": "Isolation rename", "auth": {"method": "api_key", "key": "a-replaced-isolation-key"}},
        state=connection_state,
    ),
    _write(
        "write: api connection test", "/api/v1/connections/{id}/test", "api", connection_named, connection_state, {}, "connections:write"
    ),
]


# ---------- the inbox: inbound events, quarantine, webhook settings (issue 4) ----------


def connection_taking_webhooks(tenant_world, customer_account=None) -> tuple[str, str]:
    """A connection named by the marker that takes Standard Webhooks; the id is its key."""
    from connectors.inbox import connection_inbound_configure
    from connectors.models import Connection

    key, marker = _connection_probe(tenant_world)
    with schema_context(tenant_world.schema):
        connection = Connection.objects.get(key=key)
        connection_inbound_configure(connection=connection, scheme="standard_webhooks", actor=Actor.system("isolation"))
    return key, marker


def inbound_event_quarantined(tenant_world, customer_account=None) -> tuple[str, str]:
    """A quarantined event of a connection named by the marker, whose external id and body carry
    the marker too; the id is the event's."""
    from django.utils import timezone

    from connectors.models import Connection, InboundEvent

    key, marker = _connection_probe(tenant_world)
    with schema_context(tenant_world.schema):
        event = InboundEvent.objects.create(
            connection=Connection.objects.get(key=key),
            channel="webhook",
            external_id=marker,
            content_type="application/json",
            headers={"webhook-id": marker},
            body=json.dumps({"event_type": "shipment.milestone", "correlation": {"pro": marker}, "payload": {}}),
            received_at=timezone.now(),
            status="quarantined",
            error="the event id must be a non-empty text",
            error_pointer="/event_id",
        )
    return str(event.pk), marker


def inbound_event_state(object_id: str, marker: str) -> Any:
    """What a replay changes: the event's status, body and replay count, and whether it waits to be handed on."""
    from connectors.models import EventDispatch, InboundEvent

    row = InboundEvent.objects.filter(external_id=marker).values_list("status", "body", "original_body", "replays").first()
    return row, EventDispatch.objects.filter(event__external_id=marker).exists()


def connection_inbound_state(object_id: str, marker: str) -> Any:
    """The connection's inbound settings, secrets sealed as stored."""
    from connectors.models import Connection

    fields = ("inbound_scheme", "inbound_scheme_settings", "inbound_secrets", "inbound_secret_masks", "inbound_mapper", "inbound_mapping")
    return Connection.objects.filter(key=object_id).values_list(*fields).first()


_FIXED_BODY = '{"event_type": "shipment.milestone", "event_id": "fixed-{id}", "correlation": {"pro": "PRO-{id}"}, "payload": {}}'

TENANT_ROUTES += [
    Route("inbox", "/connections/inbox/", "page", inbound_event_quarantined),
    Route("inbox, quarantine", "/connections/inbox/?status=quarantined", "page", inbound_event_quarantined),
    Route("inbox, search by event id", "/connections/inbox/?q={id}", "page", inbound_event_quarantined),
    Route("inbox, a connection", "/connections/inbox/?connection=x&channel=webhook&received_from=2020-01-01", "page", tenant_name),
    Route("inbound event detail", "/connections/inbox/{id}/", "page", inbound_event_quarantined),
    Route("connection detail, inbound card", "/connections/{id}/", "page", connection_taking_webhooks),
    Route("api inbound events list", "/api/v1/inbound-events", "api", inbound_event_quarantined, api_scope="connections:read"),
    Route(
        "api inbound events, quarantined",
        "/api/v1/inbound-events?status=quarantined",
        "api",
        inbound_event_quarantined,
        api_scope="connections:read",
    ),
    Route("api inbound event detail", "/api/v1/inbound-events/{id}", "api", inbound_event_quarantined, api_scope="connections:read"),
    _write("write: inbound event replay", "/connections/inbox/{id}/replay/", "page", inbound_event_quarantined, inbound_event_state),
    _write(
        "write: inbound event fix and replay",
        "/connections/inbox/{id}/replay/",
        "page",
        inbound_event_quarantined,
        inbound_event_state,
        {"fix": "1", "body": _FIXED_BODY},
    ),
    _write(
        "write: inbox replay all shown",
        "/connections/inbox/replay/",
        "page",
        inbound_event_quarantined,
        inbound_event_state,
        {"event": "{id}"},
    ),
    _write(
        "write: connection inbound settings",
        "/connections/{id}/inbound/",
        "page",
        connection_named,
        connection_inbound_state,
        {"scheme": "github", "mapper": "mapping", "mapping": '{"event_type": "order.received", "event_id": "$.id"}'},
    ),
    _write(
        "write: connection inbound rotate",
        "/connections/{id}/inbound/rotate/",
        "page",
        connection_taking_webhooks,
        connection_inbound_state,
        {"overlap_hours": "1"},
    ),
    _write(
        "write: api inbound event replay",
        "/api/v1/inbound-events/{id}/replay",
        "api",
        inbound_event_quarantined,
        inbound_event_state,
        {"body": _FIXED_BODY},
        "connections:write",
    ),
]


# ---------- customer webhooks: endpoints and their deliveries (issue 4) ----------


def _webhook_endpoint_probe(tenant_world, *, enabled: bool = True) -> tuple[Any, str]:
    """An endpoint of the tenant's first customer account whose URL and description carry the
    marker, with a failed delivery whose event id is the marker (nothing listens at the URL)."""
    from django.utils import timezone

    from connectors.deliveries import webhook_endpoint_create, webhook_endpoint_disable
    from connectors.models import WebhookDelivery

    marker = _marker(tenant_world)
    with schema_context(tenant_world.schema):
        account = CustomerAccount.objects.order_by("code").first()
        endpoint, _secret = webhook_endpoint_create(
            url=f"http://127.0.0.1:9/{marker}",
            event_types=["shipment.*"],
            description=marker,
            customer_account_id=account.pk if account else None,
            actor=Actor.system("isolation"),
        )
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_type="shipment.milestone",
            event_id=marker,
            payload={"pro": marker},
            webhook_id=f"msg_{uuid.uuid4().hex}",
            status="failed",
            attempts=8,
            last_status_code=500,
            last_error="HTTP 500",
            last_response=marker,
            created_at=timezone.now(),
        )
        if not enabled:
            webhook_endpoint_disable(endpoint=endpoint, actor=Actor.system("isolation"), reason=marker)
    return (endpoint, delivery), marker


def webhook_endpoint_customer(tenant_world, customer_account=None) -> tuple[str, str]:
    """The id is the endpoint's."""
    (endpoint, _delivery), marker = _webhook_endpoint_probe(tenant_world)
    return str(endpoint.pk), marker


def webhook_endpoint_disabled(tenant_world, customer_account=None) -> tuple[str, str]:
    (endpoint, _delivery), marker = _webhook_endpoint_probe(tenant_world, enabled=False)
    return str(endpoint.pk), marker


def webhook_delivery_failed(tenant_world, customer_account=None) -> tuple[str, str]:
    """The id is the failed delivery's."""
    (_endpoint, delivery), marker = _webhook_endpoint_probe(tenant_world)
    return str(delivery.pk), marker


def webhook_url_free(tenant_world, customer_account=None) -> tuple[str, str]:
    """A token no endpoint's URL ends with yet (a create's target); nothing carries the marker."""
    return uuid.uuid4().hex[:12], _marker(tenant_world)


def webhook_endpoint_state(object_id: str, marker: str) -> Any:
    """The endpoint whose URL ends with the marker (or, for a create, the id), secrets sealed as stored."""
    from connectors.models import WebhookEndpoint

    fields = ("url", "description", "event_types", "secrets", "secret_masks", "enabled", "disabled_reason")
    return WebhookEndpoint.objects.filter(url__endswith=f"/{marker}").values_list(*fields).first() or (
        WebhookEndpoint.objects.filter(url__endswith=f"/{object_id}").values_list(*fields).first()
    )


def webhook_delivery_state(object_id: str, marker: str) -> Any:
    from connectors.models import WebhookDelivery

    return WebhookDelivery.objects.filter(event_id=marker).values_list("status", "next_attempt_at").first()


TENANT_ROUTES += [
    Route("webhooks list", "/connections/webhooks/", "page", webhook_endpoint_customer),
    Route("webhooks list, filtered", "/connections/webhooks/?status=enabled&q=127.0.0.1", "page", webhook_endpoint_customer),
    Route("webhook new form, customer accounts", "/connections/webhooks/new/", "page", customer_account_named),
    Route("webhook endpoint page", "/connections/webhooks/{id}/", "page", webhook_endpoint_customer),
    Route("webhook endpoint page, failed deliveries", "/connections/webhooks/{id}/?status=failed", "page", webhook_endpoint_customer),
    Route("api webhook endpoints list", "/api/v1/webhook-endpoints", "api", webhook_endpoint_customer, api_scope="connections:read"),
    Route("api webhook endpoint detail", "/api/v1/webhook-endpoints/{id}", "api", webhook_endpoint_customer, api_scope="connections:read"),
    Route(
        "api webhook endpoint deliveries",
        "/api/v1/webhook-endpoints/{id}/deliveries",
        "api",
        webhook_endpoint_customer,
        api_scope="connections:read",
    ),
    _write(
        "write: webhook endpoint create",
        "/connections/webhooks/new/",
        "page",
        webhook_url_free,
        webhook_endpoint_state,
        {"url": "http://127.0.0.1:9/{id}", "event_types": "*"},
    ),
    _write(
        "write: webhook endpoint edit",
        "/connections/webhooks/{id}/",
        "page",
        webhook_endpoint_customer,
        webhook_endpoint_state,
        {"event_types": "*", "description": "probe"},
    ),
    _write(
        "write: webhook endpoint rotate",
        "/connections/webhooks/{id}/rotate/",
        "page",
        webhook_endpoint_customer,
        webhook_endpoint_state,
        {"overlap_hours": "1"},
    ),
    _write(
        "write: webhook endpoint disable",
        "/connections/webhooks/{id}/disable/",
        "page",
        webhook_endpoint_customer,
        webhook_endpoint_state,
        {"reason": "probe"},
    ),
    _write(
        "write: webhook endpoint enable", "/connections/webhooks/{id}/enable/", "page", webhook_endpoint_disabled, webhook_endpoint_state
    ),
    _write(
        "write: webhook delivery replay",
        "/connections/webhooks/deliveries/{id}/replay/",
        "page",
        webhook_delivery_failed,
        webhook_delivery_state,
    ),
    _write(
        "write: webhook deliveries replay all failed shown",
        "/connections/webhooks/deliveries/replay/",
        "page",
        webhook_delivery_failed,
        webhook_delivery_state,
        {"delivery": "{id}"},
    ),
    _write(
        "write: api webhook endpoint create",
        "/api/v1/webhook-endpoints",
        "api",
        webhook_url_free,
        webhook_endpoint_state,
        {"url": "http://127.0.0.1:9/{id}", "event_types": ["*"]},
        "connections:write",
    ),
    Route(
        "write: api webhook endpoint update",
        "/api/v1/webhook-endpoints/{id}",
        "api",
        webhook_endpoint_customer,
        api_scope="connections:write",
        method="patch",
        body={"event_types": ["*"], "description": "probe", "enabled": False},
        state=webhook_endpoint_state,
    ),
    _write(
        "write: api webhook endpoint rotate",
        "/api/v1/webhook-endpoints/{id}/rotate",
        "api",
        webhook_endpoint_customer,
        webhook_endpoint_state,
        {"overlap_hours": 1},
        "connections:write",
    ),
    _write(
        "write: api webhook delivery replay",
        "/api/v1/webhook-deliveries/{id}/replay",
        "api",
        webhook_delivery_failed,
        webhook_delivery_state,
        {},
        "connections:write",
    ),
]
# ---------- EDI partners: uploading interchanges (issue 4) ----------


def edi_partner_named(tenant_world, customer_account=None) -> tuple[str, str]:
    """A connection named by the marker with EDI partner settings; the id is its key."""
    from connectors.edi_transport import EdiPartnerInput, edi_partner_configure
    from connectors.models import Connection

    key, marker = _connection_probe(tenant_world)
    with schema_context(tenant_world.schema):
        data = EdiPartnerInput(their_qualifier="ZZ", their_id="ISOLATION", our_qualifier="ZZ", our_id="BATON")
        edi_partner_configure(connection=Connection.objects.get(key=key), data=data, actor=Actor.system("isolation"))
    return key, marker


def edi_partner_received(object_id: str, marker: str) -> Any:
    """The interchanges the partner connection keyed by the id has received."""
    from connectors.models import InboundEvent

    return list(InboundEvent.objects.filter(connection__key=object_id).values_list("external_id", "body"))


_ISOLATION_X12 = (
    "ISA*00*          *00*          *ZZ*ISOLATION      *ZZ*BATON          *260301*0930*U*00401*000000777*0*T*>~"
    "GS*QM*ISOLATION*BATON*20260301*0930*1*X*004010~ST*214*0001~B10*PRO-{id}*SHIP-{id}*ABCD~SE*3*0001~GE*1*1~IEA*1*000000777~"
)

TENANT_ROUTES += [
    Route("edi upload page", "/connections/{id}/edi/upload/", "page", edi_partner_named),
    _write(
        "write: edi upload",
        "/connections/{id}/edi/upload/",
        "page",
        edi_partner_named,
        edi_partner_received,
        {"interchange": _ISOLATION_X12},
    ),
    _write(
        "write: api edi interchange",
        "/api/v1/connections/{id}/interchanges",
        "api",
        edi_partner_named,
        edi_partner_received,
        {"interchange": _ISOLATION_X12},
        "connections:write",
    ),
]


def edi_partner_connection(tenant_world, customer_account=None) -> tuple[str, str]:
    """An EDI-partner connection named by the marker, without partner settings yet; the id is its key."""
    from connectors.models import Connection

    key, marker = _connection_probe(tenant_world)
    with schema_context(tenant_world.schema):
        Connection.objects.filter(key=key).update(kind="edi_partner")
    return key, marker


def edi_partner_settings(object_id: str, marker: str) -> Any:
    """The partner settings of the connection keyed by the id (none until someone sets them)."""
    from connectors.models import EdiPartner

    return list(EdiPartner.objects.filter(connection__key=object_id).values_list("their_id", "our_id"))


TENANT_ROUTES += [
    _write(
        "write: edi partner settings",
        "/connections/{id}/edi/partner/",
        "page",
        edi_partner_connection,
        edi_partner_settings,
        {
            "their_qualifier": "ZZ",
            "their_id": "PROBE",
            "our_qualifier": "ZZ",
            "our_id": "BATON",
            "version": "00401",
            "group_version": "004010",
            "usage": "P",
            "element_separator": "*",
            "component_separator": ">",
            "segment_terminator": "~",
            "repetition_separator": "^",
            "inbound_folder": "/in",
            "archive_folder": "/archive",
            "error_folder": "/error",
            "outbound_folder": "/out",
        },
    ),
]


# ---------- the outbound log: a connection's calls (issue 4) ----------


def _exchange_probe(tenant_world) -> tuple[str, int, str]:
    """A connection named by the marker with one failed call in its outbound log whose URL, error
    and answer carry the marker too; its key and the call's id."""
    from django.utils import timezone

    from connectors.models import Connection, ConnectorExchange

    key, marker = _connection_probe(tenant_world)
    with schema_context(tenant_world.schema):
        exchange = ConnectorExchange.objects.create(
            connection=Connection.objects.get(key=key),
            connection_key=key,
            action="tender_load",
            method="POST",
            url=f"http://127.0.0.1:9/{marker}/tender_load",
            request_headers={"Idempotency-Key": "1:tender"},
            request_body=json.dumps({"order": marker}),
            request_size=30,
            response_status=500,
            response_body=json.dumps({"detail": marker}),
            response_size=30,
            outcome="HttpServerError",
            error=f"{key} tender_load failed: HTTP 500: {marker}",
            idempotency_key="1:tender",
            run_id=1,
            step_id="tender",
            created_at=timezone.now(),
        )
    return key, exchange.pk, marker


def connection_exchange_logged(tenant_world, customer_account=None) -> tuple[str, str]:
    """The id is the connection's key."""
    key, _exchange_id, marker = _exchange_probe(tenant_world)
    return key, marker


def connection_exchange_page(tenant_world, customer_account=None) -> tuple[str, str]:
    """The id is "<key>/outbound/<call id>", the call page's path below /connections/."""
    key, exchange_id, marker = _exchange_probe(tenant_world)
    return f"{key}/outbound/{exchange_id}", marker


def connection_exchange_api(tenant_world, customer_account=None) -> tuple[str, str]:
    """The id is "<key>/exchanges/<call id>", the call's path below /api/v1/connections/."""
    key, exchange_id, marker = _exchange_probe(tenant_world)
    return f"{key}/exchanges/{exchange_id}", marker


TENANT_ROUTES += [
    Route("connection outbound log", "/connections/{id}/outbound/", "page", connection_exchange_logged),
    Route("connection outbound log, failed", "/connections/{id}/outbound/?outcome=failed", "page", connection_exchange_logged),
    Route("connection outbound call", "/connections/{id}/", "page", connection_exchange_page),
    Route(
        "api connection exchanges", "/api/v1/connections/{id}/exchanges", "api", connection_exchange_logged, api_scope="connections:read"
    ),
    Route(
        "api connection exchanges, failed",
        "/api/v1/connections/{id}/exchanges?outcome=failed",
        "api",
        connection_exchange_logged,
        api_scope="connections:read",
    ),
    Route("api connection exchange", "/api/v1/connections/{id}", "api", connection_exchange_api, api_scope="connections:read"),
]


# --- status mappings (logistics/urls.py) ------------------------------------------------------

_MAPPING_PROBE_CODE = "ZZISO"


def _mapping_marker(tenant_world) -> str:
    return f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"


def _mapping_draft(tenant_world, kind: str, marker: str):
    """The tenant's draft of `kind` (made by an actor named by the marker when there is none),
    holding code ZZISO whose meaning is the marker."""
    from logistics.models import StatusMappingVersion
    from logistics.services import mapping_entry_set, mapping_version_draft_create

    owner = Actor(email=f"{marker}@mappings.test", kind="system")
    with schema_context(tenant_world.schema):
        draft = StatusMappingVersion.objects.filter(kind=kind, status="draft").first()
        draft = draft or mapping_version_draft_create(kind=kind, actor=owner)
        code = _MAPPING_PROBE_CODE.lower() if kind == "carrier_api_status" else _MAPPING_PROBE_CODE
        fields = {"responsible": "carrier"} if kind == "x12_214_reason" else {"status": "on_hold"}
        mapping_entry_set(version=draft, code=code, description=marker, actor=owner, **fields)
    return draft


def mapping_draft_marked(tenant_world, customer_account=None) -> tuple[str, str]:
    """A draft of the X12 status table with a code meaning the marker; the id is "<kind>/<number>"."""
    marker = _mapping_marker(tenant_world)
    draft = _mapping_draft(tenant_world, "x12_214_status", marker)
    return f"{draft.kind}/{draft.number}", marker


def mapping_list_marked(tenant_world, customer_account=None) -> tuple[str, str]:
    """A draft of the carrier-API table drafted by an actor whose email holds the marker (the list
    names who drafted it)."""
    marker = _mapping_marker(tenant_world)
    _mapping_draft(tenant_world, "carrier_api_status", marker)
    return "", marker


def mapping_table_without_draft(tenant_world, customer_account=None) -> tuple[str, str]:
    """The reason table, with no draft yet; the id is its kind."""
    return "x12_214_reason", _mapping_marker(tenant_world)


def mapping_version_retired(tenant_world, customer_account=None) -> tuple[str, str]:
    """Version 1 of the carrier-API table, retired by publishing a draft; the id is "<kind>/1"."""
    from logistics.services import mapping_version_publish

    marker = _mapping_marker(tenant_world)
    draft = _mapping_draft(tenant_world, "carrier_api_status", marker)
    with schema_context(tenant_world.schema):
        mapping_version_publish(version=draft, actor=Actor(email="owner@example.test", kind="system"))
    return "carrier_api_status/1", marker


def mapping_versions_state(object_id: str, marker: str) -> Any:
    """Every version of the table the id names (its kind, before any "/"), with its state."""
    from logistics.models import StatusMappingVersion

    kind = object_id.split("/")[0]
    return list(StatusMappingVersion.objects.filter(kind=kind).order_by("number").values_list("number", "status", "notes"))


def mapping_entries_state(object_id: str, marker: str) -> Any:
    """The codes of the version the id names ("<kind>/<number>")."""
    from logistics.models import StatusMappingEntry

    kind, number = object_id.split("/")
    entries = StatusMappingEntry.objects.filter(version__kind=kind, version__number=int(number)).order_by("code")
    return list(entries.values_list("code", "description", "status"))


TENANT_ROUTES += [
    Route("status mappings list", "/logistics/mappings/", "page", mapping_list_marked),
    Route("status mapping version", "/logistics/mappings/{id}/", "page", mapping_draft_marked),
    Route(
        "status mapping version, search",
        f"/logistics/mappings/{{id}}/?q={_MAPPING_PROBE_CODE}&status=on_hold",
        "page",
        mapping_draft_marked,
    ),
    Route(
        "status mapping version, editing a code", f"/logistics/mappings/{{id}}/?edit={_MAPPING_PROBE_CODE}", "page", mapping_draft_marked
    ),
    _write(
        "write: status mapping, new draft", "/logistics/mappings/{id}/new/", "page", mapping_table_without_draft, mapping_versions_state
    ),
    _write(
        "write: status mapping, save a code",
        "/logistics/mappings/{id}/entries/",
        "page",
        mapping_draft_marked,
        mapping_entries_state,
        {"code": "ZZNEW", "description": "Isolation probe", "status": "in_transit"},
    ),
    _write(
        "write: status mapping, remove a code",
        "/logistics/mappings/{id}/entries/remove/",
        "page",
        mapping_draft_marked,
        mapping_entries_state,
        {"code": _MAPPING_PROBE_CODE},
    ),
    _write(
        "write: status mapping, publish",
        "/logistics/mappings/{id}/publish/",
        "page",
        mapping_draft_marked,
        mapping_versions_state,
        {"notes": "isolation probe"},
    ),
    _write("write: status mapping, discard", "/logistics/mappings/{id}/discard/", "page", mapping_draft_marked, mapping_versions_state),
    _write(
        "write: status mapping, activate",
        "/logistics/mappings/{id}/activate/",
        "page",
        mapping_version_retired,
        mapping_versions_state,
        {"reason": "isolation probe"},
    ),
]


# ---------- outcome metrics (issue 5) ----------


def outcomes_go_live_named(tenant_world, customer_account=None) -> tuple[str, str]:
    """A logistics workflow (cloned from a "billing" library template) named by the marker and
    published: the outcomes' default baseline is the days before it went live, which the page and
    the API name. The id is unused."""
    from workflows.models import DefinitionVersion
    from workflows.services import definition_version_publish, definition_version_submit, template_create, template_version_publish

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    actor = Actor.system("isolation")
    with schema_context("public"):
        template = template_create(
            key=f"probe-{uuid.uuid4().hex[:10]}", name="Isolation probe", category="billing", description="", partner_id=None, actor=actor
        )
        version = template_version_publish(
            template=template,
            version="1.0.0",
            definition=_WORKFLOW_SPEC,
            parameters_schema={"type": "object", "properties": {}},
            documentation="",
            changelog="",
            actor=actor,
        )
    admin = tenant_world.users["tenant_admin"]
    with schema_context(tenant_world.schema):
        definition = definition_clone(
            template_version=version, key=f"go-{uuid.uuid4().hex[:12]}", name=marker, parameters={}, connection_bindings={}, actor=admin
        )
        draft = DefinitionVersion.objects.get(definition=definition, number=1)
        definition_version_submit(version=draft, actor=admin)
        definition_version_publish(version=draft, actor=admin)
    return "", marker


TENANT_ROUTES += [
    Route("outcomes page", "/insights/outcomes/", "page", outcomes_go_live_named),
    Route("outcomes page, 14 days", "/insights/outcomes/?days=14", "page", outcomes_go_live_named),
    Route("api outcomes", "/api/v1/insights/outcomes", "api", outcomes_go_live_named, api_scope="insights:read"),
    Route("api outcomes, 14 days", "/api/v1/insights/outcomes?days=14", "api", outcomes_go_live_named, api_scope="insights:read"),
]


# ---------- customer milestone notifications: subscriptions (logistics/notification_views.py) ----------


def _milestone_subscription(tenant_world, *, enabled: bool = True) -> tuple[Any, str]:
    """A subscription of the tenant's first customer account, emailing an address that carries the
    marker, with one notification held for quiet hours whose reason is the marker."""
    from datetime import timedelta

    from django.utils import timezone

    from logistics.models import MilestoneNotification, Shipment
    from logistics.notifications import subscription_create, subscription_disable

    marker = _marker(tenant_world)
    owner = Actor.system("isolation")
    with schema_context(tenant_world.schema):
        account = CustomerAccount.objects.order_by("code").first()
        assert account is not None
        subscription = subscription_create(
            customer_account=account, milestones=["delivered"], channel="email", email=f"{marker}@coyote.test", time_zone="UTC", actor=owner
        )
        shipment = Shipment.objects.create(reference=f"SH-{marker}"[:60], customer_account=account)
        now = timezone.now()
        MilestoneNotification.objects.create(
            subscription=subscription,
            shipment=shipment,
            milestone="delivered",
            occurred_at=now,
            due_at=now + timedelta(hours=8),
            held="quiet_hours",
            details={"label": "Delivered", "reason": marker},
        )
        if not enabled:
            subscription_disable(subscription=subscription, reason=marker, actor=owner)
    return subscription, marker


def milestone_subscription_marked(tenant_world, customer_account=None) -> tuple[str, str]:
    """The id is the subscription's."""
    subscription, marker = _milestone_subscription(tenant_world)
    return str(subscription.pk), marker


def milestone_subscription_disabled(tenant_world, customer_account=None) -> tuple[str, str]:
    subscription, marker = _milestone_subscription(tenant_world, enabled=False)
    return str(subscription.pk), marker


def milestone_subscription_account(tenant_world, customer_account=None) -> tuple[str, str]:
    """A create's target: the id is the first customer account's; nothing carries the marker yet."""
    with schema_context(tenant_world.schema):
        account = CustomerAccount.objects.order_by("code").first()
        assert account is not None
    return str(account.pk), _marker(tenant_world)


def milestone_subscriptions_of_account_state(object_id: str, marker: str) -> Any:
    """A create's target: the subscriptions of the account the id names."""
    from logistics.models import MilestoneSubscription

    rows = MilestoneSubscription.objects.filter(customer_account_id=int(object_id)).order_by("pk")
    return list(rows.values_list("pk", "email", "milestones"))


def milestone_subscription_state(object_id: str, marker: str) -> Any:
    """The subscriptions emailing the marker's address: their account, state and reason."""
    from logistics.models import MilestoneSubscription

    rows = MilestoneSubscription.objects.filter(email=f"{marker}@coyote.test").order_by("pk")
    return list(rows.values_list("customer_account_id", "enabled", "disabled_reason", "milestones"))


TENANT_ROUTES += [
    Route("milestone subscriptions list", "/logistics/notifications/", "page", milestone_subscription_marked),
    Route(
        "milestone subscriptions list, filtered",
        "/logistics/notifications/?channel=email&state=enabled&q=coyote",
        "page",
        milestone_subscription_marked,
    ),
    Route("milestone subscription new form, customer accounts", "/logistics/notifications/new/", "page", customer_account_named),
    Route("milestone subscription page", "/logistics/notifications/{id}/", "page", milestone_subscription_marked),
    Route(
        "milestone subscription page, pending notifications",
        "/logistics/notifications/{id}/?status=pending",
        "page",
        milestone_subscription_marked,
    ),
    _write(
        "write: milestone subscription create",
        "/logistics/notifications/new/",
        "page",
        milestone_subscription_account,
        milestone_subscriptions_of_account_state,
        {
            "customer_account": "{id}",
            "milestones": ["delivered", "delay"],
            "channel": "email",
            "email": "probe@coyote.test",
            "time_zone": "UTC",
            "digest": "off",
        },
    ),
    _write(
        "write: milestone subscription disable",
        "/logistics/notifications/{id}/disable/",
        "page",
        milestone_subscription_marked,
        milestone_subscription_state,
        {"reason": "isolation probe"},
    ),
    _write(
        "write: milestone subscription enable",
        "/logistics/notifications/{id}/enable/",
        "page",
        milestone_subscription_disabled,
        milestone_subscription_state,
    ),
]
TENANT_ROUTES += [
    Route(
        "api milestone subscriptions list",
        "/api/v1/milestone-subscriptions",
        "api",
        milestone_subscription_marked,
        api_scope="connections:read",
    ),
    Route(
        "api milestone subscription detail",
        "/api/v1/milestone-subscriptions/{id}",
        "api",
        milestone_subscription_marked,
        api_scope="connections:read",
    ),
    Route(
        "api milestone subscription notifications",
        "/api/v1/milestone-subscriptions/{id}/notifications",
        "api",
        milestone_subscription_marked,
        api_scope="connections:read",
    ),
    _write(
        "write: api milestone subscription create",
        "/api/v1/milestone-subscriptions",
        "api",
        milestone_subscription_account,
        milestone_subscriptions_of_account_state,
        {"customer_account": "{id}", "milestones": ["delivered"], "channel": "email", "email": "probe@coyote.test", "time_zone": "UTC"},
        "connections:write",
    ),
    _write(
        "write: api milestone subscription disable",
        "/api/v1/milestone-subscriptions/{id}/disable",
        "api",
        milestone_subscription_marked,
        milestone_subscription_state,
        {"reason": "isolation probe"},
        "connections:write",
    ),
    _write(
        "write: api milestone subscription enable",
        "/api/v1/milestone-subscriptions/{id}/enable",
        "api",
        milestone_subscription_disabled,
        milestone_subscription_state,
        {},
        "connections:write",
    ),
]


# --- Experience API (issue 6): shipments, tracking events, documents, invoices, subscriptions ---


def experience_shipment(tenant_world, customer_account=None) -> tuple[str, str]:
    """A shipment of the account (the tenant's first by default) whose reference is the id and
    whose origin's name, an applied event's place, a POD's file name and a customer invoice's
    number carry the marker."""
    from logistics.models import DocumentKind
    from logistics.services import document_record, location_create, shipment_create, tracking_event_record

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    reference = f"ISO-{uuid.uuid4().hex[:10].upper()}"
    actor = Actor(email="owner@example.test")
    with schema_context(tenant_world.schema):
        account = customer_account or tenant_world.customer_accounts[0]
        origin = location_create(code=f"iso-{uuid.uuid4().hex[:10]}", name=marker, actor=actor)
        shipment = shipment_create(customer_account=account, reference=reference, origin=origin, actor=actor)
        tracking_event_record(
            shipment=shipment, occurred_at=shipment.created_at, source="api", status="in_transit", location_text=marker, actor=actor
        )
        document_record(kind=DocumentKind.POD, content=marker.encode(), original_name=f"{marker}.pdf", shipment=shipment, actor=actor)
        document_record(
            kind=DocumentKind.INVOICE,
            content=f"invoice {marker}".encode(),
            original_name="invoice.pdf",
            shipment=shipment,
            extracted_fields={"customer_invoice": marker, "total": "1.00", "currency": "USD"},
            actor=actor,
        )
    return reference, marker


def experience_subscription(tenant_world, customer_account=None) -> tuple[str, str]:
    """A milestone subscription of the account; the id is the account's, the marker its address."""
    from logistics.notifications import subscription_create

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        account = customer_account or tenant_world.customer_accounts[0]
        subscription_create(
            customer_account=account,
            milestones=["delivered"],
            channel="email",
            email=f"{marker}@people.test",
            time_zone="UTC",
            actor=Actor(email="owner@example.test"),
        )
    return str(account.pk), marker


def experience_subscriptions_of_account_state(object_id: str, marker: str) -> Any:
    from logistics.models import MilestoneSubscription

    return sorted(MilestoneSubscription.objects.filter(customer_account_id=int(object_id)).values_list("id", flat=True))


TENANT_ROUTES += [
    Route("api experience shipments list", "/api/v1/shipments?q={id}", "api", experience_shipment, "shipments:read", True),
    Route("api experience shipment", "/api/v1/shipments/{id}", "api", experience_shipment, "shipments:read", True),
    Route(
        "api experience shipment tracking events",
        "/api/v1/shipments/{id}/tracking-events",
        "api",
        experience_shipment,
        "shipments:read",
        True,
    ),
    Route("api experience shipment documents", "/api/v1/shipments/{id}/documents", "api", experience_shipment, "shipments:read", True),
    Route("api experience invoices", "/api/v1/invoices", "api", experience_shipment, "shipments:read", True),
    Route(
        "api experience subscriptions",
        "/api/v1/subscriptions?customer_account={id}",
        "api",
        experience_subscription,
        "subscriptions:read",
        True,
    ),
    Route(
        "write: api experience subscription create",
        "/api/v1/subscriptions",
        "api",
        experience_subscription,
        "subscriptions:write",
        True,
        method="post",
        body={
            "customer_account": "{id}",
            "milestones": ["picked_up"],
            "channel": "email",
            "email": "probe@coyote.test",
            "time_zone": "UTC",
        },
        state=experience_subscriptions_of_account_state,
    ),
]


# ---------- workspace: the operations home and the exception queue (issue 6, portal/views.home, logistics/exception_views.py) ----------


def _exception_case(tenant_world, *, token: str = "") -> tuple[str, str]:
    from logistics.services import exception_open

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        case = exception_open(
            type="other", reason=f"{marker} {token}".strip(), severity="critical", actor=Actor.system("isolation")
        ).exception
    return str(case.pk), marker


def exception_case_marked(tenant_world, customer_account=None) -> tuple[str, str]:
    """An open critical exception whose reason is the marker; the id is the case's."""
    return _exception_case(tenant_world)


def exception_case_searchable(tenant_world, customer_account=None) -> tuple[str, str]:
    """An open exception found by a search token (the id) that is not the marker, so a page
    echoing the query can't leak it."""
    token = uuid.uuid4().hex[:12]
    _case_id, marker = _exception_case(tenant_world, token=token)
    return token, marker


def exception_case_state(object_id: str, marker: str) -> Any:
    """What assigning or closing changes: the case's status, owner and root cause."""
    from logistics.models import ExceptionCase

    case = ExceptionCase.objects.get(pk=int(object_id))
    return case.status, case.owner_id, case.root_cause


TENANT_ROUTES += [
    Route("home, my approvals due", "/", "page", workflow_approval),
    Route("exception queue", "/exceptions/", "page", exception_case_marked),
    Route("exception queue, critical", "/exceptions/?severity=critical&owner=none", "page", exception_case_marked),
    Route("exception queue, search", "/exceptions/?q={id}", "page", exception_case_searchable),
    _write("write: exception assign to me", "/exceptions/{id}/assign-to-me/", "page", exception_case_marked, exception_case_state, {}),
    _write(
        "write: exception close",
        "/exceptions/{id}/close/",
        "page",
        exception_case_marked,
        exception_case_state,
        {"root_cause": "carrier", "resolution": "isolation probe"},
    ),
]


# ---------- customer portal: the shipments list and a shipment's page (issue 6, portal/shipment_views.py) ----------
# Customer-scoped pages: the shipments are those of `experience_shipment` above (reference = id,
# marker in the origin's name, an event's place, the POD's content and the invoice's number).


def _portal_person(tenant_world, customer_account=None):
    """Who owns a saved view: the tenant admin, or a customer user of `customer_account` (the
    fixtures' customer for the first account, a new one for any other). Call inside the schema."""
    if customer_account is None:
        return tenant_world.users["tenant_admin"]
    customer = tenant_world.users.get("customer")
    if customer is not None and customer.customer_account_id == customer_account.pk:
        return customer
    return user_create(
        email=f"portal-{uuid.uuid4().hex[:8]}@people.test",
        role="customer",
        actor=Actor(email="owner@example.test"),
        customer_account_id=customer_account.pk,
    )


def portal_document_token(tenant_world, customer_account=None) -> tuple[str, str]:
    """A signed download link's token for a shipment's POD (whose content is the marker), made
    for the account's people (the tenant's staff when no account is named)."""
    from types import SimpleNamespace

    from logistics.models import Document
    from logistics.shipment_reads import document_link

    reference, marker = experience_shipment(tenant_world, customer_account)
    with schema_context(tenant_world.schema):
        document = Document.objects.get(shipment__reference=reference, kind="pod")
        viewer = SimpleNamespace(customer_account_id=customer_account.pk if customer_account else None)
        path = document_link(document, viewer)
    return path.rstrip("/").rsplit("/", 1)[1], marker


def portal_saved_view(tenant_world, customer_account=None) -> tuple[str, str]:
    """A saved view named by the marker; the id is the view's."""
    from portal.models import SavedView

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        view = SavedView.objects.create(owner=_portal_person(tenant_world, customer_account), name=marker, query="mode=ltl")
    return str(view.pk), marker


def portal_saved_view_owner(tenant_world, customer_account=None) -> tuple[str, str]:
    """The person a new saved view would belong to (the id) and the name to save it under."""
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        person = _portal_person(tenant_world, customer_account)
    return str(person.pk), marker


def portal_saved_view_state(object_id: str, marker: str) -> Any:
    from portal.models import SavedView

    return sorted(SavedView.objects.filter(pk=int(object_id)).values_list("name", "query"))


def portal_saved_views_of_person_state(object_id: str, marker: str) -> Any:
    from portal.models import SavedView

    return sorted(SavedView.objects.filter(owner_id=int(object_id)).values_list("name", flat=True))


TENANT_ROUTES += [
    Route("portal shipments list", "/shipments/", "page", experience_shipment, customer_scoped=True),
    Route("portal shipments search", "/shipments/?q={id}", "page", experience_shipment, customer_scoped=True),
    Route("portal shipments export", "/shipments/export.csv?q={id}", "page", experience_shipment, customer_scoped=True),
    Route("portal shipments saved views", "/shipments/", "page", portal_saved_view, customer_scoped=True),
    Route("portal shipment page", "/shipments/{id}/", "page", experience_shipment, customer_scoped=True),
    Route("portal shipment timeline feed", "/shipments/{id}/timeline.json?since=0", "page", experience_shipment, customer_scoped=True),
    Route("portal shipment document download", "/shipments/documents/{id}/", "page", portal_document_token, customer_scoped=True),
    Route(
        "write: portal saved view create",
        "/shipments/saved-views/",
        "page",
        portal_saved_view_owner,
        customer_scoped=True,
        method="post",
        body={"name": "{marker}", "query": "mode=ltl"},
        state=portal_saved_views_of_person_state,
    ),
    Route(
        "write: portal saved view delete",
        "/shipments/saved-views/{id}/delete/",
        "page",
        portal_saved_view,
        customer_scoped=True,
        method="post",
        body={},
        state=portal_saved_view_state,
    ),
]


def language_chooser(tenant_world, customer_account=None) -> tuple[str, str]:
    """The person whose language a switch would change (the id), back on "follow the browser"
    first so that the owner's own switch to German always changes something."""
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    with schema_context(tenant_world.schema):
        person = _portal_person(tenant_world, customer_account)
        type(person).objects.filter(pk=person.pk).update(language="")
    return str(person.pk), marker


def language_of_person_state(object_id: str, marker: str) -> Any:
    from accounts.models import User

    return User.objects.filter(pk=int(object_id)).values_list("language", flat=True).first()


TENANT_ROUTES += [
    # Anyone may choose a language (the sign-in page has the switcher too); a signed-in person's
    # choice is kept on their own account only. `next` is the sign-in page, where a signed-out
    # visitor's switch lands.
    Route(
        "write: language switch",
        "/accounts/language/",
        "page",
        language_chooser,
        customer_scoped=True,
        method="post",
        body={"language": "de", "next": "/accounts/login/"},
        state=language_of_person_state,
    ),
]


# ---------- customer portal: notification preferences and customer API keys (portal/notification_views.py, account_views.py) ----------


def _account_or_first(customer_account=None) -> CustomerAccount:
    """`customer_account`, or the tenant's first (the owner's control); call inside the schema."""
    account = customer_account or CustomerAccount.objects.order_by("code").first()
    assert account is not None
    return account


def _portal_notification(tenant_world, customer_account=None, *, enabled: bool = True) -> tuple[str, str]:
    """A subscription of the account emailing an address that carries the marker, with one waiting
    notification of a shipment whose reference carries it too; the id is the subscription's."""
    from datetime import timedelta

    from django.utils import timezone

    from logistics.models import MilestoneNotification, Shipment
    from logistics.notifications import subscription_create, subscription_disable

    marker = _marker(tenant_world)
    owner = Actor.system("isolation")
    with schema_context(tenant_world.schema):
        account = _account_or_first(customer_account)
        subscription = subscription_create(
            customer_account=account, milestones=["delivered"], channel="email", email=f"{marker}@coyote.test", time_zone="UTC", actor=owner
        )
        shipment = Shipment.objects.create(reference=f"SH-{marker}"[:60], customer_account=account)
        now = timezone.now()
        MilestoneNotification.objects.create(
            subscription=subscription,
            shipment=shipment,
            milestone="delivered",
            occurred_at=now,
            due_at=now + timedelta(hours=8),
            held="quiet_hours",
            details={"label": "Delivered"},
        )
        if not enabled:
            subscription_disable(subscription=subscription, reason=marker, actor=owner)
    return str(subscription.pk), marker


def portal_notification(tenant_world, customer_account=None) -> tuple[str, str]:
    return _portal_notification(tenant_world, customer_account)


def portal_notification_paused(tenant_world, customer_account=None) -> tuple[str, str]:
    return _portal_notification(tenant_world, customer_account, enabled=False)


def portal_notification_form(tenant_world, customer_account=None) -> tuple[str, str]:
    """What the new-notification form shows its viewer: a customer, their account's webhook
    endpoints (one at a URL carrying the marker); staff, the customer accounts (one named by it)."""
    from connectors.models import WebhookEndpoint

    marker = _marker(tenant_world)
    with schema_context(tenant_world.schema):
        if customer_account is None:
            CustomerAccount.objects.create(code=marker, name=marker)
        else:
            WebhookEndpoint.objects.create(customer_account=customer_account, url=f"https://{marker}.example.test/hooks", event_types=["*"])
    return "", marker


def portal_account_target(tenant_world, customer_account=None) -> tuple[str, str]:
    """A write's target: the id is the account's; nothing carries the marker yet."""
    with schema_context(tenant_world.schema):
        account = _account_or_first(customer_account)
    return str(account.pk), _marker(tenant_world)


def portal_customer_key(tenant_world, customer_account=None) -> tuple[str, str]:
    """An API key of the account, named by the marker; the id is the key's."""
    from accounts.services import api_key_create

    marker = _marker(tenant_world)
    with schema_context(tenant_world.schema):
        account = _account_or_first(customer_account)
        key, _secret = api_key_create(
            name=marker, scopes=["shipments:read"], actor=Actor.system("isolation"), customer_account_id=account.pk
        )
    return str(key.pk), marker


def portal_notifications_of_account_state(object_id: str, marker: str) -> Any:
    from logistics.models import MilestoneSubscription

    return list(MilestoneSubscription.objects.filter(customer_account_id=int(object_id)).order_by("pk").values_list("pk", "milestones"))


def portal_notification_state(object_id: str, marker: str) -> Any:
    from logistics.models import MilestoneSubscription

    return list(MilestoneSubscription.objects.filter(pk=int(object_id)).values_list("milestones", "email", "enabled", "disabled_reason"))


def portal_keys_of_account_state(object_id: str, marker: str) -> Any:
    from accounts.models import ApiKey

    return sorted(ApiKey.objects.filter(customer_account_id=int(object_id)).values_list("name", flat=True))


def portal_key_state(object_id: str, marker: str) -> Any:
    from accounts.models import ApiKey

    return list(ApiKey.objects.filter(pk=int(object_id)).values_list("revoked_at", flat=True))


_NOTIFICATION_FORM = {"milestones": ["delay"], "send_to": "people", "time_zone": "UTC", "digest": "off"}

TENANT_ROUTES += [
    Route("portal notifications page", "/notifications/", "page", portal_notification, customer_scoped=True),
    Route("portal notifications page, recent pending", "/notifications/?status=pending", "page", portal_notification, customer_scoped=True),
    Route("portal notification new form", "/notifications/new/", "page", portal_notification_form, customer_scoped=True),
    Route("portal notification page", "/notifications/{id}/", "page", portal_notification, customer_scoped=True),
    Route(
        "write: portal notification add",
        "/notifications/new/",
        "page",
        portal_account_target,
        customer_scoped=True,
        method="post",
        body={**_NOTIFICATION_FORM, "customer_account": "{id}"},
        state=portal_notifications_of_account_state,
    ),
    Route(
        "write: portal notification change",
        "/notifications/{id}/",
        "page",
        portal_notification,
        customer_scoped=True,
        method="post",
        body=_NOTIFICATION_FORM,
        state=portal_notification_state,
    ),
    Route(
        "write: portal notification pause",
        "/notifications/{id}/pause/",
        "page",
        portal_notification,
        customer_scoped=True,
        method="post",
        body={},
        state=portal_notification_state,
    ),
    Route(
        "write: portal notification resume",
        "/notifications/{id}/resume/",
        "page",
        portal_notification_paused,
        customer_scoped=True,
        method="post",
        body={},
        state=portal_notification_state,
    ),
    Route("portal account api keys", "/account/api-keys/", "page", portal_customer_key, customer_scoped=True),
    Route(
        "write: portal account api key create",
        "/account/api-keys/",
        "page",
        portal_account_target,
        customer_scoped=True,
        method="post",
        body={"name": "isolation probe key", "scopes": ["shipments:read"], "customer_account": "{id}"},
        state=portal_keys_of_account_state,
    ),
    Route(
        "write: portal account api key revoke",
        "/account/api-keys/{id}/revoke/",
        "page",
        portal_customer_key,
        customer_scoped=True,
        method="post",
        body={},
        state=portal_key_state,
    ),
    _write(
        "write: api key bound to a customer account",
        "/settings/api-keys/",
        "page",
        portal_account_target,
        portal_keys_of_account_state,
        {"name": "isolation probe key", "scopes": ["shipments:read"], "customer_account": "{id}"},
    ),
]


# ---------- portal texts: the tenant admin's words for the customer portal (issue 6, portal/texts_views.py) ----------
# The rows live in public beside the brand, one per tenant; the state hook finds the owner's row by
# the schema it is read in. `/.well-known/baton-domain` is not listed: it is public on purpose (no
# session, the same answer for everyone on a host) and carries only that host's own tenant token;
# tests/console/test_domains.py checks each host answers its own.


def portal_texts_marked(tenant_world, customer_account=None) -> tuple[str, str]:
    """The tenant's portal texts with the marker as the welcome headline (shown on the settings
    page and the customer home only, never on error pages)."""
    from tenants.models import PortalTexts

    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    PortalTexts.objects.update_or_create(tenant=tenant_world.tenant, defaults={"welcome_headline": marker})
    return "", marker


def portal_texts_unwritten(tenant_world, customer_account=None) -> tuple[str, str]:
    """No texts yet; the write would make the marker the welcome headline."""
    return "", f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"


def portal_texts_state(object_id: str, marker: str) -> Any:
    from tenants.db import connection
    from tenants.models import PortalTexts

    return list(PortalTexts.objects.filter(tenant__schema_name=connection.schema_name).values_list("welcome_headline", "notice"))


TENANT_ROUTES += [
    Route("portal texts settings", "/settings/portal-texts/", "page", portal_texts_marked),
    Route(
        "write: portal texts save",
        "/settings/portal-texts/",
        "page",
        portal_texts_unwritten,
        method="post",
        body={"welcome_headline": "{marker}", "notice": "{marker}", "action": "save"},
        state=portal_texts_state,
    ),
]
