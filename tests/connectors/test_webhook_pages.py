"""The customer webhooks pages: the endpoints list (customer, event types, status with the reason,
failing since, last result, pending and failed counts; filters), a new endpoint whose signing
secret is shown exactly once, an endpoint's page (masks, rotation, enable and disable, event
types) and its delivery log (keyset pages, filters, replay one, replay all failed shown), who may
do what. And the whole path in a browser: create, see a delivery fail, replay it to a receiver."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from connectors.deliveries import delivery_attempt, webhook_endpoint_create, webhook_publish
from connectors.models import WebhookDelivery, WebhookEndpoint
from connectors.signatures import STANDARD_WEBHOOKS
from governance.models import AuditEvent
from governance.services import Actor
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, signed_in_client
from tests.fake_partner import fake_partner
from tests.processes import web_server

in_db = pytest.mark.django_db  # not the browser test: its writes must be committed for the web server

OWNER = Actor(email="ops@acme.test", kind="user")
RECEIVER = "http://127.0.0.1:9/hooks"  # loopback is allowed in tests; nothing listens: attempts fail at once


def _client(world, role="tenant_admin", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _text(response) -> str:
    """The page's words, tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


def _endpoint(url: str = RECEIVER, types: list[str] | None = None, customer: int | None = None, description: str = "") -> WebhookEndpoint:
    endpoint, _secret = webhook_endpoint_create(
        url=url, event_types=types or ["shipment.*"], actor=OWNER, customer_account_id=customer, description=description
    )
    return endpoint


def _delivery(endpoint: WebhookEndpoint, event_id: str, status: str = "pending", event_type: str = "shipment.milestone", **fields):
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_type=event_type,
        event_id=event_id,
        payload={"pro": event_id},
        webhook_id=f"msg_{endpoint.pk}_{event_id}",
        status=status,
        created_at=timezone.now(),
        next_attempt_at=timezone.now() if status == "pending" else None,
        **fields,
    )


# --- the list ---------------------------------------------------------------------------------------


@in_db
def test_the_empty_list_says_what_to_do_and_who_can(world):
    editor = _client(world, "planner").get("/connections/webhooks/")
    text = _text(editor)
    assert "No webhook endpoints yet" in text and "Add an endpoint" in text
    assert 'href="/connections/webhooks/" aria-current="page">Webhooks</a>' in editor.content.decode()
    reader = _text(_client(world, "dispatcher").get("/connections/webhooks/"))
    assert "Tenant admins and planners add the endpoints Baton sends events to." in reader and "Add an endpoint" not in reader


@in_db
def test_the_list_shows_customer_types_status_last_result_and_counts_and_filters(world):
    account = world.acme.customer_accounts[0]
    with schema_context(world.acme.schema):
        own = _endpoint(types=["*"], description="Our data lake")
        customers = _endpoint("http://127.0.0.1:9/customer", ["shipment.*", "invoice.created"], customer=account.pk)
        _delivery(customers, "evt-1", "delivered", attempts=1, last_status_code=200, delivered_at=timezone.now())
        _delivery(customers, "evt-2", "failed", attempts=8, last_status_code=503, last_error="HTTP 503")
        _delivery(customers, "evt-3", "pending")
        _delivery(customers, "evt-4", "pending")
        WebhookEndpoint.objects.filter(pk=customers.pk).update(failing_since=timezone.now() - timedelta(hours=3))
        WebhookEndpoint.objects.filter(pk=own.pk).update(
            enabled=False, disabled_at=timezone.now(), disabled_reason="every delivery failed since 2025-01-01 00:00 UTC"
        )
    client = _client(world, "customer_service")  # any staff member reads
    page = client.get("/connections/webhooks/")
    rows = re.findall(r"<tr>(.*?)</tr>", page.content.decode().split("<tbody>")[1], re.S)
    assert len(rows) == 2
    customer_row = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", rows[0])))
    assert "http://127.0.0.1:9/customer" in customer_row and account.name in customer_row
    assert "invoice.created shipment.*" in customer_row and "Failing" in customer_row and "failing since 3" in customer_row
    assert "Failed HTTP 503" in customer_row  # the newest attempted delivery
    assert re.search(r'data-label="Pending" class="num"><a href="[^"]+\?status=pending">2</a>', rows[0])
    assert re.search(r'data-label="Failed" class="num"><a class="badge badge--danger" href="[^"]+\?status=failed">1</a>', rows[0])
    own_row = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", rows[1])))
    assert "This workspace" in own_row and "Disabled" in own_row and "every delivery failed since 2025-01-01" in own_row
    assert "Nothing sent yet" in own_row and "Our data lake" in own_row

    assert "/customer" not in _text(client.get("/connections/webhooks/?customer=workspace"))
    assert "Our data lake" not in _text(client.get(f"/connections/webhooks/?customer={account.pk}"))
    assert "/customer" not in _text(client.get("/connections/webhooks/?status=disabled"))
    assert "Our data lake" not in _text(client.get("/connections/webhooks/?status=failing"))
    nothing = _text(client.get("/connections/webhooks/?q=nowhere"))
    assert "No endpoints match" in nothing and "clear the filters" in nothing


