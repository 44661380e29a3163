"""MSP staff manage the workflow template library from the console."""

from __future__ import annotations

import json
import uuid

import pytest

from governance.services import Actor
from tenants.services import BrandingInput, partner_create
from tests.conftest import signed_in_client
from workflows.models import TemplateVersion, WorkflowTemplate
from workflows.services import template_create, template_version_publish

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")

SPEC = {
    "start": "tell",
    "triggers": [{"kind": "manual"}],
    "steps": [
        {
            "id": "tell",
            "kind": "notify",
            "name": "Tell customer service",
            "channel": "{{params.channel}}",
            "to_roles": ["customer_service"],
            "template": "order-late",
            "next": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}
SCHEMA = {"type": "object", "properties": {"channel": {"enum": ["email", "sms"], "default": "email"}}}


def _console(world, role="msp_admin"):
    client = signed_in_client("localhost", world.msp[role], "public")
    session = client.session
    session["baton.mfa_enrolled"] = True
    session.save()
    return client


def _template(*, partner_id=None, name="Late order alert", published=True):
    template = template_create(
        key=f"late-{uuid.uuid4().hex[:8]}", name=name, category="notifications", description="Tell CS.", partner_id=partner_id, actor=ACTOR
    )
    if published:
        template_version_publish(
            template=template,
            version="1.0.0",
            definition=SPEC,
            parameters_schema=SCHEMA,
            documentation="Docs",
            changelog="First.",
            actor=ACTOR,
        )
    return template


def _version_form(**overrides):
    data = {
        "version": "1.1.0",
        "definition": json.dumps(SPEC),
        "parameters_schema": json.dumps(SCHEMA),
        "documentation": "# Late orders\nTells customer service.",
        "changelog": "SMS too.",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("role", ["msp_admin", "msp_operator", "msp_support"])
def test_every_msp_role_sees_the_library_with_owners_and_versions(world, role):
    other = partner_create(name="Northwind MSP", slug=f"nw-{uuid.uuid4().hex[:6]}", actor=ACTOR, branding=BrandingInput(product_name="NW"))
    platform = _template(name="Platform late alert")
    theirs = _template(partner_id=other.pk, name="Northwind late alert")
    draft = _template(name="Unpublished idea", published=False)
    body = _console(world, role).get("/templates/").content.decode()
    assert platform.name in body and theirs.name in body and draft.name in body
    assert "Northwind MSP" in body and "Platform" in body and "v1.0.0" in body and "Not published" in body
    filtered = _console(world, role).get(f"/templates/?owner={other.pk}").content.decode()
    assert theirs.name in filtered and platform.name not in filtered
    assert "No templates match" in _console(world, role).get("/templates/?q=zzz-nothing").content.decode()


def test_an_admin_creates_a_partner_template(world):
    client = _console(world)
    assert "Platform – every tenant" in client.get("/templates/new/").content.decode()
    response = client.post(
        "/templates/new/",
        {"key": "late-partner", "name": "Partner late alert", "category": "notifications", "description": "", "partner": world.partner.pk},
    )
    assert response.status_code == 302 and response["Location"] == "/templates/late-partner/"
    template = WorkflowTemplate.objects.get(key="late-partner")
    assert template.partner_id == world.partner.pk
    page = client.get("/templates/late-partner/").content.decode()
    assert "Template Partner late alert created" in page and "Publish the first version" in page and world.partner.name in page


def test_creating_a_template_with_a_taken_key_says_so_inline(world):
    taken = _template()
    response = _console(world, "msp_operator").post(
        "/templates/new/", {"key": taken.key, "name": "Again", "category": "notifications", "description": ""}
    )
    assert response.status_code == 400
    assert f"A template with the key &#x27;{taken.key}&#x27; already exists." in response.content.decode()


def test_support_staff_can_read_but_not_change_the_library(world):
    template = _template()
    client = _console(world, "msp_support")
    assert client.get("/templates/new/").status_code == 403
    page = client.get(f"/templates/{template.key}/")
    assert page.status_code == 200 and "Publish version" not in page.content.decode()
    assert client.post(f"/templates/{template.key}/", _version_form()).status_code == 403
    assert not TemplateVersion.objects.filter(template=template, version="1.1.0").exists()


def test_publishing_a_version_from_the_console(world):
    template = _template()
    client = _console(world, "msp_operator")
    page = client.get(f"/templates/{template.key}/").content.decode()
    assert 'value="1.1.0"' in page and "&quot;start&quot;: &quot;tell&quot;" in page and "<svg" in page
    response = client.post(f"/templates/{template.key}/", _version_form(), follow=True)
    body = response.content.decode()
    assert f"{template.name} v1.1.0 published" in body and "SMS too." in body
    assert TemplateVersion.objects.filter(template=template, version="1.1.0").exists()


def test_an_invalid_version_lists_every_problem_by_pointer(world):
    template = _template()
    spec = json.loads(json.dumps(SPEC))
    spec["steps"][0]["next"] = "nowhere"
    spec["steps"][1]["outcome"] = "maybe"
    response = _console(world).post(f"/templates/{template.key}/", _version_form(definition=json.dumps(spec)))
    body = response.content.decode()
    assert response.status_code == 400
    assert "<code>/steps/0/next</code>" in body and "<code>/steps/1/outcome</code>" in body and "Not published" in body
    assert not TemplateVersion.objects.filter(template=template, version="1.1.0").exists()


def test_bad_json_and_an_old_version_number_are_refused_inline(world):
    template = _template()
    client = _console(world)
    response = client.post(f"/templates/{template.key}/", _version_form(definition="{not json"))
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()
    response = client.post(f"/templates/{template.key}/", _version_form(version="1.0.0"))
    body = response.content.decode()
    assert response.status_code == 400 and "a new version must be greater than 1.0.0" in body
    assert 'id="id_version_errors"' in body


def test_tenant_staff_cannot_reach_the_console_library(world):
    client = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    stolen = signed_in_client("localhost", world.msp["msp_admin"], "public")
    stolen.cookies = client.cookies
    assert stolen.get("/templates/").status_code in (302, 403)
