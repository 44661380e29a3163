"""Every change to the logistics domain.

Who is audited: every change a person makes, and every change to money, exceptions, claims,
master data and mapping tables whoever makes it. Machine feeds that arrive by the thousand
(tracking events, orders) are their own trail – each row keeps its source and raw content – and
are audited only when a person enters them. Audit rows are written in the change's transaction.

Tracking events follow `logistics.vocabulary`: raw codes are mapped through the active mapping
version of their kind, a repeated dedupe key changes nothing, and a shipment never moves
backwards whatever order its events arrive in.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import TENANT_STAFF_ROLES, Role
from governance.services import Actor, actor_of, audit_record
from logistics import mapping_defaults
from logistics.models import (
    CARMACK_ACKNOWLEDGE_WITHIN,
    CARMACK_DECIDE_WITHIN,
    OPEN_EXCEPTION,
    ChargeCode,
    ChargeLine,
    Claim,
    ClaimKind,
    ClaimStatus,
    CustomerAccount,
    Document,
    DocumentKind,
    EventSource,
    ExceptionCase,
    ExceptionStatus,
    ExceptionType,
    FreightInvoice,
    InventoryPosition,
    InventorySnapshot,
    InventoryVariance,
    Location,
    MappingKind,
    MappingVersionStatus,
    Order,
    OrderLine,
    Party,
    PartyKind,
    RootCause,
    Severity,
    Shipment,
    SlaPolicy,
    StatusMappingEntry,
    StatusMappingVersion,
    Stop,
    StopKind,
    TenderStatus,
    TrackingEvent,
    TransportMode,
    VarianceStatus,
    WeightUnit,
)
from logistics.selectors import MappedCode, mapping_changes, mapping_translate, reference_normalized
from logistics.vocabulary import ARRIVALS, DEPARTURES, TrackingStatus, rank
from tenants.db import connection
from workflows.calendars import business_add, calendar_current, calendar_problems

SCAC_PATTERN = re.compile(r"^[A-Z]{2,4}$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
MAPPING_AUTHORS = frozenset({Role.TENANT_ADMIN.value, Role.PLANNER.value, "system"})
MAPPING_PUBLISHERS = frozenset({Role.TENANT_ADMIN.value, "system"})
# Which mapping table translates the raw codes of each source.
SOURCE_MAPPINGS: dict[str, str] = {EventSource.X12_214: MappingKind.X12_214_STATUS, EventSource.CARRIER_API: MappingKind.CARRIER_API_STATUS}


class LogisticsRefused(Exception):
    """A refused change, with the input field it concerns (if any) and a message for people."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


class ShipmentInvalid(LogisticsRefused):
    pass


class TrackingEventInvalid(LogisticsRefused):
    pass


class ExceptionRefused(LogisticsRefused):
    pass


class ClaimRefused(LogisticsRefused):
    pass


class InvoiceInvalid(LogisticsRefused):
    pass


class InventoryInvalid(LogisticsRefused):
    pass


class MappingRefused(LogisticsRefused):
    """The actor may not change this mapping table, or the version is published (immutable)."""


class MasterDataInvalid(LogisticsRefused):
    pass


# --- helpers ---------------------------------------------------------------------------------


def _role(actor: Any) -> str:
    if isinstance(actor, Actor):
        return actor.kind
    if getattr(actor, "support_grant_id", None):
        return Role.TENANT_ADMIN.value  # MSP support sessions act as the tenant's admin
    return str(getattr(actor, "role", "") or "")


def actor_is_person(actor: Any) -> bool:
    return actor_of(actor).kind in ("user", "support")


def moment_checked(moment: datetime | None, field_name: str, error: type[LogisticsRefused]) -> None:
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
        raise error(f"{field_name} must be a date-time with its UTC offset", field_name)


def decimal_checked(value: Any, field_name: str, error: type[LogisticsRefused]) -> Decimal | None:
    """A number from text or a number, None when empty; refused by `error` naming the field."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise error(f"{field_name} must be a number, not {value!r}", field_name) from exc
    if not number.is_finite():
        raise error(f"{field_name} must be a finite number", field_name)
    return number


def _required_decimal(value: Any, field_name: str, error: type[LogisticsRefused]) -> Decimal:
    number = decimal_checked(value, field_name, error)
    if number is None:
        raise error(f"{field_name} is required", field_name)
    return number


def _currency(value: str | None, default: str, error: type[LogisticsRefused]) -> str:
    currency = (value or default).strip().upper()
    if not CURRENCY_PATTERN.match(currency):
        raise error(f"{currency!r} is not a currency: use its ISO 4217 code, such as USD or EUR", "currency")
    return currency


def _scac(value: str | None, error: type[LogisticsRefused]) -> str:
    scac = (value or "").strip().upper()
    if scac and not SCAC_PATTERN.match(scac):
        raise error(f"{scac!r} is not a SCAC: a carrier's code is two to four letters, such as ODFL", "carrier_scac")
    return scac


# --- parties and locations -------------------------------------------------------------------


def party_create(
    *, kind: str, code: str, name: str, scac: str = "", customer_account: CustomerAccount | None = None, actor: Any, **contact: Any
) -> Party:
    if kind not in PartyKind.values:
        raise MasterDataInvalid(f"{kind!r} is not a kind of party: use one of {', '.join(PartyKind.values)}", "kind")
    if not name.strip():
        raise MasterDataInvalid("A party needs a name.", "name")
    allowed = {"email", "phone", "external_ids"}
    if set(contact) - allowed:
        raise MasterDataInvalid(f"{sorted(set(contact) - allowed)[0]} is not a party field")
    with transaction.atomic():
        party = Party.objects.create(
            kind=kind, code=code, name=name.strip(), scac=_scac(scac, MasterDataInvalid), customer_account=customer_account, **contact
        )
        audit_record(actor=actor, action="party.created", target=party, data={"kind": kind, "code": code, "scac": party.scac})
    return party


def location_create(
    *,
    code: str,
    name: str,
    time_zone: str = "",
    weekly_hours: dict[str, Any] | None = None,
    holidays: list[dict[str, str]] | None = None,
    latitude: Any = None,
    longitude: Any = None,
    geofence_radius_m: int = 500,
    party: Party | None = None,
    actor: Any,
    **address: str,
) -> Location:
    """A location whose hours, holidays and zone pass the business calendar's own checks."""
    fields: dict[str, Any] = {}
    if weekly_hours is not None:
        fields["weekly_hours"] = weekly_hours
    problems = calendar_problems(weekly_hours if weekly_hours is not None else Location().weekly_hours, holidays or [], time_zone)
    if problems:
        pointer, reason = problems[0]
        raise MasterDataInvalid(f"{pointer}: {reason}", pointer.strip("/").split("/")[0])
    lat = decimal_checked(latitude, "latitude", MasterDataInvalid)
    lon = decimal_checked(longitude, "longitude", MasterDataInvalid)
    if (lat is None) != (lon is None):
        raise MasterDataInvalid("A position needs both latitude and longitude.", "latitude")
    if lat is not None and not (-90 <= lat <= 90):
        raise MasterDataInvalid("latitude must be between -90 and 90", "latitude")
    if lon is not None and not (-180 <= lon <= 180):
        raise MasterDataInvalid("longitude must be between -180 and 180", "longitude")
    allowed = {"address_line1", "address_line2", "city", "region", "postal_code", "country"}
    if set(address) - allowed:
        raise MasterDataInvalid(f"{sorted(set(address) - allowed)[0]} is not an address field")
    with transaction.atomic():
        location = Location.objects.create(
            code=code,
            name=name.strip(),
            time_zone=time_zone.strip(),
            holidays=holidays or [],
            latitude=lat,
            longitude=lon,
            geofence_radius_m=geofence_radius_m,
            party=party,
            **fields,
            **address,
        )
        audit_record(actor=actor, action="location.created", target=location, data={"code": code, "time_zone": location.time_zone})
    return location