# --- a new endpoint -----------------------------------------------------------------------------------


@in_db
def test_a_planner_creates_an_endpoint_and_its_secret_is_shown_exactly_once(world):
    account = world.acme.customer_accounts[1]
    client = _client(world, "planner")
    form = client.get("/connections/webhooks/new/")
    assert "This workspace (no customer)" in _text(form) and account.name in _text(form)
    answer = client.post(
        "/connections/webhooks/new/",
        {"url": RECEIVER, "customer_account": account.pk, "event_types": "shipment.*\ninvoice.created, shipment.*", "description": "ERP"},
    )
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    secret = re.search(r'<textarea id="new-secret"[^>]*>(whsec_[A-Za-z0-9+/=]+)</textarea>', answer.content.decode())
    assert secret, "the new secret is shown in the answer"
    assert "This is the only time it is shown" in _text(answer)
    with schema_context(world.acme.schema):
        endpoint = WebhookEndpoint.objects.get()
        assert (endpoint.customer_account_id, endpoint.event_types) == (account.pk, ["invoice.created", "shipment.*"])
        assert endpoint.created_by_email == "planner@acme.test"
        audit = AuditEvent.objects.get(action="webhook_endpoint.created")
        assert secret.group(1) not in json.dumps(audit.data)
    later = client.get(f"/connections/webhooks/{endpoint.pk}/")
    assert secret.group(1) not in later.content.decode() and 'id="new-secret"' not in later.content.decode()
    assert "••••" + secret.group(1)[-4:] in _text(later) and "No deliveries yet" in _text(later)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": "ftp://files.example.com", "event_types": "*"}, "url", "The URL must start with https://"),
        ({"url": RECEIVER, "event_types": " , \n"}, "event_types", "Subscribe to at least one event type, or write * for every event."),
        ({"url": RECEIVER, "event_types": "shipment milestone"}, "event_types", "“shipment milestone” is not an event type"),
        ({"url": "", "event_types": "*"}, "url", "This field is required."),
    ],
)
@in_db
def test_new_endpoint_problems_show_by_their_fields_and_save_nothing(world, fields, field, message):
    answer = _client(world).post("/connections/webhooks/new/", fields)
    assert answer.status_code == 400
    errors = re.search(rf'<ul class="field__errors" id="id_{field}_errors"[^>]*>(.*?)</ul>', answer.content.decode(), re.S)
    assert errors and message in html.unescape(errors.group(1)), answer.content.decode()[:3000]
    assert 'id="new-secret"' not in answer.content.decode()
    with schema_context(world.acme.schema):
        assert not WebhookEndpoint.objects.exists()


# --- an endpoint's page ----------------------------------------------------------------------------------


