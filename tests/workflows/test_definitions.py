"""A tenant's definitions: cloned and pinned, versioned through approval (four eyes when asked), rolled
back, upgraded on purpose; every change audited in the tenant's schema."""

import copy

import pytest
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.services import user_create
from governance.models import AuditEvent
from governance.services import Actor
from tenants.services import BrandingInput, partner_create
from tests.workflows.conftest import LIBRARIAN, publish
from workflows.diff import SpecChange, spec_diff
from workflows.management.commands.seed_library import ORDER_RELEASE
from workflows.models import Definition, DefinitionVersion, VersionStatus
from workflows.selectors import (
    definition_diagram,
    definition_newer_upstream,
    definition_upstream_diff,
    definition_versions,
    definitions_list,
    workflow_policy,
)
from workflows.services import (
    ApprovalRefused,
    DefinitionInvalid,
    DefinitionProblem,
    WorkflowError,
    definition_clone,
    definition_draft_create,
    definition_rollback,
    definition_upgrade,
    definition_upgrade_preview,
    definition_version_approve,
    definition_version_publish,
    definition_version_reject,
    definition_version_submit,
    workflow_policy_update,
)

pytestmark = pytest.mark.django_db

P = DefinitionProblem
PARAMETERS = {"carrier_connection": "acme-tms"}


def _clone(world, template_version, *, actor=None, key="order-release", parameters=None, bindings=None) -> Definition:
    with schema_context(world.acme.schema):
        return definition_clone(
            template_version=template_version,
            key=key,
            name="Order release (Acme)",
            parameters=PARAMETERS if parameters is None else parameters,
            connection_bindings=bindings or {},
            actor=actor or world.acme.users["planner"],
        )


def _version(definition, number) -> DefinitionVersion:
    return DefinitionVersion.objects.get(definition=definition, number=number)


def _step(spec, step_id) -> dict:
    return next(step for step in spec["steps"] if step["id"] == step_id)


def _actions(schema) -> list[str]:
    with schema_context(schema):
        return list(AuditEvent.objects.filter(action__startswith="workflow").order_by("id").values_list("action", flat=True))


def _published(world, definition, admin=None) -> DefinitionVersion:
    """Submit and publish the newest version (single-approver policy)."""
    admin = admin or world.acme.users["tenant_admin"]
    version = definition_versions(definition=definition).first()
    definition_version_submit(version=version, actor=world.acme.users["planner"])
    return definition_version_publish(version=version, actor=admin)


# --- cloning ---------------------------------------------------------------------------


def test_clone_binds_parameters_with_defaults_renders_the_spec_and_pins_the_template_version(world, order_release):
    definition = _clone(world, order_release, bindings={"acme-tms": "conn-17"})
    with schema_context(world.acme.schema):
        definition.refresh_from_db()
        assert (definition.template_key, definition.template_version) == ("order-to-shipment-release", "1.0.0")
        assert definition.published_version is None and definition.created_by_email == "planner@acme.test"
        version = definition.versions.get()
        assert (version.number, version.status, version.based_on_template_version) == (1, VersionStatus.DRAFT, "1.0.0")
        assert version.parameters == {
            "carrier_connection": "acme-tms",
            "approval_over_value": 50000,
            "approver_role": "planner",
            "tender_timeout": "PT4H",
        }
        assert version.connection_bindings == {"acme-tms": "conn-17"}
        assert _step(version.spec, "tender")["connection"] == "acme-tms"
        assert _step(version.spec, "cancel-tender")["connection"] == "acme-tms"
        assert _step(version.spec, "approve")["assignee_roles"] == ["planner"]
        assert _step(version.spec, "large-order")["cases"][0]["when"] == "input.total > 50000"
        assert _step(version.spec, "wait-990")["timeout"] == "PT4H"
        assert version.comment == "Cloned from Order to shipment release 1.0.0"
        event = AuditEvent.objects.get(action="workflow_definition.cloned")
        assert event.actor_email == "planner@acme.test"
        assert event.data["template"] == "order-to-shipment-release" and event.data["version"] == "1.0.0"
    assert not AuditEvent.objects.filter(action="workflow_definition.cloned").exists()  # not in public's log
    with schema_context(world.globex.schema):
        assert not Definition.objects.exists()


