"""The EDI partner card on an EDI-partner connection's page: set up, change, refuse bad settings
by field, editors only; then the upload page is reachable from it."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from connectors.models import Connection, EdiPartner
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, signed_in_client
from tests.processes import web_server

SETTINGS = {
    "their_qualifier": "ZZ",
    "their_id": "CARRIERX",
    "our_qualifier": "ZZ",
    "our_id": "ACMEFREIGHT",
    "their_application_id": "",
    "our_application_id": "",
    "version": "00401",
    "group_version": "004010",
    "usage": "P",
    "element_separator": "*",
    "component_separator": ">",
    "segment_terminator": "~",
    "repetition_separator": "^",
    "wants_997": "on",
    "inbound_folder": "/in",
    "archive_folder": "/archive",
    "error_folder": "/error",
    "outbound_folder": "/out",
}


def _partner_connection(tenant_world) -> Connection:
    with schema_context(tenant_world.schema):
        return Connection.objects.create(
            key="carrier-x-edi", name="Carrier X EDI", kind="edi_partner", transport="sftp", base_url="sftp://127.0.0.1:2222"
        )


def _client(tenant_world, role: str = "planner"):
    return signed_in_client(tenant_world.host, tenant_world.users[role], tenant_world.schema)


@pytest.mark.django_db
def test_a_planner_sets_up_the_partner_and_the_card_then_links_to_the_upload(world):
    connection = _partner_connection(world.acme)
    client = _client(world.acme)
    page = client.get(f"/connections/{connection.key}/").content.decode()
    assert "EDI partner" in page and "Not set up" in page and "Set up the partner" in page

    saved = client.post(f"/connections/{connection.key}/edi/partner/", SETTINGS)
    assert saved.status_code == 302 and saved["Location"].endswith("#edi-partner")
    with schema_context(world.acme.schema):
        partner = EdiPartner.objects.get(connection=connection)
        assert (partner.their_id, partner.our_id, partner.wants_997) == ("CARRIERX", "ACMEFREIGHT", True)
        assert Connection.objects.get(pk=connection.pk).inbound_mapper == "x12"
    page = client.get(f"/connections/{connection.key}/").content.decode()
    assert "ZZ:CARRIERX" in page and f"/connections/{connection.key}/edi/upload/" in page


@pytest.mark.django_db
def test_bad_settings_come_back_on_their_fields_and_only_editors_may_save(world):
    connection = _partner_connection(world.acme)
    refused = _client(world.acme).post(f"/connections/{connection.key}/edi/partner/", {**SETTINGS, "their_id": "", "version": "4"})
    assert refused.status_code == 400
    body = refused.content.decode()
    assert "field--invalid" in body
    with schema_context(world.acme.schema):
        assert not EdiPartner.objects.filter(connection=connection).exists()
    assert _client(world.acme, "finance").post(f"/connections/{connection.key}/edi/partner/", SETTINGS).status_code == 403


@pytest.mark.django_db
def test_a_connection_of_another_kind_has_no_partner_card_or_settings(world):
    with schema_context(world.acme.schema):
        other = Connection.objects.create(key="plain-tms", name="Plain TMS", kind="tms", base_url="https://tms.example.com")
    client = _client(world.acme)
    assert "edi-partner" not in client.get(f"/connections/{other.key}/").content.decode()
    assert client.post(f"/connections/{other.key}/edi/partner/", SETTINGS).status_code == 404


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("edi-partner-web") / "web.log") as port:
        yield port


@pytest.fixture
def committed_partner(world, committed):
    """A committed EDI-partner connection (the browser sees it), removed afterwards."""
    connection = _partner_connection(world.acme)
    yield connection
    with schema_context(world.acme.schema):
        EdiPartner.objects.filter(connection=connection).delete()
        connection.delete()


@pytest.mark.browser
def test_a_planner_sets_up_a_partner_in_the_browser(world, live_port, committed_partner):
    base = f"http://{world.acme.host}:{live_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["planner"].email, PASSWORD)
        page.goto(f"{base}/connections/{committed_partner.key}/#edi-partner")
        page.fill("#id_their_id", "CARRIERX")
        page.fill("#id_our_id", "ACMEFREIGHT")
        page.get_by_role("button", name="Save partner settings").click()
        page.wait_for_load_state()
        card = page.locator("#edi-partner").inner_text()
        page.add_style_tag(content=".toasts{display:none!important}")
        page.locator("#edi-partner").scroll_into_view_if_needed()
        screenshot(page, "edi-partner-card")
        browser.close()
    assert "ZZ:CARRIERX" in card and "Upload an interchange" in card


@pytest.mark.browser
def test_a_planner_pastes_an_ssh_key_and_the_card_shows_its_fingerprint_only(world, live_port, committed_partner):
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment="baton@acme")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    base = f"http://{world.acme.host}:{live_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["planner"].email, PASSWORD)
        page.goto(f"{base}/connections/{committed_partner.key}/#edi-partner")
        page.fill("#id_their_id", "CARRIERX")
        page.fill("#id_our_id", "ACMEFREIGHT")
        page.fill("#id_next_interchange_control_number", "4711")
        page.fill("#id_sftp_host_key", host_key.export_public_key().decode())
        page.fill("#id_private_key", key.export_private_key().decode())
        page.get_by_role("button", name="Save partner settings").click()
        page.wait_for_load_state()
        card = page.locator("#edi-partner").inner_text()
        page.locator("#edi-partner summary").click()  # open the form: the key's input is empty, the stored one named
        key_input = page.locator("#id_private_key").input_value()
        page.add_style_tag(content=".toasts{display:none!important}")
        page.locator("#edi-partner").scroll_into_view_if_needed()
        screenshot(page, "edi-partner-card-ssh-key")
        browser.close()
    assert f"ssh-ed25519 {key.get_fingerprint()}" in card and f"ssh-ed25519 {host_key.get_fingerprint()}" in card
    assert "ISA13 000004710" in card and key_input == ""