@in_db
def test_the_delivery_log_shows_each_attempt_newest_first_in_keyset_pages_with_filters(world):
    with schema_context(world.acme.schema):
        endpoint = _endpoint(types=["*"])
        failed = _delivery(
            endpoint,
            "evt-failed",
            "failed",
            attempts=8,
            last_status_code=500,
            last_error="HTTP 500",
            last_response='{"title": "<b>down</b>"}',
        )
        retrying = _delivery(endpoint, "evt-retrying", "pending", attempts=2, last_error="ConnectionError: refused")
        WebhookDelivery.objects.filter(pk=retrying.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=30))
        delivered = _delivery(
            endpoint, "evt-ok", "delivered", event_type="invoice.created", attempts=1, last_status_code=204, delivered_at=timezone.now()
        )
        for index in range(26):
            _delivery(endpoint, f"evt-bulk-{index}", "delivered", attempts=1, last_status_code=200, delivered_at=timezone.now())
    client = _client(world, "dispatcher")
    first = client.get(f"/connections/webhooks/{endpoint.pk}/")
    text = _text(first)
    assert "All 29" in text and "Pending 1" in text and "Delivered 27" in text and "Failed 1" in text
    assert "evt-bulk-25" in text and "evt-failed" not in text  # newest first, 25 a page
    older = re.search(r'href="\?before=(\d+)"', first.content.decode())
    assert older
    second = client.get(f"/connections/webhooks/{endpoint.pk}/?before={older.group(1)}")
    page = second.content.decode()
    assert "evt-failed" in _text(second) and "evt-retrying" in _text(second) and "evt-ok" in _text(second)
    assert "&lt;b&gt;down&lt;/b&gt;" in page and "<b>down</b>" not in page  # the receiver's answer, escaped
    assert "HTTP 500" in _text(second) and "8 attempts" in _text(second)
    assert (
        "Retrying" in _text(second)
        and "ConnectionError: refused" in _text(second)
        and re.search(r"Next attempt (29|30) minutes from now", _text(second))
    )
    assert re.search(r'href="\?after=\d+"', page)

    only_failed = _text(client.get(f"/connections/webhooks/{endpoint.pk}/?status=failed"))
    assert "evt-failed" in only_failed and "evt-ok" not in only_failed and "evt-retrying" not in only_failed
    invoices = _text(client.get(f"/connections/webhooks/{endpoint.pk}/?event_type=invoice.created"))
    assert "evt-ok" in invoices and "evt-bulk-1 " not in invoices and "All 1" in invoices
    none = _text(client.get(f"/connections/webhooks/{endpoint.pk}/?status=failed&event_type=invoice.created"))
    assert "No deliveries match" in none
    assert "Replay" not in _text(second) and failed and delivered  # readers only read


@in_db
def test_replaying_one_delivery_and_all_failed_shown_sends_them_again_audited(world):
    with schema_context(world.acme.schema):
        endpoint = _endpoint(types=["*"])
        first = _delivery(endpoint, "evt-1", "failed", attempts=8, last_error="HTTP 500", last_status_code=500)
        second = _delivery(endpoint, "evt-2", "failed", attempts=8, last_error="HTTP 500", last_status_code=500)
        delivered = _delivery(endpoint, "evt-3", "delivered", attempts=1, last_status_code=200)
    client = _client(world, "planner")
    page = _text(client.get(f"/connections/webhooks/{endpoint.pk}/?status=failed"))
    assert "2 failed deliveries shown" in page and "Replay all 2 failed shown" in page

    one = client.post(f"/connections/webhooks/deliveries/{delivered.pk}/replay/", {"filters": "status=delivered"})
    assert one.status_code == 302 and one["Location"] == f"/connections/webhooks/{endpoint.pk}/?status=delivered"
    assert f"Delivery {delivered.pk} (shipment.milestone) is being sent again." in _text(client.get(one["Location"]))

    bulk = client.post(
        "/connections/webhooks/deliveries/replay/",
        {"delivery": [str(first.pk), str(second.pk), str(delivered.pk)], "filters": "status=failed"},
    )
    assert bulk.status_code == 302
    assert "2 deliveries are being sent again. 1 was no longer failed and left alone." in _text(client.get(bulk["Location"]))
    with schema_context(world.acme.schema):
        assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"pending"}
        assert AuditEvent.objects.filter(action="webhook_delivery.replayed", actor_email="planner@acme.test").count() == 3
    again = client.post("/connections/webhooks/deliveries/replay/", {"delivery": [str(first.pk)]})
    assert "Nothing was replayed: none of these deliveries has failed." in _text(client.get(again["Location"]))


