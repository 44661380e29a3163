"""The business calendar page: tenant admins edit hours, zone and holidays and see what a wait
started now would do; other staff only look; bad input is explained next to its field."""

from __future__ import annotations

import html
import re
from datetime import datetime

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from governance.services import Actor
from tests.conftest import signed_in_client
from workflows.calendars import business_until, calendar_current, calendar_update
from workflows.models import BusinessCalendar, default_weekly_hours

pytestmark = pytest.mark.django_db
OFFICE_TEXT = {day: ", ".join(f"{a}-{b}" for a, b in hours) for day, hours in default_weekly_hours().items()}


def _client(world, role="tenant_admin", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _form(*, days=None, time_zone="", holidays=(), delete=(), action="save", initial=0) -> dict[str, str]:
    """What the page posts: one text per weekday, the zone, the holiday rows and the button."""
    data = dict(OFFICE_TEXT) | (days or {})
    data |= {"time_zone": time_zone, "action": action}
    rows = list(holidays) + [("", "")]
    data |= {
        "holidays-TOTAL_FORMS": str(len(rows)),
        "holidays-INITIAL_FORMS": str(initial),
        "holidays-MIN_NUM_FORMS": "0",
        "holidays-MAX_NUM_FORMS": "1000",
    }
    for index, (day, name) in enumerate(rows):
        data[f"holidays-{index}-date"] = day
        data[f"holidays-{index}-name"] = name
        if index in delete:
            data[f"holidays-{index}-DELETE"] = "on"
    return data


def _errors(body: str, field_id: str) -> str:
    """The error list the page shows under one input (empty when it has none)."""
    match = re.search(rf'<ul class="field__errors" id="{re.escape(field_id)}_errors"[^>]*>(.*?)</ul>', body, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))) if match else ""


def _row(world):
    with schema_context(world.acme.schema):
        return BusinessCalendar.objects.filter(name="default").first()


def _preview_texts(world, text: str, moments: list[datetime]) -> set[str]:
    """How the page writes the end of a wait of `text` started at any of `moments` (the request's
    own 'now' lies between them)."""
    with schema_context(world.acme.schema):
        calendar = calendar_current()
    texts = set()
    for moment in moments:
        local = business_until(text, moment, calendar).astimezone(calendar.zone)
        texts.add(f"{local:%a %d %b %Y}, {local:%H:%M} {local.tzname()}")
    return texts


def test_an_admin_sees_the_default_hours_and_a_preview_of_a_four_hour_wait(world):
    with schema_context(world.acme.schema):
        BusinessCalendar.objects.all().delete()
    before = timezone.now()
    response = _client(world).get("/workflows/calendar/")
    after = timezone.now()
    body = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'name="mon"[^>]*value="08:00-17:00"', body) and re.search(r'name="sat"(?![^>]*value=)[^>]*>', body)
    assert "UTC (the tenant&#x27;s time zone)" in body
    assert "A 4-hour wait started now ends" in body
    assert any(text in body for text in _preview_texts(world, "PT4H", [before, after]))
    assert body.count("08:00–17:00 UTC") == 5  # the next five openings


def test_the_workflows_page_links_to_the_calendar(world):
    body = _client(world, "planner").get("/workflows/").content.decode()
    assert 'href="/workflows/calendar/"' in body and "Business calendar" in body