# --- orders ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLineInput:
    sku: str
    quantity: Any
    unit: str = "each"
    description: str = ""
    weight: Any = None
    weight_unit: str = WeightUnit.LB


@dataclass(frozen=True)
class OrderRecorded:
    order: Order
    created: bool


def order_create(
    *,
    customer_account: CustomerAccount,
    number: str,
    lines: Sequence[OrderLineInput],
    po_number: str = "",
    source: str = "",
    ship_from: Location | None = None,
    ship_to: Location | None = None,
    requested_pickup_at: datetime | None = None,
    requested_delivery_at: datetime | None = None,
    actor: Any,
) -> OrderRecorded:
    """An order with its lines; the same number for the same customer is the order already
    received (an ERP that sends twice), returned unchanged."""
    number = number.strip()
    if not number:
        raise ShipmentInvalid("An order needs its number.", "number")
    for moment, name in ((requested_pickup_at, "requested_pickup_at"), (requested_delivery_at, "requested_delivery_at")):
        moment_checked(moment, name, ShipmentInvalid)
    existing = Order.objects.filter(customer_account=customer_account, number=number).first()
    if existing is not None:
        return OrderRecorded(existing, False)
    rows = []
    for index, line in enumerate(lines, start=1):
        quantity = _required_decimal(line.quantity, f"lines/{index}/quantity", ShipmentInvalid)
        if not line.sku.strip():
            raise ShipmentInvalid(f"line {index} needs a SKU", f"lines/{index}/sku")
        rows.append((index, line, quantity))
    with transaction.atomic():
        order = Order.objects.create(
            customer_account=customer_account,
            number=number,
            po_number=reference_normalized(po_number),
            source=source,
            ship_from=ship_from,
            ship_to=ship_to,
            requested_pickup_at=requested_pickup_at,
            requested_delivery_at=requested_delivery_at,
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                line_number=index,
                sku=line.sku.strip(),
                description=line.description,
                quantity=quantity,
                unit=line.unit,
                weight=decimal_checked(line.weight, f"lines/{index}/weight", ShipmentInvalid),
                weight_unit=line.weight_unit,
            )
            for index, line, quantity in rows
        )
        if actor_is_person(actor):
            audit_record(actor=actor, action="order.created", target=order, data={"lines": len(rows), "source": source})
    return OrderRecorded(order, True)


# --- shipments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopInput:
    sequence: int
    kind: str
    location: Location | None = None
    appointment_start: datetime | None = None
    appointment_end: datetime | None = None


def _stops_checked(stops: Sequence[StopInput]) -> list[StopInput]:
    seen: set[int] = set()
    for stop in stops:
        at = f"stops/{stop.sequence}"
        if stop.kind not in StopKind.values:
            raise ShipmentInvalid(f"stop {stop.sequence}: {stop.kind!r} is not a stop kind; use pickup or delivery", at)
        if stop.sequence in seen:
            raise ShipmentInvalid(f"stop {stop.sequence} is listed twice: each stop needs its own sequence number", at)
        seen.add(stop.sequence)
        moment_checked(stop.appointment_start, f"{at}/appointment_start", ShipmentInvalid)
        moment_checked(stop.appointment_end, f"{at}/appointment_end", ShipmentInvalid)
        if stop.appointment_start and stop.appointment_end and stop.appointment_end < stop.appointment_start:
            raise ShipmentInvalid(f"stop {stop.sequence}: the appointment window ends before it starts", f"{at}/appointment_end")
    return sorted(stops, key=lambda stop: stop.sequence)


def shipment_create(
    *,
    customer_account: CustomerAccount,
    reference: str,
    mode: str = TransportMode.FTL,
    carrier: Party | None = None,
    carrier_scac: str = "",
    bol_number: str = "",
    pro_number: str = "",
    load_number: str = "",
    po_number: str = "",
    container_number: str = "",
    origin: Location | None = None,
    destination: Location | None = None,
    stops: Sequence[StopInput] = (),
    weight_unit: str = WeightUnit.LB,
    planned_weight: Any = None,
    planned_rate: Any = None,
    currency: str = "",
    eta: datetime | None = None,
    tender_status: str = TenderStatus.NOT_TENDERED,
    orders: Iterable[Order] = (),
    actor: Any,
) -> Shipment:
    """A shipment with its stops. Origin and destination default to the first pickup's and
    the last delivery's location; a planned ETA is also the original ETA."""
    reference = reference.strip()
    if not reference:
        raise ShipmentInvalid("A shipment needs a reference.", "reference")
    if mode not in TransportMode.values:
        raise ShipmentInvalid(f"{mode!r} is not a transport mode: use one of {', '.join(TransportMode.values)}", "mode")
    if weight_unit not in WeightUnit.values:
        raise ShipmentInvalid(f"{weight_unit!r} is not a weight unit: use lb or kg", "weight_unit")
    if tender_status not in TenderStatus.values:
        raise ShipmentInvalid(f"{tender_status!r} is not a tender status", "tender_status")
    moment_checked(eta, "eta", ShipmentInvalid)
    scac = _scac(carrier_scac or (carrier.scac if carrier else ""), ShipmentInvalid)
    checked = _stops_checked(stops)
    pickups = [stop for stop in checked if stop.kind == StopKind.PICKUP and stop.location]
    deliveries = [stop for stop in checked if stop.kind == StopKind.DELIVERY and stop.location]
    weight = decimal_checked(planned_weight, "planned_weight", ShipmentInvalid)
    rate = decimal_checked(planned_rate, "planned_rate", ShipmentInvalid)
    if Shipment.objects.filter(reference=reference).exists():
        raise ShipmentInvalid(f"A shipment {reference} exists already.", "reference")
    with transaction.atomic():
        shipment = Shipment.objects.create(
            reference=reference,
            customer_account=customer_account,
            mode=mode,
            carrier=carrier,
            carrier_scac=scac,
            bol_number=reference_normalized(bol_number),
            pro_number=reference_normalized(pro_number),
            load_number=reference_normalized(load_number),
            po_number=reference_normalized(po_number),
            container_number=reference_normalized(container_number),
            tender_status=tender_status,
            origin=origin or (pickups[0].location if pickups else None),
            destination=destination or (deliveries[-1].location if deliveries else None),
            weight_unit=weight_unit,
            planned_weight=weight,
            planned_rate=rate,
            currency=_currency(currency, customer_account.currency, ShipmentInvalid),
            eta=eta,
            original_eta=eta,
        )
        Stop.objects.bulk_create(
            Stop(
                shipment=shipment,
                sequence=stop.sequence,
                kind=stop.kind,
                location=stop.location,
                appointment_start=stop.appointment_start,
                appointment_end=stop.appointment_end,
            )
            for stop in checked
        )
        order_list = list(orders)
        if order_list:
            shipment.orders.add(*order_list)
        audit_record(
            actor=actor,
            action="shipment.created",
            target=shipment,
            data={"customer_account": customer_account.code, "mode": mode, "carrier_scac": scac, "stops": len(checked)},
        )
    return shipment


