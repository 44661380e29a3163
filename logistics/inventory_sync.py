"""Inventory synchronisation as the `inventory-sync` template runs it: the ERP's book position and
the WMS's physical one are compared per SKU and location; small differences are corrected in the
system that is not the source of truth, large ones go to a person as an inventory-variance
exception, and customers get the corrected position by webhook.

- **Snapshots** (`snapshot_take`) arrive as `inventory.snapshot` events – by API (`system`,
  `as_of`, `location`, `positions` of `sku`, `quantity`, optionally `unit`, `location`,
  `customer`) or as an X12 846 (`connectors.normalize`, system `wms`) – or are pulled from both
  systems' connections (`pulled_snapshot_take`, the sandbox ERP's and WMS's `GET /api/inventory`
  shape). A location is a Baton location code, or a system's site code mapped to one in the
  template's *Site locations*; a time without a zone is read in the location's time zone.
- **Movements** (`movement_take`): a 945 (warehouse shipped) takes stock out of its warehouse, a
  944 (stock transfer received) puts it in. They are kept as snapshots of the system `movement`
  with signed quantities, once per document number, as of when Baton received them (EDI advices
  carry a date, rarely a time). A comparison rolls the other system's latest snapshot forward (or
  back) by the movements between its moment and the compared snapshot's – the *expected*
  position, kept as a snapshot of `<system>:expected` – so goods that moved between two counts
  are not reported as a variance.
- **Comparison** (`inventory_compare`): a snapshot against the other system's latest one covering
  its locations, reference = the source of truth; `inventory_variances_compute` marks what is
  within the quantity or percent tolerance.
- **Outcomes**: `adjustments_record` marks the within-tolerance variances adjusted once the wrong
  system took the correction, and keeps what was changed as a `<system>:adjusted` snapshot (as of
  the count it was corrected to) that rolls into that system's expected position like a movement,
  so the next comparison against the same old count does not correct it twice; `variance_exception_open` opens (or brings up to date) one
  inventory-variance exception per pair of systems and set of locations, itemising every
  variance beyond tolerance; `position_publish` sends the truth's position per customer account
  owning the SKUs (tenant-level when no customer owns them) as `inventory.position` webhooks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from connectors.deliveries import webhook_publish
from governance.services import audit_record
from logistics.models import (
    OPEN_EXCEPTION,
    CustomerAccount,
    ExceptionCase,
    ExceptionType,
    InventoryPosition,
    InventorySnapshot,
    InventoryVariance,
    Location,
    Severity,
    VarianceStatus,
)
from logistics.services import InventoryInvalid, PositionInput, exception_open, inventory_snapshot_record, inventory_variances_compute
from workflows.triggers import tenant_zone

SYSTEMS = ("erp", "wms")
MOVEMENT = "movement"
EXPECTED = ":expected"
ADJUSTED = ":adjusted"
POSITION_EVENT = "inventory.position"
# A line's SKU among its product ids (SKU, vendor's, buyer's, GTIN/UPC), as for an 846.
SKU_QUALIFIERS = ("SK", "VN", "BP", "IN", "VP", "UP", "UK", "EN")
# Which way a movement document moves stock: a 945 ships out, a 944 receives in.
MOVEMENT_SETS = {"945": Decimal("-1"), "944": Decimal("1")}
MOVEMENT_KINDS = {"warehouse_shipping_advice": "945", "stock_transfer_receipt": "944"}
WAREHOUSE_ROLES = ("WH", "SF", "RL", "SW")


def other_system(system: str) -> str:
    return SYSTEMS[1] if system == SYSTEMS[0] else SYSTEMS[0]


def input_kind(payload: dict[str, Any]) -> str:
    """What started the run: a `snapshot` (an `inventory.snapshot` event), a `movement` (a 945 or
    944), or a `pull` (the schedule, or a start by hand without positions)."""
    if str(payload.get("set") or "") in MOVEMENT_SETS or payload.get("kind") in MOVEMENT_KINDS:
        return "movement"
    if "positions" in payload or payload.get("set") == "846":
        return "snapshot"
    return "pull"


# --- reading the input ---------------------------------------------------------------------------


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or value in (None, ""):
        raise InventoryInvalid(f"{where} needs a quantity (a number)", where)
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as error:
        raise InventoryInvalid(f"{where} is {value!r}, not a number", where) from error
    if not number.is_finite():
        raise InventoryInvalid(f"{where} is {value!r}, not a number", where)
    return number


def location_resolve(code: Any, site_locations: dict[str, str], where: str) -> Location:
    """A Baton location from a location code (any case) or a system's site code mapped in *Site
    locations*; refused by name when neither."""
    text = str(code or "").strip()
    if not text:
        raise InventoryInvalid(f"{where}: say which location the stock is at (a location code)", where)
    mapped = site_locations.get(text) or site_locations.get(text.upper()) or text
    location = Location.objects.filter(code=mapped).first() or Location.objects.filter(code__iexact=mapped).first()
    if location is None:
        raise InventoryInvalid(
            f"{where}: {text!r} is not a Baton location: add it to the locations, or map the site to one in the template's Site locations",
            where,
        )
    return location


def _moment(value: Any, location: Location | None, where: str) -> datetime:
    parsed = parse_datetime(value.strip()) if isinstance(value, str) and value.strip() else None
    if parsed is None:
        raise InventoryInvalid(f"{where} must say when the count was taken (ISO 8601), not {value!r}", where)
    if parsed.tzinfo is None:
        zone: ZoneInfo | None = None
        if location is not None and location.time_zone:
            try:
                zone = ZoneInfo(location.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                zone = None
        parsed = parsed.replace(tzinfo=zone or tenant_zone()[0])
    return parsed


def _customer(code: Any, where: str, known: dict[str, CustomerAccount]) -> CustomerAccount | None:
    text = str(code or "").strip()
    if not text:
        return None
    if text not in known:
        found = CustomerAccount.objects.filter(code=text).first()
        if found is None:
            raise InventoryInvalid(f"{where}: there is no customer account {text!r}", where)
        known[text] = found
    return known[text]


def sku_of(line: dict[str, Any]) -> str:
    """A line's SKU: its `sku`, else the preferred of its product ids, else its UPC."""
    if str(line.get("sku") or "").strip():
        return str(line["sku"]).strip()
    ids = {
        str(ref.get("qualifier")): str(ref.get("value") or "") for ref in reversed(line.get("product_ids") or []) if isinstance(ref, dict)
    }
    return next((ids[q] for q in SKU_QUALIFIERS if ids.get(q)), "") or str(line.get("upc") or "").strip()


