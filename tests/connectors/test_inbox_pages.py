"""The inbox pages: the inbound event log (filters, search by external id and by correlation,
counts by status, keyset pages), the quarantine (counts by connection and reason, replay all
shown), an event's page (headers, escaped body, pointer marked, what it became, pending dispatch,
replay history, fix and replay), and a connection's inbound webhooks card (endpoint, scheme,
mapping, a signing secret shown exactly once). And the whole fix-and-replay path in a browser."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from connectors.inbox import connection_inbound_configure, event_dispatch
from connectors.models import Connection, EventDispatch, InboundEvent
from governance.models import AuditEvent
from governance.services import Actor
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, signed_in_client
from tests.processes import web_server
from tests.workflows.runs_setup import definition_published, run_advanced, run_started

in_db = pytest.mark.django_db

ADMIN = Actor.system("tests-inbox-pages")
WAITING_SPEC = {
    "start": "pod",
    "steps": [
        {
            "id": "pod",
            "kind": "wait_event",
            "event_type": "shipment.milestone",
            "correlate": {"pro": "input.pro"},
            "timeout": "PT4H",
            "next": "done",
            "on_timeout": "done",
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


def _client(world, role="tenant_admin", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _text(response) -> str:
    """The page's words, tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


def _connection(key: str = "acme-carrier", name: str = "Acme carrier", scheme: str = "standard_webhooks") -> Connection:
    connection = Connection.objects.create(key=key, name=name, kind="carrier", base_url="https://carrier.example")
    connection_inbound_configure(connection=connection, scheme=scheme, actor=ADMIN)
    return connection


def _milestone(event_id: str, pro: str, **extra) -> str:
    return json.dumps(
        {"event_type": "shipment.milestone", "event_id": event_id, "correlation": {"pro": pro}, "payload": {"code": "delivered"}, **extra}
    )


def _received(connection: Connection, body: str, external_id: str, channel: str = "webhook") -> InboundEvent:
    """An event as the inbox stores it (`inbound_record`): with its dispatch row, not yet handed on."""
    event = InboundEvent.objects.create(
        connection=connection,
        channel=channel,
        external_id=external_id,
        content_type="application/json",
        headers={"Content-Type": "application/json", "webhook-id": external_id},
        body=body,
        received_at=timezone.now(),
    )
    EventDispatch.objects.create(event=event, created_at=event.received_at)
    return event


def _dispatched(connection: Connection, body: str, external_id: str, channel: str = "webhook") -> InboundEvent:
    event = _received(connection, body, external_id, channel)
    event_dispatch(event.pk)
    return InboundEvent.objects.get(pk=event.pk)


BROKEN = json.dumps({"event_type": "shipment.milestone", "correlation": {"pro": "PRO-9"}, "payload": {"note": "<script>alert(1)</script>"}})


# --- the log ----------------------------------------------------------------------------------------


@in_db
def test_the_empty_log_and_the_empty_quarantine_say_what_to_do(world):
    page = _text(_client(world).get("/connections/inbox/"))
    assert "No inbound events yet" in page and "choose its signature scheme under “Inbound webhooks”" in page
    quarantine = _text(_client(world).get("/connections/inbox/?status=quarantined"))
    assert "Nothing in quarantine" in quarantine and "fix the connection's mapping or the body and replay it" in quarantine
    with schema_context(world.acme.schema):
        _connection()
    waiting = _text(_client(world).get("/connections/inbox/"))
    assert "A connection takes webhooks, but nothing has arrived" in waiting


