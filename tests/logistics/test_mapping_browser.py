"""The status mapping pages in a real browser against a real web server: a planner finds the
draft, changes a code and sees it saved; screenshots at desktop and phone widths."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from logistics.models import StatusMappingVersion
from logistics.services import mapping_entry_set, mapping_version_draft_create
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD
from tests.logistics.conftest import SYSTEM
from tests.processes import web_server


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("mappings-web") / "web.log") as port:
        yield port


@pytest.fixture
def committed_draft(world, committed):
    """A committed draft with one changed code (the browser sees it), removed afterwards."""
    with schema_context(world.acme.schema):
        draft = mapping_version_draft_create(kind="x12_214_status", actor=SYSTEM)
        mapping_entry_set(
            version=draft, code="X6", description="En route (carrier holds at hub)", status="on_hold", signal="hold", actor=SYSTEM
        )
    yield draft
    with schema_context(world.acme.schema):
        StatusMappingVersion.objects.filter(pk=draft.pk).delete()


@pytest.mark.browser
def test_the_mapping_pages_in_a_browser(world, live_port, committed_draft):
    base = f"http://{world.acme.host}:{live_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["planner"].email, PASSWORD)
        hide_toasts = ".toasts{display:none!important}"
        page.goto(f"{base}/logistics/mappings/")
        tables = page.locator("main").inner_text()
        screenshot(page, "logistics-mappings")
        page.get_by_role("link", name="Continue draft v2").click()
        page.wait_for_load_state()
        page.get_by_role("link", name="Change X6").click()
        page.wait_for_load_state()
        assert page.locator("#id_description").input_value() == "En route (carrier holds at hub)"
        page.fill("#id_description", "En route, held at the carrier's hub")
        page.get_by_role("button", name="Save code").click()
        page.wait_for_load_state()
        draft = page.locator("body").inner_text()
        page.add_style_tag(content=hide_toasts)
        screenshot(page, "logistics-mapping-draft")
        page.goto(f"{base}/logistics/mappings/x12_214_reason/1/")
        screenshot(page, "logistics-mapping-reasons")
        browser.close()
    assert "v1 in force" in tables and "Continue draft v2" in tables
    assert "X6 saved in draft v2" in draft and "held at the carrier's hub" in draft
