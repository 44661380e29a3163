"""Business time: a tenant's working hours, holidays and time zone, and waits counted in them.

A `Calendar` is the parsed, immutable form of a `BusinessCalendar` row. Working time is real
elapsed time inside opening intervals, so the clock keeps its meaning across DST changes:

- An interval runs from the first instant the local clock shows its opening time to the last
  instant it shows its closing time (`24:00` = the next midnight). On the fall-back night an
  interval spanning the repeated hour is one hour longer, on the spring-forward night one hour
  shorter; an opening or closing inside the skipped hour is the moment of the change.
- Intervals are half-open: at the closing minute the office is closed. A moment outside every
  interval starts counting at the next opening. Holidays close the whole local day.
- Intervals never cross midnight (the editor splits a night shift into `22:00-24:00` and the next
  day's `00:00-06:00`); back-to-back intervals count as one stretch.

`calendar_problems` checks the stored shape and says what is wrong where (JSON pointers);
`calendar_update` is the one write, audited as "business_calendar.updated".
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction

from accounts.models import Role
from governance.services import Actor, audit_record
from tenants.db import connection
from tenants.selectors import tenants_filter
from workflows.models import BusinessCalendar, default_weekly_hours
from workflows.validation import DURATION_PATTERN

__all__ = [
    "DAYS",
    "Calendar",
    "CalendarInvalid",
    "CalendarRefused",
    "NoWorkingTime",
    "business_add",
    "business_until",
    "calendar_current",
    "calendar_from",
    "calendar_openings",
    "calendar_problems",
    "calendar_row",
    "calendar_update",
    "known_time_zones",
    "tenant_time_zone",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
DEFAULT_CALENDAR = "default"
MINUTES_PER_DAY = 24 * 60
HOLIDAY_NAME_LIMIT = 80
# How far ahead the search for working time goes before it gives up (holidays could, in
# principle, close every working day); long enough for any wait a workflow may ask for.
SEARCH_LIMIT_DAYS = 366 * 100
STRETCH_LIMIT = timedelta(days=7)
_CLOCK = re.compile(r"^(?P<hour>[0-2]\d):(?P<minute>[0-5]\d)$")
EDITOR_ROLES = frozenset({Role.TENANT_ADMIN.value, "system"})


class CalendarInvalid(ValueError):
    """Calendar data was refused; `problems` are (JSON pointer, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        pointer, reason = self.problems[0] if self.problems else ("", "invalid")
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''}: {pointer or '/'} {reason}")


class CalendarRefused(Exception):
    """The actor may not change the business calendar (or there is no tenant to change it for)."""


class NoWorkingTime(ValueError):
    """The calendar never opens, so a wait in business time would never end."""


@dataclass(frozen=True)
class Calendar:
    """Working time in one zone: per weekday (Monday first) the opening intervals as minutes
    after local midnight (closing ≤ 1440), and the local dates that are holidays."""

    zone: ZoneInfo
    hours: tuple[tuple[tuple[int, int], ...], ...]
    holidays: frozenset[date] = frozenset()

    def opens_on(self, day: date) -> bool:
        return bool(self.hours[day.weekday()]) and day not in self.holidays


# --- checking and parsing --------------------------------------------------------------------


def _minutes(text: Any) -> int | None:
    """'HH:MM' as minutes after midnight (24:00 allowed, as a closing time), or None."""
    match = _CLOCK.match(text) if isinstance(text, str) else None
    if not match:
        return None
    minutes = int(match["hour"]) * 60 + int(match["minute"])
    return minutes if minutes <= MINUTES_PER_DAY else None


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@cache
def known_time_zones() -> tuple[str, ...]:
    """IANA zone names, sorted (reading them scans the zone database, so once per process)."""
    return tuple(sorted(zoneinfo.available_timezones()))


