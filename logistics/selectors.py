"""Reads of the logistics domain: the lists the workspace and the portal show, and the mapping
tables with their versions."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When

from logistics import mapping_defaults
from logistics.models import (
    OPEN_EXCEPTION,
    Claim,
    ClaimStatus,
    CustomerAccount,
    ExceptionCase,
    FreightInvoice,
    InventoryVariance,
    Location,
    MappingKind,
    MappingVersionStatus,
    Shipment,
    StatusMappingEntry,
    StatusMappingVersion,
    TrackingEvent,
)
from logistics.vocabulary import TrackingStatus
from workflows.calendars import Calendar, calendar_from, tenant_time_zone

__all__ = [
    "MappedCode",
    "MappingChanges",
    "MappingTable",
    "claims_due",
    "customer_accounts_all",
    "exceptions_list",
    "freight_invoices_list",
    "inventory_variances_list",
    "distance_m",
    "location_calendar",
    "location_contains",
    "mapping_changes",
    "mapping_entries",
    "mapping_tables",
    "mapping_translate",
    "mapping_version_get",
    "reference_normalized",
    "shipment_find",
    "shipment_timeline",
    "shipments_list",
]

REFERENCE_FIELDS = ("reference", "bol_number", "pro_number", "load_number", "po_number", "container_number")


def reference_normalized(text: str | None) -> str:
    """References are stored and matched exactly: trimmed, inner spaces dropped, upper-case."""
    return re.sub(r"\s+", "", text or "").upper()


def customer_accounts_all() -> QuerySet[CustomerAccount]:
    return CustomerAccount.objects.order_by("name")


def location_calendar(location: Location) -> Calendar:
    """The location's working time, in its zone (the tenant's when it names none)."""
    return calendar_from(weekly_hours=location.weekly_hours, holidays=location.holidays, time_zone=location.time_zone or tenant_time_zone())


EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)


def distance_m(latitude_a: float, longitude_a: float, latitude_b: float, longitude_b: float) -> float:
    """Great-circle distance in metres (haversine): plenty for geofences of tens of metres up."""
    phi_a, phi_b = math.radians(latitude_a), math.radians(latitude_b)
    d_phi, d_lambda = phi_b - phi_a, math.radians(longitude_b - longitude_a)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi_a) * math.cos(phi_b) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def location_contains(location: Location, latitude: float | Decimal, longitude: float | Decimal) -> bool | None:
    """Whether a position lies inside the location's geofence; None when the location has no position."""
    if location.latitude is None or location.longitude is None:
        return None
    distance = distance_m(float(location.latitude), float(location.longitude), float(latitude), float(longitude))
    return distance <= location.geofence_radius_m


# --- shipments -------------------------------------------------------------------------------


def reference_match(text: str) -> Q:
    """Shipments with `text` as any of their references. The other references' indexes hold the
    non-empty ones only: saying `<> ''` lets the planner use them (without it, every look-up read
    the whole table), and an empty reference matches no shipment's missing one."""
    reference = reference_normalized(text)
    match = Q(reference=text.strip())
    if reference:
        for name in REFERENCE_FIELDS[1:]:
            match |= Q(**{name: reference}) & ~Q(**{name: ""})
    return match


def shipments_list(
    *,
    customer_account: CustomerAccount | None = None,
    status: str = "",
    query: str = "",
    eta_after: datetime | None = None,
    eta_before: datetime | None = None,
    ordering: str = "-created_at",
) -> QuerySet[Shipment]:
    """Shipments for a list page; `query` is an exact reference (ours, BOL, PRO, load, PO or
    container number), which every reference index answers."""
    shipments = Shipment.objects.select_related("customer_account", "origin", "destination")
    if customer_account is not None:
        shipments = shipments.filter(customer_account=customer_account)
    if status:
        shipments = shipments.filter(status=status)
    if query.strip():
        shipments = shipments.filter(reference_match(query))
    if eta_after is not None:
        shipments = shipments.filter(eta__gte=eta_after)
    if eta_before is not None:
        shipments = shipments.filter(eta__lt=eta_before)
    allowed = {"-created_at", "created_at", "eta", "-eta"}
    return shipments.order_by(ordering if ordering in allowed else "-created_at", "-id")


def shipment_find(reference: str, *, customer_account: CustomerAccount | None = None) -> Shipment | None:
    """The one shipment a reference names, or None (also when it names several)."""
    found = list(shipments_list(customer_account=customer_account, query=reference)[:2])
    return found[0] if len(found) == 1 else None


