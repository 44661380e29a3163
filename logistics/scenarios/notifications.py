"""Customer milestone notifications: the scenarios' shipper subscribes – by webhook at once, and
by email in an hourly digest –, and a shipment of theirs on the sandbox carrier moves in transit
by the carrier's signed tracking webhook. The scenario checks that the webhook subscription's
notification is sent as a `shipment.milestone` delivery, that the carrier resending the event
(and repeating its state under a new event id) tells nothing twice, and that the digest's
notification waits for its hour.

The sandbox carrier's tracker webhooks (EasyPost-style) have no "picked up" status – in transit is
the first move they report –, so the subscriptions take in transit besides picked up, delivered
and delay."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from connectors.demo import CARRIER_KEY, ERP
from connectors.models import InboundEvent, WebhookDelivery
from connectors.sandbox.carrier import CARRIER
from logistics.library.milestone_notifications import TEMPLATE
from logistics.models import CustomerAccount, DigestMode, MilestoneNotification, MilestoneSubscription, Shipment, StopKind
from logistics.notifications import HELD_DIGEST, subscription_create, subscriptions_forget
from logistics.scenarios.base import ACTOR, NotYet, Scenario, ScenarioContext, definition_published, demo_connection, master_data
from logistics.scenarios.carrier_exception import _tracker
from logistics.scenarios.inventory_sync import customer_receiver, delivered
from logistics.services import StopInput, shipment_create

MILESTONES = ["picked_up", "in_transit", "delivered", "delay"]
DIGEST_EMAIL = "operations@scenario-shipper.example"
TIME_ZONE = "America/Chicago"
QUIET = (dt.time(22, 0), dt.time(6, 0))  # the digest's quiet hours; the webhook has none
SETTLE_SECONDS = 1.0  # after a repeat is handed on: what it would have noted has been noted


def _subscribed(customer: CustomerAccount, *, channel: str, digest: str) -> tuple[MilestoneSubscription, bool]:
    """The shipper's enabled subscription of this kind taking MILESTONES (an earlier play's), or a
    new one; and whether it is new."""
    found = (
        MilestoneSubscription.objects.filter(customer_account=customer, enabled=True, channel=channel, digest=digest)
        .filter(milestones__contains=MILESTONES)
        .filter(quiet_start__isnull=digest == DigestMode.OFF)
        .order_by("pk")
        .first()
    )
    if found is not None:
        return found, False
    quiet: dict[str, Any] = {} if digest == DigestMode.OFF else {"quiet_start": QUIET[0], "quiet_end": QUIET[1]}
    made = subscription_create(
        customer_account=customer,
        milestones=MILESTONES,
        channel=channel,
        time_zone=TIME_ZONE,
        email=DIGEST_EMAIL if channel == "email" else "",
        digest=digest,
        actor=ACTOR,
        **quiet,
    )
    return made, True


def play(ctx: ScenarioContext) -> None:
    began = time.monotonic()
    carrier = demo_connection(CARRIER_KEY)
    erp = demo_connection(ERP)
    customer, origin, destination = master_data()
    definition, how = definition_published(TEMPLATE, name="Milestone notifications (scenarios)", parameters={})
    endpoint, answers = customer_receiver(customer, erp, "shipment.milestone")
    at_once, new_webhook = _subscribed(customer, channel="webhook", digest=DigestMode.OFF)
    digest, new_digest = _subscribed(customer, channel="email", digest=DigestMode.HOURLY)
    subscriptions_forget()  # a definition published just now: the inbox reads who listens afresh
    made = [name for name, new in (("webhook", new_webhook), ("hourly email digest", new_digest)) if new]
    ctx.done(
        "set up",
        f"{customer.code} subscribed by webhook at once and by an hourly email digest",
        f"{how}; subscriptions {at_once.pk} and {digest.pk}"
        + (f" ({', '.join(made)} made)" if made else "")
        + f"; webhooks to {endpoint.url}",
        began=began,
    )

    began = time.monotonic()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    reference, pro = ctx.number("SHP-"), ctx.number("PRO-")
    shipment = shipment_create(
        customer_account=customer,
        reference=reference,
        carrier_scac=CARRIER,
        pro_number=pro,
        planned_rate="1800.00",
        stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)],
        actor=ACTOR,
    )
    event = _tracker(pro, "in_transit", at=now - dt.timedelta(minutes=5))
    status = ctx.webhook_post(carrier, event)
    if status != 202:
        raise ctx.missing(
            "carrier webhook", f"the tracking webhook for {pro} taken at {ctx.base_url}", f"answered HTTP {status}", began=began
        )
    ctx.done("carrier webhook", f"the tracking webhook for {pro} taken at {ctx.base_url}", f"{reference} in transit: HTTP 202", began=began)

    def sent() -> str:
        row = MilestoneNotification.objects.filter(subscription=at_once, shipment=shipment, milestone="in_transit").first()
        if row is None:
            current = Shipment.objects.filter(pk=shipment.pk).values_list("status", flat=True).first()
            raise NotYet(f"nothing noted for {reference} (the shipment is {current})")
        if row.status != "sent":
            raise NotYet(f"notification {row.pk} is {row.status}{': ' + row.error if row.error else ''}")
        delivery = (
            WebhookDelivery.objects.select_related("endpoint")
            .filter(event_type=at_once.event_type, event_id=row.message_key, endpoint__customer_account=customer)
            .order_by("pk")
            .first()
        )
        if delivery is None:
            raise NotYet(f"notification {row.pk} is sent but no {at_once.event_type} delivery {row.message_key} is queued")
        ours = answers and delivery.endpoint_id == endpoint.pk
        return f"notification {row.pk} sent; {delivered(delivery, answers=ours, what=at_once.event_type)}"

    ctx.expect("webhook notification", f"{customer.code} told of {reference} in transit by a {at_once.event_type} webhook", sent)

    began = time.monotonic()
    again = ctx.webhook_post(carrier, event)
    repeated = {**event, "id": f"evt_scn_{uuid.uuid4().hex[:16]}"}
    second = ctx.webhook_post(carrier, repeated)
    if again not in (200, 202) or second != 202:
        raise ctx.missing(
            "carrier resends", "the carrier's resent event and its repeat taken", f"answered HTTP {again} and {second}", began=began
        )

    def handed_on() -> str:
        inbound = InboundEvent.objects.filter(connection=carrier, external_id=repeated["id"]).first()
        if inbound is None or inbound.status != "delivered":
            raise NotYet(f"the repeat {repeated['id']} is {inbound.status if inbound else 'not stored'}")
        return f"the same event again (HTTP {again}) and its repeat {repeated['id']} (HTTP {second}) handed on"

    ctx.expect("carrier resends", "the carrier's resent event and its repeat under a new id taken", handed_on)
    time.sleep(SETTLE_SECONDS)

    began = time.monotonic()

    def once() -> str:
        rows = MilestoneNotification.objects.filter(subscription=at_once, shipment=shipment).count()
        deliveries = WebhookDelivery.objects.filter(
            event_type=at_once.event_type, endpoint__customer_account=customer, payload__milestones__contains=[{"shipment": reference}]
        ).count()
        if (rows, deliveries) != (1, 1):
            raise ctx.missing(
                "told once",
                f"nothing told twice for {reference}",
                f"{rows} notification(s) and {deliveries} webhook deliveries for {reference}",
                began=began,
            )
        return "one notification, one webhook delivery"

    ctx.expect("told once", f"nothing told twice for {reference}", once)

    began = time.monotonic()

    def waiting() -> str:
        row = MilestoneNotification.objects.filter(subscription=digest, shipment=shipment, milestone="in_transit").first()
        if row is None:
            raise NotYet(f"nothing noted for {reference} in the digest")
        if (row.status, row.held) != ("pending", HELD_DIGEST):
            raise ctx.missing(
                "digest waits",
                "the digest's notification waits for its hour",
                f"notification {row.pk} is {row.status} ({row.held or 'not held'})",
                began=began,
            )
        return f"notification {row.pk} pending, due {row.due_at:%Y-%m-%d %H:%M} UTC with the hourly digest to {digest.email}"

    ctx.expect("digest waits", f"{reference} in transit waits for the hourly digest", waiting)


SCENARIO = Scenario(name="notifications", title="Milestone notifications", template_key=TEMPLATE["key"], play=play, template_major=2)
