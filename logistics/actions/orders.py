"""The order release's actions (template `order-to-shipment-release` 2.0.0): check an order,
route what fails to the exception queue, plan the shipment, follow its tender through the
routing guide and record the release. Each answers what the next step needs – the TMS tender,
the WMS release, the ERP confirmation – so the outside calls stay connector steps of their own.

Outcomes a template branches on are words in `outcome`, never exceptions: an invalid order is
an answer (`invalid`, with every problem), not a failed step. `ActionRefused` is kept for input
the template itself got wrong (no routing guide, a shipment that does not exist)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from governance.services import Actor
from logistics.models import ExceptionType, OrderStatus, Severity, Shipment, StopKind, TenderStatus, TransportMode
from logistics.orders import (
    ORDER_DONE,
    order_check,
    order_find,
    order_shipment,
    order_status_set,
    order_weight_lb,
    shipment_by_reference,
    shipment_tender_record,
)
from logistics.services import LogisticsRefused, OrderLineInput, StopInput, exception_open, order_create, shipment_create
from logistics.vocabulary import TrackingStatus
from workflows.actions import ActionRefused

ACTOR = Actor.system("order-release")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _refused(error: LogisticsRefused) -> ActionRefused:
    return ActionRefused(f"{error.field}: {error.message}" if error.field else error.message)


def _guide(payload: dict[str, Any]) -> list[str]:
    guide = payload.get("routing_guide")
    scacs = [str(scac).strip().upper() for scac in guide if str(scac).strip()] if isinstance(guide, list) else []
    if not scacs:
        raise ActionRefused("the routing guide lists no carrier: give the template's routing_guide parameter the carriers' SCACs in order")
    return scacs


def _shipment(payload: dict[str, Any]) -> Shipment:
    try:
        return shipment_by_reference(str(payload.get("shipment") or ""))
    except LogisticsRefused as error:
        raise _refused(error) from error


def _lines(order: dict[str, Any]) -> list[OrderLineInput]:
    """The lines good enough to keep on the order (the checks report the others)."""
    kept = []
    for line in order.get("lines") or []:
        if not isinstance(line, dict) or not str(line.get("sku") or "").strip():
            continue
        try:
            if Decimal(str(line.get("qty"))) <= 0:
                continue
        except ArithmeticError:
            continue
        weight = line.get("weight")
        kept.append(
            OrderLineInput(
                sku=str(line["sku"]),
                quantity=line["qty"],
                unit=str(line.get("unit") or "each"),
                description=str(line.get("description") or ""),
                weight=weight if isinstance(weight, int | float | str) and not isinstance(weight, bool) else None,
                weight_unit=str(line.get("weight_unit")) if line.get("weight_unit") in ("lb", "kg") else "lb",
            )
        )
    return kept


def order_validate(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Check the order (`logistics.orders.order_check`) and keep it – with its status and the
    reason – when its customer is known. `outcome`: valid, invalid, credit_hold, or duplicate
    (this order was released already)."""
    order = _object(payload.get("order"))
    holds = _list(payload.get("credit_hold_accounts"))
    check = order_check(order=order, credit_hold_accounts=[str(code) for code in holds])
    number = str(order.get("order_id") or "").strip()
    answer: dict[str, Any] = {
        "order_id": number,
        "customer": str(order.get("customer") or "").strip(),
        "problems": [problem.as_data() for problem in check.problems],
        "reason": check.reason,
        "credit_hold": check.credit_hold,
        "recorded": False,
    }
    if check.customer is None or not number:
        return {**answer, "outcome": "invalid"}
    try:
        recorded = order_create(
            customer_account=check.customer,
            number=number,
            lines=_lines(order),
            po_number=str(order.get("po_number") or ""),
            source=str(order.get("source") or "workflow"),
            ship_from=check.ship_from,
            ship_to=check.ship_to,
            actor=ACTOR,
        )
    except LogisticsRefused as error:
        raise _refused(error) from error
    answer["recorded"] = True
    if not recorded.created and recorded.order.status in ORDER_DONE:
        shipment = order_shipment(recorded.order)
        return {**answer, "outcome": "duplicate", "shipment": shipment.reference if shipment else "", "status": recorded.order.status}
    if check.problems:
        order_status_set(order=recorded.order, status=OrderStatus.REJECTED, reason=check.reason, actor=ACTOR)
        return {**answer, "outcome": "invalid"}
    if check.credit_hold:
        order_status_set(order=recorded.order, status=OrderStatus.ON_HOLD, reason=check.credit_hold, actor=ACTOR)
        return {**answer, "outcome": "credit_hold", "reason": check.credit_hold}
    order_status_set(order=recorded.order, status=OrderStatus.VALIDATED, reason="", actor=ACTOR)
    return {**answer, "outcome": "valid"}


