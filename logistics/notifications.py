"""Customer milestone notifications: customer accounts subscribe to milestones of their shipments
(tracking statuses, a detected delay, an exception opened) by email or webhook, with quiet hours
and digests. Template 6, `customer-milestone-notifications` 2.x, is what sends them.

Two halves, so that the inbox's hot path pays nothing when nobody listens:

- *Collecting* (`notifications_collect`, called once per inbox batch by
  `logistics.tracking_inbound`, and by `exception_open`): one cached look-up per batch – which
  customer accounts subscribe to which milestones, empty while no published workflow uses the
  send action – and, only when something matches, one query for the subscriptions and one
  insert of `MilestoneNotification` rows, unique per (subscription, shipment, milestone) so a
  resent or replayed event adds nothing. Each row is due now, at the end of the subscription's
  quiet hours, or at its next digest (hourly, or daily at a local time; a digest that would fall
  in quiet hours goes when they end). A batch that made something due now also emits
  `milestone.notifications_due`, which starts the template's run at once.
- *Sending* (`notifications_send`, the template's `milestone.notifications_send` action, run on
  that event and every minute by its schedule): claims due rows (`SKIP LOCKED`, so concurrent
  runs take disjoint rows), groups them into messages – one per milestone, one per digest – and
  publishes webhooks in the same transaction (`connectors.deliveries.webhook_publish`, event id
  the message key, so a repeat adds nothing) or queues the email after commit
  (`logistics.milestone_email_send`, in the tenant's brand). An email not sent within
  `EMAIL_RETRY_AFTER` (a lost task, a mail server down) is queued again by the next pass, up to
  `EMAIL_ATTEMPTS` times.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.utils import formataddr, parseaddr
from functools import partial
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from celery import shared_task
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.template.loader import render_to_string
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from connectors.deliveries import endpoint_receives, webhook_endpoint_create
from connectors.selectors import webhook_endpoints_list
from governance.services import Actor, actor_of, audit_record
from logistics.models import (
    CustomerAccount,
    DigestMode,
    ExceptionCase,
    Milestone,
    MilestoneNotification,
    MilestoneSubscription,
    NotificationChannel,
    NotificationStatus,
)
from logistics.services import LogisticsRefused
from tenants.db import connection

if TYPE_CHECKING:
    from logistics.services import TrackingEventOutcome
    from logistics.tracking_inbound import Delay

log = structlog.get_logger("baton.logistics")

TEMPLATE_KEY = "customer-milestone-notifications"
SEND_ACTION = "milestone.notifications_send"
DUE_EVENT = "milestone.notifications_due"
DEFAULT_EVENT_TYPE = "shipment.milestone"
DEFAULT_MILESTONES = [Milestone.PICKED_UP, Milestone.OUT_FOR_DELIVERY, Milestone.DELIVERED, Milestone.DELAY, Milestone.EXCEPTION_OPENED]
COLLECTOR = Actor.system("logistics:milestone-notifications")
# Who subscribes to what, per schema (the cache's keys carry it); a change of a subscription
# forgets it at once, a workflow published or unpublished is seen within this time.
INDEX_KEY = "logistics:milestone-subscriptions"
INDEX_SECONDS = 30
EMAIL_RETRY_AFTER = timedelta(minutes=5)
EMAIL_ATTEMPTS = 5
SEND_LIMIT = 500
HELD_QUIET = "quiet_hours"
HELD_DIGEST = "digest"
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")


class SubscriptionRefused(LogisticsRefused):
    """A subscription that cannot be made or changed as asked (the field says which input)."""


# --- when a notification is due ----------------------------------------------------------------


def _zone(subscription: MilestoneSubscription) -> ZoneInfo:
    try:
        return ZoneInfo(subscription.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _quiet(subscription: MilestoneSubscription, moment: datetime) -> bool:
    start, end = subscription.quiet_start, subscription.quiet_end
    if start is None or end is None or start == end:
        return False
    clock = moment.astimezone(_zone(subscription)).time()
    return start <= clock < end if start < end else (clock >= start or clock < end)


def _next_local(moment: datetime, zone: ZoneInfo, at: time) -> datetime:
    """The first moment after `moment` at which the local clock shows `at`."""
    local = moment.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(UTC)


def notification_due(subscription: MilestoneSubscription, now: datetime) -> tuple[datetime, str]:
    """When a milestone reached at `now` is sent, and why it waits ("" when it goes now)."""
    zone = _zone(subscription)
    if subscription.digest == DigestMode.OFF:
        if _quiet(subscription, now):
            assert subscription.quiet_end is not None
            return _next_local(now, zone, subscription.quiet_end), HELD_QUIET
        return now, ""
    if subscription.digest == DigestMode.HOURLY:
        local = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        slot = (local + timedelta(hours=1)).astimezone(UTC)
    else:
        slot = _next_local(now, zone, subscription.digest_at or time(8, 0))
    if _quiet(subscription, slot):
        assert subscription.quiet_end is not None
        slot = _next_local(slot, zone, subscription.quiet_end)
    return slot, HELD_DIGEST


# --- who listens (the hot path's one look-up) ---------------------------------------------------


def notifications_enabled() -> bool:
    """Whether a published workflow of this tenant sends milestone notifications: without one,
    nothing is collected or sent."""
    from workflows.models import Definition

    return Definition.objects.filter(published_version__spec__steps__contains=[{"action": SEND_ACTION}]).exists()


def _index_read() -> dict[int, list[str]]:
    if not notifications_enabled():
        return {}
    index: dict[int, set[str]] = defaultdict(set)
    for account_id, milestones in MilestoneSubscription.objects.filter(enabled=True).values_list("customer_account_id", "milestones"):
        index[account_id].update(value for value in milestones if isinstance(value, str))
    return {account_id: sorted(values) for account_id, values in index.items()}


def subscribed_index() -> dict[int, list[str]]:
    """Customer account id → the milestones someone subscribed to (empty while the template is
    off). One cache read; the database only when the cache has nothing (or cannot be read)."""
    try:
        index = cache.get(INDEX_KEY)
    except Exception as error:  # noqa: BLE001 - the cache down is no reason to stop the inbox
        log.warning("milestone subscriptions not read from the cache", error=f"{type(error).__name__}: {error}")
        return _index_read()
    if index is None:
        index = _index_read()
        try:
            cache.set(INDEX_KEY, index, INDEX_SECONDS)
        except Exception as error:  # noqa: BLE001
            log.warning("milestone subscriptions not cached", error=f"{type(error).__name__}: {error}")
    return index


def subscriptions_forget() -> None:
    """After subscriptions or the workflow changed: the next batch reads them afresh (again
    after commit, so a batch in between cannot cache the old answer for long)."""

    def forget() -> None:
        try:
            cache.delete(INDEX_KEY)
        except Exception as error:  # noqa: BLE001 - it expires by itself
            log.warning("milestone subscriptions not forgotten", error=f"{type(error).__name__}: {error}")

    forget()
    transaction.on_commit(forget)


# --- collecting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MilestoneReached:
    """A milestone of one shipment, as subscriptions see it."""

    shipment_id: int
    customer_account_id: int
    milestone: str
    occurred_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


def _moment(value: Any, default: datetime) -> datetime:
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return default
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return default


def _reached_by_status(outcome: TrackingEventOutcome) -> MilestoneReached:
    event, shipment = outcome.event, outcome.event.shipment
    return MilestoneReached(
        shipment_id=shipment.pk,
        customer_account_id=shipment.customer_account_id,
        milestone=event.status,
        occurred_at=event.occurred_at,
        details={
            "label": event.get_status_display(),
            "location": event.location_text,
            "reason": event.reason_description,
            "message": event.message,
            "eta": shipment.eta.isoformat() if shipment.eta else None,
            "tracking_event_id": event.pk,
        },
    )


def _reached_by_delay(delay: Delay, now: datetime) -> MilestoneReached:
    payload = delay.payload
    return MilestoneReached(
        shipment_id=int(payload["shipment_id"]),
        customer_account_id=int(payload["customer_account_id"]),
        milestone=Milestone.DELAY,
        occurred_at=_moment(payload.get("occurred_at"), now),
        details={
            "label": Milestone.DELAY.label,
            "reason": payload.get("reason", ""),
            "eta": payload.get("estimated_at"),
            "promised_at": payload.get("promised_at"),
            "late_by_minutes": payload.get("late_by_minutes"),
        },
    )


def _write(reached: Sequence[MilestoneReached], now: datetime) -> int:
    """Pending notifications for every enabled subscription that wants what was reached; returns
    how many are due now. A (subscription, shipment, milestone) already noted is left as it is."""
    accounts = {item.customer_account_id for item in reached}
    subscriptions = MilestoneSubscription.objects.filter(enabled=True, customer_account_id__in=accounts)
    by_account: dict[int, list[MilestoneSubscription]] = defaultdict(list)
    for subscription in subscriptions:
        by_account[subscription.customer_account_id].append(subscription)
    rows: list[MilestoneNotification] = []
    for item in reached:
        for subscription in by_account.get(item.customer_account_id, []):
            if item.milestone not in subscription.milestones:
                continue
            due_at, held = notification_due(subscription, now)
            rows.append(
                MilestoneNotification(
                    subscription=subscription,
                    shipment_id=item.shipment_id,
                    milestone=item.milestone,
                    occurred_at=item.occurred_at,
                    details=item.details,
                    due_at=due_at,
                    held=held,
                )
            )
    if rows:
        MilestoneNotification.objects.bulk_create(rows, ignore_conflicts=True)
    return sum(1 for row in rows if not row.held)


def notifications_collect(
    *, outcomes: Iterable[TrackingEventOutcome] = (), delays: Iterable[Delay] = (), now: datetime | None = None
) -> int:
    """The inbox's hook (a batch's recorded events and the delays they revealed): note what
    subscriptions want, in the batch's transaction; start the sending run when something is due
    now. Returns how many notifications are due now."""
    index = subscribed_index()
    if not index:
        return 0
    now = now or timezone.now()
    reached = [
        _reached_by_status(outcome)
        for outcome in outcomes
        if outcome.created and outcome.status_changed and outcome.event.status in index.get(outcome.event.shipment.customer_account_id, ())
    ]
    reached += [
        _reached_by_delay(delay, now)
        for delay in delays
        if Milestone.DELAY in index.get(int(delay.payload.get("customer_account_id") or 0), ())
    ]
    if not reached:
        return 0
    due_now = _write(reached, now)
    if due_now:
        _due_emit(due_now)
    return due_now


def _due_emit(count: int) -> None:
    """Start the published sending workflows now instead of at their next scheduled pass."""
    from workflows.triggers import event_triggered, event_triggers_start

    definitions = event_triggered(DUE_EVENT)
    if definitions:
        event_triggers_start(
            event_type=DUE_EVENT,
            payload={"due": count},
            correlation={},
            event_id=f"milestones-due:{uuid.uuid4().hex}",
            actor=COLLECTOR,
            definitions=definitions,
        )


def exception_notifications_collect(exception: ExceptionCase) -> int:
    """`exception_open`'s hook: an exception opened on a subscribed shipment (sent at the
    template's next scheduled pass)."""
    if exception.shipment_id is None or exception.customer_account_id is None:
        return 0
    if Milestone.EXCEPTION_OPENED not in subscribed_index().get(exception.customer_account_id, ()):
        return 0
    reached = MilestoneReached(
        shipment_id=exception.shipment_id,
        customer_account_id=exception.customer_account_id,
        milestone=Milestone.EXCEPTION_OPENED,
        occurred_at=exception.opened_at,
        details={"label": Milestone.EXCEPTION_OPENED.label, "reason": exception.reason, "exception": exception.get_type_display()},
    )
    return _write([reached], timezone.now())


