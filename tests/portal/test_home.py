"""The workspace navigation (one grouped nav, each role seeing what it works in) and the operations
home page ("what needs me now": my approvals due, exceptions by priority, incidents, quarantined
inbox), whose counts link to the filtered lists; in a real browser at desktop and phone widths."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import expect, sync_playwright

from accounts.models import Role
from connectors.models import InboundEvent
from logistics.models import ExceptionCase
from logistics.services import exception_assign, exception_close, exception_open
from portal.home_selectors import operations_summary
from portal.navigation import navigation_for
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, signed_in_client
from tests.isolation.routes import inbound_event_quarantined, workflow_approval, workflow_incident
from tests.logistics.conftest import SYSTEM
from tests.processes import web_server
from workflows.models import Approval, Incident

ALL_STAFF_LINKS = {
    "Home": "/",
    "Shipments": "/shipments/",
    "Exceptions": "/exceptions/",
    "Approvals": "/workflows/approvals/",
    "Runs": "/workflows/runs/",
    "Incidents": "/workflows/incidents/",
    "Workflows": "/workflows/",
    "Connections": "/connections/",
    "Notifications": "/logistics/notifications/",
    "Status mappings": "/logistics/mappings/",
    "Outcomes": "/insights/outcomes/",
    "Settings": "/settings/users/",
}


def _client(world, role="tenant_admin"):
    return signed_in_client(world.acme.host, world.acme.users[role], world.acme.schema)


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def _nav(user, path="/"):
    return {group.label: [link.label for link in group.links] for group in navigation_for(user, path)}


def _bar(body: str) -> str:
    """The wide-screen navigation bar's markup."""
    return body[body.index('<nav class="main-nav workspace-nav"') : body.index("</nav>")]


# --- navigation ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_tenant_admin_sees_every_area_grouped(world):
    assert _nav(world.acme.users["tenant_admin"]) == {
        "Operate": ["Home", "Shipments", "Exceptions", "Approvals", "Runs", "Incidents"],
        "Build": ["Workflows", "Connections", "Notifications", "Status mappings"],
        "Measure": ["Outcomes"],
        "Settings": ["Settings"],
    }
    bar = _bar(_client(world).get("/").content.decode())
    for label, url in ALL_STAFF_LINKS.items():
        assert f'href="{url}"' in bar and f">{label}<" in bar, label
    assert '<summary class="nav-group__button">Operate' in bar and '<summary class="nav-group__button">Build' in bar


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        ("planner", {"Runs", "Workflows", "Connections", "Status mappings", "Outcomes"}, {"Settings"}),
        ("dispatcher", {"Exceptions", "Runs", "Incidents", "Status mappings"}, {"Workflows", "Connections", "Notifications", "Settings"}),
        ("customer_service", {"Exceptions", "Approvals", "Notifications"}, {"Runs", "Incidents", "Workflows", "Connections", "Settings"}),
        (
            "finance",
            {"Shipments", "Exceptions", "Approvals", "Outcomes"},
            {"Runs", "Incidents", "Workflows", "Status mappings", "Settings"},
        ),
    ],
)
def test_each_staff_role_sees_the_areas_it_works_in(world, role, shown, hidden):
    labels = {label for labels in _nav(world.acme.users[role]).values() for label in labels}
    assert shown <= labels and not hidden & labels, labels
    bar = _bar(_client(world, role).get("/").content.decode())
    for label in hidden:
        assert f">{label}<" not in bar, label


@pytest.mark.django_db
def test_a_customer_gets_the_portal_nav_only(world):
    assert _nav(world.acme.users["customer"]) == {"Operate": ["Shipments", "Notifications", "API keys"]}
    body = _client(world, "customer").get("/").content.decode()
    bar = _bar(body)
    assert 'href="/shipments/"' in bar and "nav-group__button" not in bar  # one group: its links in the bar, no menus
    assert 'href="/notifications/"' in bar and 'href="/account/api-keys/"' in bar
    for url in ("/exceptions/", "/workflows/", "/connections/", "/settings/users/", "/insights/outcomes/"):
        assert f'href="{url}"' not in body, url
    assert "What needs you now" not in body and "Follow your shipments" in body


