"""The milestone notification pages (tenant staff): customer accounts' subscriptions – list,
new, one subscription with its notifications, disable and enable.

Every member of staff may look; tenant admins, planners and customer service subscribe accounts
and disable or enable subscriptions (support sessions too). Customer users never reach these
pages (the portal's preferences page for customers builds on the same services)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Role, User
from accounts.permissions import tenant_role_required
from logistics import notifications
from logistics.models import (
    CustomerAccount,
    DigestMode,
    Milestone,
    MilestoneSubscription,
    NotificationChannel,
    NotificationStatus,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

EDITORS = (Role.TENANT_ADMIN, Role.PLANNER, Role.CUSTOMER_SERVICE)
PER_PAGE = 50


def can_edit(user: Any) -> bool:
    return user.role in EDITORS or bool(user.support_grant_id)


def _subscription_or_404(subscription_id: int) -> MilestoneSubscription:
    subscription = MilestoneSubscription.objects.select_related("customer_account", "user").filter(pk=subscription_id).first()
    if subscription is None:
        raise Http404("No such subscription.")
    return subscription


def _time_field(label: StrOrPromise, help_text: StrOrPromise = "") -> forms.TimeField:
    attrs = {"placeholder": "HH:MM", "inputmode": "numeric", "autocomplete": "off", "maxlength": "5"}
    return forms.TimeField(required=False, label=label, help_text=help_text, widget=forms.TimeInput(attrs=attrs, format="%H:%M"))


class PersonChoiceField(forms.ModelChoiceField):
    """A customer user, named with their account (the list holds every account's people)."""

    account_names: dict[int, str] = {}

    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.email} ({self.account_names.get(obj.customer_account_id, '?')})"


class SubscriptionForm(forms.Form):
    customer_account = forms.ModelChoiceField(
        queryset=CustomerAccount.objects.order_by("name"),
        label=gettext_lazy("Customer account"),
        empty_label=gettext_lazy("Choose a customer account"),
    )
    milestones = forms.MultipleChoiceField(
        choices=[(value, gettext_lazy(label)) for value, label in Milestone.choices],  # labels marked with gettext_noop
        widget=forms.CheckboxSelectMultiple,
        label=gettext_lazy("Milestones"),
        help_text=gettext_lazy("Each is told once per shipment. A delay is an ETA past the promise, a delay status or a missed pickup."),
    )
    channel = forms.ChoiceField(
        choices=NotificationChannel.choices, widget=forms.RadioSelect, initial=NotificationChannel.EMAIL, label=gettext_lazy("Channel")
    )
    user = PersonChoiceField(
        queryset=User.objects.none(),
        required=False,
        label=gettext_lazy("Email to"),
        empty_label=gettext_lazy("Every person of the account"),
        help_text=gettext_lazy("Email only: one of the account's people, or everyone (or an address below)."),
    )
    email = forms.EmailField(
        required=False, label=gettext_lazy("Or this address"), help_text=gettext_lazy("Email only: overrides the person above.")
    )
    event_type = forms.CharField(
        required=False,
        max_length=100,
        initial=notifications.DEFAULT_EVENT_TYPE,
        label=gettext_lazy("Webhook event type"),
        help_text=gettext_lazy("Webhook only: sent to the account's webhook endpoints that subscribe to this type."),
    )
    quiet_start = _time_field(
        gettext_lazy("Quiet hours from"), gettext_lazy("Nothing is sent between these local times; it goes when they end.")
    )
    quiet_end = _time_field(gettext_lazy("Quiet hours until"))
    time_zone = forms.CharField(
        max_length=64,
        label=gettext_lazy("Time zone"),
        help_text=gettext_lazy("IANA name, such as America/Chicago: quiet hours and digests use it."),
    )
    digest = forms.ChoiceField(choices=DigestMode.choices, initial=DigestMode.OFF, label=gettext_lazy("Digest"))
    digest_at = _time_field(gettext_lazy("Daily digest at"), gettext_lazy("Daily digests only: the local time it is sent."))

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        people = User.objects.filter(role=Role.CUSTOMER, is_active=True, customer_account_id__isnull=False, support_grant_id__isnull=True)
        field = self.fields["user"]
        assert isinstance(field, PersonChoiceField)
        field.queryset = people.order_by("email")
        field.account_names = dict(CustomerAccount.objects.values_list("pk", "name"))