# --- subscriptions (staff) ----------------------------------------------------------------------


def _time_zone_checked(value: str) -> str:
    value = (value or "").strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SubscriptionRefused(f"{value!r} is not an IANA time zone, such as America/Chicago or Europe/Berlin.", "time_zone") from None
    if not value:
        raise SubscriptionRefused("Give the time zone quiet hours and digests are read in.", "time_zone")
    return value


@dataclass(frozen=True)
class SubscriptionFields:
    """A subscription's settings as checked: what create and update write."""

    milestones: list[str]
    channel: str
    email: str
    user: Any
    event_type: str
    quiet_start: time | None
    quiet_end: time | None
    time_zone: str
    digest: str
    digest_at: time | None

    def as_audit(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "milestones": self.milestones,
            "to": self.email or (self.user.email if self.user else ""),
            "quiet_hours": [str(self.quiet_start), str(self.quiet_end)] if self.quiet_start else None,
            "digest": self.digest,
            "time_zone": self.time_zone,
        }


def _fields_checked(
    *,
    customer_account: CustomerAccount,
    milestones: Sequence[str],
    channel: str,
    time_zone: str,
    email: str,
    user: Any,
    event_type: str,
    quiet_start: time | None,
    quiet_end: time | None,
    digest: str,
    digest_at: time | None,
) -> SubscriptionFields:
    chosen = list(dict.fromkeys(milestones))
    unknown = [value for value in chosen if value not in Milestone.values]
    if unknown:
        raise SubscriptionRefused(f"{', '.join(unknown)} is not a milestone: use {', '.join(Milestone.values)}", "milestones")
    if not chosen:
        raise SubscriptionRefused("Choose at least one milestone to tell.", "milestones")
    if channel not in NotificationChannel.values:
        raise SubscriptionRefused(f"{channel!r} is not a channel: use email or webhook.", "channel")
    email = (email or "").strip()
    if channel == NotificationChannel.EMAIL:
        if user is not None and user.customer_account_id != customer_account.pk:
            raise SubscriptionRefused(f"{user.email} is not a person of {customer_account.name}.", "user")
        event_type = DEFAULT_EVENT_TYPE
    else:
        email, user = "", None
        event_type = (event_type or "").strip()
        if not _EVENT_TYPE.match(event_type) or len(event_type) > 100:
            raise SubscriptionRefused("The event type is dotted lower-case words, such as shipment.milestone.", "event_type")
    if (quiet_start is None) != (quiet_end is None):
        raise SubscriptionRefused("Give both the start and the end of quiet hours, or neither.", "quiet_end")
    if quiet_start is not None and quiet_start == quiet_end:
        raise SubscriptionRefused("Quiet hours that start when they end are no quiet hours: leave both empty.", "quiet_end")
    if digest not in DigestMode.values:
        raise SubscriptionRefused(f"{digest!r} is not a digest: use off, hourly or daily.", "digest")
    if digest == DigestMode.DAILY and digest_at is None:
        raise SubscriptionRefused("A daily digest needs the local time it is sent.", "digest_at")
    return SubscriptionFields(
        milestones=chosen,
        channel=channel,
        email=email,
        user=user,
        event_type=event_type,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        time_zone=_time_zone_checked(time_zone),
        digest=digest,
        digest_at=digest_at if digest == DigestMode.DAILY else None,
    )


