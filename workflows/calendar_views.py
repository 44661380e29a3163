"""The business calendar page: working hours per weekday, the time zone and holidays that
business-time waits count in, with a preview of what a wait started now would do.

Tenant staff may look; tenant admins (and support sessions) change it. Opening hours are typed
as text ("08:00-12:00, 13:00-17:00"); the view only splits that text, and every rule about the
times themselves is `calendar_problems`', whose pointers come back next to the field they concern."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import partial
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.forms.utils import flatatt
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Role
from accounts.permissions import tenant_role_required
from workflows.calendars import (
    DAYS,
    Calendar,
    CalendarInvalid,
    CalendarRefused,
    business_until,
    calendar_current,
    calendar_from,
    calendar_openings,
    calendar_problems,
    calendar_row,
    calendar_update,
    known_time_zones,
    tenant_time_zone,
)
from workflows.models import BusinessCalendar, default_weekly_hours

DAY_NAMES = dict(
    zip(
        DAYS,
        (
            gettext_lazy("Monday"),
            gettext_lazy("Tuesday"),
            gettext_lazy("Wednesday"),
            gettext_lazy("Thursday"),
            gettext_lazy("Friday"),
            gettext_lazy("Saturday"),
            gettext_lazy("Sunday"),
        ),
        strict=True,
    )
)
EDITORS = (Role.TENANT_ADMIN,)
HOLIDAY_PREFIX = "holidays"
BLANK_HOLIDAY_ROWS = 2
PREVIEW_WAITS = (("PT4H", gettext_lazy("A 4-hour wait")), ("P1D", gettext_lazy("A 1-day wait")))
_SEPARATOR = re.compile(r"\s*[-–—]\s*")
_SHORT_HOUR = re.compile(r"^\d:\d\d$")


def _can_edit(user) -> bool:
    return user.role in EDITORS or bool(user.support_grant_id)


def _intervals_text(intervals: Any) -> str:
    """Stored intervals as the page writes them (whatever a bad row holds is shown, not hidden)."""
    if not isinstance(intervals, list):
        return str(intervals)
    return ", ".join(f"{pair[0]}-{pair[1]}" if isinstance(pair, list) and len(pair) == 2 else str(pair) for pair in intervals)


def _stored_hours(row: BusinessCalendar | None) -> dict[str, Any]:
    if row is None:
        return default_weekly_hours()
    return row.weekly_hours if isinstance(row.weekly_hours, dict) else {}


def _zone_choices(tenant_zone: str) -> list[tuple[str, str]]:
    return [("", _("%(zone)s (the tenant's time zone)") % {"zone": tenant_zone})] + [(zone, zone) for zone in known_time_zones()]


class ZoneSelect(forms.Select):
    """The ~600 zone names rendered in one pass: Django's template per option takes 150 ms here."""

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        chosen = "" if value is None else str(value)
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            ((zone, mark_safe(" selected") if str(zone) == chosen else "", label) for zone, label in self.choices),
        )
        return format_html('<select name="{}"{}>{}</select>', name, flatatt(self.build_attrs(self.attrs, attrs)), options)


