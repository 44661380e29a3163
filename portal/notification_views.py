"""The customer portal's notification preferences: which milestones of a customer account's
shipments are told, to whom (email to me, to an address, to everyone at the account, or a
webhook URL), when not (quiet hours in a time zone) and how bundled (immediately or a digest),
with pause and resume and the recent notifications and their status.

A customer user sees and changes their own account's subscriptions only: another account's id is
not found (404). Tenant staff see every account's (choosing the account when they add one);
tenant admins, planners, customer service and support sessions change them, as on the staff
pages (`logistics/notification_views.py`). Every write goes through `logistics.notifications`
(audited there); a webhook URL not yet known becomes the account's webhook endpoint
(`connectors.deliveries.webhook_endpoint_create`) in the same transaction, its signing secret
shown once, in the answer to that request."""

from __future__ import annotations

from functools import wraps
from typing import Any
from zoneinfo import available_timezones

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import TENANT_STAFF_ROLES, Role
from connectors.deliveries import EndpointInvalid
from connectors.selectors import webhook_endpoints_list
from logistics import notifications
from logistics.models import CustomerAccount, DigestMode, Milestone, MilestoneSubscription, NotificationChannel, NotificationStatus
from logistics.selectors import customer_accounts_all

STAFF_EDITORS = frozenset({Role.TENANT_ADMIN, Role.PLANNER, Role.CUSTOMER_SERVICE})
PER_PAGE = 25
GRID_COLUMNS = 6  # subscriptions side by side in the grid; more page on
SEND_TO = [
    ("me", _l("Email to me")),
    ("people", _l("Email everyone at the account")),
    ("address", _l("Email to an address")),
    ("webhook", _l("Webhook to a URL")),
]
DELIVERY = [(DigestMode.OFF, _l("Immediately")), (DigestMode.HOURLY, _l("Hourly digest")), (DigestMode.DAILY, _l("Daily digest"))]
# logistics.models.NotificationStatus's labels are plain English (a model's choices): said here in words.
STATUS_LABELS: dict[str, Any] = {
    NotificationStatus.PENDING: _l("Pending"),
    NotificationStatus.SENDING: _l("Sending"),
    NotificationStatus.SENT: _l("Sent"),
    NotificationStatus.FAILED: _l("Failed"),
    NotificationStatus.CANCELLED: _l("Cancelled"),
}
# Stored on the subscription and shown to everyone who reads it later: kept in English, as the audit log.
PAUSED_REASON = "Paused by {email} in the customer portal."
TIME_ZONES = sorted(zone for zone in available_timezones() if "/" in zone and not zone.startswith(("Etc/", "SystemV/")))


def _is_customer(user: Any) -> bool:
    return user.role == Role.CUSTOMER and user.customer_account_id is not None and not user.support_grant_id


def _can_edit(user: Any) -> bool:
    return _is_customer(user) or user.role in STAFF_EDITORS or bool(user.support_grant_id)


def portal_people_required(*, edit: bool = False):
    """Customer users and tenant staff (support sessions included); `edit`: those who may change."""

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (_is_customer(user) or user.role in TENANT_STAFF_ROLES or user.support_grant_id):
                raise PermissionDenied(_("Your role cannot see this page."))
            if edit and not _can_edit(user):
                raise PermissionDenied(_("Your role can look at notification preferences but not change them."))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def own_account_id(user: Any) -> int | None:
    """The account a customer user is bound to; None for staff (who see every account)."""
    return int(user.customer_account_id) if _is_customer(user) else None


def _subscription_or_404(request: HttpRequest, subscription_id: int) -> MilestoneSubscription:
    rows = MilestoneSubscription.objects.select_related("customer_account", "user").filter(pk=subscription_id)
    own = own_account_id(request.user)
    if own is not None:
        rows = rows.filter(customer_account_id=own)
    subscription = rows.first()
    if subscription is None:
        raise Http404("No such notification preference.")
    return subscription


def _time_field(label: Any, help_text: Any = "") -> forms.TimeField:
    attrs = {"placeholder": "HH:MM", "inputmode": "numeric", "autocomplete": "off", "maxlength": "5"}
    return forms.TimeField(required=False, label=label, help_text=help_text, widget=forms.TimeInput(attrs=attrs, format="%H:%M"))


