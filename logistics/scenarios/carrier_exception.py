"""Carrier exception management: a shipment of the sandbox carrier on its way; the carrier's
tracking webhook (EasyPost-signed, to the tenant's public host) moves it in transit, then the
carrier's EDI desk reports the delivery delayed in a 214 (AT7 SD, weather). The scenario checks
that an exception opens with its priority and SLA due time and that its run asks a person to
choose a recovery."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from connectors.demo import CARRIER_KEY, EDI_KEY
from connectors.edi.documents import ShipmentStatus, TrackingMilestone
from connectors.models import EdiPartner
from connectors.sandbox.carrier import CARRIER
from logistics.library.carrier_exceptions import TEMPLATE
from logistics.models import ExceptionCase, Shipment, StopKind
from logistics.scenarios.base import ACTOR, NotYet, Scenario, ScenarioContext, definition_published, demo_connection, master_data
from logistics.services import StopInput, shipment_create
from workflows.models import Approval, Run


def play(ctx: ScenarioContext) -> None:
    began = time.monotonic()
    carrier = demo_connection(CARRIER_KEY)
    partner = EdiPartner.objects.select_related("connection").filter(connection=demo_connection(EDI_KEY)).first()
    if partner is None:
        raise ctx.missing(
            "set up", "the demo carrier's EDI partner", f"the '{EDI_KEY}' connection has no EDI partner: run `manage.py seed_demo`"
        )
    customer, origin, destination = master_data()
    definition, how = definition_published(TEMPLATE, name="Carrier exceptions (scenarios)", parameters={})
    ctx.done("set up", "a published carrier exception management on the demo carrier", how, began=began)

    began = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    reference = ctx.number("SHP-")
    pro = ctx.number("PRO-")
    shipment = shipment_create(
        customer_account=customer,
        reference=reference,
        carrier_scac=CARRIER,
        pro_number=pro,
        planned_rate="2400.00",
        stops=[
            StopInput(1, StopKind.PICKUP, origin),
            StopInput(
                2,
                StopKind.DELIVERY,
                destination,
                appointment_start=now + dt.timedelta(hours=8),
                appointment_end=now + dt.timedelta(hours=10),
            ),
        ],
        actor=ACTOR,
    )
    status = ctx.webhook_post(carrier, _tracker(pro, "in_transit", at=now - dt.timedelta(hours=1)))
    if status != 202:
        raise ctx.missing(
            "carrier webhook", f"the tracking webhook for {pro} taken at {ctx.base_url}", f"answered HTTP {status}", began=began
        )
    ctx.done("carrier webhook", f"the tracking webhook for {pro} taken at {ctx.base_url}", f"shipment {reference}: HTTP 202", began=began)

    def in_transit() -> str:
        current = Shipment.objects.filter(pk=shipment.pk).values_list("status", flat=True).first()
        if current != "in_transit":
            raise NotYet(f"the shipment is {current}")
        return f"{reference} in transit"

    ctx.expect("milestone applied", "the webhook's milestone moves the shipment in transit", in_transit)

    milestone = TrackingMilestone(
        shipment_id=reference,
        status_code="SD",  # shipment delayed
        status_reason="AO",  # weather or natural disaster
        date=now.date(),
        time=now.time().replace(second=0, microsecond=0),
        time_zone_code="UT",
        city="TEXARKANA",
        state="AR",
        country="USA",
    )
    event_id = ctx.edi_send(partner, [ShipmentStatus(shipment_id=reference, pro_number=pro, scac=CARRIER, milestones=[milestone])])
    ctx.done("delayed 214", f"{CARRIER}'s 214 saying {reference} is delayed taken by the EDI inbox", f"inbox event {event_id}")

    def opened() -> str:
        case = ExceptionCase.objects.filter(shipment_id=shipment.pk, status="open").first()
        if case is None:
            raise NotYet(f"no open exception on {reference}")
        if case.sla_due_at is None:
            raise NotYet(f"exception {case.pk} has no SLA due time")
        factors = ", ".join((case.details.get("priority") or {}).get("factors") or []) or "no factors"
        return f"{case.type} exception {case.pk}, {case.severity} priority ({factors}), due {case.sla_due_at:%Y-%m-%d %H:%M} UTC: {case.reason}"

    ctx.expect("exception opened", f"an exception on {reference} with its priority and SLA due time", opened)

    def asked() -> str:
        run = Run.objects.filter(definition=definition, input__shipment_id=shipment.pk).order_by("pk").first()
        if run is None:
            raise NotYet("no run of the definition for the shipment")
        if run not in ctx.watched:
            ctx.watched.append(run)
        approval = Approval.objects.filter(run=run, step_id="choose-recovery", status="pending").first()
        if approval is None:
            raise NotYet(f"run {run.pk} has not asked for a recovery yet")
        return f"run {run.pk} asks {', '.join(approval.assignee_roles)} to choose a recovery, due {approval.due_at:%Y-%m-%d %H:%M} UTC"

    ctx.expect("recovery asked", "a person is asked to choose a recovery", asked)


def _tracker(code: str, status: str, *, at: dt.datetime) -> dict:
    """The sandbox carrier's EasyPost-style tracker event."""
    stamp = at.isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "id": f"evt_scn_{uuid.uuid4().hex[:16]}",
        "object": "Event",
        "mode": "test",
        "description": "tracker.updated",
        "created_at": stamp,
        "result": {
            "id": f"trk_scn_{code}",
            "object": "Tracker",
            "tracking_code": code,
            "carrier": CARRIER,
            "status": status,
            "est_delivery_date": None,
            "tracking_details": [
                {
                    "object": "TrackingDetail",
                    "message": "Departed facility",
                    "status": status,
                    "datetime": stamp,
                    "source": CARRIER,
                    "tracking_location": {"object": "TrackingLocation", "city": "Memphis", "state": "TN", "country": "US"},
                }
            ],
            "updated_at": stamp,
        },
    }


SCENARIO = Scenario(
    name="carrier_exception", title="Carrier exception management", template_key=TEMPLATE["key"], play=play, template_major=1
)
