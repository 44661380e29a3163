"""The logistics domain of one tenant: who and where, what is ordered and moved, what happened on
the way, what went wrong, what it cost, and the rules and mappings that judge it.

Conventions: money is a Decimal beside the row's `currency` (ISO 4217); weights are a Decimal
beside the row's `weight_unit`; references (BOL, PRO, load, PO, container) are stored trimmed
and upper-cased by the services so an exact lookup is an index look-up. The current status and
ETA of a shipment are derived from its tracking events (see `logistics.vocabulary`); the
services are the only writers.
"""

from __future__ import annotations

import posixpath
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_noop

from logistics.vocabulary import Signal, TrackingStatus
from tenants.db import connection

CURRENCY_DEFAULT = "USD"


class WeightUnit(models.TextChoices):
    LB = "lb", gettext_noop("Pounds")
    KG = "kg", gettext_noop("Kilograms")


# --- parties and locations -------------------------------------------------------------------


class ServiceTier(models.TextChoices):
    STANDARD = "standard", gettext_noop("Standard")
    PRIORITY = "priority", gettext_noop("Priority")
    CRITICAL = "critical", gettext_noop("Critical")


class CustomerAccount(models.Model):
    """A shipper the tenant serves; its users see only its own shipments."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    service_tier = models.CharField(max_length=20, choices=ServiceTier.choices, default=ServiceTier.STANDARD)
    currency = models.CharField(max_length=3, default=CURRENCY_DEFAULT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PartyKind(models.TextChoices):
    SHIPPER = "shipper", gettext_noop("Shipper")
    CONSIGNEE = "consignee", gettext_noop("Consignee")
    CARRIER = "carrier", gettext_noop("Carrier")
    BILL_TO = "bill_to", gettext_noop("Bill-to")
    WAREHOUSE = "warehouse", gettext_noop("Warehouse")
    BROKER = "broker", gettext_noop("Broker")
    OTHER = "other", gettext_noop("Other")


class Party(models.Model):
    """A company in a shipment's story; carriers carry their SCAC."""

    kind = models.CharField(max_length=20, choices=PartyKind.choices)
    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=160)
    scac = models.CharField("SCAC", max_length=4, blank=True, db_index=True)
    customer_account = models.ForeignKey(CustomerAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="parties")
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    external_ids = models.JSONField(default=dict, blank=True)  # {"erp": "C-1001", "gln": "…"}
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "parties"
        constraints = [models.UniqueConstraint(fields=["kind", "code"], name="party_kind_code_unique")]

    def __str__(self) -> str:
        return self.name


def standard_dock_hours() -> dict[str, list[list[str]]]:
    """Mon–Fri 08:00–17:00, in the shape of `workflows.calendars` (weekday → [[open, close]])."""
    return {day: [["08:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")} | {"sat": [], "sun": []}


class Location(models.Model):
    """A place freight is picked up, delivered or stored: its address, its clock (time zone,
    working hours and holidays in the shapes `workflows.calendars` counts in) and a circular
    geofence that telemetry positions are tested against."""

    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=160)
    party = models.ForeignKey(Party, null=True, blank=True, on_delete=models.SET_NULL, related_name="locations")
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=100, blank=True)  # state or province
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True)  # ISO 3166-1 alpha-2
    time_zone = models.CharField(max_length=64, blank=True)  # IANA; empty = the tenant's
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    geofence_radius_m = models.PositiveIntegerField(default=500)
    weekly_hours = models.JSONField(default=standard_dock_hours)
    holidays = models.JSONField(default=list, blank=True)  # [{"date": "2026-12-25", "name": "Christmas"}]
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# --- orders ------------------------------------------------------------------------------------


class OrderStatus(models.TextChoices):
    RECEIVED = "received", gettext_noop("Received")
    VALIDATED = "validated", gettext_noop("Validated")
    ON_HOLD = "on_hold", gettext_noop("On hold")
    REJECTED = "rejected", gettext_noop("Rejected")
    RELEASED = "released", gettext_noop("Released")
    SHIPPED = "shipped", gettext_noop("Shipped")
    CANCELLED = "cancelled", gettext_noop("Cancelled")