class CalendarForm(forms.Form):
    """The zone and one text input per weekday; the day inputs are added in __init__."""

    time_zone = forms.ChoiceField(
        required=False,
        label=gettext_lazy("Time zone"),
        widget=ZoneSelect,
        help_text=gettext_lazy("Opening hours and holidays are in this zone's local time."),
    )

    def __init__(self, *args: Any, tenant_zone: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = _zone_choices(tenant_zone)  # type: ignore[attr-defined]
        for day in DAYS:
            self.fields[day] = forms.CharField(
                required=False,
                label=DAY_NAMES[day],
                max_length=200,
                widget=forms.TextInput(attrs={"placeholder": _("Closed"), "autocomplete": "off", "spellcheck": "false"}),
            )

    def day_fields(self) -> list[forms.BoundField]:
        return [self[day] for day in DAYS]


class HolidayForm(forms.Form):
    date = forms.CharField(
        required=False,
        label=gettext_lazy("Date"),
        max_length=20,
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD", "inputmode": "numeric", "autocomplete": "off"}),
    )
    name = forms.CharField(required=False, label=gettext_lazy("Name"), max_length=80)


HolidayFormSet = forms.formset_factory(HolidayForm, extra=BLANK_HOLIDAY_ROWS, can_delete=True)


@dataclass(frozen=True)
class Opening:
    day: str
    hours: str
    now: bool


@dataclass(frozen=True)
class Preview:
    """What the page shows about the calendar: when sample waits started now end, and when it opens."""

    zone: str
    now: str
    waits: list[tuple[str, str]]
    openings: list[Opening]
    problem: str = ""


def _local(moment: datetime, calendar: Calendar) -> datetime:
    return moment.astimezone(calendar.zone)


def _moment_text(moment: datetime, calendar: Calendar) -> str:
    local = _local(moment, calendar)
    # Day and month names in the reader's language ("Sat 28 Nov 2026" in English, "Sa 28 Nov 2026" in German).
    return f"{date_format(local, 'D d M Y')}, {local:%H:%M} {local.tzname()}"


def _preview(shown: Callable[[], Calendar], now: datetime) -> Preview:
    try:
        calendar = shown()
    except CalendarInvalid as error:  # a row changed behind the page's back (admin, SQL)
        return Preview(
            zone="", now="", waits=[], openings=[], problem=_("the saved calendar cannot be used: %(reason)s") % {"reason": error}
        )
    zone = str(calendar.zone.key)
    try:
        waits = [(str(label), _moment_text(business_until(text, now, calendar), calendar)) for text, label in PREVIEW_WAITS]
        stretches = calendar_openings(calendar, now, 5)
    except ValueError as error:  # a calendar that never opens
        return Preview(zone=zone, now=_moment_text(now, calendar), waits=[], openings=[], problem=str(error))
    openings = []
    for opening, closing in stretches:
        start, end = _local(opening, calendar), _local(closing, calendar)
        if end.date() == start.date():
            until = f"{end:%H:%M}"
        elif end.date() == start.date() + timedelta(days=1) and end.time() == time(0):
            until = "24:00"
        else:
            until = f"{date_format(end, 'D d M')} {end:%H:%M}"
        openings.append(
            Opening(day=date_format(start, "D d M Y"), hours=f"{start:%H:%M}–{until} {start.tzname()}", now=opening <= now < closing)
        )
    return Preview(zone=zone, now=_moment_text(now, calendar), waits=waits, openings=openings)


def _initial() -> tuple[dict[str, Any], list[dict[str, str]]]:
    row = calendar_row()
    weekly_hours = _stored_hours(row)
    initial: dict[str, Any] = {"time_zone": row.time_zone if row is not None else ""}
    initial |= {day: _intervals_text(weekly_hours.get(day, [])) for day in DAYS}
    stored = row.holidays if row is not None and isinstance(row.holidays, list) else []
    holidays = [{"date": str(h.get("date", "")), "name": str(h.get("name", ""))} for h in stored if isinstance(h, dict)]
    return initial, holidays


def _parse_day(text: str) -> tuple[list[list[str]], str]:
    """'08:00-12:00, 13:00-17:00' as [["08:00", "12:00"], ["13:00", "17:00"]], or the reason it is not."""
    intervals = []
    for part in (piece.strip() for piece in text.replace(";", ",").split(",")):
        if not part:
            continue
        times = _SEPARATOR.split(part)
        if len(times) != 2 or not all(times):
            return [], _(
                "“%(part)s” is not an interval: write opening and closing time, such as 08:00-12:00 (commas between intervals)"
            ) % {"part": part}
        intervals.append([f"0{time}" if _SHORT_HOUR.match(time) else time for time in times])
    return intervals, ""


@dataclass
class Submission:
    weekly_hours: dict[str, list[list[str]]]
    holidays: list[dict[str, str]]
    time_zone: str
    holiday_forms: list[forms.Form]  # the form each entry of `holidays` came from


def _submission(form: CalendarForm, formset: Any) -> Submission | None:
    """The posted calendar in its stored shape, or None after putting each problem next to its field."""
    valid = form.is_valid() & formset.is_valid()
    weekly_hours: dict[str, list[list[str]]] = {}
    for day in DAYS:
        intervals, reason = _parse_day(form.cleaned_data.get(day, "") or "")
        if reason:
            form.add_error(day, reason)
            valid = False
        else:
            weekly_hours[day] = intervals
    holidays, holiday_forms = [], []
    for holiday_form in formset.forms:
        data = getattr(holiday_form, "cleaned_data", {})
        if data.get("DELETE") or not (data.get("date") or data.get("name")):
            continue
        holidays.append({"date": (data.get("date") or "").strip(), "name": (data.get("name") or "").strip()})
        holiday_forms.append(holiday_form)
    submission = Submission(weekly_hours, holidays, form.cleaned_data.get("time_zone", "") or "", holiday_forms)
    problems = calendar_problems(weekly_hours, holidays, submission.time_zone)
    if not valid:  # days that did not parse are missing, so "no opening hours at all" may be untrue
        problems = [problem for problem in problems if problem[0] != "/weekly_hours"]
    _place_problems(problems, form, submission)
    return submission if valid and not problems else None


def _place_problems(problems: list[tuple[str, str]], form: CalendarForm, submission: Submission) -> None:
    """Each (pointer, reason) from the calendar checks as an error on the input it concerns."""
    for pointer, reason in problems:
        parts = pointer.strip("/").split("/")
        if parts[0] == "weekly_hours" and len(parts) > 1 and parts[1] in DAYS:
            day = parts[1]
            intervals = submission.weekly_hours.get(day, [])
            if len(parts) > 2 and len(intervals) > 1:  # say which of the day's intervals, unless the reason does
                opening, closing = intervals[int(parts[2])]
                if not reason.startswith(f"{opening}-{closing}"):
                    reason = f"{opening}-{closing}: {reason}"
            form.add_error(day, reason)
        elif parts[0] == "holidays" and len(parts) > 1:
            holiday_form = submission.holiday_forms[int(parts[1])]
            field = parts[2] if len(parts) > 2 and parts[2] in ("date", "name") else None
            holiday_form.add_error(field, reason)
        elif parts[0] == "time_zone":
            form.add_error("time_zone", reason)
        else:
            form.add_error(None, reason)


def _with_more_rows(data: QueryDict) -> QueryDict:
    more = data.copy()
    key = f"{HOLIDAY_PREFIX}-TOTAL_FORMS"
    try:
        total = int(more.get(key, "0"))
    except ValueError:
        total = 0
    more[key] = str(min(total, 200) + BLANK_HOLIDAY_ROWS)
    return more


@tenant_role_required()
def calendar(request):
    tenant_zone = tenant_time_zone()
    can_edit = _can_edit(request.user)
    now = timezone.now()
    status = 200
    previewing = False
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied(_("Only a tenant admin can change the business calendar."))
        action = request.POST.get("action", "save")
        data = _with_more_rows(request.POST) if action == "more_holidays" else request.POST
        form = CalendarForm(data, tenant_zone=tenant_zone)
        formset = HolidayFormSet(data, prefix=HOLIDAY_PREFIX)
        submission = _submission(form, formset) if action != "more_holidays" else None
        if submission is not None and action == "save":
            try:
                calendar_update(
                    weekly_hours=submission.weekly_hours,
                    holidays=submission.holidays,
                    time_zone=submission.time_zone,
                    actor=request.user,
                )
            except CalendarRefused as error:
                raise PermissionDenied(str(error)) from error
            except CalendarInvalid as error:
                _place_problems(error.problems, form, submission)
            else:
                messages.success(request, _("Business calendar saved. New business-time waits count in these hours."))
                return redirect(reverse("workflows:calendar"))
        if submission is not None and action == "preview":
            previewing = True
            shown: Callable[[], Calendar] = partial(
                calendar_from,
                weekly_hours=submission.weekly_hours,
                holidays=submission.holidays,
                time_zone=submission.time_zone or tenant_zone,
            )
        else:
            shown = calendar_current
        if action != "more_holidays" and (form.errors or any(f.errors for f in formset.forms)):
            status = 400
    else:
        initial, holidays = _initial()
        form = CalendarForm(initial=initial, tenant_zone=tenant_zone)
        formset = HolidayFormSet(initial=holidays, prefix=HOLIDAY_PREFIX)
        shown = calendar_current
    row = calendar_row()
    context = {
        "form": form,
        "formset": formset,
        "can_edit": can_edit,
        "tenant_zone": tenant_zone,
        "preview": _preview(shown, now),
        "previewing": previewing,
        "saved": row,
        "saved_days": _saved_days(row),
        "has_errors": status == 400,
    }
    return render(request, "workflows/calendar.html", context, status=status)


def _saved_days(row: BusinessCalendar | None) -> list[tuple[str, str]]:
    weekly_hours = _stored_hours(row)
    return [(str(DAY_NAMES[day]), _intervals_text(weekly_hours.get(day, [])).replace("-", "–") or "Closed") for day in DAYS]
