"""The exception queue at /exceptions/: most severe first then due soonest, filters the home page
links to, search by shipment reference, "Assign to me" and "Close" with the root cause (audited),
refusals that say why; customers and other tenants see nothing; in a real browser."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import expect, sync_playwright

from governance.models import AuditEvent
from logistics.models import ExceptionCase, ExceptionStatus
from logistics.services import exception_assign, exception_close, exception_open
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, signed_in_client
from tests.logistics.conftest import SYSTEM, make_shipment
from tests.processes import web_server


def _client(world, role="tenant_admin", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def _listed(response) -> list[int]:
    assert response.status_code == 200, response.content[:300]
    return [int(found) for found in re.findall(r'<tr id="exception-(\d+)">', response.content.decode())]


def _open(acme, **fields):
    fields.setdefault("reason", "Something went wrong")
    return exception_open(actor=SYSTEM, **fields).exception


@pytest.fixture
def queue(acme, places):
    """Five cases: a critical one due later, a critical one due sooner (overdue, on a shipment),
    a high one, a low one due first of all, and a closed critical one."""
    now = timezone.now()
    ExceptionCase.objects.all().delete()
    shipment = make_shipment(acme, places, "SHP-77001", bol_number="BOL 9931")
    cases = {
        "critical_later": _open(acme, type="damage", severity="critical", sla_due_at=now + timedelta(hours=5), reason="Crushed pallet"),
        "critical_overdue": _open(
            acme, type="delay", severity="critical", sla_due_at=now - timedelta(hours=1), shipment=shipment, reason="Late to Denver"
        ),
        "high": _open(acme, type="shortage", severity="high", sla_due_at=now + timedelta(hours=1), reason="Two cartons short"),
        "low": _open(acme, type="other", severity="low", sla_due_at=now - timedelta(hours=3), reason="Label unreadable"),
        "closed": _open(acme, type="missed_pickup", severity="critical", reason="No truck came"),
    }
    exception_close(exception=cases["closed"], root_cause="carrier", actor=SYSTEM)
    return cases


@pytest.mark.django_db
def test_the_queue_lists_the_most_severe_first_then_the_soonest_due(world, queue):
    listed = _listed(_client(world).get("/exceptions/"))
    assert listed == [queue[name].pk for name in ("critical_overdue", "critical_later", "high", "low")]
    text = _text(_client(world).get("/exceptions/"))
    assert "Late to Denver" in text and "No truck came" not in text  # closed ones are not to handle
    assert text.count("Overdue") >= 2  # the overdue critical and the overdue low one (and the filter's label)


@pytest.mark.django_db
def test_each_row_links_to_its_shipment_by_reference(world, queue):
    body = _client(world).get("/exceptions/").content.decode()
    assert '<a href="/shipments/SHP-77001/">SHP-77001</a>' in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?severity=critical", ["critical_overdue", "critical_later"]),
        ("?type=shortage", ["high"]),
        ("?overdue=1", ["critical_overdue", "low"]),
        ("?status=closed", ["closed"]),
        ("?status=closed&overdue=1", []),  # a closed case is never overdue
        ("?q=shp-77001", ["critical_overdue"]),  # the shipment's reference, any case
        ("?q=BOL9931", ["critical_overdue"]),  # any of its references, as stored
        ("?q=cartons", ["high"]),  # words of the reason
        ("?severity=urgent", ["critical_overdue", "critical_later", "high", "low"]),  # not a choice: ignored
    ],
)
@pytest.mark.django_db
def test_filters_narrow_the_queue(world, queue, query, expected):
    assert _listed(_client(world).get(f"/exceptions/{query}")) == [queue[name].pk for name in expected]


@pytest.mark.django_db
def test_owner_filters_mine_and_nobody(world, queue, acme):
    planner = world.acme.users["planner"]
    exception_assign(exception=queue["high"], owner=planner, actor=SYSTEM)
    assert _listed(_client(world, "planner").get("/exceptions/?owner=me")) == [queue["high"].pk]
    assert queue["high"].pk not in _listed(_client(world, "planner").get("/exceptions/?owner=none"))
    assert _listed(_client(world, "dispatcher").get("/exceptions/?owner=me")) == []


@pytest.mark.django_db
def test_an_empty_queue_and_an_empty_filter_say_what_to_do(world, acme):
    ExceptionCase.objects.all().delete()
    text = _text(_client(world).get("/exceptions/"))
    assert "Nothing needs you" in text and "Workflows open them when a shipment is late" in text
    filtered = _text(_client(world).get("/exceptions/?severity=high"))
    assert "No exception matches" in filtered and "Clear them to see every exception still to handle" in filtered


@pytest.mark.django_db
def test_the_queue_pages_through_many_cases(world, acme):
    ExceptionCase.objects.all().delete()
    for number in range(30):
        _open(acme, type="other", severity="medium", reason=f"case {number}")
    client = _client(world)
    assert len(_listed(client.get("/exceptions/"))) == 25
    second = client.get("/exceptions/?page=2")
    assert len(_listed(second)) == 5 and "26–30 of 30" in _text(second)


@pytest.mark.django_db
def test_assign_to_me_takes_the_case_keeps_the_filters_and_is_audited(world, queue, acme):
    dispatcher = world.acme.users["dispatcher"]
    case = queue["high"]
    client = _client(world, "dispatcher")
    response = client.post(f"/exceptions/{case.pk}/assign-to-me/", {"keep_severity": "high", "keep_q": "cartons"})
    assert response.status_code == 302
    assert response["Location"] == f"/exceptions/?q=cartons&severity=high#exception-{case.pk}"
    case.refresh_from_db()
    assert case.owner_id == dispatcher.pk and case.status == ExceptionStatus.IN_PROGRESS
    event = AuditEvent.objects.filter(action="exception.assigned", target_id=str(case.pk)).latest("id")
    assert event.actor_email == dispatcher.email and event.data == {"from": "", "to": dispatcher.email}
    page = _text(client.get(response["Location"]))
    assert f"Exception #{case.pk} is yours now" in page and "You" in page


@pytest.mark.django_db
def test_closing_needs_the_root_cause(world, queue, acme):
    case = queue["critical_later"]
    response = _client(world).post(f"/exceptions/{case.pk}/close/", {"root_cause": "", "resolution": "Re-delivered"}, follow=True)
    assert f"Exception #{case.pk} is still open: choose its root cause to close it" in _text(response)
    case.refresh_from_db()
    assert case.status == ExceptionStatus.OPEN and not AuditEvent.objects.filter(action="exception.closed", target_id=str(case.pk)).exists()
    bogus = _client(world).post(f"/exceptions/{case.pk}/close/", {"root_cause": "gremlins"}, follow=True)
    assert "still open" in _text(bogus)


@pytest.mark.django_db
def test_closing_with_the_root_cause_closes_and_audits(world, queue, acme):
    case = queue["critical_later"]
    response = _client(world, "customer_service").post(
        f"/exceptions/{case.pk}/close/", {"root_cause": "equipment", "resolution": "Replaced the pallet"}, follow=True
    )
    assert f"Exception #{case.pk} closed: equipment." in _text(response)
    case.refresh_from_db()
    assert case.status == ExceptionStatus.CLOSED and case.root_cause == "equipment" and case.resolution == "Replaced the pallet"
    event = AuditEvent.objects.filter(action="exception.closed", target_id=str(case.pk)).latest("id")
    assert event.actor_email == world.acme.users["customer_service"].email and event.data["root_cause"] == "equipment"
    assert case.pk not in _listed(_client(world).get("/exceptions/"))


@pytest.mark.django_db
def test_a_closed_case_is_refused_with_the_reason(world, queue, acme):
    case = queue["closed"]
    for path, body in ((f"/exceptions/{case.pk}/assign-to-me/", {}), (f"/exceptions/{case.pk}/close/", {"root_cause": "carrier"})):
        response = _client(world).post(path, body, follow=True)
        assert f"Exception {case.pk} is closed; open a new one if the problem is back." in _text(response), path
    case.refresh_from_db()
    assert case.owner_id is None and case.root_cause == "carrier"


@pytest.mark.django_db
def test_closed_cases_offer_no_actions(world, queue):
    body = _client(world).get("/exceptions/?status=closed").content.decode()
    assert _listed_row(body, queue["closed"].pk) and "Assign to me" not in body and "Close…" not in body


def _listed_row(body: str, pk: int) -> bool:
    return f'<tr id="exception-{pk}">' in body


@pytest.mark.django_db
def test_customers_and_signed_out_people_are_kept_out(world, queue):
    case = queue["high"]
    customer = _client(world, "customer")
    assert customer.get("/exceptions/").status_code == 403
    assert customer.post(f"/exceptions/{case.pk}/assign-to-me/").status_code == 403
    assert customer.post(f"/exceptions/{case.pk}/close/", {"root_cause": "carrier"}).status_code == 403
    anonymous = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    anonymous.logout()
    response = anonymous.get("/exceptions/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_an_unknown_case_is_404_and_get_is_not_allowed(world, queue):
    client = _client(world)
    assert client.post("/exceptions/999999/assign-to-me/").status_code == 404
    assert client.post("/exceptions/999999/close/", {"root_cause": "carrier"}).status_code == 404
    assert client.get(f"/exceptions/{queue['high'].pk}/assign-to-me/").status_code == 405


# --- in a browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("exceptions-web") / "web.log") as port:
        yield port


@pytest.fixture
def committed_cases(world, committed):
    """Committed cases the browser sees (one on a committed shipment), removed afterwards."""
    from logistics.models import Location, Shipment, StopKind
    from logistics.services import StopInput, location_create, shipment_create

    now = timezone.now()
    with schema_context(world.acme.schema):
        ExceptionCase.objects.all().delete()
        origin = Location.objects.filter(code="p2-origin").first() or location_create(code="p2-origin", name="Chicago DC", actor=SYSTEM)
        destination = Location.objects.filter(code="p2-dest").first() or location_create(code="p2-dest", name="Denver store", actor=SYSTEM)
        shipment = Shipment.objects.filter(reference="P2-SHP-1").first() or shipment_create(
            customer_account=world.acme.customer_accounts[0],
            reference="P2-SHP-1",
            carrier_scac="ODFL",
            stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)],
            actor=SYSTEM,
        )
        overdue = now - timedelta(hours=2)
        _open(None, type="delay", severity="critical", shipment=shipment, sla_due_at=overdue, reason="Late to Denver: ETA moved 6 hours")
        _open(None, type="damage", severity="high", reason="Crushed pallet reported at delivery", sla_due_at=now + timedelta(hours=3))
        _open(None, type="invoice_mismatch", severity="medium", reason="Fuel surcharge 14% over the rate confirmation")
        _open(None, type="other", severity="low", reason="Label unreadable at cross-dock")
    yield
    with schema_context(world.acme.schema):
        ExceptionCase.objects.all().delete()


@pytest.mark.browser
def test_the_exception_queue_in_a_browser(world, live_port, committed_cases):
    base = f"http://{world.acme.host}:{live_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["dispatcher"].email, PASSWORD)
        page.goto(f"{base}/exceptions/")
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(4)
        assert "Late to Denver" in rows.first.inner_text()
        screenshot(page, "logistics-exceptions")

        # Take the critical one, then close it with its root cause.
        rows.first.get_by_role("button", name="Assign to me").click()
        page.wait_for_load_state()
        expect(page.locator(".toast").first).to_contain_text("is yours now")
        page.add_style_tag(content=".toasts{display:none!important}")
        first = page.locator("tbody tr").first
        expect(first).to_contain_text("In progress")
        first.locator("summary", has_text="Close").click()
        first.get_by_label("Root cause").select_option("carrier")
        screenshot(page, "logistics-exceptions-close")
        first.get_by_role("button", name=re.compile(r"^Close #")).click()
        page.wait_for_load_state()
        expect(page.locator("tbody tr")).to_have_count(3)

        page.goto(f"{base}/exceptions/?severity=high&overdue=1")
        expect(page.get_by_text("No exception matches")).to_be_visible()
        screenshot(page, "logistics-exceptions-empty-filter")
        browser.close()
