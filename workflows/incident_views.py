"""The incidents queue: every run that stopped at a step for good and waits for an operator.

Open incidents with filters (workflow, step, error class, opened since) and counts by workflow
and error class; each row leads to its run, where one incident is retried (with corrected input
or context), restarted or cancelled. Many are retried at once here: the filter's matches are
counted on a confirmation page first, then `workflows.operations.incidents_retry` retries each in
its own transaction and reports what it skipped and why. Resolved incidents have their own tab.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from accounts.models import Role
from accounts.permissions import tenant_role_required
from workflows.forms import BulkRetryForm
from workflows.models import IncidentStatus
from workflows.operations import IncidentFilter, incidents_retry
from workflows.selectors import definitions_list, incident_counts, incident_filter_choices, incidents_list, incidents_queue

OPERATORS = (Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER)
INCIDENTS_PER_PAGE = 25
BULK_LIMIT = 1000
SINCE = {
    "1h": (gettext_lazy("the last hour"), timedelta(hours=1)),
    "24h": (gettext_lazy("the last 24 hours"), timedelta(hours=24)),
    "7d": (gettext_lazy("the last 7 days"), timedelta(days=7)),
    "30d": (gettext_lazy("the last 30 days"), timedelta(days=30)),
}


# --- filters -----------------------------------------------------------------------------------------


def _filter(params) -> tuple[IncidentFilter, dict[str, str]]:
    """The filter the query string (or the confirmation form) asks for, and its values to keep."""
    values = {name: str(params.get(name, "")).strip() for name in ("definition", "step", "error_class", "since")}
    if values["since"] not in SINCE:
        values["since"] = ""
    opened_after = timezone.now() - SINCE[values["since"]][1] if values["since"] else None
    incident_filter = IncidentFilter(
        definition=values["definition"], step_id=values["step"], error_class=values["error_class"], opened_after=opened_after
    )
    return incident_filter, values


def _filter_words(values: dict[str, str]) -> str:
    parts = []
    if values["definition"]:
        parts.append(_("workflow %(key)s") % {"key": values["definition"]})
    if values["step"]:
        parts.append(_("step %(step)s") % {"step": values["step"]})
    if values["error_class"]:
        parts.append(_("error class %(error_class)s") % {"error_class": values["error_class"]})
    if values["since"]:
        parts.append(_("opened in %(period)s") % {"period": SINCE[values["since"]][0]})
    return ", ".join(parts)


def _choices() -> dict[str, Any]:
    return {
        "definitions": definitions_list(),
        **incident_filter_choices(),
        "since_choices": [(key, label) for key, (label, _delta) in SINCE.items()],
    }


# --- pages -------------------------------------------------------------------------------------------


@tenant_role_required()
def incidents(request):
    tab = "resolved" if request.GET.get("tab") == "resolved" else "open"
    incident_filter, values = _filter(request.GET)
    listed = incidents_queue(filter=incident_filter, resolved=tab == "resolved")
    page = Paginator(listed, INCIDENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "tab": tab,
        "page": page,
        "values": values,
        "filtered": any(values.values()),
        "filter_words": _filter_words(values),
        "open_count": incidents_list(status=IncidentStatus.OPEN).count(),
        "can_operate": request.user.role in OPERATORS or bool(request.user.support_grant_id),
        "bulk_query": urlencode({name: value for name, value in values.items() if value}),
    }
    if request.htmx:
        return render(request, "workflows/_incident_results.html", context)
    context.update(_choices())
    context["counts"] = incident_counts()
    return render(request, "workflows/incidents.html", context)


@require_http_methods(["GET", "POST"])
@tenant_role_required(*OPERATORS)
def incidents_bulk_retry(request):
    """GET: how many open incidents the filter matches, and a button to retry them. POST: retry
    them (each in its own transaction) and show what was retried and what was skipped, and why."""
    params = request.POST if request.method == "POST" else request.GET
    incident_filter, values = _filter(params)
    matching = incidents_list(filter=incident_filter, status=IncidentStatus.OPEN).order_by("pk")  # the order a retry takes them in
    context: dict[str, Any] = {"values": values, "filter_words": _filter_words(values), "limit": BULK_LIMIT}
    if request.method == "POST":
        form = BulkRetryForm(request.POST)
        form.is_valid()
        outcome = incidents_retry(
            filter=incident_filter, actor=request.user, comment=form.cleaned_data.get("comment", ""), limit=BULK_LIMIT
        )
        skipped = incidents_list().filter(pk__in=list(outcome.skipped))
        context.update(
            {
                "outcome": outcome,
                "retried_runs": sorted(outcome.retried),
                "skipped": [{"incident": incident, "reason": outcome.skipped[incident.pk]} for incident in skipped],
            }
        )
        return render(request, "workflows/incidents_retry.html", context)
    count = matching.count()
    context.update({"form": BulkRetryForm(), "count": count, "will_retry": min(count, BULK_LIMIT), "sample": list(matching[:10])})
    return render(request, "workflows/incidents_retry.html", context)