@in_db
def test_the_log_counts_by_status_filters_and_finds_an_event_by_external_id_or_pro(world):
    with schema_context(world.acme.schema):
        carrier = _connection()
        erp = _connection("acme-erp", "Acme ERP")
        delivered = _dispatched(carrier, _milestone("evt-1", "PRO-100"), "msg-1")
        quarantined = _dispatched(carrier, BROKEN, "msg-2")
        pending = _received(erp, _milestone("evt-3", "PRO-300"), "msg-3", channel="api")
        InboundEvent.objects.filter(pk=pending.pk).update(received_at=timezone.now() - timedelta(days=3))
    assert (delivered.status, quarantined.status) == ("delivered", "quarantined")
    client = _client(world, "dispatcher")  # any staff member reads

    everything = _text(client.get("/connections/inbox/"))
    assert re.search(r"All 3 Received 1 Delivered 1 Quarantined 1", everything), everything[:2000]
    assert (
        everything.index(f"Event #{pending.pk}") < everything.index(f"Event #{quarantined.pk}") < everything.index(f"Event #{delivered.pk}")
    )
    assert "shipment.milestone pro: PRO-100" in everything and "the event id must be a non-empty text at /event_id" in everything

    by_pro = _text(client.get("/connections/inbox/?q=PRO-100"))
    assert f"Event #{delivered.pk}" in by_pro and f"Event #{quarantined.pk}" not in by_pro
    by_external_id = _text(client.get("/connections/inbox/?q=msg-2"))
    assert f"Event #{quarantined.pk}" in by_external_id and f"Event #{delivered.pk}" not in by_external_id
    by_connection = _text(client.get("/connections/inbox/?connection=acme-erp"))
    assert f"Event #{pending.pk}" in by_connection and f"Event #{delivered.pk}" not in by_connection
    assert re.search(r"All 1 Received 1 Delivered 0 Quarantined 0", by_connection)
    by_channel = _text(client.get("/connections/inbox/?channel=api"))
    assert f"Event #{pending.pk}" in by_channel and f"Event #{quarantined.pk}" not in by_channel
    today = timezone.now().date().isoformat()
    by_date = _text(client.get(f"/connections/inbox/?received_from={today}"))
    assert f"Event #{pending.pk}" not in by_date and f"Event #{delivered.pk}" in by_date
    nothing = _text(client.get("/connections/inbox/?q=PRO-404"))
    assert "No events match" in nothing and "Clear filters" in nothing
    wrong = client.get("/connections/inbox/?status=lost&received_from=yesterday")
    assert wrong.status_code == 200 and f"Event #{pending.pk}" in _text(wrong)  # bad filter values are left out


@in_db
def test_the_log_pages_by_keyset_newest_first(world):
    with schema_context(world.acme.schema):
        carrier = _connection()
        events = [_received(carrier, _milestone(f"evt-{index}", f"PRO-{index}"), f"msg-{index}") for index in range(30)]
    client = _client(world)
    first = client.get("/connections/inbox/?connection=acme-carrier").content.decode()
    shown = [int(number) for number in re.findall(r">Event #(\d+)<", first)]
    assert shown == [event.pk for event in reversed(events)][:25]
    older = re.search(r'href="\?before=(\d+)&amp;connection=acme-carrier">Older', first)
    assert older and "‹ Newer</span>" in first
    second = client.get(f"/connections/inbox/?before={older.group(1)}&connection=acme-carrier").content.decode()
    assert [int(number) for number in re.findall(r">Event #(\d+)<", second)] == [event.pk for event in reversed(events)][25:]
    newer = re.search(r'href="\?after=(\d+)&amp;connection=acme-carrier">‹ Newer', second)
    assert newer and "Older ›</span>" in second
    back = client.get(f"/connections/inbox/?after={newer.group(1)}&connection=acme-carrier").content.decode()
    assert [int(number) for number in re.findall(r">Event #(\d+)<", back)] == shown


@in_db
def test_the_quarantine_counts_by_connection_and_reason_and_replays_all_shown(world):
    with schema_context(world.acme.schema):
        carrier = _connection()
        broken = [_dispatched(carrier, BROKEN.replace("PRO-9", f"PRO-9{index}"), f"bad-{index}") for index in range(3)]
        fine = _dispatched(carrier, _milestone("evt-ok", "PRO-1"), "ok-1")
    client = _client(world, "planner")
    page = client.get("/connections/inbox/?status=quarantined")
    text = _text(page)
    assert "Quarantined by connection and reason" in text
    assert re.search(r"Acme carrier acme-carrier the event id must be a non-empty text at /event_id 3", text)
    assert "Replay all 3 shown" in text
    answer = client.post(
        "/connections/inbox/replay/", {"event": [str(event.pk) for event in broken] + [str(fine.pk)], "filters": "status=quarantined&x=y"}
    )
    assert answer.status_code == 302 and answer["Location"] == "/connections/inbox/?status=quarantined"
    with schema_context(world.acme.schema):
        assert set(InboundEvent.objects.filter(pk__in=[event.pk for event in broken]).values_list("status", flat=True)) == {"received"}
        assert EventDispatch.objects.filter(event__in=broken).count() == 3
        assert AuditEvent.objects.filter(action="inbound_event.replayed").count() == 3
        assert InboundEvent.objects.get(pk=fine.pk).status == "delivered"
    toast = _text(client.get("/connections/inbox/?status=quarantined"))
    assert "3 events sent through again. 1 was no longer quarantined and left alone." in toast
    assert _client(world, "dispatcher").post("/connections/inbox/replay/", {"event": [str(broken[0].pk)]}).status_code == 403