def subscription_create(
    *,
    customer_account: CustomerAccount,
    milestones: Sequence[str],
    channel: str,
    time_zone: str,
    email: str = "",
    user: Any = None,
    event_type: str = DEFAULT_EVENT_TYPE,
    quiet_start: time | None = None,
    quiet_end: time | None = None,
    digest: str = DigestMode.OFF,
    digest_at: time | None = None,
    actor: Any,
) -> MilestoneSubscription:
    """A customer account's subscription, checked field by field; audited."""
    fields = _fields_checked(
        customer_account=customer_account,
        milestones=milestones,
        channel=channel,
        time_zone=time_zone,
        email=email,
        user=user,
        event_type=event_type,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        digest=digest,
        digest_at=digest_at,
    )
    with transaction.atomic():
        subscription = MilestoneSubscription.objects.create(
            customer_account=customer_account, **_model_fields(fields), created_by_email=actor_of(actor).email
        )
        audit_record(
            actor=actor,
            action="milestone_subscription.created",
            target=subscription,
            target_label=f"{customer_account.name}: {fields.channel}",
            data={"customer_account": customer_account.code, **fields.as_audit()},
        )
        subscriptions_forget()
    return subscription


def subscription_save(
    *,
    customer_account: CustomerAccount,
    subscription: MilestoneSubscription | None,
    webhook_url: str = "",
    **fields: Any,
) -> tuple[MilestoneSubscription, str]:
    """Create (`subscription` None) or change a subscription, and for a webhook one make sure the
    account has an endpoint that receives it: a URL the account has no enabled endpoint for
    becomes one (`webhook_endpoint_create`), in the same transaction. Refused, on `webhook_url`,
    when no URL is given and no endpoint of the account receives the milestones. Returns the
    subscription and the new endpoint's signing secret ("" when none was made)."""
    secret = ""
    event_type = fields.get("event_type", DEFAULT_EVENT_TYPE)
    with transaction.atomic():
        if fields.get("channel") == NotificationChannel.WEBHOOK:
            url = webhook_url.strip()
            endpoints = list(webhook_endpoints_list(customer_account=str(customer_account.pk)))
            if url and not any(endpoint.url == url and endpoint.enabled for endpoint in endpoints):
                _endpoint, secret = webhook_endpoint_create(
                    url=url,
                    event_types=[event_type],
                    actor=fields["actor"],
                    customer_account_id=customer_account.pk,
                    description="Milestone notifications (customer portal)",
                )
            elif not url and not any(endpoint.enabled and endpoint_receives(endpoint, event_type) for endpoint in endpoints):
                raise SubscriptionRefused(
                    "Give the URL to send to: the account has no webhook endpoint that receives milestones yet.", "webhook_url"
                )
        if subscription is None:
            subscription = subscription_create(customer_account=customer_account, **fields)
        else:
            subscription = subscription_update(subscription=subscription, **fields)
    return subscription, secret