# --- snapshots and movements --------------------------------------------------------------------


@dataclass(frozen=True)
class Taken:
    """What a run took in: a snapshot of `system`, or a movement."""

    kind: str
    snapshot_id: int
    system: str
    created: bool
    as_of: str
    locations: list[str]
    positions: int
    owners: dict[str, str] = field(default_factory=dict)  # SKU → customer account code
    reason: str = ""

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def snapshot_take(*, payload: dict[str, Any], site_locations: dict[str, str], actor: Any, dedupe_key: str = "") -> Taken:
    """Record an `inventory.snapshot` payload (see the module); bad input is refused naming the field."""
    system = str(payload.get("system") or "").strip().lower()
    if system not in SYSTEMS:
        raise InventoryInvalid(f"system is {payload.get('system')!r}: say whose inventory it is, erp or wms", "system")
    rows = payload.get("positions")
    if not isinstance(rows, list):
        raise InventoryInvalid("positions must be a list of {sku, quantity}", "positions")
    default_code = payload.get("location")
    default = location_resolve(default_code, site_locations, "location") if str(default_code or "").strip() else None
    accounts: dict[str, CustomerAccount] = {}
    account = _customer(payload.get("customer"), "customer", accounts)
    positions: list[PositionInput] = []
    owners: dict[str, str] = {}
    for index, row in enumerate(rows):
        where = f"positions/{index}"
        if not isinstance(row, dict):
            raise InventoryInvalid(f"{where} must be an object with sku and quantity", where)
        sku = sku_of(row)
        if not sku:
            raise InventoryInvalid(f"{where} needs a sku", f"{where}/sku")
        location = location_resolve(row["location"], site_locations, f"{where}/location") if row.get("location") else default
        if location is None:
            raise InventoryInvalid(f"{where} has no location, and the snapshot names none", f"{where}/location")
        owner = _customer(row.get("customer"), f"{where}/customer", accounts)
        if owner is not None:
            owners[sku] = owner.code
        unit = str(row.get("unit") or "each").strip().lower() or "each"
        positions.append(PositionInput(sku, location, _decimal(row.get("quantity"), f"{where}/quantity"), "each" if unit == "ea" else unit))
    first = positions[0].location if positions else default
    as_of = _moment(payload.get("as_of"), first if isinstance(first, Location) else None, "as_of")
    recorded = inventory_snapshot_record(
        source_system=system,
        as_of=as_of,
        positions=positions,
        customer_account=account,
        dedupe_key=dedupe_key or str(payload.get("reference") or "").strip()[:200],
        actor=actor,
    )
    snapshot = recorded.snapshot
    codes = sorted(set(snapshot.positions.values_list("location__code", flat=True)))
    if account is not None:
        owners = {sku: owners.get(sku, account.code) for sku in snapshot.positions.values_list("sku", flat=True)} | owners
    return Taken(
        "snapshot",
        snapshot.pk,
        system,
        recorded.created,
        snapshot.as_of.astimezone(UTC).isoformat(),
        codes,
        snapshot.positions.count(),
        owners,
        f"{system} snapshot of {len(codes)} location(s) recorded"
        if recorded.created
        else f"{system} snapshot {snapshot.pk} was recorded before",
    )