# --- one event -----------------------------------------------------------------------------------------


@in_db
def test_a_delivered_event_shows_its_headers_body_and_the_runs_it_woke(world):
    definition = definition_published(world.acme, WAITING_SPEC)
    run = run_advanced(world.acme, run_started(world.acme, definition, input={"pro": "PRO-7"}))
    with schema_context(world.acme.schema):
        event = _dispatched(_connection(), _milestone("evt-7", "PRO-7"), "msg-7")
    assert event.status == "delivered"
    page = _client(world, "finance").get(f"/connections/inbox/{event.pk}/")
    body = page.content.decode()
    text = _text(page)
    assert page.status_code == 200
    assert "webhook-id : msg-7" in text and "Content-Type : application/json" in text
    assert "  &quot;event_id&quot;: &quot;evt-7&quot;," in body  # pretty-printed, escaped
    assert f'href="/workflows/runs/{run.pk}/">Run #{run.pk}</a>' in body
    assert "Runs started No trigger fired" in text and "Never replayed." in text
    assert "Replay as it is" not in text and "Fix and replay" not in text  # nothing to replay


@in_db
def test_a_quarantined_event_shows_the_reason_marks_the_pointer_and_escapes_the_body(world):
    with schema_context(world.acme.schema):
        event = _dispatched(_connection(), BROKEN, "msg-9")
        missing = _dispatched(
            Connection.objects.get(key="acme-carrier"),
            json.dumps({"event_type": "shipment.milestone", "event_id": "e", "correlation": {"ship": "S-1"}}),
            "msg-10",
        )
        raw = _received(Connection.objects.get(key="acme-carrier"), "not json <b>at all</b>", "msg-11")
    assert (event.status, event.error_pointer, missing.error_pointer) == ("quarantined", "/event_id", "/correlation/ship")
    body = _client(world).get(f"/connections/inbox/{event.pk}/").content.decode()
    assert "Quarantined: it could not be turned into Baton events" in body
    assert "The body has nothing at <code>/event_id</code>: it is missing from the top-level object, marked below." in body
    assert "{\n<mark>  ← “event_id” is missing here</mark>\n" in body  # inside the object it belongs in
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    marked = _client(world).get(f"/connections/inbox/{missing.pk}/").content.decode()
    assert "At <code>/correlation/ship</code>, marked in the body below." in marked
    assert "<mark>    &quot;ship&quot;: &quot;S-1&quot;</mark>" in marked
    plain = _client(world).get(f"/connections/inbox/{raw.pk}/").content.decode()
    assert "not json &lt;b&gt;at all&lt;/b&gt;" in plain and "as received" in plain


@in_db
def test_a_pending_event_shows_its_dispatch_attempts_and_last_error(world):
    with schema_context(world.acme.schema):
        event = _received(_connection(), _milestone("evt-5", "PRO-5"), "msg-5")
        EventDispatch.objects.filter(event=event).update(attempts=2, last_error="RuntimeError: workflows unavailable")
    text = _text(_client(world).get(f"/connections/inbox/{event.pk}/"))
    assert "Waiting to be handed on" in text and "2 failed attempts so far (it is quarantined after 5)" in text
    assert "RuntimeError: workflows unavailable" in text