def _model_fields(fields: SubscriptionFields) -> dict[str, Any]:
    """The fields as model keyword arguments (`asdict` would deep-copy the user)."""
    return {name: getattr(fields, name) for name in SubscriptionFields.__dataclass_fields__}


def subscription_update(
    *,
    subscription: MilestoneSubscription,
    milestones: Sequence[str],
    channel: str,
    time_zone: str,
    email: str = "",
    user: Any = None,
    event_type: str = DEFAULT_EVENT_TYPE,
    quiet_start: time | None = None,
    quiet_end: time | None = None,
    digest: str = DigestMode.OFF,
    digest_at: time | None = None,
    actor: Any,
    now: datetime | None = None,
) -> MilestoneSubscription:
    """Change what a subscription tells, how and when, checked as on create; audited with what
    changed. What was waiting follows the new rules: a milestone no longer wanted is cancelled,
    the rest is due again by the new quiet hours and digest (counted from now)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            MilestoneSubscription.objects.select_for_update(of=("self",)).select_related("customer_account", "user").get(pk=subscription.pk)
        )
        fields = _fields_checked(
            customer_account=locked.customer_account,
            milestones=milestones,
            channel=channel,
            time_zone=time_zone,
            email=email,
            user=user,
            event_type=event_type,
            quiet_start=quiet_start,
            quiet_end=quiet_end,
            digest=digest,
            digest_at=digest_at,
        )
        before = SubscriptionFields(**{name: getattr(locked, name) for name in SubscriptionFields.__dataclass_fields__}).as_audit()
        for name, value in _model_fields(fields).items():
            setattr(locked, name, value)
        after = fields.as_audit()
        changed = {key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]}
        if not changed:
            return locked
        locked.save()
        waiting = MilestoneNotification.objects.filter(subscription=locked, status=NotificationStatus.PENDING)
        cancelled = waiting.exclude(milestone__in=fields.milestones).update(
            status=NotificationStatus.CANCELLED, error="The subscription stopped telling this milestone before it was sent."
        )
        due_at, held = notification_due(locked, now)
        rescheduled = waiting.filter(milestone__in=fields.milestones).update(due_at=due_at, held=held)
        audit_record(
            actor=actor,
            action="milestone_subscription.updated",
            target=locked,
            target_label=f"{locked.customer_account.name}: {fields.channel}",
            data={"changed": changed, "cancelled": cancelled, "rescheduled": rescheduled},
        )
        subscriptions_forget()
    return locked


def subscription_disable(*, subscription: MilestoneSubscription, reason: str, actor: Any) -> MilestoneSubscription:
    """Nothing new is noted, and what was waiting (quiet hours, a digest) is cancelled."""
    reason = (reason or "").strip()
    if not reason:
        raise SubscriptionRefused("Say why the subscription is disabled.", "reason")
    with transaction.atomic():
        locked = MilestoneSubscription.objects.select_for_update().get(pk=subscription.pk)
        if not locked.enabled:
            raise SubscriptionRefused("The subscription is disabled already.")
        locked.enabled, locked.disabled_reason = False, reason[:300]
        locked.save(update_fields=["enabled", "disabled_reason", "updated_at"])
        cancelled = MilestoneNotification.objects.filter(subscription=locked, status=NotificationStatus.PENDING).update(
            status=NotificationStatus.CANCELLED, error="The subscription was disabled before it was sent."
        )
        audit_record(
            actor=actor,
            action="milestone_subscription.disabled",
            target=locked,
            reason=locked.disabled_reason,
            data={"cancelled": cancelled},
        )
        subscriptions_forget()
    return locked


def subscription_enable(*, subscription: MilestoneSubscription, actor: Any) -> MilestoneSubscription:
    with transaction.atomic():
        locked = MilestoneSubscription.objects.select_for_update().get(pk=subscription.pk)
        if locked.enabled:
            raise SubscriptionRefused("The subscription is enabled already.")
        locked.enabled, locked.disabled_reason = True, ""
        locked.save(update_fields=["enabled", "disabled_reason", "updated_at"])
        audit_record(actor=actor, action="milestone_subscription.enabled", target=locked)
        subscriptions_forget()
    return locked


# --- sending ------------------------------------------------------------------------------------


@dataclass
class SendResult:
    """What one pass sent: messages by channel, notifications sent, queued, failed, cancelled."""

    messages: int = 0
    webhooks: int = 0
    emails_queued: int = 0
    emails_requeued: int = 0
    notifications_sent: int = 0
    failed: int = 0
    cancelled: int = 0
    problems: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = self.problems[:10]
        return data


def _item(notification: MilestoneNotification) -> dict[str, Any]:
    """One milestone as the customer reads it (webhook payload and email alike)."""
    shipment = notification.shipment
    details = notification.details or {}
    references = {
        name: value for name, value in (("pro", shipment.pro_number), ("bol", shipment.bol_number), ("po", shipment.po_number)) if value
    }
    return {
        "shipment": shipment.reference,
        "references": references,
        "milestone": notification.milestone,
        "label": details.get("label") or Milestone(notification.milestone).label,
        "occurred_at": notification.occurred_at.isoformat(),
        "location": details.get("location") or "",
        "reason": details.get("reason") or "",
        "eta": details.get("eta"),
    }


def _webhook_payload(group: list[MilestoneNotification]) -> dict[str, Any]:
    subscription = group[0].subscription
    return {
        "customer_account": subscription.customer_account.code,
        "digest": subscription.digest != DigestMode.OFF,
        "milestones": [_item(notification) for notification in group],
    }


def notifications_send(*, sender_name: str = "", now: datetime | None = None, limit: int = SEND_LIMIT) -> SendResult:
    """Send what is due (see the module): webhooks in this transaction, emails after commit."""
    now = now or timezone.now()
    result = SendResult()
    emails: list[str] = []
    with transaction.atomic():
        due = list(
            MilestoneNotification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription__customer_account", "shipment")
            .filter(status=NotificationStatus.PENDING, due_at__lte=now)
            .order_by("due_at", "id")[:limit]
        )
        groups: dict[str, list[MilestoneNotification]] = defaultdict(list)
        for notification in due:
            subscription = notification.subscription
            if not subscription.enabled:
                notification.status, notification.error = NotificationStatus.CANCELLED, "The subscription was disabled before it was sent."
                result.cancelled += 1
                continue
            together = f"s{subscription.pk}" if subscription.digest != DigestMode.OFF else f"n{notification.pk}"
            groups[together].append(notification)
        for group in groups.values():
            key = f"msg-{min(notification.pk for notification in group)}"
            subscription = group[0].subscription
            result.messages += 1
            for notification in group:
                notification.message_key, notification.claimed_at = key, now
            if subscription.channel == NotificationChannel.WEBHOOK:
                from connectors.deliveries import webhook_publish

                deliveries = webhook_publish(
                    event_type=subscription.event_type,
                    event_id=key,
                    payload=_webhook_payload(group),
                    customer_account_id=subscription.customer_account_id,
                )
                if deliveries:
                    result.webhooks += 1
                    result.notifications_sent += len(group)
                    for notification in group:
                        notification.status, notification.sent_at = NotificationStatus.SENT, now
                else:
                    problem = (
                        f"{subscription.customer_account.name} has no enabled webhook endpoint for {subscription.event_type}: "
                        "add one under Connections → Customer webhooks"
                    )
                    result.problems.append(problem)
                    result.failed += len(group)
                    for notification in group:
                        notification.status, notification.error = NotificationStatus.FAILED, problem
            else:
                for notification in group:
                    notification.status = NotificationStatus.SENDING
                emails.append(key)
                result.emails_queued += 1
        if due:
            MilestoneNotification.objects.bulk_update(due, ["status", "error", "message_key", "claimed_at", "sent_at"])
        stale = list(
            MilestoneNotification.objects.filter(status=NotificationStatus.SENDING, claimed_at__lt=now - EMAIL_RETRY_AFTER)
            .values_list("message_key", flat=True)
            .distinct()[:100]
        )
        if stale:
            MilestoneNotification.objects.filter(status=NotificationStatus.SENDING, message_key__in=stale).update(claimed_at=now)
            emails += stale
            result.emails_requeued = len(stale)
        if emails:
            transaction.on_commit(partial(_emails_queue, connection.schema_name, emails, sender_name))
    if result.messages or result.emails_requeued:
        log.info("milestone notifications sent", **{k: v for k, v in result.as_data().items() if k != "problems"})
    return result


def _emails_queue(schema: str, keys: list[str], sender_name: str) -> None:
    for key in keys:
        try:
            milestone_email_send_task.apply_async(args=[key, sender_name], headers={"_schema_name": schema}, retry=False)
        except Exception as error:  # noqa: BLE001 - still "sending": the next pass queues it again
            log.warning("milestone email not queued; the next pass will", message=key, error=f"{type(error).__name__}: {error}")


def _recipients(subscription: MilestoneSubscription) -> list[str]:
    from accounts.selectors import users_of_customer_account

    if subscription.email:
        return [subscription.email]
    if subscription.user is not None:
        return [subscription.user.email] if subscription.user.is_active else []
    return [person.email for person in users_of_customer_account(subscription.customer_account_id)]


def _local_text(moment: datetime | str | None, zone: ZoneInfo) -> str:
    if isinstance(moment, str):
        moment = _moment(moment, datetime.min.replace(tzinfo=UTC))
        if moment.year == 1:
            return ""
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    return f"{formats.date_format(local, 'DATETIME_FORMAT')} {local.strftime('%Z')}"


def _email_language(subscription: MilestoneSubscription, tenant: Any = None) -> str:
    """The language the recipient chose (accounts.User.language); an account-wide email goes out in
    the one its people share, else in the workspace's default (tenants.Tenant.default_language, or
    the installation's), as does one to a bare address."""
    from accounts.selectors import users_of_customer_account
    from tenants.selectors import recipient_language

    if subscription.email:
        chosen = set()
    elif subscription.user is not None:
        chosen = {subscription.user.language}
    else:
        chosen = set(users_of_customer_account(subscription.customer_account_id).values_list("language", flat=True))
    return recipient_language(chosen=chosen.pop() if len(chosen) == 1 else "", tenant=tenant)