def _day_problems(day: str, intervals: Any) -> list[tuple[str, str]]:
    at = f"/weekly_hours/{day}"
    if not isinstance(intervals, list):
        return [(at, 'must be a list of [opening, closing] pairs such as [["08:00", "17:00"]] (empty when closed)')]
    problems: list[tuple[str, str]] = []
    parsed: list[tuple[int, int, int]] = []
    for index, interval in enumerate(intervals):
        if not isinstance(interval, list) or len(interval) != 2:
            problems.append((f"{at}/{index}", 'must be a pair of times such as ["08:00", "17:00"]'))
            continue
        opening, closing = _minutes(interval[0]), _minutes(interval[1])
        for position, (text, minutes) in enumerate(zip(interval, (opening, closing), strict=True)):
            if minutes is None:
                problems.append((f"{at}/{index}/{position}", f"{text!r} is not a time of day: use HH:MM, 24-hour (00:00 to 24:00)"))
        if opening is None or closing is None:
            continue
        if opening == MINUTES_PER_DAY:
            problems.append((f"{at}/{index}/0", "cannot open at 24:00: that is the next day's 00:00"))
        elif closing == opening:
            problems.append((f"{at}/{index}/1", f"closes when it opens ({_clock(opening)}): an interval needs some time"))
        elif closing < opening:
            problems.append(
                (
                    f"{at}/{index}/1",
                    f"closes at {_clock(closing)}, before it opens at {_clock(opening)}: an interval cannot cross midnight "
                    f"(split it into {_clock(opening)}-24:00 and the next day's 00:00-{_clock(closing)})",
                )
            )
        else:
            parsed.append((opening, closing, index))
    parsed.sort()
    for (opening, closing, _index), (later_opening, later_closing, later_index) in zip(parsed, parsed[1:], strict=False):
        if later_opening < closing:
            problems.append(
                (f"{at}/{later_index}", f"{_clock(later_opening)}-{_clock(later_closing)} overlaps {_clock(opening)}-{_clock(closing)}")
            )
    return problems


def _holiday_problems(holidays: Any) -> list[tuple[str, str]]:
    if not isinstance(holidays, list):
        return [("/holidays", 'must be a list of holidays such as [{"date": "2026-12-25", "name": "Christmas"}]')]
    problems: list[tuple[str, str]] = []
    seen: dict[date, int] = {}
    for index, holiday in enumerate(holidays):
        at = f"/holidays/{index}"
        if not isinstance(holiday, dict):
            problems.append((at, 'must be an object with a date and a name, such as {"date": "2026-12-25", "name": "Christmas"}'))
            continue
        for key in sorted(set(holiday) - {"date", "name"}):
            problems.append((f"{at}/{key}", "is not a holiday field: a holiday has a date and a name"))
        name = holiday.get("name", "")
        if not isinstance(name, str) or len(name) > HOLIDAY_NAME_LIMIT:
            problems.append((f"{at}/name", f"must be text of at most {HOLIDAY_NAME_LIMIT} characters"))
        text = holiday.get("date")
        try:
            day = date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
        except ValueError:
            day = None
        if day is None:
            shown = "nothing" if text in (None, "") else repr(text)
            problems.append((f"{at}/date", f"{shown} is not a date: use YYYY-MM-DD, such as 2026-12-25"))
        elif day in seen:
            problems.append((f"{at}/date", f"{day.isoformat()} is already listed (holiday {seen[day] + 1})"))
        else:
            seen[day] = index
    return problems


def calendar_problems(weekly_hours: Any, holidays: Any, time_zone: Any) -> list[tuple[str, str]]:
    """Every reason the calendar data cannot be used, as (JSON pointer, reason); [] when it can.

    `time_zone` may be blank (the tenant's own zone applies)."""
    problems: list[tuple[str, str]] = []
    if not isinstance(weekly_hours, dict):
        problems.append(("/weekly_hours", "must be an object with the days mon, tue, wed, thu, fri, sat and sun"))
    else:
        for day in weekly_hours:
            if day not in DAYS:
                problems.append((f"/weekly_hours/{day}", f"{day!r} is not a day: use mon, tue, wed, thu, fri, sat or sun"))
        for day in DAYS:
            if day in weekly_hours:
                problems += _day_problems(day, weekly_hours[day])
        if not problems and not any(weekly_hours.get(day) for day in DAYS):
            problems.append(("/weekly_hours", "has no opening hours on any day: a wait in business time would never end"))
    problems += _holiday_problems(holidays)
    if not isinstance(time_zone, str):
        problems.append(("/time_zone", "must be the name of a time zone, such as Europe/Berlin (or empty for the tenant's)"))
    elif time_zone and time_zone not in known_time_zones():
        problems.append(("/time_zone", f"{time_zone!r} is not a known time zone: use an IANA name such as Europe/Berlin"))
    return problems