@in_db
def test_fix_and_replay_refuses_a_body_that_is_not_json_then_replays_the_fix_and_keeps_the_original(world):
    with schema_context(world.acme.schema):
        event = _dispatched(_connection(), BROKEN, "msg-9")
    client = _client(world, "planner")
    page = client.get(f"/connections/inbox/{event.pk}/").content.decode()
    assert "Fix and replay…" in page and 'data-json="1"' in page
    refused = client.post(f"/connections/inbox/{event.pk}/replay/", {"fix": "1", "body": '{"event_type": '})
    assert refused.status_code == 400
    assert "Not JSON: Expecting value at line 1, column 16. Nothing was replayed." in _text(refused)
    with schema_context(world.acme.schema):
        assert InboundEvent.objects.get(pk=event.pk).status == "quarantined"

    fixed = json.dumps({**json.loads(BROKEN), "event_id": "evt-9"}, indent=2)
    answer = client.post(f"/connections/inbox/{event.pk}/replay/", {"fix": "1", "body": fixed})
    assert answer.status_code == 302 and answer["Location"] == f"/connections/inbox/{event.pk}/"
    with schema_context(world.acme.schema):
        stored = InboundEvent.objects.get(pk=event.pk)
        assert (stored.status, stored.body, stored.original_body, stored.replays) == ("received", fixed, BROKEN, 1)
        assert event_dispatch(event.pk) == "delivered"
    after = _text(client.get(f"/connections/inbox/{event.pk}/"))
    assert "sent through again with your fixed body" in after
    assert "Fixed and replayed by planner@acme.test" in after and "Body as it arrived" in after and "Body, as last fixed" in after
    again = client.post(f"/connections/inbox/{event.pk}/replay/")
    assert again.status_code == 302
    assert "is delivered, not quarantined: there is nothing to replay" in _text(client.get(f"/connections/inbox/{event.pk}/"))


@in_db
def test_replaying_the_shown_body_unchanged_keeps_the_bytes_that_arrived(world):
    with schema_context(world.acme.schema):
        event = _dispatched(_connection(), BROKEN, "msg-9")
    pretty = json.dumps(json.loads(BROKEN), indent=2)
    _client(world).post(f"/connections/inbox/{event.pk}/replay/", {"fix": "1", "body": pretty})
    with schema_context(world.acme.schema):
        stored = InboundEvent.objects.get(pk=event.pk)
        assert (stored.body, stored.original_body, stored.replays) == (BROKEN, "", 1)
        assert AuditEvent.objects.get(action="inbound_event.replayed").data["fixed"] is False


@in_db
def test_staff_who_cannot_edit_see_no_replay_and_cannot_post_one(world):
    with schema_context(world.acme.schema):
        event = _dispatched(_connection(), BROKEN, "msg-9")
    client = _client(world, "customer_service")
    text = _text(client.get(f"/connections/inbox/{event.pk}/"))
    assert "Tenant admins and planners can fix and replay it." in text and "Replay as it is" not in text
    assert client.post(f"/connections/inbox/{event.pk}/replay/").status_code == 403
    assert _client(world, "customer").get("/connections/inbox/").status_code == 403
    assert _client(world).get("/connections/inbox/999999/").status_code == 404


# --- the connection's inbound card --------------------------------------------------------------------


def _plain_connection(world, key: str = "acme-tms") -> None:
    with schema_context(world.acme.schema):
        Connection.objects.create(key=key, name="Acme TMS", kind="tms", base_url="https://tms.example.com")


@in_db
def test_setting_up_webhooks_shows_the_endpoint_and_the_generated_secret_exactly_once(world):
    _plain_connection(world)
    client = _client(world, "planner")
    before = _text(client.get("/connections/acme-tms/"))
    assert "This connection takes no webhooks." in before and "/hooks/acme-tms" in before

    answer = client.post("/connections/acme-tms/inbound/", {"scheme": "standard_webhooks", "mapper": "canonical"})
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    secret = re.search(r'<textarea id="new-secret"[^>]*>(whsec_[A-Za-z0-9+/=]+)</textarea>', answer.content.decode())
    assert secret, "the generated secret is shown in the answer"
    assert "This is the only time it is shown" in _text(answer)

    later = client.get("/connections/acme-tms/")
    page = later.content.decode()
    assert secret.group(1) not in page and 'id="new-secret"' not in page
    assert "••••" + secret.group(1)[-4:] in page and "current" in _text(later)
    assert re.search(r'value="https?://[^"]+/hooks/acme-tms"', page)
    with schema_context(world.acme.schema):
        audit = AuditEvent.objects.filter(action="connection.inbound_configured").last()
        assert audit is not None and secret.group(1) not in json.dumps(audit.data)