class Order(models.Model):
    """A customer's order to move goods, as its ERP sent it."""

    customer_account = models.ForeignKey(CustomerAccount, on_delete=models.PROTECT, related_name="orders")
    number = models.CharField(max_length=60)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.RECEIVED)
    status_reason = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=40, blank=True)  # api, webhook, edi_940, portal
    po_number = models.CharField("PO number", max_length=60, blank=True)
    ship_from = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    ship_to = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    requested_pickup_at = models.DateTimeField(null=True, blank=True)
    requested_delivery_at = models.DateTimeField(null=True, blank=True)
    credit_hold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["customer_account", "number"], name="order_number_unique_per_customer")]
        indexes = [
            models.Index(fields=["customer_account", "status", "-created_at"], name="order_customer_status"),
            models.Index(fields=["status", "-created_at"], name="order_status_created"),
            models.Index(fields=["po_number"], name="order_po", condition=~Q(po_number="")),
            models.Index(fields=["number"], name="order_number"),  # reference search across customers
        ]

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    line_number = models.PositiveIntegerField()
    sku = models.CharField("SKU", max_length=60)
    description = models.CharField(max_length=200, blank=True)
    quantity = models.DecimalField(max_digits=14, decimal_places=3)
    unit = models.CharField(max_length=20, default="each")  # each, case, pallet…
    weight = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    weight_unit = models.CharField(max_length=2, choices=WeightUnit.choices, default=WeightUnit.LB)

    class Meta:
        ordering = ["order", "line_number"]
        constraints = [models.UniqueConstraint(fields=["order", "line_number"], name="order_line_number_unique")]

    def __str__(self) -> str:
        return f"{self.order_id}/{self.line_number} {self.sku}"


# --- shipments, stops and tracking -----------------------------------------------------------


class TransportMode(models.TextChoices):
    FTL = "ftl", gettext_noop("Full truckload")
    LTL = "ltl", gettext_noop("Less than truckload")
    PARCEL = "parcel", gettext_noop("Parcel")
    INTERMODAL = "intermodal", gettext_noop("Intermodal")
    DRAYAGE = "drayage", gettext_noop("Drayage")
    OCEAN = "ocean", gettext_noop("Ocean")
    AIR = "air", gettext_noop("Air")
    RAIL = "rail", gettext_noop("Rail")


class TenderStatus(models.TextChoices):
    NOT_TENDERED = "not_tendered", gettext_noop("Not tendered")
    TENDERED = "tendered", gettext_noop("Tendered")
    ACCEPTED = "accepted", gettext_noop("Accepted")
    DECLINED = "declined", gettext_noop("Declined")
    EXPIRED = "expired", gettext_noop("Expired")
    CANCELLED = "cancelled", gettext_noop("Cancelled")


class Shipment(models.Model):
    """Freight moving for a customer account. `status` and `eta` are derived from the tracking
    events: `status_event` and `eta_event` are the events that set them (null while they are the
    planned values), which is what a later-arriving event is compared with."""

    reference = models.CharField(max_length=60, unique=True)  # the tenant's own shipment number
    customer_account = models.ForeignKey(CustomerAccount, on_delete=models.PROTECT, related_name="shipments")
    orders = models.ManyToManyField(Order, blank=True, related_name="shipments")
    mode = models.CharField(max_length=20, choices=TransportMode.choices, default=TransportMode.FTL)
    carrier = models.ForeignKey(Party, null=True, blank=True, on_delete=models.PROTECT, related_name="carried_shipments")
    carrier_scac = models.CharField("carrier SCAC", max_length=4, blank=True)
    bol_number = models.CharField("BOL number", max_length=60, blank=True)
    pro_number = models.CharField("PRO number", max_length=60, blank=True)
    load_number = models.CharField(max_length=60, blank=True)
    po_number = models.CharField("PO number", max_length=60, blank=True)
    container_number = models.CharField(max_length=20, blank=True)
    tender_status = models.CharField(max_length=20, choices=TenderStatus.choices, default=TenderStatus.NOT_TENDERED)
    origin = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    destination = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    weight_unit = models.CharField(max_length=2, choices=WeightUnit.choices, default=WeightUnit.LB)
    planned_weight = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    actual_weight = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    currency = models.CharField(max_length=3, default=CURRENCY_DEFAULT)
    planned_rate = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    actual_rate = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    status = models.CharField(max_length=30, choices=TrackingStatus.choices, default=TrackingStatus.PENDING)
    status_at = models.DateTimeField(null=True, blank=True)  # when the status-setting event occurred
    status_event = models.ForeignKey("TrackingEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    original_eta = models.DateTimeField(null=True, blank=True)
    original_eta_at = models.DateTimeField(null=True, blank=True)  # when that first estimate was made; null = planned
    eta = models.DateTimeField(null=True, blank=True)
    eta_at = models.DateTimeField(null=True, blank=True)  # when the estimate that set it was made; null = planned
    eta_event = models.ForeignKey("TrackingEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer_account", "status", "-created_at"], name="shipment_customer_status"),
            models.Index(fields=["customer_account", "-created_at"], name="shipment_customer_created"),
            models.Index(fields=["customer_account", "eta"], name="shipment_customer_eta"),
            models.Index(fields=["status", "eta"], name="shipment_status_eta"),
            models.Index(fields=["eta", "id"], name="shipment_eta"),  # staff lists by ETA: keyset pages both ways, ties (no ETA) by id
            models.Index(fields=["-created_at"], name="shipment_created"),
            models.Index(fields=["bol_number"], name="shipment_bol", condition=~Q(bol_number="")),
            models.Index(fields=["pro_number"], name="shipment_pro", condition=~Q(pro_number="")),
            models.Index(fields=["load_number"], name="shipment_load", condition=~Q(load_number="")),
            models.Index(fields=["po_number"], name="shipment_po", condition=~Q(po_number="")),
            models.Index(fields=["container_number"], name="shipment_container", condition=~Q(container_number="")),
            models.Index(fields=["carrier_scac", "-created_at"], name="shipment_carrier"),
        ]

    def __str__(self) -> str:
        return self.reference


