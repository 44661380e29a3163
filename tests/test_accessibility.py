"""WCAG 2.1 AA in a real browser: axe-core runs on each main page at desktop and phone widths and
finds no serious or critical violation; a keyboard alone reaches the content, opens and closes the
navigation menu, sees where focus is and searches shipments.

axe-core comes from npm (package.json pins it; `make install` puts it in node_modules/)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import expect, sync_playwright

from logistics.models import Location, Shipment, StopKind
from logistics.services import StopInput, exception_open, location_create, shipment_create
from tenants.db import connection
from tests.browser import CHROMIUM, CHROMIUM_ARGS, SCREENS, WIDTHS, screenshot, sign_in, totp_now
from tests.conftest import PASSWORD, TOTP_SECRET
from tests.logistics.conftest import SYSTEM
from tests.processes import web_server

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")


@dataclass(frozen=True)
class MainPage:
    name: str
    host: str  # "tenant" or "console"
    path: str  # may name {reference} or {tenant_id}
    account: str | None  # "staff", "customer", "msp" or None (signed out)


MAIN_PAGES = [
    MainPage("login", "tenant", "/accounts/login/", None),
    MainPage("console-login", "console", "/accounts/login/", None),
    MainPage("operations-home", "tenant", "/", "staff"),
    MainPage("shipments-staff", "tenant", "/shipments/", "staff"),
    MainPage("exceptions", "tenant", "/exceptions/", "staff"),
    MainPage("approvals", "tenant", "/workflows/approvals/", "staff"),
    MainPage("runs", "tenant", "/workflows/runs/", "staff"),
    MainPage("workflows", "tenant", "/workflows/", "staff"),
    MainPage("connections", "tenant", "/connections/", "staff"),
    MainPage("users", "tenant", "/settings/users/", "staff"),
    MainPage("api-keys", "tenant", "/settings/api-keys/", "staff"),
    MainPage("notifications", "tenant", "/logistics/notifications/", "staff"),
    MainPage("insights-outcomes", "tenant", "/insights/outcomes/", "staff"),
    MainPage("portal-home", "tenant", "/", "customer"),
    MainPage("shipments-customer", "tenant", "/shipments/", "customer"),
    MainPage("shipment-customer", "tenant", "/shipments/{reference}/", "customer"),
    MainPage("console-tenants", "console", "/tenants/", "msp"),
    MainPage("console-tenant", "console", "/tenants/{tenant_id}/", "msp"),
]


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("a11y-web") / "web.log") as port:
        yield port


@pytest.fixture(scope="module")
def shipment_reference(world, django_db_blocker):
    """One committed shipment of the customer's account with an open exception, so the lists
    and the detail page show rows, badges and links rather than only their empty states."""
    tag = uuid.uuid4().hex[:5].upper()
    with django_db_blocker.unblock(), schema_context(world.acme.schema):
        origin = location_create(
            code=f"a11y-chi-{tag.lower()}", name="Chicago DC", time_zone="America/Chicago", city="Chicago", actor=SYSTEM
        )
        destination = location_create(
            code=f"a11y-den-{tag.lower()}", name="Denver store", time_zone="America/Denver", city="Denver", actor=SYSTEM
        )
        shipment = shipment_create(
            customer_account=world.acme.customer_accounts[0],
            reference=f"A11Y-{tag}",
            carrier_scac="ODFL",
            po_number=f"PO-A11Y-{tag}",
            stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)],
            actor=SYSTEM,
        )
        exception_open(type="delay", reason="Trailer late at the dock", shipment=shipment, actor=SYSTEM)
    connection.set_schema_to_public()
    yield shipment.reference
    with django_db_blocker.unblock(), schema_context(world.acme.schema):
        Shipment.objects.filter(reference=shipment.reference).delete()
        Location.objects.filter(code__endswith=tag.lower()).delete()
    connection.set_schema_to_public()


@pytest.fixture(scope="module")
def browser(shipment_reference):
    """Started after the data is committed (Django refuses queries under Playwright's loop)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def sessions(world, live_port, browser):
    """Signed-in browser state per account, made once: a TOTP code is good only once."""
    hosts = {"tenant": f"http://{world.acme.host}:{live_port}", "console": f"http://localhost:{live_port}"}
    accounts = {
        "staff": ("tenant", world.acme.users["tenant_admin"].email),
        "customer": ("tenant", world.acme.users["customer"].email),
        "msp": ("console", world.msp["msp_admin"].email),
    }
    made: dict[str, dict] = {}

    def state(account: str | None) -> dict | None:
        if account is None:
            return None
        if account not in made:
            host, email = accounts[account]
            context = browser.new_context()
            page = context.new_page()
            _sign_in(page, hosts[host], email)
            made[account] = context.storage_state()
            context.close()
        return made[account]

    return hosts, state


def _sign_in(page, base: str, email: str) -> None:
    sign_in(page, base, email, PASSWORD, totp_secret=TOTP_SECRET)
    if "/2fa/authenticate" in page.url:
        # This code was spent by an earlier sign-in in the same 30 s window: use the next one.
        time.sleep(30 - time.time() % 30 + 1)
        page.fill("input[name=code]", totp_now(TOTP_SECRET))
        page.click("form button[type=submit]")
        page.wait_for_load_state()
    assert "/accounts/" not in page.url, f"{email} did not get in: {page.url}"


def _axe_violations(page) -> list[dict]:
    if not AXE.exists():
        pytest.fail(f"axe-core is missing ({AXE}): run `make install` (needs npm)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})
            .then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(" ")), summary: v.nodes[0] && v.nodes[0].failureSummary})))""",
        WCAG_TAGS,
    )
    return [violation for violation in result if violation["impact"] in BLOCKING]


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("main_page", MAIN_PAGES, ids=lambda p: p.name)
def test_main_pages_have_no_serious_or_critical_wcag_violation(world, sessions, browser, shipment_reference, main_page, width):
    hosts, state = sessions
    path = main_page.path.format(reference=shipment_reference, tenant_id=world.acme.tenant.pk)
    # bypass_csp: a Content-Security-Policy added later must not stop the injected axe script.
    context = browser.new_context(viewport={"width": WIDTHS[width], "height": 900}, storage_state=state(main_page.account), bypass_csp=True)
    page = context.new_page()
    response = page.goto(hosts[main_page.host] + path)
    page.wait_for_load_state("networkidle")
    assert response is not None and response.status == 200, f"{main_page.name}: HTTP {response and response.status} at {page.url}"
    assert "/accounts/login/" not in page.url or main_page.account is None, f"{main_page.name}: not signed in"

    violations = _axe_violations(page)
    context.close()
    report = "\n".join(
        f"  [{v['impact']}] {v['id']}: {v['help']}\n    {v['summary']}\n    at " + "\n    at ".join(v["targets"][:8]) for v in violations
    )
    assert not violations, f"{main_page.name} ({path}) at {WIDTHS[width]}px:\n{report}"


def _focus(page) -> dict:
    """What has focus, whether it shows it (outline or ring), and whether it is on screen."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            const box = el.getBoundingClientRect();
            const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
            return {tag: el.tagName.toLowerCase(), id: el.id, cls: el.className, text: (el.innerText || el.value || "").trim().slice(0, 40),
                    href: el.getAttribute("href"), shown: outline || style.boxShadow !== "none",
                    onscreen: box.width > 0 && box.height > 0 && box.bottom > 0 && box.right > 0 && box.top < innerHeight && box.left < innerWidth};
        }"""
    )


def _tab_to(page, selector: str, limit: int = 80) -> list[dict]:
    """Press Tab until `selector` has focus; returns every stop on the way (it included)."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        stops.append(_focus(page))
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return stops
    raise AssertionError(f"Tab never reached {selector}; stops: {[(s['tag'], s['text']) for s in stops]}")


