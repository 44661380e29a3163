"""`make bench`: run every benchmark; each writes its figures and its same-run baseline to bench/results/."""

import subprocess
import sys
from pathlib import Path

BENCHES = [
    ["bench.provisioning"],
    ["bench.schema_clone_scaling", "--tables", "90", "--schemas", "10,300", "--out", "bench/results/schema_clone_scaling.json"],
    # Runs through the process API and Celery workers; BENCH_ENGINE_RUNS (default 100,000) sets the count.
    ["bench.engine"],
    # No services needed: reads, validates and normalizes 10 MB of generated 214s.
    ["bench.edi"],
    # Signed webhooks through gunicorn into the inbox against a bare HMAC-and-insert view; runs its own
    # redis-server (stopped for 30 s mid-load); BENCH_INGEST_EVENTS (default 100,000) sets the outage phase.
    ["bench.ingest"],
    # A 3PL's day (20,000 shipments x 10 tracking events as webhooks and 214 files, 2,000 PODs, 2,000
    # invoices) replayed into one tenant with its workflows, against the same stream into an empty one.
    ["bench.domain"],
    # Shipment pages (portal and Experience API) in a tenant of 1,000,000 shipments and 10,000,000 tracking events, seeded
    # with set-based SQL, against a 1,000-shipment tenant; BENCH_PORTAL_SHIPMENTS sets the size.
    ["bench.portal"],
]


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    failed = []
    for module, *args in BENCHES:
        print(f"== {module}", flush=True)
        if subprocess.call([sys.executable, "-m", module, *args], cwd=root) != 0:
            failed.append(module)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
