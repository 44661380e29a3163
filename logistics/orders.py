"""Orders on their way to a released shipment (the order release template, issue 5 §1): the
checks an order must pass before it is planned, and the writes that follow it through tendering
and release. `logistics.services` creates orders, shipments, tracking events and exceptions;
this module adds what the release needs on top – an order's status, a shipment's tender and
carrier – each change with its audit row in the same transaction.

An order's checks answer every problem at once (a planner fixes them together), each with the
field it concerns, in the words the exception will show."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.services import actor_of, audit_record
from logistics.models import (
    CustomerAccount,
    EventSource,
    Location,
    Order,
    OrderStatus,
    Party,
    PartyKind,
    Shipment,
    TenderStatus,
    WeightUnit,
)
from logistics.services import LogisticsRefused, tracking_event_record
from logistics.vocabulary import TrackingStatus

KG_IN_LB = Decimal("2.20462")
# What a release has already done: such an order is never planned a second time.
ORDER_DONE = frozenset({OrderStatus.RELEASED, OrderStatus.SHIPPED})


class OrderRefused(LogisticsRefused):
    pass


# --- checks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderProblem:
    field: str  # a JSON pointer into the order as the ERP sent it: /lines/0/weight
    reason: str

    def as_data(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@dataclass
class OrderCheck:
    """What the checks found: the master data they resolved, the problems, the credit hold."""

    customer: CustomerAccount | None = None
    ship_from: Location | None = None
    ship_to: Location | None = None
    problems: list[OrderProblem] = field(default_factory=list)
    credit_hold: str = ""  # why the order is held, empty when it is not

    def fail(self, pointer: str, reason: str) -> None:
        self.problems.append(OrderProblem(pointer, reason))

    @property
    def reason(self) -> str:
        return "; ".join(problem.reason for problem in self.problems)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _positive(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number > 0 else None


ADDRESS_PARTS = (("address_line1", "a street"), ("city", "a city"), ("country", "a country"))


def _location(check: OrderCheck, order: dict[str, Any], name: str, words: str) -> Location | None:
    code = _text(order.get(name))
    if not code:
        check.fail(f"/{name}", f"the {words} location is missing")
        return None
    location = Location.objects.filter(code=code).first()
    if location is None:
        check.fail(f"/{name}", f"the {words} location '{code}' is not in the master data")
        return None
    missing = [needed for part, needed in ADDRESS_PARTS if not getattr(location, part).strip()]
    if missing:
        check.fail(f"/{name}", f"the {words} address ({location.code}) needs {', '.join(missing)}")
    return location


def order_check(*, order: dict[str, Any], credit_hold_accounts: list[str] | tuple[str, ...] = ()) -> OrderCheck:
    """Check an order as the ERP sent it (`order_id`, `customer`, `ship_from`, `ship_to` – codes
    of the master data –, `lines` of `sku`, `qty`, `weight`, `weight_unit`, and `credit_hold`):
    required fields, master data, addresses, weights, and the credit hold the ERP sets on the
    order or the tenant on the customer (`credit_hold_accounts`)."""
    check = OrderCheck()
    if not _text(order.get("order_id")):
        check.fail("/order_id", "the order number is missing")
    code = _text(order.get("customer"))
    if not code:
        check.fail("/customer", "the customer is missing")
    else:
        check.customer = CustomerAccount.objects.filter(code=code).first()
        if check.customer is None:
            check.fail("/customer", f"the customer '{code}' is not in the master data")
    check.ship_from = _location(check, order, "ship_from", "ship-from")
    check.ship_to = _location(check, order, "ship_to", "ship-to")
    lines = order.get("lines")
    if not isinstance(lines, list) or not lines:
        check.fail("/lines", "the order has no lines")
        lines = []
    for index, line in enumerate(lines):
        at = f"/lines/{index}"
        line = line if isinstance(line, dict) else {}
        if not _text(line.get("sku")):
            check.fail(f"{at}/sku", f"line {index + 1} has no SKU")
        if _positive(line.get("qty")) is None:
            check.fail(f"{at}/qty", f"line {index + 1} needs a quantity above zero")
        if line.get("weight") in (None, ""):
            check.fail(f"{at}/weight", f"line {index + 1} has no weight")
        elif _positive(line.get("weight")) is None:
            check.fail(f"{at}/weight", f"line {index + 1} needs a weight above zero, not {line.get('weight')!r}")
        unit = line.get("weight_unit") or WeightUnit.LB
        if unit not in WeightUnit.values:
            check.fail(f"{at}/weight_unit", f"line {index + 1}: {unit!r} is not a weight unit (lb or kg)")
    if order.get("credit_hold") is True:
        check.credit_hold = "the ERP put the order on credit hold"
    elif code and code in credit_hold_accounts:
        check.credit_hold = f"the customer '{code}' is on credit hold"
    return check


def order_weight_lb(order: Order) -> Decimal:
    """The order's weight in pounds (lines in kilograms converted)."""
    total = Decimal("0")
    for line in order.lines.all():
        weight = line.weight or Decimal("0")
        total += weight * KG_IN_LB if line.weight_unit == WeightUnit.KG else weight
    return total.quantize(Decimal("0.001"))


