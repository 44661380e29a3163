"""The tenant's workflow pages: library, clone wizard, definitions with versions, diff and approval."""

from __future__ import annotations

import re
import uuid

import pytest
from django_tenants.utils import schema_context

from governance.services import Actor
from tenants.db import connection
from tenants.services import BrandingInput, partner_create
from tests.conftest import signed_in_client
from workflows.models import Definition, DefinitionVersion, WorkflowPolicy
from workflows.services import definition_clone, template_create, template_version_publish

pytestmark = pytest.mark.django_db
LIBRARY_ACTOR = Actor.system("tests")

SPEC = {
    "start": "check",
    "triggers": [{"kind": "manual"}],
    "steps": [
        {
            "id": "check",
            "kind": "decision",
            "name": "Big order?",
            "cases": [{"when": "input.total > {{params.threshold}}", "next": "tell", "label": "big"}],
            "default": "done",
        },
        {
            "id": "tell",
            "kind": "notify",
            "name": "Tell the planners",
            "channel": "{{params.channel}}",
            "to_roles": ["planner"],
            "template": "{{params.message}}",
            "next": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}
SCHEMA = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "threshold": {"title": "Threshold", "type": "number", "minimum": 0, "default": 1000, "description": "Orders above it are big."},
        "channel": {"enum": ["email", "webhook"], "default": "email"},
        "message": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,79}$", "description": "The message template to send."},
        "notify": {"type": "boolean", "default": True},
    },
}
DOCUMENTATION = "# How it works\nChecks **big** orders.\n- one `step`\n- <script>alert('x')</script>\n"


def _template(*, partner_id=None, version="1.0.0", key=None, name="Big order alert", spec=None, schema=None, changelog="First version."):
    key = key or f"big-order-{uuid.uuid4().hex[:8]}"
    connection.set_schema_to_public()
    template = template_create(
        key=key, name=name, category="orders", description="Warn the planners about big orders.", partner_id=partner_id, actor=LIBRARY_ACTOR
    )
    published = template_version_publish(
        template=template,
        version=version,
        definition=spec or SPEC,
        parameters_schema=schema or SCHEMA,
        documentation=DOCUMENTATION,
        changelog=changelog,
        actor=LIBRARY_ACTOR,
    )
    return template, published


def _publish(template, version, *, spec=None, schema=None, changelog="Changed."):
    connection.set_schema_to_public()
    return template_version_publish(
        template=template,
        version=version,
        definition=spec or SPEC,
        parameters_schema=schema or SCHEMA,
        documentation=DOCUMENTATION,
        changelog=changelog,
        actor=LIBRARY_ACTOR,
    )


def _definition(world, template_version, *, key=None, name="Big orders", author="planner"):
    with schema_context(world.acme.schema):
        definition = definition_clone(
            template_version=template_version,
            key=key or f"big-{uuid.uuid4().hex[:8]}",
            name=name,
            parameters={"message": "big-order", "threshold": 2500},
            connection_bindings={},
            actor=world.acme.users[author],
        )
    connection.set_schema_to_public()
    return definition


