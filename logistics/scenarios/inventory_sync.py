"""Inventory synchronisation: the ERP's book count of a warehouse arrives as a signed
`inventory.snapshot` webhook (nothing to compare it with yet), then the WMS's count – one pallet
and 18 reefer cartons lower – through the scenarios' count feed. With the WMS as the source of
truth the scenario checks that the one pallet is corrected at the sandbox ERP
(`adjust_inventory`), that the 18 cartons open an inventory-variance exception, and that the
shipper owning the pallets gets the corrected position by webhook.

Each play counts at a warehouse of its own (`scn-dc-<time>`): the comparison takes the other
system's latest count at the same place, so an earlier play's counts would be compared (and
corrected) again. `scn-dallas-dc` is where the definition's *Site locations* put the sandboxes'
sites, for its scheduled pull."""

from __future__ import annotations

import datetime as dt
import fnmatch
import time
import uuid
from typing import Any

from connectors.deliveries import EndpointInvalid, webhook_endpoint_create, webhook_endpoint_update
from connectors.demo import ERP, WMS
from connectors.inbox import connection_inbound_configure
from connectors.models import Connection, ConnectionKind, InboundMapper, InboundScheme, WebhookDelivery, WebhookEndpoint
from connectors.services import ConnectionInput, connection_create
from logistics.library.inventory_sync import TEMPLATE
from logistics.models import CustomerAccount, ExceptionCase, Location
from logistics.scenarios.base import (
    ACTOR,
    PREFIX,
    NotYet,
    Scenario,
    ScenarioContext,
    ScenarioUnavailable,
    definition_published,
    demo_actions_ensure,
    demo_connection,
    master_data,
)
from logistics.services import location_create
from workflows.models import Definition, Run

ADJUST = {"adjust_inventory": {"method": "POST", "path": "/api/inventory/adjustments"}}
SITE_CODE = f"{PREFIX}dallas-dc"
PARAMETERS = {
    "erp_connection": ERP,
    "wms_connection": WMS,
    "site_locations": {"DAL1": SITE_CODE, "ERP-MAIN": SITE_CODE},
    "source_of_truth": "wms",
}
COUNTS_KEY = f"{PREFIX}wms-counts"  # the WMS's counts as signed webhooks (the demo WMS pushes none)
ERP_COUNT = {"SKU-PALLET-A": 140, "SKU-REEFER-C": 48}
WMS_COUNT = {"SKU-PALLET-A": 139, "SKU-REEFER-C": 30}
OWNED = "SKU-PALLET-A"  # the shipper's pallets; nobody owns the reefer cartons
RECEIVER_PATH = "/api/events"  # the sandbox ERP's webhook inbox
RECEIVER_EVENTS = ["inventory.position", "shipment.*"]
ENDED = ("succeeded", "failed", "cancelled")


# --- the set-up ----------------------------------------------------------------------------------


def customer_receiver(customer: CustomerAccount, erp: Connection, event_type: str) -> tuple[WebhookEndpoint, bool]:
    """The shipper's webhook endpoint for `event_type`: an enabled one of theirs that subscribes
    it, else the scenarios' own at the sandbox ERP's webhook inbox (made, or subscribed to it);
    and whether it is the sandbox's, whose deliveries can be checked as delivered."""
    url = f"{erp.base_url.rstrip('/')}{RECEIVER_PATH}"
    endpoints = list(WebhookEndpoint.objects.filter(customer_account=customer, enabled=True).order_by("pk"))
    for endpoint in endpoints:
        if any(pattern == "*" or fnmatch.fnmatchcase(event_type, pattern) for pattern in endpoint.event_types):
            return endpoint, endpoint.url == url
    ours = next((endpoint for endpoint in endpoints if endpoint.url == url), None)
    if ours is not None:
        wanted = sorted({*ours.event_types, *RECEIVER_EVENTS})
        return webhook_endpoint_update(endpoint=ours, event_types=wanted, actor=ACTOR), True
    try:
        endpoint, _secret = webhook_endpoint_create(
            url=url,
            event_types=RECEIVER_EVENTS,
            customer_account_id=customer.pk,
            description="Scenario shipper's receiver (the sandbox ERP's webhook inbox)",
            actor=ACTOR,
        )
    except EndpointInvalid as invalid:
        raise ScenarioUnavailable(f"cannot give {customer.code} a webhook endpoint at {url}: {invalid.message}") from invalid
    return endpoint, True