@pytest.mark.parametrize(
    ("parameters", "problems"),
    [
        (
            {"approver_role": "ceo", "bogus": 1, "approval_over_value": "lots"},
            [
                P("/parameters/approval_over_value", "must be a number"),
                P("/parameters/approver_role", "must be one of: planner, tenant_admin, dispatcher"),
                P("/parameters/bogus", "is not a parameter of this template"),
                P("/parameters/carrier_connection", "is required"),
            ],
        ),
        (
            {"carrier_connection": "Acme TMS!"},
            [
                P(
                    "/parameters/carrier_connection",
                    "must be lowercase letters, digits, '-' or '_', starting with a letter or digit (at most 80)",
                )
            ],
        ),
        (
            {"carrier_connection": "acme-tms", "tender_timeout": "4 hours"},
            [P("/parameters/tender_timeout", "makes /steps/4/timeout invalid: it must be an ISO 8601 duration such as PT4H or P1DT12H")],
        ),
    ],
)
def test_clone_refuses_unknown_and_invalid_parameters_with_pointers(world, order_release, parameters, problems):
    with pytest.raises(DefinitionInvalid) as refused:
        _clone(world, order_release, parameters=parameters)
    assert refused.value.problems == problems
    with schema_context(world.acme.schema):
        assert not Definition.objects.exists()
        assert not AuditEvent.objects.filter(action="workflow_definition.cloned").exists()


def test_clone_refuses_bindings_for_connections_the_workflow_does_not_use(world, order_release):
    with pytest.raises(DefinitionInvalid) as refused:
        _clone(world, order_release, bindings={"acme-tms": "", "sap": "conn-1"})
    assert refused.value.problems == [
        P("/connection_bindings/acme-tms", "must name one of your connections (leave it out to call 'acme-tms' itself)"),
        P("/connection_bindings/sap", "is not a connection this workflow uses (it uses: acme-tms)"),
    ]


def test_clone_refuses_a_taken_key_a_bad_key_and_roles_that_do_not_author(world, order_release):
    _clone(world, order_release)
    for key, message in [
        ("order-release", "A workflow with the key 'order-release' already exists."),
        ("Order Release", "The key must be lowercase letters, digits, '-' and '_', starting with a letter or digit (at most 80)."),
    ]:
        with pytest.raises(WorkflowError) as refused:
            _clone(world, order_release, key=key)
        assert (refused.value.message, refused.value.field) == (message, "key")
    with pytest.raises(WorkflowError, match="Only tenant admins and planners can change workflow definitions."):
        _clone(world, order_release, key="other", actor=world.acme.users["dispatcher"])


def test_a_tenant_cannot_clone_another_partners_template(world):
    other = partner_create(name="Other MSP", slug="other-msp", branding=BrandingInput(product_name="Other"), actor=LIBRARIAN)
    foreign = publish(ORDER_RELEASE, key="other-msp-release", partner_id=other.pk)
    own = publish(ORDER_RELEASE, key="test-msp-release", partner_id=world.partner.pk)
    with pytest.raises(WorkflowError, match="There is no template 'other-msp-release' in your library."):
        _clone(world, foreign)
    assert _clone(world, own).template_key == "test-msp-release"


# --- the version lifecycle ---------------------------------------------------------------


