"""The master data a demo tenant's workflows stand on (`manage.py seed_demo`, development only):
distribution centres and one customer site per customer account, each with its time zone and
dock hours; the carriers as parties with their SCACs, the routing guide the order release tenders
down; the carriers' invoice rules (tolerances, detention free time); and an SLA policy per service
tier. Idempotent: what exists (by code, SCAC or tier) is left as it is – a person may have
changed it – and only what is missing is created, each write audited.

The places follow the tenant's time zone: a tenant in the Americas ships Memphis to Dallas like
the sandbox carrier, one in Europe from Rotterdam and Venlo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction

from governance.services import audit_record
from logistics.models import CarrierRule, CustomerAccount, Location, Party, PartyKind, ServiceTier, SlaPolicy
from logistics.services import location_create, party_create

# The carrier every demo shipment is tendered to first (the sandbox carrier), then the others.
ROUTING_GUIDE = ["SBXF", "ODFL"]
CARRIERS = (
    ("SBXF", "sandbox-freight", "Sandbox Freight"),
    ("ODFL", "old-dominion", "Old Dominion Freight Line"),
    ("SAIA", "saia", "Saia LTL Freight"),
)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _hours(opens: str, closes: str, *, saturday: bool = False) -> dict[str, list[list[str]]]:
    week: dict[str, list[list[str]]] = {day: [[opens, closes]] for day in WEEKDAYS}
    return week | {"sat": [[opens, "12:00"]] if saturday else [], "sun": []}


@dataclass(frozen=True)
class Place:
    code: str
    name: str
    street: str
    city: str
    region: str
    postal_code: str
    country: str
    time_zone: str
    latitude: str
    longitude: str
    weekly_hours: dict[str, list[list[str]]] = field(default_factory=lambda: _hours("08:00", "17:00"))


AMERICAS_DCS = (
    Place(
        "dc-memphis",
        "Memphis DC",
        "3500 Tchulahoma Rd",
        "Memphis",
        "TN",
        "38118",
        "US",
        "America/Chicago",
        "35.0421",
        "-89.9773",
        _hours("06:00", "22:00", saturday=True),
    ),
    Place(
        "dc-dallas", "Dallas cross-dock", "2200 W Mockingbird Ln", "Dallas", "TX", "75235", "US", "America/Chicago", "32.8407", "-96.8519"
    ),
)
AMERICAS_SITES = (
    Place("site-phoenix", "Phoenix store", "1 E Washington St", "Phoenix", "AZ", "85004", "US", "America/Phoenix", "33.4484", "-112.0740"),
    Place("site-denver", "Denver warehouse", "4800 Dahlia St", "Denver", "CO", "80216", "US", "America/Denver", "39.7817", "-104.9310"),
    Place("site-atlanta", "Atlanta store", "55 Trinity Ave SW", "Atlanta", "GA", "30303", "US", "America/New_York", "33.7490", "-84.3880"),
)
EUROPE_DCS = (
    Place(
        "dc-rotterdam",
        "Rotterdam DC",
        "Waalhaven Oostzijde 1",
        "Rotterdam",
        "ZH",
        "3087 BM",
        "NL",
        "Europe/Amsterdam",
        "51.8939",
        "4.4325",
        _hours("06:00", "22:00", saturday=True),
    ),
    Place("dc-venlo", "Venlo DC", "Columbusweg 20", "Venlo", "LI", "5928 LC", "NL", "Europe/Amsterdam", "51.3960", "6.1290"),
)
EUROPE_SITES = (
    Place("site-antwerp", "Antwerp store", "Meir 78", "Antwerp", "VAN", "2000", "BE", "Europe/Brussels", "51.2180", "4.4100"),
    Place(
        "site-dusseldorf",
        "Düsseldorf warehouse",
        "Kölner Str. 180",
        "Düsseldorf",
        "NW",
        "40227",
        "DE",
        "Europe/Berlin",
        "51.2140",
        "6.8010",
    ),
    Place("site-lyon", "Lyon store", "16 Rue de la République", "Lyon", "ARA", "69002", "FR", "Europe/Paris", "45.7640", "4.8357"),
)
# How fast each tier's exceptions must be answered and resolved (business time off: the demo runs at night too).
SLA_POLICIES: dict[str, dict[str, timedelta]] = {
    ServiceTier.STANDARD: {
        "respond_within": timedelta(hours=4),
        "resolve_within": timedelta(hours=24),
        "escalate_every": timedelta(hours=8),
    },
    ServiceTier.PRIORITY: {
        "respond_within": timedelta(hours=1),
        "resolve_within": timedelta(hours=8),
        "escalate_every": timedelta(hours=2),
    },
    ServiceTier.CRITICAL: {
        "respond_within": timedelta(minutes=30),
        "resolve_within": timedelta(hours=4),
        "escalate_every": timedelta(hours=1),
        "on_time_grace": timedelta(minutes=15),
    },
}
# What the demo accepts on a carrier's invoice: the sandbox carrier's own rule, and the default.
CARRIER_RULES = {
    "SBXF": {
        "amount_tolerance": Decimal("25.00"),
        "percent_tolerance": Decimal("2.00"),
        "detention_free_time": timedelta(hours=2),
        "detention_rate_per_hour": Decimal("75.00"),
    },
    "": {"amount_tolerance": Decimal("50.00"), "percent_tolerance": Decimal("3.00"), "detention_free_time": timedelta(hours=2)},
}


@dataclass
class DemoDataSeeded:
    created: list[str] = field(default_factory=list)

    def add(self, what: str) -> None:
        self.created.append(what)


def _europe(time_zone: str) -> bool:
    return time_zone.startswith("Europe/")


def demo_places(*, time_zone: str) -> tuple[tuple[Place, ...], tuple[Place, ...]]:
    """The distribution centres and the customer sites for a tenant in `time_zone`."""
    return (EUROPE_DCS, EUROPE_SITES) if _europe(time_zone) else (AMERICAS_DCS, AMERICAS_SITES)


def customer_site_code(customer: CustomerAccount, sites: tuple[Place, ...], index: int) -> str:
    return f"{customer.code}-{sites[index % len(sites)].code.removeprefix('site-')}"[:60]


def _location(place: Place, *, code: str, name: str, party: Party | None, actor: Any, seeded: DemoDataSeeded) -> None:
    if Location.objects.filter(code=code).exists():
        return
    location_create(
        code=code,
        name=name,
        time_zone=place.time_zone,
        weekly_hours=place.weekly_hours,
        latitude=place.latitude,
        longitude=place.longitude,
        party=party,
        address_line1=place.street,
        city=place.city,
        region=place.region,
        postal_code=place.postal_code,
        country=place.country,
        actor=actor,
    )
    seeded.add(f"location {code}")


def _party(kind: str, code: str, name: str, *, actor: Any, seeded: DemoDataSeeded, **extra: Any) -> Party:
    existing = Party.objects.filter(kind=kind, code=code).first()
    if existing is not None:
        return existing
    seeded.add(f"{kind} {code}")
    return party_create(kind=kind, code=code, name=name, actor=actor, **extra)


def _sla_policy(tier: str, values: dict[str, timedelta], *, actor: Any, seeded: DemoDataSeeded) -> None:
    if SlaPolicy.objects.filter(service_tier=tier).exists():
        return
    with transaction.atomic():
        policy = SlaPolicy.objects.create(service_tier=tier, business_time=False, **values)
        audit_record(
            actor=actor,
            action="sla_policy.created",
            target=policy,
            data={name: str(value) for name, value in values.items()} | {"tier": tier},
        )
    seeded.add(f"SLA policy {tier}")


def _carrier_rule(scac: str, values: dict[str, Any], *, actor: Any, seeded: DemoDataSeeded) -> None:
    if CarrierRule.objects.filter(scac=scac).exists():
        return
    carrier = Party.objects.filter(kind=PartyKind.CARRIER, scac=scac).first() if scac else None
    with transaction.atomic():
        rule = CarrierRule.objects.create(scac=scac, carrier=carrier, **values)
        audit_record(
            actor=actor,
            action="carrier_rule.created",
            target=rule,
            data={name: str(value) for name, value in values.items()} | {"scac": scac},
        )
    seeded.add(f"carrier rule {scac or 'default'}")


def demo_data_seed(*, time_zone: str, actor: Any) -> DemoDataSeeded:
    """In the current tenant's schema: the demo's master data that is missing (see the module).
    A second call creates nothing."""
    seeded = DemoDataSeeded()
    dcs, sites = demo_places(time_zone=time_zone)
    for place in dcs:
        warehouse = _party(PartyKind.WAREHOUSE, place.code, place.name, actor=actor, seeded=seeded)
        _location(place, code=place.code, name=place.name, party=warehouse, actor=actor, seeded=seeded)
    for index, customer in enumerate(CustomerAccount.objects.order_by("code")):
        place = sites[index % len(sites)]
        consignee = _party(PartyKind.CONSIGNEE, customer.code, customer.name, customer_account=customer, actor=actor, seeded=seeded)
        code = customer_site_code(customer, sites, index)
        _location(place, code=code, name=f"{customer.name}, {place.city}", party=consignee, actor=actor, seeded=seeded)
    for scac, code, name in CARRIERS:
        if not Party.objects.filter(kind=PartyKind.CARRIER, scac=scac).exists():
            _party(PartyKind.CARRIER, code, name, scac=scac, actor=actor, seeded=seeded)
    for scac, rule in CARRIER_RULES.items():
        _carrier_rule(scac, rule, actor=actor, seeded=seeded)
    for tier, policy in SLA_POLICIES.items():
        _sla_policy(tier, policy, actor=actor, seeded=seeded)
    return seeded


@dataclass(frozen=True)
class DemoLane:
    """Where a demo order goes: the customer's code, the DC it ships from, the site it goes to."""

    customer: str
    ship_from: str
    ship_to: str


def demo_lanes() -> list[DemoLane]:
    """The tenant's demo lanes: every customer's site, served from each demo DC it has (read from
    the locations seeded above, so a tenant without them has none)."""
    parties = {
        location.code: location.party
        for location in Location.objects.filter(party__isnull=False).select_related("party__customer_account")
        if location.party is not None
    }
    dcs = sorted(code for code, party in parties.items() if party.kind == PartyKind.WAREHOUSE and code.startswith("dc-"))
    lanes = []
    for code, party in sorted(parties.items()):
        customer = party.customer_account if party.kind == PartyKind.CONSIGNEE else None
        if customer is None:
            continue
        for dc in dcs:
            lanes.append(DemoLane(customer.code, dc, code))
    return lanes
