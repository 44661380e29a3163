"""Business time: counting working hours across nights, weekends, holidays and DST changes, the
`until` rules in business time, the calendar checks, and the one audited write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from governance.services import Actor
from tenants.models import Tenant
from workflows.calendars import (
    Calendar,
    CalendarInvalid,
    CalendarRefused,
    NoWorkingTime,
    business_add,
    business_until,
    calendar_current,
    calendar_from,
    calendar_openings,
    calendar_problems,
    calendar_update,
)
from workflows.models import BusinessCalendar, default_weekly_hours

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")
HOURS = timedelta(hours=1)
OFFICE = default_weekly_hours()  # Mon–Fri 08:00–17:00
CLOSED: dict[str, list[list[str]]] = {day: [] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _calendar(weekly_hours=None, holidays=(), zone="America/Chicago") -> Calendar:
    return calendar_from(
        weekly_hours=weekly_hours if weekly_hours is not None else OFFICE,
        holidays=[{"date": day, "name": "Holiday"} for day in holidays],
        time_zone=zone,
    )


def _at(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone)


def _local(moment: datetime, zone=CHICAGO) -> datetime:
    assert moment.tzinfo is UTC, "business time answers in UTC"
    return moment.astimezone(zone)


def _wall(moment: datetime, zone=CHICAGO) -> tuple[int, ...]:
    local = _local(moment, zone)
    return (local.year, local.month, local.day, local.hour, local.minute)


# ---------- business_add: nights, weekends, holidays, intervals ----------


def test_hours_inside_one_working_day_pass_like_clock_hours():
    monday = _at(CHICAGO, 2026, 4, 13, 10, 0)
    assert _wall(business_add(monday, 4 * HOURS, _calendar())) == (2026, 4, 13, 14, 0)


def test_the_night_is_skipped():
    monday_afternoon = _at(CHICAGO, 2026, 4, 13, 15, 0)
    assert _wall(business_add(monday_afternoon, 4 * HOURS, _calendar())) == (2026, 4, 14, 10, 0)


def test_the_weekend_is_skipped():
    friday = _at(CHICAGO, 2026, 4, 10, 15, 0)
    assert _wall(business_add(friday, 4 * HOURS, _calendar())) == (2026, 4, 13, 10, 0)


def test_a_holiday_closes_the_whole_day():
    thursday = _at(CHICAGO, 2026, 12, 24, 15, 0)  # Friday the 25th is Christmas
    assert _wall(business_add(thursday, 4 * HOURS, _calendar(holidays=["2026-12-25"]))) == (2026, 12, 28, 10, 0)
    assert _wall(business_add(thursday, 4 * HOURS, _calendar())) == (2026, 12, 25, 10, 0)


def test_a_day_with_a_lunch_break_counts_only_its_intervals():
    split = dict(OFFICE, mon=[["08:00", "12:00"], ["13:00", "17:00"]])
    calendar = _calendar(split)
    monday = _at(CHICAGO, 2026, 4, 13, 11, 0)
    assert _wall(business_add(monday, 2 * HOURS, calendar)) == (2026, 4, 13, 14, 0)
    assert _wall(business_add(_at(CHICAGO, 2026, 4, 13, 12, 30), timedelta(0), calendar)) == (2026, 4, 13, 13, 0)
    assert _wall(business_add(monday, 8 * HOURS, calendar)) == (2026, 4, 14, 11, 0)  # 1 h + 4 h Monday, 3 h Tuesday


def test_a_duration_that_fills_the_day_ends_at_closing_time_not_the_next_opening():
    monday = _at(CHICAGO, 2026, 4, 13, 8, 0)
    assert _wall(business_add(monday, 9 * HOURS, _calendar())) == (2026, 4, 13, 17, 0)
    assert _wall(business_add(monday, 9 * HOURS + timedelta(minutes=1), _calendar())) == (2026, 4, 14, 8, 1)


def test_a_start_outside_working_hours_counts_from_the_next_opening():
    calendar = _calendar()
    assert _wall(business_add(_at(CHICAGO, 2026, 4, 11, 10, 0), HOURS, calendar)) == (2026, 4, 13, 9, 0)  # Saturday
    assert _wall(business_add(_at(CHICAGO, 2026, 4, 13, 6, 0), HOURS, calendar)) == (2026, 4, 13, 9, 0)  # before opening
    assert _wall(business_add(_at(CHICAGO, 2026, 4, 13, 17, 0), HOURS, calendar)) == (2026, 4, 14, 9, 0)  # at closing


def test_zero_duration_is_now_during_hours_and_the_next_opening_outside_them():
    calendar = _calendar()
    inside = _at(CHICAGO, 2026, 4, 13, 10, 17, 30)
    assert business_add(inside, timedelta(0), calendar) == inside.astimezone(UTC)
    assert _wall(business_add(_at(CHICAGO, 2026, 4, 11, 10, 0), timedelta(0), calendar)) == (2026, 4, 13, 8, 0)


def test_a_night_shift_across_midnight_counts_as_one_stretch():
    night = dict(CLOSED, mon=[["22:00", "24:00"]], tue=[["00:00", "06:00"]])
    calendar = _calendar(night)
    monday_night = _at(CHICAGO, 2026, 4, 13, 23, 0)
    assert _wall(business_add(monday_night, 2 * HOURS, calendar)) == (2026, 4, 14, 1, 0)
    assert _wall(business_add(monday_night, 8 * HOURS, calendar)) == (2026, 4, 20, 23, 0)  # 7 h this week, 1 h next
    stretches = calendar_openings(calendar, _at(CHICAGO, 2026, 4, 13, 12, 0), 2)
    assert [(_wall(opening), _wall(closing)) for opening, closing in stretches] == [
        ((2026, 4, 13, 22, 0), (2026, 4, 14, 6, 0)),
        ((2026, 4, 20, 22, 0), (2026, 4, 21, 6, 0)),
    ]


def test_openings_list_the_next_stretches_from_now_including_the_current_one():
    stretches = calendar_openings(_calendar(holidays=["2026-04-14"]), _at(CHICAGO, 2026, 4, 13, 10, 0), 3)
    assert [(_wall(opening), _wall(closing)) for opening, closing in stretches] == [
        ((2026, 4, 13, 8, 0), (2026, 4, 13, 17, 0)),
        ((2026, 4, 15, 8, 0), (2026, 4, 15, 17, 0)),
        ((2026, 4, 16, 8, 0), (2026, 4, 16, 17, 0)),
    ]


def test_a_calendar_open_around_the_clock_counts_clock_time_and_lists_week_long_stretches():
    always = _calendar({day: [["00:00", "24:00"]] for day in CLOSED}, zone="Europe/Berlin")
    start = _at(BERLIN, 2026, 3, 28, 20, 0)  # across the spring-forward night
    assert business_add(start, 10 * HOURS, always) == start.astimezone(UTC) + 10 * HOURS
    stretches = calendar_openings(always, start, 2)
    assert [closing - opening for opening, closing in stretches] == [timedelta(days=7) - HOURS, timedelta(days=7)]


# ---------- DST: working time is real elapsed time ----------


def test_chicago_spring_forward_weekend_keeps_office_hours_on_the_clock():
    friday = _at(CHICAGO, 2026, 3, 6, 15, 0)  # CST; clocks go forward on Sunday 8 March
    due = business_add(friday, 4 * HOURS, _calendar())
    assert _wall(due) == (2026, 3, 9, 10, 0) and _local(due).tzname() == "CDT"
    assert due == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)


def test_chicago_spring_forward_night_is_an_hour_shorter():
    calendar = _calendar(dict(CLOSED, sun=[["00:00", "06:00"]]))
    sunday = _at(CHICAGO, 2026, 3, 8, 0, 0)
    assert business_add(sunday, 5 * HOURS, calendar) == datetime(2026, 3, 8, 11, 0, tzinfo=UTC)  # 06:00 CDT
    assert _wall(business_add(sunday, 6 * HOURS, calendar)) == (2026, 3, 15, 1, 0)  # only 5 h that night


def test_chicago_fall_back_night_is_an_hour_longer_and_the_repeated_hour_counts_once_per_pass():
    calendar = _calendar(dict(CLOSED, sun=[["00:00", "06:00"]]))
    sunday = _at(CHICAGO, 2026, 11, 1, 0, 0)  # CDT; at 02:00 clocks go back to 01:00 CST
    due = business_add(sunday, 7 * HOURS, calendar)
    assert _wall(due) == (2026, 11, 1, 6, 0) and _local(due).tzname() == "CST"
    assert _wall(business_add(sunday, 7 * HOURS + timedelta(minutes=1), calendar)) == (2026, 11, 8, 0, 1)
    repeated = _calendar(dict(CLOSED, sun=[["01:30", "03:00"]]))
    opening, closing = calendar_openings(repeated, _at(CHICAGO, 2026, 10, 31, 12, 0), 1)[0]
    assert (opening, closing) == (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), datetime(2026, 11, 1, 9, 0, tzinfo=UTC))  # 2.5 h


def test_chicago_fall_back_closing_in_the_repeated_hour_is_its_last_showing_and_intervals_never_double_count():
    sunday = _at(CHICAGO, 2026, 11, 1, 0, 0)
    early = _calendar(dict(CLOSED, sun=[["00:00", "01:30"]]))
    assert calendar_openings(early, sunday, 1)[0][1] == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)  # 01:30 CST: 2.5 h
    split = _calendar(dict(CLOSED, sun=[["00:00", "01:30"], ["01:30", "03:00"]]))
    assert business_add(sunday, 4 * HOURS, split) == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # 00:00 CDT to 03:00 CST is 4 h
    assert _wall(business_add(sunday, 4 * HOURS + timedelta(minutes=1), split)) == (2026, 11, 8, 0, 1)


def test_berlin_spring_forward_opening_inside_the_skipped_hour_opens_at_the_change():
    calendar = _calendar(dict(CLOSED, sun=[["02:30", "04:00"]]), zone="Europe/Berlin")
    opening, closing = calendar_openings(calendar, _at(BERLIN, 2026, 3, 28, 12, 0), 1)[0]
    assert opening == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the moment 02:00 CET jumped
    assert closing == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    assert _wall(business_add(_at(BERLIN, 2026, 3, 28, 12, 0), HOURS, calendar), BERLIN) == (2026, 3, 29, 4, 0)


def test_berlin_office_hours_across_both_dst_weekends():
    calendar = _calendar(zone="Europe/Berlin")
    spring = business_add(_at(BERLIN, 2026, 3, 27, 16, 0), 2 * HOURS, calendar)
    assert _wall(spring, BERLIN) == (2026, 3, 30, 9, 0) and spring == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    autumn = business_add(_at(BERLIN, 2026, 10, 23, 16, 0), 2 * HOURS, calendar)
    assert _wall(autumn, BERLIN) == (2026, 10, 26, 9, 0) and autumn == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


def test_berlin_fall_back_night_shift_has_seven_hours():
    calendar = _calendar(dict(CLOSED, sun=[["00:00", "06:00"]]), zone="Europe/Berlin")
    sunday = _at(BERLIN, 2026, 10, 25, 0, 0)
    assert business_add(sunday, 7 * HOURS, calendar) == datetime(2026, 10, 25, 5, 0, tzinfo=UTC)  # 06:00 CET
    assert _wall(business_add(sunday, 8 * HOURS, calendar), BERLIN) == (2026, 11, 1, 1, 0)


# ---------- a calendar without working time ----------


def test_a_calendar_that_never_opens_is_a_clear_error_not_an_endless_loop():
    never = Calendar(zone=CHICAGO, hours=((),) * 7)
    with pytest.raises(NoWorkingTime, match="no opening hours on any day"):
        business_add(_at(CHICAGO, 2026, 4, 13, 10, 0), HOURS, never)
    with pytest.raises(ValueError, match="no opening hours on any day"):
        business_until("P1D", _at(CHICAGO, 2026, 4, 13, 10, 0), never)
    assert calendar_problems(CLOSED, [], "") == [
        ("/weekly_hours", "has no opening hours on any day: a wait in business time would never end")
    ]


def test_holidays_on_every_working_day_end_the_search_with_an_error():
    mondays_only = (((480, 1020),),) + ((),) * 6
    first = datetime(2026, 4, 13).date()
    every_monday = frozenset(first + timedelta(weeks=week) for week in range(53 * 101))
    tuesday = _at(CHICAGO, 2026, 4, 14, 10, 0)
    assert _wall(business_add(tuesday, HOURS, Calendar(zone=CHICAGO, hours=mondays_only))) == (2026, 4, 20, 9, 0)
    with pytest.raises(NoWorkingTime, match="no working time in the 100 years"):
        business_add(tuesday, HOURS, Calendar(zone=CHICAGO, hours=mondays_only, holidays=every_monday))


def test_naive_moments_and_negative_durations_are_refused():
    with pytest.raises(ValueError, match="aware"):
        business_add(datetime(2026, 4, 13, 10, 0), HOURS, _calendar())
    with pytest.raises(ValueError, match="negative"):
        business_add(_at(CHICAGO, 2026, 4, 13, 10, 0), -HOURS, _calendar())


# ---------- business_until ----------


def test_until_hours_count_working_time():
    friday = _at(CHICAGO, 2026, 4, 10, 15, 0)
    assert _wall(business_until("PT4H", friday, _calendar())) == (2026, 4, 13, 10, 0)
    assert _wall(business_until("PT90M", friday, _calendar())) == (2026, 4, 10, 16, 30)
    assert _wall(business_until("PT1.5S", friday, _calendar())) == (2026, 4, 10, 15, 0)


def test_until_a_day_is_the_same_time_on_the_next_working_day():
    calendar = _calendar(holidays=["2026-04-14"])
    assert _wall(business_until("P1D", _at(CHICAGO, 2026, 4, 10, 15, 0), calendar)) == (2026, 4, 13, 15, 0)  # Fri → Mon
    assert _wall(business_until("P1D", _at(CHICAGO, 2026, 4, 13, 15, 0), calendar)) == (2026, 4, 15, 15, 0)  # holiday skipped
    assert _wall(business_until("P2DT1H", _at(CHICAGO, 2026, 4, 9, 16, 30), calendar)) == (
        2026,
        4,
        15,
        8,
        30,
    )  # Fri, Mon, then the last hour: 30 min Mon, holiday, 30 min Wed


def test_until_a_day_started_outside_hours_counts_from_the_next_opening():
    saturday = _at(CHICAGO, 2026, 4, 11, 10, 0)
    assert _wall(business_until("P1D", saturday, _calendar())) == (2026, 4, 14, 8, 0)
    assert _wall(business_until("P1DT1H", saturday, _calendar())) == (2026, 4, 14, 9, 0)


def test_until_a_day_landing_in_a_break_moves_to_the_next_opening():
    short_friday = dict(OFFICE, mon=[["08:00", "12:00"], ["13:00", "17:00"]], fri=[["08:00", "12:00"]])
    calendar = _calendar(short_friday)
    assert _wall(business_until("P1D", _at(CHICAGO, 2026, 4, 10, 11, 30), calendar)) == (2026, 4, 13, 11, 30)
    assert _wall(business_until("P1D", _at(CHICAGO, 2026, 4, 9, 12, 30), calendar)) == (2026, 4, 13, 8, 0)  # Fri closed at 12:30
    assert _wall(business_until("P2D", _at(CHICAGO, 2026, 4, 9, 12, 30), calendar)) == (2026, 4, 13, 13, 0)  # Monday's lunch
    assert _wall(business_until("P3D", _at(CHICAGO, 2026, 4, 9, 12, 30), calendar)) == (2026, 4, 14, 12, 30)


def test_until_a_day_across_the_dst_change_keeps_the_local_time():
    assert _wall(business_until("P1D", _at(CHICAGO, 2026, 3, 6, 15, 0), _calendar())) == (2026, 3, 9, 15, 0)
    assert _wall(business_until("P1D", _at(BERLIN, 2026, 10, 23, 9, 0), _calendar(zone="Europe/Berlin")), BERLIN) == (2026, 10, 26, 9, 0)


def test_until_weeks_move_calendar_weeks_then_to_working_time():
    calendar = _calendar(holidays=["2026-04-20"])
    monday = _at(CHICAGO, 2026, 4, 13, 10, 0)
    assert _wall(business_until("P1W", monday, calendar)) == (2026, 4, 21, 8, 0)  # next Monday is a holiday
    assert _wall(business_until("P2W", monday, calendar)) == (2026, 4, 27, 10, 0)


def test_until_an_absolute_date_time_stays_absolute_even_out_of_hours():
    sunday_night = business_until("2026-04-12T23:30:00+02:00", _at(CHICAGO, 2026, 4, 1, 10, 0), _calendar())
    assert sunday_night == datetime(2026, 4, 12, 21, 30, tzinfo=UTC) and sunday_night.tzinfo is UTC


@pytest.mark.parametrize("text", ["tomorrow", "2026-04-12T23:30:00", "P", "PT", "4h"])
def test_until_refuses_anything_else_with_the_reason(text):
    with pytest.raises(ValueError, match="neither an ISO 8601 duration nor a date-time with a UTC offset"):
        business_until(text, _at(CHICAGO, 2026, 4, 13, 10, 0), _calendar())


# ---------- calendar_problems ----------


def test_a_valid_calendar_has_no_problems():
    split = dict(OFFICE, mon=[["13:00", "17:00"], ["08:00", "12:00"]], sat=[["22:00", "24:00"]], sun=[["00:00", "06:00"]])
    assert calendar_problems(split, [{"date": "2026-12-25", "name": "Christmas"}], "Europe/Berlin") == []
    assert calendar_problems(OFFICE, [], "") == []  # blank zone = the tenant's


def test_each_problem_is_reported_at_its_pointer_with_the_reason():
    weekly_hours = {
        "mon": [["8:00", "17:00"]],
        "tue": [["17:00", "08:00"]],
        "wed": [["08:00", "12:00"], ["11:00", "17:00"]],
        "thu": [["09:00", "09:00"]],
        "fri": [["24:00", "24:00"], ["08:00"]],
        "sat": "08:00-12:00",
        "funday": [],
    }
    holidays = [{"date": "2026-02-30", "name": "No such day"}, {"date": "2026-12-25"}, {"date": "2026-12-25", "name": "Again"}, "x"]
    problems = dict(calendar_problems(weekly_hours, holidays, "Mars/Olympus"))
    assert problems == {
        "/weekly_hours/funday": "'funday' is not a day: use mon, tue, wed, thu, fri, sat or sun",
        "/weekly_hours/mon/0/0": "'8:00' is not a time of day: use HH:MM, 24-hour (00:00 to 24:00)",
        "/weekly_hours/tue/0/1": "closes at 08:00, before it opens at 17:00: an interval cannot cross midnight "
        "(split it into 17:00-24:00 and the next day's 00:00-08:00)",
        "/weekly_hours/wed/1": "11:00-17:00 overlaps 08:00-12:00",
        "/weekly_hours/thu/0/1": "closes when it opens (09:00): an interval needs some time",
        "/weekly_hours/fri/0/0": "cannot open at 24:00: that is the next day's 00:00",
        "/weekly_hours/fri/1": 'must be a pair of times such as ["08:00", "17:00"]',
        "/weekly_hours/sat": 'must be a list of [opening, closing] pairs such as [["08:00", "17:00"]] (empty when closed)',
        "/holidays/0/date": "'2026-02-30' is not a date: use YYYY-MM-DD, such as 2026-12-25",
        "/holidays/2/date": "2026-12-25 is already listed (holiday 2)",
        "/holidays/3": 'must be an object with a date and a name, such as {"date": "2026-12-25", "name": "Christmas"}',
        "/time_zone": "'Mars/Olympus' is not a known time zone: use an IANA name such as Europe/Berlin",
    }


def test_times_past_midnight_and_shapes_that_are_not_lists_are_refused():
    assert dict(calendar_problems({"mon": [["08:00", "24:01"]]}, {}, "UTC")) == {
        "/weekly_hours/mon/0/1": "'24:01' is not a time of day: use HH:MM, 24-hour (00:00 to 24:00)",
        "/holidays": 'must be a list of holidays such as [{"date": "2026-12-25", "name": "Christmas"}]',
    }
    assert calendar_problems([], [], "UTC")[0][0] == "/weekly_hours"


def test_calendar_from_refuses_what_calendar_problems_finds():
    with pytest.raises(CalendarInvalid) as refused:
        calendar_from(weekly_hours={"mon": [["17:00", "08:00"]]}, holidays=[], time_zone="UTC")
    assert refused.value.problems[0][0] == "/weekly_hours/mon/0/1"


# ---------- the tenant's calendar and its one write (database) ----------


@pytest.mark.django_db
def test_without_a_row_the_tenant_gets_office_hours_in_its_own_zone(world):
    Tenant.objects.filter(pk=world.acme.tenant.pk).update(time_zone="America/Chicago")
    with schema_context(world.acme.schema):
        BusinessCalendar.objects.all().delete()
        calendar = calendar_current()
    assert calendar.zone.key == "America/Chicago" and not calendar.holidays
    assert calendar.hours == (((480, 1020),),) * 5 + ((), ())


@pytest.mark.django_db
def test_the_saved_calendar_is_current_and_a_blank_zone_means_the_tenants(world):
    Tenant.objects.filter(pk=world.acme.tenant.pk).update(time_zone="Europe/Berlin")
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        calendar_update(
            weekly_hours=dict(OFFICE, sat=[["09:00", "12:00"]]),
            holidays=[{"date": "2026-12-25", "name": " Christmas "}],
            time_zone="",
            actor=admin,
        )
        calendar = calendar_current()
        row = BusinessCalendar.objects.get(name="default")
    assert calendar.zone.key == "Europe/Berlin" and calendar.hours[5] == ((540, 720),)
    assert [day.isoformat() for day in calendar.holidays] == ["2026-12-25"]
    assert row.holidays == [{"date": "2026-12-25", "name": "Christmas"}]
    with schema_context(world.globex.schema):
        assert calendar_current().hours[5] == ()  # the other tenant keeps its own


@pytest.mark.django_db
def test_calendar_update_is_audited_with_what_changed(world):
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        calendar_update(weekly_hours=OFFICE, holidays=[{"date": "2026-07-03", "name": "Independence Day"}], time_zone="", actor=admin)
        calendar_update(
            weekly_hours=dict(OFFICE, fri=[["08:00", "12:00"]]),
            holidays=[{"date": "2026-12-25", "name": "Christmas"}],
            time_zone="America/Chicago",
            actor=admin,
        )
        event = AuditEvent.objects.filter(action="business_calendar.updated").first()
    assert event is not None and event.actor_email == admin.email and event.target_type == "workflows.businesscalendar"
    assert event.data == {
        "time_zone": {"from": "", "to": "America/Chicago"},
        "weekly_hours": {"fri": {"from": [["08:00", "17:00"]], "to": [["08:00", "12:00"]]}},
        "holidays_added": [{"date": "2026-12-25", "name": "Christmas"}],
        "holidays_removed": [{"date": "2026-07-03", "name": "Independence Day"}],
    }


@pytest.mark.django_db
def test_calendar_update_refuses_planners_and_invalid_data_and_writes_nothing(world):
    with schema_context(world.acme.schema):
        BusinessCalendar.objects.all().delete()
        with pytest.raises(CalendarRefused, match="Only a tenant admin"):
            calendar_update(weekly_hours=OFFICE, holidays=[], time_zone="", actor=world.acme.users["planner"])
        with pytest.raises(CalendarInvalid) as refused:
            calendar_update(weekly_hours=CLOSED, holidays=[], time_zone="Nowhere/Land", actor=Actor.system("tests"))
        assert [pointer for pointer, _reason in refused.value.problems] == ["/weekly_hours", "/time_zone"]
        assert not BusinessCalendar.objects.exists()
        assert not AuditEvent.objects.filter(action="business_calendar.updated").exists()
