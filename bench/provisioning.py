"""Provisioning time per tenant at 10 and at 500 tenants, against plain migration of one schema.

Runs in a throwaway database on the configured server. The baseline is measured in the same
run: `migrate_schemas` of one new, empty schema (what provisioning would cost without the clone).
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("BATON_FAST_PASSWORD_HASHER", "1")
os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
BENCH_DB = f"baton_bench_{os.getpid()}"
TENANTS = int(os.environ.get("BENCH_TENANTS", "500"))
BASELINE_RUNS = 3


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "median_s": round(statistics.median(values), 4), "p95_s": round(percentile(values, 0.95), 4)}


def main() -> None:
    import dj_database_url

    admin_url = dj_database_url.parse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    conninfo = psycopg.conninfo.make_conninfo(
        dbname="postgres",
        user=admin_url["USER"] or None,
        host=admin_url["HOST"] or None,
        port=admin_url["PORT"] or None,
        password=admin_url["PASSWORD"] or None,
    )
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    os.environ["DATABASE_NAME"] = BENCH_DB
    try:
        run()
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def run() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from governance.services import Actor
    from tenants.services import BrandingInput, partner_create, tenant_provision

    call_command("baton_migrate", verbosity=0)
    actor = Actor.system("bench")

    baseline = []
    for index in range(BASELINE_RUNS):
        schema = f"bench_migrate_{index}"
        connection.set_schema_to_public()
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        call_command("migrate_schemas", schema_name=schema, tenant=True, interactive=False, verbosity=0)
        baseline.append(time.perf_counter() - started)
        print(f"baseline migrate_schemas of one schema: {baseline[-1]:.2f}s", flush=True)

    connection.set_schema_to_public()
    partner = partner_create(name="Bench MSP", slug="bench", actor=actor, branding=BrandingInput(product_name="Bench"))
    times = []
    for index in range(1, TENANTS + 1):
        started = time.perf_counter()
        tenant = tenant_provision(
            partner=partner,
            name=f"Tenant {index}",
            slug=f"bench-{index:04d}",
            domains=[],
            plan="standard",
            actor=actor,
            branding=BrandingInput(product_name=f"Tenant {index}", primary_color="#0b4f9c"),
            admin_email=f"admin@t{index}.test",
        )
        times.append(time.perf_counter() - started)
        assert tenant.status == "ready", tenant.status_reason
        if index % 50 == 0:
            print(f"{index}/{TENANTS} tenants, last {times[-1]:.3f}s", flush=True)

    first, last = times[:10], times[-10:]
    from tenants.models import TemplateSchemaSnapshot

    result = {
        "benchmark": "provisioning",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count()},
        "template_tables": TemplateSchemaSnapshot.objects.latest().table_count,
        "what": "seconds to provision a ready tenant (schema clone, admin user with invitation, branding, audit rows)",
        "at_10_tenants": summary(first),
        f"at_{TENANTS}_tenants": summary(last),
        "all": summary(times),
        "baseline_migrate_one_schema": summary(baseline),
        "ratio_last10_to_first10_median": round(statistics.median(last) / statistics.median(first), 3),
        "speedup_vs_baseline_median": round(statistics.median(baseline) / statistics.median(times), 1),
        "targets": {"median_s": 2.0, "last_vs_first_max_ratio": 1.5, "min_speedup": 5},
    }
    out = ROOT / "bench" / "results" / "provisioning.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