def test_single_approver_a_planner_submits_and_an_admin_publishes_straight_from_submitted(world, order_release):
    definition = _clone(world, order_release)
    admin, planner = world.acme.users["tenant_admin"], world.acme.users["planner"]
    with schema_context(world.acme.schema):
        assert workflow_policy().require_second_approver is False
        version = _version(definition, 1)
        with pytest.raises(WorkflowError, match=r"Only a submitted or approved version can be published; v1 is draft\."):
            definition_version_publish(version=version, actor=admin)
        definition_version_submit(version=version, actor=planner)
        with pytest.raises(ApprovalRefused, match="Only a tenant admin can publish workflow versions."):
            definition_version_publish(version=version, actor=planner)
        with pytest.raises(ApprovalRefused, match="Only a tenant admin can approve workflow versions."):
            definition_version_approve(version=version, actor=planner)
        published = definition_version_publish(version=version, actor=admin)
        assert (published.status, published.submitted_by_email, published.approved_by_email, published.published_by_email) == (
            VersionStatus.PUBLISHED,
            "planner@acme.test",
            "tenant_admin@acme.test",
            "tenant_admin@acme.test",
        )
        definition.refresh_from_db()
        assert definition.published_version == published and published.published_at is not None
        event = AuditEvent.objects.get(action="workflow_version.published")
        assert event.data == {"definition": "order-release", "number": 1, "superseded": None, "approval": "implicit"}
    assert _actions(world.acme.schema) == ["workflow_definition.cloned", "workflow_version.submitted", "workflow_version.published"]


def test_four_eyes_the_author_cannot_approve_their_own_version(world, order_release):
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        with pytest.raises(ApprovalRefused, match="Only a tenant admin can change the workflow approval policy."):
            workflow_policy_update(require_second_approver=True, actor=world.acme.users["planner"])
        assert workflow_policy_update(require_second_approver=True, actor=admin).require_second_approver is True
        second_admin = user_create(email="second-admin@acme.test", role="tenant_admin", actor=admin)
    definition = _clone(world, order_release, actor=admin)
    with schema_context(world.acme.schema):
        version = _version(definition, 1)
        definition_version_submit(version=version, actor=admin)
        with pytest.raises(ApprovalRefused) as refused:
            definition_version_approve(version=version, actor=admin)
        assert refused.value.message == (
            "This workspace requires a second approver: you wrote or submitted v1, so someone else must approve it."
        )
        with pytest.raises(ApprovalRefused) as refused:
            definition_version_publish(version=version, actor=second_admin)
        assert refused.value.message == "This workspace requires a second approver: v1 must be approved before it is published."
        approved = definition_version_approve(version=version, actor=second_admin, comment="Checked the tender retry policy.")
        assert (approved.status, approved.approved_by_email, approved.review_comment) == (
            VersionStatus.APPROVED,
            "second-admin@acme.test",
            "Checked the tender retry policy.",
        )
        published = definition_version_publish(version=version, actor=admin)  # the author may publish what another approved
        assert published.status == VersionStatus.PUBLISHED and published.approved_by_email == "second-admin@acme.test"
        event = AuditEvent.objects.get(action="workflow_version.approved")
        assert event.actor_email == "second-admin@acme.test" and event.reason == "Checked the tender retry policy."
        assert event.data["four_eyes"] is True
        assert AuditEvent.objects.get(action="workflow_version.published").data["approval"] == "explicit"
        assert AuditEvent.objects.get(action="workflow_policy.updated").data == {"require_second_approver": {"from": False, "to": True}}


def test_four_eyes_whoever_submitted_cannot_approve_either(world, order_release):
    admin = world.acme.users["tenant_admin"]
    definition = _clone(world, order_release)  # written by the planner
    with schema_context(world.acme.schema):
        workflow_policy_update(require_second_approver=True, actor=admin)
        version = _version(definition, 1)
        definition_version_submit(version=version, actor=admin)
        with pytest.raises(ApprovalRefused, match="you wrote or submitted v1"):
            definition_version_approve(version=version, actor=admin)