def _client(world, role="tenant_admin", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _in_acme(world, query):
    with schema_context(world.acme.schema):
        return query()


def _version(world, definition, number):
    return _in_acme(world, lambda: DefinitionVersion.objects.get(definition__key=definition.key, number=number))


# ---------- library ----------


def test_the_library_lists_platform_templates_with_category_version_and_owner(world):
    template, _v = _template()
    body = _client(world, "planner").get("/workflows/library/").content.decode()
    assert template.name in body and "Orders and release" in body and "v1.0.0" in body and "Platform" in body
    assert f'href="/workflows/library/{template.key}/"' in body


def test_library_search_and_category_narrow_and_say_so_when_nothing_matches(world):
    template, _v = _template()
    client = _client(world, "dispatcher")
    assert template.name in client.get("/workflows/library/?q=big+order").content.decode()
    assert template.name not in client.get("/workflows/library/?category=claims").content.decode()
    body = client.get("/workflows/library/?q=no-such-thing-at-all").content.decode()
    assert "No templates match" in body


def test_another_partners_template_is_neither_listed_nor_reachable(world):
    connection.set_schema_to_public()
    other = partner_create(
        name="Other MSP", slug=f"other-{uuid.uuid4().hex[:6]}", actor=LIBRARY_ACTOR, branding=BrandingInput(product_name="O")
    )
    theirs, _v = _template(partner_id=other.pk, name="Other partner's secret template")
    ours, _v = _template(partner_id=world.partner.pk, name="Our provider's template")
    client = _client(world, "planner")
    body = client.get("/workflows/library/").content.decode()
    assert "Other partner&#x27;s secret template" not in body and "Our provider&#x27;s template" in body
    assert f"{world.partner.name} (your provider)" in body
    assert client.get(f"/workflows/library/{theirs.key}/").status_code == 404
    assert client.get(f"/workflows/library/{theirs.key}/clone/").status_code == 404


def test_template_page_shows_documentation_safely_parameters_diagram_versions_and_clone(world):
    template, _v = _template()
    _publish(template, "1.1.0", changelog="Adds a <b>webhook</b> option.")
    body = _client(world, "planner").get(f"/workflows/library/{template.key}/").content.decode()
    assert "<h3>How it works</h3>" in body and "<strong>big</strong>" in body and "<code>step</code>" in body
    assert "<script>alert" not in body and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    assert "<code>threshold</code>" in body and "Orders above it are big." in body and '<code class="code-value nowrap">1000</code>' in body
    assert re.search(r"<code>message</code>\s*<span class=\"badge badge--warn\">required</span>", body)
    assert "<svg" in body and "Big order?" in body and "Tell the planners" in body
    assert "v1.1.0" in body and "v1.0.0" in body and "Adds a &lt;b&gt;webhook&lt;/b&gt; option." in body
    assert f'href="/workflows/library/{template.key}/clone/"' in body
    older = _client(world, "planner").get(f"/workflows/library/{template.key}/?version=1.0.0").content.decode()
    assert "older version" in older


def test_roles_that_cannot_author_see_the_template_but_no_clone_button_and_no_wizard(world):
    template, _v = _template()
    client = _client(world, "dispatcher")
    body = client.get(f"/workflows/library/{template.key}/").content.decode()
    assert template.name in body and f"/workflows/library/{template.key}/clone/" not in body
    assert client.get(f"/workflows/library/{template.key}/clone/").status_code == 403


def test_customer_users_cannot_open_workflow_pages(world):
    template, _v = _template()
    client = _client(world, "customer")
    for path in ("/workflows/", "/workflows/library/", f"/workflows/library/{template.key}/", f"/workflows/library/{template.key}/clone/"):
        assert client.get(path).status_code == 403, path


# ---------- the clone wizard ----------


def test_the_wizard_clones_a_template_with_bound_parameters(world):
    template, version = _template()
    client = _client(world, "planner")
    base = f"/workflows/library/{template.key}/clone/"
    first = client.get(base).content.decode()
    assert "Step 1 of 3" in first and f'value="{template.name}"' in first
    response = client.post(base, {"step": "1", "name": "Big orders (Chicago)", "key": "big-orders-chi"})
    assert response.status_code == 302 and response["Location"] == base + "?step=2"
    second = client.get(base + "?step=2").content.decode()
    assert "Step 2 of 3" in second and 'name="param-threshold"' in second and 'value="1000"' in second
    assert 'name="param-channel"' in second and "Orders above it are big." in second
    response = client.post(base, {"step": "2", "param-threshold": "2500", "param-channel": '"webhook"', "param-message": "big-order"})
    assert response.status_code == 302 and response["Location"] == base + "?step=3"
    review = client.get(base + "?step=3").content.decode()
    assert "Step 3 of 3" in review and "big-orders-chi" in review and "<svg" in review and "2500" in review
    response = client.post(base, {"step": "3"})
    assert response.status_code == 302 and response["Location"] == "/workflows/big-orders-chi/"
    definition = _in_acme(world, lambda: Definition.objects.get(key="big-orders-chi"))
    assert definition.template_key == template.key and definition.template_version == version.version
    first_version = _version(world, definition, 1)
    assert first_version.status == "draft"
    assert first_version.parameters == {"threshold": 2500, "channel": "webhook", "message": "big-order", "notify": False}
    assert first_version.spec["steps"][1]["channel"] == "webhook"
    page = client.get("/workflows/big-orders-chi/").content.decode()
    assert "Big orders (Chicago) created as draft v1" in page


def test_an_invalid_parameter_shows_the_templates_reason_inline(world):
    template, _v = _template()
    client = _client(world, "planner")
    base = f"/workflows/library/{template.key}/clone/"
    client.post(base, {"step": "1", "name": "Big", "key": f"big-{uuid.uuid4().hex[:6]}"})
    response = client.post(base, {"step": "2", "param-threshold": "-3", "param-channel": '"email"', "param-message": "Not A Slug!"})
    assert response.status_code == 400
    body = response.content.decode()
    errors = re.search(r'<ul class="field__errors" id="id_param-message_errors"[^>]*>(.*?)</ul>', body, re.S)
    assert errors and "Must be lowercase letters, digits" in errors.group(1)
    assert "Ensure this value is greater than or equal to 0" in body  # every problem at once, the form's and the template's
    assert "Step 2 of 3" in body and 'value="Not A Slug!"' in body


def test_a_missing_required_parameter_and_a_bad_number_are_refused_before_the_review(world):
    template, _v = _template()
    client = _client(world, "tenant_admin")
    base = f"/workflows/library/{template.key}/clone/"
    client.post(base, {"step": "1", "name": "Big", "key": f"big-{uuid.uuid4().hex[:6]}"})
    response = client.post(base, {"step": "2", "param-threshold": "-3", "param-channel": "", "param-message": ""})
    body = response.content.decode()
    assert response.status_code == 400
    assert "Ensure this value is greater than or equal to 0" in body and "This field is required." in body
    assert client.get(base + "?step=3").content.decode().count("Step 2 of 3") == 1  # no review without parameters


def test_the_wizard_refuses_a_taken_or_reserved_key_on_step_one(world):
    template, version = _template()
    _definition(world, version, key="taken-key")
    client = _client(world, "planner")
    base = f"/workflows/library/{template.key}/clone/"
    response = client.post(base, {"step": "1", "name": "Again", "key": "library"})
    assert response.status_code == 400 and "is reserved" in response.content.decode()
    client.post(base, {"step": "1", "name": "Again", "key": "taken-key"})
    client.post(base, {"step": "2", "param-threshold": "1", "param-channel": '"email"', "param-message": "ok"})
    response = client.post(base, {"step": "3"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Step 1 of 3" in body and "A workflow with the key &#x27;taken-key&#x27; already exists." in body


# ---------- definitions and versions ----------


def test_the_definitions_list_shows_versions_upstream_and_newer_upstream(world):
    template, version = _template()
    definition = _definition(world, version, name="Big orders to watch")
    client = _client(world, "finance")
    body = client.get("/workflows/").content.decode()
    assert "Big orders to watch" in body and f"{template.key}@1.0.0" in body and "Draft" in body and "Not yet" in body
    assert "available" not in body
    _publish(template, "1.1.0")
    body = client.get("/workflows/").content.decode()
    assert "v1.1.0 available" in body
    assert definition.key in client.get(f"/workflows/?q={definition.key}").content.decode()
    assert "No workflows match" in client.get("/workflows/?q=zzz-nothing").content.decode()


def test_an_empty_workspace_points_to_the_library(world):
    body = _client(world, "tenant_admin", tenant="globex").get("/workflows/").content.decode()
    assert "No workflows yet" in body and 'href="/workflows/library/"' in body


def test_versions_move_from_draft_to_published_through_the_page(world):
    _template_, version = _template()
    definition = _definition(world, version)
    planner, admin = _client(world, "planner"), _client(world, "tenant_admin")
    page = planner.get(f"/workflows/{definition.key}/").content.decode()
    assert f"/workflows/{definition.key}/versions/1/submit/" in page and "/versions/1/approve/" not in page
    response = planner.post(f"/workflows/{definition.key}/versions/1/submit/")
    assert response.status_code == 302 and _version(world, definition, 1).status == "submitted"
    assert planner.post(f"/workflows/{definition.key}/versions/1/approve/").status_code == 403
    page = admin.get(f"/workflows/{definition.key}/").content.decode()
    assert "/versions/1/approve/" in page and "/versions/1/reject/" in page
    response = admin.post(f"/workflows/{definition.key}/versions/1/approve/", {"comment": "Looks right."}, follow=True)
    assert "v1 approved" in response.content.decode() and _version(world, definition, 1).status == "approved"
    response = admin.post(f"/workflows/{definition.key}/versions/1/publish/", follow=True)
    body = response.content.decode()
    assert "v1 published" in body and "v1 published</span>" in body
    v1 = _version(world, definition, 1)
    assert v1.status == "published" and v1.approved_by_email == world.acme.users["tenant_admin"].email
    assert "Approved by tenant_admin@acme.test" in body and "Written by planner@acme.test" in body


def test_rejecting_needs_a_reason_and_shows_it(world):
    _template_, version = _template()
    definition = _definition(world, version)
    _client(world, "planner").post(f"/workflows/{definition.key}/versions/1/submit/")
    admin = _client(world, "tenant_admin")
    response = admin.post(f"/workflows/{definition.key}/versions/1/reject/", {"comment": ""})
    assert response.status_code == 400 and "Say why the version is rejected" in response.content.decode()
    assert _version(world, definition, 1).status == "submitted"
    response = admin.post(f"/workflows/{definition.key}/versions/1/reject/", {"comment": "Threshold too low."}, follow=True)
    body = response.content.decode()
    assert "v1 rejected" in body and "Threshold too low." in body and "Rejected by tenant_admin@acme.test" in body


def test_four_eyes_refuses_the_author_as_approver_with_its_reason(world):
    _template_, version = _template()
    admin = _client(world, "tenant_admin")
    assert _client(world, "planner").post("/workflows/policy/", {"require_second_approver": "on"}).status_code == 403
    response = admin.post("/workflows/policy/", {"require_second_approver": "on"}, follow=True)
    assert "Four eyes is on" in response.content.decode()
    assert _in_acme(world, lambda: WorkflowPolicy.objects.get().require_second_approver)
    definition = _definition(world, version, author="tenant_admin")
    admin.post(f"/workflows/{definition.key}/versions/1/submit/")
    page = admin.get(f"/workflows/{definition.key}/").content.decode()
    assert "/versions/1/publish/" not in page  # with four eyes, approval comes first
    response = admin.post(f"/workflows/{definition.key}/versions/1/approve/")
    assert response.status_code == 400
    assert "requires a second approver: you wrote or submitted v1" in response.content.decode()
    assert _version(world, definition, 1).status == "submitted"


def test_rollback_publishes_an_earlier_version_again(world):
    _template_, version = _template()
    definition = _definition(world, version, author="tenant_admin")
    admin = _client(world, "tenant_admin")
    for number in (1, 2):
        if number == 2:
            spec = _version(world, definition, 1).spec
            spec["steps"][1]["name"] = "Tell the planners now"
            response = admin.post(f"/workflows/{definition.key}/edit/", {"spec": _json(spec), "comment": "Clearer name", **_params()})
            assert response.status_code == 302, response.content.decode()[:2000]
        admin.post(f"/workflows/{definition.key}/versions/{number}/submit/")
        admin.post(f"/workflows/{definition.key}/versions/{number}/publish/")
    assert _version(world, definition, 1).status == "superseded"
    page = admin.get(f"/workflows/{definition.key}/").content.decode()
    assert f"/workflows/{definition.key}/versions/1/rollback/" in page
    response = admin.post(f"/workflows/{definition.key}/versions/1/rollback/", follow=True)
    assert "Rolled back to v1" in response.content.decode()
    v3 = _version(world, definition, 3)
    assert v3.status == "published" and v3.spec["steps"][1]["name"] == "Tell the planners"


def _json(value):
    import json

    return json.dumps(value, indent=2)


def _params(**values):
    data = {"param-threshold": "2500", "param-channel": '"email"', "param-message": "big-order"}
    data.update(values)
    return data


def test_the_editor_lists_every_problem_by_pointer_and_keeps_the_text(world):
    _template_, version = _template()
    definition = _definition(world, version)
    client = _client(world, "planner")
    page = client.get(f"/workflows/{definition.key}/edit/").content.decode()
    assert "&quot;start&quot;: &quot;check&quot;" in page and 'name="param-threshold"' in page and 'value="2500"' in page
    response = client.post(f"/workflows/{definition.key}/edit/", {"spec": '{"start": "check",', **_params()})
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()
    spec = _version(world, definition, 1).spec
    spec["steps"][0]["default"] = "nowhere"
    spec["steps"][2]["outcome"] = "maybe"
    response = client.post(f"/workflows/{definition.key}/edit/", {"spec": _json(spec), **_params()})
    body = response.content.decode()
    assert response.status_code == 400
    assert "<code>/steps/0/default</code>" in body and "<code>/steps/2/outcome</code>" in body
    assert "nowhere" in body  # the text is kept for fixing
    assert _in_acme(world, lambda: DefinitionVersion.objects.filter(definition__key=definition.key).count()) == 1


def test_a_parameter_refused_in_the_editor_is_marked_on_its_input(world):
    _template_, version = _template()
    definition = _definition(world, version)
    spec = _version(world, definition, 1).spec
    response = _client(world, "planner").post(
        f"/workflows/{definition.key}/edit/", {"spec": _json(spec), **_params(**{"param-message": "NO!"})}
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'id="id_param-message_errors"[^>]*>\s*<li>Must be lowercase letters', body)


def test_saving_the_editor_creates_a_draft_and_the_diff_against_upstream_shows_it(world):
    template, version = _template()
    definition = _definition(world, version)
    client = _client(world, "planner")
    spec = _version(world, definition, 1).spec
    spec["steps"][1]["name"] = "Shout at the planners"
    response = client.post(f"/workflows/{definition.key}/edit/", {"spec": _json(spec), "comment": "Louder", **_params()}, follow=True)
    body = response.content.decode()
    assert "Draft v2 saved" in body and "“Louder”" in body
    assert _version(world, definition, 2).status == "draft"
    assert "<code>/steps/tell/name</code>" in body and "Shout at the planners" in body
    assert "Tell the planners" in body  # the upstream side of the change


def test_a_newer_upstream_version_is_previewed_and_taken_on_purpose(world):
    template, version = _template()
    definition = _definition(world, version)
    schema = {
        "type": "object",
        "required": ["message"],
        "properties": {
            "threshold": {"type": "integer", "minimum": 5000, "default": 5000},
            "channel": {"enum": ["email", "webhook"], "default": "email"},
            "message": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,79}$"},
            "escalate": {"type": "boolean", "default": False},
        },
    }
    _publish(template, "2.0.0", schema=schema, changelog="Thresholds start at 5000.")
    client = _client(world, "planner")
    body = client.get(f"/workflows/{definition.key}/").content.decode()
    assert "Newer upstream v2.0.0 available" in body and "Thresholds start at 5000." in body
    assert re.search(r"<code>threshold</code> – the value 2500 no longer fits: it must be at least 5000", body)
    assert "<code>escalate</code>" in body and "<code>message</code>" in body  # a new default, a kept value
    response = client.post(f"/workflows/{definition.key}/upgrade/", {"version": "2.0.0"}, follow=True)
    assert "as a new draft v2" in response.content.decode()
    upgraded = _version(world, definition, 2)
    assert upgraded.based_on_template_version == "2.0.0" and upgraded.parameters["threshold"] == 5000
    assert _client(world, "dispatcher").post(f"/workflows/{definition.key}/upgrade/", {"version": "2.0.0"}).status_code == 403


def test_pages_refuse_roles_that_cannot_act(world):
    _template_, version = _template()
    definition = _definition(world, version)
    dispatcher = _client(world, "dispatcher")
    assert dispatcher.get(f"/workflows/{definition.key}/").status_code == 200
    assert dispatcher.get(f"/workflows/{definition.key}/edit/").status_code == 403
    assert dispatcher.post(f"/workflows/{definition.key}/versions/1/submit/").status_code == 403
    assert _client(world, "planner").post(f"/workflows/{definition.key}/versions/1/publish/").status_code == 403
    assert _client(world, "tenant_admin").get("/workflows/no-such-workflow/").status_code == 404


def test_home_and_navigation_lead_to_workflows(world):
    body = _client(world, "planner").get("/").content.decode()
    assert 'href="/workflows/"' in body and "Workflows" in body
    customer = _client(world, "customer").get("/").content.decode()
    assert 'href="/workflows/"' not in customer


def test_the_library_and_the_template_page_show_which_of_your_workflows_use_a_template(world):
    template, version = _template()
    _definition(world, version, name="Big orders in Chicago")
    client = _client(world, "planner")
    assert "In use: 1" in client.get("/workflows/library/").content.decode()
    page = client.get(f"/workflows/library/{template.key}/").content.decode()
    assert "Your workflows from it" in page and "Big orders in Chicago" in page
    wizard = client.get(f"/workflows/library/{template.key}/clone/").content.decode()
    assert "You already have 1 workflow from this template" in wizard and "Big orders in Chicago" in wizard


def test_four_eyes_tells_the_author_before_they_try(world):
    _template_, version = _template()
    admin = _client(world, "tenant_admin")
    admin.post("/workflows/policy/", {"require_second_approver": "on"})
    definition = _definition(world, version, author="tenant_admin")
    admin.post(f"/workflows/{definition.key}/versions/1/submit/")
    assert "so another tenant admin approves it" in admin.get(f"/workflows/{definition.key}/").content.decode()


def test_the_definition_page_says_when_its_runs_go_first(world):
    from tests.workflows.runs_setup import ORDER_SPEC, definition_published

    urgent = definition_published(world.acme, {**ORDER_SPEC, "priority": "high"})
    ordinary = definition_published(world.acme)
    client = _client(world, "dispatcher")
    assert "High priority" in client.get(f"/workflows/{urgent.key}/").content.decode()
    assert "priority" not in client.get(f"/workflows/{ordinary.key}/").content.decode().lower().split("<main", 1)[-1]