class StopKind(models.TextChoices):
    PICKUP = "pickup", gettext_noop("Pickup")
    DELIVERY = "delivery", gettext_noop("Delivery")


class Stop(models.Model):
    """A call at a location: the promised window, and when the truck actually came and went."""

    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="stops")
    sequence = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=StopKind.choices)
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="stops")
    appointment_start = models.DateTimeField(null=True, blank=True)
    appointment_end = models.DateTimeField(null=True, blank=True)
    arrived_at = models.DateTimeField(null=True, blank=True)
    departed_at = models.DateTimeField(null=True, blank=True)
    dwell = models.DurationField(null=True, blank=True)  # departed − arrived, once both are known

    class Meta:
        ordering = ["shipment", "sequence"]
        constraints = [models.UniqueConstraint(fields=["shipment", "sequence"], name="stop_sequence_unique")]

    def __str__(self) -> str:
        return f"{self.shipment_id} stop {self.sequence} ({self.kind})"


class EventSource(models.TextChoices):
    X12_214 = "x12_214", gettext_noop("EDI 214")
    CARRIER_API = "carrier_api", gettext_noop("Carrier API")
    TELEMETRY = "telemetry", gettext_noop("Telemetry")
    API = "api", gettext_noop("Baton API")
    MANUAL = "manual", gettext_noop("Entered by a person")
    WORKFLOW = "workflow", gettext_noop("Workflow")