# --- tracking events -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackingEventOutcome:
    """What recording an event did: `created` False for a repeat (nothing changed), and
    whether it moved the shipment's status or ETA, with `note` saying why in words."""

    event: TrackingEvent
    created: bool
    status_changed: bool = False
    eta_changed: bool = False
    note: str = ""


def tracking_dedupe_key(source: str, code: str, reason: str, occurred_at: datetime, stop_sequence: int | None, eta: datetime | None) -> str:
    """A key for senders that give none: the same report of the same moment is the same event."""
    material = "|".join(
        [
            source,
            code,
            reason,
            occurred_at.astimezone(UTC).isoformat(),
            str(stop_sequence or ""),
            eta.astimezone(UTC).isoformat() if eta else "",
        ]
    )
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest()


def _beats(new: tuple[str | None, datetime, str], current: tuple[str | None, datetime | None, int | None]) -> bool:
    """Whether an event (status, occurred_at, dedupe key) outranks what set the shipment's current
    value (status, when that event occurred, its id; no event = a planned value any event beats).
    Statuses compare by rank first (None: only time counts, as for ETAs); the stored event's dedupe
    key is read only on an exact tie."""
    status, occurred_at, key = new
    current_status, current_at, current_event_id = current
    if status is not None and current_status is not None and rank(status) != rank(current_status):
        return rank(status) > rank(current_status)
    if current_event_id is None or current_at is None:
        return True
    if occurred_at != current_at:
        return occurred_at > current_at
    current_key = TrackingEvent.objects.filter(pk=current_event_id).values_list("dedupe_key", flat=True).first() or ""
    return key > current_key


def _event_stop(shipment: Shipment, status: str, stop_sequence: int | None) -> Stop | None:
    """The stop an event concerns: the one named by sequence, else for pickup statuses the first
    pickup and for delivery statuses the last delivery."""
    if stop_sequence is not None:
        return Stop.objects.filter(shipment=shipment, sequence=stop_sequence).first()
    kind = ARRIVALS.get(status) or DEPARTURES.get(status)
    if kind is None:
        return None
    stops = Stop.objects.filter(shipment=shipment, kind=kind)
    return (stops.order_by("sequence") if kind == StopKind.PICKUP else stops.order_by("-sequence")).first()


def stop_times_at(stop: Stop, status: str, occurred_at: datetime) -> list[str]:
    """Arrival is the earliest arrival reported, departure the latest departure (so the stop is
    the same whatever order its events come in); dwell once both are known."""
    changed = []
    if status in ARRIVALS and (stop.arrived_at is None or occurred_at < stop.arrived_at):
        stop.arrived_at = occurred_at
        changed.append("arrived_at")
    if status in DEPARTURES and (stop.departed_at is None or occurred_at > stop.departed_at):
        stop.departed_at = occurred_at
        changed.append("departed_at")
    if changed and stop.arrived_at and stop.departed_at:
        stop.dwell = max(stop.departed_at - stop.arrived_at, timedelta(0))
        changed.append("dwell")
    return changed