@in_db
def test_a_disabled_endpoint_says_why_refuses_replays_and_is_enabled_again(world):
    with schema_context(world.acme.schema):
        endpoint = _endpoint()
        failed = _delivery(endpoint, "evt-1", "failed", attempts=8, last_error="HTTP 500", last_status_code=500)
    client = _client(world, "planner")
    disabled = client.post(f"/connections/webhooks/{endpoint.pk}/disable/", {"reason": "customer moving to a new ERP"})
    assert disabled.status_code == 302
    page = _text(client.get(disabled["Location"]))
    assert "The endpoint is disabled: no events are sent to it until it is enabled again." in page
    assert "disabled by planner@acme.test: customer moving to a new ERP" in page and "Enable endpoint" in page

    refused = client.post(f"/connections/webhooks/deliveries/{failed.pk}/replay/")
    assert "The endpoint is disabled: enable it first" in _text(client.get(refused["Location"]))
    with schema_context(world.acme.schema):
        assert WebhookDelivery.objects.get(pk=failed.pk).status == "failed"
        assert webhook_publish(event_type="shipment.milestone", event_id="evt-new", payload={}, customer_account_id=None) == []

    enabled = client.post(f"/connections/webhooks/{endpoint.pk}/enable/")
    text = _text(client.get(enabled["Location"]))
    assert "The endpoint is enabled: new events are delivered again. Replay the 1 failed deliveries below" in text
    with schema_context(world.acme.schema):
        stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
        assert stored.enabled and stored.disabled_reason == "" and stored.disabled_at is None
        actions = list(
            AuditEvent.objects.filter(target_id=str(endpoint.pk), action__startswith="webhook_endpoint.")
            .order_by("pk")
            .values_list("action", flat=True)
        )
        assert actions[-2:] == ["webhook_endpoint.disabled", "webhook_endpoint.enabled"]


@in_db
def test_rotating_shows_the_new_secret_once_and_keeps_the_previous_mask(world):
    with schema_context(world.acme.schema):
        endpoint = _endpoint()
    client = _client(world)
    answer = client.post(f"/connections/webhooks/{endpoint.pk}/rotate/", {"overlap_hours": "2"})
    new = re.search(r'<textarea id="new-secret"[^>]*>([^<]+)</textarea>', answer.content.decode())
    assert answer.status_code == 200 and new and "no-store" in answer["Cache-Control"]
    assert "Deliveries are signed with the previous secret too for 2 hours." in _text(answer)
    page = _text(client.get(f"/connections/webhooks/{endpoint.pk}/"))
    assert new.group(1) not in page and page.count("previous, signs along until its overlap ends") == 1
    assert "••••" + new.group(1)[-4:] + " current" in page
    bad = client.post(f"/connections/webhooks/{endpoint.pk}/rotate/", {"overlap_hours": "500"})
    assert bad.status_code == 302
    assert "The overlap is a whole number of hours from 0 to 168. Nothing changed." in _text(client.get(bad["Location"]))


@in_db
def test_changing_the_event_types_saves_them_and_refuses_none(world):
    with schema_context(world.acme.schema):
        endpoint = _endpoint()
    client = _client(world, "planner")
    saved = client.post(f"/connections/webhooks/{endpoint.pk}/", {"event_types": "notification.*\n*", "description": "All of it"})
    assert saved.status_code == 302
    assert "Endpoint saved: new events are delivered by these event types." in _text(client.get(saved["Location"]))
    refused = client.post(f"/connections/webhooks/{endpoint.pk}/", {"event_types": "", "description": ""})
    assert refused.status_code == 400 and "Subscribe to at least one event type" in _text(refused)
    with schema_context(world.acme.schema):
        stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
        assert (stored.event_types, stored.description) == (["*", "notification.*"], "All of it")


@in_db
def test_staff_who_cannot_edit_see_no_changes_and_cannot_post_them(world):
    with schema_context(world.acme.schema):
        endpoint = _endpoint()
        failed = _delivery(endpoint, "evt-1", "failed", attempts=8)
    reader = _client(world, "dispatcher")
    page = _text(reader.get(f"/connections/webhooks/{endpoint.pk}/"))
    assert "Rotate secret" not in page and "Disable endpoint" not in page and "Replay" not in page
    assert reader.get("/connections/webhooks/new/").status_code == 403
    assert reader.post("/connections/webhooks/deliveries/replay/", {"delivery": str(failed.pk)}).status_code == 403
    for path in ("rotate/", "disable/", "enable/", ""):
        assert reader.post(f"/connections/webhooks/{endpoint.pk}/{path}", {"event_types": "*"}).status_code == 403, path
    assert reader.post(f"/connections/webhooks/deliveries/{failed.pk}/replay/").status_code == 403
    assert _client(world, "customer").get("/connections/webhooks/").status_code == 403
    assert _client(world).get("/connections/webhooks/999999/").status_code == 404
    assert _client(world).post("/connections/webhooks/deliveries/999999/replay/").status_code == 404
    assert _client(world).post("/connections/webhooks/deliveries/replay/", {"delivery": "999999"}).status_code == 404


# --- in a real browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("webhooks-web") / "web.log") as port:
        yield port