class TrackingEvent(models.Model):
    """One report about a shipment, kept as it came (raw code, reason, source) beside its
    normalized status. `applied` says whether it changed the shipment's current status."""

    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=30, choices=TrackingStatus.choices)
    raw_code = models.CharField(max_length=40, blank=True)
    raw_reason = models.CharField(max_length=40, blank=True)
    reason_description = models.CharField(max_length=200, blank=True)
    signal = models.CharField(max_length=20, choices=Signal.choices, blank=True)
    source = models.CharField(max_length=20, choices=EventSource.choices)
    mapping_version = models.ForeignKey("StatusMappingVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    estimate = models.BooleanField(default=False)
    eta = models.DateTimeField(null=True, blank=True)
    dedupe_key = models.CharField(max_length=200)
    stop = models.ForeignKey(Stop, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    location_text = models.CharField(max_length=200, blank=True)
    message = models.CharField(max_length=500, blank=True)
    applied = models.BooleanField(default=False)

    class Meta:
        ordering = ["shipment", "occurred_at", "id"]
        constraints = [models.UniqueConstraint(fields=["shipment", "dedupe_key"], name="tracking_event_dedupe_unique")]
        indexes = [
            models.Index(fields=["shipment", "occurred_at"], name="tracking_event_timeline"),
            models.Index(fields=["status", "-occurred_at"], name="tracking_event_status"),
        ]

    def __str__(self) -> str:
        return f"{self.shipment_id} {self.status} at {self.occurred_at:%Y-%m-%d %H:%M}"


# --- exceptions ------------------------------------------------------------------------------


class ExceptionType(models.TextChoices):
    DELAY = "delay", gettext_noop("Delay")
    MISSED_PICKUP = "missed_pickup", gettext_noop("Missed pickup")
    MISSED_DELIVERY = "missed_delivery", gettext_noop("Missed delivery")
    ROUTE_DEVIATION = "route_deviation", gettext_noop("Route deviation")
    TEMPERATURE_EXCURSION = "temperature_excursion", gettext_noop("Temperature excursion")
    DAMAGE = "damage", gettext_noop("Damage")
    SHORTAGE = "shortage", gettext_noop("Shortage")
    TENDER_DECLINED = "tender_declined", gettext_noop("Tender declined")
    ORDER_INVALID = "order_invalid", gettext_noop("Order failed validation")
    INVENTORY_VARIANCE = "inventory_variance", gettext_noop("Inventory variance")
    POD_INCOMPLETE = "pod_incomplete", gettext_noop("Proof of delivery incomplete")
    INVOICE_MISMATCH = "invoice_mismatch", gettext_noop("Invoice mismatch")
    OTHER = "other", gettext_noop("Other")


class Severity(models.TextChoices):
    LOW = "low", gettext_noop("Low")
    MEDIUM = "medium", gettext_noop("Medium")
    HIGH = "high", gettext_noop("High")
    CRITICAL = "critical", gettext_noop("Critical")


class ExceptionStatus(models.TextChoices):
    OPEN = "open", gettext_noop("Open")
    IN_PROGRESS = "in_progress", gettext_noop("In progress")
    CLOSED = "closed", gettext_noop("Closed")


class RootCause(models.TextChoices):
    CARRIER = "carrier", gettext_noop("Carrier")
    SHIPPER = "shipper", gettext_noop("Shipper")
    CONSIGNEE = "consignee", gettext_noop("Consignee")
    WEATHER = "weather", gettext_noop("Weather or natural disaster")
    TRAFFIC = "traffic", gettext_noop("Traffic or road conditions")
    EQUIPMENT = "equipment", gettext_noop("Equipment")
    CUSTOMS = "customs", gettext_noop("Customs")
    DATA = "data", gettext_noop("Wrong or missing data")
    SYSTEM = "system", gettext_noop("System or integration")
    NO_FAULT = "no_fault", gettext_noop("Not an exception after all")
    OTHER = "other", gettext_noop("Other")


OPEN_EXCEPTION = Q(status__in=[ExceptionStatus.OPEN, ExceptionStatus.IN_PROGRESS])


class ExceptionCase(models.Model):
    """Something that went wrong and needs a person: opened by a workflow or a person, owned,
    escalated as its SLA due time nears, and closed only with its root cause."""

    type = models.CharField(max_length=30, choices=ExceptionType.choices)
    reason = models.CharField(max_length=500)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.MEDIUM)
    status = models.CharField(max_length=20, choices=ExceptionStatus.choices, default=ExceptionStatus.OPEN)
    customer_account = models.ForeignKey(CustomerAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="exceptions")
    shipment = models.ForeignKey(Shipment, null=True, blank=True, on_delete=models.CASCADE, related_name="exceptions")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.CASCADE, related_name="exceptions")
    sla_due_at = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    escalation_level = models.PositiveSmallIntegerField(default=0)
    root_cause = models.CharField(max_length=20, choices=RootCause.choices, blank=True)
    resolution = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)  # what the detector saw: promised vs reported, readings…
    opened_by_email = models.CharField(max_length=254)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # A detector that fires twice finds the case it opened instead of opening another.
            models.UniqueConstraint(
                fields=["shipment", "type"],
                condition=OPEN_EXCEPTION & Q(shipment__isnull=False),
                name="one_open_exception_per_shipment_type",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "sla_due_at"], name="exception_status_due"),
            models.Index(fields=["customer_account", "status", "-opened_at"], name="exception_customer_status"),
            models.Index(fields=["owner", "status"], name="exception_owner_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} #{self.pk}"


# --- documents -------------------------------------------------------------------------------


class DocumentKind(models.TextChoices):
    POD = "pod", gettext_noop("Proof of delivery")
    BOL = "bol", gettext_noop("Bill of lading")
    RATE_CONFIRMATION = "rate_confirmation", gettext_noop("Rate confirmation")
    RECEIPT = "receipt", gettext_noop("Receipt")
    INVOICE = "invoice", gettext_noop("Invoice")
    OTHER = "other", gettext_noop("Other")


def document_upload_to(document: Document, filename: str) -> str:
    """Files under the tenant's schema and the content hash, so tenants never share a path."""
    extension = posixpath.splitext(filename)[1].lower()[:10]
    return f"documents/{connection.schema_name}/{document.kind}/{document.sha256[:2]}/{document.sha256}{extension}"


class Document(models.Model):
    """A paper of the shipment (POD, BOL, rate confirmation, receipt): the file in Django's
    storage, its SHA-256, who signed it and the fields read from it."""

    kind = models.CharField(max_length=30, choices=DocumentKind.choices)
    shipment = models.ForeignKey(Shipment, null=True, blank=True, on_delete=models.CASCADE, related_name="documents")
    file = models.FileField(upload_to=document_upload_to, max_length=300)
    original_name = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    source = models.CharField(max_length=30, blank=True)  # upload, email, api, edi
    signed_by = models.CharField(max_length=120, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    extracted_fields = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["shipment", "kind", "sha256"], name="document_once_per_shipment")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.original_name or self.sha256[:12]}"


