"""Shipment reads at scale: the customer portal's and the Experience API's shipment pages in a
tenant of SHIPMENTS shipments (1,000,000) with EVENTS_PER_SHIPMENT tracking events each (10),
against the same pages in a tenant of BASELINE_SHIPMENTS (1,000) seeded the same way, in one run.

Both tenants get CUSTOMERS customer accounts (500) of skewed sizes (Zipf: the biggest shipper has
about a seventh of the shipments), DCs and stores in real cities, carriers, and shipments spread
over up to two years (at least 30 days for a small tenant) whose status follows their age and
mode: old ones delivered (a few cancelled or returned), recent ones picked up, in transit, delayed,
out for delivery. Each carries references (ours, BOL, PRO, PO, load, container; a quarter an
order), a pickup and a delivery stop with appointments (a tenth a second drop), tracking events
that walk it through its journey (ETA estimates on the way), documents (BOLs, PODs, customer
invoices), an exception on a few percent (open ones on the moving and recently delivered) and
telemetry on some moving ones. Seeding is set-based SQL (`INSERT … SELECT generate_series`) in the
tenant's schema, chunk by chunk with progress, foreign-key triggers off and the secondary indexes
built after the load; then VACUUM ANALYZE (the bench server runs without autovacuum).

Measured through gunicorn on loopback, one request at a time on keep-alive connections (so a
request's wall time is the server's time plus the loopback round trip, whose floor – `/healthz`
– is reported beside), each page paired with its baseline request by request (small tenant, big
tenant, small, big…) so that both see the same load on a shared machine: as a customer user of the biggest account, as tenant staff
(a planner), and with an API key bound to that account: the list's first page, a filtered page
(statuses + open exception + a created range), a deep keyset page (a cursor made by the read
model half-way down the viewer's shipments), a reference search (BOL, PRO, PO, order number,
container in turn) and a shipment's page (a different shipment in turn). Every answer is checked
(200, and the references the database says it must show, in order) before it counts. SAMPLES
(200) per measure after WARMUP (20). Targets: lists p95 <= 150 ms, the shipment page p95 <= 100 ms,
and each at most 1.5x its small-tenant baseline's p95.

    BENCH_PORTAL_SHIPMENTS=20000 .venv/bin/python -m bench.portal     # quick
    make bench                                                        # 1,000,000

Environment: BENCH_PORTAL_SHIPMENTS (1000000), BENCH_PORTAL_BASELINE_SHIPMENTS (1000),
BENCH_PORTAL_CUSTOMERS (500), BENCH_PORTAL_CHUNK (shipments per seeding transaction, 100000),
BENCH_PORTAL_SAMPLES (200), BENCH_PORTAL_WARMUP (20), BENCH_PORTAL_WEB_WORKERS / _WEB_THREADS
(gunicorn, 2 / 2), BENCH_PORTAL_EXPLAIN (0 skips the EXPLAIN ANALYZE of the slowest query behind
each of the big tenant's pages, kept in the result), BENCH_PORTAL_KEEP_LOGS, BENCH_PORTAL_OUT.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.engine import ROOT, Processes, isolated_run, percentile
from bench.machine import machine


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


SHIPMENTS = _env_int("BENCH_PORTAL_SHIPMENTS", 1_000_000)
BASELINE_SHIPMENTS = _env_int("BENCH_PORTAL_BASELINE_SHIPMENTS", 1_000)
EVENTS_PER_SHIPMENT = 10
CUSTOMERS = _env_int("BENCH_PORTAL_CUSTOMERS", 500)
CHUNK = _env_int("BENCH_PORTAL_CHUNK", 100_000)
SAMPLES = _env_int("BENCH_PORTAL_SAMPLES", 200)
WARMUP = _env_int("BENCH_PORTAL_WARMUP", 20)
WEB_WORKERS = _env_int("BENCH_PORTAL_WEB_WORKERS", 2)
WEB_THREADS = _env_int("BENCH_PORTAL_WEB_THREADS", 2)
LOG_LEVEL = os.environ.get("BENCH_PORTAL_LOG_LEVEL", "WARNING")
OUT = Path(os.environ.get("BENCH_PORTAL_OUT", ROOT / "bench" / "results" / "portal.json"))
TAG = f"bench-portal-{os.getpid()}"
BENCH_DB = f"baton_bench_portal_{os.getpid()}"
TARGET_LIST_P95_MS = 150.0
TARGET_SHIPMENT_P95_MS = 100.0
TARGET_RATIO = 1.5
TIME_ZONE = "America/Chicago"

PORTAL_PAGE = 25  # portal.shipment_views.PER_PAGE
API_PAGE = 50  # logistics.shipment_reads.PAGE_LIMIT_DEFAULT
DAYS_PER_SHIPMENT = 730 / 1_000_000  # a 1M tenant spans two years; a small one at least SPAN_MIN_DAYS
SPAN_MIN_DAYS, SPAN_MAX_DAYS = 30, 730
ZIPF_EXPONENT = 1.0
FILTER_STATUSES = ("in_transit", "delivery_delayed", "out_for_delivery", "delivered")
FILTER_DAYS = 30
CITIES = (
    ("Chicago", "IL", "America/Chicago"),
    ("Dallas", "TX", "America/Chicago"),
    ("Houston", "TX", "America/Chicago"),
    ("Memphis", "TN", "America/Chicago"),
    ("Kansas City", "MO", "America/Chicago"),
    ("Minneapolis", "MN", "America/Chicago"),
    ("Nashville", "TN", "America/Chicago"),
    ("Atlanta", "GA", "America/New_York"),
    ("Charlotte", "NC", "America/New_York"),
    ("Columbus", "OH", "America/New_York"),
    ("Indianapolis", "IN", "America/Indiana/Indianapolis"),
    ("Newark", "NJ", "America/New_York"),
    ("Allentown", "PA", "America/New_York"),
    ("Jacksonville", "FL", "America/New_York"),
    ("Savannah", "GA", "America/New_York"),
    ("Denver", "CO", "America/Denver"),
    ("Salt Lake City", "UT", "America/Denver"),
    ("Phoenix", "AZ", "America/Phoenix"),
    ("Los Angeles", "CA", "America/Los_Angeles"),
    ("Ontario", "CA", "America/Los_Angeles"),
    ("Oakland", "CA", "America/Los_Angeles"),
    ("Seattle", "WA", "America/Los_Angeles"),
    ("Reno", "NV", "America/Los_Angeles"),
    ("Laredo", "TX", "America/Chicago"),
)
CARRIERS = (
    "ODFL", "SAIA", "XPOL", "EXLA", "ABFS", "RLCA", "FXFE", "SEFL", "AACT", "CNWY",
    "JBHT", "SCNN", "KNIG", "WERN", "HJBT", "PTRL", "UPSN", "FDEG", "USPS", "MAEU",
    "MSCU", "CMDU", "HLCU", "BNSF", "UPRR", "CSXT", "NSRR", "DHLA", "AALC", "ESTE",
)  # fmt: skip
CONTAINER_OWNERS = ("MSCU", "MAEU", "CMAU", "HLXU", "TGHU", "OOLU")
# A shipment's journey; its stage is an index here, its tracking events walk up to it.
JOURNEY = (
    "pending",
    "tendered",
    "tender_accepted",
    "arrived_at_pickup",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "arrived_at_delivery",
    "delivered",
)
X12_CODES = ("", "", "", "X3", "AF", "X6", "OO", "X1", "D1")
TRANSIT_DAYS = {"ftl": 2, "ltl": 4, "parcel": 3, "intermodal": 6, "drayage": 1, "ocean": 24, "air": 2, "rail": 8}
SEEDED_TABLES = (
    "logistics_shipment",
    "logistics_stop",
    "logistics_trackingevent",
    "logistics_order",
    "logistics_shipment_orders",
    "logistics_exceptioncase",
    "logistics_document",
    "connectors_telemetryasset",
)


def log(message: str) -> None:
    print(f"[portal {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- seeding -------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What a seeding made, with the ids and references the measures ask for."""

    schema: str
    shipments: int
    seconds: float
    counts: dict[str, int]
    customer_ids: list[int]  # biggest first
    now: dt.datetime
    seconds_by_step: dict[str, float] = field(default_factory=dict)