@in_db
def test_rotating_shows_the_new_secret_once_and_keeps_the_previous_mask(world):
    with schema_context(world.acme.schema):
        _connection("acme-tms", "Acme TMS")
    client = _client(world)
    answer = client.post("/connections/acme-tms/inbound/rotate/", {"overlap_hours": "2"})
    new = re.search(r'<textarea id="new-secret"[^>]*>([^<]+)</textarea>', answer.content.decode())
    assert answer.status_code == 200 and new
    assert "The previous secret keeps working for 2 hours." in _text(answer)
    page = _text(client.get("/connections/acme-tms/"))
    assert new.group(1) not in page and page.count("previous, verifies until its overlap ends") == 1
    bad = client.post("/connections/acme-tms/inbound/rotate/", {"overlap_hours": "500"})
    assert bad.status_code == 302
    assert "The overlap is a whole number of hours from 0 to 168. Nothing changed." in _text(client.get("/connections/acme-tms/"))
    assert _client(world, "dispatcher").post("/connections/acme-tms/inbound/rotate/", {"overlap_hours": "1"}).status_code == 403


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"scheme": "custom", "scheme_settings": "{"}, "scheme_settings", "Not JSON: Expecting property name enclosed in double quotes"),
        ({"scheme": "custom", "scheme_settings": '{"header": "X-Sig"}'}, "scheme_settings", "“header” is not a field of a custom scheme"),
        (
            {"scheme": "custom", "scheme_settings": '{"signature_header": "X-Sig", "encoding": "hexx"}'},
            "scheme_settings",
            "Encoding 'hexx' is not one of",
        ),
        ({"scheme": "custom", "scheme_settings": "[]"}, "scheme_settings", "Write a JSON object"),
        ({"scheme": "github", "mapper": "mapping", "mapping": '{"event_type": "order.received"}'}, "mapping", "The mapping needs event_id"),
        ({"scheme": "standard_webhooks", "secret": "not base64!"}, "secret", "This secret cannot sign with this scheme"),
        ({"scheme": "", "secret": "abc"}, "secret", "Choose a signature scheme first"),
    ],
)
@in_db
def test_inbound_settings_problems_show_by_their_fields_and_change_nothing(world, fields, field, message):
    _plain_connection(world)
    answer = _client(world).post("/connections/acme-tms/inbound/", {"mapper": "canonical", **fields})
    assert answer.status_code == 400
    errors = re.search(rf'<ul class="field__errors" id="id_{field}_errors"[^>]*>(.*?)</ul>', answer.content.decode(), re.S)
    assert errors and message in html.unescape(errors.group(1)), answer.content.decode()[:3000]
    with schema_context(world.acme.schema):
        assert Connection.objects.get(key="acme-tms").inbound_scheme == ""


@in_db
def test_a_custom_scheme_and_mapping_are_saved_and_the_partners_secret_is_not_shown_back(world):
    _plain_connection(world)
    client = _client(world)
    settings = {"signature_header": "X-Partner-Signature", "prefix": "sha256="}
    mapping = {"event_type": "order.received", "event_id": "$.id", "correlation": {"order": "$.number"}, "payload": "$"}
    answer = client.post(
        "/connections/acme-tms/inbound/",
        {
            "scheme": "custom",
            "scheme_settings": json.dumps(settings),
            "mapper": "mapping",
            "mapping": json.dumps(mapping),
            "secret": "partner-secret-1234",
        },
    )
    assert answer.status_code == 302 and answer["Location"] == "/connections/acme-tms/#inbound"
    page = client.get("/connections/acme-tms/")
    text = _text(page)
    assert "partner-secret-1234" not in page.content.decode() and "••••1234" in text
    assert "Inbound webhooks saved with the partner's secret (••••1234)." in text
    assert "signature_header = X-Partner-Signature" in text and "A mapping of JSON paths" in text
    with schema_context(world.acme.schema):
        stored = Connection.objects.get(key="acme-tms")
        assert (stored.inbound_scheme, stored.inbound_scheme_settings, stored.inbound_mapping) == ("custom", settings, mapping)
    off = client.post("/connections/acme-tms/inbound/", {"scheme": "", "mapper": "canonical"})
    assert off.status_code == 302
    assert "Acme TMS takes no webhooks now: its endpoint answers 404." in _text(client.get("/connections/acme-tms/"))


@in_db
def test_the_inbound_card_lists_recent_events_and_links_to_the_log(world):
    with schema_context(world.acme.schema):
        carrier = _connection()
        event = _dispatched(carrier, BROKEN, "msg-9")
    page = _client(world, "dispatcher").get("/connections/acme-carrier/").content.decode()
    assert f'href="/connections/inbox/{event.pk}/">Event #{event.pk}</a>' in page
    assert 'href="/connections/inbox/?connection=acme-carrier">Every event from Acme carrier</a>' in page
    assert "Rotate secret" not in page and "Set up inbound webhooks" not in page  # readers only read


