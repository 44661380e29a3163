"""Outcome metrics are read from real logistics rows, written by `logistics.services` in a tenant's
schema. The services stamp "now" on what they record (an order's receipt, a document, an invoice,
an exception's opening and closing); the helpers here then move those stamps to the moment the
test needs, which is the only write that bypasses the services – it stands for the clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django_tenants.utils import schema_context

from governance.services import Actor
from logistics.models import (
    CustomerAccount,
    Document,
    ExceptionCase,
    FreightInvoice,
    Location,
    Order,
    Shipment,
    StopKind,
)
from logistics.services import (
    ChargeInput,
    OrderLineInput,
    StopInput,
    document_record,
    exception_close,
    exception_open,
    invoice_record,
    location_create,
    order_create,
    shipment_create,
    tracking_event_record,
)

SYSTEM = Actor.system("tests-insights")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # the tests' "now": far from anything other tests record
_serial = itertools.count(1)


def days_ago(days: float, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


@dataclass
class Places:
    origin: Location
    destination: Location


@pytest.fixture
def acme(world, db):
    with schema_context(world.acme.schema):
        yield world.acme


@pytest.fixture
def places(acme) -> Places:
    return Places(
        location_create(code="insights-dc", name="Insights DC", city="Chicago", actor=SYSTEM),
        location_create(code="insights-store", name="Insights store", city="Denver", actor=SYSTEM),
    )


def account(tenant_world) -> CustomerAccount:
    return tenant_world.customer_accounts[0]


def shipment_make(
    tenant_world, places: Places, *, appointment_end: datetime | None = None, eta: datetime | None = None, **extra
) -> Shipment:
    return shipment_create(
        customer_account=account(tenant_world),
        reference=f"INS-{next(_serial)}",
        carrier_scac="ODFL",
        stops=[
            StopInput(1, StopKind.PICKUP, places.origin),
            StopInput(2, StopKind.DELIVERY, places.destination, appointment_end=appointment_end),
        ],
        eta=eta,
        actor=SYSTEM,
        **extra,
    )


def event(shipment: Shipment, status: str, at: datetime, **extra) -> None:
    tracking_event_record(shipment=shipment, occurred_at=at, source="api", status=status, actor=SYSTEM, **extra)


def order_picked_up(tenant_world, places: Places, *, received: datetime, picked_up: datetime | list[datetime]) -> Order:
    """An order received at `received`, on one shipment per pickup time, each picked up then."""
    order = order_create(
        customer_account=account(tenant_world),
        number=f"SO-{next(_serial)}",
        lines=[OrderLineInput(sku="SKU-1", quantity=1)],
        actor=SYSTEM,
    ).order
    Order.objects.filter(pk=order.pk).update(created_at=received)
    for moment in picked_up if isinstance(picked_up, list) else [picked_up]:
        shipment = shipment_make(tenant_world, places, orders=[order])
        event(shipment, "picked_up", moment)
    return order


def exception_handled(tenant_world, *, opened: datetime, closed: datetime | None) -> ExceptionCase:
    case = exception_open(type="other", reason="insights test", customer_account=account(tenant_world), actor=SYSTEM).exception
    if closed is not None:
        case = exception_close(exception=case, root_cause="carrier", actor=SYSTEM)
    ExceptionCase.objects.filter(pk=case.pk).update(opened_at=opened, closed_at=closed)
    return case


def delivered(
    tenant_world, places: Places, *, at: datetime, appointment_end: datetime | None = None, eta: datetime | None = None
) -> Shipment:
    shipment = shipment_make(tenant_world, places, appointment_end=appointment_end, eta=eta)
    event(shipment, "delivered", at)
    return shipment


def document_at(shipment: Shipment, kind: str, at: datetime, **fields) -> Document:
    document = document_record(
        kind=kind,
        content=f"{kind}-{shipment.pk}-{next(_serial)}".encode(),
        original_name=f"{kind}.pdf",
        shipment=shipment,
        extracted_fields=fields,
        actor=SYSTEM,
    ).document
    Document.objects.filter(pk=document.pk).update(received_at=at)
    return document


def carrier_invoice(
    shipment: Shipment, *, received: datetime, match_status: str | None = None, charges=(("linehaul", "1000.00"),)
) -> FreightInvoice:
    invoice = invoice_record(
        carrier_scac="ODFL",
        invoice_number=f"INV-{next(_serial)}",
        charges=[ChargeInput(charge_code=code, amount=Decimal(amount)) for code, amount in charges],
        shipment=shipment,
        actor=SYSTEM,
    ).invoice
    FreightInvoice.objects.filter(pk=invoice.pk).update(received_at=received)
    invoice.refresh_from_db()
    return invoice