def test_rejecting_needs_a_reason_and_ends_the_version(world, order_release):
    admin = world.acme.users["tenant_admin"]
    definition = _clone(world, order_release)
    with schema_context(world.acme.schema):
        version = _version(definition, 1)
        definition_version_submit(version=version, actor=world.acme.users["planner"])
        with pytest.raises(WorkflowError, match="Say why the version is rejected") as refused:
            definition_version_reject(version=version, actor=admin, comment="  ")
        assert refused.value.field == "comment"
        rejected = definition_version_reject(version=version, actor=admin, comment="The tender timeout is too long for LTL.")
        assert (rejected.status, rejected.rejected_by_email, rejected.review_comment) == (
            VersionStatus.REJECTED,
            "tenant_admin@acme.test",
            "The tender timeout is too long for LTL.",
        )
        with pytest.raises(WorkflowError, match=r"Only a draft version can be submitted; v1 is rejected\."):
            definition_version_submit(version=version, actor=admin)
        assert AuditEvent.objects.get(action="workflow_version.rejected").reason == "The tender timeout is too long for LTL."


def test_publishing_supersedes_the_previous_version(world, order_release):
    definition = _clone(world, order_release)
    with schema_context(world.acme.schema):
        first = _published(world, definition)
        spec = copy.deepcopy(first.spec)
        _step(spec, "tender")["name"] = "Tender to Acme TMS"
        draft = definition_draft_create(
            definition=definition, spec=spec, parameters=first.parameters, comment="Clearer name", actor=world.acme.users["planner"]
        )
        assert (draft.number, draft.status, draft.based_on_template_version) == (2, VersionStatus.DRAFT, "1.0.0")
        second = _published(world, definition)
        assert second.pk == draft.pk
        first.refresh_from_db()
        definition.refresh_from_db()
        assert (first.status, second.status, definition.published_version_id) == (
            VersionStatus.SUPERSEDED,
            VersionStatus.PUBLISHED,
            second.pk,
        )
        assert AuditEvent.objects.filter(action="workflow_version.published").latest("id").data["superseded"] == 1
        assert [(v.number, v.status) for v in definition_versions(definition=definition)] == [(2, "published"), (1, "superseded")]
        listed = definitions_list(query="acme").get()
        assert (listed.latest_number, listed.published_version.number) == (2, 2)


def test_a_draft_from_an_edited_spec_is_validated_with_its_parameters(world, order_release):
    definition = _clone(world, order_release)
    with schema_context(world.acme.schema):
        spec = copy.deepcopy(_version(definition, 1).spec)
        _step(spec, "tender")["next"] = "wait-for-990"
        _step(spec, "wait-990")["timeout"] = "PT0S"
        with pytest.raises(DefinitionInvalid) as refused:
            definition_draft_create(
                definition=definition,
                spec=spec,
                parameters={"carrier_connection": "acme-tms", "approver_role": "ceo"},
                comment="",
                actor=world.acme.users["planner"],
            )
        assert refused.value.problems == [
            P("/steps/3/next", "'wait-for-990' is not the id of a step in this definition"),
            P("/steps/4", "step 'wait-990' cannot be reached from the start step 'check-order'"),
            P("/steps/4/timeout", "must be longer than zero"),
            P("/steps/5", "step 'release' cannot be reached from the start step 'check-order'"),
            P("/steps/6", "step 'tell-customer-service' cannot be reached from the start step 'check-order'"),
            P("/steps/7", "step 'released' cannot be reached from the start step 'check-order'"),
            P("/parameters/approver_role", "must be one of: planner, tenant_admin, dispatcher"),
        ]
        assert definition_versions(definition=definition).count() == 1


def test_support_sessions_act_as_tenant_admins_and_api_keys_author_but_do_not_publish(world, order_release):
    api_key = Actor(email="api-key:bk_test", kind="api_key")
    definition = _clone(world, order_release, actor=api_key)
    with schema_context(world.acme.schema):
        version = definition_version_submit(version=_version(definition, 1), actor=api_key)
        with pytest.raises(ApprovalRefused, match="Only a tenant admin can publish workflow versions."):
            definition_version_publish(version=version, actor=api_key)
        support = User.objects.create(email="support@msp.test", role="msp_support", support_grant_id=1)
        assert definition_version_publish(version=version, actor=support).published_by_email == "support@msp.test"
        assert AuditEvent.objects.get(action="workflow_version.published").actor_kind == "support"