def test_an_admin_saves_hours_zone_and_holidays_and_the_preview_follows(world):
    admin = _client(world)
    data = _form(
        days={"mon": "8:00-12:00, 13:00 – 17:00", "sat": "09:00-12:00", "sun": ""},
        time_zone="America/Chicago",
        holidays=[("2026-12-25", "Christmas"), ("2026-07-03", "Independence Day")],
    )
    before = timezone.now()
    response = admin.post("/workflows/calendar/", data, follow=True)
    after = timezone.now()
    body = response.content.decode()
    assert response.redirect_chain == [("/workflows/calendar/", 302)]
    assert "Business calendar saved" in body
    row = _row(world)
    assert row.time_zone == "America/Chicago"
    assert row.weekly_hours["mon"] == [["08:00", "12:00"], ["13:00", "17:00"]] and row.weekly_hours["sat"] == [["09:00", "12:00"]]
    assert row.holidays == [{"date": "2026-07-03", "name": "Independence Day"}, {"date": "2026-12-25", "name": "Christmas"}]
    assert re.search(r'name="mon"[^>]*value="08:00-12:00, 13:00-17:00"', body)
    assert 'value="Independence Day"' in body and "Times in America/Chicago" in body
    assert any(text in body for text in _preview_texts(world, "PT4H", [before, after]))
    assert any(text in body for text in _preview_texts(world, "P1D", [before, after]))


def test_saving_writes_an_audit_row_with_the_change(world):
    with schema_context(world.acme.schema):
        BusinessCalendar.objects.all().delete()
    _client(world).post("/workflows/calendar/", _form(days={"fri": "08:00-12:00"}, holidays=[("2026-12-25", "Christmas")]))
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.filter(action="business_calendar.updated").first()
    assert event is not None and event.actor_email == world.acme.users["tenant_admin"].email
    assert event.data["weekly_hours"] == {"fri": {"from": [["08:00", "17:00"]], "to": [["08:00", "12:00"]]}}
    assert event.data["holidays_added"] == [{"date": "2026-12-25", "name": "Christmas"}]


def test_a_holiday_marked_for_removal_is_removed(world):
    with schema_context(world.acme.schema):
        calendar_update(
            weekly_hours=default_weekly_hours(),
            holidays=[{"date": "2026-12-25", "name": "Christmas"}, {"date": "2026-12-26", "name": "Boxing Day"}],
            time_zone="",
            actor=Actor.system("tests"),
        )
    admin = _client(world)
    page = admin.get("/workflows/calendar/").content.decode()
    assert 'value="Boxing Day"' in page and 'name="holidays-1-DELETE"' in page
    data = _form(holidays=[("2026-12-25", "Christmas"), ("2026-12-26", "Boxing Day")], delete={1}, initial=2)
    assert admin.post("/workflows/calendar/", data).status_code == 302
    assert _row(world).holidays == [{"date": "2026-12-25", "name": "Christmas"}]


def test_more_holiday_rows_keep_what_was_typed_and_save_nothing(world):
    with schema_context(world.acme.schema):
        BusinessCalendar.objects.all().delete()
    data = _form(days={"mon": "07:00-15:00"}, holidays=[("2026-12-25", "Christmas")], action="more_holidays")
    response = _client(world).post("/workflows/calendar/", data)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="holidays-3-date"' in body and 'value="Christmas"' in body and 'value="07:00-15:00"' in body
    assert _row(world) is None


def test_preview_shows_unsaved_changes_without_saving_them(world):
    with schema_context(world.acme.schema):
        BusinessCalendar.objects.all().delete()
    everyday = {day: "00:00-24:00" for day in OFFICE_TEXT}
    response = _client(world).post("/workflows/calendar/", _form(days=everyday, time_zone="Europe/Berlin", action="preview"))
    body = response.content.decode()
    assert response.status_code == 200 and "Not saved" in body and "These are your unsaved changes" in body
    assert "Times in Europe/Berlin" in body and "Open now" in body
    assert _row(world) is None