def _filters(request: HttpRequest) -> notifications.SubscriptionFilter:
    account = request.GET.get("account", "")
    return notifications.SubscriptionFilter(
        customer_account_id=int(account) if account.isdigit() else None,
        channel=request.GET.get("channel", ""),
        state=request.GET.get("state", ""),
        query=request.GET.get("q", "").strip()[:100],
    )


@tenant_role_required()
def subscriptions(request: HttpRequest) -> HttpResponse:
    criteria = _filters(request)
    page = Paginator(notifications.subscriptions_list(criteria), PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "subscriptions": page.object_list,
        "criteria": criteria,
        "account": str(criteria.customer_account_id or ""),
        "accounts": CustomerAccount.objects.order_by("name"),
        "channels": NotificationChannel.choices,
        "filtered": bool(criteria.customer_account_id or criteria.channel or criteria.state or criteria.query),
        "any": MilestoneSubscription.objects.exists(),
        "can_edit": can_edit(request.user),
        "workflow": notifications.template_defaults(),
    }
    return render(request, "logistics/notifications/subscriptions.html", context)


@tenant_role_required(*EDITORS)
def subscription_new(request: HttpRequest) -> HttpResponse:
    defaults = notifications.template_defaults()
    if request.method != "POST":
        milestones = defaults.get("default_milestones") or notifications.DEFAULT_MILESTONES
        account = request.GET.get("account", "")
        initial = {
            "milestones": [value for value in milestones if value in Milestone.values],
            "time_zone": getattr(getattr(request, "tenant", None), "time_zone", "") or "UTC",
            "customer_account": int(account) if account.isdigit() else None,
        }
        form = SubscriptionForm(initial=initial)
        return render(request, "logistics/notifications/new.html", {"form": form, "workflow": defaults})
    form = SubscriptionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            subscription = notifications.subscription_create(
                customer_account=data["customer_account"],
                milestones=data["milestones"],
                channel=data["channel"],
                email=data["email"],
                user=data["user"],
                event_type=data["event_type"] or notifications.DEFAULT_EVENT_TYPE,
                quiet_start=data["quiet_start"],
                quiet_end=data["quiet_end"],
                time_zone=data["time_zone"],
                digest=data["digest"],
                digest_at=data["digest_at"],
                actor=request.user,
            )
        except notifications.SubscriptionRefused as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            subscribed = _("%(account)s is subscribed.") % {"account": subscription.customer_account.name}
            if not defaults:
                subscribed += " " + _("Notifications are off until the Customer milestone notifications workflow is published.")
            messages.success(request, subscribed)
            return redirect(reverse("logistics:notification_subscription", args=[subscription.pk]))
    return render(request, "logistics/notifications/new.html", {"form": form, "workflow": defaults}, status=400)


@tenant_role_required()
def subscription_detail(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = _subscription_or_404(subscription_id)
    status = request.GET.get("status", "")
    status = status if status in NotificationStatus.values else ""
    page = Paginator(notifications.subscription_notifications(subscription, status), PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "subscription": subscription,
        "page": page,
        "rows": page.object_list,
        "status": status,
        "statuses": NotificationStatus.choices,
        "milestone_labels": [Milestone(value).label for value in subscription.milestones if value in Milestone.values],
        "can_edit": can_edit(request.user),
        "workflow": notifications.template_defaults(),
    }
    return render(request, "logistics/notifications/subscription.html", context)


@require_POST
@tenant_role_required(*EDITORS)
def subscription_disable(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = _subscription_or_404(subscription_id)
    try:
        notifications.subscription_disable(subscription=subscription, reason=request.POST.get("reason", ""), actor=request.user)
    except notifications.SubscriptionRefused as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Subscription disabled: nothing new is noted, and what was waiting was cancelled."))
    return redirect(reverse("logistics:notification_subscription", args=[subscription.pk]))


@require_POST
@tenant_role_required(*EDITORS)
def subscription_enable(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = _subscription_or_404(subscription_id)
    try:
        notifications.subscription_enable(subscription=subscription, actor=request.user)
    except notifications.SubscriptionRefused as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Subscription enabled: milestones from now on are told."))
    return redirect(reverse("logistics:notification_subscription", args=[subscription.pk]))