def milestone_email(group: list[MilestoneNotification], *, sender_name: str = "") -> EmailMultiAlternatives | None:
    """The branded email for a message's notifications (None when nobody can receive it)."""
    from tenants.selectors import site_for_tenant, tenants_filter

    subscription = group[0].subscription
    recipients = _recipients(subscription)
    if not recipients:
        return None
    tenant = tenants_filter().get(schema_name=connection.schema_name)
    site = site_for_tenant(tenant)
    with translation.override(_email_language(subscription, tenant)):
        return _milestone_message(group, subscription, site, recipients, sender_name)


def _milestone_message(group, subscription, site, recipients: list[str], sender_name: str) -> EmailMultiAlternatives:
    """The email's words and dates in the active language (milestone_email picks the recipient's)."""
    zone = _zone(subscription)
    items = []
    for notification in group:
        item = _item(notification)
        item["label"] = _(item["label"])
        item["when"] = _local_text(notification.occurred_at, zone)
        item["eta_text"] = _local_text(item["eta"], zone)
        items.append(item)
    digest = subscription.digest != DigestMode.OFF
    if digest:
        shipments = len({item["shipment"] for item in items})
        updates = ngettext("%(count)d shipment update", "%(count)d shipment updates", len(items)) % {"count": len(items)}
        title = ngettext("%(updates)s for %(count)d shipment", "%(updates)s for %(count)d shipments", shipments) % {
            "updates": updates,
            "count": shipments,
        }
    else:
        title = _("Shipment %(shipment)s: %(milestone)s") % {"shipment": items[0]["shipment"], "milestone": items[0]["label"]}
    name, address = parseaddr(site.from_email)
    context = {
        "site": site,
        "title": title,
        "items": items,
        "digest": digest,
        "account": subscription.customer_account,
        "sender": sender_name or name or site.product_name,
        "manage_hint": _("Your contact at %(sender)s can change what you receive.") % {"sender": sender_name or site.product_name},
    }
    message = EmailMultiAlternatives(
        subject=f"{title} – {site.product_name}",
        body=render_to_string("email/milestone.txt", context),
        from_email=formataddr((sender_name or name or site.product_name, address)),
        to=recipients,
    )
    message.attach_alternative(render_to_string("email/milestone.html", context), "text/html")
    return message