def tracking_event_record(
    *,
    shipment: Shipment,
    occurred_at: datetime,
    source: str,
    status: str = "",
    raw_code: str = "",
    raw_reason: str = "",
    received_at: datetime | None = None,
    estimate: bool | None = None,
    eta: datetime | None = None,
    dedupe_key: str = "",
    stop_sequence: int | None = None,
    latitude: Any = None,
    longitude: Any = None,
    location_text: str = "",
    message: str = "",
    actor: Any,
) -> TrackingEventOutcome:
    """Store one report about a shipment and let it move the shipment if it is news.

    `status` is Baton's; without it `raw_code` is translated through the active mapping of the
    source (X12 214 or carrier API), and an unmapped code is stored as `unknown`. The estimate
    flag comes from the mapping unless given. A repeated dedupe key (given, or derived from the
    source, code, reason, time, stop and ETA) returns the stored event and changes nothing."""
    if source not in EventSource.values:
        raise TrackingEventInvalid(f"{source!r} is not an event source: use one of {', '.join(EventSource.values)}", "source")
    moment_checked(occurred_at, "occurred_at", TrackingEventInvalid)
    moment_checked(received_at, "received_at", TrackingEventInvalid)
    moment_checked(eta, "eta", TrackingEventInvalid)
    raw_code, raw_reason = raw_code.strip(), raw_reason.strip()
    mapped: MappedCode | None = None
    if status:
        if status not in TrackingStatus.values:
            raise TrackingEventInvalid(f"{status!r} is not a tracking status: use one of {', '.join(TrackingStatus.values)}", "status")
    elif raw_code and source in SOURCE_MAPPINGS:
        mapped = mapping_translate(SOURCE_MAPPINGS[source], raw_code)
        status = mapped.status
    else:
        raise TrackingEventInvalid(
            "An event needs a status, or a raw code from a source with a mapping table (EDI 214 or a carrier API).", "status"
        )
    reason = mapping_translate(MappingKind.X12_214_REASON, raw_reason) if raw_reason and source == EventSource.X12_214 else None
    is_estimate = bool(estimate if estimate is not None else (mapped.estimate if mapped else False))
    lat = decimal_checked(latitude, "latitude", TrackingEventInvalid)
    lon = decimal_checked(longitude, "longitude", TrackingEventInvalid)
    key = dedupe_key.strip()[:200] or tracking_dedupe_key(source, raw_code or status, raw_reason, occurred_at, stop_sequence, eta)
    notes: list[str] = []
    if mapped is not None and not mapped.found:
        where = f"{SOURCE_MAPPINGS[source]} v{mapped.version.number}" if mapped.version else f"any active {SOURCE_MAPPINGS[source]} table"
        notes.append(f"code {raw_code!r} is not in {where}: stored as unknown")

    with transaction.atomic():
        locked = Shipment.objects.select_for_update().get(pk=shipment.pk)
        repeat = TrackingEvent.objects.filter(shipment=locked, dedupe_key=key).first()
        if repeat is not None:
            return TrackingEventOutcome(
                repeat,
                False,
                note=f"already recorded as event {repeat.pk} (received {repeat.received_at:%Y-%m-%d %H:%M:%S}); nothing changed",
            )
        moves_status = not is_estimate and _beats((status, occurred_at, key), (locked.status, locked.status_at, locked.status_event_id))
        moves_eta = eta is not None and _beats((None, occurred_at, key), (None, locked.eta_at, locked.eta_event_id))
        stop = _event_stop(locked, status, stop_sequence)
        event = TrackingEvent.objects.create(
            shipment=locked,
            status=status,
            raw_code=raw_code,
            raw_reason=raw_reason,
            reason_description=reason.description if reason else "",
            signal=(mapped.signal if mapped else "") or (reason.signal if reason else ""),
            source=source,
            mapping_version=mapped.version if mapped else None,
            occurred_at=occurred_at,
            received_at=received_at or timezone.now(),
            estimate=is_estimate,
            eta=eta,
            dedupe_key=key,
            stop=stop,
            latitude=lat,
            longitude=lon,
            location_text=location_text[:200],
            message=message[:500],
            applied=moves_status,
        )
        changed: list[str] = []
        if moves_status:
            locked.status, locked.status_at, locked.status_event = status, occurred_at, event
            changed += ["status", "status_at", "status_event"]
        elif is_estimate:
            notes.append("an estimate: it never changes the status")
        elif status == TrackingStatus.UNKNOWN:
            notes.append("an unknown status never moves the shipment")
        else:
            notes.append(
                f"stored in the timeline; the shipment stays {locked.get_status_display().lower()} (a further or newer event set it)"
            )
        if status == TrackingStatus.DELIVERED and not is_estimate and (locked.delivered_at is None or occurred_at < locked.delivered_at):
            locked.delivered_at = occurred_at
            changed.append("delivered_at")
        if eta is not None:
            if moves_eta:
                locked.eta, locked.eta_at, locked.eta_event = eta, occurred_at, event
                changed += ["eta", "eta_at", "eta_event"]
            else:
                notes.append("its ETA is older than the current one's: ETA unchanged")
            first_promise = locked.original_eta is None
            earlier_promise = locked.original_eta_at is not None and occurred_at < locked.original_eta_at
            if first_promise or earlier_promise:
                locked.original_eta, locked.original_eta_at = eta, occurred_at
                changed += ["original_eta", "original_eta_at"]
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
        if stop is not None and not is_estimate:
            stop_changes = stop_times_at(stop, status, occurred_at)
            if stop_changes:
                stop.save(update_fields=stop_changes)
        if actor_is_person(actor):
            audit_record(
                actor=actor,
                action="tracking_event.recorded",
                target=locked,
                data={"event": event.pk, "status": status, "occurred_at": occurred_at, "applied": moves_status},
            )
    shipment.status, shipment.eta = locked.status, locked.eta
    return TrackingEventOutcome(event, True, status_changed=moves_status, eta_changed=moves_eta, note="; ".join(notes))


# --- exceptions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExceptionOpened:
    exception: ExceptionCase
    created: bool


def sla_due(*, customer_account: CustomerAccount | None, opened_at: datetime) -> datetime:
    """When an exception of this customer must be resolved: its tier's policy (defaults when
    the tenant has none), counted in the business calendar if the policy says so."""
    tier = customer_account.service_tier if customer_account else "standard"
    policy = SlaPolicy.objects.filter(service_tier=tier).first() or SlaPolicy(service_tier=tier)
    if policy.business_time:
        return business_add(opened_at, policy.resolve_within, calendar_current())
    return opened_at + policy.resolve_within


def exception_open(
    *,
    type: str,  # noqa: A002 - the domain's word
    reason: str,
    severity: str = Severity.MEDIUM,
    shipment: Shipment | None = None,
    order: Order | None = None,
    customer_account: CustomerAccount | None = None,
    sla_due_at: datetime | None = None,
    details: dict[str, Any] | None = None,
    actor: Any,
) -> ExceptionOpened:
    """Open an exception; a shipment that already has one of the same type open gets that one
    back (`created` False), so a detector that fires twice opens one case."""
    if type not in ExceptionType.values:
        raise ExceptionRefused(f"{type!r} is not an exception type: use one of {', '.join(ExceptionType.values)}", "type")
    if severity not in Severity.values:
        raise ExceptionRefused(f"{severity!r} is not a severity: use low, medium, high or critical", "severity")
    if not reason.strip():
        raise ExceptionRefused("Say what is wrong: an exception needs its reason.", "reason")
    moment_checked(sla_due_at, "sla_due_at", ExceptionRefused)
    account = customer_account or (shipment.customer_account if shipment else None) or (order.customer_account if order else None)
    if shipment is not None:
        existing = ExceptionCase.objects.filter(OPEN_EXCEPTION, shipment=shipment, type=type).first()
        if existing is not None:
            return ExceptionOpened(existing, False)
    now = timezone.now()
    try:
        with transaction.atomic():
            exception = ExceptionCase.objects.create(
                type=type,
                reason=reason.strip()[:500],
                severity=severity,
                shipment=shipment,
                order=order,
                customer_account=account,
                sla_due_at=sla_due_at or sla_due(customer_account=account, opened_at=now),
                details=details or {},
                opened_by_email=actor_of(actor).email,
                opened_at=now,
            )
            audit_record(
                actor=actor,
                action="exception.opened",
                target=exception,
                data={"type": type, "severity": severity, "shipment": shipment.reference if shipment else "", "reason": exception.reason},
            )
            from logistics.notifications import exception_notifications_collect  # it builds on these services

            exception_notifications_collect(exception)  # customers subscribed to "exception opened"
    except IntegrityError:  # a concurrent detector opened it first
        existing = ExceptionCase.objects.filter(OPEN_EXCEPTION, shipment=shipment, type=type).first()
        if existing is None:
            raise
        return ExceptionOpened(existing, False)
    return ExceptionOpened(exception, True)


def _open_or_refuse(exception: ExceptionCase) -> ExceptionCase:
    locked = ExceptionCase.objects.select_for_update().get(pk=exception.pk)
    if locked.status == ExceptionStatus.CLOSED:
        raise ExceptionRefused(f"Exception {locked.pk} is closed; open a new one if the problem is back.")
    return locked


def _staff_owner(owner: Any) -> Any:
    if owner is None:
        return None
    if owner.role not in TENANT_STAFF_ROLES or not owner.is_active:
        raise ExceptionRefused(f"{owner.email} cannot own exceptions: choose an active member of staff.", "owner")
    return owner