def delivered(delivery: WebhookDelivery | None, *, answers: bool, what: str) -> str:
    """What became of a webhook delivery; NotYet while the sandbox's inbox has not taken it."""
    if delivery is None:
        raise NotYet(f"no {what} delivery")
    if answers and delivery.status != "delivered":
        raise NotYet(f"{what} delivery {delivery.pk} is {delivery.status} ({delivery.last_error or 'not tried yet'})")
    return f"{delivery.event_type} {delivery.event_id} {'delivered to' if answers else 'queued for'} {delivery.endpoint.url}"


def _place(code: str, name: str) -> Location:
    return Location.objects.filter(code=code).first() or location_create(
        code=code,
        name=name,
        address_line1="2500 Valwood Pkwy",
        city="Dallas",
        region="TX",
        country="US",
        time_zone="America/Chicago",
        actor=ACTOR,
    )


def _count_feed() -> Connection:
    """Where the WMS's counts arrive (`scn-wms-counts`): Baton events over Standard Webhooks."""
    connection = Connection.objects.filter(key=COUNTS_KEY).first() or connection_create(
        data=ConnectionInput(
            key=COUNTS_KEY,
            name="WMS count feed (scenarios)",
            kind=ConnectionKind.WMS,
            base_url="https://wms-counts.invalid",
            settings={"scenario": True},
        ),
        actor=ACTOR,
    )
    if not connection.inbound_scheme:
        connection_inbound_configure(
            connection=connection, scheme=InboundScheme.STANDARD_WEBHOOKS, mapper=InboundMapper.CANONICAL, actor=ACTOR
        )
        connection.refresh_from_db()
    return connection


def _bound(definition: Definition, parameter: str, default: str) -> Connection:
    version = definition.published_version
    assert version is not None
    alias = str((version.parameters or {}).get(parameter) or default)
    return demo_connection(str((version.connection_bindings or {}).get(alias) or alias))


# --- the play ------------------------------------------------------------------------------------


def _count(system: str, warehouse: Location, counts: dict[str, int], customer: CustomerAccount, *, at: dt.datetime) -> dict[str, Any]:
    positions = [
        {"sku": sku, "quantity": quantity, **({"customer": customer.code} if sku == OWNED else {})} for sku, quantity in counts.items()
    ]
    return {
        "event_type": "inventory.snapshot",
        "event_id": f"{PREFIX}inv-{system}-{uuid.uuid4().hex[:12]}",
        "correlation": {},
        "payload": {"system": system, "as_of": at.isoformat(timespec="seconds"), "location": warehouse.code, "positions": positions},
    }


def _run_ended(ctx: ScenarioContext, definition: Definition, event_id: str, step: str, expected: str, end: str) -> Any:
    """The run the event started ends succeeded at `end`; a run that ended otherwise is reported
    missing at once, with its error."""
    began = time.monotonic()

    def check() -> str:
        run = Run.objects.filter(definition=definition, business_key=f"event:{event_id}").order_by("pk").first()
        if run is None:
            raise NotYet(f"no run of '{definition.key}' for event {event_id}")
        if run not in ctx.watched:
            ctx.watched.append(run)
        if run.status not in ENDED:
            raise NotYet(f"run {run.pk} is {run.status} at {run.current_step}")
        if (run.status, run.current_step) != ("succeeded", end):
            raise ctx.missing(step, expected, f"run {run.pk} {run.status} at {run.current_step}: {run.error or 'no error'}", began=began)
        return f"run {run.pk} succeeded at {end}"

    return ctx.expect(step, expected, check)


