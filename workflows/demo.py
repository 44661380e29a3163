"""Sample traffic for `make run` (BATON_DEMO_TRAFFIC): gives a fresh install live runs to look at.

Every tick the scheduler starts, in each demo tenant, one milestone notification and one order
release. Orders vary so that some need a planner's approval (the inbox fills), some are on credit
hold (routed to the planners and compensated), and the carrier's 990 arrives a little later for
orders waiting on it (`edi.990` events correlated on the order). The order release calls its
carrier as `DEMO_CARRIER`, which seed_demo binds to the tenant's sandbox TMS connection
(`connectors.demo`): its tenders go through the real connector port to the sandbox, where a fault
switched on shows up as retries and incidents. Development only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from workflows.models import Definition, EventWait, EventWaitStatus, Run
from workflows.runs import run_start
from workflows.waits import event_deliver

DEMO_DEFINITION_KEY = "milestone-notifications"
DEMO_ORDER_KEY = "order-release"
# The connection name the order release's connector steps call (its `carrier_connection` parameter).
DEMO_CARRIER = "demo-carrier"
# Beat sends a tick this often (config/settings/celery.py); ticks are numbered time // this.
DEMO_TICK_SECONDS = 15
DEMO_MILESTONES = ("PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "DELAYED")
# Order totals cycle through these: the third needs approval (over the 50,000 threshold).
DEMO_ORDER_TOTALS = (1_250, 8_400, 64_000, 3_900, 17_500, 0)
# A carrier answers the tender this long after the run started waiting for its 990.
DEMO_990_AFTER = timedelta(seconds=20)


def _published(key: str) -> Definition | None:
    return Definition.objects.filter(key=key, published_version__isnull=False).first()


def demo_run_start(*, actor: Any, sequence: int) -> Run | None:
    """One sample milestone run in the current tenant, if its demo workflow is published on 1.x
    (2.x notifies from subscriptions: it needs no samples)."""
    definition = _published(DEMO_DEFINITION_KEY)
    if definition is None or not definition.template_version.startswith("1."):
        return None
    code = DEMO_MILESTONES[sequence % len(DEMO_MILESTONES)]
    shipment = f"SHP-{1000 + sequence % 50}"
    run, _created = run_start(
        definition=definition,
        input={"code": code, "shipment": shipment, "customer": "coyote"},
        business_key=f"demo-{sequence}",
        correlation={"shipment": shipment},
        trigger="schedule",  # fired by the scheduler
        actor=actor,
    )
    return run


def demo_order_start(*, actor: Any, sequence: int) -> Run | None:
    """One sample order release: some large (approval), some on credit hold (routed, compensated).
    Only for an order release still on 1.x: from 2.0 on `logistics.simulator` orders (in 2.x's shape)."""
    definition = _published(DEMO_ORDER_KEY)
    if definition is None or not definition.template_version.startswith("1."):
        return None
    order_id = f"SO-{sequence}"
    total = DEMO_ORDER_TOTALS[sequence % len(DEMO_ORDER_TOTALS)]
    run, _created = run_start(
        definition=definition,
        input={
            "order_id": order_id,
            "customer": "coyote",
            "total": total,
            "lines": [{"sku": f"SKU-{sequence % 7}", "qty": 1 + sequence % 4}] if total else [],
            "credit_hold": sequence % 11 == 0,
        },
        business_key=f"demo-order-{sequence}",
        correlation={"order": order_id},
        trigger="schedule",
        actor=actor,
    )
    return run


def demo_carrier_answers(*, now: Any = None) -> list[int]:
    """The carrier's 990 for orders that have waited `DEMO_990_AFTER`; returns the woken runs."""
    now = now or timezone.now()
    waiting = EventWait.objects.filter(
        status=EventWaitStatus.WAITING, event_type="edi.990", created_at__lte=now - DEMO_990_AFTER, correlation__has_key="order"
    ).values_list("pk", "correlation")  # 1.x's waits; 2.x's (on the shipment) hear the simulator's carrier
    woken: list[int] = []
    for wait_id, correlation in waiting[:20]:
        order = correlation.get("order", "")
        woken += event_deliver(
            event_type="edi.990",
            correlation=correlation,
            payload={"order": order, "accepted": True, "reference": f"PRO-{wait_id:06d}", "scac": "DEMO"},
            event_id=f"demo-990-{order}-{wait_id}",
        )
    return woken