def span_days(shipments: int) -> float:
    return min(SPAN_MAX_DAYS, max(SPAN_MIN_DAYS, shipments * DAYS_PER_SHIPMENT))


def customer_thresholds(customers: int) -> list[float]:
    """Cumulative shares of Zipf-sized accounts (the biggest first), without the final 1.0: the
    thresholds `width_bucket` sorts a uniform number into."""
    weights = [1 / (rank**ZIPF_EXPONENT) for rank in range(1, customers + 1)]
    total, running, thresholds = sum(weights), 0.0, []
    for weight in weights[:-1]:
        running += weight
        thresholds.append(running / total)
    return thresholds


def _master_data(cursor: Any, customers: int, now: dt.datetime) -> dict[str, Any]:
    """Customer accounts, carriers, DCs and stores (a few hundred rows: plain multi-row inserts)."""
    from logistics.models import standard_dock_hours

    tiers = ("standard", "standard", "priority", "critical")
    cursor.execute(
        "INSERT INTO logistics_customeraccount (code, name, service_tier, currency, created_at) "
        "SELECT 'acct-' || lpad(n::text, 4, '0'), 'Shipper ' || lpad(n::text, 4, '0'), (%s::text[])[1 + n %% 4], 'USD', %s "
        "FROM generate_series(1, %s) AS n ORDER BY n RETURNING id",
        [list(tiers), now, customers],
    )
    customer_ids = sorted(row[0] for row in cursor.fetchall())
    cursor.execute(
        "INSERT INTO logistics_party (kind, code, name, scac, email, phone, external_ids, created_at) "
        "SELECT 'carrier', 'carrier-' || lower(scac), scac || ' Freight', scac, '', '', '{}', %s "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS c(scac, n) ORDER BY n RETURNING id",
        [now, list(CARRIERS)],
    )
    carrier_ids = sorted(row[0] for row in cursor.fetchall())
    hours = json.dumps(standard_dock_hours())
    locations: dict[str, list[int]] = {}
    for kind, count in (("dc", 60), ("store", 400)):
        cursor.execute(
            "INSERT INTO logistics_location (code, name, address_line1, address_line2, city, region, postal_code, country, time_zone, "
            " latitude, longitude, geofence_radius_m, weekly_hours, holidays, created_at) "
            "SELECT %s || '-' || lpad(n::text, 3, '0'), (%s::text[])[1 + n %% %s] || ' ' || %s || ' ' || n, n || ' Commerce Dr', '', "
            " (%s::text[])[1 + n %% %s], (%s::text[])[1 + n %% %s], lpad((10000 + n * 37)::text, 5, '0'), 'US', "
            " (%s::text[])[1 + n %% %s], 30 + (n %% 17), -80 - (n %% 40), 500, %s, '[]', %s "
            "FROM generate_series(0, %s - 1) AS n ORDER BY n RETURNING id",
            [
                kind,
                [city for city, _, _ in CITIES],
                len(CITIES),
                "DC" if kind == "dc" else "store",
                [city for city, _, _ in CITIES],
                len(CITIES),
                [state for _, state, _ in CITIES],
                len(CITIES),
                [zone for _, _, zone in CITIES],
                len(CITIES),
                hours,
                now,
                count,
            ],
        )
        locations[kind] = sorted(row[0] for row in cursor.fetchall())
    return {"customer_ids": customer_ids, "carrier_ids": carrier_ids, "dc_ids": locations["dc"], "store_ids": locations["store"]}


def _next_id(cursor: Any, table: str) -> int:
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")  # noqa: S608 - our table names
    return int(cursor.fetchone()[0])


def _secondary_indexes(cursor: Any, schema: str) -> list[tuple[str, str]]:
    """The seeded tables' indexes that no constraint owns (name, definition): dropped for the load
    and built after it, which is several times faster than keeping them up row by row."""
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = %s AND i.tablename = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace "
        "                WHERE s.nspname = i.schemaname AND c.conname = i.indexname)",
        [schema, list(SEEDED_TABLES)],
    )
    return list(cursor.fetchall())


# The plan of one chunk: every per-shipment choice made once, from hashes of its number `i`.
_PLAN_SQL = """
CREATE TEMP TABLE seed_plan ON COMMIT DROP AS
WITH drawn AS (
    SELECT i,
        (hashint8(i * 16 + 1) & 2147483647) / 2147483648.0 AS u_customer,
        (hashint8(i * 16 + 2) & 2147483647) / 2147483648.0 AS u_status,
        (hashint8(i * 16 + 3) & 2147483647) / 2147483648.0 AS u_mode,
        (hashint8(i * 16 + 4) & 2147483647) / 2147483648.0 AS u_ref,
        (hashint8(i * 16 + 5) & 2147483647) / 2147483648.0 AS u_exception,
        (hashint8(i * 16 + 6) & 2147483647) / 2147483648.0 AS u_document,
        (hashint8(i * 16 + 7) & 2147483647) AS h_place,
        (hashint8(i * 16 + 8) & 2147483647) AS h_other,
        %(now)s::timestamptz - (%(shipments)s - i) * %(step)s::interval - ((hashint8(i * 16 + 9) & 2147483647) %% 900) * interval '1 second'
            AS created_at
    FROM generate_series(%(lo)s, %(hi)s) AS i
), moded AS (
    SELECT d.*,
        CASE WHEN u_mode < 0.40 THEN 'ftl' WHEN u_mode < 0.70 THEN 'ltl' WHEN u_mode < 0.80 THEN 'parcel'
             WHEN u_mode < 0.88 THEN 'intermodal' WHEN u_mode < 0.93 THEN 'drayage' WHEN u_mode < 0.97 THEN 'ocean'
             WHEN u_mode < 0.99 THEN 'air' ELSE 'rail' END AS mode
    FROM drawn d
), timed AS (
    SELECT m.*,
        (%(transit)s::jsonb ->> m.mode)::int AS transit_days,
        extract(epoch FROM %(now)s::timestamptz - m.created_at) / 86400.0 / (1 + (%(transit)s::jsonb ->> m.mode)::int) AS progress
    FROM moded m
), staged AS (
    SELECT t.*,
        CASE
            WHEN progress < 0.05 THEN CASE WHEN u_status < 0.35 THEN 'pending' WHEN u_status < 0.55 THEN 'tendered' ELSE 'tender_accepted' END
            WHEN progress < 0.12 THEN CASE WHEN u_status < 0.40 THEN 'arrived_at_pickup' ELSE 'picked_up' END
            WHEN progress < 0.90 THEN CASE WHEN u_status < 0.80 THEN 'in_transit' WHEN u_status < 0.90 THEN 'delivery_delayed'
                                           WHEN u_status < 0.93 THEN 'on_hold' ELSE 'out_for_delivery' END
            WHEN progress < 1.20 THEN CASE WHEN u_status < 0.65 THEN 'delivered' WHEN u_status < 0.80 THEN 'out_for_delivery'
                                           WHEN u_status < 0.92 THEN 'delivery_delayed' WHEN u_status < 0.96 THEN 'arrived_at_delivery'
                                           ELSE 'delivery_failed' END
            ELSE CASE WHEN u_status < 0.96 THEN 'delivered' WHEN u_status < 0.98 THEN 'cancelled'
                      WHEN u_status < 0.99 THEN 'return_to_sender' ELSE 'delivery_failed' END
        END AS status
    FROM timed t
)
SELECT s.i,
    %(shipment0)s + s.i AS shipment_id,
    (%(customers)s::bigint[])[1 + width_bucket(s.u_customer, %(thresholds)s::float8[])] AS customer_id,
    s.mode, s.status, s.created_at, s.transit_days, s.u_ref, s.u_exception, s.u_document, s.h_other,
    CASE s.status WHEN 'on_hold' THEN 5 WHEN 'delivery_delayed' THEN 5 WHEN 'cancelled' THEN 2 WHEN 'delivery_failed' THEN 6
                  WHEN 'return_to_sender' THEN 7 ELSE array_position(%(journey)s::text[], s.status) - 1 END AS stage,
    (%(dcs)s::bigint[])[1 + s.h_place %% %(dc_count)s] AS origin_id,
    (%(stores)s::bigint[])[1 + (s.h_place / 7) %% %(store_count)s] AS destination_id,
    (%(stores)s::bigint[])[1 + (s.h_place / 11) %% %(store_count)s] AS second_drop_id,
    (%(cities)s::text[])[1 + (s.h_place %% %(dc_count)s) %% %(city_count)s] AS origin_city,
    (%(cities)s::text[])[1 + ((s.h_place / 7) %% %(store_count)s) %% %(city_count)s] AS destination_city,
    1 + (s.h_place / 13) %% %(carrier_count)s AS carrier_n,
    s.created_at + interval '1 day' AS pickup_at,
    s.created_at + interval '1 day' + s.transit_days * interval '1 day' AS promised_at,
    CASE WHEN s.status = 'delivered'
         THEN least(%(now)s::timestamptz - interval '1 minute',
                    s.created_at + interval '1 day' + s.transit_days * interval '1 day' + ((s.h_other %% 1440) - 360) * interval '1 minute')
    END AS delivered_at,
    s.mode = 'ftl' AND s.u_ref > 0.9 AS second_drop,
    s.u_ref < 0.25 AS has_order
FROM staged s
"""

