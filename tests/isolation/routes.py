"""Every tenant-host route, for the isolation suite. A new feature adds its routes here.

`private_object` makes something that belongs to one tenant (and, for customer-scoped routes,
one customer account) and returns its id and a marker text that must never show up in another
tenant's or another customer's response.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

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


def workflow_definition(tenant_world, customer_account=None) -> tuple[str, str]:
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
    Route("api definitions list", "/api/v1/definitions", "api", workflow_definition, api_scope="workflows:read"),
    Route("api definitions search", "/api/v1/definitions?search={id}", "api", workflow_definition, api_scope="workflows:read"),
    Route("api definition detail", "/api/v1/definitions/{id}", "api", workflow_definition, api_scope="workflows:read"),
    Route("api definition versions", "/api/v1/definitions/{id}/versions", "api", workflow_definition, api_scope="workflows:read"),
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


def _workflow_template_version():
    """A platform template (public, the same for every tenant) with one published version."""
    from workflows.services import template_create, template_version_publish

    actor = Actor.system("isolation")
    with schema_context("public"):
        template = template_create(
            key=f"probe-{uuid.uuid4().hex[:10]}", name="Isolation probe", category="other", description="", partner_id=None, actor=actor
        )
        return template_version_publish(
            template=template,
            version="1.0.0",
            definition=_WORKFLOW_SPEC,
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


def workflow_run(tenant_world, customer_account=None) -> tuple[str, str]:
    """A run of a published definition whose input carries the marker; the id is the run's id."""
    from workflows.models import DefinitionVersion
    from workflows.runs import run_start
    from workflows.services import definition_version_publish, definition_version_submit

    version = _workflow_template_version()
    marker = f"secret-{tenant_world.tenant.slug}-{uuid.uuid4().hex[:10]}"
    admin = tenant_world.users["tenant_admin"]
    with schema_context(tenant_world.schema):
        definition = definition_clone(
            template_version=version,
            key=f"run-{uuid.uuid4().hex[:12]}",
            name="Run probe",
            parameters={},
            connection_bindings={},
            actor=admin,
        )
        draft = DefinitionVersion.objects.get(definition=definition, number=1)
        definition_version_submit(version=draft, actor=admin)
        definition_version_publish(version=draft, actor=admin)
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
# Only GET routes fit this registry (the suite GETs every path); the POST routes (run pause /
# resume / cancel, incident retry / restart, bulk retry, approval decision, events) are tried
# with another tenant's host, ids and keys in tests/workflows/test_operations_api.py.


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