def play(ctx: ScenarioContext) -> None:
    began = time.monotonic()
    customer, _origin, _destination = master_data()
    _place(SITE_CODE, "Dallas DC (scenarios)")
    definition, how = definition_published(TEMPLATE, name="Inventory sync (scenarios)", parameters=PARAMETERS)
    assert definition.published_version is not None
    truth = str((definition.published_version.parameters or {}).get("source_of_truth") or "wms")
    systems = {"erp": _bound(definition, "erp_connection", ERP), "wms": _bound(definition, "wms_connection", WMS)}
    added = [f"{key}: {name}" for key, system in systems.items() for name in demo_actions_ensure(system, ADJUST)]
    erp, feed = demo_connection(ERP), _count_feed()
    endpoint, answers = customer_receiver(customer, erp, "inventory.position")
    play_stamp = ctx.number("").removeprefix("SCN-").lower()
    warehouse = _place(f"{PREFIX}dc-{play_stamp}", f"Dallas DC (scenario play {play_stamp})")
    note = f"; added {', '.join(added)}" if added else ""
    ctx.done(
        "set up",
        f"a published inventory sync on the demo ERP and WMS, {truth.upper()} the source of truth",
        f"{how}; counting at {warehouse.code}; {customer.code}'s webhooks to {endpoint.url}{note}",
        began=began,
    )

    began = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    book = _count("erp", warehouse, ERP_COUNT, customer, at=now - dt.timedelta(minutes=10))
    status = ctx.webhook_post(erp, book)
    if status != 202:
        raise ctx.missing(
            "ERP count", f"the ERP's count at {warehouse.code} taken at {ctx.base_url}", f"answered HTTP {status}", began=began
        )
    ctx.done("ERP count", f"the ERP's count at {warehouse.code} taken at {ctx.base_url}", f"{book['event_id']}: HTTP 202", began=began)
    _run_ended(
        ctx,
        definition,
        book["event_id"],
        "nothing to compare",
        "the ERP count's run ends: no WMS count to compare yet",
        "nothing_to_compare",
    )

    began = time.monotonic()
    physical = _count("wms", warehouse, WMS_COUNT, customer, at=now)
    status = ctx.webhook_post(feed, physical)
    if status != 202:
        raise ctx.missing("WMS count", f"the WMS's count at {warehouse.code} taken", f"answered HTTP {status}", began=began)
    ctx.done(
        "WMS count",
        f"the WMS's count at {warehouse.code} taken: 1 pallet and 18 cartons fewer",
        f"{physical['event_id']}: HTTP 202",
        began=began,
    )
    _run_ended(ctx, definition, physical["event_id"], "synced", "the WMS count's run compares, corrects and publishes", "synced")

    wrong = "erp" if truth == "wms" else "wms"

    def corrected() -> str:
        adjustments = [
            effect
            for effect in ctx.sandbox_effects(systems[wrong], "inventory_adjustment")
            if any(line.get("location") == warehouse.code for line in effect["payload"].get("adjustments") or [])
        ]
        if not adjustments:
            raise NotYet(f"the {wrong.upper()} has no inventory adjustment at {warehouse.code}")
        lines = ", ".join(f"{line['sku']} {line['adjust_by']:+}" for line in adjustments[-1]["payload"]["adjustments"])
        return f"{adjustments[-1]['reference']} at the {wrong.upper()}: {lines}"

    ctx.expect("corrected", f"the small difference corrected at the {wrong.upper()} (adjust_inventory)", corrected)

    def escalated() -> str:
        case = ExceptionCase.objects.filter(type="inventory_variance", status="open", details__locations=[warehouse.code]).first()
        if case is None:
            raise NotYet(f"no open inventory-variance exception at {warehouse.code}")
        if "SKU-REEFER-C" not in case.reason:
            raise NotYet(f"exception {case.pk} does not name SKU-REEFER-C: {case.reason}")
        return f"exception {case.pk}, {case.severity}: {case.reason}"

    ctx.expect("variance exception", "the 18 reefer cartons open an inventory-variance exception", escalated)

    def published() -> str:
        delivery = (
            WebhookDelivery.objects.select_related("endpoint")
            .filter(endpoint=endpoint, event_type="inventory.position", payload__positions__contains=[{"location": warehouse.code}])
            .order_by("pk")
            .first()
        )
        said = delivered(delivery, answers=answers, what="inventory.position")
        assert delivery is not None
        shown = ", ".join(f"{p['sku']} {p['quantity']}" for p in delivery.payload.get("positions") or [])
        return f"{said}: {shown}"

    ctx.expect("position published", f"{customer.code} gets the corrected position of its pallets by webhook", published)


SCENARIO = Scenario(name="inventory_sync", title="Inventory synchronisation", template_key=TEMPLATE["key"], play=play, template_major=1)