def exception_assign(*, exception: ExceptionCase, owner: Any, actor: Any) -> ExceptionCase:
    owner = _staff_owner(owner)
    with transaction.atomic():
        locked = _open_or_refuse(exception)
        before = locked.owner.email if locked.owner else ""
        locked.owner = owner
        locked.status = ExceptionStatus.IN_PROGRESS if owner else ExceptionStatus.OPEN
        locked.save(update_fields=["owner", "status"])
        audit_record(actor=actor, action="exception.assigned", target=locked, data={"from": before, "to": owner.email if owner else ""})
    return locked


def exception_escalate(*, exception: ExceptionCase, reason: str, actor: Any, owner: Any = None) -> ExceptionCase:
    """One level up (and, when given, to a new owner); the reason is kept in the audit row."""
    if not reason.strip():
        raise ExceptionRefused("Say why it escalates.", "reason")
    owner = _staff_owner(owner)
    with transaction.atomic():
        locked = _open_or_refuse(exception)
        locked.escalation_level += 1
        if owner is not None:
            locked.owner = owner
            locked.status = ExceptionStatus.IN_PROGRESS
        locked.save(update_fields=["escalation_level", "owner", "status"])
        audit_record(
            actor=actor,
            action="exception.escalated",
            target=locked,
            reason=reason.strip(),
            data={"level": locked.escalation_level, "owner": locked.owner.email if locked.owner else ""},
        )
    return locked


def exception_close(*, exception: ExceptionCase, root_cause: str, actor: Any, resolution: str = "") -> ExceptionCase:
    """Close with its root cause, which is what the outcome metrics and carrier reviews count."""
    if root_cause not in RootCause.values:
        choices = ", ".join(RootCause.values)
        raise ExceptionRefused(f"Closing an exception needs its root cause: one of {choices}.", "root_cause")
    with transaction.atomic():
        locked = _open_or_refuse(exception)
        locked.status, locked.root_cause, locked.resolution, locked.closed_at = (
            ExceptionStatus.CLOSED,
            root_cause,
            resolution,
            timezone.now(),
        )
        locked.save(update_fields=["status", "root_cause", "resolution", "closed_at"])
        audit_record(
            actor=actor,
            action="exception.closed",
            target=locked,
            data={"root_cause": root_cause, "open_for_seconds": int((locked.closed_at - locked.opened_at).total_seconds())},
        )
    return locked


# --- documents -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentRecorded:
    document: Document
    created: bool


def document_record(
    *,
    kind: str,
    content: bytes,
    original_name: str,
    shipment: Shipment | None = None,
    content_type: str = "",
    source: str = "",
    signed_by: str = "",
    signed_at: datetime | None = None,
    extracted_fields: dict[str, Any] | None = None,
    actor: Any,
) -> DocumentRecorded:
    """Store a document's file (named by its SHA-256 under the tenant's folder); the same file
    for the same shipment and kind is the document already stored."""
    if kind not in DocumentKind.values:
        raise ShipmentInvalid(f"{kind!r} is not a document kind: use one of {', '.join(DocumentKind.values)}", "kind")
    if not content:
        raise ShipmentInvalid("The document is empty.", "file")
    moment_checked(signed_at, "signed_at", ShipmentInvalid)
    digest = hashlib.sha256(content).hexdigest()
    existing = Document.objects.filter(shipment=shipment, kind=kind, sha256=digest).first()
    if existing is not None:
        return DocumentRecorded(existing, False)
    try:
        with transaction.atomic():
            document = Document(
                kind=kind,
                shipment=shipment,
                original_name=original_name[:200],
                content_type=content_type[:100],
                size=len(content),
                sha256=digest,
                source=source,
                signed_by=signed_by[:120],
                signed_at=signed_at,
                extracted_fields=extracted_fields or {},
                received_at=timezone.now(),
            )
            document.file.save(original_name or "document", ContentFile(content), save=False)
            document.save()
            if actor_is_person(actor):
                audit_record(actor=actor, action="document.recorded", target=document, data={"kind": kind, "sha256": digest})
    except IntegrityError:
        # Stored by someone else at the same moment (a POD announced once starts the claims and
        # the invoicing runs): theirs is the document. The file has the same name and content.
        existing = Document.objects.filter(shipment=shipment, kind=kind, sha256=digest).first()
        if existing is None:
            raise
        return DocumentRecorded(existing, False)
    return DocumentRecorded(document, True)


# --- freight invoices ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargeInput:
    charge_code: str
    amount: Any
    description: str = ""
    quantity: Any = 1
    rate: Any = None
    raw_code: str = ""


@dataclass(frozen=True)
class InvoiceRecorded:
    invoice: FreightInvoice
    created: bool


def invoice_record(
    *,
    carrier_scac: str,
    invoice_number: str,
    charges: Sequence[ChargeInput],
    total_amount: Any = None,
    shipment: Shipment | None = None,
    carrier: Party | None = None,
    invoice_date: date | None = None,
    currency: str = "",
    source: str = "",
    actor: Any,
) -> InvoiceRecorded:
    """A carrier invoice and its charge lines, as the carrier sent it (matching comes later).
    The same carrier and number is the invoice already recorded. A total that disagrees with the
    lines is kept – it is the carrier's claim – and the difference is noted for the match."""
    scac = _scac(carrier_scac or (carrier.scac if carrier else ""), InvoiceInvalid)
    number = invoice_number.strip()
    if not number:
        raise InvoiceInvalid("An invoice needs its number.", "invoice_number")
    if not charges:
        raise InvoiceInvalid("An invoice needs at least one charge line.", "charges")
    lines = []
    for index, charge in enumerate(charges, start=1):
        if charge.charge_code not in ChargeCode.values:
            raise InvoiceInvalid(
                f"line {index}: {charge.charge_code!r} is not a charge code: use one of {', '.join(ChargeCode.values)}",
                f"charges/{index}/charge_code",
            )
        amount = _required_decimal(charge.amount, f"charges/{index}/amount", InvoiceInvalid)
        quantity = _required_decimal(charge.quantity, f"charges/{index}/quantity", InvoiceInvalid)
        rate = decimal_checked(charge.rate, f"charges/{index}/rate", InvoiceInvalid)
        lines.append((index, charge, amount, quantity, rate))
    line_total = sum((amount for _i, _c, amount, _q, _r in lines), Decimal("0"))
    total = decimal_checked(total_amount, "total_amount", InvoiceInvalid)
    total = line_total if total is None else total
    existing = FreightInvoice.objects.filter(carrier_scac=scac, invoice_number=number).first()
    if existing is not None:
        return InvoiceRecorded(existing, False)
    details = {} if total == line_total else {"total_differs_from_lines": {"total": str(total), "lines": str(line_total)}}
    try:
        with transaction.atomic():
            invoice = FreightInvoice.objects.create(
                carrier=carrier,
                carrier_scac=scac,
                invoice_number=number,
                shipment=shipment,
                invoice_date=invoice_date,
                currency=_currency(currency, shipment.currency if shipment else "USD", InvoiceInvalid),
                total_amount=total,
                match_details=details,
                source=source,
                received_at=timezone.now(),
            )
            ChargeLine.objects.bulk_create(
                ChargeLine(
                    invoice=invoice,
                    line_number=index,
                    charge_code=charge.charge_code,
                    raw_code=charge.raw_code[:20],
                    description=charge.description[:200],
                    quantity=quantity,
                    rate=rate,
                    amount=amount,
                )
                for index, charge, amount, quantity, rate in lines
            )
            audit_record(
                actor=actor,
                action="freight_invoice.recorded",
                target=invoice,
                data={
                    "total": str(total),
                    "currency": invoice.currency,
                    "lines": len(lines),
                    "shipment": shipment.reference if shipment else "",
                },
            )
    except IntegrityError:  # the same invoice, recorded concurrently
        existing = FreightInvoice.objects.filter(carrier_scac=scac, invoice_number=number).first()
        if existing is None:
            raise
        return InvoiceRecorded(existing, False)
    return InvoiceRecorded(invoice, True)