# --- freight invoices and claims -------------------------------------------------------------


class MatchStatus(models.TextChoices):
    UNMATCHED = "unmatched", gettext_noop("Not matched yet")
    MATCHED = "matched", gettext_noop("Matched")
    WITHIN_TOLERANCE = "within_tolerance", gettext_noop("Matched within tolerance")
    MISMATCH = "mismatch", gettext_noop("Mismatch")
    DISPUTED = "disputed", gettext_noop("Disputed")
    APPROVED = "approved", gettext_noop("Approved")


class FreightInvoice(models.Model):
    """A carrier's bill (EDI 210, API or upload), to be matched with the tender and the POD."""

    carrier = models.ForeignKey(Party, null=True, blank=True, on_delete=models.PROTECT, related_name="freight_invoices")
    carrier_scac = models.CharField("carrier SCAC", max_length=4, blank=True)
    invoice_number = models.CharField(max_length=60)
    shipment = models.ForeignKey(Shipment, null=True, blank=True, on_delete=models.PROTECT, related_name="freight_invoices")
    invoice_date = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3, default=CURRENCY_DEFAULT)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2)
    match_status = models.CharField(max_length=20, choices=MatchStatus.choices, default=MatchStatus.UNMATCHED)
    match_details = models.JSONField(default=dict, blank=True)  # the itemised differences of the last match
    source = models.CharField(max_length=30, blank=True)  # edi_210, api, upload
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["carrier_scac", "invoice_number"], name="freight_invoice_number_unique")]
        indexes = [models.Index(fields=["match_status", "-received_at"], name="freight_invoice_match")]

    def __str__(self) -> str:
        return f"{self.carrier_scac or '—'} {self.invoice_number}"


class ChargeCode(models.TextChoices):
    LINEHAUL = "linehaul", gettext_noop("Linehaul")
    FUEL = "fuel", gettext_noop("Fuel surcharge")
    DETENTION = "detention", gettext_noop("Detention")
    LUMPER = "lumper", gettext_noop("Lumper")
    LAYOVER = "layover", gettext_noop("Layover")
    LIFTGATE = "liftgate", gettext_noop("Liftgate")
    ACCESSORIAL = "accessorial", gettext_noop("Other accessorial")
    TAX = "tax", gettext_noop("Tax")
    DISCOUNT = "discount", gettext_noop("Discount")
    OTHER = "other", gettext_noop("Other")


class ChargeLine(models.Model):
    invoice = models.ForeignKey(FreightInvoice, on_delete=models.CASCADE, related_name="charges")
    line_number = models.PositiveIntegerField()
    charge_code = models.CharField(max_length=20, choices=ChargeCode.choices)
    raw_code = models.CharField(max_length=20, blank=True)  # e.g. the 210's L1-08 code
    description = models.CharField(max_length=200, blank=True)
    quantity = models.DecimalField(max_digits=14, decimal_places=3, default=Decimal("1"))
    rate = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["invoice", "line_number"]
        constraints = [models.UniqueConstraint(fields=["invoice", "line_number"], name="charge_line_number_unique")]

    def __str__(self) -> str:
        return f"{self.invoice_id}/{self.line_number} {self.charge_code} {self.amount}"


class ClaimKind(models.TextChoices):
    DAMAGE = "damage", gettext_noop("Damage")
    SHORTAGE = "shortage", gettext_noop("Shortage")
    LOSS = "loss", gettext_noop("Loss")
    DELAY = "delay", gettext_noop("Delay")
    OTHER = "other", gettext_noop("Other")


class ClaimStatus(models.TextChoices):
    FILED = "filed", gettext_noop("Filed")
    ACKNOWLEDGED = "acknowledged", gettext_noop("Acknowledged")
    DECIDED = "decided", gettext_noop("Decided (settlement offered)")
    PAID = "paid", gettext_noop("Paid")
    DENIED = "denied", gettext_noop("Denied")


# 49 CFR 1005: a carrier acknowledges a claim within 30 days of receiving it and pays, declines
# or offers a settlement within 120 days.
CARMACK_ACKNOWLEDGE_WITHIN = timedelta(days=30)
CARMACK_DECIDE_WITHIN = timedelta(days=120)