def order_exception_open(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Put what went wrong in the exception queue: `type` order_invalid (the checks, or finance
    keeping the credit hold) or tender_declined (the routing guide ran out), with the reason
    (`reason`, or the non-empty `reason_parts` joined). The order, when there is one, is rejected
    with the same reason."""
    kind = str(payload.get("type") or "")
    if kind not in (ExceptionType.ORDER_INVALID, ExceptionType.TENDER_DECLINED):
        raise ActionRefused(f"type must be order_invalid or tender_declined, not {kind!r}")
    parts = _list(payload.get("reason_parts")) or [payload.get("reason")]
    reason = "; ".join(str(part).strip() for part in parts if part and str(part).strip())
    order = order_find(customer=str(payload.get("customer") or ""), number=str(payload.get("order_id") or ""))
    shipment = _shipment(payload) if payload.get("shipment") else None
    details = _object(payload.get("details"))
    details = {**details, "order_id": payload.get("order_id") or "", "customer": payload.get("customer") or ""}
    try:
        if order is not None and order.status not in ORDER_DONE:
            order_status_set(order=order, status=OrderStatus.REJECTED, reason=reason, actor=ACTOR)
        opened = exception_open(
            type=kind,
            reason=reason,
            severity=Severity.HIGH if kind == ExceptionType.TENDER_DECLINED else Severity.MEDIUM,
            shipment=shipment,
            order=order,
            details=details,
            actor=ACTOR,
        )
    except LogisticsRefused as error:
        raise _refused(error) from error
    case = opened.exception
    return {
        "exception": case.pk,
        "created": opened.created,
        "type": case.type,
        "reason": case.reason,
        "sla_due_at": case.sla_due_at.isoformat() if case.sla_due_at else None,
    }


def _shipment_reference(number: str, order_pk: int) -> str:
    reference = f"SHP-{number}"[:60]
    return reference if not Shipment.objects.filter(reference=reference).exists() else f"SHP-{number}-{order_pk}"[:60]


def order_shipment_plan(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """The order's shipment – planned now, or the one planned before (a restarted run) – from
    the order's locations and weight, with the routing guide's first carrier."""
    guide = _guide(payload)
    order = order_find(customer=str(payload.get("customer") or ""), number=str(payload.get("order_id") or ""))
    if order is None:
        raise ActionRefused(f"there is no order {payload.get('order_id')!r} of customer {payload.get('customer')!r} to plan")
    mode = str(payload.get("mode") or TransportMode.FTL)
    shipment = order_shipment(order)
    try:
        if shipment is None:
            shipment = shipment_create(
                customer_account=order.customer_account,
                reference=_shipment_reference(order.number, order.pk),
                mode=mode,
                carrier_scac=guide[0],
                po_number=order.po_number,
                stops=[
                    StopInput(1, StopKind.PICKUP, order.ship_from, order.requested_pickup_at),
                    StopInput(2, StopKind.DELIVERY, order.ship_to, order.requested_delivery_at),
                ],
                planned_weight=order_weight_lb(order),
                orders=[order],
                actor=ACTOR,
            )
        if order.status != OrderStatus.VALIDATED:
            order_status_set(order=order, status=OrderStatus.VALIDATED, reason=f"planned as shipment {shipment.reference}", actor=ACTOR)
    except LogisticsRefused as error:
        raise _refused(error) from error
    return {"shipment": shipment.reference, "carrier": shipment.carrier_scac, "weight_lb": str(shipment.planned_weight or 0)}


def order_tender_prepare(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Mark the shipment tendered to its current carrier and answer the tender for the carrier
    connection (the TMS's order tender: `order_id` and whole-unit `lines`)."""
    shipment = _shipment(payload)
    shipment = shipment_tender_record(
        shipment=shipment, status=TenderStatus.TENDERED, note=f"tendered to {shipment.carrier_scac}", key=idempotency_key, actor=ACTOR
    )
    order = shipment.orders.order_by("pk").first()
    lines = [{"sku": line.sku, "qty": math.ceil(line.quantity)} for line in order.lines.all()] if order else []
    return {
        "carrier": shipment.carrier_scac,
        "order": {
            "order_id": shipment.reference,
            "customer": shipment.customer_account.code,
            "po_number": shipment.po_number,
            "carrier": shipment.carrier_scac,
            "mode": shipment.mode,
            "weight_lb": str(shipment.planned_weight or 0),
            "lines": lines,
        },
    }


def _release(shipment: Shipment) -> dict[str, Any]:
    """The WMS's shipping order (a 940 as JSON) for the shipment's order."""
    order = shipment.orders.select_related("ship_to").order_by("pk").first()
    ship_to = order.ship_to if order else None
    return {
        "order_number": order.number if order else shipment.reference,
        "shipment": shipment.reference,
        "carrier": shipment.carrier_scac,
        "ship_to": {"name": ship_to.name, "city": ship_to.city, "country": ship_to.country} if ship_to else {},
        "lines": [{"sku": line.sku, "quantity": math.ceil(line.quantity)} for line in order.lines.all()] if order else [],
    }


def _declined_reason(scac: str, answer: dict[str, Any]) -> str:
    if answer.get("timed_out"):
        return f"{scac} did not answer the tender in time"
    event = _object(answer.get("event"))
    said = [str(event.get("reason_code") or ""), *[str(remark) for remark in event.get("remarks") or []]]
    said = [part for part in said if part]
    return f"{scac} declined the tender" + (f" ({': '.join(said)})" if said else "")


def order_tender_answer(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Take the carrier's answer (the `wait_event` step's output: its 990, or a timeout). `outcome`:
    accepted (with the WMS release), next_carrier (declined; the shipment moved to the next SCAC of
    the routing guide), exhausted (the last carrier declined), or stale (an answer from a carrier
    tendered earlier: wait again)."""
    guide = _guide(payload)
    shipment = _shipment(payload)
    answer = _object(payload.get("answer"))
    event = _object(answer.get("event"))
    current = shipment.carrier_scac
    said_by = str(event.get("scac") or "").strip().upper()
    if said_by and said_by != current and said_by in guide:
        return {"outcome": "stale", "carrier": current, "answered_by": said_by}
    tender = _object(payload.get("tender"))
    if not answer.get("timed_out") and event.get("accepted") is True:
        shipment = shipment_tender_record(
            shipment=shipment,
            status=TenderStatus.ACCEPTED,
            load_number=str(tender.get("tender_id") or ""),
            note=f"accepted by {current}",
            key=idempotency_key,
            actor=ACTOR,
        )
        return {"outcome": "accepted", "carrier": current, "status": TrackingStatus.TENDER_ACCEPTED.value, "release": _release(shipment)}
    reason = _declined_reason(current, answer)
    shipment_tender_record(shipment=shipment, status=TenderStatus.DECLINED, note=reason, key=idempotency_key, actor=ACTOR)
    tried = guide[: guide.index(current) + 1] if current in guide else guide
    if len(tried) < len(guide):
        following = guide[len(tried)]
        shipment_tender_record(
            shipment=shipment,
            status=TenderStatus.NOT_TENDERED,
            carrier_scac=following,
            note=f"{reason}; next in the routing guide: {following}",
            key=f"{idempotency_key}:next",
            actor=ACTOR,
        )
        return {"outcome": "next_carrier", "carrier": following, "declined_by": current, "reason": reason}
    return {
        "outcome": "exhausted",
        "carrier": current,
        "declined_by": current,
        "reason": f"every carrier of the routing guide declined the tender ({', '.join(tried)}); last: {reason}",
        "tried": tried,
    }


def order_release_record(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """The warehouse took the release: the shipment's orders are released; answers the ERP's
    confirmation."""
    shipment = _shipment(payload)
    release = _object(payload.get("release"))
    release_id = str(release.get("release_id") or "")
    reason = f"released to the warehouse{f' as {release_id}' if release_id else ''}; carrier {shipment.carrier_scac}"
    numbers = []
    for order in shipment.orders.order_by("pk"):
        order_status_set(order=order, status=OrderStatus.RELEASED, reason=reason, actor=ACTOR)
        numbers.append(order.number)
    number = numbers[0] if numbers else shipment.reference
    return {
        "order_id": number,
        "status": OrderStatus.RELEASED.value,
        "release_id": release_id,
        "confirmation": {
            "order_number": number,
            "decision": "accepted",
            "reference": shipment.reference,
            "note": reason,
        },
    }


ACTIONS = [
    ("order.validate", order_validate, "Check an order (master data, addresses, weights, required fields, credit hold) and keep it."),
    ("order.exception_open", order_exception_open, "Put an order that cannot go on in the exception queue, with the reason."),
    ("order.shipment_plan", order_shipment_plan, "Plan the order's shipment with the routing guide's first carrier."),
    ("order.tender_prepare", order_tender_prepare, "Mark the shipment tendered to its carrier and answer the tender to send."),
    ("order.tender_answer", order_tender_answer, "Take the carrier's 990: accepted, or the next carrier of the routing guide."),
    ("order.release_record", order_release_record, "Record the warehouse release and answer the ERP's confirmation."),
]