class PreferenceForm(forms.Form):
    customer_account = forms.ModelChoiceField(
        queryset=customer_accounts_all(), label=_l("Customer account"), empty_label=_l("Choose an account…")
    )
    milestones = forms.MultipleChoiceField(
        # the labels are gettext_noop in logistics.vocabulary: translated as the form shows them
        choices=[(value, _l(label)) for value, label in Milestone.choices],
        widget=forms.CheckboxSelectMultiple,
        label=_l("Tell me when a shipment…"),
        help_text=_l("Each is told once per shipment. A delay is an ETA past the promise, a delay status or a missed pickup."),
    )
    send_to = forms.ChoiceField(choices=SEND_TO, widget=forms.RadioSelect, label=_l("Send to"), initial="me")
    email = forms.EmailField(required=False, label=_l("Email address"), help_text=_l("For “Email to an address”."))
    webhook_url = forms.CharField(
        required=False,
        max_length=500,
        label=_l("Webhook URL"),
        help_text=_l(
            "For “Webhook to a URL”: we POST each notification there, signed (Standard Webhooks). "
            "Leave empty to use the account's webhook endpoints."
        ),
        widget=forms.URLInput(attrs={"placeholder": "https://", "autocomplete": "off"}),
    )
    time_zone = forms.CharField(
        max_length=64,
        label=_l("Time zone"),
        help_text=_l("Quiet hours and the daily digest are read in it, such as America/Chicago."),
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
    )
    quiet_start = _time_field(_l("Quiet hours from"), _l("Nothing is sent between these local times; it goes when they end."))
    quiet_end = _time_field(_l("Quiet hours until"))
    digest = forms.ChoiceField(choices=DELIVERY, widget=forms.RadioSelect, initial=DigestMode.OFF, label=_l("Delivery"))
    digest_at = _time_field(_l("Daily digest at"), _l("For the daily digest: the local time it is sent."))

    def __init__(self, *args: Any, customer: bool, person: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        send_to = self.fields["send_to"]
        assert isinstance(send_to, forms.ChoiceField)
        choices: list[tuple[str, Any]] = [(value, label) for value, label in SEND_TO if customer or value != "me"]
        if person:  # kept as it is: someone of the account staff chose
            choices.insert(0, ("person", _("Email to %(email)s") % {"email": person}))
        send_to.choices = choices
        if customer:
            del self.fields["customer_account"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("send_to") == "address" and not data.get("email") and "email" not in self.errors:
            self.add_error("email", _("Give the address to email."))
        return data


def _initial(subscription: MilestoneSubscription, viewer: Any) -> dict[str, Any]:
    if subscription.channel == NotificationChannel.WEBHOOK:
        send_to = "webhook"
    elif subscription.email:
        send_to = "address"
    elif subscription.user_id is None:
        send_to = "people"
    else:
        send_to = "me" if subscription.user_id == viewer.pk else "person"
    return {
        "customer_account": subscription.customer_account_id,
        "milestones": subscription.milestones,
        "send_to": send_to,
        "email": subscription.email,
        "time_zone": subscription.time_zone,
        "quiet_start": subscription.quiet_start,
        "quiet_end": subscription.quiet_end,
        "digest": subscription.digest,
        "digest_at": subscription.digest_at,
    }


def _person(subscription: MilestoneSubscription | None, viewer: Any) -> str:
    if subscription is None or subscription.user is None or subscription.user_id == viewer.pk or subscription.email:
        return ""
    return subscription.user.email


def _account_endpoints(account_id: int | None) -> list[Any]:
    return list(webhook_endpoints_list(customer_account=str(account_id))) if account_id else []


def _save(
    request: HttpRequest, form: PreferenceForm, account: CustomerAccount, subscription: MilestoneSubscription | None
) -> tuple[MilestoneSubscription, str]:
    """The form's answers as the service's fields (who "me" is, an address or a webhook)."""
    data = form.cleaned_data
    send_to = data["send_to"]
    channel = NotificationChannel.WEBHOOK if send_to == "webhook" else NotificationChannel.EMAIL
    event_type = subscription.event_type if subscription is not None else notifications.DEFAULT_EVENT_TYPE
    user: Any = None
    if send_to == "me":
        user = request.user
    elif send_to == "person" and subscription is not None:
        user = subscription.user
    fields = {
        "milestones": data["milestones"],
        "channel": channel,
        "time_zone": data["time_zone"],
        "email": data["email"] if send_to == "address" else "",
        "user": user,
        "event_type": event_type,
        "quiet_start": data["quiet_start"],
        "quiet_end": data["quiet_end"],
        "digest": data["digest"],
        "digest_at": data["digest_at"],
        "actor": request.user,
    }
    return notifications.subscription_save(
        customer_account=account, subscription=subscription, webhook_url=data["webhook_url"] or "", **fields
    )


def _form_render(request: HttpRequest, form: PreferenceForm, subscription: MilestoneSubscription | None, status: int = 200) -> HttpResponse:
    account_id = subscription.customer_account_id if subscription else own_account_id(request.user)
    context: dict[str, Any] = {
        "form": form,
        "subscription": subscription,
        "time_zones": TIME_ZONES,
        "endpoints": _account_endpoints(account_id),
        "workflow": notifications.template_defaults(),
        "is_customer": _is_customer(request.user),
        "can_edit": _can_edit(request.user),
    }
    if subscription is not None:
        context["rows"] = notifications.subscription_notifications(subscription)[:10]
    return render(request, "portal/notifications/form.html", context, status=status)


def _saved(request: HttpRequest, subscription: MilestoneSubscription, secret: str, verb: str) -> HttpResponse:
    done = _("Notification preference saved.") if verb == "saved" else _("Notification preference updated.")
    off = "" if notifications.template_defaults() else " " + _("Nothing is sent until your provider switches milestone notifications on.")
    messages.success(request, done + off)
    if secret:  # shown once, in this answer only
        context = {"subscription": subscription, "secret": secret, "endpoints": _account_endpoints(subscription.customer_account_id)}
        return render(request, "portal/notifications/secret.html", context)
    return redirect(reverse("portal:notifications"))


def _grid(subscriptions: list[MilestoneSubscription]) -> list[dict[str, Any]]:
    """Rows of the milestones × subscriptions grid: the usual milestones, and any other one chosen."""
    chosen = {value for subscription in subscriptions for value in subscription.milestones}
    values = [value for value in Milestone.values if value in notifications.DEFAULT_MILESTONES or value in chosen]
    return [
        {"label": _(Milestone(value).label), "cells": [value in subscription.milestones for subscription in subscriptions]}
        for value in values
    ]


@never_cache
@portal_people_required()
def preferences(request: HttpRequest) -> HttpResponse:
    own = own_account_id(request.user)
    wanted = request.GET.get("account", "")
    account_id = own if own is not None else (int(wanted) if wanted.isdigit() else None)
    rows = notifications.subscriptions_list(notifications.SubscriptionFilter(customer_account_id=account_id))
    if own is not None:
        rows = rows.filter(customer_account_id=own)  # never widened, whatever the filter did
    columns = Paginator(rows, GRID_COLUMNS).get_page(request.GET.get("page"))
    status = request.GET.get("status", "")
    status = status if status in NotificationStatus.values else ""
    recent = Paginator(notifications.account_notifications(account_id, status), PER_PAGE).get_page(request.GET.get("recent"))
    subscriptions = list(columns.object_list)
    context = {
        "columns": columns,
        "subscriptions": subscriptions,
        "grid": _grid(subscriptions),
        "recent": recent,
        "status": status,
        "statuses": [(value, STATUS_LABELS.get(value, label)) for value, label in NotificationStatus.choices],
        "is_customer": own is not None,
        "account_id": str(account_id or ""),
        "accounts": [] if own is not None else customer_accounts_all(),
        "endpoints": _account_endpoints(own),
        "workflow": notifications.template_defaults(),
        "can_edit": _can_edit(request.user),
    }
    return render(request, "portal/notifications/preferences.html", context)


@never_cache
@portal_people_required(edit=True)
def preference_new(request: HttpRequest) -> HttpResponse:
    customer = _is_customer(request.user)
    if request.method != "POST":
        defaults = notifications.template_defaults().get("default_milestones") or notifications.DEFAULT_MILESTONES
        initial = {
            "milestones": [value for value in defaults if value in Milestone.values],
            "time_zone": getattr(getattr(request, "tenant", None), "time_zone", "") or "UTC",
            "send_to": "me" if customer else "people",
            "digest": DigestMode.OFF,
        }
        return _form_render(request, PreferenceForm(initial=initial, customer=customer), None)
    form = PreferenceForm(request.POST, customer=customer)
    if form.is_valid():
        own = own_account_id(request.user)
        account = CustomerAccount.objects.get(pk=own) if own is not None else form.cleaned_data["customer_account"]
        try:
            subscription, secret = _save(request, form, account, None)
        except (notifications.SubscriptionRefused, EndpointInvalid) as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            return _saved(request, subscription, secret, "saved")
    return _form_render(request, form, None, status=400)


@never_cache
@portal_people_required()
def preference(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = _subscription_or_404(request, subscription_id)
    customer, person = _is_customer(request.user), _person(subscription, request.user)
    if request.method != "POST":
        form = PreferenceForm(initial=_initial(subscription, request.user), customer=customer, person=person)
        return _form_render(request, form, subscription)
    if not _can_edit(request.user):
        raise PermissionDenied(_("Your role can look at notification preferences but not change them."))
    form = PreferenceForm(request.POST, customer=customer, person=person)
    if not customer:  # the account of a subscription does not change
        form.fields["customer_account"].required = False
    if form.is_valid():
        try:
            subscription, secret = _save(request, form, subscription.customer_account, subscription)
        except (notifications.SubscriptionRefused, EndpointInvalid) as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            return _saved(request, subscription, secret, "updated")
    return _form_render(request, form, subscription, status=400)


@require_POST
@portal_people_required(edit=True)
def preference_pause(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = _subscription_or_404(request, subscription_id)
    try:
        notifications.subscription_disable(
            subscription=subscription, reason=PAUSED_REASON.format(email=getattr(request.user, "email", "")), actor=request.user
        )
    except notifications.SubscriptionRefused as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Paused: nothing new is told, and what was waiting is cancelled. Resume it any time."))
    return redirect(reverse("portal:notification", args=[subscription.pk]))


@require_POST
@portal_people_required(edit=True)
def preference_resume(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = _subscription_or_404(request, subscription_id)
    try:
        notifications.subscription_enable(subscription=subscription, actor=request.user)
    except notifications.SubscriptionRefused as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Resumed: milestones from now on are told."))
    return redirect(reverse("portal:notification", args=[subscription.pk]))