# --- claims ----------------------------------------------------------------------------------

CLAIM_DOCUMENTS: dict[str, tuple[str, ...]] = {
    ClaimKind.DAMAGE: ("bol", "pod", "commercial_invoice", "photos", "repair_estimate"),
    ClaimKind.SHORTAGE: ("bol", "pod", "commercial_invoice", "packing_list"),
    ClaimKind.LOSS: ("bol", "commercial_invoice", "proof_of_tender"),
}
CLAIM_DOCUMENTS_OTHER = ("bol", "pod", "commercial_invoice")
CLAIM_DECISIONS: dict[str, set[str]] = {
    ClaimStatus.FILED: {ClaimStatus.ACKNOWLEDGED, ClaimStatus.DECIDED, ClaimStatus.PAID, ClaimStatus.DENIED},
    ClaimStatus.ACKNOWLEDGED: {ClaimStatus.DECIDED, ClaimStatus.PAID, ClaimStatus.DENIED},
    ClaimStatus.DECIDED: {ClaimStatus.PAID},
}


def carmack_due(filed_at: datetime) -> tuple[datetime, datetime]:
    """(acknowledge by, decide by): 30 and 120 days after the carrier received the claim."""
    return filed_at + CARMACK_ACKNOWLEDGE_WITHIN, filed_at + CARMACK_DECIDE_WITHIN


def claim_file(
    *,
    shipment: Shipment,
    kind: str,
    amount_claimed: Any,
    actor: Any,
    currency: str = "",
    description: str = "",
    number: str = "",
    filed_at: datetime | None = None,
) -> Claim:
    """File a claim with the shipment's carrier; its Carmack clock starts at `filed_at` (now by
    default: the day the carrier receives it). The checklist marks the documents on file."""
    if kind not in ClaimKind.values:
        raise ClaimRefused(f"{kind!r} is not a kind of claim: use one of {', '.join(ClaimKind.values)}", "kind")
    amount = _required_decimal(amount_claimed, "amount_claimed", ClaimRefused)
    if amount is None or amount <= 0:
        raise ClaimRefused("A claim is for an amount above zero.", "amount_claimed")
    moment_checked(filed_at, "filed_at", ClaimRefused)
    filed = filed_at or timezone.now()
    acknowledge_by, decide_by = carmack_due(filed)
    on_file = set(Document.objects.filter(shipment=shipment).values_list("kind", flat=True))
    checklist = {name: name in on_file for name in CLAIM_DOCUMENTS.get(kind, CLAIM_DOCUMENTS_OTHER)}
    with transaction.atomic():
        locked = Shipment.objects.select_for_update().get(pk=shipment.pk)
        claim = Claim.objects.create(
            number=number.strip() or f"{locked.reference}-C{locked.claims.count() + 1}",
            kind=kind,
            shipment=locked,
            customer_account=locked.customer_account,
            carrier_scac=locked.carrier_scac,
            description=description,
            currency=_currency(currency, locked.currency, ClaimRefused),
            amount_claimed=amount,
            checklist=checklist,
            filed_at=filed,
            acknowledge_due_at=acknowledge_by,
            decide_due_at=decide_by,
            filed_by_email=actor_of(actor).email,
        )
        audit_record(
            actor=actor,
            action="claim.filed",
            target=claim,
            data={"shipment": locked.reference, "amount": str(amount), "acknowledge_due_at": acknowledge_by, "decide_due_at": decide_by},
        )
    return claim


def claim_status_set(
    *, claim: Claim, status: str, actor: Any, at: datetime | None = None, amount_settled: Any = None, note: str = ""
) -> Claim:
    """Move a claim along filed → acknowledged → decided (an offer) / paid / denied. A decision
    made before any acknowledgement acknowledges the claim at the same moment."""
    moment_checked(at, "at", ClaimRefused)
    moment = at or timezone.now()
    settled = decimal_checked(amount_settled, "amount_settled", ClaimRefused)
    if status in (ClaimStatus.DECIDED, ClaimStatus.PAID) and settled is None and claim.amount_settled is None:
        raise ClaimRefused("Say the amount the carrier offers or pays.", "amount_settled")
    if status == ClaimStatus.DENIED and not note.strip():
        raise ClaimRefused("Say why the carrier denied it (its words).", "note")
    with transaction.atomic():
        locked = Claim.objects.select_for_update().get(pk=claim.pk)
        if status not in CLAIM_DECISIONS.get(locked.status, set()):
            raise ClaimRefused(f"A claim that is {locked.get_status_display().lower()} cannot become {status}.", "status")
        before = locked.status
        locked.status = status
        if locked.acknowledged_at is None:
            locked.acknowledged_at = moment
        if status in (ClaimStatus.DECIDED, ClaimStatus.DENIED) or (status == ClaimStatus.PAID and locked.decided_at is None):
            locked.decided_at = moment
        if status == ClaimStatus.PAID:
            locked.paid_at = moment
        if settled is not None:
            locked.amount_settled = settled
        if note.strip():
            locked.decision_note = note.strip()
        locked.save()
        audit_record(
            actor=actor,
            action=f"claim.{status}",
            target=locked,
            data={"from": before, "to": status, "at": moment, "amount_settled": str(locked.amount_settled or "")},
        )
    return locked


def claim_acknowledge(*, claim: Claim, actor: Any, at: datetime | None = None) -> Claim:
    return claim_status_set(claim=claim, status=ClaimStatus.ACKNOWLEDGED, actor=actor, at=at)


# --- inventory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionInput:
    sku: str
    location: Location | str  # a Location or its code
    quantity: Any
    unit: str = "each"


@dataclass(frozen=True)
class SnapshotRecorded:
    snapshot: InventorySnapshot
    created: bool


