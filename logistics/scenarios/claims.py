"""Freight claims: a delivered shipment of the sandbox carrier whose signed POD notes crushed
cartons, announced through the document intake's signed webhook. The scenario checks that a
damage claim is filed against the carrier with the Carmack dates (acknowledge within 30 days,
decide within 120) and that its run waits for the carrier's answer."""

from __future__ import annotations

import datetime as dt
import time

from connectors.sandbox.carrier import CARRIER
from logistics.library.claims import TEMPLATE
from logistics.models import Claim
from logistics.scenarios.base import NotYet, Scenario, ScenarioContext, definition_published, document_intake
from logistics.scenarios.pod_to_invoice import delivered_shipment, pod_announce, pod_record
from workflows.models import Run

DAMAGE = "3 cartons crushed"
AMOUNT = "840.00"


def play(ctx: ScenarioContext) -> None:
    began = time.monotonic()
    definition, how = definition_published(TEMPLATE, name="Freight claims (scenarios)", parameters={})
    document_intake()
    ctx.done("set up", "a published freight claims workflow", how, began=began)

    began = time.monotonic()
    shipment = delivered_shipment(ctx, rate_confirmation=False)
    status = pod_announce(ctx, shipment, pod_record(shipment, exceptions=[DAMAGE], claim_amount=AMOUNT))
    if status != 202:
        raise ctx.missing("damaged POD", f"the POD of {shipment.reference} noting damage announced", f"HTTP {status}", began=began)
    ctx.done(
        "damaged POD", f"the POD of {shipment.reference} noting '{DAMAGE}' announced through the document intake", "HTTP 202", began=began
    )

    def filed() -> str:
        claim = Claim.objects.filter(shipment=shipment).first()
        if claim is None:
            raise NotYet(f"no claim on {shipment.reference}")
        acknowledge, decide = claim.acknowledge_due_at - claim.filed_at, claim.decide_due_at - claim.filed_at
        if (acknowledge, decide) != (dt.timedelta(days=30), dt.timedelta(days=120)):
            raise NotYet(
                f"claim {claim.number} is due for acknowledgement after {acknowledge} and a decision after {decide}, not 30 and 120 days"
            )
        return (
            f"claim {claim.number}: {claim.kind}, {claim.currency} {claim.amount_claimed} against {claim.carrier_scac}; "
            f"acknowledge by {claim.acknowledge_due_at:%Y-%m-%d}, decide by {claim.decide_due_at:%Y-%m-%d} (Carmack 30/120 days)"
        )

    ctx.expect("claim filed", f"a damage claim against {CARRIER} with the Carmack dates", filed)

    def waiting() -> str:
        run = Run.objects.filter(definition=definition, correlation__shipment=shipment.reference).order_by("pk").first()
        if run is None:
            raise NotYet("no run of the definition for the shipment")
        if run not in ctx.watched:
            ctx.watched.append(run)
        if run.status != "waiting" or run.current_step != "wait_carrier":
            raise NotYet(f"run {run.pk} is {run.status} at {run.current_step}")
        return f"run {run.pk} waits for {CARRIER}'s acknowledgement"

    ctx.expect("waiting for the carrier", "the claim's run waits for the carrier's answer on the Carmack clock", waiting)


SCENARIO = Scenario(name="claims", title="Freight claims", template_key=TEMPLATE["key"], play=play, template_major=1)