class Claim(models.Model):
    """A cargo claim against a carrier, with its Carmack clock."""

    number = models.CharField(max_length=40, unique=True)
    kind = models.CharField(max_length=20, choices=ClaimKind.choices)
    status = models.CharField(max_length=20, choices=ClaimStatus.choices, default=ClaimStatus.FILED)
    shipment = models.ForeignKey(Shipment, on_delete=models.PROTECT, related_name="claims")
    customer_account = models.ForeignKey(CustomerAccount, on_delete=models.PROTECT, related_name="claims")
    carrier_scac = models.CharField("carrier SCAC", max_length=4, blank=True)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, default=CURRENCY_DEFAULT)
    amount_claimed = models.DecimalField(max_digits=14, decimal_places=2)
    amount_settled = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    checklist = models.JSONField(default=dict, blank=True)  # document kind → present?
    filed_at = models.DateTimeField()
    acknowledge_due_at = models.DateTimeField()
    decide_due_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    filed_by_email = models.CharField(max_length=254)

    class Meta:
        ordering = ["-filed_at"]
        indexes = [
            models.Index(fields=["status", "acknowledge_due_at"], name="claim_status_ack_due"),
            models.Index(fields=["status", "decide_due_at"], name="claim_status_decide_due"),
            models.Index(fields=["customer_account", "-filed_at"], name="claim_customer_filed"),
        ]

    def __str__(self) -> str:
        return self.number


# --- inventory -------------------------------------------------------------------------------


class InventorySnapshot(models.Model):
    """What one system (ERP, WMS, the customer's) says is on hand, as of a moment."""

    source_system = models.CharField(max_length=40)  # erp, wms, customer… or a connection key
    as_of = models.DateTimeField()
    received_at = models.DateTimeField()
    customer_account = models.ForeignKey(CustomerAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    dedupe_key = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-as_of"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "dedupe_key"], condition=~Q(dedupe_key=""), name="inventory_snapshot_dedupe_unique"
            )
        ]
        indexes = [models.Index(fields=["source_system", "-as_of"], name="inventory_snapshot_latest")]

    def __str__(self) -> str:
        return f"{self.source_system} as of {self.as_of:%Y-%m-%d %H:%M}"


class InventoryPosition(models.Model):
    snapshot = models.ForeignKey(InventorySnapshot, on_delete=models.CASCADE, related_name="positions")
    sku = models.CharField("SKU", max_length=60)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="inventory_positions")
    quantity = models.DecimalField(max_digits=14, decimal_places=3)
    unit = models.CharField(max_length=20, default="each")

    class Meta:
        ordering = ["snapshot", "location", "sku"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "location", "sku"], name="inventory_position_unique")]
        indexes = [models.Index(fields=["sku", "location"], name="inventory_position_sku")]

    def __str__(self) -> str:
        return f"{self.sku} @ {self.location_id}: {self.quantity}"


class VarianceStatus(models.TextChoices):
    OPEN = "open", gettext_noop("Open")
    WITHIN_TOLERANCE = "within_tolerance", gettext_noop("Within tolerance")
    ADJUSTED = "adjusted", gettext_noop("Adjusted")
    ESCALATED = "escalated", gettext_noop("Escalated")


class InventoryVariance(models.Model):
    """A difference per SKU and location between a reference snapshot and another system's."""

    sku = models.CharField("SKU", max_length=60)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="inventory_variances")
    reference = models.ForeignKey(InventorySnapshot, on_delete=models.CASCADE, related_name="+")
    compared = models.ForeignKey(InventorySnapshot, on_delete=models.CASCADE, related_name="+")
    reference_quantity = models.DecimalField(max_digits=14, decimal_places=3)
    compared_quantity = models.DecimalField(max_digits=14, decimal_places=3)
    difference = models.DecimalField(max_digits=14, decimal_places=3)  # compared − reference
    within_tolerance = models.BooleanField()
    status = models.CharField(max_length=20, choices=VarianceStatus.choices, default=VarianceStatus.OPEN)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["location", "sku"]
        constraints = [models.UniqueConstraint(fields=["reference", "compared", "location", "sku"], name="inventory_variance_unique")]
        indexes = [models.Index(fields=["status", "-computed_at"], name="inventory_variance_status")]

    def __str__(self) -> str:
        return f"{self.sku} @ {self.location_id}: {self.difference:+}"


# --- policies and rules ----------------------------------------------------------------------


class SlaPolicy(models.Model):
    """How fast exceptions of a customer tier must be handled: an exception's SLA due time is
    `resolve_within` after it opens, and it escalates every `escalate_every` it stays open."""

    service_tier = models.CharField(max_length=20, choices=ServiceTier.choices, unique=True)
    respond_within = models.DurationField(default=timedelta(hours=2))
    resolve_within = models.DurationField(default=timedelta(hours=24))
    escalate_every = models.DurationField(default=timedelta(hours=4))
    on_time_grace = models.DurationField(default=timedelta(minutes=30))  # late by more than this = not on time
    business_time = models.BooleanField(default=False)  # count in the tenant's business calendar

    class Meta:
        ordering = ["service_tier"]
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return f"SLA {self.service_tier}"


