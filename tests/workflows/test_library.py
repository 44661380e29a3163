"""The template library: semantic versions that never change, validated on publish, seen by the right tenants."""

import copy
import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tenants.db import connection
from tenants.services import BrandingInput, partner_create
from tests.workflows.conftest import LIBRARIAN, publish
from workflows.management.commands.seed_library import CUSTOMER_MILESTONES, LIBRARY, ORDER_RELEASE
from workflows.models import TemplateVersion, WorkflowTemplate
from workflows.selectors import library_search, template_latest_version, template_versions
from workflows.services import DefinitionInvalid, DefinitionProblem, WorkflowError, template_create, template_version_publish
from workflows.validation import definition_validate

pytestmark = pytest.mark.django_db

P = DefinitionProblem


def _republish(template_version: TemplateVersion, version: str, **changes) -> TemplateVersion:
    return template_version_publish(
        template=template_version.template,
        version=version,
        definition=changes.get("definition", template_version.definition),
        parameters_schema=changes.get("parameters_schema", template_version.parameters_schema),
        documentation="",
        changelog=f"Release {version}",
        actor=LIBRARIAN,
    )


def test_publishing_records_the_version_its_parts_and_an_audit_row_in_public(world, order_release):
    assert (order_release.version, order_release.major, order_release.minor, order_release.patch) == ("1.0.0", 1, 0, 0)
    assert order_release.published_by_email == "system:tests-library"
    assert order_release.parameters_schema["required"] == ["carrier_connection"]
    event = AuditEvent.objects.filter(action="workflow_template.version_published").latest("id")
    assert event.data == {"template": "order-to-shipment-release", "version": "1.0.0", "previous": None}
    assert AuditEvent.objects.filter(action="workflow_template.created", target_id=str(order_release.template_id)).exists()


def test_versions_are_ordered_by_semantic_version_not_text(order_release):
    for version in ("1.9.0", "1.10.0", "2.0.0"):
        _republish(order_release, version)
    template = order_release.template
    assert [v.version for v in template_versions(template=template)] == ["2.0.0", "1.10.0", "1.9.0", "1.0.0"]
    assert template_latest_version(template=template).version == "2.0.0"
    assert library_search(query="order-to-shipment").get().latest_version == "2.0.0"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.0.0", "Order to shipment release is already at 1.2.0: a new version must be greater than 1.2.0."),
        ("1.2.0", "Order to shipment release is already at 1.2.0: a new version must be greater than 1.2.0."),
        ("1.1.9", "Order to shipment release is already at 1.2.0: a new version must be greater than 1.2.0."),
        ("1.2", "'1.2' is not a semantic version: use MAJOR.MINOR.PATCH, such as 1.2.0."),
        ("v1.3.0", "'v1.3.0' is not a semantic version: use MAJOR.MINOR.PATCH, such as 1.2.0."),
        ("1.3.0-beta.1", "Pre-release and build versions are not published to the library: use MAJOR.MINOR.PATCH."),
    ],
)
def test_a_version_must_be_a_plain_semantic_version_greater_than_the_latest(order_release, version, message):
    _republish(order_release, "1.2.0")
    with pytest.raises(WorkflowError) as refused:
        _republish(order_release, version)
    assert refused.value.message == message and refused.value.field == "version"
    assert template_versions(template=order_release.template).count() == 2


def test_published_versions_are_immutable_in_the_database(order_release):
    with pytest.raises(DatabaseError, match="immutable: UPDATE refused"), transaction.atomic():
        TemplateVersion.objects.filter(pk=order_release.pk).update(changelog="rewritten history")
    with pytest.raises(DatabaseError, match="immutable: DELETE refused"), transaction.atomic():
        TemplateVersion.objects.filter(pk=order_release.pk).delete()
    order_release.refresh_from_db()
    assert order_release.changelog == "First version."


def test_an_invalid_template_is_refused_with_every_problem(order_release):
    definition = copy.deepcopy(ORDER_RELEASE["definition"])
    definition["steps"][3]["connection"] = "{{params.carrier}}"  # not declared
    definition["steps"][0]["default"] = "nowhere"
    schema = copy.deepcopy(ORDER_RELEASE["parameters_schema"])
    schema["properties"]["tender_timeout"]["default"] = "four hours"  # a string, so the schema accepts it …
    with pytest.raises(DefinitionInvalid) as refused:
        _republish(order_release, "1.1.0", definition=definition, parameters_schema=schema)
    assert refused.value.problems == [P("/steps/0/default", "'nowhere' is not the id of a step in this definition")]
    definition["steps"][0]["default"] = "route-to-queue"
    with pytest.raises(DefinitionInvalid) as refused:
        _republish(order_release, "1.1.0", definition=definition, parameters_schema=schema)
    assert refused.value.problems == [
        P("/steps/3/connection", "uses the parameter 'carrier', which the parameters schema does not declare"),
    ]
    definition["steps"][3]["connection"] = "{{params.carrier_connection}}"
    with pytest.raises(DefinitionInvalid) as refused:  # … but rendered into the spec it is not a duration
        _republish(order_release, "1.1.0", definition=definition, parameters_schema=schema)
    assert refused.value.problems == [
        P(
            "/parameters_schema/properties/tender_timeout/default",
            "makes /steps/4/timeout invalid: it must be an ISO 8601 duration such as PT4H or P1DT12H",
        )
    ]


def test_the_parameters_schema_must_be_a_valid_json_schema(order_release):
    with pytest.raises(DefinitionInvalid) as refused:
        _republish(order_release, "1.1.0", parameters_schema={"type": "object", "properties": {"carrier_connection": {"type": "text"}}})
    assert refused.value.problems == [
        P("/parameters_schema/properties/carrier_connection/type", "'text' is not valid under any of the given schemas")
    ]


