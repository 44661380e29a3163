"""The exception queue at /exceptions/: every case that needs a person, most severe first and
then the ones due soonest, with filters (status, type, severity, owner, overdue) and a search by
shipment reference or reason; a row takes its case ("Assign to me") or closes it with its root
cause. The home page's exception counts link here with the same filters.

Tenant staff only; the writes go through `logistics.services` (`exception_assign`,
`exception_close`), which lock the case, refuse a closed one and audit the change."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.permissions import tenant_role_required
from logistics import selectors, services
from logistics.models import ExceptionCase, ExceptionStatus, ExceptionType, RootCause, Severity

PER_PAGE = 25
FILTER_NAMES = ("q", "status", "type", "severity", "owner", "overdue")
SEVERITY_BADGES: dict[str, str] = {Severity.CRITICAL: "danger", Severity.HIGH: "warn", Severity.MEDIUM: "info", Severity.LOW: "muted"}
STATUS_BADGES: dict[str, str] = {ExceptionStatus.OPEN: "warn", ExceptionStatus.IN_PROGRESS: "info", ExceptionStatus.CLOSED: "ok"}
SHIPMENTS_PATH = "/shipments/"  # the shipment pages (issue 6, portal): /shipments/<reference>/


def shipment_url(reference: str) -> str:
    return f"{SHIPMENTS_PATH}{quote(reference, safe='')}/"


OWNER_CHOICES = [("", gettext_lazy("Anyone")), ("me", gettext_lazy("Me")), ("none", gettext_lazy("Nobody yet"))]


class ExceptionFilterForm(forms.Form):
    """The queue's filters; a value that is not a choice is dropped rather than refused, so an
    old bookmark still opens the queue."""

    q = forms.CharField(required=False, max_length=100, label=gettext_lazy("Search"))
    status = forms.ChoiceField(
        required=False, label=gettext_lazy("Status"), choices=[("", gettext_lazy("To handle")), *ExceptionStatus.choices]
    )
    type = forms.ChoiceField(
        required=False,
        label=gettext_lazy("Type"),
        choices=[("", gettext_lazy("Any type")), *((value, gettext_lazy(label)) for value, label in ExceptionType.choices)],
    )
    severity = forms.ChoiceField(
        required=False, label=gettext_lazy("Priority"), choices=[("", gettext_lazy("Any priority")), *reversed(Severity.choices)]
    )
    owner = forms.ChoiceField(required=False, label=gettext_lazy("Owner"), choices=OWNER_CHOICES)
    overdue = forms.BooleanField(required=False, label=gettext_lazy("Overdue only"))

    def values(self) -> dict[str, Any]:
        self.is_valid()
        return {name: self.cleaned_data.get(name) or "" for name in FILTER_NAMES if name not in self.errors}


class CloseForm(forms.Form):
    root_cause = forms.ChoiceField(
        label=gettext_lazy("Root cause"), choices=[("", gettext_lazy("Choose the root cause")), *RootCause.choices]
    )
    resolution = forms.CharField(
        required=False, max_length=2000, label=gettext_lazy("What was done"), widget=forms.Textarea(attrs={"rows": 2})
    )


def _queue_filter(values: dict[str, Any], user: Any) -> selectors.ExceptionQueueFilter:
    owner = {"me": user.pk, "none": -1}.get(values.get("owner", ""))
    return selectors.ExceptionQueueFilter(
        status=values.get("status", ""),
        type=values.get("type", ""),
        severity=values.get("severity", ""),
        owner_id=owner,
        overdue_at=timezone.now() if values.get("overdue") else None,
        query=values.get("q", ""),
    )


def _row(case: ExceptionCase, now) -> dict[str, Any]:
    still_open = case.status != ExceptionStatus.CLOSED
    return {
        "case": case,
        "severity_badge": SEVERITY_BADGES.get(case.severity, "muted"),
        "status_badge": STATUS_BADGES.get(case.status, "muted"),
        "overdue": still_open and case.sla_due_at is not None and case.sla_due_at < now,
        "open": still_open,
        "shipment_url": shipment_url(case.shipment.reference) if case.shipment else "",
    }


def _kept_query(request: HttpRequest) -> str:
    """The filters the page was showing, to come back to after an action."""
    kept = {name: request.POST.get(f"keep_{name}", "") for name in (*FILTER_NAMES, "page")}
    return urlencode({name: value for name, value in kept.items() if value})


@tenant_role_required()
def exceptions(request: HttpRequest) -> HttpResponse:
    form = ExceptionFilterForm(request.GET)
    values = form.values()
    cases = selectors.exceptions_queue(_queue_filter(values, request.user))
    page = Paginator(cases, PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    shown = {name: value for name, value in values.items() if value}
    context = {
        "form": form,
        "values": values,
        "page": page,
        "rows": [_row(case, now) for case in page.object_list],
        "filtered": bool(shown),
        "keep": {name: str(value) for name, value in shown.items()},
        "root_causes": RootCause.choices,
    }
    return render(request, "logistics/exceptions.html", context)


def _case_or_404(exception_id: int) -> ExceptionCase:
    case = selectors.exceptions_list(open_only=False).filter(pk=exception_id).first()
    if case is None:
        raise Http404("No such exception in this workspace.")
    return case


def _back(request: HttpRequest, case: ExceptionCase) -> HttpResponse:
    query = _kept_query(request)
    return redirect(f"{reverse('exceptions:list')}{'?' + query if query else ''}#exception-{case.pk}")


@require_POST
@tenant_role_required()
def exception_assign_to_me(request: HttpRequest, exception_id: int) -> HttpResponse:
    case = _case_or_404(exception_id)
    try:
        services.exception_assign(exception=case, owner=request.user, actor=request.user)
    except services.ExceptionRefused as refused:
        messages.error(request, _("Exception #%(number)s: %(reason)s") % {"number": case.pk, "reason": refused.message})
    else:
        messages.success(request, _("Exception #%(number)s is yours now: it shows as in progress.") % {"number": case.pk})
    return _back(request, case)


@require_POST
@tenant_role_required()
def exception_close_view(request: HttpRequest, exception_id: int) -> HttpResponse:
    case = _case_or_404(exception_id)
    form = CloseForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            _("Exception #%(number)s is still open: choose its root cause to close it (carrier reviews count them).") % {"number": case.pk},
        )
        return _back(request, case)
    try:
        services.exception_close(
            exception=case, root_cause=form.cleaned_data["root_cause"], resolution=form.cleaned_data["resolution"], actor=request.user
        )
    except services.ExceptionRefused as refused:
        messages.error(request, _("Exception #%(number)s: %(reason)s") % {"number": case.pk, "reason": refused.message})
    else:
        messages.success(
            request,
            _("Exception #%(number)s closed: %(root_cause)s.")
            % {"number": case.pk, "root_cause": RootCause(form.cleaned_data["root_cause"]).label.lower()},
        )
    return _back(request, case)