_SHIPMENTS_SQL = """
INSERT INTO logistics_shipment (
    id, reference, customer_account_id, mode, carrier_id, carrier_scac, bol_number, pro_number, load_number, po_number,
    container_number, tender_status, origin_id, destination_id, weight_unit, planned_weight, actual_weight, currency,
    planned_rate, actual_rate, status, status_at, status_event_id, original_eta, original_eta_at, eta, eta_at, eta_event_id,
    delivered_at, created_at, updated_at)
SELECT p.shipment_id,
    %(prefix)s || lpad(p.i::text, 9, '0'),
    p.customer_id, p.mode, %(carrier0)s + p.carrier_n, (%(scacs)s::text[])[p.carrier_n],
    CASE WHEN p.u_ref < 0.90 THEN 'BOL' || lpad((p.i * 7 + 3100000)::text, 10, '0') ELSE '' END,
    CASE WHEN p.mode IN ('ftl', 'ltl') AND p.u_ref < 0.85 THEN (%(scacs)s::text[])[p.carrier_n] || lpad((p.i * 13 + 100000)::text, 10, '0')
         WHEN p.mode = 'parcel' THEN '1Z' || lpad((p.i * 17 + 5000000)::text, 16, '0') ELSE '' END,
    CASE WHEN p.mode = 'ftl' AND p.u_ref < 0.60 THEN 'L' || (p.i + 500000) ELSE '' END,
    CASE WHEN p.u_ref < 0.70 THEN 'PO' || lpad(((p.i * 37) %% 1000000000)::text, 9, '0') ELSE '' END,
    CASE WHEN p.mode IN ('intermodal', 'drayage', 'ocean')
         THEN (%(owners)s::text[])[1 + p.h_other %% %(owner_count)s] || lpad((p.i %% 10000000)::text, 7, '0') ELSE '' END,
    CASE WHEN p.stage = 0 THEN 'not_tendered' WHEN p.stage = 1 THEN 'tendered' WHEN p.status = 'cancelled' THEN 'cancelled' ELSE 'accepted' END,
    p.origin_id, p.destination_id, 'lb',
    1000 + p.h_other %% 40000, CASE WHEN p.stage >= 4 THEN 1000 + p.h_other %% 40000 END, 'USD',
    400 + p.h_other %% 4000 + 0.50, CASE WHEN p.status = 'delivered' THEN 400 + p.h_other %% 4000 + 0.50 END,
    p.status,
    CASE WHEN p.delivered_at IS NOT NULL THEN p.delivered_at ELSE p.created_at + (%(now)s::timestamptz - p.created_at) * 0.9 END,
    %(event0)s + (p.i - 1) * %(events)s + %(events)s,
    p.promised_at, NULL,
    CASE WHEN p.status = 'cancelled' OR (p.stage = 0 AND p.u_ref > 0.7) THEN NULL
         WHEN p.delivered_at IS NOT NULL THEN p.delivered_at
         WHEN p.status = 'delivery_delayed' THEN p.promised_at + interval '1 day' + (p.h_other %% 600) * interval '1 minute'
         ELSE p.promised_at + ((p.h_other %% 240) - 120) * interval '1 minute' END,
    CASE WHEN p.stage BETWEEN 4 AND 7 THEN p.created_at + (%(now)s::timestamptz - p.created_at) * 0.9 END,
    CASE WHEN p.stage BETWEEN 4 AND 7 THEN %(event0)s + (p.i - 1) * %(events)s + %(events)s END,
    p.delivered_at, p.created_at,
    coalesce(p.delivered_at, p.created_at + (%(now)s::timestamptz - p.created_at) * 0.9)
FROM seed_plan p
"""

_STOPS_SQL = """
INSERT INTO logistics_stop (id, shipment_id, sequence, kind, location_id, appointment_start, appointment_end, arrived_at, departed_at, dwell)
SELECT %(stop0)s + (p.i - 1) * 3 + n, p.shipment_id, n,
    CASE WHEN n = 1 THEN 'pickup' ELSE 'delivery' END,
    CASE n WHEN 1 THEN p.origin_id WHEN 2 THEN p.destination_id ELSE p.second_drop_id END,
    CASE n WHEN 1 THEN p.pickup_at WHEN 2 THEN p.promised_at - interval '2 hours' ELSE p.promised_at + interval '4 hours' END,
    CASE n WHEN 1 THEN p.pickup_at + interval '2 hours' WHEN 2 THEN p.promised_at ELSE p.promised_at + interval '6 hours' END,
    CASE WHEN n = 1 AND p.stage >= 3 THEN p.pickup_at + (p.h_other %% 120) * interval '1 minute'
         WHEN n > 1 AND p.delivered_at IS NOT NULL THEN p.delivered_at - interval '40 minutes' + (n - 2) * interval '5 hours' END,
    CASE WHEN n = 1 AND p.stage >= 4 THEN p.pickup_at + (p.h_other %% 120 + 55) * interval '1 minute'
         WHEN n > 1 AND p.delivered_at IS NOT NULL THEN p.delivered_at + (n - 2) * interval '5 hours' END,
    CASE WHEN n = 1 AND p.stage >= 4 THEN interval '55 minutes' WHEN n > 1 AND p.delivered_at IS NOT NULL THEN interval '40 minutes' END
FROM seed_plan p CROSS JOIN generate_series(1, 3) AS n
WHERE n < 3 OR p.second_drop
"""