class CarrierRule(models.Model):
    """What Baton accepts from a carrier when matching its invoices; the rule with an empty SCAC
    applies to carriers without their own."""

    scac = models.CharField("SCAC", max_length=4, blank=True, unique=True)
    carrier = models.ForeignKey(Party, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    currency = models.CharField(max_length=3, default=CURRENCY_DEFAULT)
    amount_tolerance = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("25.00"))
    percent_tolerance = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("2.00"))
    detention_free_time = models.DurationField(default=timedelta(hours=2))
    detention_rate_per_hour = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    lumper_needs_receipt = models.BooleanField(default=True)
    pod_needs_signature = models.BooleanField(default=True)

    class Meta:
        ordering = ["scac"]

    def __str__(self) -> str:
        return self.scac or "default carrier rule"


# --- status mapping tables -------------------------------------------------------------------


class MappingKind(models.TextChoices):
    X12_214_STATUS = "x12_214_status", gettext_noop("X12 214 shipment status codes (AT7-01)")
    X12_214_REASON = "x12_214_reason", gettext_noop("X12 214 status reason codes (AT7-02)")
    CARRIER_API_STATUS = "carrier_api_status", gettext_noop("Carrier API tracking statuses")


class MappingVersionStatus(models.TextChoices):
    DRAFT = "draft", gettext_noop("Draft")
    ACTIVE = "active", gettext_noop("Active")
    RETIRED = "retired", gettext_noop("Retired")


class Responsibility(models.TextChoices):
    NONE = "none", gettext_noop("No one (normal)")
    CARRIER = "carrier", gettext_noop("Carrier")
    SHIPPER = "shipper", gettext_noop("Shipper")
    CONSIGNEE = "consignee", gettext_noop("Consignee")
    CUSTOMS = "customs", gettext_noop("Customs or authorities")
    WEATHER = "weather", gettext_noop("Weather or force majeure")
    OTHER = "other", gettext_noop("Other")