def pulled_snapshot_take(*, answer: dict[str, Any], system: str, site_locations: dict[str, str], actor: Any) -> Taken:
    """A system's inventory read through its connection (`as_of`, `site`, `items` of `sku`,
    `on_hand` or `quantity`, `uom`, optionally their own `site`) recorded as its snapshot. Bins
    (an item's `location` in a WMS answer) add up at the site."""
    if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
        raise InventoryInvalid(f"the {system} answered no inventory (no items list)", "items")
    positions = [
        {
            "sku": item.get("sku"),
            "quantity": item.get("on_hand", item.get("quantity")),
            "unit": item.get("uom") or item.get("unit"),
            "location": item.get("site") or answer.get("site"),
        }
        for item in answer["items"]
        if isinstance(item, dict)
    ]
    return snapshot_take(
        payload={"system": system, "as_of": answer.get("as_of"), "positions": positions}, site_locations=site_locations, actor=actor
    )


def _warehouse(payload: dict[str, Any], site_locations: dict[str, str]) -> Location:
    if payload.get("location"):
        return location_resolve(payload["location"], site_locations, "location")
    for party in payload.get("parties") or []:
        if isinstance(party, dict) and party.get("role") in WAREHOUSE_ROLES and (party.get("id") or party.get("name")):
            return location_resolve(party.get("id") or party.get("name"), site_locations, f"parties ({party.get('role')})")
    raise InventoryInvalid("the advice names no warehouse: send an N1 WH or SF loop, or a location", "parties")


def movement_take(*, payload: dict[str, Any], site_locations: dict[str, str], actor: Any) -> Taken:
    """Record a 945 (shipped: minus) or 944 (received: plus) as a movement at its warehouse, once
    per document number (see the module)."""
    code = str(payload.get("set") or MOVEMENT_KINDS.get(str(payload.get("kind")), ""))
    sign = MOVEMENT_SETS[code]
    number = str(payload.get("order_number") or payload.get("receipt_number") or payload.get("reference") or "").strip()
    location = _warehouse(payload, site_locations)
    lines = payload.get("lines")
    if not isinstance(lines, list) or not lines:
        raise InventoryInvalid(f"the {code} has no item lines", "lines")
    positions = []
    for index, line in enumerate(lines):
        where = f"lines/{index}"
        if not isinstance(line, dict):
            raise InventoryInvalid(f"{where} must be an item line", where)
        sku = sku_of(line)
        if not sku:
            raise InventoryInvalid(f"{where} names no item (sku, or a product id)", f"{where}/product_ids")
        moved = line.get("quantity_shipped") if code == "945" else line.get("quantity")
        moved = line.get("quantity") if moved is None else moved
        positions.append(PositionInput(sku, location, sign * _decimal(moved, f"{where}/quantity"), str(line.get("unit") or "each").lower()))
    at = payload.get("occurred_at")
    moment = _moment(at, location, "occurred_at") if at else timezone.now()
    recorded = inventory_snapshot_record(
        source_system=MOVEMENT, as_of=moment, positions=positions, dedupe_key=f"{code}:{number}" if number else "", actor=actor
    )
    snapshot = recorded.snapshot
    direction = "shipped from" if sign < 0 else "received at"
    return Taken(
        "movement",
        snapshot.pk,
        MOVEMENT,
        recorded.created,
        snapshot.as_of.astimezone(UTC).isoformat(),
        [location.code],
        len(positions),
        reason=f"{code} {number}: {len(positions)} line(s) {direction} {location.code}"
        + ("" if recorded.created else f" (recorded before as movement {snapshot.pk})"),
    )