_EVENTS_SQL = """
INSERT INTO logistics_trackingevent (
    id, shipment_id, status, raw_code, raw_reason, reason_description, signal, source, mapping_version_id, occurred_at, received_at,
    estimate, eta, dedupe_key, stop_id, latitude, longitude, location_text, message, applied)
SELECT %(event0)s + (e.i - 1) * %(events)s + e.k, e.shipment_id,
    CASE WHEN e.k = %(events)s THEN e.status ELSE (%(journey)s::text[])[1 + e.step] END,
    CASE WHEN e.k = %(events)s AND e.status = 'delivery_delayed' THEN 'SD' ELSE (%(x12)s::text[])[1 + e.step] END,
    CASE WHEN e.k = %(events)s AND e.status = 'delivery_delayed' THEN 'AO' ELSE '' END,
    CASE WHEN e.k = %(events)s AND e.status = 'delivery_delayed' THEN 'Weather delay' ELSE '' END,
    CASE WHEN e.k = %(events)s AND e.status = 'delivery_delayed' THEN 'weather'
         WHEN e.k = %(events)s AND e.status = 'on_hold' THEN 'hold' ELSE '' END,
    CASE WHEN e.h_other %% 20 < 12 THEN 'x12_214' WHEN e.h_other %% 20 < 18 THEN 'carrier_api' WHEN e.h_other %% 20 < 19 THEN 'telemetry'
         ELSE 'manual' END,
    NULL, e.occurred_at, e.occurred_at + interval '90 seconds',
    e.step BETWEEN 4 AND 6, CASE WHEN e.step BETWEEN 4 AND 6 THEN e.promised_at + (%(events)s - e.k) * interval '17 minutes' END,
    'seed-' || e.i || '-' || e.k,
    CASE WHEN e.step IN (3, 4) THEN %(stop0)s + (e.i - 1) * 3 + 1 WHEN e.step >= 6 THEN %(stop0)s + (e.i - 1) * 3 + 2 END,
    CASE WHEN e.step BETWEEN 4 AND 6 THEN 30 + (e.k + e.h_other %% 17) END,
    CASE WHEN e.step BETWEEN 4 AND 6 THEN -80 - (e.k + e.h_other %% 40) END,
    CASE WHEN e.step <= 4 THEN e.origin_city WHEN e.step >= 6 THEN e.destination_city ELSE 'Near ' || e.destination_city END,
    '',
    e.k = 1 OR e.k = %(events)s OR e.step <> e.previous_step
FROM (
    SELECT p.*, k,
        (k * p.stage) / %(events)s AS step,
        ((k - 1) * p.stage) / %(events)s AS previous_step,
        p.created_at + (coalesce(p.delivered_at, %(now)s::timestamptz - interval '5 minutes') - p.created_at) * k / (%(events)s + 1)
            AS occurred_at
    FROM seed_plan p CROSS JOIN generate_series(1, %(events)s) AS k
) e
"""

_ORDERS_SQL = """
WITH made AS (
    INSERT INTO logistics_order (id, customer_account_id, number, status, status_reason, source, po_number, ship_from_id, ship_to_id,
        requested_pickup_at, requested_delivery_at, credit_hold, created_at, updated_at)
    SELECT %(order0)s + p.i, p.customer_id, 'SO' || lpad((p.i * 3 + 7000000)::text, 9, '0'),
        CASE WHEN p.status = 'delivered' THEN 'delivered' WHEN p.status = 'cancelled' THEN 'cancelled' ELSE 'released' END,
        '', 'edi_940', CASE WHEN p.u_ref < 0.70 THEN 'PO' || lpad(((p.i * 37) %% 1000000000)::text, 9, '0') ELSE '' END,
        p.origin_id, p.destination_id, p.pickup_at, p.promised_at, false, p.created_at - interval '3 hours', p.created_at
    FROM seed_plan p WHERE p.has_order
    RETURNING id
)
INSERT INTO logistics_shipment_orders (shipment_id, order_id)
SELECT %(shipment0)s + (id - %(order0)s), id FROM made
"""

_EXCEPTIONS_SQL = """
INSERT INTO logistics_exceptioncase (type, reason, severity, status, customer_account_id, shipment_id, order_id, sla_due_at, owner_id,
    escalation_level, root_cause, resolution, details, opened_by_email, opened_at, closed_at)
SELECT x.type, x.reason, (ARRAY['low', 'medium', 'high', 'critical'])[1 + x.h_other %% 4], x.state, x.customer_id, x.shipment_id, NULL,
    x.opened_at + interval '4 hours', NULL, 0, CASE WHEN x.state = 'closed' THEN 'carrier' ELSE '' END,
    CASE WHEN x.state = 'closed' THEN 'Carrier confirmed a new delivery time.' ELSE '' END, '{}', 'workflow@baton',
    x.opened_at, CASE WHEN x.state = 'closed' THEN x.opened_at + interval '1 day' END
FROM (
    SELECT p.*,
        CASE WHEN p.status = 'delivery_delayed' THEN 'delay'
             WHEN p.delivered_at IS NOT NULL THEN (ARRAY['pod_incomplete', 'invoice_mismatch', 'damage', 'shortage', 'delay'])[1 + p.h_other %% 5]
             ELSE (ARRAY['delay', 'missed_pickup', 'route_deviation', 'temperature_excursion'])[1 + p.h_other %% 4] END AS type,
        'Seeded: what the detector saw' AS reason,
        CASE WHEN p.status IN ('delivered', 'cancelled', 'return_to_sender')
                  AND p.created_at < %(now)s::timestamptz - interval '40 days' AND p.u_exception >= 0.003 THEN 'closed'
             WHEN p.h_other %% 3 = 0 THEN 'in_progress' ELSE 'open' END AS state,
        p.created_at + (coalesce(p.delivered_at, %(now)s::timestamptz) - p.created_at) * 0.7 AS opened_at
    FROM seed_plan p
    WHERE p.status = 'delivery_delayed'
       OR (p.stage BETWEEN 3 AND 7 AND p.status NOT IN ('cancelled', 'return_to_sender') AND p.u_exception < 0.10)
       OR (p.status = 'delivered' AND p.created_at >= %(now)s::timestamptz - interval '40 days' AND p.u_exception < 0.05)
       OR (p.u_exception < 0.03)
) x
"""

_DOCUMENTS_SQL = """
INSERT INTO logistics_document (kind, shipment_id, file, original_name, content_type, size, sha256, source, signed_by, signed_at,
    extracted_fields, received_at)
SELECT d.kind, d.shipment_id,
    'documents/' || %(schema)s || '/' || d.kind || '/' || left(d.sha, 2) || '/' || d.sha || '.pdf',
    upper(d.kind) || '-' || d.i || '.pdf', 'application/pdf', 40000 + d.h_other %% 400000, d.sha,
    CASE WHEN d.kind = 'invoice' THEN 'workflow' ELSE 'email' END,
    CASE WHEN d.kind = 'pod' THEN 'Receiving' ELSE '' END, CASE WHEN d.kind = 'pod' THEN d.delivered_at END,
    CASE WHEN d.kind = 'invoice'
         THEN jsonb_build_object('customer_invoice', 'CI-' || lpad(d.i::text, 9, '0'), 'total', (900 + d.h_other %% 4000) || '.00',
                                 'currency', 'USD')
         ELSE '{}'::jsonb END,
    coalesce(d.delivered_at + interval '2 hours', d.pickup_at + interval '1 hour')
FROM (
    SELECT p.*, kind, md5(p.i || kind) || md5(kind || p.i) AS sha
    FROM seed_plan p CROSS JOIN unnest(ARRAY['bol', 'pod', 'invoice']) AS kind
    WHERE (kind = 'bol' AND p.stage >= 4 AND p.u_document < 0.50)
       OR (kind = 'pod' AND p.delivered_at IS NOT NULL AND p.u_document < 0.80)
       OR (kind = 'invoice' AND p.delivered_at IS NOT NULL AND p.u_document < 0.30)
) d
"""