class StatusMappingVersion(models.Model):
    """One version of a mapping table. Drafts are edited; publishing makes a version active
    (the previous active one retires) and, from then on, its entries and content never change
    – the database refuses it. One version per kind is active; events record which one
    translated them."""

    kind = models.CharField(max_length=30, choices=MappingKind.choices)
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=MappingVersionStatus.choices, default=MappingVersionStatus.DRAFT)
    based_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    platform_release = models.CharField(max_length=20, blank=True)  # the defaults' release it was seeded from
    notes = models.TextField(blank=True)
    created_by_email = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)
    published_by_email = models.CharField(max_length=254, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "number"], name="mapping_version_number_unique"),
            models.UniqueConstraint(fields=["kind"], condition=Q(status="active"), name="one_active_mapping_version_per_kind"),
            models.UniqueConstraint(fields=["kind"], condition=Q(status="draft"), name="one_draft_mapping_version_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} v{self.number} ({self.status})"


class StatusMappingEntry(models.Model):
    """A code in a partner's dialect and what it means in Baton's: a normalized status (status
    tables) or who is responsible (reason tables), and the signal exceptions look for."""

    version = models.ForeignKey(StatusMappingVersion, on_delete=models.CASCADE, related_name="entries")
    code = models.CharField(max_length=40)
    description = models.CharField(max_length=200)
    status = models.CharField(max_length=30, choices=TrackingStatus.choices, blank=True)
    estimate = models.BooleanField(default=False)
    responsible = models.CharField(max_length=20, choices=Responsibility.choices, blank=True)
    signal = models.CharField(max_length=20, choices=Signal.choices, blank=True)

    class Meta:
        ordering = ["version", "code"]
        constraints = [models.UniqueConstraint(fields=["version", "code"], name="mapping_entry_code_unique")]

    def __str__(self) -> str:
        return f"{self.code} → {self.status or self.responsible}"


# --- customer milestone notifications ------------------------------------------------------


class Milestone(models.TextChoices):
    """What a customer can subscribe to: a tracking status the shipment reached, a delay the
    detector found, or an exception opened on the shipment."""

    TENDER_ACCEPTED = TrackingStatus.TENDER_ACCEPTED.value, TrackingStatus.TENDER_ACCEPTED.label
    ARRIVED_AT_PICKUP = TrackingStatus.ARRIVED_AT_PICKUP.value, TrackingStatus.ARRIVED_AT_PICKUP.label
    PICKED_UP = TrackingStatus.PICKED_UP.value, TrackingStatus.PICKED_UP.label
    IN_TRANSIT = TrackingStatus.IN_TRANSIT.value, TrackingStatus.IN_TRANSIT.label
    ON_HOLD = TrackingStatus.ON_HOLD.value, TrackingStatus.ON_HOLD.label
    DELIVERY_DELAYED = TrackingStatus.DELIVERY_DELAYED.value, TrackingStatus.DELIVERY_DELAYED.label
    OUT_FOR_DELIVERY = TrackingStatus.OUT_FOR_DELIVERY.value, TrackingStatus.OUT_FOR_DELIVERY.label
    DELIVERY_FAILED = TrackingStatus.DELIVERY_FAILED.value, TrackingStatus.DELIVERY_FAILED.label
    READY_FOR_PICKUP = TrackingStatus.READY_FOR_PICKUP.value, TrackingStatus.READY_FOR_PICKUP.label
    ARRIVED_AT_DELIVERY = TrackingStatus.ARRIVED_AT_DELIVERY.value, TrackingStatus.ARRIVED_AT_DELIVERY.label
    DELIVERED = TrackingStatus.DELIVERED.value, TrackingStatus.DELIVERED.label
    RETURN_TO_SENDER = TrackingStatus.RETURN_TO_SENDER.value, TrackingStatus.RETURN_TO_SENDER.label
    CANCELLED = TrackingStatus.CANCELLED.value, TrackingStatus.CANCELLED.label
    DELAY = "delay", gettext_noop("Delay detected")
    EXCEPTION_OPENED = "exception_opened", gettext_noop("Exception opened")


class NotificationChannel(models.TextChoices):
    EMAIL = "email", gettext_noop("Email")
    WEBHOOK = "webhook", gettext_noop("Webhook")


class DigestMode(models.TextChoices):
    OFF = "off", gettext_noop("Off: each milestone on its own")
    HOURLY = "hourly", gettext_noop("Hourly")
    DAILY = "daily", gettext_noop("Daily, at a set time")


class MilestoneSubscription(models.Model):
    """Which milestones of a customer account's shipments are told, how (email or the account's
    webhook endpoints), when not (quiet hours, in the subscription's time zone) and whether
    together (a digest)."""

    customer_account = models.ForeignKey(CustomerAccount, on_delete=models.CASCADE, related_name="milestone_subscriptions")
    # Email to this person only (else `email`, else every active person of the account).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    milestones = models.JSONField(default=list)  # Milestone values
    channel = models.CharField(max_length=10, choices=NotificationChannel.choices, default=NotificationChannel.EMAIL)
    email = models.EmailField(blank=True)
    event_type = models.CharField(max_length=100, default="shipment.milestone")  # the webhook's event type
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64)  # IANA: quiet hours and the daily digest are local times
    digest = models.CharField(max_length=10, choices=DigestMode.choices, default=DigestMode.OFF)
    digest_at = models.TimeField(null=True, blank=True)  # daily digests: the local time they go
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_by_email = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["customer_account", "-created_at"]
        indexes = [models.Index(fields=["customer_account", "enabled"], name="milestone_subscription_account")]

    def __str__(self) -> str:
        return f"{self.customer_account} {self.channel} #{self.pk}"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", gettext_noop("Pending")
    SENDING = "sending", gettext_noop("Sending")
    SENT = "sent", gettext_noop("Sent")
    FAILED = "failed", gettext_noop("Failed")
    CANCELLED = "cancelled", gettext_noop("Cancelled")


class MilestoneNotification(models.Model):
    """One milestone of one shipment for one subscription: pending until `due_at` (now, the end
    of quiet hours, or the next digest), then sent – once, whatever repeats (unique per
    subscription, shipment and milestone). Notifications sent together share `message_key`."""

    subscription = models.ForeignKey(MilestoneSubscription, on_delete=models.CASCADE, related_name="notifications")
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="+")
    milestone = models.CharField(max_length=30, choices=Milestone.choices)
    occurred_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)  # what the message says: status, place, reason, ETA
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    due_at = models.DateTimeField()
    held = models.CharField(max_length=20, blank=True)  # why it waits: "quiet_hours" or "digest"
    message_key = models.CharField(max_length=80, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "shipment", "milestone"], name="milestone_notification_once"),
        ]
        indexes = [
            models.Index(fields=["due_at"], name="milestone_notification_due", condition=Q(status="pending")),
            models.Index(fields=["message_key"], name="milestone_notification_message", condition=~Q(message_key="")),
            models.Index(fields=["subscription", "-created_at"], name="milestone_notification_sub"),
        ]

    def __str__(self) -> str:
        return f"{self.milestone} of {self.shipment_id} for subscription {self.subscription_id} ({self.status})"
