"""Baton's tracking vocabulary and the order in which a shipment moves through it.

Carriers report in many dialects (X12 214 codes, carrier APIs, telemetry); every event is
stored beside its raw code with one of these normalized statuses, and the shipment's current
status is derived from its events so that the arrival order never matters:

- Each status has a progression rank. Statuses that can alternate while a shipment is on its
  way share a rank (in transit, on hold and delivery delayed; out for delivery, a failed
  attempt and ready for pickup), so the newest of them describes the shipment.
- An event changes the current status only if its key – (rank, occurred_at, dedupe key) – is
  greater than the key of the event that set the current status. An older event is stored in
  the timeline and changes nothing; a lower-ranked event never moves a shipment backwards.
- Terminal statuses rank highest, so they always win: delivered above return to sender above
  cancelled (a proof of delivery outweighs a cancellation that crossed it).
- `unknown` ranks lowest: an unmapped code is kept for people to read but moves nothing.
- Estimates (the event's estimate flag) never change the status; they move the ETA only when
  they were made later than the estimate that set the current ETA.

So the final status is the maximum of the events' keys, the same for every arrival order.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils.translation import gettext_noop


class TrackingStatus(models.TextChoices):
    PENDING = "pending", gettext_noop("Pending")
    TENDERED = "tendered", gettext_noop("Tendered")
    TENDER_ACCEPTED = "tender_accepted", gettext_noop("Tender accepted")
    ARRIVED_AT_PICKUP = "arrived_at_pickup", gettext_noop("Arrived at pickup")
    PICKED_UP = "picked_up", gettext_noop("Picked up")
    IN_TRANSIT = "in_transit", gettext_noop("In transit")
    ON_HOLD = "on_hold", gettext_noop("On hold")
    DELIVERY_DELAYED = "delivery_delayed", gettext_noop("Delivery delayed")
    OUT_FOR_DELIVERY = "out_for_delivery", gettext_noop("Out for delivery")
    DELIVERY_FAILED = "delivery_failed", gettext_noop("Delivery failed")
    READY_FOR_PICKUP = "ready_for_pickup", gettext_noop("Ready for pickup")
    ARRIVED_AT_DELIVERY = "arrived_at_delivery", gettext_noop("Arrived at delivery")
    DELIVERED = "delivered", gettext_noop("Delivered")
    RETURN_TO_SENDER = "return_to_sender", gettext_noop("Return to sender")
    CANCELLED = "cancelled", gettext_noop("Cancelled")
    UNKNOWN = "unknown", gettext_noop("Unknown")


S = TrackingStatus
PROGRESSION_RANK: dict[str, int] = {
    S.UNKNOWN: 0,
    S.PENDING: 10,
    S.TENDERED: 20,
    S.TENDER_ACCEPTED: 30,
    S.ARRIVED_AT_PICKUP: 40,
    S.PICKED_UP: 50,
    S.IN_TRANSIT: 60,
    S.ON_HOLD: 60,
    S.DELIVERY_DELAYED: 60,
    S.OUT_FOR_DELIVERY: 70,
    S.DELIVERY_FAILED: 70,
    S.READY_FOR_PICKUP: 70,
    S.ARRIVED_AT_DELIVERY: 80,
    S.CANCELLED: 90,
    S.RETURN_TO_SENDER: 95,
    S.DELIVERED: 100,
}
TERMINAL_STATUSES = frozenset({S.DELIVERED, S.RETURN_TO_SENDER, S.CANCELLED})
# Statuses that put a truck at a stop or take it away (the stop's arrival and departure).
ARRIVALS: dict[str, str] = {S.ARRIVED_AT_PICKUP: "pickup", S.ARRIVED_AT_DELIVERY: "delivery"}
DEPARTURES: dict[str, str] = {S.PICKED_UP: "pickup", S.DELIVERED: "delivery"}


class Signal(models.TextChoices):
    """A hint an event carries for exception handling (from its status or reason mapping)."""

    DELAY = "delay", gettext_noop("Delay")
    DAMAGE = "damage", gettext_noop("Damage")
    SHORTAGE = "shortage", gettext_noop("Shortage")
    REFUSED = "refused", gettext_noop("Refused")
    MISSED_PICKUP = "missed_pickup", gettext_noop("Missed pickup")
    MISSED_DELIVERY = "missed_delivery", gettext_noop("Missed delivery")
    CUSTOMS = "customs", gettext_noop("Customs")
    WEATHER = "weather", gettext_noop("Weather")
    HOLD = "hold", gettext_noop("Hold")


def rank(status: str) -> int:
    return PROGRESSION_RANK.get(status, 0)


def progression_key(status: str, occurred_at: datetime, dedupe_key: str) -> tuple[int, datetime, str]:
    """The order events compete in for a shipment's current status (greater wins)."""
    return (rank(status), occurred_at, dedupe_key)


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES
