"""The definition editor: connection bindings, the spec as JSON or YAML, Validate without saving,
and the API's draft with bindings."""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from governance.models import AuditEvent
from tenants.db import connection
from tests.conftest import host_client, signed_in_client
from tests.workflows.conftest import LIBRARIAN
from workflows.forms import SPEC_TEXT_LIMIT_BYTES, SpecTextInvalid, spec_parse, spec_text
from workflows.models import DefinitionVersion
from workflows.services import (
    DefinitionInvalid,
    DefinitionProblem,
    definition_clone,
    definition_draft_check,
    definition_draft_create,
    template_create,
    template_version_publish,
)

pytestmark = pytest.mark.django_db

SPEC = {
    "start": "tender",
    "triggers": [{"kind": "manual"}],
    "steps": [
        {"id": "tender", "kind": "connector", "name": "Tender to carrier", "connection": "carrier", "action": "tender", "next": "track"},
        {
            "id": "track",
            "kind": "connector",
            "name": "Subscribe to tracking",
            "connection": "tracking",
            "action": "subscribe",
            "next": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def _template(spec=None):
    connection.set_schema_to_public()
    template = template_create(
        key=f"tender-{uuid.uuid4().hex[:8]}", name="Tender", category="orders", description="", partner_id=None, actor=LIBRARIAN
    )
    return template_version_publish(
        template=template,
        version="1.0.0",
        definition=copy.deepcopy(spec or SPEC),
        parameters_schema={"type": "object", "properties": {}},
        documentation="",
        changelog="",
        actor=LIBRARIAN,
    )


@pytest.fixture
def definition(world):
    """A workflow whose connector steps call "carrier" (bound to acme-tms) and "tracking" (unbound)."""
    version = _template()
    with schema_context(world.acme.schema):
        cloned = definition_clone(
            template_version=version,
            key=f"tender-{uuid.uuid4().hex[:8]}",
            name="Tender loads",
            parameters={},
            connection_bindings={"carrier": "acme-tms"},
            actor=world.acme.users["planner"],
        )
    connection.set_schema_to_public()
    return cloned


def _client(world, role="planner", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _versions(world, definition) -> list[DefinitionVersion]:
    with schema_context(world.acme.schema):
        return list(DefinitionVersion.objects.filter(definition__key=definition.key).order_by("number"))


def _edited(**changes) -> dict:
    spec = copy.deepcopy(SPEC)
    for step in spec["steps"]:
        step.update(changes.get(step["id"], {}))
    return spec


def _post(spec_text_or_spec, *, bindings=None, text_format="json", comment="") -> dict:
    """The editor's form as a browser posts it: the text, its format, the binding rows."""
    text = spec_text_or_spec if isinstance(spec_text_or_spec, str) else json.dumps(spec_text_or_spec, indent=2)
    data = {"spec": text, "format": text_format, "comment": comment}
    for index, (alias, name) in enumerate((bindings or {}).items()):
        data[f"binding-{index}-alias"] = alias
        data[f"binding-{index}"] = name
    return data


def _htmx(client, path, data):
    return client.post(path, data, HTTP_HX_REQUEST="true")


# ---------- bindings ----------


def test_the_editor_shows_one_binding_row_per_connection_with_its_current_value(world, definition):
    body = _client(world).get(f"/workflows/{definition.key}/edit/").content.decode()
    assert '<input type="hidden" name="binding-0-alias" value="carrier"' in body
    assert re.search(r'<input type="text" name="binding-0" value="acme-tms"[^>]*pattern="\[a-z0-9\]\[a-z0-9_-\]\{0,79\}"', body)
    assert '<input type="hidden" name="binding-1-alias" value="tracking"' in body
    assert re.search(r'<input type="text" name="binding-1"[^>]*placeholder="tracking"', body)
    assert 'name="binding-1" value=' not in body  # unbound: empty, the alias is the placeholder
    assert "Used by Subscribe to tracking." in body and "Empty: your connection named “tracking”." in body


def test_saving_bindings_stores_them_and_audits_what_changed(world, definition):
    response = _client(world, "planner").post(
        f"/workflows/{definition.key}/edit/",
        _post(SPEC, bindings={"carrier": "acme-tms-eu", "tracking": "project44"}, comment="EU carrier"),
        follow=True,
    )
    assert "Draft v2 saved" in response.content.decode()
    v1, v2 = _versions(world, definition)
    assert v1.connection_bindings == {"carrier": "acme-tms"}
    assert v2.connection_bindings == {"carrier": "acme-tms-eu", "tracking": "project44"} and v2.spec == SPEC
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.filter(action="workflow_version.draft_created").latest("id")
    assert event.data["connection_bindings"] == {
        "changed": {"carrier": {"from": "acme-tms", "to": "acme-tms-eu"}, "tracking": {"from": None, "to": "project44"}},
        "unbound": [],
        "dropped": {},
    }
    assert event.actor_email == world.acme.users["planner"].email


def test_an_empty_binding_falls_back_to_the_alias_as_after_cloning_and_says_so(world, definition):
    response = _client(world).post(f"/workflows/{definition.key}/edit/", _post(SPEC, bindings={"carrier": "", "tracking": ""}), follow=True)
    body = response.content.decode()
    assert "Draft v2 saved" in body
    assert "Connection “carrier” is not bound, so its steps call your connection named &#x27;carrier&#x27;." in body
    assert _versions(world, definition)[-1].connection_bindings == {}


def test_a_binding_that_is_no_connection_name_is_refused_on_its_input_with_its_pointer(world, definition):
    response = _client(world).post(
        f"/workflows/{definition.key}/edit/", _post(SPEC, bindings={"carrier": "Acme TMS!", "tracking": "x" * 81})
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert "<code>/connection_bindings/carrier</code>" in body and "<code>/connection_bindings/tracking</code>" in body
    assert re.search(r'id="id_binding-0_errors"[^>]*>\s*<li>&#x27;Acme TMS!&#x27; is not a connection name: use lowercase', body)
    assert 'value="Acme TMS!"' in body  # kept for fixing
    assert len(_versions(world, definition)) == 1


def test_a_connection_the_spec_adds_gets_its_row_and_one_it_drops_goes_with_a_note(world, definition):
    spec = _edited(track={"connection": "p44"})
    response = _client(world).post(
        f"/workflows/{definition.key}/edit/check/",
        _post(spec, bindings={"carrier": "acme-tms", "tracking": "project44"}),
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response.status_code == 200 and "No problems found" in body
    assert '<fieldset class="form-section" id="editor-bindings" hx-swap-oob="true">' in body
    assert '<input type="hidden" name="binding-1-alias" value="p44"' in body
    assert "<code>/connection_bindings/tracking</code>" in body and "was dropped: no connector step uses" in body
    assert "<code>/connection_bindings/p44</code>" in body and "is not bound" in body
    assert len(_versions(world, definition)) == 1  # nothing saved


def test_the_service_checks_bindings_by_pointer_and_keeps_or_drops_them(world, definition):
    planner = world.acme.users["planner"]
    with schema_context(world.acme.schema):
        with pytest.raises(DefinitionInvalid) as refused:
            definition_draft_create(
                definition=definition,
                spec=_edited(track={"connection": "Track & Trace"}),
                connection_bindings={"carrier": "", "sap": "Not checked, dropped"},
                comment="",
                actor=planner,
            )
        assert refused.value.problems == [
            DefinitionProblem("/connection_bindings/carrier", "must name one of your connections (leave it out to call 'carrier' itself)"),
            DefinitionProblem(
                "/connection_bindings/Track & Trace",
                "must be bound: 'Track & Trace' is not a connection name itself, so its steps would have nothing to call",
            ),
        ]
        kept = definition_draft_create(definition=definition, spec=SPEC, comment="", actor=planner)  # None: the latest's
        assert kept.connection_bindings == {"carrier": "acme-tms"}
        slashed = definition_draft_create(
            definition=definition,
            spec=_edited(track={"connection": "a/b"}),
            connection_bindings={"carrier": None, "a/b": "ab-conn", "tracking": "gone"},
            comment="",
            actor=planner,
        )
        assert slashed.connection_bindings == {"a/b": "ab-conn"}
        event = AuditEvent.objects.filter(action="workflow_version.draft_created").latest("id")
        assert event.data["connection_bindings"] == {
            "changed": {"a/b": {"from": None, "to": "ab-conn"}, "carrier": {"from": "acme-tms", "to": None}},
            "unbound": ["carrier"],
            "dropped": {"tracking": "gone"},
        }
        check = definition_draft_check(definition=definition, spec=SPEC, connection_bindings={"carrier": "a/b"})
        assert [(p.pointer, p.reason[:30]) for p in check.problems] == [("/connection_bindings/carrier", "'a/b' is not a connection name")]
        assert [(n.pointer, n.text) for n in check.connections.notes] == [
            ("/connection_bindings/tracking", "is not bound, so its steps call your connection named 'tracking'")
        ]


# ---------- JSON ⇄ YAML ----------

TRICKY = ["yes", "on", "no", "12:30", "1e5", "0o17", "0x1F", "017", "null", "~", "2026-01-01", "", "true", "- x", "#x", "a: b", "é"]


def test_yaml_round_trips_to_the_same_json_even_for_text_that_looks_like_other_types():
    spec = _edited(tender={"input": {"refs": TRICKY, "note": "two\nlines\n", "numbers": [1, 2.5, -3, 1e20, True, None]}})
    text = spec_text(spec, "yaml")
    assert text.startswith("start: tender\ntriggers:\n  - kind: manual\nsteps:\n  - id: tender\n    kind: connector\n")
    assert spec_parse(text, "yaml") == spec
    assert spec_parse("on: yes\nwhen: 12:30\nn: 0o17\nx: 0x1F\nd: 2026-01-01\n", "yaml") == {
        "on": "yes",
        "when": "12:30",
        "n": 15,
        "x": 31,
        "d": "2026-01-01",
    }


def test_the_editor_opens_in_yaml_and_saves_yaml_as_the_same_json(world, definition):
    client = _client(world)
    page = client.get(f"/workflows/{definition.key}/edit/?format=yaml").content.decode()
    assert "Definition (YAML)" in page and '<input type="hidden" name="format" value="yaml"' in page
    assert "start: tender\ntriggers:\n  - kind: manual\nsteps:\n  - id: tender\n    kind: connector\n" in page
    text = spec_text(SPEC, "yaml").replace("name: Tender to carrier", "name: Tender to the carrier")
    response = client.post(f"/workflows/{definition.key}/edit/", _post(text, text_format="yaml", bindings={"carrier": "acme-tms"}))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _versions(world, definition)[-1].spec == _edited(tender={"name": "Tender to the carrier"})


def test_bad_yaml_is_refused_with_its_line_and_the_format_is_kept(world, definition):
    text = "start: tender\nsteps:\n  - id: tender\n   kind: connector\n"
    response = _client(world).post(f"/workflows/{definition.key}/edit/", _post(text, text_format="yaml"))
    body = response.content.decode()
    assert response.status_code == 400
    assert "Not saved: the definition does not read" in body
    assert re.search(r"Not valid YAML: [^<]+ \(line 4, column 4\)\.", body)
    assert "Definition (YAML)" in body and '<input type="hidden" name="format" value="yaml"' in body
    assert "   kind: connector" in body  # the text as typed
    assert len(_versions(world, definition)) == 1


def test_yaml_with_a_python_tag_anchors_or_too_much_text_is_refused(world, definition, tmp_path):
    target = tmp_path / "owned"
    text = f"start: tender\nsteps: !!python/object/apply:os.system ['touch {target}']\n"
    response = _client(world).post(f"/workflows/{definition.key}/edit/", _post(text, text_format="yaml"))
    body = response.content.decode()
    assert response.status_code == 400
    assert "the tag !!python/object/apply:os.system is not accepted" in body and "(line 2, column 8)" in body
    assert not Path(target).exists()
    with pytest.raises(SpecTextInvalid, match=r"anchors and aliases .* \(line 1, column 4\)"):
        spec_parse("a: &one [1, 2]\nb: *one\n", "yaml")
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n"
    with pytest.raises(SpecTextInvalid, match="anchors and aliases"):
        spec_parse(bomb, "yaml")
    with pytest.raises(SpecTextInvalid, match=r"the key 'start' appears twice in this mapping \(line 2, column 1\)"):
        spec_parse("start: a\nstart: b\n", "yaml")
    with pytest.raises(SpecTextInvalid, match=r"must be a mapping"):
        spec_parse("- start\n", "yaml")
    with pytest.raises(SpecTextInvalid, match=r"the editor takes at most 256 KB"):
        spec_parse("a: " + "x" * SPEC_TEXT_LIMIT_BYTES, "yaml")
    with pytest.raises(SpecTextInvalid, match=r"nests lists and objects too deeply"):
        spec_parse("[" * 5000 + "]" * 5000, "json")


def test_switching_to_yaml_rewrites_the_text_and_a_text_that_does_not_read_stays(world, definition):
    client = _client(world)
    spec = _edited(tender={"name": "Edited, not saved"})
    data = {**_post(spec, bindings={"carrier": "acme-tms", "tracking": ""}), "show_as": "yaml"}
    body = _htmx(client, f"/workflows/{definition.key}/edit/check/", data).content.decode()
    assert '<fieldset class="form-section" id="editor-spec" hx-swap-oob="true">' in body
    assert '<input type="hidden" name="format" value="yaml"' in body and "Definition (YAML)" in body
    assert "name: Edited, not saved" in body
    broken = {**_post('{"start": "tender",'), "show_as": "yaml"}
    body = _htmx(client, f"/workflows/{definition.key}/edit/check/", broken).content.decode()
    assert 'id="editor-spec"' not in body  # the text is not replaced
    assert "Not valid JSON: Expecting property name enclosed in double quotes (line 1, column 20)." in body
    assert "Fix it first to switch to YAML." in body
    assert len(_versions(world, definition)) == 1


# ---------- Validate ----------


def test_validate_lists_problems_and_redraws_the_diagram_without_saving(world, definition):
    client = _client(world)
    spec = _edited(tender={"next": "nowhere"})
    response = _htmx(client, f"/workflows/{definition.key}/edit/check/", _post(spec, bindings={"carrier": "acme-tms"}))
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith("<aside") and 'id="editor-checks"' in body
    assert "Not valid yet: nothing was saved" in body and "<code>/steps/0/next</code>" in body
    assert '<section class="card section-gap-sm" aria-labelledby="steps-title" id="editor-diagram" hx-swap-oob="true">' in body
    assert "<html" not in body
    renamed = _edited(tender={"name": "Tender by API"})
    body = _htmx(client, f"/workflows/{definition.key}/edit/check/", _post(renamed, bindings={"carrier": "acme-tms"})).content.decode()
    assert "No problems found" in body and "Tender by API" in body  # the redrawn diagram
    assert len(_versions(world, definition)) == 1
    # Without JavaScript the same check answers with the whole page; a GET checks the latest version.
    page = client.post(f"/workflows/{definition.key}/edit/check/", _post(spec))
    assert page.status_code == 200 and "<html" in page.content.decode() and "<code>/steps/0/next</code>" in page.content.decode()
    latest = client.get(f"/workflows/{definition.key}/edit/check/").content.decode()
    assert "No problems found" in latest and "<code>/connection_bindings/tracking</code>" in latest and 'value="acme-tms"' in latest


# ---------- who may edit ----------


def test_planners_and_admins_edit_dispatchers_cannot(world, definition):
    for role in ("planner", "tenant_admin"):
        client = _client(world, role)
        assert client.get(f"/workflows/{definition.key}/edit/").status_code == 200
        assert _htmx(client, f"/workflows/{definition.key}/edit/check/", _post(SPEC)).status_code == 200
    dispatcher = _client(world, "dispatcher")
    assert dispatcher.get(f"/workflows/{definition.key}/edit/").status_code == 403
    assert dispatcher.post(f"/workflows/{definition.key}/edit/", _post(SPEC, bindings={"carrier": "x"})).status_code == 403
    assert dispatcher.post(f"/workflows/{definition.key}/edit/check/", _post(SPEC)).status_code == 403
    assert len(_versions(world, definition)) == 1


def test_another_tenant_cannot_validate_or_save_this_tenants_workflow(world, definition):
    globex = _client(world, "tenant_admin", tenant="globex")
    for path in (f"/workflows/{definition.key}/edit/check/", f"/workflows/{definition.key}/edit/"):
        response = globex.post(path, _post(SPEC, bindings={"carrier": "stolen"}))
        assert response.status_code == 404
        assert "Tender loads" not in response.content.decode() and "acme-tms" not in response.content.decode()
    stolen = host_client(world.globex.host)
    stolen.cookies = _client(world).cookies
    response = stolen.post(f"/workflows/{definition.key}/edit/check/", _post(SPEC))
    assert response.status_code in (302, 401, 403) and "acme-tms" not in response.content.decode()
    assert len(_versions(world, definition)) == 1


# ---------- API ----------


def _key(world, *scopes, tenant="acme") -> dict:
    place = getattr(world, tenant)
    with schema_context(place.schema):
        _key, secret = api_key_create(name="erp", scopes=list(scopes), actor=place.users["tenant_admin"])
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def test_the_api_makes_a_draft_with_bindings_and_notes(world, definition):
    client = host_client(world.acme.host)
    writer = _key(world, "workflows:write")
    body = {"spec": SPEC, "connection_bindings": {"carrier": "acme-tms-eu", "sap": "sap-prod"}, "comment": "EU"}
    response = client.post(f"/api/v1/definitions/{definition.key}/versions", body, content_type="application/json", **writer)
    assert response.status_code == 201, response.content[:500]
    created = response.json()
    assert (created["number"], created["status"], created["connection_bindings"]) == (2, "draft", {"carrier": "acme-tms-eu"})
    assert created["notes"] == [
        {"pointer": "/connection_bindings/tracking", "note": "is not bound, so its steps call your connection named 'tracking'"},
        {"pointer": "/connection_bindings/sap", "note": "was dropped: no connector step uses 'sap' any more"},
    ]
    kept = client.post(f"/api/v1/definitions/{definition.key}/versions", {"spec": SPEC}, content_type="application/json", **writer)
    assert kept.status_code == 201 and kept.json()["connection_bindings"] == {"carrier": "acme-tms-eu"}
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.filter(action="workflow_version.draft_created").latest("id")
        assert event.actor_kind == "api_key"
    refused = client.post(
        f"/api/v1/definitions/{definition.key}/versions",
        {"spec": SPEC, "connection_bindings": {"carrier": "Acme TMS"}},
        content_type="application/json",
        **writer,
    )
    assert refused.status_code == 422 and refused["Content-Type"] == "application/problem+json"
    assert refused.json()["errors"] == [
        {
            "pointer": "/connection_bindings/carrier",
            "reason": "'Acme TMS' is not a connection name: use lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit (at most 80)",
        }
    ]
    assert len(_versions(world, definition)) == 3


def test_the_api_draft_needs_the_write_scope_or_an_authoring_role_and_stays_in_its_tenant(world, definition):
    client = host_client(world.acme.host)
    path = f"/api/v1/definitions/{definition.key}/versions"
    reader = _key(world, "workflows:read")
    refused = client.post(path, {"spec": SPEC}, content_type="application/json", **reader)
    assert (
        refused.status_code == 403
        and refused.json()["detail"] == "This needs the 'workflows:write' scope or a staff role that includes it."
    )
    assert _client(world, "dispatcher").post(path, {"spec": SPEC}, content_type="application/json").status_code == 403
    assert _client(world, "planner").post(path, {"spec": SPEC}, content_type="application/json").status_code == 201
    globex_writer = _key(world, "workflows:write", tenant="globex")
    other = host_client(world.globex.host).post(path, {"spec": SPEC}, content_type="application/json", **globex_writer)
    assert other.status_code == 404 and "Tender loads" not in other.content.decode()
    acme_writer = _key(world, "workflows:write")
    foreign = host_client(world.globex.host).post(path, {"spec": SPEC}, content_type="application/json", **acme_writer)
    assert foreign.status_code in (401, 403)
    assert len(_versions(world, definition)) == 2


def test_the_openapi_schema_shows_the_draft_body_with_its_bindings(world):
    schema = host_client(world.acme.host).get("/api/schema/?format=json").json()
    post = schema["paths"]["/api/v1/definitions/{key}/versions"]["post"]
    assert set(post["responses"]) == {"201", "403", "404", "422"}
    reference = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    body = schema["components"]["schemas"][reference]
    assert body["required"] == ["spec"]
    assert body["properties"]["connection_bindings"]["additionalProperties"] == {"type": "string", "nullable": True, "minLength": 1}
    created = post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "notes" in schema["components"]["schemas"][created]["properties"]
