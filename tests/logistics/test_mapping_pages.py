"""The status mapping pages: staff see the tables, versions and codes; admins and planners draft
and change a version; admins publish it; customers see nothing; published versions offer no edit."""

from __future__ import annotations

import html
import re

import pytest
from django_tenants.utils import schema_context

from logistics.models import StatusMappingEntry, StatusMappingVersion
from logistics.services import mapping_entry_set, mapping_version_draft_create, mapping_version_publish
from tests.conftest import signed_in_client
from tests.logistics.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def _client(world, role="tenant_admin", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def _versions(world, kind="x12_214_status"):
    with schema_context(world.acme.schema):
        return list(StatusMappingVersion.objects.filter(kind=kind).order_by("number").values_list("number", "status"))


def test_staff_see_every_table_with_the_version_in_force_and_the_vocabulary(world):
    for role in ("tenant_admin", "planner", "dispatcher", "customer_service", "finance"):
        response = _client(world, role).get("/logistics/mappings/")
        assert response.status_code == 200, role
        text = _text(response)
        for label in ("X12 214 shipment status codes (AT7-01)", "X12 214 status reason codes (AT7-02)", "Carrier API tracking statuses"):
            assert label in text
        assert text.count("v1 in force") == 3 and "Platform defaults 2026.1" in text
        assert "Baton's tracking statuses" in text and "Return to sender" in text
        assert ("Draft a new version" in text) == (role in ("tenant_admin", "planner")), role


def test_the_workspace_nav_leads_to_the_mappings(world):
    body = _client(world, "dispatcher").get("/").content.decode()
    assert 'href="/logistics/mappings/"' in body and "Status mappings" in body


def test_a_version_page_lists_codes_with_search_and_filter(world):
    client = _client(world, "dispatcher")
    text = _text(client.get("/logistics/mappings/x12_214_status/1/"))
    assert "Version 1 In force" in text and "Codes (42)" in text
    assert "X6" in text and "En route to delivery location" in text and "Published versions never change" in text
    assert "Save code" not in text and "Remove" not in text
    searched = _text(client.get("/logistics/mappings/x12_214_status/1/?q=damaged"))
    assert "A9" in searched and "En route" not in searched
    filtered = _text(client.get("/logistics/mappings/x12_214_status/1/?status=delivered"))
    assert "D1" in filtered and "CD" in filtered and "X6" not in filtered
    nothing = _text(client.get("/logistics/mappings/x12_214_status/1/?q=zebra"))
    assert "No codes match" in nothing and "clear the filters" in nothing
    reasons = _text(client.get("/logistics/mappings/x12_214_reason/1/?q=AM"))
    assert "Shipper related" in reasons and "Shipper" in reasons
    assert client.get("/logistics/mappings/x12_214_status/9/").status_code == 404
    assert client.get("/logistics/mappings/edifact/1/").status_code == 404


def test_a_planner_drafts_changes_a_code_and_an_admin_publishes(world):
    planner = _client(world, "planner")
    response = planner.post("/logistics/mappings/x12_214_status/new/")
    assert response.status_code == 302 and response["Location"] == "/logistics/mappings/x12_214_status/2/"
    draft_page = _text(planner.get("/logistics/mappings/x12_214_status/2/"))
    assert "Version 2 Draft" in draft_page and "from v1" in draft_page and "Save code" in draft_page
    assert "A tenant admin publishes this draft" in draft_page

    missing = planner.post("/logistics/mappings/x12_214_status/2/entries/", {"code": "ZZ", "description": "Carrier's own", "status": ""})
    assert missing.status_code == 400 and "This field is required" in _text(missing)
    saved = planner.post(
        "/logistics/mappings/x12_214_status/2/entries/",
        {"code": "zz", "description": "Carrier's own hold", "status": "on_hold", "signal": "hold"},
    )
    assert saved.status_code == 302
    edited = _text(planner.get("/logistics/mappings/x12_214_status/2/?edit=X6"))
    assert "Change X6" in edited
    assert "Compared with v1 (in force)" in _text(planner.get("/logistics/mappings/x12_214_status/2/"))
    assert planner.post("/logistics/mappings/x12_214_status/2/entries/remove/", {"code": "OO"}).status_code == 302
    changes = _text(planner.get("/logistics/mappings/x12_214_status/2/"))
    assert "Added ZZ" in changes and "Removed OO" in changes

    assert planner.post("/logistics/mappings/x12_214_status/2/publish/").status_code == 403
    admin = _client(world)
    assert "Publish v2" in _text(admin.get("/logistics/mappings/x12_214_status/2/"))
    published = admin.post("/logistics/mappings/x12_214_status/2/publish/", {"notes": "Carrier ZZ holds"}, follow=True)
    assert "v2 is now in force" in _text(published)
    assert _versions(world) == [(1, "retired"), (2, "active")]
    retired = _text(admin.get("/logistics/mappings/x12_214_status/1/"))
    assert "Put v1 back in force" in retired and "Compared with" not in retired


def test_a_published_version_refuses_changes_with_a_message(world):
    admin = _client(world)
    response = admin.post(
        "/logistics/mappings/x12_214_status/1/entries/", {"code": "X6", "description": "x", "status": "delivered"}, follow=True
    )
    assert "published versions never change" in _text(response)
    with schema_context(world.acme.schema):
        assert StatusMappingEntry.objects.get(version__kind="x12_214_status", version__number=1, code="X6").status == "in_transit"
    discard = admin.post("/logistics/mappings/x12_214_status/1/discard/", follow=True)
    assert "published versions never change" in _text(discard)
    again = admin.post("/logistics/mappings/x12_214_status/new/")
    assert again.status_code == 302
    twice = admin.post("/logistics/mappings/x12_214_status/new/", follow=True)
    assert "v2 of this table is already a draft" in _text(twice)


def test_a_retired_version_goes_back_in_force_with_a_reason(world):
    with schema_context(world.acme.schema):
        draft = mapping_version_draft_create(kind="carrier_api_status", actor=SYSTEM)
        mapping_entry_set(version=draft, code="error", description="Error", status="on_hold", actor=SYSTEM)
        mapping_version_publish(version=draft, actor=SYSTEM)
    admin = _client(world)
    refused = admin.post("/logistics/mappings/carrier_api_status/1/activate/", {"reason": ""}, follow=True)
    assert "Say why" in _text(refused)
    done = admin.post("/logistics/mappings/carrier_api_status/1/activate/", {"reason": "v2 hid carrier errors"}, follow=True)
    assert "v1 is back in force" in _text(done)
    assert _versions(world, "carrier_api_status") == [(1, "active"), (2, "retired")]
    assert _client(world, "planner").post("/logistics/mappings/carrier_api_status/2/activate/", {"reason": "x"}).status_code == 403


def test_roles_without_the_right_are_refused(world):
    dispatcher = _client(world, "dispatcher")
    assert dispatcher.post("/logistics/mappings/x12_214_status/new/").status_code == 403
    customer = _client(world, "customer")
    assert customer.get("/logistics/mappings/").status_code == 403
    assert customer.get("/logistics/mappings/x12_214_status/1/").status_code == 403
    assert "Status mappings" not in customer.get("/").content.decode()
    assert _versions(world) == [(1, "active")]