_TELEMETRY_SQL = """
INSERT INTO connectors_telemetryasset (subscription_id, kind, key, shipment_ref, latitude, longitude, position_at, temperature,
    temperature_at, last_seen_at, last_topic, recent)
SELECT %(subscription)s, 'trailer', 'TRL-' || p.i, %(prefix)s || lpad(p.i::text, 9, '0'), 30 + (p.h_other %% 1700) / 100.0,
    -80 - (p.h_other %% 4000) / 100.0, %(now)s::timestamptz - (p.h_other %% 600) * interval '1 second',
    CASE WHEN p.mode IN ('ftl', 'intermodal') THEN 2 + (p.h_other %% 40) / 10.0 END,
    CASE WHEN p.mode IN ('ftl', 'intermodal') THEN %(now)s::timestamptz - (p.h_other %% 600) * interval '1 second' END,
    %(now)s::timestamptz - (p.h_other %% 600) * interval '1 second', 'fleet/TRL-' || p.i, '[]'
FROM seed_plan p
WHERE p.stage BETWEEN 4 AND 7 AND p.status NOT IN ('cancelled', 'return_to_sender') AND p.u_document > 0.90
"""


_STATEMENTS = (
    ("plan", _PLAN_SQL),
    ("shipments", _SHIPMENTS_SQL),
    ("stops", _STOPS_SQL),
    ("tracking_events", _EVENTS_SQL),
    ("orders", _ORDERS_SQL),
    ("exceptions", _EXCEPTIONS_SQL),
    ("documents", _DOCUMENTS_SQL),
    ("telemetry", _TELEMETRY_SQL),
)


def _telemetry_subscription(schema: str) -> int:
    """The MQTT connection and subscription the seeded trailers report through (created by the services)."""
    from django_tenants.utils import schema_context

    from connectors.models import AuthMethod, ConnectionKind, Transport
    from connectors.services import ConnectionInput, connection_create
    from connectors.telemetry.services import telemetry_subscription_create
    from governance.services import Actor

    actor = Actor.system("bench-portal")
    with schema_context(schema):
        connection = connection_create(
            data=ConnectionInput(
                key="fleet-telemetry",
                name="Fleet telemetry",
                kind=ConnectionKind.IOT,
                base_url="mqtt://127.0.0.1:1883",
                transport=Transport.MQTT,
                auth_method=AuthMethod.NONE,
            ),
            actor=actor,
        )
        return telemetry_subscription_create(connection=connection, topic_filter="fleet/+", actor=actor).pk


def seed(
    schema: str,
    *,
    shipments: int,
    customers: int = CUSTOMERS,
    events_per_shipment: int = EVENTS_PER_SHIPMENT,
    chunk: int = CHUNK,
    prefix: str = "SH",
    now: dt.datetime | None = None,
    vacuum: bool = True,
    progress: bool = True,
) -> Seeded:
    """Fill `schema` with `shipments` shipments over `customers` accounts (see the module's
    docstring), set-based, chunk by chunk, each chunk its own transaction (or the caller's, in a
    test). `vacuum=False` runs ANALYZE only (VACUUM cannot run inside a transaction)."""
    from django.db import connection as db
    from django.db import transaction
    from django_tenants.utils import schema_context

    began = time.monotonic()
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    subscription = _telemetry_subscription(schema)
    with schema_context(schema), db.cursor() as cursor:
        with transaction.atomic():
            master = _master_data(cursor, customers, now)
            indexes = _secondary_indexes(cursor, schema)
            for name, _definition in indexes:
                cursor.execute(f'DROP INDEX "{schema}"."{name}"')
        params: dict[str, Any] = {
            "now": now,
            "shipments": shipments,
            "step": dt.timedelta(days=span_days(shipments) / shipments),
            "transit": json.dumps(TRANSIT_DAYS),
            "customers": master["customer_ids"],
            "thresholds": customer_thresholds(len(master["customer_ids"])),
            "journey": list(JOURNEY),
            "x12": list(X12_CODES),
            "dcs": master["dc_ids"],
            "dc_count": len(master["dc_ids"]),
            "stores": master["store_ids"],
            "store_count": len(master["store_ids"]),
            "cities": [city for city, _, _ in CITIES],
            "city_count": len(CITIES),
            "carrier_count": len(CARRIERS),
            "carrier0": master["carrier_ids"][0] - 1,
            "scacs": list(CARRIERS),
            "owners": list(CONTAINER_OWNERS),
            "owner_count": len(CONTAINER_OWNERS),
            "events": events_per_shipment,
            "prefix": prefix,
            "schema": schema,
            "subscription": subscription,
            "shipment0": _next_id(cursor, "logistics_shipment"),
            "stop0": _next_id(cursor, "logistics_stop"),
            "event0": _next_id(cursor, "logistics_trackingevent"),
            "order0": _next_id(cursor, "logistics_order"),
        }
        timings: dict[str, float] = {}
        for lo in range(1, shipments + 1, chunk):
            hi = min(shipments, lo + chunk - 1)
            started = time.monotonic()
            with transaction.atomic():
                # Foreign keys are checked by triggers; the seed's ids are consistent by construction.
                cursor.execute("SET LOCAL session_replication_role = replica")
                for name, statement in _STATEMENTS:
                    statement_began = time.monotonic()
                    cursor.execute(statement, {**params, "lo": lo, "hi": hi})
                    timings[name] = timings.get(name, 0.0) + time.monotonic() - statement_began
                cursor.execute("SET LOCAL session_replication_role = origin")
                cursor.execute("DROP TABLE seed_plan")  # a savepoint (the caller's transaction) does not drop it on commit
            if progress:
                seconds = time.monotonic() - started
                log(f"{schema}: shipments {hi:,} of {shipments:,} ({(hi - lo + 1) / seconds:,.0f} shipments/s in this chunk)")
        started = time.monotonic()
        with transaction.atomic():
            for _name, definition in indexes:
                cursor.execute(definition)
            for table in SEEDED_TABLES:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"  # noqa: S608
                )
        timings["indexes"] = time.monotonic() - started
        if progress:
            log(f"{schema}: {len(indexes)} indexes built in {timings['indexes']:.0f} s")
        started = time.monotonic()
        for table in (*SEEDED_TABLES, "logistics_customeraccount", "logistics_location", "logistics_party"):
            cursor.execute(f"{'VACUUM ANALYZE' if vacuum else 'ANALYZE'} {table}")
        timings["vacuum_analyze"] = time.monotonic() - started
        if progress:
            log(f"{schema}: {'VACUUM ANALYZE' if vacuum else 'ANALYZE'} in {timings['vacuum_analyze']:.0f} s")
        counts = {}
        for table in SEEDED_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            counts[table.split("_", 1)[1]] = int(cursor.fetchone()[0])
    return Seeded(
        schema=schema,
        shipments=shipments,
        seconds=round(time.monotonic() - began, 1),
        counts=counts,
        customer_ids=master["customer_ids"],
        now=now,
        seconds_by_step={name: round(value, 1) for name, value in timings.items()},
    )


# --- what is measured ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request and what its answer must show: `expect` in this order."""

    path: str
    expect: tuple[str, ...]