@pytest.mark.django_db
def test_the_current_area_is_marked_by_the_longest_matching_path(world):
    admin = world.acme.users["tenant_admin"]

    def current(path):
        return [link.label for group in navigation_for(admin, path) for link in group.links if link.current]

    assert current("/") == ["Home"]
    assert current("/workflows/runs/12/") == ["Runs"]  # not Workflows
    assert current("/workflows/order-release/") == ["Workflows"]
    assert current("/connections/inbox/") == ["Connections"]
    assert current("/settings/api-keys/") == ["Settings"]
    assert current("/exceptions/") == ["Exceptions"]
    assert current("/accounts/password/change/") == []
    body = _client(world).get("/workflows/runs/").content.decode()
    assert '<a class="nav-group__link" href="/workflows/runs/" aria-current="page">Runs</a>' in body
    assert 'class="nav-group is-current"' in body and "(current: Runs)" in body
    assert '<a class="nav-drawer__link" href="/workflows/runs/" aria-current="page">Runs</a>' in body  # the phone menu too
    assert 'href="/workflows/" aria-current' not in body


@pytest.mark.django_db
def test_a_support_session_sees_what_a_tenant_admin_sees(world):
    class Support:
        is_authenticated = True
        role = Role.PLANNER
        support_grant_id = 7

    assert _nav(Support()) == _nav(world.acme.users["tenant_admin"])


@pytest.mark.django_db
def test_signed_out_people_get_no_navigation(world):
    class Anonymous:
        is_authenticated = False

    assert navigation_for(Anonymous(), "/") == []


# --- the operations home page -----------------------------------------------------------------------


def _clear_queues(schema):
    """Start from empty queues (rolled back with the test)."""
    with schema_context(schema):
        ExceptionCase.objects.all().delete()
        Approval.objects.all().delete()
        Incident.objects.all().delete()
        InboundEvent.objects.all().delete()


def _exceptions(world):
    """Two critical (one overdue and mine), a high one, a low one nobody owns, and a closed critical
    one that counts nowhere."""
    admin = world.acme.users["tenant_admin"]
    past = timezone.now() - timedelta(hours=2)
    with schema_context(world.acme.schema):
        overdue = exception_open(type="delay", reason="Late to Denver", severity="critical", sla_due_at=past, actor=SYSTEM).exception
        exception_assign(exception=overdue, owner=admin, actor=SYSTEM)
        exception_open(type="damage", reason="Crushed pallet", severity="critical", actor=SYSTEM)
        exception_open(type="shortage", reason="Two cartons short", severity="high", actor=SYSTEM)
        exception_open(type="other", reason="Label unreadable", severity="low", actor=SYSTEM)
        closed = exception_open(
            type="missed_delivery", reason="Refused at dock", severity="critical", sla_due_at=past, actor=SYSTEM
        ).exception
        exception_close(exception=closed, root_cause="consignee", actor=SYSTEM)


@pytest.mark.django_db
def test_the_home_page_counts_what_needs_me_and_links_to_the_filtered_lists(world):
    _clear_queues(world.acme.schema)
    _exceptions(world)
    _approval_id, approval_title = workflow_approval(world.acme)
    workflow_incident(world.acme)
    workflow_incident(world.acme)
    inbound_event_quarantined(world.acme)
    body = _client(world).get("/").content.decode()
    text = _text(_client(world).get("/"))
    assert "What needs you now" in text and "Welcome to" in text
    assert 'href="/exceptions/?severity=critical" aria-label="2 critical"' in body
    assert 'href="/exceptions/?severity=high" aria-label="1 high"' in body
    assert 'href="/exceptions/?severity=medium" aria-label="0 medium"' in body
    assert 'href="/exceptions/?severity=low" aria-label="1 low"' in body
    assert 'aria-label="4 open exceptions"' in body and 'href="/exceptions/?overdue=1" class="badge badge--danger">1 overdue' in body
    assert "Mine: 1" in text and "Nobody owns: 3" in text
    assert approval_title in text and 'aria-label="1 approval waiting for you"' in body
    assert 'href="/workflows/approvals/?tab=mine"' in body
    assert 'href="/workflows/incidents/" aria-label="2 open incidents"' in body
    assert 'href="/connections/inbox/?status=quarantined" aria-label="1 quarantined event"' in body
    assert "Nothing needs you" not in text


@pytest.mark.django_db
def test_the_counts_match_the_lists_they_link_to(world):
    _clear_queues(world.acme.schema)
    _exceptions(world)
    client = _client(world)
    for query, expected in (("?severity=critical", 2), ("?overdue=1", 1), ("?owner=me", 1), ("?owner=none", 3), ("", 4)):
        listed = client.get(f"/exceptions/{query}").content.decode()
        assert listed.count('<tr id="exception-') == expected, query