# --- comparison ----------------------------------------------------------------------------------


def _cells(snapshot: InventorySnapshot) -> dict[tuple[str, int], tuple[Decimal, str]]:
    return {(sku, loc): (qty, unit) for sku, loc, qty, unit in snapshot.positions.values_list("sku", "location_id", "quantity", "unit")}


def expected_position(*, latest: InventorySnapshot, at: datetime, actor: Any) -> tuple[InventorySnapshot, int]:
    """`latest` rolled to the moment `at` by the movements in between at its locations (see the
    module): the snapshot itself when nothing moved, else a `<system>:expected` snapshot."""
    locations = set(latest.positions.values_list("location_id", flat=True))
    earlier, later = sorted((latest.as_of, at))
    moves = InventoryPosition.objects.filter(
        snapshot__source_system__in=[MOVEMENT, f"{latest.source_system}{ADJUSTED}"],
        snapshot__as_of__gt=earlier,
        snapshot__as_of__lte=later,
        location_id__in=locations,
    ).values_list("sku", "location_id", "quantity", "snapshot_id")
    sign = 1 if at >= latest.as_of else -1
    cells = _cells(latest)
    count = 0
    last = 0
    for sku, location_id, quantity, snapshot_id in moves:
        before, unit = cells.get((sku, location_id), (Decimal("0"), "each"))
        cells[(sku, location_id)] = (before + sign * quantity, unit)
        count, last = count + 1, max(last, snapshot_id)
    if not count:
        return latest, 0
    rolled = inventory_snapshot_record(
        source_system=f"{latest.source_system}{EXPECTED}",
        as_of=at,
        positions=[PositionInput(sku, Location(pk=location_id), quantity, unit) for (sku, location_id), (quantity, unit) in cells.items()],
        customer_account=latest.customer_account,
        dedupe_key=f"{latest.pk}@{at.isoformat()}#{last}",
        actor=actor,
    )
    return rolled.snapshot, count


@dataclass(frozen=True)
class Comparison:
    """What a comparison found; `adjustments` are what the wrong system must change (within
    tolerance), `variances` every difference itemised."""

    compared: bool
    reason: str
    truth: str = ""
    wrong: str = ""
    truth_snapshot_id: int | None = None
    wrong_snapshot_id: int | None = None
    movements: int = 0
    locations: list[str] = field(default_factory=list)
    variances: list[dict[str, Any]] = field(default_factory=list)
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    within_count: int = 0
    beyond_count: int = 0

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def _variance_data(variance: InventoryVariance, codes: dict[int, str]) -> dict[str, Any]:
    return {
        "variance_id": variance.pk,
        "sku": variance.sku,
        "location": codes[variance.location_id],
        "truth_quantity": plain(variance.reference_quantity),
        "other_quantity": plain(variance.compared_quantity),
        "difference": plain(variance.difference),
        "within_tolerance": variance.within_tolerance,
    }