# --- writes --------------------------------------------------------------------------------------


def order_status_set(*, order: Order, status: str, reason: str = "", actor: Any) -> Order:
    """Move an order to `status` with the reason people read on it. Like orders themselves (a
    machine feed), audited when a person does it; a workflow's changes are its run's steps."""
    if status not in OrderStatus.values:
        raise OrderRefused(f"{status!r} is not an order status: use one of {', '.join(OrderStatus.values)}", "status")
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        before = locked.status
        locked.status, locked.status_reason = status, reason.strip()[:300]
        if status == OrderStatus.ON_HOLD:
            locked.credit_hold = True
        elif status in (OrderStatus.VALIDATED, OrderStatus.RELEASED):
            locked.credit_hold = False  # released by finance, or never held
        locked.save(update_fields=["status", "status_reason", "credit_hold", "updated_at"])
        if actor_of(actor).kind in ("user", "support"):  # a workflow's changes are in its run's timeline
            audit_record(
                actor=actor, action="order.status_set", target=locked, data={"from": before, "to": status, "reason": locked.status_reason}
            )
    return locked


def _carrier(scac: str) -> Party | None:
    return Party.objects.filter(kind=PartyKind.CARRIER, scac=scac).first() if scac else None


def shipment_tender_record(
    *, shipment: Shipment, status: str, carrier_scac: str = "", load_number: str = "", note: str = "", key: str, actor: Any
) -> Shipment:
    """Record where a shipment's tender stands: tendered to a carrier, accepted (the shipment's
    status becomes tender accepted) or declined. A tendered or accepted tender is also a tracking
    event of the workflow, keyed by `key` so a repeated call records it once. Changing the carrier
    (the next one of the routing guide) links its party when the tenant has one with that SCAC."""
    if status not in TenderStatus.values:
        raise OrderRefused(f"{status!r} is not a tender status", "status")
    with transaction.atomic():
        locked = Shipment.objects.select_for_update().get(pk=shipment.pk)
        before = {"tender_status": locked.tender_status, "carrier_scac": locked.carrier_scac}
        changed = ["tender_status", "updated_at"]
        locked.tender_status = status
        if carrier_scac and carrier_scac != locked.carrier_scac:
            locked.carrier_scac, locked.carrier = carrier_scac, _carrier(carrier_scac)
            changed += ["carrier_scac", "carrier"]
        if load_number and load_number != locked.load_number:
            locked.load_number = load_number.strip().upper()[:60]
            changed.append("load_number")
        locked.save(update_fields=changed)
        audit_record(
            actor=actor,
            action="shipment.tender_recorded",
            target=locked,
            data={"from": before, "to": {"tender_status": status, "carrier_scac": locked.carrier_scac}, "note": note[:300]},
        )
        event_status = {TenderStatus.TENDERED: TrackingStatus.TENDERED, TenderStatus.ACCEPTED: TrackingStatus.TENDER_ACCEPTED}.get(
            TenderStatus(status)
        )
        if event_status is not None:
            tracking_event_record(
                shipment=locked,
                occurred_at=timezone.now(),
                source=EventSource.WORKFLOW,
                status=event_status,
                dedupe_key=f"tender:{key}",
                message=note or f"{TenderStatus(status).label} ({locked.carrier_scac or 'no carrier'})",
                actor=actor,
            )
    return locked


# --- reads ---------------------------------------------------------------------------------------


def order_find(*, customer: str, number: str) -> Order | None:
    return Order.objects.select_related("customer_account").filter(customer_account__code=customer, number=number.strip()).first()


def order_shipment(order: Order) -> Shipment | None:
    """The shipment planned for the order (the first, should a person have split it)."""
    return order.shipments.order_by("pk").first()


def shipment_by_reference(reference: str) -> Shipment:
    shipment = Shipment.objects.select_related("customer_account").filter(reference=reference).first()
    if shipment is None:
        raise OrderRefused(f"there is no shipment {reference!r}", "shipment")
    return shipment