@pytest.mark.django_db
def test_an_empty_home_says_nothing_needs_you_and_what_to_do(world):
    _clear_queues(world.acme.schema)
    text = _text(_client(world).get("/"))
    assert text.count("Nothing needs you.") == 4
    assert "No approval waits for your role" in text and "No exception is open" in text
    assert "No run is stopped" in text and "Every event partners sent was read" in text


@pytest.mark.django_db
def test_approvals_due_are_those_of_my_role_soonest_first(world):
    _clear_queues(world.acme.schema)
    first_id, first = workflow_approval(world.acme)  # assigned to planners
    second_id, second = workflow_approval(world.acme)
    with schema_context(world.acme.schema):
        Approval.objects.filter(pk=int(first_id)).update(due_at=timezone.now() + timedelta(days=1))
        Approval.objects.filter(pk=int(second_id)).update(due_at=timezone.now() - timedelta(hours=1))
    planner = _text(_client(world, "planner").get("/"))
    assert planner.index(second) < planner.index(first)  # the overdue one first
    assert "2 waiting for you, 1 overdue" in planner
    finance = _text(_client(world, "finance").get("/"))
    assert first not in finance and "No approval waits for your role" in finance


@pytest.mark.django_db
def test_cards_follow_the_role(world):
    _clear_queues(world.acme.schema)
    dispatcher = _text(_client(world, "dispatcher").get("/"))
    assert "Incidents" in dispatcher and "Inbox quarantined" not in dispatcher
    finance = _text(_client(world, "finance").get("/"))
    assert "My approvals due" in finance and "Exceptions by priority" in finance
    assert "No run is stopped" not in finance and "Inbox quarantined" not in finance


@pytest.mark.django_db
def test_the_counts_take_four_queries_however_many_rows(world):
    _clear_queues(world.acme.schema)
    admin = world.acme.users["tenant_admin"]

    def queries():
        with schema_context(world.acme.schema), CaptureQueriesContext(db_connection) as captured:
            summary = operations_summary(user=admin, now=timezone.now())
        statements = [query["sql"] for query in captured.captured_queries if not query["sql"].startswith("SET search_path")]
        return len(statements), summary

    empty, _summary = queries()
    _exceptions(world)
    for _ in range(7):
        workflow_approval(world.acme)
    workflow_incident(world.acme)
    busy, summary = queries()
    assert empty <= 4 and busy == empty
    assert summary.approvals.total == 7 and len(summary.approvals.rows) == 5
    assert summary.exceptions.total == 4 and summary.incidents_open == 1


# --- in a browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("home-web") / "web.log") as port:
        yield port


@pytest.fixture
def committed_queues(world, committed):
    """Committed exceptions, an approval and an incident for the browser to see; removed afterwards."""
    _exceptions(world)
    workflow_approval(world.acme)
    workflow_incident(world.acme)
    yield
    _clear_queues(world.acme.schema)


@pytest.mark.browser
def test_home_and_navigation_in_a_browser(world, live_port, committed_queues):
    base = f"http://{world.acme.host}:{live_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["planner"].email, PASSWORD)
        page.goto(f"{base}/")
        expect(page.get_by_role("heading", name="What needs you now")).to_be_visible()
        screenshot(page, "portal-home")

        # Wide screen: the Build menu opens from the keyboard and closes with Escape.
        build = page.locator(".workspace-nav summary", has_text="Build")
        build.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("link", name="Status mappings")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("link", name="Status mappings")).to_be_hidden()

        # The critical count leads to the filtered exception list.
        page.get_by_role("link", name="2 critical").click()
        page.wait_for_load_state()
        assert page.url.endswith("/exceptions/?severity=critical")
        assert page.locator("tbody tr").count() == 2

        # Phone: one Menu disclosure, keyboard-operable, the current page marked.
        page.set_viewport_size({"width": 390, "height": 844})
        expect(page.locator(".workspace-nav")).to_be_hidden()
        menu = page.locator(".nav-drawer summary")
        menu.focus()
        page.keyboard.press("Enter")
        drawer = page.locator(".nav-drawer__panel")
        expect(drawer).to_be_visible()
        expect(drawer.get_by_role("link", name="Exceptions")).to_have_attribute("aria-current", "page")
        page.screenshot(path=str(_screens() / "portal-nav-open-phone.png"), full_page=False)
        drawer.get_by_role("link", name="Incidents").click()
        page.wait_for_load_state()
        assert page.url.endswith("/workflows/incidents/")
        browser.close()


def _screens():
    from tests.browser import SCREENS

    SCREENS.mkdir(parents=True, exist_ok=True)
    return SCREENS