def inventory_compare(
    *, snapshot: InventorySnapshot, source_of_truth: str, quantity_tolerance: Any, percent_tolerance: Any, actor: Any
) -> Comparison:
    """Compare `snapshot` with the other system's latest snapshot covering any of its locations,
    rolled to its moment by the movements in between (see the module)."""
    if source_of_truth not in SYSTEMS:
        raise InventoryInvalid(f"the source of truth is {source_of_truth!r}: choose erp or wms", "source_of_truth")
    system = snapshot.source_system
    if system not in SYSTEMS:
        raise InventoryInvalid(f"snapshot {snapshot.pk} is of {system!r}, not of the ERP or the WMS", "snapshot_id")
    other = other_system(system)
    locations = set(snapshot.positions.values_list("location_id", flat=True))
    latest = (
        InventorySnapshot.objects.filter(source_system=other, positions__location_id__in=locations)
        .exclude(pk=snapshot.pk)
        .order_by("-as_of", "-received_at", "-pk")
        .first()
    )
    codes = dict(Location.objects.filter(pk__in=locations).values_list("pk", "code"))
    where = ", ".join(sorted(codes.values())) or "no location"
    if latest is None:
        return Comparison(
            False, f"no {other} snapshot covers {where} yet: nothing to compare the {system} one with", locations=sorted(codes.values())
        )
    expected, movements = expected_position(latest=latest, at=snapshot.as_of, actor=actor)
    truth_side, wrong_side = (snapshot, expected) if system == source_of_truth else (expected, snapshot)
    report = inventory_variances_compute(
        reference=truth_side,
        compared=wrong_side,
        quantity_tolerance=quantity_tolerance,
        percent_tolerance=percent_tolerance,
        actor=actor,
    )
    compared_codes = sorted(codes[pk] for pk in report.locations_compared if pk in codes)
    units = {(sku, loc): unit for (sku, loc), (_qty, unit) in {**_cells(wrong_side), **_cells(truth_side)}.items()}
    items = [_variance_data(variance, codes) for variance in report.variances]
    adjustments = [
        {
            "sku": variance.sku,
            "location": codes[variance.location_id],
            "quantity": json_number(variance.reference_quantity),
            "adjust_by": json_number(-variance.difference),
            "unit": units.get((variance.sku, variance.location_id), "each"),
        }
        for variance in report.variances
        if variance.within_tolerance
    ]
    within = sum(1 for variance in report.variances if variance.within_tolerance)
    wrong = other_system(source_of_truth)
    reason = (
        f"{source_of_truth} and {wrong} agree at {', '.join(compared_codes)}"
        if not items
        else f"{len(items)} variance(s) at {', '.join(compared_codes)}: {within} within tolerance, {len(items) - within} beyond"
    )
    if movements:
        reason += f" ({movements} movement line(s) between the counts taken into account)"
    return Comparison(
        True,
        reason,
        source_of_truth,
        wrong,
        truth_side.pk,
        wrong_side.pk,
        movements,
        compared_codes,
        items,
        adjustments,
        within,
        len(items) - within,
    )


# --- outcomes ------------------------------------------------------------------------------------


def _variances(ids: Any) -> list[InventoryVariance]:
    wanted = [int(value) for value in ids or [] if str(value).isdigit()]
    return list(InventoryVariance.objects.filter(pk__in=wanted).select_related("location", "reference"))


def adjustments_record(*, variance_ids: list[Any], system: str, answer: dict[str, Any], actor: Any) -> list[int]:
    """The wrong system took the correction: its within-tolerance variances are adjusted (audited
    with the system's answer). Variances already adjusted stay as they are."""
    variances = [
        variance for variance in _variances(variance_ids) if variance.within_tolerance and variance.status != VarianceStatus.ADJUSTED
    ]
    if not variances:
        return []
    first = variances[0]
    with transaction.atomic():
        InventoryVariance.objects.filter(pk__in=[variance.pk for variance in variances]).update(status=VarianceStatus.ADJUSTED)
        # What Baton changed in the system, as of the count it was corrected to: rolled into its
        # expected position like a movement, so the next comparison does not correct it again.
        inventory_snapshot_record(
            source_system=f"{system}{ADJUSTED}",
            as_of=first.reference.as_of,
            positions=[PositionInput(v.sku, v.location, -v.difference) for v in variances],
            dedupe_key=f"{first.reference_id}>{first.compared_id}",
            actor=actor,
        )
        audit_record(
            actor=actor,
            action="inventory_variances.adjusted",
            target=variances[0].compared,
            data={
                "system": system,
                "variances": [variance.pk for variance in variances],
                "adjustments": [{"sku": v.sku, "location": v.location.code, "adjust_by": plain(-v.difference)} for v in variances],
                "answer": {key: answer.get(key) for key in list(answer)[:10]} if isinstance(answer, dict) else {},
            },
        )
    return [variance.pk for variance in variances]


@dataclass(frozen=True)
class VarianceCase:
    exception_id: int
    created: bool
    severity: str
    reason: str
    variances: int

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def plain(value: Any) -> str:
    """A quantity as people write it: 140, 12.5, -3 (not 140.000)."""
    text = f"{Decimal(value):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def json_number(value: Decimal) -> int | float:
    """A quantity for a partner's JSON: a whole number stays whole."""
    return int(value) if value == value.to_integral_value() else float(value)


def _signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + plain(value)