def milestone_email_send(*, message_key: str, sender_name: str = "") -> int:
    """Send one message's email (inside the tenant's schema) once: its rows locked while it goes,
    then marked sent; a failure is kept on the rows and retried by a later pass. Returns the
    notifications sent."""
    with transaction.atomic():
        group = list(
            MilestoneNotification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription__customer_account", "subscription__user", "shipment")
            .filter(message_key=message_key, status=NotificationStatus.SENDING)
            .order_by("occurred_at", "id")
        )
        if not group:
            return 0
        now = timezone.now()
        ids = [notification.pk for notification in group]
        rows = MilestoneNotification.objects.filter(pk__in=ids)
        message = milestone_email(group, sender_name=sender_name)
        if message is None:
            account = group[0].subscription.customer_account.name
            rows.update(
                status=NotificationStatus.FAILED,
                error=f"Nobody to email: {account} has no active people and the subscription names no address.",
            )
            return 0
        attempts = int((group[0].details or {}).get("email_attempts", 0)) + 1
        try:
            message.send()
        except Exception as error:  # noqa: BLE001 - kept on the rows; the next pass tries again
            text = f"{type(error).__name__}: {error}"[:500]
            log.warning("milestone email failed", message=message_key, attempt=attempts, error=text)
            for notification in group:
                notification.details = {**(notification.details or {}), "email_attempts": attempts}
                notification.error = f"attempt {attempts}: {text}"[:500]
                if attempts >= EMAIL_ATTEMPTS:
                    notification.status = NotificationStatus.FAILED
            MilestoneNotification.objects.bulk_update(group, ["details", "error", "status"])
            return 0
        rows.update(status=NotificationStatus.SENT, sent_at=now, error="")
    return len(group)