@dataclass
class Measure:
    name: str  # e.g. "customer list_first"
    viewer: str  # customer | staff | api
    kind: str  # list | shipment
    probes: list[Probe]
    rows: int = 0  # rows the page lists (lists), for reading the figures


@dataclass
class Viewers:
    """The three ways in: a customer user of the biggest account, a planner, an account-bound key."""

    customer_id: int
    customer_user_id: int
    staff_user_id: int
    api_key: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # viewer -> headers (cookie, key)


def viewers_create(schema: str, customer_id: int) -> Viewers:
    from django_tenants.utils import schema_context

    from accounts.models import Role
    from accounts.services import api_key_create, user_create
    from governance.services import Actor

    actor = Actor.system("bench-portal")
    with schema_context(schema):
        customer = user_create(email=f"shipper@{schema}.test", role=Role.CUSTOMER, actor=actor, customer_account_id=customer_id)
        staff = user_create(email=f"planner@{schema}.test", role=Role.PLANNER, actor=actor)
        _key, secret = api_key_create(name="shipper ERP", scopes=["shipments:read"], customer_account_id=customer_id, actor=actor)
    return Viewers(customer_id=customer_id, customer_user_id=customer.pk, staff_user_id=staff.pk, api_key=secret)


def session_cookie(schema: str, user_id: int, host: str) -> str:
    """A session as a password sign-in leaves it, made in the tenant's schema; the `Cookie` header."""
    from allauth.account.internal.flows.login import record_authentication
    from django.conf import settings
    from django.test import Client, RequestFactory
    from django_tenants.utils import schema_context

    from accounts.models import User

    client = Client(HTTP_HOST=host)
    with schema_context(schema):
        user = User.objects.get(pk=user_id)
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        request = RequestFactory().get("/")
        request.session = client.session
        record_authentication(request, user, "password", email=user.email)
        request.session.save()
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _refs(cursor: Any, where: str, args: list[Any], limit: int, order: str = "s.created_at DESC, s.id DESC") -> tuple[str, ...]:
    cursor.execute(f"SELECT s.reference FROM logistics_shipment s WHERE {where} ORDER BY {order} LIMIT %s", [*args, limit])  # noqa: S608
    return tuple(row[0] for row in cursor.fetchall())


def _deep_cursor(schema: str, viewer: Any, row_id: int) -> str:
    """The read model's own cursor for the row `row_id` of the default sort (what `next` carries
    after that row): the deep page without walking to it."""
    from django_tenants.utils import schema_context

    from logistics import shipment_reads as reads
    from logistics.models import Shipment

    with schema_context(schema):
        scope = reads.shipment_scope(viewer)
        filters = reads.ShipmentFilters()
        return reads._cursor_make(Shipment.objects.get(pk=row_id), filters, reads._cursor_binding(scope, filters))


_OPEN = "EXISTS (SELECT 1 FROM logistics_exceptioncase x WHERE x.shipment_id = s.id AND x.status IN ('open', 'in_progress'))"