def variance_exception_open(*, comparison: dict[str, Any], snapshot: InventorySnapshot, actor: Any) -> VarianceCase:
    """One open inventory-variance exception per pair of systems and set of locations: opened with
    every variance beyond tolerance itemised, or – when one is open – brought up to date with the
    latest comparison. High severity when a SKU is on hand in one system only (phantom or lost
    stock), else medium. The itemised variances are marked escalated."""
    beyond = [item for item in comparison.get("variances") or [] if not item.get("within_tolerance")]
    if not beyond:
        raise InventoryInvalid("there is no variance beyond tolerance to open an exception for", "comparison")
    truth, wrong = str(comparison.get("truth")), str(comparison.get("wrong"))
    locations = sorted({str(item["location"]) for item in beyond})
    key = f"{truth}>{wrong}@{','.join(locations)}"
    one_sided = any(Decimal(item["truth_quantity"]) == 0 or Decimal(item["other_quantity"]) == 0 for item in beyond)
    severity = Severity.HIGH if one_sided else Severity.MEDIUM
    shown = "; ".join(
        f"{item['sku']} at {item['location']}: {wrong.upper()} {item['other_quantity']} vs {truth.upper()} {item['truth_quantity']} ({_signed(Decimal(item['difference']))})"
        for item in beyond[:5]
    )
    more = f"; and {len(beyond) - 5} more" if len(beyond) > 5 else ""
    reason = f"{len(beyond)} inventory variance(s) beyond tolerance between {wrong.upper()} and {truth.upper()}: {shown}{more}"
    details = {
        "sync_key": key,
        "truth": truth,
        "wrong": wrong,
        "locations": locations,
        "truth_snapshot_id": comparison.get("truth_snapshot_id"),
        "other_snapshot_id": comparison.get("wrong_snapshot_id"),
        "variances": beyond,
        "compared_at": timezone.now().isoformat(),
    }
    with transaction.atomic():
        existing = (
            ExceptionCase.objects.select_for_update()
            .filter(OPEN_EXCEPTION, type=ExceptionType.INVENTORY_VARIANCE, details__sync_key=key)
            .order_by("opened_at")
            .first()
        )
        if existing is not None:
            seen = int(existing.details.get("comparisons", 1)) + 1
            existing.details = {**existing.details, **details, "comparisons": seen}
            existing.reason = reason[:500]
            existing.save(update_fields=["details", "reason"])
            audit_record(
                actor=actor,
                action="exception.details_updated",
                target=existing,
                data={"variances": len(beyond), "comparisons": seen, "snapshot": snapshot.pk},
            )
            case, created = existing, False
        else:
            case = exception_open(
                type=ExceptionType.INVENTORY_VARIANCE,
                reason=reason,
                severity=severity,
                customer_account=snapshot.customer_account,
                details={**details, "comparisons": 1},
                actor=actor,
            ).exception
            created = True
        InventoryVariance.objects.filter(pk__in=[item["variance_id"] for item in beyond]).update(status=VarianceStatus.ESCALATED)
    return VarianceCase(case.pk, created, case.severity, case.reason, len(beyond))


def position_publish(*, comparison: dict[str, Any], owners: dict[str, str], event_key: str) -> list[dict[str, Any]]:
    """The source of truth's position at the compared locations, one `inventory.position` webhook
    per customer account owning its SKUs (`owners`: SKU → account code; SKUs nobody owns go to
    the tenant's own endpoints). Lines still under review (beyond tolerance) say so. Publishing
    the same comparison again adds nothing (the event id is the comparison's)."""
    truth_id = comparison.get("truth_snapshot_id")
    truth = InventorySnapshot.objects.filter(pk=truth_id).first() if isinstance(truth_id, int) else None
    if truth is None:
        raise InventoryInvalid("the comparison names no snapshot of the source of truth", "truth_snapshot_id")
    compared = set(comparison.get("locations") or [])
    review = {(item["sku"], item["location"]) for item in comparison.get("variances") or [] if not item.get("within_tolerance")}
    accounts = dict(CustomerAccount.objects.filter(code__in=set(owners.values())).values_list("code", "pk"))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sku, code, quantity, unit in truth.positions.filter(location__code__in=compared).values_list(
        "sku", "location__code", "quantity", "unit"
    ):
        owner = owners.get(sku, "") if owners.get(sku, "") in accounts else ""
        groups[owner].append(
            {"sku": sku, "location": code, "quantity": plain(quantity), "unit": unit, "under_review": (sku, code) in review}
        )
    published = []
    for owner, positions in sorted(groups.items()):
        deliveries = webhook_publish(
            event_type=POSITION_EVENT,
            event_id=f"{event_key}:{owner or 'tenant'}",
            payload={
                "as_of": truth.as_of.isoformat(),
                "source_of_truth": comparison.get("truth"),
                "customer": owner or None,
                "positions": positions,
            },
            customer_account_id=accounts.get(owner) if owner else None,
        )
        published.append({"customer": owner or None, "positions": len(positions), "deliveries": len(deliveries)})
    return published