def inventory_snapshot_record(
    *,
    source_system: str,
    as_of: datetime,
    positions: Iterable[PositionInput],
    actor: Any,
    customer_account: CustomerAccount | None = None,
    dedupe_key: str = "",
) -> SnapshotRecorded:
    """What one system holds per SKU and location. Several lines for the same SKU and location
    (bins of one warehouse) add up; a location code Baton does not know is refused by name. A
    location counts as covered when it has at least one line (send zero to say "none here")."""
    source = source_system.strip()
    if not source:
        raise InventoryInvalid("Name the system the snapshot comes from (erp, wms…).", "source_system")
    moment_checked(as_of, "as_of", InventoryInvalid)
    if dedupe_key:
        existing = InventorySnapshot.objects.filter(source_system=source, dedupe_key=dedupe_key).first()
        if existing is not None:
            return SnapshotRecorded(existing, False)
    rows = list(positions)
    codes = {row.location for row in rows if isinstance(row.location, str)}
    known = {location.code: location for location in Location.objects.filter(code__in=codes)}
    unknown = sorted(codes - set(known))
    if unknown:
        raise InventoryInvalid(f"Unknown location {unknown[0]!r}: add it to the locations first.", "positions")
    totals: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    units: dict[tuple[str, int], str] = {}
    for index, row in enumerate(rows):
        location = known[row.location] if isinstance(row.location, str) else row.location
        quantity = _required_decimal(row.quantity, f"positions/{index}/quantity", InventoryInvalid)
        if not row.sku.strip():
            raise InventoryInvalid(f"position {index} needs a SKU", f"positions/{index}/sku")
        cell = (row.sku.strip(), location.pk)
        totals[cell] += quantity or Decimal("0")
        units[cell] = row.unit
    with transaction.atomic():
        snapshot = InventorySnapshot.objects.create(
            source_system=source, as_of=as_of, received_at=timezone.now(), customer_account=customer_account, dedupe_key=dedupe_key
        )
        InventoryPosition.objects.bulk_create(
            InventoryPosition(snapshot=snapshot, sku=sku, location_id=location_id, quantity=quantity, unit=units[(sku, location_id)])
            for (sku, location_id), quantity in totals.items()
        )
        audit_record(actor=actor, action="inventory_snapshot.recorded", target=snapshot, data={"source": source, "positions": len(totals)})
    return SnapshotRecorded(snapshot, True)


@dataclass(frozen=True)
class VarianceReport:
    variances: list[InventoryVariance]
    locations_compared: list[int]
    locations_skipped: list[int] = field(default_factory=list)  # covered by one snapshot only


def _within(reference: Decimal, difference: Decimal, quantity_tolerance: Decimal, percent_tolerance: Decimal) -> bool:
    if abs(difference) <= quantity_tolerance:
        return True
    return reference != 0 and abs(difference) * 100 / abs(reference) <= percent_tolerance


def inventory_variances_compute(
    *,
    reference: InventorySnapshot,
    compared: InventorySnapshot,
    actor: Any,
    quantity_tolerance: Any = 0,
    percent_tolerance: Any = 0,
) -> VarianceReport:
    """The differences per SKU and location between two systems' snapshots (compared −
    reference), over the locations both cover; a SKU missing on one side counts as zero there.
    A difference within either tolerance (absolute quantity, or percent of the reference) is
    marked so; the others stay open for the inventory workflow. Computing the same pair again
    replaces its rows."""
    if reference.pk == compared.pk:
        raise InventoryInvalid("Compare two different snapshots.", "compared")
    quantity_limit = decimal_checked(quantity_tolerance, "quantity_tolerance", InventoryInvalid) or Decimal("0")
    percent_limit = decimal_checked(percent_tolerance, "percent_tolerance", InventoryInvalid) or Decimal("0")
    sides: list[dict[tuple[str, int], Decimal]] = []
    for snapshot in (reference, compared):
        sides.append(
            {(sku, location): quantity for sku, location, quantity in snapshot.positions.values_list("sku", "location_id", "quantity")}
        )
    covered = [{location for _sku, location in side} for side in sides]
    both = covered[0] & covered[1]
    now = timezone.now()
    rows = []
    for cell in sorted(set(sides[0]) | set(sides[1])):
        sku, location_id = cell
        if location_id not in both:
            continue
        before, after = sides[0].get(cell, Decimal("0")), sides[1].get(cell, Decimal("0"))
        difference = after - before
        if difference == 0:
            continue
        within = _within(before, difference, quantity_limit, percent_limit)
        rows.append(
            InventoryVariance(
                sku=sku,
                location_id=location_id,
                reference=reference,
                compared=compared,
                reference_quantity=before,
                compared_quantity=after,
                difference=difference,
                within_tolerance=within,
                status=VarianceStatus.WITHIN_TOLERANCE if within else VarianceStatus.OPEN,
                computed_at=now,
            )
        )
    with transaction.atomic():
        InventoryVariance.objects.filter(reference=reference, compared=compared).delete()
        variances = InventoryVariance.objects.bulk_create(rows)
        audit_record(
            actor=actor,
            action="inventory_variances.computed",
            target=compared,
            data={
                "reference": reference.pk,
                "compared": compared.pk,
                "variances": len(rows),
                "outside_tolerance": sum(1 for row in rows if not row.within_tolerance),
            },
        )
    return VarianceReport(variances, sorted(both), sorted((covered[0] | covered[1]) - both))


# --- status mapping tables -------------------------------------------------------------------


def _mapping_author(actor: Any, allowed: frozenset[str], what: str) -> None:
    if connection.schema_name == "public":
        raise MappingRefused("Status mappings belong to a tenant's workspace; this ran on the public schema.")
    if _role(actor) not in allowed:
        raise MappingRefused(what)


def _draft(version: StatusMappingVersion) -> StatusMappingVersion:
    locked = StatusMappingVersion.objects.select_for_update().get(pk=version.pk)
    if locked.status != MappingVersionStatus.DRAFT:
        raise MappingRefused(
            f"v{locked.number} is {locked.get_status_display().lower()}: published versions never change. Draft a new version."
        )
    return locked


def mapping_version_draft_create(
    *, kind: str, actor: Any, based_on: StatusMappingVersion | None = None, notes: str = ""
) -> StatusMappingVersion:
    """A new draft of a table, starting from `based_on` (the active version by default)."""
    _mapping_author(actor, MAPPING_AUTHORS, "Only tenant admins and planners draft status mappings.")
    if kind not in MappingKind.values:
        raise MappingRefused(f"{kind!r} is not a mapping table", "kind")
    with transaction.atomic():
        # The per-kind advisory lock makes two simultaneous drafts a clear refusal, not a 500.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':mapping:' || %s))", [kind])
        draft = StatusMappingVersion.objects.filter(kind=kind, status=MappingVersionStatus.DRAFT).first()
        if draft is not None:
            raise MappingRefused(f"v{draft.number} of this table is already a draft: change it, publish it or discard it first.")
        source = based_on or StatusMappingVersion.objects.filter(kind=kind, status=MappingVersionStatus.ACTIVE).first()
        if source is not None and source.kind != kind:
            raise MappingRefused("A draft starts from a version of the same table.", "based_on")
        latest = StatusMappingVersion.objects.filter(kind=kind).aggregate(number=Max("number"))["number"] or 0
        version = StatusMappingVersion.objects.create(
            kind=kind, number=latest + 1, based_on=source, notes=notes.strip(), created_by_email=actor_of(actor).email
        )
        if source is not None:
            StatusMappingEntry.objects.bulk_create(
                StatusMappingEntry(
                    version=version,
                    code=entry.code,
                    description=entry.description,
                    status=entry.status,
                    estimate=entry.estimate,
                    responsible=entry.responsible,
                    signal=entry.signal,
                )
                for entry in source.entries.all()
            )
        audit_record(
            actor=actor,
            action="status_mapping.drafted",
            target=version,
            data={"kind": kind, "number": version.number, "based_on": source.number if source else None},
        )
    return version