@shared_task(name="logistics.milestone_email_send")
def milestone_email_send_task(message_key: str, sender_name: str = "") -> int:
    return milestone_email_send(message_key=message_key, sender_name=sender_name)


# --- reads for the staff page -------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionFilter:
    customer_account_id: int | None = None
    channel: str = ""
    state: str = ""  # "enabled" or "disabled"
    query: str = ""


def subscriptions_list(criteria: SubscriptionFilter) -> QuerySet[MilestoneSubscription]:
    """Subscriptions newest first with their notification counts by state."""
    rows = MilestoneSubscription.objects.select_related("customer_account", "user").annotate(
        pending=Count("notifications", filter=Q(notifications__status=NotificationStatus.PENDING)),
        sent=Count("notifications", filter=Q(notifications__status=NotificationStatus.SENT)),
        failed=Count("notifications", filter=Q(notifications__status=NotificationStatus.FAILED)),
    )
    if criteria.customer_account_id:
        rows = rows.filter(customer_account_id=criteria.customer_account_id)
    if criteria.channel in NotificationChannel.values:
        rows = rows.filter(channel=criteria.channel)
    if criteria.state in ("enabled", "disabled"):
        rows = rows.filter(enabled=criteria.state == "enabled")
    if criteria.query:
        rows = rows.filter(
            Q(email__icontains=criteria.query)
            | Q(user__email__icontains=criteria.query)
            | Q(customer_account__name__icontains=criteria.query)
            | Q(event_type__icontains=criteria.query)
        )
    return rows.order_by("-created_at", "-id")


