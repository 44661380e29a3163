"""The logistics tests run inside Acme's schema, in a transaction rolled back after each test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django_tenants.utils import schema_context

from governance.services import Actor
from logistics.models import Location, StopKind
from logistics.services import StopInput, location_create, shipment_create

SYSTEM = Actor.system("tests-logistics")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def hours(count: float) -> datetime:
    return T0 + timedelta(hours=count)


@pytest.fixture
def acme(world, db):
    """Acme's schema for the test's queries."""
    with schema_context(world.acme.schema):
        yield world.acme


@pytest.fixture
def places(acme) -> tuple[Location, Location]:
    origin = location_create(code="dock-chicago", name="Chicago DC", time_zone="America/Chicago", city="Chicago", actor=SYSTEM)
    destination = location_create(code="store-denver", name="Denver store", time_zone="America/Denver", city="Denver", actor=SYSTEM)
    return origin, destination


def make_shipment(acme, places, reference: str, **extra):
    origin, destination = places
    return shipment_create(
        customer_account=acme.customer_accounts[0],
        reference=reference,
        carrier_scac="ODFL",
        stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)],
        actor=SYSTEM,
        **extra,
    )