def shipment_timeline(shipment: Shipment) -> QuerySet[TrackingEvent]:
    return TrackingEvent.objects.filter(shipment=shipment).select_related("stop", "mapping_version").order_by("occurred_at", "id")


# --- exceptions, claims, invoices, inventory -------------------------------------------------


def exceptions_list(
    *,
    open_only: bool = True,
    customer_account: CustomerAccount | None = None,
    owner_id: int | None = None,
    type: str = "",  # noqa: A002
) -> QuerySet[ExceptionCase]:
    """Exceptions, the ones due first on top."""
    cases = ExceptionCase.objects.select_related("shipment", "customer_account", "owner")
    if open_only:
        cases = cases.filter(OPEN_EXCEPTION)
    if customer_account is not None:
        cases = cases.filter(customer_account=customer_account)
    if owner_id is not None:
        cases = cases.filter(owner_id=owner_id)
    if type:
        cases = cases.filter(type=type)
    return cases.order_by("sla_due_at", "-opened_at")


def claims_due(*, now: datetime) -> QuerySet[Claim]:
    """Claims whose carrier is late: not acknowledged 30 days after filing, or undecided after 120."""
    late_acknowledgement = Q(status=ClaimStatus.FILED, acknowledge_due_at__lt=now)
    late_decision = Q(status__in=[ClaimStatus.FILED, ClaimStatus.ACKNOWLEDGED], decide_due_at__lt=now)
    return Claim.objects.filter(late_acknowledgement | late_decision).order_by("acknowledge_due_at")


def freight_invoices_list(*, match_status: str = "") -> QuerySet[FreightInvoice]:
    invoices = FreightInvoice.objects.select_related("shipment").annotate(line_count=Count("charges"))
    return (invoices.filter(match_status=match_status) if match_status else invoices).order_by("-received_at")


def inventory_variances_list(*, open_only: bool = True) -> QuerySet[InventoryVariance]:
    variances = InventoryVariance.objects.select_related("location", "reference", "compared")
    return (variances.filter(status="open") if open_only else variances).order_by("location__code", "sku")


# --- status mapping tables -------------------------------------------------------------------


@dataclass(frozen=True)
class MappingTable:
    """One mapping table with its versions, newest first (each with `entry_count`)."""

    kind: str
    label: str
    versions: list[StatusMappingVersion]

    @property
    def active(self) -> StatusMappingVersion | None:
        return next((version for version in self.versions if version.status == MappingVersionStatus.ACTIVE), None)

    @property
    def draft(self) -> StatusMappingVersion | None:
        return next((version for version in self.versions if version.status == MappingVersionStatus.DRAFT), None)


def mapping_tables() -> list[MappingTable]:
    """Every kind of table, in a fixed order, even those without any version yet."""
    versions = StatusMappingVersion.objects.annotate(entry_count=Count("entries")).order_by("kind", "-number")
    by_kind: dict[str, list[StatusMappingVersion]] = {kind: [] for kind in MappingKind.values}
    for version in versions:
        by_kind.setdefault(version.kind, []).append(version)
    return [MappingTable(kind=kind, label=MappingKind(kind).label, versions=by_kind[kind]) for kind in MappingKind.values]


def mapping_version_get(kind: str, number: int) -> StatusMappingVersion | None:
    return StatusMappingVersion.objects.select_related("based_on").filter(kind=kind, number=number).first()


def mapping_entries(version: StatusMappingVersion, *, query: str = "", status: str = "") -> QuerySet[StatusMappingEntry]:
    """A version's codes; `query` matches a code exactly or words of its meaning."""
    entries = StatusMappingEntry.objects.filter(version=version)
    if query.strip():
        text = query.strip()
        entries = entries.filter(Q(code__iexact=text) | Q(description__icontains=text))
    if status:
        entries = entries.filter(Q(status=status) | Q(responsible=status))
    return entries.order_by("code")


@dataclass(frozen=True)
class MappingChanges:
    added: list[str]
    changed: list[str]
    removed: list[str]

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def mapping_changes(version: StatusMappingVersion, against: StatusMappingVersion | None) -> MappingChanges:
    """The codes `version` adds, changes and removes compared with `against`."""
    fields = ("description", "status", "estimate", "responsible", "signal")

    def rows(of: StatusMappingVersion | None) -> dict[str, tuple[Any, ...]]:
        if of is None:
            return {}
        return {row[0]: row[1:] for row in StatusMappingEntry.objects.filter(version=of).values_list("code", *fields)}

    new, old = rows(version), rows(against)
    return MappingChanges(
        added=sorted(set(new) - set(old)),
        changed=sorted(code for code in set(new) & set(old) if new[code] != old[code]),
        removed=sorted(set(old) - set(new)),
    )