def test_invalid_input_is_explained_next_to_each_field_and_nothing_is_saved(world):
    with schema_context(world.acme.schema):
        BusinessCalendar.objects.all().delete()
    data = _form(
        days={
            "mon": "17:00-08:00",
            "tue": "9 to 5",
            "wed": "08:00-12:00, 11:00-17:00",
            "thu": "08:00-25:00",
            "fri": "08:00-12:00, 13:00-24:30",
        },
        time_zone="Mars/Olympus",
        holidays=[("2026-02-30", "Not a day"), ("2026-12-25", "Christmas"), ("2026-12-25", "Christmas again")],
    )
    response = _client(world).post("/workflows/calendar/", data)
    body = response.content.decode()
    assert response.status_code == 400 and "Not saved: fix the highlighted fields below." in body
    assert "closes at 08:00, before it opens at 17:00: an interval cannot cross midnight" in _errors(body, "id_mon")
    assert "“9 to 5” is not an interval" in _errors(body, "id_tue")
    assert "11:00-17:00 overlaps 08:00-12:00" in _errors(body, "id_wed")
    assert _errors(body, "id_thu").strip() == "'25:00' is not a time of day: use HH:MM, 24-hour (00:00 to 24:00)"
    assert "13:00-24:30: '24:30' is not a time of day" in _errors(body, "id_fri")  # which of the day's intervals
    assert _errors(body, "id_sat") == ""
    assert "Mars/Olympus is not one of the available choices" in _errors(body, "id_time_zone")
    assert "'2026-02-30' is not a date: use YYYY-MM-DD" in _errors(body, "id_holidays-0-date")
    assert "2026-12-25 is already listed (holiday 2)" in _errors(body, "id_holidays-2-date")
    assert _errors(body, "id_holidays-1-date") == ""
    assert 'value="9 to 5"' in body  # what was typed stays
    assert _row(world) is None
    with schema_context(world.acme.schema):
        assert not AuditEvent.objects.filter(action="business_calendar.updated").exists()


def test_a_week_without_any_hours_is_refused_with_the_reason(world):
    closed = {day: "" for day in OFFICE_TEXT}
    response = _client(world).post("/workflows/calendar/", _form(days=closed))
    assert response.status_code == 400
    assert "has no opening hours on any day: a wait in business time would never end" in response.content.decode()


def test_a_planner_sees_the_calendar_but_cannot_change_it(world):
    with schema_context(world.acme.schema):
        calendar_update(
            weekly_hours=dict(default_weekly_hours(), sat=[["09:00", "12:00"]]),
            holidays=[{"date": "2026-12-25", "name": "Christmas"}],
            time_zone="Europe/Berlin",
            actor=Actor.system("tests"),
        )
    planner = _client(world, "planner")
    body = planner.get("/workflows/calendar/").content.decode()
    assert "09:00–12:00" in body and "Christmas" in body and "Europe/Berlin" in body and "A 4-hour wait started now ends" in body
    assert 'name="mon"' not in body and "Save calendar" not in body and "Tenant admins change these." in body
    response = planner.post("/workflows/calendar/", _form(days={"sat": ""}))
    assert response.status_code == 403
    assert _row(world).weekly_hours["sat"] == [["09:00", "12:00"]]
    assert _client(world, "dispatcher").get("/workflows/calendar/").status_code == 200
    assert _client(world, "customer").get("/workflows/calendar/").status_code == 403


def test_each_tenant_edits_its_own_calendar(world):
    _client(world).post("/workflows/calendar/", _form(days={"sat": "10:00-14:00"}, holidays=[("2026-05-01", "Acme picnic")]))
    body = _client(world, tenant="globex").get("/workflows/calendar/").content.decode()
    assert "Acme picnic" not in body and "10:00-14:00" not in body
    with schema_context(world.globex.schema):
        assert calendar_current().hours[5] == ()


def test_a_broken_saved_calendar_is_shown_with_its_problem_instead_of_failing_the_page(world):
    with schema_context(world.acme.schema):
        BusinessCalendar.objects.update_or_create(name="default", defaults={"weekly_hours": {"mon": [["17:00", "08:00"]]}})
    for role in ("tenant_admin", "planner"):
        response = _client(world, role).get("/workflows/calendar/")
        body = html.unescape(response.content.decode())
        assert response.status_code == 200
        assert "The saved calendar cannot be used: 1 problem: /weekly_hours/mon/0/1 closes at 08:00" in body