def subscription_notifications(subscription: MilestoneSubscription, status: str = "") -> QuerySet[MilestoneNotification]:
    rows = MilestoneNotification.objects.filter(subscription=subscription).select_related("shipment")
    if status in NotificationStatus.values:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at", "-id")


def account_notifications(customer_account_id: int | None, status: str = "") -> QuerySet[MilestoneNotification]:
    """The notifications of one account's subscriptions, newest first (every account's for None:
    staff), as the customer portal lists them."""
    rows = MilestoneNotification.objects.select_related("shipment", "subscription")
    if customer_account_id is not None:
        rows = rows.filter(subscription__customer_account_id=customer_account_id)
    if status in NotificationStatus.values:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at", "-id")


def template_defaults() -> dict[str, Any]:
    """The send step's input of the published workflow (its parameters as rendered): the
    default milestones new subscriptions start with, the sender name; {} while none is published."""
    from workflows.models import Definition

    definition = (
        Definition.objects.filter(published_version__spec__steps__contains=[{"action": SEND_ACTION}])
        .select_related("published_version")
        .order_by("pk")
        .first()
    )
    if definition is None or definition.published_version is None:
        return {}
    for step in definition.published_version.spec.get("steps", []):
        if isinstance(step, dict) and step.get("action") == SEND_ACTION:
            return {"definition": definition.key, "definition_name": definition.name, **(step.get("input") or {})}
    return {}
