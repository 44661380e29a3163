"""Order release (template "Order to shipment release" 2.x): an order keyed in at the sandbox ERP
starts a run; the scenario checks the tender at the sandbox TMS, plays the carriers' EDI desks
(the first carrier of the routing guide declines with a 990 when the guide has a second, which
must then get the tender; the last one tendered accepts), and checks the release at the sandbox
WMS and the confirmation at the sandbox ERP."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from connectors.demo import ERP, TMS, WMS
from connectors.edi.documents import TenderResponse
from connectors.sandbox.carrier import CARRIER
from logistics.library.order_release import TEMPLATE
from logistics.models import Order, Shipment
from logistics.scenarios.base import (
    ACTOR,
    NotYet,
    Scenario,
    ScenarioContext,
    definition_published,
    demo_actions_ensure,
    demo_connection,
    edi_partner_for,
    master_data,
)
from workflows.models import Run
from workflows.runs import run_start

SECOND_CARRIER = "ODFL"
# What the template's ERP step calls, at the sandbox ERP (a demo seeded before it lacks it).
ERP_ACTIONS = {"confirm_order": {"method": "POST", "path": "/api/order-confirmations"}}
SKU, QUANTITY, WEIGHT_LB = "SKU-CARTON-B", 2, 300  # the sandbox WMS stocks 2,300 of these


def _bound(version: Any, parameter: str) -> str:
    """The connection key a connector step reaches through a connection parameter."""
    alias = str(version.parameters.get(parameter) or "")
    return str((version.connection_bindings or {}).get(alias) or alias)


def play(ctx: ScenarioContext) -> None:
    began = time.monotonic()
    customer, origin, destination = master_data()
    definition, how = definition_published(
        TEMPLATE,
        name="Order release (scenarios)",
        parameters={"routing_guide": [CARRIER, SECOND_CARRIER], "tender_timeout": "PT10M"},
    )
    version = definition.published_version
    assert version is not None
    erp = demo_connection(_bound(version, "erp_connection") or ERP)
    tms = demo_connection(_bound(version, "carrier_connection") or TMS)
    wms = demo_connection(_bound(version, "wms_connection") or WMS)
    added = demo_actions_ensure(erp, ERP_ACTIONS)
    guide = [str(scac) for scac in version.parameters.get("routing_guide") or []]
    note = f"; the ERP connection now has {', '.join(added)}" if added else ""
    ctx.done(
        "set up",
        "a published order release 2.x on the demo ERP, TMS and WMS",
        f"{how}; routing guide {', '.join(guide)}{note}",
        began=began,
    )

    number = ctx.number("SO-")
    shipment_reference = f"SHP-{number}"
    began = time.monotonic()
    entered, answer = ctx.sandbox_post(
        erp,
        "/api/orders",
        {
            "number": number,
            "customer": customer.name,
            "ship_to": {"name": destination.name, "city": destination.city, "country": destination.country},
            "lines": [{"sku": SKU, "quantity": QUANTITY}],
        },
        key=f"scenario-{number}",
    )
    if entered != 201:
        raise ctx.missing(
            "order entered", f"sales order {number} keyed in at the ERP", f"the ERP answered {entered}: {answer}", began=began
        )
    order = {
        "order_id": number,
        "customer": customer.code,
        "po_number": f"PO-{number}",
        "ship_from": origin.code,
        "ship_to": destination.code,
        "lines": [{"sku": SKU, "qty": QUANTITY, "weight": WEIGHT_LB, "weight_unit": "lb"}],
    }
    run, _created = run_start(
        definition=definition, input=order, business_key=f"scenario-{number}", correlation={"order": number}, trigger="api", actor=ACTOR
    )
    ctx.watched.append(run)
    ctx.done("order entered", f"sales order {number} keyed in at the ERP and its run started", f"run {run.pk}", began=began)

    def tendered(carrier: str) -> str:
        tenders = [
            effect
            for effect in ctx.sandbox_effects(tms, "tender")
            if (effect.get("payload") or {}).get("order", {}).get("order_id") == shipment_reference
            and effect["payload"].get("carrier") == carrier
        ]
        if not tenders:
            raise NotYet(f"the TMS has no tender of {shipment_reference} to {carrier}")
        if not Run.objects.filter(pk=run.pk, status="waiting", current_step="wait-990").exists():
            raise NotYet("the run is not waiting for the carrier's 990 yet")
        return f"tender {tenders[-1]['reference']} of {shipment_reference} to {carrier}; the run waits for the 990"

    first = guide[0] if guide else CARRIER
    ctx.expect("tendered", f"{shipment_reference} tendered to {first} at the TMS", lambda: tendered(first))

    accepting = first
    if len(guide) > 1:
        accepting = guide[1]
        ctx.edi_send(edi_partner_for(first, tenant_slug=ctx.tenant.slug), [_answer(shipment_reference, first, accepted=False)])

        def moved() -> str:
            shipment = Shipment.objects.filter(reference=shipment_reference).first()
            if shipment is None or shipment.carrier_scac != accepting:
                raise NotYet(f"the shipment is still with {shipment.carrier_scac if shipment else 'no carrier'}")
            return f"{first} declined (990 A1 NO EQUIPMENT); " + tendered(accepting)

        ctx.expect("990 decline", f"{first}'s declining 990 moves the tender to {accepting}", moved)
    ctx.edi_send(edi_partner_for(accepting, tenant_slug=ctx.tenant.slug), [_answer(shipment_reference, accepting, accepted=True)])

    def accepted() -> str:
        shipment = Shipment.objects.filter(reference=shipment_reference, tender_status="accepted").first()
        if shipment is None:
            raise NotYet("the shipment's tender is not accepted yet")
        return f"accepted by {shipment.carrier_scac}, load {shipment.load_number or '-'}"

    ctx.expect("tender accepted", f"{accepting}'s accepting 990 accepts the tender", accepted)

    def released() -> str:
        releases = [effect for effect in ctx.sandbox_effects(wms, "release") if effect["payload"].get("order_number") == number]
        if not releases:
            raise NotYet(f"the WMS has no release of {number}")
        status = Order.objects.filter(number=number).values_list("status", flat=True).first()
        if status != "released":
            raise NotYet(f"the order is {status}, not released")
        return f"release {releases[-1]['reference']} at the WMS, carrier {releases[-1]['payload'].get('carrier')}"

    ctx.expect("released to the WMS", f"order {number} released to the warehouse", released)

    def confirmed() -> str:
        confirmations = [
            effect for effect in ctx.sandbox_effects(erp, "order_confirmation") if effect["payload"].get("order_number") == number
        ]
        if not confirmations:
            raise NotYet(f"the ERP has no confirmation of {number}")
        if not Run.objects.filter(pk=run.pk, status="succeeded").exists():
            raise NotYet("the run has not succeeded yet")
        return f"confirmation {confirmations[-1]['reference']} ({confirmations[-1]['payload'].get('decision')}); run {run.pk} succeeded"

    ctx.expect("ERP confirmation", f"order {number} confirmed to the ERP", confirmed)


def _answer(shipment_reference: str, scac: str, *, accepted: bool) -> TenderResponse:
    """The carrier's 990 for the shipment the tender carried."""
    return TenderResponse(
        shipment_id=shipment_reference,
        scac=scac,
        accepted=accepted,
        date=dt.datetime.now(dt.UTC).date(),
        reason_code="" if accepted else "A1",
        remarks=[] if accepted else ["NO EQUIPMENT"],
    )


SCENARIO = Scenario(name="order_release", title="Order to shipment release", template_key=TEMPLATE["key"], play=play, template_major=2)