# --- rollback ----------------------------------------------------------------------------


def test_rollback_publishes_a_copy_of_an_earlier_version_at_once(world, order_release):
    admin = world.acme.users["tenant_admin"]
    definition = _clone(world, order_release)
    with schema_context(world.acme.schema):
        workflow_policy_update(require_second_approver=True, actor=admin)  # a rollback skips the approval step anyway
        first = _version(definition, 1)
        definition_version_submit(version=first, actor=world.acme.users["planner"])
        definition_version_approve(version=first, actor=admin)
        definition_version_publish(version=first, actor=admin)
        spec = copy.deepcopy(first.spec)
        _step(spec, "wait-990")["timeout"] = "PT1H"
        second = definition_draft_create(
            definition=definition, spec=spec, parameters=first.parameters, comment="Shorter wait", actor=world.acme.users["planner"]
        )
        definition_version_submit(version=second, actor=world.acme.users["planner"])
        definition_version_approve(version=second, actor=admin)
        definition_version_publish(version=second, actor=admin)

        with pytest.raises(ApprovalRefused, match="Only a tenant admin can roll a workflow back."):
            definition_rollback(definition=definition, to_version=1, actor=world.acme.users["planner"])
        restored = definition_rollback(definition=definition, to_version=first, actor=admin)
        assert (restored.number, restored.status, restored.comment) == (3, VersionStatus.PUBLISHED, "Rollback to v1")
        assert restored.spec == first.spec and restored.parameters == first.parameters
        assert _step(restored.spec, "wait-990")["timeout"] == "PT4H"
        definition.refresh_from_db()
        assert definition.published_version_id == restored.pk
        assert [(v.number, v.status) for v in definition_versions(definition=definition)] == [
            (3, "published"),
            (2, "superseded"),
            (1, "superseded"),
        ]
        event = AuditEvent.objects.get(action="workflow_definition.rolled_back")
        assert (event.reason, event.actor_email) == ("rollback to v1", "tenant_admin@acme.test")
        assert event.data == {"definition": "order-release", "to": 1, "new_number": 3, "superseded": 2}

        with pytest.raises(WorkflowError, match=r"v3 is already the published version\."):
            definition_rollback(definition=definition, to_version=3, actor=admin)
        draft = definition_draft_create(definition=definition, spec=spec, parameters=first.parameters, comment="", actor=admin)
        with pytest.raises(WorkflowError, match=r"v4 was never published: only a version that ran in production can be restored\."):
            definition_rollback(definition=definition, to_version=draft, actor=admin)
        with pytest.raises(WorkflowError, match="Order release \\(Acme\\) has no version 9."):
            definition_rollback(definition=definition, to_version=9, actor=admin)


# --- upstream: diff, newer versions, upgrade -------------------------------------------------


def _release_1_1_0(order_release):
    definition = copy.deepcopy(ORDER_RELEASE["definition"])
    _step(definition, "approve")["assignee_roles"] = ["planner"]
    _step(definition, "tell-customer-service")["to_roles"] = ["{{params.notify_role}}"]
    schema = copy.deepcopy(ORDER_RELEASE["parameters_schema"])
    del schema["properties"]["approver_role"]
    schema["properties"]["approval_over_value"] = {"type": "integer", "minimum": 0, "maximum": 100000, "default": 25000}
    schema["properties"]["notify_role"] = {"enum": ["customer_service", "planner"], "default": "customer_service"}
    return publish(ORDER_RELEASE, version="1.1.0", definition=definition, parameters_schema=schema)