@pytest.fixture
def browser_webhooks(world, committed):
    """A receiver on loopback; Globex's endpoints are removed afterwards (the browser's writes are committed)."""
    with fake_partner() as receiver:
        yield receiver
    with schema_context(world.globex.schema):
        WebhookEndpoint.objects.all().delete()


def _without_toasts(page) -> None:
    for close in page.locator(".toast__close").all():
        close.click()
    page.add_style_tag(content=".toasts{display:none!important}")


@pytest.mark.browser
def test_a_planner_creates_an_endpoint_sees_a_delivery_fail_and_replays_it(world, live_port, browser_webhooks):
    receiver = browser_webhooks
    base = f"http://globex.localhost:{live_port}"
    planner = world.globex.users["planner"]
    account = world.globex.customer_accounts[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + "/connections/webhooks/")
        empty = page.locator(".empty__title").inner_text()
        screenshot(page, "webhooks-empty")
        page.get_by_role("link", name="Add an endpoint").click()
        page.wait_for_load_state()
        page.fill("#id_url", f"{receiver.url}/baton")
        page.select_option("#id_customer_account", str(account.pk))
        page.fill("#id_event_types", "shipment.*\nnotification.*")
        page.fill("#id_description", "Customer TMS")
        screenshot(page, "webhooks-new")
        page.get_by_role("button", name="Save endpoint").click()
        page.wait_for_load_state()
        _without_toasts(page)
        secret = page.locator("#new-secret").input_value()
        screenshot(page, "webhooks-new-secret")
        endpoint_path = page.url.split(base, 1)[1]
        assert endpoint_path == "/connections/webhooks/new/"
        page.goto(base + "/connections/webhooks/")
        endpoint_link = page.locator("table a").first.get_attribute("href")
        page.goto(base + endpoint_link)
        again = page.content()
        browser.close()

    receiver.fail_next(times=1, status=503)
    with schema_context(world.globex.schema):
        endpoint = WebhookEndpoint.objects.get()
        ids = [
            webhook_publish(
                event_type="shipment.milestone", event_id=f"evt-{index}", payload={"pro": f"PRO-{index}"}, customer_account_id=account.pk
            )[0]
            for index in range(3)
        ]
        failing = ids[0]
        WebhookDelivery.objects.filter(pk=failing).update(attempts=7)  # its last try: a failure gives it up
        assert delivery_attempt(failing).status == "failed"
        for delivery_id in ids[1:]:
            assert delivery_attempt(delivery_id).status == "delivered"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + "/connections/webhooks/")
        listed = " ".join(page.locator("table").inner_text().split())
        screenshot(page, "webhooks-filled")
        page.goto(base + endpoint_link)
        row = " ".join(page.locator(f"#delivery-{failing}").inner_text().split())
        page.locator(f"#delivery-{failing}").get_by_text("Response").click()
        screenshot(page, "webhooks-endpoint-deliveries")
        page.get_by_role("link", name=re.compile(r"^Failed")).click()
        page.wait_for_load_state()
        page.get_by_role("button", name=f"Replay delivery {failing} (shipment.milestone)").click()
        page.wait_for_load_state()
        toast = page.locator(".toasts").inner_text()
        browser.close()

    with schema_context(world.globex.schema):
        assert WebhookDelivery.objects.get(pk=failing).status == "pending"
        assert delivery_attempt(failing).status == "delivered"  # in-process, as the deliver task would

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + endpoint_link)
        delivered = " ".join(page.locator(f"#delivery-{failing}").inner_text().split())
        screenshot(page, "webhooks-endpoint-replayed")
        browser.close()

    assert empty == "No webhook endpoints yet"
    assert secret.startswith("whsec_") and secret not in again and "••••" + secret[-4:] in again
    assert f"{receiver.url}/baton" in listed and account.name in listed and "notification.* shipment.*" in listed
    assert "Failed 8 attempts HTTP 503" in row
    assert f"Delivery {failing} (shipment.milestone) is being sent again." in toast
    assert "Delivered 9 attempts HTTP 200" in delivered
    replayed = [request for request in receiver.requests if request.body["id"] == "evt-0"]
    assert len(replayed) == 2 and replayed[0].headers["webhook-id"] == replayed[1].headers["webhook-id"]
    raw = json.dumps(replayed[1].body, separators=(",", ":")).encode()
    assert STANDARD_WEBHOOKS.verify(raw, replayed[1].headers, [secret]), "the receiver cannot verify the replayed delivery"
    assert endpoint.customer_account_id == account.pk
