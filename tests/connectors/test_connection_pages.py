"""The connections pages: list with health and empty states, new (kind first, then its defaults),
detail with edit, Test connection, disable; secrets never rendered back; who may do what. And the
whole path in a real browser, with screenshots at desktop and phone widths."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from connectors.models import Connection
from connectors.services import connection_create
from governance.models import AuditEvent
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, host_client, signed_in_client
from tests.connectors.test_connections import API_KEY, CLIENT_ID, CLIENT_SECRET, FakeSystem, connection_input, fake_system
from tests.processes import web_server

in_db = pytest.mark.django_db  # not the browser test: its writes must be committed for the web server


def calls_recorded(schema: str, key: str, *, calls: int, failures: int, circuit: str) -> None:
    """What connector steps' calls would have left in Redis for the connection (`connectors.guards`):
    `calls` with `failures` among them, the last one a success, and the circuit in `circuit`."""
    from connectors.guards import CircuitPolicy, call_record, circuit_admit, circuit_record

    policy = CircuitPolicy(failures_to_open=1, open_seconds=0 if circuit == "half_open" else 600)
    for _ in range(failures):
        call_record(schema, key, policy, circuit_ok=True, probe=False, error="HTTP 503")
    for _ in range(calls - failures):
        call_record(schema, key, policy, circuit_ok=True, probe=False)
    circuit_record(schema, key, policy, ok=False, probe=False)
    if circuit == "half_open":
        circuit_admit(schema, key, policy)  # the open period is over: this call is the probe


def _client(world, role="tenant_admin", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _errors(body: str, field_id: str) -> str:
    """The error list the page shows under one input (empty when it has none)."""
    match = re.search(rf'<ul class="field__errors" id="{re.escape(field_id)}_errors"[^>]*>(.*?)</ul>', body, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip() if match else ""


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def _form(**fields: str) -> dict[str, str]:
    """What the form posts for a TMS with an API key, changed by `fields`."""
    return {
        "name": "Acme TMS",
        "key": "acme-tms",
        "kind": "tms",
        "transport": "https",
        "base_url": "https://tms.example.com/api",
        "health_path": "/",
        "health_method": "GET",
        "connect_timeout": "5",
        "read_timeout": "30",
        "settings": "",
        "auth_method": "api_key",
        "api_key_header": "X-Api-Key",
        "api_key": API_KEY,
        "oauth2_client_auth": "basic",
        "hmac_algorithm": "sha256",
    } | fields


def _stored(world, key: str) -> Connection:
    with schema_context(world.acme.schema):
        return Connection.objects.get(key=key)


@in_db
def test_the_empty_list_says_what_to_do_and_who_can(world):
    admin = _text(_client(world).get("/connections/"))
    assert "No connections yet" in admin and "Add a connection" in admin
    dispatcher = _text(_client(world, "dispatcher").get("/connections/"))
    assert "Tenant admins and planners add the systems Baton talks to" in dispatcher
    assert "/connections/new/" not in dispatcher
    assert 'href="/connections/" aria-current="page">Connections' in admin  # the workspace nav


@in_db
def test_the_list_shows_health_or_no_calls_yet_and_filters(world):
    with schema_context(world.acme.schema):
        admin = world.acme.users["tenant_admin"]
        quiet = connection_create(data=connection_input("acme-quiet", "https://quiet.example.com"), actor=admin)
        busy = connection_create(data=connection_input("acme-busy", "https://busy.example.com", kind="carrier"), actor=admin)
        calls_recorded(world.acme.schema, busy.key, calls=200, failures=9, circuit="open")
    body = _text(_client(world, "finance").get("/connections/"))
    assert quiet.name in body and busy.name in body
    assert "No calls yet" in body and "Not tested" in body
    assert "Circuit open" in body and "4.5% of 200 calls failed" in body and "Last success: 0 minutes ago" in body
    carriers = _text(_client(world).get("/connections/?kind=carrier"))
    assert busy.name in carriers and quiet.name not in carriers
    searched = _text(_client(world).get("/connections/?q=quiet"))
    assert quiet.name in searched and busy.name not in searched
    nothing = _text(_client(world).get("/connections/?q=nothing-like-this"))
    assert "No connections match" in nothing


@in_db
def test_customers_and_strangers_cannot_open_the_pages(world):
    customer = _client(world, "customer")
    assert customer.get("/connections/").status_code == 403
    assert customer.get("/connections/new/").status_code == 403
    assert host_client(world.acme.host).get("/connections/")["Location"].startswith("/accounts/login/")
    assert _client(world, "dispatcher").get("/connections/new/").status_code == 403
    assert _client(world, "dispatcher").post("/connections/new/?kind=tms", _form()).status_code == 403


@in_db
def test_new_asks_for_the_kind_then_starts_with_its_defaults(world):
    client = _client(world, "planner")
    chooser = _text(client.get("/connections/new/"))
    assert "What do you want to connect?" in chooser and "/connections/new/?kind=edi_partner" in chooser
    erp = client.get("/connections/new/?kind=erp").content.decode()
    assert '<option value="oauth2_client_credentials" selected>' in erp
    edi = client.get("/connections/new/?kind=edi_partner").content.decode()
    assert '<option value="sftp" selected>' in edi and '<option value="basic" selected>' in edi
    assert "sftp://edi.partner.example:22" in edi


@in_db
def test_a_planner_creates_a_connection_and_its_secret_is_never_shown_back(world):
    client = _client(world, "planner")
    response = client.post("/connections/new/?kind=tms", _form())
    assert response.status_code == 302 and response["Location"] == "/connections/acme-tms/"
    stored = _stored(world, "acme-tms")
    assert stored.credential_masks == {"key": "••••" + API_KEY[-4:]} and stored.created_by_email == "planner@acme.test"
    page = client.get("/connections/acme-tms/")
    body = page.content.decode()
    assert API_KEY not in body and "••••" + API_KEY[-4:] in body
    assert re.search(r'<input type="password" name="api_key"(?![^>]*value=)[^>]*>', body)
    assert "Leave empty to keep it" in body
    assert "Acme TMS saved. Test it to see that Baton can reach it." in _text(page)


@in_db
def test_an_edit_with_the_secret_left_empty_keeps_it_and_problems_show_by_their_fields(world):
    client = _client(world)
    client.post("/connections/new/?kind=tms", _form())
    before = _stored(world, "acme-tms").credentials
    saved = client.post("/connections/acme-tms/", _form(api_key="", name="Acme TMS (prod)", key="ignored"))
    assert saved.status_code == 302
    after = _stored(world, "acme-tms")
    assert (after.name, after.credentials, after.key) == ("Acme TMS (prod)", before, "acme-tms")
    refused = client.post(
        "/connections/acme-tms/",
        _form(base_url="ftp://tms.example.com", auth_method="oauth2_client_credentials", oauth2_token_url="", oauth2_client_id=CLIENT_ID),
    )
    assert refused.status_code == 400
    body = refused.content.decode()
    assert _errors(body, "id_base_url") == "Must be a https:// or http:// address with a host, like the example."
    assert _errors(body, "id_oauth2_token_url") == "This field is required."
    assert _errors(body, "id_oauth2_client_secret") == "This field is required."
    assert _stored(world, "acme-tms").auth_method == "api_key"
    settings_refused = client.post("/connections/acme-tms/", _form(api_key="", settings='{"password": "x"}')).content.decode()
    assert _errors(settings_refused, "id_settings").startswith("“password” looks like a secret")
    with schema_context(world.acme.schema):
        update = AuditEvent.objects.get(action="connection.updated", target_type="connectors.connection")
    assert update.data == {"changed": ["name"], "secrets_changed": [], "secrets_removed": []}


@in_db
def test_other_staff_see_the_connection_but_cannot_change_or_test_it(world):
    _client(world).post("/connections/new/?kind=tms", _form())
    dispatcher = _client(world, "dispatcher")
    body = dispatcher.get("/connections/acme-tms/").content.decode()
    assert "Tenant admins and planners change these." in body and 'name="base_url"' not in body and "Test connection</button>" not in body
    assert "••••" + API_KEY[-4:] in body and API_KEY not in body
    for path in ("/connections/acme-tms/", "/connections/acme-tms/test/", "/connections/acme-tms/disable/"):
        assert dispatcher.post(path, _form(name="Hijacked")).status_code == 403
    stored = _stored(world, "acme-tms")
    assert (stored.name, stored.enabled, stored.last_test_at) == ("Acme TMS", True, None)
    assert dispatcher.get("/connections/nope/").status_code == 404


@in_db
def test_test_connection_shows_what_happened_and_disable_and_enable(world):
    client = _client(world, "planner")
    with fake_system() as partner:
        client.post("/connections/new/?kind=tms", _form(base_url=partner.url, health_path="/keyed"))
        tested = client.post("/connections/acme-tms/test/", follow=True)
    body = _text(tested)
    assert re.search(rf"Reached {re.escape(partner.url)}/keyed in \d+ ms: HTTP 200 OK", body)
    assert partner.requests[-1]["headers"]["X-Api-Key"] == API_KEY
    disabled = _text(client.post("/connections/acme-tms/disable/", {"reason": "migrating"}, follow=True))
    assert "Acme TMS is disabled" in disabled and "Enable connection" in disabled
    assert not _stored(world, "acme-tms").enabled
    assert "Disabled" in _text(client.get("/connections/?status=disabled"))
    client.post("/connections/acme-tms/enable/")
    assert _stored(world, "acme-tms").enabled


# --- in a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("connections-web") / "web.log") as port:
        yield port


@pytest.fixture
def browser_partner(world, committed) -> Iterator[FakeSystem]:
    """A fake ERP with a token endpoint; Globex's connections are removed afterwards (the browser's
    writes are committed)."""
    with fake_system() as partner:
        yield partner
    with schema_context(world.globex.schema):
        Connection.objects.all().delete()


def _without_toasts(page) -> None:
    """Close the toasts, which would hide what the screenshot is for."""
    for close in page.locator(".toast__close").all():
        close.click()
    page.add_style_tag(content=".toasts{display:none!important}")


@pytest.mark.browser
def test_a_planner_adds_an_oauth2_connection_in_the_browser_and_tests_it(world, live_port, browser_partner):
    base = f"http://globex.localhost:{live_port}"
    partner = browser_partner
    planner = world.globex.users["planner"]
    # Playwright's sync API runs an event loop in this thread: no database calls inside the blocks.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + "/connections/")
        empty = page.locator(".empty__title").inner_text()
        screenshot(page, "connections-empty")
        page.get_by_role("link", name="Add a connection").click()
        screenshot(page, "connection-kinds")
        page.get_by_role("link", name="ERP", exact=True).click()
        page.wait_for_load_state()
        basic_hidden = not page.locator("#id_basic_username").is_visible()
        page.fill("#id_name", "Globex ERP")
        page.fill("#id_key", "globex-erp")
        page.fill("#id_base_url", partner.url)
        page.fill("#id_health_path", "/protected")
        page.fill("#id_oauth2_token_url", partner.url + "/token")
        page.fill("#id_oauth2_client_id", CLIENT_ID)
        page.fill("#id_oauth2_client_secret", CLIENT_SECRET)
        screenshot(page, "connection-new")
        page.get_by_role("button", name="Save connection").click()
        page.wait_for_load_state()
        saved_at = page.url
        page.get_by_role("button", name="Test connection").click()
        page.wait_for_load_state()
        toast = page.locator(".toasts").inner_text()
        _without_toasts(page)
        result = page.locator("#test .alert").inner_text()
        detail = page.content()
        screenshot(page, "connection-detail")
        page.select_option("#id_auth_method", "basic")
        switched = page.locator("#id_basic_username").is_visible() and not page.locator("#id_oauth2_token_url").is_visible()
        browser.close()

    with schema_context(world.globex.schema):  # a connection that workflows have been calling
        busy = connection_create(data=connection_input("globex-carrier", "https://api.carrier.example.com", kind="carrier"), actor=planner)
        calls_recorded(world.globex.schema, busy.key, calls=1240, failures=31, circuit="half_open")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + "/connections/")
        listed = page.locator("table").inner_text()
        screenshot(page, "connections-list")
        browser.close()

    assert empty == "No connections yet"
    assert basic_hidden and switched
    assert saved_at.endswith("/connections/globex-erp/")
    assert re.fullmatch(rf"Reached {re.escape(partner.url)}/protected in \d+ ms: HTTP 200 OK", result), result
    assert result in toast
    assert CLIENT_SECRET not in detail and "••••" + CLIENT_SECRET[-4:] in detail
    assert "Globex ERP" in listed and "No calls yet" in listed and "Reached" in listed
    assert "Circuit half-open" in listed and "2.5% of 1240 calls failed" in listed
    assert [request["path"] for request in partner.requests] == ["/token", "/protected"]
    with schema_context(world.globex.schema):
        stored = Connection.objects.get(key="globex-erp")
        assert stored.last_test_ok and AuditEvent.objects.filter(action="connection.tested", target_id=str(stored.pk)).exists()
