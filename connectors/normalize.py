"""Normalization: what a partner sent, as Baton's canonical events.

A canonical event is what workflows listen to (`event_type`, `event_id`, `correlation`,
`payload`): `shipment.milestone` (a tracking status in Baton's vocabulary beside the raw code),
`order.received`, `inventory.snapshot` (by API, or an X12 846), `document.received`,
`invoice.received`, `edi.990` (a tender response) and `acknowledgement.received`. Mappers turn one inbound body into any number
of them:

- `canonical`: the body already is one (the events API's shape);
- `easypost`: an EasyPost-style tracker event (`object: Event`, `result: Tracker`);
- `mapping`: a per-connection declarative mapping of JSON paths (`$.data.id`) and literals;
- `x12`: X12 EDI (`connectors.edi`): each accepted set of a supported type becomes events (a 214's
  milestones, a 990's answer, a 204's tender…); rejected sets are left to the 997.

Input that cannot be mapped raises `NormalizationFailed` with the reason and a JSON pointer into
the body, so the inbox can quarantine it where an operator can read why, fix and replay it.
Nothing here touches the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workflows.models import CORRELATION_KEYS

if TYPE_CHECKING:
    from connectors.edi.errors import EdiError

MAPPERS = ("canonical", "easypost", "mapping", "x12")

# X12 214 shipment status codes (AT7-01) in Baton's tracking vocabulary (like EASYPOST_STATUSES,
# until the logistics domain brings versioned mapping tables).
X12_STATUSES = {
    "X3": "arrived_at_pickup",
    "AF": "picked_up",
    "CP": "picked_up",
    "X6": "in_transit",
    "P1": "in_transit",
    "X1": "arrived_at_delivery",
    "AG": "delivery_delayed",
    "SD": "delivery_delayed",
    "OO": "out_for_delivery",
    "D1": "delivered",
    "CD": "delivered",
    "A3": "return_to_sender",
    "AP": "delivery_failed",
    "CA": "cancelled",
    "AH": "on_hold",
}
# Canonical event types of the other supported sets.
X12_EVENT_TYPES = {
    "204": "load.tendered",
    "990": "edi.990",
    "210": "invoice.received",
    "856": "shipment.notice",
    "940": "warehouse.order",
    "945": "warehouse.shipped",
    "943": "stock.transfer_shipped",
    "944": "stock.transfer_received",
    "846": "inventory.snapshot",
    "997": "acknowledgement.received",
    "999": "acknowledgement.received",
}

# EasyPost's tracker statuses in Baton's tracking vocabulary (the versioned mapping tables that
# operators can see and edit arrive with the logistics domain).
EASYPOST_STATUSES = {
    "pre_transit": "pending",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "delivered": "delivered",
    "available_for_pickup": "ready_for_pickup",
    "return_to_sender": "return_to_sender",
    "failure": "delivery_failed",
    "cancelled": "cancelled",
    "error": "unknown",
    "unknown": "unknown",
}


@dataclass(frozen=True)
class CanonicalEvent:
    event_type: str
    event_id: str
    correlation: dict[str, str] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "event_id": self.event_id, "correlation": self.correlation, "payload": self.payload}


class NormalizationFailed(Exception):
    """The body cannot become canonical events: `reason` in words, `pointer` where (JSON pointer)."""

    def __init__(self, reason: str, pointer: str = ""):
        super().__init__(f"{pointer}: {reason}" if pointer else reason)
        self.reason = reason
        self.pointer = pointer


def json_body(body: bytes) -> Any:
    """The body as JSON, or NormalizationFailed saying where it stops being JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NormalizationFailed(f"the body is not UTF-8 text (byte {error.start})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise NormalizationFailed(f"the body is not JSON: {error.msg} at line {error.lineno}, column {error.colno}") from error


def normalize(*, mapper: str, body: bytes, mapping: dict[str, Any] | None = None) -> list[CanonicalEvent]:
    """The canonical events in `body` according to the connection's `mapper`."""
    if mapper not in MAPPERS:
        raise NormalizationFailed(f"unknown mapper '{mapper}'; the connection must use one of {', '.join(MAPPERS)}")
    if mapper == "x12":
        return _x12(body)
    document = json_body(body)
    if not isinstance(document, dict):
        raise NormalizationFailed("the body must be a JSON object", "")
    if mapper == "canonical":
        return [_canonical(document)]
    if mapper == "easypost":
        return [_easypost(document)]
    return [_mapped(document, mapping or {})]


def _text(value: Any, pointer: str, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise NormalizationFailed(f"{what} must be a non-empty text", pointer)
    return str(value).strip()


def _correlation(value: Any, pointer: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise NormalizationFailed("the correlation must be an object of keys", pointer)
    unknown = sorted(set(value) - set(CORRELATION_KEYS))
    if unknown:
        raise NormalizationFailed(f"'{unknown[0]}' is not a correlation key; use {', '.join(CORRELATION_KEYS)}", f"{pointer}/{unknown[0]}")
    return {name: _text(item, f"{pointer}/{name}", f"correlation key '{name}'") for name, item in value.items() if item is not None}


def _canonical(document: dict[str, Any]) -> CanonicalEvent:
    payload = document.get("payload", {})
    if not isinstance(payload, dict):
        raise NormalizationFailed("the payload must be an object", "/payload")
    return CanonicalEvent(
        event_type=_text(document.get("event_type"), "/event_type", "the event type"),
        event_id=_text(document.get("event_id"), "/event_id", "the event id"),
        correlation=_correlation(document.get("correlation", {}), "/correlation"),
        payload=payload,
    )


def _easypost(document: dict[str, Any]) -> CanonicalEvent:
    """A tracker event: the tracker's current status as one milestone, its latest detail as when and where."""
    if document.get("object") != "Event":
        raise NormalizationFailed("an EasyPost-style body has `object: Event`", "/object")
    tracker = document.get("result")
    if not isinstance(tracker, dict) or tracker.get("object") != "Tracker":
        raise NormalizationFailed("the event's result must be a Tracker", "/result")
    code = _text(tracker.get("tracking_code"), "/result/tracking_code", "the tracking code")
    raw_status = _text(tracker.get("status"), "/result/status", "the tracker status")
    details = tracker.get("tracking_details") or []
    if not isinstance(details, list):
        raise NormalizationFailed("tracking_details must be a list", "/result/tracking_details")
    latest = details[-1] if details and isinstance(details[-1], dict) else {}
    location = latest.get("tracking_location") or {}
    correlation = {"pro": code}
    if tracker.get("shipment_id"):
        correlation["shipment"] = str(tracker["shipment_id"])
    return CanonicalEvent(
        event_type="shipment.milestone",
        event_id=_text(document.get("id"), "/id", "the event id"),
        correlation=correlation,
        payload={
            "code": EASYPOST_STATUSES.get(raw_status, "unknown"),
            "raw_code": raw_status,
            "raw_detail": tracker.get("status_detail") or "",
            "message": latest.get("message") or "",
            "occurred_at": latest.get("datetime") or tracker.get("updated_at"),
            "location": {key: location.get(key) for key in ("city", "state", "country", "zip")} if isinstance(location, dict) else {},
            "estimated_delivery": tracker.get("est_delivery_date"),
            "signed_by": tracker.get("signed_by"),
            "carrier": tracker.get("carrier") or "",
            "tracking_code": code,
            "source": "easypost",
        },
    )


MISSING = object()  # what `path_read` gives for a path the document does not have


def path_read(document: Any, path: str) -> Any:
    """`$.a.b.0.c` in the document (dictionary keys and list indexes only), or MISSING."""
    value = document
    for part in path[2:].split(".") if path != "$" else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def _resolve(source: Any, document: Any, pointer: str) -> Any:
    """A mapping value: a `$.path` read from the body (absent: None), nested objects and lists, or a literal."""
    if isinstance(source, dict):
        return {key: _resolve(value, document, f"{pointer}/{key}") for key, value in source.items()}
    if isinstance(source, list):
        return [_resolve(value, document, f"{pointer}/{index}") for index, value in enumerate(source)]
    if isinstance(source, str) and (source == "$" or source.startswith("$.")):
        value = path_read(document, source)
        return None if value is MISSING else value
    return source


def _mapped(document: dict[str, Any], mapping: dict[str, Any]) -> CanonicalEvent:
    """The connection's mapping: `event_type`, `event_id`, `correlation` and `payload`, each a
    literal or a `$.path` into the body. A required value the body lacks names the path it read."""
    if not mapping:
        raise NormalizationFailed("the connection has no mapping: set one (event_type, event_id, correlation, payload)")
    values: dict[str, Any] = {}
    for name in ("event_type", "event_id"):
        source = mapping.get(name)
        value = _resolve(source, document, "")
        if value is None or value == "":
            where = f"'{source}'" if isinstance(source, str) else "the mapping"
            raise NormalizationFailed(f"the {name.replace('_', ' ')} comes from {where}, which the body does not have", _pointer_of(source))
        values[name] = _text(value, _pointer_of(source), f"the {name.replace('_', ' ')}")
    correlation = _resolve(mapping.get("correlation", {}), document, "")
    payload = _resolve(mapping.get("payload", "$"), document, "")
    if not isinstance(payload, dict):
        raise NormalizationFailed("the mapped payload must be an object", _pointer_of(mapping.get("payload", "$")))
    return CanonicalEvent(
        values["event_type"],
        values["event_id"],
        _correlation({key: value for key, value in correlation.items() if value is not None}, "/correlation")
        if isinstance(correlation, dict)
        else _correlation(correlation, "/correlation"),
        payload,
    )


def _pointer_of(source: Any) -> str:
    """`$.data.id` → `/data/id`: where in the body a mapped value was read."""
    if isinstance(source, str) and source.startswith("$."):
        return "/" + "/".join(source[2:].split("."))
    return ""


def _x12(body: bytes) -> list[CanonicalEvent]:
    """Events from every accepted set of a supported type; NormalizationFailed naming the first
    problem (and where) when not one set could be taken."""
    from connectors.edi import parse
    from connectors.edi.documents import InventoryAdvice, ShipmentStatus, TenderResponse, to_jsonable

    result = parse(body)
    if not result.interchanges:
        first = result.errors[0].describe() if result.errors else "no ISA segment"
        raise NormalizationFailed(f"this is not an X12 interchange: {first}")
    senders = {interchange.index: f"{interchange.sender_id}:{interchange.control_number}" for interchange in result.interchanges}
    # A broken envelope refuses what it holds: the whole interchange (answered with a TA1) or the
    # whole group (its 997 rejects the group), so the partner sends it again and nothing of it is
    # applied now.
    refused: dict[tuple[int, str | None], EdiError] = {}
    for interchange in result.interchanges:
        if interchange.rejected:
            refused[(interchange.index, None)] = next(error for error in interchange.errors if error.interchange_code)
        for group in interchange.groups:
            if group.rejected:
                refused[(interchange.index, group.control_number)] = next(error for error in group.errors if error.group_code)
    events: list[CanonicalEvent] = []
    for parsed in result.sets:
        if not parsed.accepted or parsed.document is None:
            continue
        if (parsed.interchange, None) in refused or (parsed.interchange, parsed.group_control_number) in refused:
            continue
        source = f"x12:{senders.get(parsed.interchange, '')}:{parsed.group_control_number}:{parsed.control_number}"
        document = parsed.document
        if isinstance(document, ShipmentStatus):
            for index, milestone in enumerate(document.milestones):
                correlation = {
                    key: value
                    for key, value in (
                        ("shipment", milestone.shipment_id or document.shipment_id),
                        ("pro", milestone.pro_number or document.pro_number),
                        ("bol", milestone.bill_of_lading or document.bill_of_lading),
                        ("po", (milestone.purchase_orders or document.purchase_orders or [""])[0]),
                    )
                    if value
                }
                payload = {
                    "code": X12_STATUSES.get(milestone.status_code, "unknown"),
                    "raw_code": milestone.status_code,
                    "raw_detail": milestone.status_reason,
                    "occurred_at": milestone.occurred_at.isoformat() if milestone.occurred_at else None,
                    "location": {"city": milestone.city, "state": milestone.state, "country": milestone.country},
                    "position": {"lat": milestone.latitude, "lon": milestone.longitude} if milestone.latitude is not None else None,
                    "carrier": milestone.scac or document.scac,
                    "source": "x12 214",
                }
                events.append(CanonicalEvent("shipment.milestone", f"{source}:{index + 1}", correlation, payload))
            continue
        if isinstance(document, InventoryAdvice):
            events.append(CanonicalEvent("inventory.snapshot", source, {}, inventory_snapshot_payload(document)))
            continue
        payload = {"set": parsed.code, **to_jsonable(document)}
        shipment = getattr(document, "shipment_id", "")
        correlation = {"shipment": shipment, "order": shipment} if shipment else {}
        if isinstance(document, TenderResponse):
            payload["order"] = shipment
        events.append(CanonicalEvent(X12_EVENT_TYPES.get(parsed.code, f"edi.{parsed.code}"), source, correlation, payload))
    if not events:
        if refused:
            (interchange_index, group_number), problem = next(iter(refused.items()))
            what = (
                f"interchange {interchange_index} was refused with a TA1"
                if group_number is None
                else f"functional group {group_number} was rejected in the 997"
            )
            raise NormalizationFailed(f"{what}: {problem.message}", problem.position.describe())
        problems = [error for parsed in result.sets for error in parsed.errors] + result.errors
        unsupported = [parsed.code for parsed in result.sets if not parsed.supported]
        if problems:
            raise NormalizationFailed(f"no transaction set could be taken: {problems[0].describe()}", problems[0].position.describe())
        raise NormalizationFailed(f"no supported transaction set in the interchange (found {', '.join(unsupported) or 'none'})")
    return events


# An 846 item's SKU: the first of its product ids with these qualifiers (SKU, vendor's, buyer's,
# GTIN/UPC), else its first id. Its quantity: on hand (17), else available for sale (33), else the
# first QTY reported at that place.
SKU_QUALIFIERS = ("SK", "VN", "BP", "IN", "VP", "UP", "UK", "EN")
ON_HAND_QUALIFIERS = ("17", "33")


def inventory_snapshot_payload(document: Any) -> dict[str, Any]:
    """An 846 (`connectors.edi.documents.InventoryAdvice`) as an `inventory.snapshot` payload: the
    shape the events API takes too – `system`, `as_of`, `location`, `positions` of `sku`,
    `quantity`, `unit` and, when an item counts at a place of its own, `location`. An 846 is the
    warehouse's inventory advice, so its system is `wms`. A time without a zone stays naive (the
    inventory workflow reads it in the location's time zone)."""
    positions: list[dict[str, Any]] = []
    for item in document.items:
        ids = {reference.qualifier: reference.value for reference in reversed(item.product_ids)}
        sku = next((ids[qualifier] for qualifier in SKU_QUALIFIERS if ids.get(qualifier)), "")
        sku = sku or (item.product_ids[0].value if item.product_ids else "")
        places: dict[str, list[Any]] = {}
        for quantity in item.quantities:
            places.setdefault(quantity.location, []).append(quantity)
        for place, quantities in places.items():
            chosen = next((q for qualifier in ON_HAND_QUALIFIERS for q in quantities if q.qualifier == qualifier), quantities[0])
            position: dict[str, Any] = {
                "sku": sku,
                "quantity": str(chosen.quantity) if chosen.quantity is not None else None,
                "unit": chosen.unit,
                "qualifier": chosen.qualifier,
            }
            if place:
                position["location"] = place
            if item.description:
                position["description"] = item.description
            positions.append(position)
    return {
        "set": "846",
        "system": "wms",
        "as_of": document.as_of.isoformat() if document.as_of else None,
        "location": document.location,
        "reference": document.reference,
        "report_type": document.report_type,
        "positions": positions,
    }


def x12_acknowledgement(body: bytes) -> str:
    """The 997s answering every interchange in `body` (one per interchange with groups, or a TA1
    for an interchange whose envelope is broken), as sent back to the partner: every received set
    accepted or rejected, with the rejected segments and elements. Empty when there is nothing to
    acknowledge."""
    from connectors.edi import acknowledge, parse

    return "".join(ack for ack in (acknowledge(interchange) for interchange in parse(body).interchanges) if ack)
