"""Changing a milestone subscription (`subscription_update`, which the customer portal's
preferences page uses): checked as on create, audited with what changed, and what was waiting
follows the new rules – a milestone no longer wanted is cancelled, the rest due by the new quiet
hours and digest."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from governance.models import AuditEvent
from logistics.models import MilestoneNotification, MilestoneSubscription
from logistics.notifications import HELD_DIGEST, SubscriptionRefused, account_notifications, subscription_create, subscription_update
from tests.logistics.conftest import SYSTEM, make_shipment

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 09:30 in Chicago

pytestmark = pytest.mark.django_db


def _subscription(acme, **fields):
    values = {"customer_account": acme.customer_accounts[0], "milestones": ["picked_up", "delivered"], "channel": "email"}
    return subscription_create(**{**values, "time_zone": "UTC", "actor": SYSTEM, **fields})


def _waiting(subscription, shipment, milestone: str) -> MilestoneNotification:
    return MilestoneNotification.objects.create(
        subscription=subscription,
        shipment=shipment,
        milestone=milestone,
        occurred_at=NOW - timedelta(minutes=5),
        due_at=NOW + timedelta(hours=10),
        held="quiet_hours",
    )


def test_an_update_changes_what_how_and_when_and_is_audited_with_what_changed(acme):
    subscription = _subscription(acme)
    updated = subscription_update(
        subscription=subscription,
        milestones=["delivered", "delay"],
        channel="email",
        email="dock@coyote.test",
        time_zone="America/Chicago",
        quiet_start=time(21, 0),
        quiet_end=time(7, 0),
        digest="daily",
        digest_at=time(17, 0),
        actor=SYSTEM,
        now=NOW,
    )
    stored = MilestoneSubscription.objects.get(pk=subscription.pk)
    assert stored.milestones == ["delivered", "delay"] and stored.email == "dock@coyote.test"
    assert (stored.quiet_start, stored.quiet_end, stored.digest, stored.digest_at) == (time(21, 0), time(7, 0), "daily", time(17, 0))
    assert stored.time_zone == "America/Chicago" and updated.pk == subscription.pk
    event = AuditEvent.objects.get(action="milestone_subscription.updated", target_id=str(subscription.pk))
    assert event.data["changed"]["milestones"] == {"from": ["picked_up", "delivered"], "to": ["delivered", "delay"]}
    assert event.data["changed"]["to"] == {"from": "", "to": "dock@coyote.test"}
    assert set(event.data["changed"]) == {"milestones", "to", "quiet_hours", "digest", "time_zone"}


def test_an_update_that_changes_nothing_writes_no_audit_row(acme):
    subscription = _subscription(acme)
    subscription_update(subscription=subscription, milestones=["picked_up", "delivered"], channel="email", time_zone="UTC", actor=SYSTEM)
    assert not AuditEvent.objects.filter(action="milestone_subscription.updated", target_id=str(subscription.pk)).exists()


def test_an_update_is_checked_field_by_field_like_a_create_and_changes_nothing_when_refused(acme):
    subscription = _subscription(acme)
    other = acme.customer_accounts[1]
    customer = acme.users["customer"]  # a person of the first account
    cases = [
        ({"milestones": []}, "milestones", "Choose at least one milestone to tell."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "'Mars/Olympus' is not an IANA time zone"),
        ({"quiet_start": time(22, 0)}, "quiet_end", "Give both the start and the end of quiet hours, or neither."),
        ({"digest": "daily"}, "digest_at", "A daily digest needs the local time it is sent."),
    ]
    for change, field, message in cases:
        with pytest.raises(SubscriptionRefused) as refused:
            subscription_update(
                **{
                    "subscription": subscription,
                    "milestones": ["delivered"],
                    "channel": "email",
                    "time_zone": "UTC",
                    "actor": SYSTEM,
                    **change,
                }
            )
        assert refused.value.field == field and message in refused.value.message, change
    theirs = _subscription(acme, customer_account=other)
    with pytest.raises(SubscriptionRefused, match=f"{customer.email} is not a person of {other.name}"):
        subscription_update(subscription=theirs, milestones=["delivered"], channel="email", user=customer, time_zone="UTC", actor=SYSTEM)
    stored = MilestoneSubscription.objects.get(pk=subscription.pk)
    assert stored.milestones == ["picked_up", "delivered"] and stored.time_zone == "UTC"


def test_waiting_notifications_follow_the_new_rules(acme, places):
    subscription = _subscription(acme, quiet_start=time(9, 0), quiet_end=time(23, 0))
    shipment = make_shipment(acme, places, "SH-UPD-1")
    dropped = _waiting(subscription, shipment, "picked_up")
    kept = _waiting(subscription, shipment, "delivered")
    subscription_update(
        subscription=subscription,
        milestones=["delivered"],
        channel="email",
        time_zone="UTC",
        digest="hourly",
        actor=SYSTEM,
        now=NOW,
    )
    dropped.refresh_from_db()
    kept.refresh_from_db()
    assert dropped.status == "cancelled" and "stopped telling this milestone" in dropped.error
    assert kept.status == "pending" and kept.held == HELD_DIGEST and kept.due_at == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)


def test_a_webhook_subscription_keeps_no_address_and_an_account_reads_only_its_notifications(acme, places):
    subscription = _subscription(acme, email="dock@coyote.test")
    subscription_update(
        subscription=subscription, milestones=["delivered"], channel="webhook", email="x@y.test", time_zone="UTC", actor=SYSTEM
    )
    stored = MilestoneSubscription.objects.get(pk=subscription.pk)
    assert stored.channel == "webhook" and stored.email == "" and stored.event_type == "shipment.milestone"
    theirs = _subscription(acme, customer_account=acme.customer_accounts[1])
    mine = _waiting(subscription, make_shipment(acme, places, "SH-UPD-2"), "delivered")
    other = _waiting(theirs, make_shipment(acme, places, "SH-UPD-3"), "delivered")
    assert list(account_notifications(acme.customer_accounts[0].pk)) == [mine]
    assert set(account_notifications(None)) == {mine, other}
    assert list(account_notifications(acme.customer_accounts[0].pk, "sent")) == []