def calendar_from(*, weekly_hours: Any, holidays: Any, time_zone: str) -> Calendar:
    """A Calendar from stored data in the named zone; CalendarInvalid says what is wrong."""
    problems = calendar_problems(weekly_hours, holidays, time_zone)
    if not time_zone:
        problems.append(("/time_zone", "must be given here (the tenant's zone is resolved by calendar_current)"))
    if problems:
        raise CalendarInvalid(problems)
    hours = tuple(
        tuple(sorted((_minutes(opening) or 0, _minutes(closing) or 0) for opening, closing in weekly_hours.get(day, []))) for day in DAYS
    )
    return Calendar(
        zone=ZoneInfo(time_zone),
        hours=hours,
        holidays=frozenset(date.fromisoformat(holiday["date"]) for holiday in holidays),
    )


# --- reading the tenant's calendar -----------------------------------------------------------


def tenant_time_zone() -> str:
    """The current tenant's own zone (UTC on the public schema or when it is not set)."""
    zone = getattr(getattr(connection, "tenant", None), "time_zone", None)
    if not zone:  # schema_context() sets a stand-in tenant without its row
        zone = tenants_filter().filter(schema_name=connection.schema_name).values_list("time_zone", flat=True).first()
    return zone or "UTC"


def calendar_row() -> BusinessCalendar | None:
    return BusinessCalendar.objects.filter(name=DEFAULT_CALENDAR).first()


def calendar_current() -> Calendar:
    """The current tenant's "default" calendar, or Mon–Fri 08:00–17:00 when it has none, in the
    calendar's zone (or the tenant's when the calendar names none)."""
    row = calendar_row()
    if row is None:
        return calendar_from(weekly_hours=default_weekly_hours(), holidays=[], time_zone=tenant_time_zone())
    return calendar_from(weekly_hours=row.weekly_hours, holidays=row.holidays, time_zone=row.time_zone or tenant_time_zone())


# --- counting working time -------------------------------------------------------------------