def test_library_changes_happen_on_the_public_schema_by_msp_staff(world):
    with schema_context(world.acme.schema), pytest.raises(WorkflowError, match="managed on the console"):
        template_create(key="x-y", name="X", category="other", description="", partner_id=None, actor=LIBRARIAN)
    connection.set_schema_to_public()
    with pytest.raises(WorkflowError, match="Only MSP admins and operators can manage the template library."):
        template_create(key="x-y", name="X", category="other", description="", partner_id=None, actor=world.acme.users["tenant_admin"])
    template = template_create(key="x-y", name="X", category="other", description="", partner_id=None, actor=world.msp["msp_admin"])
    assert template.partner_id is None
    with pytest.raises(WorkflowError, match="A template with the key 'x-y' already exists.") as refused:
        template_create(key="x-y", name="X", category="other", description="", partner_id=None, actor=LIBRARIAN)
    assert refused.value.field == "key"
    with pytest.raises(WorkflowError, match="There is no partner with id 999999."):
        template_create(key="x-z", name="X", category="other", description="", partner_id=999999, actor=LIBRARIAN)
    with pytest.raises(WorkflowError, match="Unknown category 'misc'"):
        template_create(key="x-z", name="X", category="misc", description="", partner_id=None, actor=LIBRARIAN)


def test_the_library_shows_platform_templates_and_the_partners_own_but_never_another_partners(world, order_release, milestones):
    other = partner_create(name="Other MSP", slug="other-msp", branding=BrandingInput(product_name="Other"), actor=LIBRARIAN)
    publish(ORDER_RELEASE, key="other-msp-release", partner_id=other.pk)
    publish(CUSTOMER_MILESTONES, key="test-msp-milestones", partner_id=world.partner.pk)
    template_create(key="unpublished", name="Unpublished", category="orders", description="", partner_id=None, actor=LIBRARIAN)

    assert [t.key for t in library_search()] == ["customer-milestone-notifications", "order-to-shipment-release"]
    ours = library_search(partner_id=world.partner.pk)
    assert [t.key for t in ours] == ["customer-milestone-notifications", "test-msp-milestones", "order-to-shipment-release"]
    assert [t.key for t in library_search(partner_id=other.pk)] == [
        "customer-milestone-notifications",
        "order-to-shipment-release",
        "other-msp-release",
    ]
    assert [t.key for t in library_search(partner_id=world.partner.pk, category="orders")] == ["order-to-shipment-release"]
    assert [t.key for t in library_search(partner_id=world.partner.pk, query="MILESTONE")] == [
        "customer-milestone-notifications",
        "test-msp-milestones",
    ]
    assert [t.key for t in library_search(query="tender the load")] == ["order-to-shipment-release"]  # the description


def test_tenants_read_the_one_library_in_public(world, order_release):
    """A tenant schema has no library tables of its own that could shadow public's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'workflows_workflowtemplate' ORDER BY 1",
        )
        assert [row[0] for row in cursor.fetchall()] == ["public"]
    with schema_context(world.acme.schema):
        assert [t.key for t in library_search(partner_id=world.partner.pk)] == ["order-to-shipment-release"]


def test_seed_library_publishes_every_library_entry_valid_and_once(world):
    first, second = io.StringIO(), io.StringIO()
    call_command("seed_library", stdout=first)
    call_command("seed_library", stdout=second)
    total = len(LIBRARY)
    for number, entry in enumerate(LIBRARY, 1):
        assert f"[{number}/{total}] {entry['key']} {entry['version']}: published" in first.getvalue()
        assert f"[{number}/{total}] {entry['key']} {entry['version']}: already published" in second.getvalue()
    templates = {t.key: t for t in library_search()}
    assert set(templates) == {entry["key"] for entry in LIBRARY}
    assert {"customer-milestone-notifications", "order-to-shipment-release"} <= set(templates)
    assert templates["customer-milestone-notifications"].category == "notifications"
    assert templates["order-to-shipment-release"].category == "orders"
    assert TemplateVersion.objects.filter(template__key__in=list(templates)).count() == total
    for entry in LIBRARY:
        version = TemplateVersion.objects.get(template__key=entry["key"], version=entry["version"])
        assert version.documentation and version.parameters_schema["properties"]
        assert definition_validate(version.definition, placeholders=True) == []
    assert WorkflowTemplate.objects.filter(partner_id__isnull=True).count() == len(templates)


def test_seed_library_leaves_a_template_that_already_has_a_later_version_as_it_is(world, monkeypatch):
    """A library where 2.0.0 came first (published by hand, or by an older seed's order) keeps it:
    1.0.0 is skipped with a word, not refused with an error."""
    from workflows.management.commands import seed_library

    key = "seed-order-test"
    first = {**CUSTOMER_MILESTONES, "key": key, "name": "Seed order test", "version": "1.0.0"}
    later = {**first, "version": "2.0.0", "changelog": "Second."}
    monkeypatch.setattr(seed_library, "LIBRARY", [later])
    call_command("seed_library", stdout=io.StringIO())
    monkeypatch.setattr(seed_library, "LIBRARY", [first, later])
    out = io.StringIO()
    call_command("seed_library", stdout=out)
    assert f"[1/2] {key} 1.0.0: skipped, the library is at 2.0.0" in out.getvalue()
    assert f"[2/2] {key} 2.0.0: already published" in out.getvalue()
    assert list(TemplateVersion.objects.filter(template__key=key).values_list("version", flat=True)) == ["2.0.0"]