@dataclass(frozen=True)
class MappedCode:
    status: str
    estimate: bool
    signal: str
    description: str
    version: StatusMappingVersion | None
    found: bool


def mapping_translate(kind: str, code: str) -> MappedCode:
    """`code` through the active version of the `kind` table; an unknown code is `unknown`.
    One query for a known code (the hot path of every tracking event), two for an unknown one."""
    code = mapping_defaults.code_normalized(kind, code)
    entry = (
        StatusMappingEntry.objects.select_related("version")
        .filter(version__kind=kind, version__status=MappingVersionStatus.ACTIVE, code=code)
        .first()
    )
    if entry is None:
        version = StatusMappingVersion.objects.filter(kind=kind, status=MappingVersionStatus.ACTIVE).first()
        return MappedCode(TrackingStatus.UNKNOWN, False, "", "", version, False)
    return MappedCode(entry.status or TrackingStatus.UNKNOWN, entry.estimate, entry.signal, entry.description, entry.version, True)


# --- the exception queue and its counts (workspace: /exceptions/ and the home page) -----------

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True)
class ExceptionQueueFilter:
    """What the exception queue is narrowed to. `status` "" means still to handle (open or in
    progress); `owner_id` -1 means nobody owns it yet."""

    status: str = ""
    type: str = ""
    severity: str = ""
    owner_id: int | None = None
    overdue_at: datetime | None = None  # due before this moment and not closed
    query: str = ""  # a shipment reference (any of its references), or words of the reason


def exceptions_queue(filter: ExceptionQueueFilter) -> QuerySet[ExceptionCase]:  # noqa: A002 - the selectors' word
    """The exception queue: most severe first, then the ones due soonest (no due time last)."""

    cases = ExceptionCase.objects.select_related("shipment", "customer_account", "owner")
    cases = cases.filter(status=filter.status) if filter.status else cases.filter(OPEN_EXCEPTION)
    if filter.type:
        cases = cases.filter(type=filter.type)
    if filter.severity:
        cases = cases.filter(severity=filter.severity)
    if filter.owner_id == -1:
        cases = cases.filter(owner__isnull=True)
    elif filter.owner_id is not None:
        cases = cases.filter(owner_id=filter.owner_id)
    if filter.overdue_at is not None:
        cases = cases.filter(OPEN_EXCEPTION, sla_due_at__lt=filter.overdue_at)
    if query := filter.query.strip():
        reference = reference_normalized(query)
        by_reference = Q()
        for name in REFERENCE_FIELDS:
            by_reference |= Q(**{f"shipment__{name}": reference})
        cases = cases.filter(by_reference | Q(shipment__reference__iexact=query) | Q(reason__icontains=query))
    rank = Case(*(When(severity=value, then=Value(number)) for value, number in SEVERITY_RANK.items()), output_field=IntegerField())
    return cases.annotate(severity_rank=rank).order_by("-severity_rank", F("sla_due_at").asc(nulls_last=True), "pk")


@dataclass(frozen=True)
class ExceptionCounts:
    """Open exceptions (open or in progress) by severity, how many are overdue and how many `owner` holds."""

    by_severity: dict[str, int]
    overdue: int
    mine: int
    unassigned: int

    @property
    def total(self) -> int:
        return sum(self.by_severity.values())


def exception_counts(*, owner_id: int | None, now: datetime) -> ExceptionCounts:
    """One aggregate query over the open cases, for the operations home page."""
    counts = {value: Count("pk", filter=Q(severity=value)) for value in SEVERITY_RANK}
    row = ExceptionCase.objects.filter(OPEN_EXCEPTION).aggregate(
        **counts,
        overdue=Count("pk", filter=Q(sla_due_at__lt=now)),
        mine=Count("pk", filter=Q(owner_id=owner_id or 0)),
        unassigned=Count("pk", filter=Q(owner__isnull=True)),
    )
    return ExceptionCounts(
        by_severity={value: row[value] for value in SEVERITY_RANK},
        overdue=row["overdue"],
        mine=row["mine"],
        unassigned=row["unassigned"],
    )