def measures_build(schema: str, viewers: Viewers, *, now: dt.datetime, probes: int = 40) -> list[Measure]:
    """The measured pages and, read from the database directly (not through the read model),
    what each must show."""
    from django.db import connection as db
    from django_tenants.utils import schema_context

    from accounts.models import User
    from workflows.calendars import tenant_time_zone

    account = viewers.customer_id
    statuses = list(FILTER_STATUSES)
    measures: list[Measure] = []
    with schema_context(schema), db.cursor() as cursor:
        first_day, last_day, start, end = _date_window(now, tenant_time_zone())
        customer_user = User.objects.get(pk=viewers.customer_user_id)
        staff_user = User.objects.get(pk=viewers.staff_user_id)
        mine, every = "s.customer_account_id = %s", "true"
        cursor.execute("SELECT count(*) FROM logistics_shipment s WHERE s.customer_account_id = %s", [account])
        account_total = int(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM logistics_shipment")
        total = int(cursor.fetchone()[0])
        filtered = f"{{scope}} AND s.status = ANY(%s) AND s.created_at >= %s AND s.created_at < %s AND {_OPEN}"

        def deep(scope: str, args: list[Any], count: int, viewer: Any, page: int) -> list[tuple[str, tuple[str, ...]]]:
            """(cursor, the page after it) at 40-80 % of the viewer's shipments."""
            found = []
            for share in (0.4, 0.5, 0.6, 0.7, 0.8):
                cursor.execute(
                    f"SELECT s.id, s.created_at FROM logistics_shipment s WHERE {scope} ORDER BY s.created_at DESC, s.id DESC "  # noqa: S608
                    "OFFSET %s LIMIT 1",
                    [*args, max(0, int(count * share) - 1)],
                )
                row_id, created_at = cursor.fetchone()
                after = _refs(cursor, f"{scope} AND (s.created_at, s.id) < (%s, %s)", [*args, created_at, row_id], page)
                found.append((_deep_cursor(schema, viewer, row_id), after))
            return found

        # References of the biggest account's shipments, each kind in turn (our own number is the shipment page's).
        lookups: list[tuple[str, str]] = []
        kinds = {
            "bol_number": "s.bol_number",
            "pro_number": "s.pro_number",
            "po_number": "s.po_number",
            "container_number": "s.container_number",
            "order": "(SELECT o.number FROM logistics_order o JOIN logistics_shipment_orders so ON so.order_id = o.id "
            "WHERE so.shipment_id = s.id LIMIT 1)",
        }
        for column in kinds.values():
            cursor.execute(
                f"SELECT {column} AS value, s.reference FROM logistics_shipment s WHERE s.customer_account_id = %s "  # noqa: S608
                f"AND coalesce({column}, '') <> '' ORDER BY md5(s.id::text) LIMIT %s",
                [account, max(1, probes // len(kinds))],
            )
            lookups += [(value, reference) for value, reference in cursor.fetchall()]
        cursor.execute(
            "SELECT s.reference, s.bol_number FROM logistics_shipment s WHERE s.customer_account_id = %s ORDER BY md5(s.id::text) LIMIT %s",
            [account, probes],
        )
        details = cursor.fetchall()

        portal_filter = urlencode(
            [
                *[("status", value) for value in statuses],
                ("has_exception", "true"),
                ("date_field", "created"),
                ("date_from", first_day),
                ("date_to", last_day),
            ]
        )
        api_filter = urlencode(
            [("status", ",".join(statuses)), ("has_exception", "true"), ("created_from", first_day), ("created_to", last_day)]
        )
        for viewer, user, scope, args, count, page in (
            ("customer", customer_user, mine, [account], account_total, PORTAL_PAGE),
            ("staff", staff_user, every, [], total, PORTAL_PAGE),
            ("api", customer_user, mine, [account], account_total, API_PAGE),
        ):
            lists = "/api/v1/shipments" if viewer == "api" else "/shipments/"
            first = _refs(cursor, scope, args, page)
            matching = _refs(cursor, filtered.format(scope=scope), [*args, statuses, start, end], page)
            query = api_filter if viewer == "api" else portal_filter
            after = "cursor" if viewer == "api" else "after"
            measures += [
                Measure(f"{viewer} list_first", viewer, "list", [Probe(lists, first)], rows=len(first)),
                Measure(f"{viewer} list_filtered", viewer, "list", [Probe(f"{lists}?{query}", matching)], rows=len(matching)),
                Measure(
                    f"{viewer} list_deep",
                    viewer,
                    "list",
                    [Probe(f"{lists}?{urlencode({after: token})}", rows) for token, rows in deep(scope, args, count, user, page)],
                    rows=page,
                ),
                Measure(
                    f"{viewer} search",
                    viewer,
                    "list",
                    [Probe(f"{lists}?{urlencode({'q': value})}", (reference,)) for value, reference in lookups],
                    rows=1,
                ),
                Measure(
                    f"{viewer} shipment",
                    viewer,
                    "shipment",
                    [
                        Probe(
                            f"/api/v1/shipments/{reference}" if viewer == "api" else f"/shipments/{reference}/",
                            (reference, bol) if bol else (reference,),
                        )
                        for reference, bol in details
                    ],
                ),
            ]
    return measures


def probe_problem(status: int, body: bytes, probe: Probe) -> str | None:
    """Why an answer is wrong (None: right): not 200, or an expected reference missing or out of order."""
    if status != 200:
        return f"{probe.path}: {status}"
    text, position = body.decode("utf-8", "replace"), 0
    for expected in probe.expect:
        found = text.find(expected, position)
        if found < 0:
            return f"{probe.path}: {expected!r} missing" + (" or out of order" if expected in text else "")
        position = found + len(expected)
    return None


def _date_window(now: dt.datetime, time_zone: str) -> tuple[str, str, dt.datetime, dt.datetime]:
    """The filtered page's created range: the last FILTER_DAYS whole days in the tenant's zone
    (as text for the query string, and as the moments the read model turns them into)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(time_zone)
    last = now.astimezone(zone).date()
    first = last - dt.timedelta(days=FILTER_DAYS - 1)
    start = dt.datetime.combine(first, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return first.isoformat(), last.isoformat(), start, end


# --- measuring -----------------------------------------------------------------------------------


def figures(milliseconds: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(milliseconds, 0.50), 1),
        "p95": round(percentile(milliseconds, 0.95), 1),
        "p99": round(percentile(milliseconds, 0.99), 1),
        "max": round(max(milliseconds), 1),
    }


@dataclass
class Target:
    """Where one side of a paired measure sends its requests."""

    host: str
    headers: dict[str, str]
    measure: Measure


def measure_run(port: int, targets: list[Target]) -> list[dict[str, Any]]:
    """WARMUP then SAMPLES requests per target, one at a time, each target on a keep-alive
    connection of its own and the targets in turn (a request to the small tenant, then the same
    page in the big one), so that both see the same load on a shared machine; probes in turn;
    every answer checked, the wall time of the samples kept (ms)."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=120) for _ in targets]
    milliseconds: list[list[float]] = [[] for _ in targets]
    problems: list[list[str]] = [[] for _ in targets]
    sizes: list[list[int]] = [[] for _ in targets]
    for index in range(WARMUP + SAMPLES):
        for side, (target, connection) in enumerate(zip(targets, connections, strict=True)):
            probe = target.measure.probes[index % len(target.measure.probes)]
            started = time.perf_counter()
            connection.request("GET", probe.path, headers={"Host": target.host, **target.headers})
            response = connection.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            problem = probe_problem(response.status, body, probe)
            if problem is not None:
                problems[side].append(problem)
            if index >= WARMUP:
                milliseconds[side].append(elapsed)
                sizes[side].append(len(body))
    for connection in connections:
        connection.close()
    return [
        {
            "ms": figures(milliseconds[side]),
            "samples": len(milliseconds[side]),
            "probes": len(target.measure.probes),
            "rows": target.measure.rows if target.measure.kind == "list" else None,
            "body_kb": round(sum(sizes[side]) / len(sizes[side]) / 1024, 1),
            "wrong_answers": len(problems[side]),
            "first_wrong_answers": sorted(set(problems[side]))[:5],
        }
        for side, target in enumerate(targets)
    ]


def floor_run(port: int, host: str) -> dict[str, float]:
    """`/healthz` the same way: what loopback, gunicorn and the middleware cost before a view runs."""
    measure = Measure("healthz", "anonymous", "floor", [Probe("/healthz", ('"ok"',))])
    return measure_run(port, [Target(host, {}, measure)])[0]["ms"]


def explain(schema: str, viewers: Viewers, measures: list[Measure]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the slowest query behind each of the customer's, staff's and
    API's pages (run in-process through the read model with the first probe's parameters)."""
    from django.db import connection as db
    from django.http import QueryDict
    from django.test.utils import CaptureQueriesContext
    from django_tenants.utils import schema_context

    from accounts.models import User
    from logistics import shipment_reads as reads

    plans: dict[str, Any] = {}
    with schema_context(schema):
        customer = User.objects.get(pk=viewers.customer_user_id)
        # The account-bound key's scope is its account's, the same SQL as its customer user's.
        users = {"customer": customer, "staff": User.objects.get(pk=viewers.staff_user_id), "api": customer}
        for measure in measures:
            if measure.viewer not in users:
                continue
            scope = reads.shipment_scope(users[measure.viewer])
            path, _, query = measure.probes[0].path.partition("?")
            params = QueryDict(query, mutable=True)
            with CaptureQueriesContext(db) as captured:
                if measure.kind == "shipment":
                    reads.shipment_detail(scope, path.rstrip("/").rsplit("/", 1)[1])
                else:
                    if params.get("date_field"):
                        params["created_from"], params["created_to"] = params.pop("date_from")[0], params.pop("date_to")[0]
                    filters = reads.ShipmentFilters.from_params(params)
                    api = measure.viewer == "api"
                    after = params.get("cursor" if api else "after") or None
                    reads.shipments_page(scope, filters, after=after, limit=API_PAGE if api else PORTAL_PAGE)
            slowest: tuple[float, str, list[str]] = (-1.0, "", [])
            with db.cursor() as cursor:
                for query_text in (item["sql"] for item in captured.captured_queries):
                    if not query_text.lstrip().upper().startswith("SELECT"):
                        continue
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query_text)
                    plan = [row[0] for row in cursor.fetchall()]
                    took = next((float(m.group(1)) for line in plan if (m := re.search(r"Execution Time: ([\d.]+) ms", line))), 0.0)
                    if took > slowest[0]:
                        slowest = (took, query_text, plan)
            plans[measure.name] = {
                "queries": len(captured.captured_queries),
                "slowest_ms": slowest[0],
                "slowest_sql": slowest[1][:2000],
                "plan": slowest[2],
            }
    return plans


# --- the run -------------------------------------------------------------------------------------


@dataclass
class BenchTenant:
    slug: str
    schema: str
    host: str
    seeded: Seeded | None = None
    viewers: Viewers | None = None
    measures: list[Measure] = field(default_factory=list)


def tenant_create(slug: str, partner: Any) -> BenchTenant:
    from governance.services import Actor
    from tenants.models import Domain
    from tenants.services import BrandingInput, tenant_provision

    tenant = tenant_provision(
        partner=partner,
        name=f"Portal bench {slug}",
        slug=slug,
        domains=[],
        plan="enterprise",
        actor=Actor.system("bench-portal"),
        branding=BrandingInput(product_name=f"{slug.title()} Freight", primary_color="#0b4f9c", accent_color="#b4400a"),
        time_zone=TIME_ZONE,
    )
    assert tenant.status == "ready", tenant.status_reason
    host = Domain.objects.filter(tenant=tenant).order_by("-is_primary", "pk").values_list("domain", flat=True).first()
    assert host, "the bench tenant has no host"
    return BenchTenant(slug=slug, schema=tenant.schema_name, host=host)


def tenant_prepare(tenant: BenchTenant, shipments: int, now: dt.datetime) -> None:
    tenant.seeded = seed(tenant.schema, shipments=shipments, now=now)
    tenant.viewers = viewers_create(tenant.schema, tenant.seeded.customer_ids[0])
    tenant.viewers.headers = {
        "customer": {"Cookie": session_cookie(tenant.schema, tenant.viewers.customer_user_id, tenant.host)},
        "staff": {"Cookie": session_cookie(tenant.schema, tenant.viewers.staff_user_id, tenant.host)},
        "api": {"Authorization": f"Api-Key {tenant.viewers.api_key}", "Accept": "application/json"},
    }
    tenant.measures = measures_build(tenant.schema, tenant.viewers, now=tenant.seeded.now)


def target_ms(measure: Measure) -> float:
    return TARGET_SHIPMENT_P95_MS if measure.kind == "shipment" else TARGET_LIST_P95_MS


def run(processes: Processes, scratch: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from governance.services import Actor
    from tenants.db import connection
    from tenants.services import BrandingInput, partner_create

    load_before = os.getloadavg()
    log(f"database {BENCH_DB}: migrating")
    call_command("baton_migrate", verbosity=0)
    connection.set_schema_to_public()
    partner = partner_create(
        name="Bench MSP", slug="bench-msp", actor=Actor.system("bench-portal"), branding=BrandingInput(product_name="Bench")
    )
    big, small = tenant_create("portal-big", partner), tenant_create("portal-small", partner)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    log(f"seeding {BASELINE_SHIPMENTS:,} shipments into {small.slug}")
    tenant_prepare(small, BASELINE_SHIPMENTS, now)
    log(f"seeding {SHIPMENTS:,} shipments x {EVENTS_PER_SHIPMENT} events into {big.slug}")
    tenant_prepare(big, SHIPMENTS, now)
    connection.set_schema_to_public()
    assert big.seeded and small.seeded and big.viewers and small.viewers
    seeded = big.seeded
    log(
        f"seeded {big.slug} in {seeded.seconds:.0f} s ({seeded.shipments / seeded.seconds:,.0f} shipments/s, "
        f"{seeded.counts['trackingevent'] / seeded.seconds:,.0f} events/s): {seeded.counts}"
    )

    processes.env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        "DJANGO_ENV": os.environ.get("DJANGO_ENV", "development"),
        "PROMETHEUS_MULTIPROC_DIR": str(scratch / "prometheus"),
        "BENCH_ENGINE_WEB_WORKERS": str(WEB_WORKERS),
        "BENCH_ENGINE_WEB_THREADS": str(WEB_THREADS),
    }
    import bench.engine

    bench.engine.WEB_WORKERS, bench.engine.WEB_THREADS = WEB_WORKERS, WEB_THREADS  # Processes.web_start reads them
    port = processes.web_start()
    results: dict[str, Any] = {}
    floors = {}
    for tenant in (small, big):
        floors[tenant.slug] = floor_run(port, tenant.host)
    met_all = True
    for baseline_measure, measure in zip(small.measures, big.measures, strict=True):
        assert baseline_measure.name == measure.name
        baseline, measured = measure_run(
            port,
            [
                Target(small.host, small.viewers.headers[measure.viewer], baseline_measure),
                Target(big.host, big.viewers.headers[measure.viewer], measure),
            ],
        )
        ratio = round(measured["ms"]["p95"] / baseline["ms"]["p95"], 2) if baseline["ms"]["p95"] else None
        met = (
            measured["ms"]["p95"] <= target_ms(measure)
            and ratio is not None
            and ratio <= TARGET_RATIO
            and not measured["wrong_answers"]
            and not baseline["wrong_answers"]
        )
        met_all = met_all and met
        results[measure.name] = {
            "p95_target_ms": target_ms(measure),
            "ratio_target": TARGET_RATIO,
            "p95_ratio_to_baseline": ratio,
            "met": met,
            "tenant": measured,
            "baseline": baseline,
        }
        log(
            f"{measure.name:24s} p50 {measured['ms']['p50']:7.1f}  p95 {measured['ms']['p95']:7.1f} ms "
            f"(baseline p95 {baseline['ms']['p95']:6.1f}, x{ratio}) {'met' if met else 'MISSED'}"
            + (f" wrong answers: {measured['wrong_answers']}+{baseline['wrong_answers']}" if measured["wrong_answers"] else "")
        )
    plans = {}
    if os.environ.get("BENCH_PORTAL_EXPLAIN", "1") != "0":
        log("EXPLAIN ANALYZE of the big tenant's pages")
        plans = explain(big.schema, big.viewers, big.measures)
        connection.set_schema_to_public()
    result = {
        "benchmark": "portal",
        "what": "the customer portal's and the Experience API's shipment pages (list first page, filtered page, deep keyset page, "
        "reference search, shipment page) through gunicorn on loopback, one request at a time, as a customer user of the biggest "
        "account, as staff and with an account-bound API key, in a big tenant; baseline: the same pages in a small tenant seeded "
        "the same way, in the same run",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(load_before, load_average_after=[round(v, 2) for v in os.getloadavg()]),
        "method": {
            "latency": "wall time of each request on a keep-alive loopback connection, sequential (server time plus the loopback "
            "round trip; the /healthz floor is beside)",
            "samples_per_measure": SAMPLES,
            "warmup_per_measure": WARMUP,
            "web": {"gunicorn_workers": WEB_WORKERS, "threads": WEB_THREADS},
            "portal_page_rows": PORTAL_PAGE,
            "api_page_rows": API_PAGE,
            "filtered_page": {"status": list(FILTER_STATUSES), "has_exception": True, "created": f"the last {FILTER_DAYS} days"},
            "deep_page": "cursors made by the read model at 40, 50, 60, 70 and 80 % of the viewer's shipments (default sort)",
            "search": "BOL, PRO, PO, container and order numbers of the biggest account's shipments, in turn",
        },
        "tenant": _tenant_figures(big),
        "baseline_tenant": _tenant_figures(small),
        "targets": {"list_p95_ms": TARGET_LIST_P95_MS, "shipment_p95_ms": TARGET_SHIPMENT_P95_MS, "p95_ratio_to_baseline": TARGET_RATIO},
        "floor_healthz_ms": floors,
        "met": met_all,
        "pages": results,
        "explain": plans,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"{'all targets met' if met_all else 'some targets MISSED'}; wrote {OUT}")


def _tenant_figures(tenant: BenchTenant) -> dict[str, Any]:
    assert tenant.seeded is not None and tenant.viewers is not None
    seeded = tenant.seeded
    from django.db import connection as db
    from django_tenants.utils import schema_context

    with schema_context(tenant.schema), db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM logistics_shipment WHERE customer_account_id = %s", [tenant.viewers.customer_id])
        biggest = int(cursor.fetchone()[0])
        cursor.execute("SELECT status, count(*) FROM logistics_shipment GROUP BY status ORDER BY 2 DESC")
        statuses = dict(cursor.fetchall())
        cursor.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(format('%%I.%%I', %s::text, t))::bigint)) FROM unnest(%s::text[]) t",
            [tenant.schema, list(SEEDED_TABLES)],
        )
        size = cursor.fetchone()[0]
    return {
        "slug": tenant.slug,
        "shipments": seeded.shipments,
        "rows": seeded.counts,
        "customer_accounts": len(seeded.customer_ids),
        "biggest_account_shipments": biggest,
        "span_days": round(span_days(seeded.shipments)),
        "shipments_by_status": statuses,
        "size_on_disk": size,
        "seed_seconds": seeded.seconds,
        "seed_seconds_by_step": seeded.seconds_by_step,
        "seed_shipments_per_s": round(seeded.shipments / seeded.seconds) if seeded.seconds else None,
        "seed_tracking_events_per_s": round(seeded.counts["trackingevent"] / seeded.seconds) if seeded.seconds else None,
    }


def main() -> None:
    isolated_run("portal", database=BENCH_DB, tag=TAG, log_level=LOG_LEVEL, run=run)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