def _instant(wall: datetime, zone: ZoneInfo, *, latest: bool) -> datetime:
    """The UTC instant when `zone`'s clock shows the naive `wall` time: the first such instant (the
    last with `latest`) when falling back repeats it, the moment of the change when springing
    forward skips it."""
    found = set()
    for fold in (0, 1):
        moment = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if moment.astimezone(zone).replace(tzinfo=None) == wall:
            found.add(moment)
    if found:
        return max(found) if latest else min(found)
    # Skipped: the change lies between the two readings; find the first second showing `wall` or later.
    readings = sorted(int(wall.replace(tzinfo=zone, fold=fold).timestamp()) for fold in (0, 1))
    before, after = readings
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def _at(day: date, minutes: int, zone: ZoneInfo, *, latest: bool) -> datetime:
    wall = datetime.combine(day + timedelta(days=minutes // MINUTES_PER_DAY), time((minutes % MINUTES_PER_DAY) // 60, minutes % 60))
    return _instant(wall, zone, latest=latest)


def _require_working_time(calendar: Calendar) -> None:
    if not any(calendar.hours):
        raise NoWorkingTime("the business calendar has no opening hours on any day, so business time never passes")


def _intervals(calendar: Calendar, since: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Working intervals (UTC, in order, none overlapping the one before) that end after `since`."""
    _require_working_time(calendar)
    day = since.astimezone(calendar.zone).date() - timedelta(days=1)
    last_closing: datetime | None = None
    for _ in range(SEARCH_LIMIT_DAYS):
        if day not in calendar.holidays:
            for opening_minutes, closing_minutes in calendar.hours[day.weekday()]:
                opening = _at(day, opening_minutes, calendar.zone, latest=False)
                closing = _at(day, closing_minutes, calendar.zone, latest=True)
                if last_closing is not None and opening < last_closing:
                    opening = last_closing  # a fall-back night can make intervals overlap in real time
                if closing <= opening:
                    continue
                last_closing = closing
                if closing > since:
                    yield opening, closing
        day += timedelta(days=1)
    raise NoWorkingTime(f"the business calendar has no working time in the {SEARCH_LIMIT_DAYS // 366} years after {since:%Y-%m-%d}")


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware date-time (with its UTC offset)")


def business_add(start: datetime, duration: timedelta, calendar: Calendar) -> datetime:
    """The UTC moment when `duration` of working time has passed, counting from `start`.

    Outside working hours counting starts at the next opening, so a zero duration there is that
    opening (and `start` itself during opening hours). A duration that ends exactly at a closing
    time ends then, not at the next opening. Raises NoWorkingTime (a ValueError) when the calendar
    never opens."""
    _aware(start, "start")
    if duration < timedelta(0):
        raise ValueError("a business-time duration cannot be negative")
    remaining = duration
    for opening, closing in _intervals(calendar, start):
        opening = max(opening, start)
        if closing - opening >= remaining:
            return (opening + remaining).astimezone(UTC)
        remaining -= closing - opening
    raise NoWorkingTime("the business calendar ran out of working time")  # _intervals raises first


def _working_day_after(day: date, count: int, calendar: Calendar) -> date:
    """The `count`-th working day after `day` (a weekday with opening hours that is no holiday)."""
    _require_working_time(calendar)
    for _ in range(SEARCH_LIMIT_DAYS):
        if count == 0:
            return day
        day += timedelta(days=1)
        if calendar.opens_on(day):
            count -= 1
    raise NoWorkingTime(f"the business calendar has no working day in the {SEARCH_LIMIT_DAYS // 366} years after {day:%Y-%m-%d}")


def _same_clock_on(moment: datetime, day: date, calendar: Calendar) -> datetime:
    local = moment.astimezone(calendar.zone)
    return _instant(datetime.combine(day, local.time()), calendar.zone, latest=False)


def business_until(text: str, now: datetime, calendar: Calendar) -> datetime:
    """`until` as a UTC moment in business time: an absolute date-time with its UTC offset stays
    as it is; an ISO 8601 duration counts in the calendar like this:

    1. Counting starts at the first working moment at or after `now` (now itself during opening
       hours, else the next opening).
    2. Years, months and weeks (`P1Y` = 365, `P1M` = 30, `P1W` = 7 calendar days, as for plain
       waits) move to the same local time of day that many calendar days later.
    3. Days count working days: `P1D` is the same local time of day on the next working day
       (a weekday with opening hours that is not a holiday), so Friday 15:00 + P1D is Monday 15:00.
    4. After steps 2 and 3, a moment outside working hours (a holiday, a lunch break, a day that
       closes earlier) moves on to the next opening.
    5. Hours, minutes and seconds count working time: `PT4H` is four working hours, so Friday
       15:00 + PT4H in an 08:00–17:00 week is Monday 10:00.

    Raises ValueError for text that is neither, and NoWorkingTime (a ValueError) when the calendar
    never opens."""
    _aware(now, "now")
    match = DURATION_PATTERN.match(text)
    if match is None:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"'{text}' is neither an ISO 8601 duration nor a date-time with a UTC offset")
        return moment.astimezone(UTC)
    parts = {name: value for name, value in match.groupdict().items() if value}
    moment = business_add(now, timedelta(0), calendar)
    calendar_days = int(parts.get("years", 0)) * 365 + int(parts.get("months", 0)) * 30 + int(parts.get("weeks", 0)) * 7
    if calendar_days:
        target = moment.astimezone(calendar.zone).date() + timedelta(days=calendar_days)
        moment = business_add(_same_clock_on(moment, target, calendar), timedelta(0), calendar)
    working_days = int(parts.get("days", 0))
    if working_days:
        target = _working_day_after(moment.astimezone(calendar.zone).date(), working_days, calendar)
        moment = business_add(_same_clock_on(moment, target, calendar), timedelta(0), calendar)
    working_time = timedelta(hours=int(parts.get("hours", 0)), minutes=int(parts.get("minutes", 0)), seconds=float(parts.get("seconds", 0)))
    return business_add(moment, working_time, calendar)


def calendar_openings(calendar: Calendar, after: datetime, count: int = 5) -> list[tuple[datetime, datetime]]:
    """The next `count` stretches of working time (UTC) that end after `after`; back-to-back
    intervals (a night shift across midnight) are one stretch, of at most a week (a calendar open
    around the clock would otherwise be one endless stretch)."""
    _aware(after, "after")
    stretches: list[tuple[datetime, datetime]] = []
    for opening, closing in _intervals(calendar, after):
        if stretches and stretches[-1][1] == opening and closing - stretches[-1][0] <= STRETCH_LIMIT:
            stretches[-1] = (stretches[-1][0], closing)
            continue
        if len(stretches) == count:
            break
        stretches.append((opening, closing))
    return stretches


# --- the one write ---------------------------------------------------------------------------


def _role(actor: Any) -> str:
    if isinstance(actor, Actor):
        return actor.kind
    if getattr(actor, "support_grant_id", None):
        return Role.TENANT_ADMIN.value  # MSP support sessions act as the tenant's admin
    return str(getattr(actor, "role", "") or "")


def _normalized(weekly_hours: dict[str, Any], holidays: list[dict[str, Any]], time_zone: str) -> dict[str, Any]:
    return {
        "weekly_hours": {day: sorted([list(interval) for interval in weekly_hours.get(day, [])]) for day in DAYS},
        "holidays": sorted(
            ({"date": holiday["date"], "name": str(holiday.get("name", "")).strip()} for holiday in holidays), key=lambda h: h["date"]
        ),
        "time_zone": time_zone,
    }


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the audit row records: the zone and each changed day as from/to, holidays added and removed."""
    changes: dict[str, Any] = {}
    if before["time_zone"] != after["time_zone"]:
        changes["time_zone"] = {"from": before["time_zone"], "to": after["time_zone"]}
    days = {
        day: {"from": before["weekly_hours"].get(day, []), "to": after["weekly_hours"][day]}
        for day in DAYS
        if before["weekly_hours"].get(day, []) != after["weekly_hours"][day]
    }
    if days:
        changes["weekly_hours"] = days
    old = {(h.get("date"), h.get("name", "")) for h in before["holidays"] if isinstance(h, dict)}
    new = {(h["date"], h["name"]) for h in after["holidays"]}
    if new - old:
        changes["holidays_added"] = [{"date": day, "name": name} for day, name in sorted(new - old)]
    if old - new:
        changes["holidays_removed"] = [{"date": day, "name": name} for day, name in sorted(old - new, key=str)]
    return changes


def calendar_update(*, weekly_hours: Any, holidays: Any, time_zone: str, actor: Any) -> BusinessCalendar:
    """Replace the tenant's default calendar (made on first save), audited with what changed.

    Raises CalendarRefused for anyone but a tenant admin (or a support session, or Baton itself)
    and CalendarInvalid with every problem for data the engine could not count with."""
    if connection.schema_name == "public":
        raise CalendarRefused("Business calendars belong to a tenant's workspace; this ran on the public schema.")
    if _role(actor) not in EDITOR_ROLES:
        raise CalendarRefused("Only a tenant admin can change the business calendar.")
    time_zone = time_zone.strip() if isinstance(time_zone, str) else time_zone
    problems = calendar_problems(weekly_hours, holidays, time_zone)
    if problems:
        raise CalendarInvalid(problems)
    after = _normalized(weekly_hours, holidays, time_zone)
    with transaction.atomic():
        calendar, _created = BusinessCalendar.objects.select_for_update().get_or_create(name=DEFAULT_CALENDAR)
        before = {"weekly_hours": calendar.weekly_hours, "holidays": calendar.holidays, "time_zone": calendar.time_zone}
        calendar.weekly_hours, calendar.holidays, calendar.time_zone = after["weekly_hours"], after["holidays"], after["time_zone"]
        calendar.save()
        audit_record(actor=actor, action="business_calendar.updated", target=calendar, data=_changes(before, after))
    return calendar