def test_upgrade_preview_keeps_values_that_still_fit_and_says_why_others_go(world, order_release):
    parameters = {
        "carrier_connection": "acme-tms",
        "approval_over_value": 250000,
        "approver_role": "tenant_admin",
        "tender_timeout": "PT2H",
    }
    definition = _clone(world, order_release, parameters=parameters)
    newer = _release_1_1_0(order_release)
    with schema_context(world.acme.schema):
        assert definition_newer_upstream(definition=definition) == newer
        preview = definition_upgrade_preview(definition=definition, template_version=newer)
    assert preview.kept_parameters == {"carrier_connection": "acme-tms", "tender_timeout": "PT2H"}
    assert preview.dropped_parameters == {
        "approval_over_value": "the value 250000 no longer fits: it must be at most 100000",
        "approver_role": "Order to shipment release 1.1.0 no longer has this parameter",
    }
    assert preview.new_defaults == {"approval_over_value": 25000, "notify_role": "customer_service"}
    assert preview.problems == []
    assert preview.spec_diff == [
        SpecChange("/steps/large-order/cases/0/when", "changed", "input.total > 250000", "input.total > 25000"),
        SpecChange("/steps/approve/assignee_roles/0", "changed", "tenant_admin", "planner"),
    ]


def test_upgrade_makes_a_draft_on_the_newer_version_and_the_pin_moves_when_it_is_published(world, order_release):
    definition = _clone(world, order_release, parameters={**PARAMETERS, "tender_timeout": "PT2H"}, bindings={"acme-tms": "conn-17"})
    with schema_context(world.acme.schema):
        _published(world, definition)
    newer = _release_1_1_0(order_release)
    with schema_context(world.acme.schema):
        draft = definition_upgrade(definition=definition, template_version=newer, actor=world.acme.users["planner"])
        assert (draft.number, draft.status, draft.based_on_template_version) == (2, VersionStatus.DRAFT, "1.1.0")
        assert draft.parameters == {
            "carrier_connection": "acme-tms",
            "tender_timeout": "PT2H",
            "approval_over_value": 50000,  # the old default still fits, so it is kept
            "notify_role": "customer_service",
        }
        assert draft.connection_bindings == {"acme-tms": "conn-17"}
        assert draft.comment == "Upgrade to Order to shipment release 1.1.0"
        definition.refresh_from_db()
        assert definition.template_version == "1.0.0"  # still pinned: the published version runs on 1.0.0
        _published(world, definition)
        definition.refresh_from_db()
        assert definition.template_version == "1.1.0"
        assert definition_newer_upstream(definition=definition) is None
        assert definition_upstream_diff(definition=definition) == []
        event = AuditEvent.objects.get(action="workflow_definition.upgrade_drafted")
        assert event.data["from"] == "1.0.0" and event.data["to"] == "1.1.0"
        assert event.data["dropped"] == {"approver_role": "Order to shipment release 1.1.0 no longer has this parameter"}
        with pytest.raises(WorkflowError, match="Order release \\(Acme\\) is on 1.1.0 already: pick a newer version to upgrade to."):
            definition_upgrade(definition=definition, template_version=order_release, actor=world.acme.users["planner"])


def test_an_upgrade_that_needs_a_new_value_is_previewed_with_the_problem_and_refused(world, order_release):
    definition = _clone(world, order_release)
    schema = copy.deepcopy(ORDER_RELEASE["parameters_schema"])
    schema["properties"]["dock"] = {"type": "string"}
    schema["required"] = ["carrier_connection", "dock"]
    needs_dock = publish(ORDER_RELEASE, version="2.0.0", parameters_schema=schema)
    with schema_context(world.acme.schema):
        preview = definition_upgrade_preview(definition=definition, template_version=needs_dock)
        assert preview.problems == [P("/parameters/dock", "is required")]
        with pytest.raises(DefinitionInvalid) as refused:
            definition_upgrade(definition=definition, template_version=needs_dock, actor=world.acme.users["planner"])
        assert refused.value.problems == [P("/parameters/dock", "is required")]
        assert definition_versions(definition=definition).count() == 1