def mapping_entry_set(
    *,
    version: StatusMappingVersion,
    code: str,
    description: str,
    actor: Any,
    status: str = "",
    estimate: bool = False,
    responsible: str = "",
    signal: str = "",
) -> StatusMappingEntry:
    """Add or change one code of a draft; raises LogisticsRefused naming the field at fault."""
    _mapping_author(actor, MAPPING_AUTHORS, "Only tenant admins and planners change status mappings.")
    entry_data = {
        "code": code,
        "description": description,
        "status": status,
        "estimate": estimate,
        "responsible": responsible,
        "signal": signal,
    }
    problems = mapping_defaults.entry_problems(version.kind, entry_data)
    if problems:
        field_name, reason = problems[0]
        raise MappingRefused(f"{field_name.capitalize()} {reason}", field_name)
    code = mapping_defaults.code_normalized(version.kind, code)
    with transaction.atomic():
        locked = _draft(version)
        before = (
            StatusMappingEntry.objects.filter(version=locked, code=code)
            .values("description", "status", "estimate", "responsible", "signal")
            .first()
        )
        entry, _created = StatusMappingEntry.objects.update_or_create(
            version=locked,
            code=code,
            defaults={
                "description": description.strip(),
                "status": status,
                "estimate": estimate,
                "responsible": responsible,
                "signal": signal,
            },
        )
        after = {
            "description": entry.description,
            "status": entry.status,
            "estimate": entry.estimate,
            "responsible": entry.responsible,
            "signal": entry.signal,
        }
        audit_record(
            actor=actor,
            action="status_mapping.entry_set",
            target=locked,
            data={"code": code, "from": before, "to": after},
        )
    return entry


def mapping_entry_remove(*, version: StatusMappingVersion, code: str, actor: Any) -> None:
    _mapping_author(actor, MAPPING_AUTHORS, "Only tenant admins and planners change status mappings.")
    code = mapping_defaults.code_normalized(version.kind, code)
    with transaction.atomic():
        locked = _draft(version)
        deleted, _ = StatusMappingEntry.objects.filter(version=locked, code=code).delete()
        if not deleted:
            raise MappingRefused(f"v{locked.number} has no code {code}.", "code")
        audit_record(actor=actor, action="status_mapping.entry_removed", target=locked, data={"code": code})


def mapping_version_discard(*, version: StatusMappingVersion, actor: Any) -> None:
    _mapping_author(actor, MAPPING_AUTHORS, "Only tenant admins and planners discard drafts of status mappings.")
    with transaction.atomic():
        locked = _draft(version)
        audit_record(actor=actor, action="status_mapping.discarded", target=locked, data={"kind": locked.kind, "number": locked.number})
        locked.delete()


def mapping_version_publish(*, version: StatusMappingVersion, actor: Any, notes: str = "") -> StatusMappingVersion:
    """Make a draft the active version of its table (the active one retires); from now on its
    entries never change. New events translate through it; stored events keep the version that
    translated them."""
    _mapping_author(actor, MAPPING_PUBLISHERS, "Only tenant admins publish status mappings.")
    now = timezone.now()
    with transaction.atomic():
        locked = _draft(version)
        if not locked.entries.exists():
            raise MappingRefused(f"v{locked.number} has no codes: add some before publishing it.")
        active = StatusMappingVersion.objects.select_for_update().filter(kind=locked.kind, status=MappingVersionStatus.ACTIVE).first()
        changes = mapping_changes(locked, active)
        if active is not None:
            active.status, active.retired_at = MappingVersionStatus.RETIRED, now
            active.save(update_fields=["status", "retired_at"])
        locked.status, locked.published_at, locked.published_by_email = MappingVersionStatus.ACTIVE, now, actor_of(actor).email
        if notes.strip():
            locked.notes = notes.strip()
        locked.save(update_fields=["status", "published_at", "published_by_email", "notes"])
        audit_record(
            actor=actor,
            action="status_mapping.published",
            target=locked,
            data={
                "kind": locked.kind,
                "number": locked.number,
                "replaces": active.number if active else None,
                "added": changes.added,
                "changed": changes.changed,
                "removed": changes.removed,
            },
        )
    return locked


def mapping_version_activate(*, version: StatusMappingVersion, actor: Any, reason: str) -> StatusMappingVersion:
    """Put a retired version back in force (a rollback); the active one retires."""
    _mapping_author(actor, MAPPING_PUBLISHERS, "Only tenant admins activate status mappings.")
    if not reason.strip():
        raise MappingRefused("Say why this version goes back into force.", "reason")
    now = timezone.now()
    with transaction.atomic():
        locked = StatusMappingVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != MappingVersionStatus.RETIRED:
            raise MappingRefused(
                f"v{locked.number} is {locked.get_status_display().lower()}: only a retired version can be activated again."
            )
        active = StatusMappingVersion.objects.select_for_update().filter(kind=locked.kind, status=MappingVersionStatus.ACTIVE).first()
        if active is not None:
            active.status, active.retired_at = MappingVersionStatus.RETIRED, now
            active.save(update_fields=["status", "retired_at"])
        locked.status, locked.retired_at = MappingVersionStatus.ACTIVE, None
        locked.save(update_fields=["status", "retired_at"])
        audit_record(
            actor=actor,
            action="status_mapping.activated",
            target=locked,
            reason=reason.strip(),
            data={"kind": locked.kind, "number": locked.number, "replaces": active.number if active else None},
        )
    return locked


def mapping_defaults_install(*, actor: Any) -> list[StatusMappingVersion]:
    """Install releases of the platform's default tables the tenant does not have yet."""
    _mapping_author(actor, MAPPING_PUBLISHERS, "Only tenant admins install the platform's default mappings.")
    with transaction.atomic():
        installed = mapping_defaults.defaults_install(StatusMappingVersion, StatusMappingEntry, now=timezone.now())
        for version in installed:
            audit_record(
                actor=actor,
                action="status_mapping.defaults_installed",
                target=version,
                data={"kind": version.kind, "number": version.number, "release": version.platform_release, "status": version.status},
            )
    return installed
