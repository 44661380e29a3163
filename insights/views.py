"""The outcomes page: the five business-case metrics, baseline against now, for tenant staff."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django import forms
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from accounts.permissions import tenant_role_required
from insights.presentation import METRIC_INFO, metric_cards, template_names
from insights.selectors import DAYS_DEFAULT, DAYS_MAX, DAYS_MIN, OutcomePeriods, PeriodInvalid, outcome_periods, outcomes, tenant_zone


class OutcomePeriodForm(forms.Form):
    """The period picker; empty baseline dates mean the default baseline."""

    days = forms.IntegerField(
        min_value=DAYS_MIN,
        max_value=DAYS_MAX,
        initial=DAYS_DEFAULT,
        label=_("Now: the last … days"),
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    baseline_start = forms.DateField(required=False, label=_("Baseline from"), widget=forms.DateInput(attrs={"type": "date"}))
    baseline_end = forms.DateField(required=False, label=_("Baseline to (included)"), widget=forms.DateInput(attrs={"type": "date"}))


def _periods(form: OutcomePeriodForm, time_zone: str) -> tuple[OutcomePeriods, bool]:
    """The periods asked for; the defaults (and False) when the form or the periods are not valid,
    with the reason on the form."""
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            return (
                outcome_periods(
                    time_zone=time_zone,
                    days=data["days"],
                    baseline_start=data["baseline_start"],
                    baseline_end=data["baseline_end"],
                ),
                True,
            )
        except PeriodInvalid as problem:
            form.add_error(problem.field, problem.message[:1].upper() + problem.message[1:] + ".")
    return outcome_periods(time_zone=time_zone), not form.is_bound


def _days(start: datetime, end: datetime, time_zone: str) -> tuple[date, date]:
    """A period's first and last day in the tenant's time zone (the end is exclusive)."""
    zone = tenant_zone(time_zone)
    return start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone).date()


@tenant_role_required()
def outcomes_page(request):
    asked = {key: value for key, value in request.GET.items() if key in OutcomePeriodForm.base_fields and value.strip()}
    form = OutcomePeriodForm({"days": str(DAYS_DEFAULT), **asked} if asked else None)
    time_zone = getattr(request.tenant, "time_zone", "") or ""
    periods, valid = _periods(form, time_zone)
    result = outcomes(periods)
    if not form.is_bound:
        form = OutcomePeriodForm(initial={"days": periods.days})
    names = template_names()
    producers = sorted({key for info in METRIC_INFO.values() for key in info.templates})
    context = {
        "form": form,
        "valid": valid,
        "periods": periods,
        "baseline_days": _days(periods.baseline.start, periods.baseline.end, periods.time_zone),
        "outcomes": result,
        "cards": metric_cards(result),
        "producers": [(key, names.get(key, key)) for key in producers],
    }
    return render(request, "insights/outcomes.html", context, status=200 if valid else 400)