# --- in a real browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    with web_server(tmp_path_factory.mktemp("inbox-web") / "web.log") as port:
        yield port


@pytest.fixture
def browser_inbox(world, committed):
    """Globex's connections and events are removed afterwards (the browser's writes are committed)."""
    yield
    with schema_context(world.globex.schema):
        InboundEvent.objects.all().delete()
        Connection.objects.all().delete()


def _without_toasts(page) -> None:
    for close in page.locator(".toast__close").all():
        close.click()
    page.add_style_tag(content=".toasts{display:none!important}")


@pytest.mark.browser
def test_a_planner_fixes_a_quarantined_event_in_the_browser_and_it_is_delivered(world, live_port, browser_inbox):
    base = f"http://globex.localhost:{live_port}"
    planner = world.globex.users["planner"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + "/connections/inbox/")
        empty = page.locator(".empty__title").inner_text()
        screenshot(page, "inbox-empty")
        browser.close()

    with schema_context(world.globex.schema):
        carrier = _connection("globex-carrier", "Globex carrier")
        for index in range(4):
            _dispatched(carrier, _milestone(f"evt-{index}", f"PRO-20{index}"), f"msg-{index}")
        broken = _dispatched(carrier, BROKEN, "msg-broken")
        Connection.objects.create(key="globex-tms", name="Globex TMS", kind="tms", base_url="https://tms.example.com")
    assert broken.status == "quarantined"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + "/connections/inbox/")
        listed = page.locator("table").inner_text()
        screenshot(page, "inbox-filled")
        page.get_by_role("link", name="Quarantine", exact=True).click()
        page.wait_for_load_state()
        screenshot(page, "inbox-quarantine")
        page.get_by_role("link", name=f"Event #{broken.pk}").click()
        page.wait_for_load_state()
        reason = page.locator("#quarantine").inner_text()
        screenshot(page, "inbound-event-quarantined")
        page.get_by_text("Fix and replay…").click()
        box = page.locator("#id_body")
        box.fill('{"event_type": ')
        page.get_by_role("button", name="Replay with this body").click()
        refused = page.locator("#fix-error").inner_text()  # said in the page: nothing was sent
        box.fill(json.dumps({**json.loads(BROKEN), "event_id": "evt-fixed"}, indent=2))
        page.get_by_role("button", name="Replay with this body").click()
        page.wait_for_load_state()
        toast = page.locator(".toasts").inner_text()
        waiting = page.locator(".page-head__meta .badge").first.inner_text()
        browser.close()

    with schema_context(world.globex.schema):
        assert event_dispatch(broken.pk) == "delivered"  # in-process, as the dispatch task would

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, planner.email, PASSWORD)
        page.goto(base + f"/connections/inbox/{broken.pk}/")
        delivered = page.locator(".page-head__meta .badge").first.inner_text()
        became = page.locator("#became-title").inner_text()
        history = " ".join(page.locator("section:has(#replays-title)").inner_text().split())
        screenshot(page, "inbound-event-delivered")
        page.goto(base + "/connections/globex-tms/")
        page.get_by_text("Set up inbound webhooks…").click()
        page.select_option("#id_scheme", "standard_webhooks")
        page.get_by_role("button", name="Save inbound settings").click()
        page.wait_for_load_state()
        _without_toasts(page)
        shown = page.locator("#new-secret").input_value()
        screenshot(page, "connection-inbound-secret")
        page.goto(base + "/connections/globex-tms/")
        again = page.content()
        page.goto(base + "/connections/globex-carrier/#inbound")
        page.get_by_text("Change the scheme or mapping…").click()
        screenshot(page, "connection-inbound-card")
        browser.close()

    assert empty == "No inbound events yet"
    assert "Globex carrier" in listed and "PRO-203" in listed
    assert "the event id must be a non-empty text" in reason and "/event_id" in reason
    assert refused.startswith("Not JSON:") and "Nothing was replayed." in refused
    assert "sent through again with your fixed body" in toast and waiting == "Received"
    assert delivered == "Delivered" and became == "What it became"
    assert "Fixed and replayed by planner@globex.test" in history
    assert shown.startswith("whsec_") and shown not in again and "••••" + shown[-4:] in again
    with schema_context(world.globex.schema):
        stored = InboundEvent.objects.get(pk=broken.pk)
        assert stored.original_body == BROKEN and stored.canonical[0]["event_id"] == "evt-fixed"