def test_the_upstream_diff_shows_the_tenants_own_edits(world, order_release):
    definition = _clone(world, order_release)
    with schema_context(world.acme.schema):
        assert definition_upstream_diff(definition=definition) == []
        spec = copy.deepcopy(_version(definition, 1).spec)
        _step(spec, "tender")["name"] = "Tender to Acme TMS"
        spec["steps"].insert(0, spec["steps"].pop())  # moving a step is no change
        definition_draft_create(definition=definition, spec=spec, parameters=PARAMETERS, comment="", actor=world.acme.users["planner"])
        assert definition_upstream_diff(definition=definition) == [
            SpecChange("/steps/tender/name", "changed", "Tender to carrier", "Tender to Acme TMS")
        ]


# --- diff and diagram ------------------------------------------------------------------------


def test_spec_diff_compares_steps_by_id_not_position():
    old = {
        "start": "a",
        "steps": [
            {"id": "a", "kind": "transform", "mapping": {"x": "1"}, "next": "b"},
            {"id": "b", "kind": "end", "outcome": "succeeded"},
            {"id": "c", "kind": "end", "outcome": "failed"},
        ],
    }
    new = {
        "start": "a",
        "triggers": [{"kind": "manual"}],
        "steps": [
            {"id": "b", "kind": "end", "outcome": "cancelled"},
            {"id": "d", "kind": "end", "outcome": "failed"},
            {"id": "a", "kind": "transform", "mapping": {"x": "1", "y": "2"}, "next": "b"},
        ],
    }
    assert spec_diff(old, old | {"steps": list(reversed(old["steps"]))}) == []
    assert spec_diff(old, new) == [
        SpecChange("/triggers", "added", None, [{"kind": "manual"}]),
        SpecChange("/steps/b/outcome", "changed", "succeeded", "cancelled"),
        SpecChange("/steps/d", "added", None, {"id": "d", "kind": "end", "outcome": "failed"}),
        SpecChange("/steps/a/mapping/y", "added", None, "2"),
        SpecChange("/steps/c", "removed", {"id": "c", "kind": "end", "outcome": "failed"}, None),
    ]


def test_the_diagram_has_a_node_per_step_and_labelled_edges(world, order_release):
    definition = _clone(world, order_release)
    with schema_context(world.acme.schema):
        diagram = definition_diagram(spec=_version(definition, 1).spec)
    nodes = {node["id"]: node for node in diagram["nodes"]}
    assert len(nodes) == 11
    assert nodes["check-order"] | {} == {
        "id": "check-order",
        "kind": "decision",
        "label": "Valid order?",
        "start": True,
        "terminal": False,
        "compensates": "",
        "rank": 0,
    }
    assert nodes["released"]["terminal"] and nodes["cancel-tender"]["compensates"] == "tender"
    assert nodes["tender"]["rank"] == 2 and nodes["released"]["rank"] == 6
    edges = {(e["source"], e["target"]): (e["label"], e["kind"]) for e in diagram["edges"]}
    assert edges[("check-order", "large-order")] == ("valid", "case")
    assert edges[("check-order", "route-to-queue")] == ("otherwise", "default")
    assert edges[("wait-990", "route-to-queue")] == ("timed out", "on_timeout")
    assert edges[("approve", "route-to-queue")] == ("rejected", "on_reject")
    assert edges[("tender", "wait-990")] == ("", "next")
    assert edges[("tender", "cancel-tender")] == ("compensate", "compensation")
    assert diagram["triggers"] == [
        {"kind": "event", "label": "on order.received if event.total > 0"},
        {"kind": "manual", "label": "started by hand"},
    ]
    assert definition_diagram(spec={"steps": "nonsense"}) == {"nodes": [], "edges": [], "triggers": []}


def test_keys_that_collide_with_the_workflow_pages_are_refused(world, milestones):
    from django_tenants.utils import schema_context

    from workflows.services import WorkflowError, definition_clone

    version = milestones
    with schema_context(world.acme.schema), pytest.raises(WorkflowError, match="reserved"):
        definition_clone(
            template_version=version,
            key="library",
            name="Library",
            parameters={},
            connection_bindings={},
            actor=world.acme.users["tenant_admin"],
        )