def _unshown(stops: list[dict]) -> list[dict]:
    return [s for s in stops if s["tag"] in ("a", "button", "summary", "input", "select", "textarea") and not s["shown"]]


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_keyboard_alone_skips_to_content_opens_the_menu_and_searches_shipments(world, sessions, browser, shipment_reference, width):
    hosts, state = sessions
    context = browser.new_context(viewport={"width": WIDTHS[width], "height": 900}, storage_state=state("staff"))
    page = context.new_page()
    page.goto(hosts["tenant"] + "/shipments/")
    page.wait_for_load_state("networkidle")

    # First Tab: the skip link, on screen; Enter moves focus to the main content.
    page.keyboard.press("Tab")
    first = _focus(page)
    assert "skip-link" in first["cls"] and first["href"] == "#main", first
    assert first["shown"], first
    expect(page.locator(".skip-link")).to_be_in_viewport()  # it slides in
    if width == "desktop":
        screenshot(page, "a11y-skip-link")  # both widths: focus stays on the link while the page narrows
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # The menu: a bar of groups on wide screens, one Menu button on phones. Enter and Space open
    # it, Escape closes it and gives focus back to its button.
    page.reload()
    page.wait_for_load_state("networkidle")
    menu = ".nav-drawer" if width == "phone" else ".workspace-nav details.nav-group"
    stops = _tab_to(page, f"{menu} > summary")
    details = page.locator(menu).first
    assert page.locator(f"{menu} > summary").first.is_visible()
    page.keyboard.press("Enter")
    expect(details).to_have_attribute("open", "")
    link = details.locator("a").first
    expect(link).to_be_visible()
    SCREENS.mkdir(parents=True, exist_ok=True)  # at this width only: each width has its own menu
    page.screenshot(path=str(SCREENS / f"a11y-menu-open-{width}.png"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "A", "Tab from the open menu's button goes into the menu"
    stops.append(_focus(page))
    page.keyboard.press("Escape")
    expect(details).not_to_have_attribute("open", "")
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press(" ")
    expect(details).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(details).not_to_have_attribute("open", "")

    # The shipment search, filled and sent with keys only.
    stops += _tab_to(page, "#shipments-q")
    page.keyboard.type(shipment_reference)
    page.keyboard.press("Enter")
    rows = page.locator("#shipment-results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(shipment_reference)
    expect(page).to_have_url(re.compile(rf"[?&]q={shipment_reference}"))  # the search is a link to share
    page.keyboard.press("Tab")  # the Search button
    stops.append(_focus(page))
    assert stops[-1]["tag"] == "button", stops[-1]

    # Every link, button and field on the way showed where focus was.
    assert not _unshown(stops), _unshown(stops)
    context.close()


def test_focus_is_visible_on_every_link_and_button_of_the_operations_home(world, sessions, browser, shipment_reference):
    hosts, state = sessions
    context = browser.new_context(viewport={"width": 1366, "height": 900}, storage_state=state("staff"))
    page = context.new_page()
    page.goto(hosts["tenant"] + "/")
    page.wait_for_load_state("networkidle")
    stops = []
    for _ in range(120):
        page.keyboard.press("Tab")
        stop = _focus(page)
        if stop["tag"] == "body" or (stops and stop == stops[0]):
            break
        stops.append(stop)
    assert len(stops) > 10, stops
    assert not _unshown(stops), _unshown(stops)
    context.close()
