"""Engine throughput: runs of a 4-step workflow started through the process API, end to end.

Each run is decision → transform → connector (a real HTTP call to a fake partner on loopback) →
notify (the milestone, recorded in the step output: the engine has no separate milestone record
kind). Runs are started by concurrent HTTP clients against gunicorn – in batches of BATCH_SIZE
with `POST /api/v1/processes/{key}/runs/batch` (BENCH_ENGINE_START=batch, the default) or one
per request with `POST /api/v1/processes/{key}/runs` (single) – and advanced by real Celery
workers (`workflows.advance` on the engine queue) with beat running, in a throwaway database on
the configured server and with a key prefix of its own on the configured Redis (embedded ones
under `make bench` when DATABASE_URL / REDIS_URL are unset).

Measured: completed runs/s and step transitions/s over the steady-state window (warm-up
excluded), p50/p99 latency from a run's created_at to its finished_at, worker RSS (each worker's
processes, pool children included, sampled), and, after a drain, lost runs (an accepted start –
a run id answered, created or existing – whose run is missing, not succeeded or another start's)
and duplicated ones (a step that succeeded twice, a partner effect performed twice for one
idempotency key, more runs than accepted starts); in batch mode all of it per item. After the
main phase drained, a shorter `single_start` phase (business keys `single-…`, the main one's are
`bench-…`) starts runs one per request against the same web and workers, so the report shows
both paths. The baseline, in the same run,
on the same broker and workers: bare Celery no-op tasks/s (`bench.noop`), and beside it the
engine alone (ready runs drained by the same workers with the web idle), since through the API
the web, not the engine, sets the pace. A client holds back while its request would take the
unfinished runs (plus those in requests not yet answered) over MAX_BACKLOG, so latency is
measured at a rate the system sustains rather than growing with the length of a queue. An
in-process profile (queries per API start, single and in batches, and per step, wall and CPU
time, cProfile, and the same with TENANT_LIMIT_SET_CALLS on) and the CPU seconds each component
used during the load say where the time goes.

    BENCH_ENGINE_RUNS=2000 .venv/bin/python -m bench.engine      # quick
    make bench                                                    # 100,000 runs

Environment: BENCH_ENGINE_RUNS (100000), BENCH_ENGINE_START (batch | single),
BENCH_ENGINE_BATCH_SIZE (runs per batch request, 1-500, default 100), BENCH_ENGINE_SINGLE_RUNS
(runs of the single_start phase, 5000; 0 skips it; skipped when the main phase is single),
BENCH_ENGINE_WORKERS, BENCH_ENGINE_POOL, BENCH_ENGINE_CONCURRENCY, BENCH_ENGINE_WEB_WORKERS,
BENCH_ENGINE_WEB_THREADS, BENCH_ENGINE_CLIENTS, BENCH_ENGINE_RATE (runs/s offered; 0: as fast as
the clients get answers), BENCH_ENGINE_MAX_BACKLOG (for both phases; default 300, or
4 x runs per request when that is more; 0: no cap), BENCH_ENGINE_NOOP_TASKS, BENCH_ENGINE_CAPACITY_RUNS,
BENCH_ENGINE_DRAIN_SECONDS, BENCH_ENGINE_LOG_LEVEL (WARNING, for web, workers and beat),
BENCH_ENGINE_PROFILE (0 skips the in-process profile), BENCH_ENGINE_PROFILE_RUNS,
BENCH_ENGINE_PYSPY (seconds of py-spy sampling of one worker and one web process during the
load, if py-spy is on PATH), BENCH_ENGINE_KEEP_LOGS (keep the processes' logs), BENCH_ENGINE_OUT.
"""

from __future__ import annotations

import contextlib
import cProfile
import http.client
import io
import itertools
import json
import os
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import machine
from deploy.local.lifeline import with_lifeline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


RUNS = _env_int("BENCH_ENGINE_RUNS", 100_000)
# Chosen by measuring on the 2-core machine (1,200-run trials, same load): two solo-pool workers
# finished as many runs/s as one prefork worker with two children or one worker with four threads,
# with the lowest latency (p99 1.3 s against 6.6 s for threads) and about 125 MB per worker
# (prefork: 342 MB, a parent and two children).
WORKERS = _env_int("BENCH_ENGINE_WORKERS", 2)
POOL = os.environ.get("BENCH_ENGINE_POOL", "solo")
CONCURRENCY = _env_int("BENCH_ENGINE_CONCURRENCY", 1)
WEB_WORKERS = _env_int("BENCH_ENGINE_WEB_WORKERS", 2)
WEB_THREADS = _env_int("BENCH_ENGINE_WEB_THREADS", 4)
CLIENTS = _env_int("BENCH_ENGINE_CLIENTS", 16)
RATE = float(os.environ.get("BENCH_ENGINE_RATE", "0") or 0)
START = os.environ.get("BENCH_ENGINE_START", "batch")
BATCH_SIZE = _env_int("BENCH_ENGINE_BATCH_SIZE", 100)
RUNS_PER_REQUEST = BATCH_SIZE if START == "batch" else 1
SINGLE_RUNS = _env_int("BENCH_ENGINE_SINGLE_RUNS", 5000) if START == "batch" else 0


def _max_backlog(runs_per_request: int) -> int:
    """A client holds back while its request would take the unfinished runs (plus those in
    requests not yet answered) over this, so the backlog (and with it the latency) cannot grow
    without bound when the engine is slower than the API: what is measured is a rate the system
    sustains. The default is four requests' worth of runs, at least 300: two workers claiming 100
    runs each still find a full batch ready, and latency stays near the time a run takes rather
    than the time a queue takes (measured with 20,000 batch-started runs: a cap of 400 gave
    667 runs/s at p50 0.7 s, one of 1,600 gave 632 runs/s at p50 2.6 s). 0: no cap."""
    return _env_int("BENCH_ENGINE_MAX_BACKLOG", max(300, 4 * runs_per_request))


MAX_BACKLOG = _max_backlog(RUNS_PER_REQUEST)
SINGLE_MAX_BACKLOG = _max_backlog(1)
NOOP_TASKS = _env_int("BENCH_ENGINE_NOOP_TASKS", 20_000)
DRAIN_SECONDS = _env_int("BENCH_ENGINE_DRAIN_SECONDS", 600)
LOG_LEVEL = os.environ.get("BENCH_ENGINE_LOG_LEVEL", "WARNING")
PROFILE = os.environ.get("BENCH_ENGINE_PROFILE", "1") not in ("0", "", "no")
PROFILE_RUNS = _env_int("BENCH_ENGINE_PROFILE_RUNS", 100)
# Runs the workers drain with the web idle, to compare the engine alone with the no-op baseline.
CAPACITY_RUNS = _env_int("BENCH_ENGINE_CAPACITY_RUNS", min(5000, max(500, RUNS // 4)))
PYSPY_SECONDS = _env_int("BENCH_ENGINE_PYSPY", 0)
OUT = Path(os.environ.get("BENCH_ENGINE_OUT", str(ROOT / "bench" / "results" / "engine.json")))

TAG = f"bench-engine-{os.getpid()}"
BENCH_DB = f"baton_bench_engine_{os.getpid()}"
TENANT_SLUG = "engine-bench"
DEFINITION_KEY = "bench-tender"
NOOP_QUEUE = "bench_noop"
STEPS_PER_RUN = 4
# The enterprise plan allows 6000 requests a minute per API key (config.api_policies): one key
# per client keeps each client well under its limit at the target rate.
PLAN = "enterprise"
WARMUP_FRACTION = 0.1
MIN_WARMUP_SECONDS = 3.0

TARGETS = {"completed_runs_per_s": 440, "step_transitions_over_noop_tasks": 1.0, "lost": 0, "duplicated": 0, "worker_rss_mb": 250}

# decision → transform → connector → notify (the milestone). `next: null` ends the run.
SPEC: dict[str, Any] = {
    "start": "route",
    "triggers": [{"kind": "api", "key": "tenders"}],
    "steps": [
        {
            "id": "route",
            "kind": "decision",
            "cases": [{"when": "input.priority == 'rush'", "next": "shape", "label": "rush"}],
            "default": "shape",
        },
        {
            "id": "shape",
            "kind": "transform",
            "mapping": {
                "tender.order": "$.input.order_id",
                "tender.lane": "$.input.lane",
                "tender.weight_kg": "$.input.weight_kg",
                "source": "api",
            },
            "next": "tender",
        },
        {
            "id": "tender",
            "kind": "connector",
            "connection": "carrier",
            "action": "tender_load",
            "input": {"order": "$.context.shape.tender.order", "lane": "$.context.shape.tender.lane"},
            "retry": {"attempts": 3, "backoff_seconds": 1},
            "next": "milestone",
        },
        {"id": "milestone", "kind": "notify", "channel": "webhook", "to_roles": ["planner"], "template": "load-tendered", "next": None},
    ],
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def log(message: str) -> None:
    print(f"[engine {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the fake partner, in a process of its own ---------------------------------------------------


def partner_serve() -> None:
    """`python -m bench.engine partner`: run tests.fake_partner until stdin closes; print its URL,
    and on each `stats` line the requests and effects it saw (duplicated keys counted)."""
    from tests.fake_partner import FakePartner

    with FakePartner() as partner:
        print(partner.url, flush=True)
        for line in sys.stdin:
            if line.strip() != "stats":
                continue
            with partner._lock:
                per_key = Counter((effect.tenant, effect.idempotency_key) for effect in partner.effects)
                stats = {
                    "requests": len(partner.requests),
                    "effects": len(partner.effects),
                    "replayed": sum(1 for request in partner.requests if request.replayed),
                    "keys_with_more_than_one_effect": sorted(key for (_tenant, key), count in per_key.items() if count > 1),
                }
            print(json.dumps(stats), flush=True)


# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Processes:
    """The partner, gunicorn, the workers and beat this bench started, each in a process group of
    its own within the bench's session, as `make run` starts them: where the kernel shares CPU time
    between sessions first (autogroup), a session each gave PostgreSQL – all its backends in one
    session – an equal share with each process, about a third of a core on two, and made the
    workers' niceness count for nothing. Each ends with the bench, even a killed one (`with_lifeline`)."""

    scratch: Path
    env: dict[str, str]
    partner: subprocess.Popen | None = None
    partner_url: str = ""
    web: subprocess.Popen | None = None
    web_port: int = 0
    workers: list[subprocess.Popen] = field(default_factory=list)
    worker_names: list[str] = field(default_factory=list)
    beat: subprocess.Popen | None = None

    def _spawn(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        out = open(self.scratch / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            with_lifeline(argv), cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, process_group=0, **kwargs
        )

    def partner_start(self) -> str:
        self.partner = subprocess.Popen(
            with_lifeline([sys.executable, "-m", "bench.engine", "partner"]),
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            process_group=0,
        )
        assert self.partner.stdout is not None
        self.partner_url = self.partner.stdout.readline().strip()
        if not self.partner_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake partner did not start: {self.partner_url!r}")
        return self.partner_url

    def partner_stats(self) -> dict[str, Any]:
        assert self.partner is not None and self.partner.stdin is not None and self.partner.stdout is not None
        self.partner.stdin.write("stats\n")
        self.partner.stdin.flush()
        return json.loads(self.partner.stdout.readline())

    def web_start(self) -> int:
        self.web_port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{self.web_port}"]
        argv += ["-w", str(WEB_WORKERS), "--threads", str(WEB_THREADS), "--timeout", "60", "--keep-alive", "30"]
        if os.access("/dev/shm", os.W_OK):  # as deploy/docker/gunicorn.conf.py: the heartbeat file on tmpfs, not disk
            argv += ["--worker-tmp-dir", "/dev/shm"]
        self.web = self._spawn("web", argv)
        deadline = time.time() + 90
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=2)
                connection.request("GET", "/healthz", headers={"Host": "localhost"})
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if self.web.poll() is not None or time.time() > deadline:
                raise RuntimeError("gunicorn did not start:\n" + (self.scratch / "web.log").read_text()[-3000:])
            time.sleep(0.3)
        return self.web_port

    def workers_start(self, app: Any) -> None:
        host = socket.gethostname()
        for index in range(WORKERS):
            name = f"{TAG}-{index}@{host}"
            argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", LOG_LEVEL, "-n", name]
            argv += ["-Q", "default,engine", "-P", POOL, "-c", str(CONCURRENCY), "-I", "bench.noop", "--without-gossip", "--without-mingle"]
            self.workers.append(self._spawn(f"worker-{index}", argv))
            self.worker_names.append(name)
        deadline = time.time() + 120
        while True:
            replies = app.control.ping(destination=self.worker_names, timeout=1.0) or []
            if len(replies) == len(self.worker_names):
                return
            if any(worker.poll() is not None for worker in self.workers) or time.time() > deadline:
                raise RuntimeError("a Celery worker did not start:\n" + (self.scratch / "worker-0.log").read_text()[-3000:])

    def beat_start(self) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", LOG_LEVEL, "-s", str(self.scratch / "beat-schedule")]
        self.beat = self._spawn("beat", argv)

    def worker_pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    def web_pid(self) -> int | None:
        return self.web.pid if self.web else None

    def stop(self) -> None:
        every = [*self.workers, self.web, self.beat]
        for process in every:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        if self.partner is not None and self.partner.stdin is not None:
            with contextlib.suppress(OSError):
                self.partner.stdin.close()
        for process in [*every, self.partner]:
            if process is None:
                continue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # pool children left behind, if any


# --- resource sampling ----------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Samples the RSS of each worker (its main process plus pool children) twice a second."""

    def __init__(self, worker_pids: list[int]):
        super().__init__(name="rss-sampler", daemon=True)
        self.worker_pids = worker_pids
        self.stopping = threading.Event()
        self.peak_total = 0
        self.peak_per_worker: dict[int, int] = defaultdict(int)
        self.peak_per_process: dict[int, tuple[str, int]] = {}
        self.peak_pss_per_worker: dict[int, int] = defaultdict(int)
        self.samples = 0

    def run(self) -> None:
        import psutil

        tick = 0
        children: dict[int, list[Any]] = {}
        while not self.stopping.wait(0.5):
            total = 0
            for pid in self.worker_pids:
                try:
                    main = psutil.Process(pid)
                    if tick % 10 == 0 or pid not in children:
                        # Finding children scans every process on the machine: a fifth of the bench
                        # process's own CPU when done twice a second. Pools change rarely.
                        children[pid] = main.children(recursive=True)
                    members = [("worker", main)] + [("pool child", child) for child in children[pid]]
                except psutil.NoSuchProcess:
                    continue
                worker_rss = worker_pss = 0
                for role, process in members:
                    try:
                        rss = process.memory_info().rss
                        if tick % 10 == 0:  # PSS reads smaps: sample it less often
                            worker_pss += process.memory_full_info().pss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    worker_rss += rss
                    if rss > self.peak_per_process.get(process.pid, ("", 0))[1]:
                        self.peak_per_process[process.pid] = (role, rss)
                self.peak_per_worker[pid] = max(self.peak_per_worker[pid], worker_rss)
                if worker_pss:
                    self.peak_pss_per_worker[pid] = max(self.peak_pss_per_worker[pid], worker_pss)
                total += worker_rss
            self.peak_total = max(self.peak_total, total)
            self.samples += 1
            tick += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


class Vacuumer(threading.Thread):
    """Stands in for autovacuum when the server has it off (the shared PostgreSQL on the machines
    this bench runs on does): every `seconds` it looks at the tables the load churns and vacuums or
    analyzes each one that has crossed autovacuum's default thresholds (dead rows over 50 + 20 %,
    inserts over 1,000 + 20 %, changes since analyze over 50 + 10 % of the table), as autovacuum would,
    so dead rows do not pile up as they never would in production, and no table is scanned more than
    autovacuum would scan it. Its work runs in a backend of the bench database, which the CPU meter
    counts with PostgreSQL's. With autovacuum on it does nothing."""

    CHECK = """
        SELECT s.schemaname || '.' || s.relname,
               s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0) OR s.n_ins_since_vacuum > 1000 + 0.2 * greatest(c.reltuples, 0),
               s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
        FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
        WHERE s.schemaname || '.' || s.relname = ANY(%s)
    """

    def __init__(self, database: str, tables: list[str], seconds: float = 10.0):
        super().__init__(name="vacuumer", daemon=True)
        self.database, self.tables, self.seconds = database, tables, seconds
        self.stopping = threading.Event()
        self.autovacuum = ""
        self.passes = 0
        self.vacuums = 0
        self.analyzes = 0
        self.busy_seconds = 0.0

    def run(self) -> None:
        import psycopg

        with psycopg.connect(psycopg.conninfo.make_conninfo(_admin_conninfo(), dbname=self.database), autocommit=True) as conn:
            self.autovacuum = str(conn.execute("SHOW autovacuum").fetchone()[0])
            if self.autovacuum == "on":
                return
            while not self.stopping.wait(self.seconds):
                began = time.monotonic()
                for table, vacuum, analyze in conn.execute(self.CHECK, [self.tables]).fetchall():
                    if vacuum or analyze:
                        options = "VACUUM (ANALYZE)" if vacuum and analyze else "VACUUM" if vacuum else "ANALYZE"
                        conn.execute(f"{options} {table}")
                        self.vacuums += bool(vacuum)
                        self.analyzes += bool(analyze)
                self.busy_seconds += time.monotonic() - began
                self.passes += 1

    def stop(self) -> dict[str, Any]:
        self.stopping.set()
        self.join(timeout=60)
        return {
            "what": "the server's autovacuum setting; when off, the bench checked these tables every "
            f"{self.seconds:g} s and vacuumed or analyzed those past autovacuum's default thresholds in its place "
            "(in a backend of the bench database, counted with PostgreSQL's CPU)",
            "autovacuum": self.autovacuum,
            "tables": self.tables if self.autovacuum != "on" else [],
            "passes": self.passes,
            "vacuums": self.vacuums,
            "analyzes": self.analyzes,
            "seconds_vacuuming": round(self.busy_seconds, 1),
        }


def _mb(value: float) -> float:
    return round(value / 1024 / 1024, 1)


class CpuMeter:
    """CPU seconds used by each component between `start()` and `stop()`: our processes by pid
    (with their children), PostgreSQL backends serving the bench database, the Redis server,
    and the whole machine (so what other processes used shows too)."""

    def __init__(self, groups: dict[str, list[int]], database: str, alone: tuple[str, ...] = ()):
        self.groups = groups
        self.alone = alone  # groups counted without their children (this process started the others)
        self.database = database
        self.before: dict[str, dict[int, float]] = {}
        self.after: dict[str, dict[int, float]] = {}
        self.machine_before: Any = None
        self.wall = 0.0

    def _postgres_pids(self) -> list[int]:
        from tenants.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.database])
            return [row[0] for row in cursor.fetchall()]

    def _redis_pids(self) -> list[int]:
        import psutil

        return [process.pid for process in psutil.process_iter(["name"]) if (process.info["name"] or "").startswith("redis-server")]

    def _snapshot(self) -> dict[str, dict[int, float]]:
        import psutil

        groups = {**self.groups, "postgres (bench database backends)": self._postgres_pids(), "redis server": self._redis_pids()}
        snapshot: dict[str, dict[int, float]] = {}
        for name, pids in groups.items():
            seen: dict[int, float] = {}
            for pid in pids:
                try:
                    process = psutil.Process(pid)
                    members = [process] + (process.children(recursive=True) if name not in self.alone else [])
                except psutil.NoSuchProcess:
                    continue
                for member in members:
                    try:
                        times = member.cpu_times()
                        seen[member.pid] = times.user + times.system
                    except psutil.NoSuchProcess:
                        continue
            snapshot[name] = seen
        return snapshot

    def start(self) -> None:
        import psutil

        self.before = self._snapshot()
        self.machine_before = psutil.cpu_times()
        self.wall = time.monotonic()

    def stop(self) -> dict[str, Any]:
        import psutil

        self.after = self._snapshot()
        machine_after = psutil.cpu_times()
        wall = time.monotonic() - self.wall
        used = {}
        for name, after in self.after.items():
            before = self.before.get(name, {})
            used[name] = round(sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items()), 1)
        busy = sum(
            getattr(machine_after, part) - getattr(self.machine_before, part)
            for part in ("user", "system", "nice", "irq", "softirq", "steal")
        )
        ours = sum(used.values())
        return {
            "wall_seconds": round(wall, 1),
            "cpu_seconds_available": round(wall * (os.cpu_count() or 1), 1),
            "machine_busy_cpu_seconds": round(busy, 1),
            "by_component": used,
            "other_processes_on_the_machine": round(max(busy - ours, 0.0), 1),
        }


# --- setup ----------------------------------------------------------------------------------------


@dataclass
class Workspace:
    schema: str
    host: str
    definition_id: int
    secrets: list[str]


def workspace_create(clients: int) -> Workspace:
    """A ready tenant on the enterprise plan, the 4-step workflow published in it, and one API key
    (scope workflows:run) per client."""
    from django.core.management import call_command
    from django_tenants.utils import schema_context

    from accounts.services import api_key_create
    from governance.services import Actor
    from tenants.db import connection
    from tenants.models import Domain
    from tenants.services import BrandingInput, partner_create, tenant_provision
    from workflows.models import DefinitionVersion
    from workflows.services import (
        definition_clone,
        definition_version_publish,
        definition_version_submit,
        template_create,
        template_version_publish,
    )

    call_command("baton_migrate", verbosity=0)
    actor = Actor.system("bench")
    connection.set_schema_to_public()
    partner = partner_create(name="Bench MSP", slug="bench-msp", actor=actor, branding=BrandingInput(product_name="Bench"))
    tenant = tenant_provision(
        partner=partner,
        name="Engine bench",
        slug=TENANT_SLUG,
        domains=[],
        plan=PLAN,
        actor=actor,
        branding=BrandingInput(product_name="Engine bench"),
        admin_email="admin@engine-bench.test",
    )
    assert tenant.status == "ready", tenant.status_reason
    host = Domain.objects.filter(tenant=tenant).order_by("-is_primary", "pk").values_list("domain", flat=True).first()
    assert host, "the bench tenant has no host"
    template = template_create(key=DEFINITION_KEY, name="Bench tender", category="orders", description="", partner_id=None, actor=actor)
    version = template_version_publish(
        template=template,
        version="1.0.0",
        definition=SPEC,
        parameters_schema={"type": "object", "properties": {}},
        documentation="",
        changelog="",
        actor=actor,
    )
    with schema_context(tenant.schema_name):
        definition = definition_clone(
            template_version=version,
            key=DEFINITION_KEY,
            name="Bench tender",
            parameters={},
            connection_bindings={"carrier": "bench-tms"},
            actor=actor,
        )
        draft = DefinitionVersion.objects.get(definition=definition, number=1)
        definition_version_submit(version=draft, actor=actor)
        definition_version_publish(version=draft, actor=actor)
        secrets = [api_key_create(name=f"bench client {index}", scopes=["workflows:run"], actor=actor)[1] for index in range(clients)]
    connection.set_schema_to_public()
    return Workspace(schema=tenant.schema_name, host=host, definition_id=definition.pk, secrets=secrets)


def run_request(index: int, prefix: str) -> tuple[str, dict[str, Any]]:
    """Run `index`'s key (its business key, and its idempotency key when started) and start request."""
    key = f"{prefix}-{index:07d}"
    request = {
        "business_key": key,
        "input": {
            "order_id": key,
            "priority": "rush" if index % 10 == 0 else "standard",
            "lane": "CHI-DAL",
            "weight_kg": 1200 + index % 800,
        },
        "correlation": {"order": key},
    }
    return key, request


def batch_body(indexes: Iterable[int], prefix: str) -> tuple[list[str], bytes]:
    """The keys and the `runs/batch` body starting these runs, each item with its idempotency key."""
    keys, items = [], []
    for index in indexes:
        key, request = run_request(index, prefix)
        keys.append(key)
        items.append({**request, "idempotency_key": key})
    return keys, json.dumps({"runs": items}).encode()


# --- in-process profile -------------------------------------------------------------------------

_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def _query_shape(sql: str) -> str:
    shape = _LITERALS.sub("?", " ".join(sql.split()))
    shape = re.sub(r"IN \((?:\?, )*\?\)", "IN (…)", shape)
    return shape[:160]


class QueryLog:
    """Every query a block ran, by shape, with its time (Django's execute_wrapper)."""

    def __init__(self) -> None:
        self.by_shape: dict[str, list[float]] = defaultdict(list)
        self.total = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.by_shape[_query_shape(sql)].append(time.perf_counter() - started)
            self.total += 1

    def top(self, per: int, limit: int = 12) -> list[dict[str, Any]]:
        rows = sorted(self.by_shape.items(), key=lambda item: -sum(item[1]))[:limit]
        return [
            {
                "query": shape,
                "per_unit": round(len(times) / per, 2),
                "mean_ms": round(1000 * statistics.mean(times), 3),
                "ms_per_unit": round(1000 * sum(times) / per, 3),
            }
            for shape, times in rows
        ]

    def ms(self) -> float:
        return 1000 * sum(sum(times) for times in self.by_shape.values())


def _cprofile_top(profile: cProfile.Profile, units: int, limit: int = 15) -> dict[str, list[dict[str, Any]]]:
    """Per unit of work: the functions with the most time of their own, and Baton's own functions
    (this repository, not libraries) by cumulative time, which says which part of a request or a
    step the time belongs to."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    for (filename, line, function), (_cc, _calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        ours = filename.startswith(str(ROOT)) and "/.venv/" not in filename and "/bench/" not in filename
        where = re.sub(r".*/site-packages/", "", filename.replace(str(ROOT) + "/", ""))
        rows.append((tottime, cumtime, ours, f"{where}:{line}({function})"))

    def entry(own: float, cum: float, name: str) -> dict[str, Any]:
        return {"function": name, "own_ms": round(1000 * own / units, 3), "cumulative_ms": round(1000 * cum / units, 3)}

    by_own = sorted(rows, key=lambda row: -row[0])[:limit]
    by_cumulative = sorted((row for row in rows if row[2]), key=lambda row: -row[1])[:limit]
    return {
        "own_time": [entry(own, cum, name) for own, cum, _ours, name in by_own],
        "baton_cumulative": [entry(own, cum, name) for own, cum, _ours, name in by_cumulative],
    }


@dataclass
class Pass:
    """One measured pass of API starts or engine steps: wall and CPU time of this process, queries."""

    units: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    queries: QueryLog = field(default_factory=QueryLog)

    def figures(self, unit: str) -> dict[str, Any]:
        per = max(self.units, 1)
        return {
            unit + "s": self.units,
            f"wall_ms_per_{unit}": round(1000 * self.wall_s / per, 3),
            f"cpu_ms_per_{unit}": round(1000 * self.cpu_s / per, 3),
            f"queries_per_{unit}": round(self.queries.total / per, 2),
            f"query_ms_per_{unit}": round(self.queries.ms() / per, 3),
        }


def profile_in_process(workspace: Workspace, partner_url: str, count: int) -> dict[str, Any]:
    """Before any worker runs: start runs through the API in this process (Django's test client,
    the whole middleware stack) and advance them with the engine's own functions. One pass logs
    every query and times wall and CPU, one runs under cProfile, and one repeats the first with
    django-tenants' TENANT_LIMIT_SET_CALLS on (Baton leaves it off: `SET search_path` before
    every query), to price that setting. In batch mode, starts in batches of BATCH_SIZE (at least
    one full batch) get a measured and a cProfile pass of their own."""
    from django.test import Client, override_settings
    from django_tenants.utils import schema_context

    from connectors.outbound import HttpConnectorPort
    from tenants.db import connection
    from workflows.engine import connector_port_set, runs_advance_ready
    from workflows.models import Run

    previous_port = connector_port_set(HttpConnectorPort(partner_url))
    client = Client(HTTP_HOST=workspace.host)
    path = f"/api/v1/processes/{DEFINITION_KEY}/runs"
    batch_count = max(count, BATCH_SIZE)
    next_index = itertools.count()

    def starts(measured: Pass | None, profile: cProfile.Profile | None = None, batch: bool = False) -> None:
        """`count` runs one per request, or `batch_count` in batches of BATCH_SIZE."""
        indexes = [next(next_index) for _ in range(batch_count if batch else count)]
        requests: list[tuple[str, bytes, dict[str, str], int]] = []  # path, body, headers, runs
        if batch:
            for offset in range(0, len(indexes), BATCH_SIZE):
                keys, body = batch_body(indexes[offset : offset + BATCH_SIZE], "profile")
                requests.append((path + "/batch", body, {}, len(keys)))
        else:
            for index in indexes:
                key, request = run_request(index, "profile")
                requests.append((path, json.dumps(request).encode(), {"Idempotency-Key": key}, 1))
        wall, cpu = time.perf_counter(), time.process_time()
        with connection.execute_wrapper(measured.queries) if measured else contextlib.nullcontext():
            if profile:
                profile.enable()
            for request_path, body, headers, runs in requests:
                response = client.post(
                    request_path,
                    data=body,
                    content_type="application/json",
                    headers={"Authorization": f"Api-Key {workspace.secrets[0]}", **headers},
                )
                if batch:
                    assert response.status_code == 200 and response.json()["created"] == runs, response.content[:300]
                else:
                    assert response.status_code == 201, (response.status_code, response.content[:300])
            if profile:
                profile.disable()
        if measured:
            measured.units += len(indexes)
            measured.wall_s += time.perf_counter() - wall
            measured.cpu_s += time.process_time() - cpu
        connection.set_schema_to_public()

    def advance(measured: Pass | None, profile: cProfile.Profile | None = None) -> None:
        with schema_context(workspace.schema):
            wall, cpu, runs = time.perf_counter(), time.process_time(), 0
            with connection.execute_wrapper(measured.queries) if measured else contextlib.nullcontext():
                if profile:
                    profile.enable()
                while batch := runs_advance_ready(owner="bench-profile", limit=50):
                    runs += len(batch)
                if profile:
                    profile.disable()
            if measured:
                measured.units += runs * STEPS_PER_RUN
                measured.wall_s += time.perf_counter() - wall
                measured.cpu_s += time.process_time() - cpu
        connection.set_schema_to_public()

    try:
        starts(None)  # warm-up: imports, connections, CEL compiled once per process
        advance(None)
        api, steps = Pass(), Pass()
        starts(api)
        advance(steps)
        api_profile, engine_profile = cProfile.Profile(), cProfile.Profile()
        starts(None, api_profile)
        advance(None, engine_profile)
        with override_settings(TENANT_LIMIT_SET_CALLS=True):
            api_limited, steps_limited = Pass(), Pass()
            starts(api_limited)
            advance(steps_limited)
        batched: dict[str, Any] = {}
        if START == "batch":
            starts(None, batch=True)  # warm-up of the batch view
            advance(None)
            api_batch, api_batch_profile = Pass(), cProfile.Profile()
            starts(api_batch, batch=True)
            advance(None)
            starts(None, api_batch_profile, batch=True)
            advance(None)
            batched = {
                "api_batch_start": {
                    "batch_size": BATCH_SIZE,
                    **api_batch.figures("start"),
                    "queries": api_batch.queries.top(api_batch.units),
                    "python_top": _cprofile_top(api_batch_profile, batch_count),
                }
            }
        with schema_context(workspace.schema):
            unfinished = Run.objects.filter(business_key__startswith="profile-").exclude(status="succeeded").count()
        connection.set_schema_to_public()
    finally:
        connector_port_set(previous_port)
    return {
        "how": "in this process before the workers start: Django's test client through the whole middleware stack, then "
        "runs_advance_ready() on those runs (connector calls to the fake partner over HTTP); queries logged with "
        "connection.execute_wrapper; wall and CPU time of a pass without cProfile; Python hot spots from a second pass "
        "under cProfile (which slows Python code: read its shares, not its times)",
        "profile_runs_not_succeeded": unfinished,
        "api_start": {**api.figures("start"), "queries": api.queries.top(api.units), "python_top": _cprofile_top(api_profile, count)},
        **batched,
        "engine_step": {
            **steps.figures("step"),
            "queries": steps.queries.top(steps.units),
            "python_top": _cprofile_top(engine_profile, count * STEPS_PER_RUN),
        },
        "with_tenant_limit_set_calls": {
            "what": "the same passes with settings.TENANT_LIMIT_SET_CALLS = True (search_path set once per connection "
            "and schema switch; django-tenants forgets it on rollback)",
            "api_start": api_limited.figures("start"),
            "engine_step": steps_limited.figures("step"),
        },
    }


def pyspy_sample(pid: int, seconds: int, out: Path) -> subprocess.Popen | None:
    """py-spy record of `pid` (and its children) for `seconds`, raw folded stacks, in the background."""
    binary = shutil.which("py-spy")
    if not binary:
        return None
    argv = [binary, "record", "--pid", str(pid), "--subprocesses", "--duration", str(seconds), "--rate", "50"]
    argv += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pyspy_summary(path: Path, limit: int = 15) -> dict[str, Any]:
    """Own-time share of the hottest frames in a folded-stacks file, and the share of samples
    under a few landmarks (SQL execution, the connector call, CEL, JSON, Django/DRF machinery)."""
    if not path.exists():
        return {}
    own: Counter[str] = Counter()
    landmarks: Counter[str] = Counter()
    total = 0
    marks = {
        "database (psycopg execute/fetch)": ("psycopg/cursor.py", "psycopg/connection.py"),
        "connector HTTP call": ("connectors/outbound.py",),
        "CEL": ("celpy/",),
        "broker (kombu/redis)": ("kombu/", "redis/"),
        "workflows.engine": ("workflows/engine.py",),
        "DRF": ("rest_framework/",),
        "idle / waiting": ("select", "poll", "epoll", "wait (threading.py", "accept"),
    }
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[re.sub(r".*/site-packages/", "", frames[-1])] += count
        for name, needles in marks.items():
            if any(needle in stack for needle in needles):
                landmarks[name] += count
    if not total:
        return {}
    return {
        "samples": total,
        "share_under": {name: round(count / total, 3) for name, count in landmarks.most_common()},
        "hottest_frames": [{"frame": frame[:160], "share": round(count / total, 3)} for frame, count in own.most_common(limit)],
    }


# --- the engine alone -----------------------------------------------------------------------------


def capacity_runs_create(workspace: Workspace, count: int) -> None:
    """Before the workers start: one run started by `run_start`, then `count` copies of its row
    (business keys `capacity-…`) inserted in one statement, all ready. The engine only reads the
    row, so the copies run exactly like started runs; they skip the API and the audit row, which
    is the point: the workers drain them with the web idle."""
    from django_tenants.utils import schema_context

    from governance.services import Actor
    from tenants.db import connection
    from workflows.models import Definition, Run
    from workflows.runs import run_start

    with schema_context(workspace.schema):
        definition = Definition.objects.get(pk=workspace.definition_id)
        _key, request = run_request(0, "capacity")
        template, _created = run_start(
            definition=definition,
            input=request["input"],
            business_key="capacity-template",
            trigger="api",
            actor=Actor.system("bench"),
        )
        columns = [
            str(f.column) for f in Run._meta.concrete_fields if f.column not in ("id", "business_key", "idempotency_key", "created_at")
        ]
        listed = ", ".join(columns)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO workflows_run ({listed}, business_key, idempotency_key, created_at)
                SELECT {listed}, 'capacity-' || lpad(n::text, 7, '0'), '', now() FROM workflows_run, generate_series(1, %s) n
                WHERE id = %s
                """,
                [count, template.pk],
            )
    connection.set_schema_to_public()


def capacity_measure(app: Any, workspace: Workspace, count: int, timeout: float) -> dict[str, Any]:
    """Wake the workers for the capacity runs and time, from the step rows, how fast they drain."""
    from django_tenants.utils import schema_context

    from tenants.db import connection

    for _ in range(WORKERS * CONCURRENCY):
        app.send_task("workflows.advance", headers={"_schema_name": workspace.schema})
    began = time.monotonic()
    query = "SELECT count(*) FROM workflows_run WHERE business_key LIKE 'capacity-%%' AND finished_at IS NULL"
    with schema_context(workspace.schema), connection.cursor() as cursor:
        while time.monotonic() - began < timeout:
            cursor.execute(query)
            if not cursor.fetchone()[0]:
                break
            time.sleep(0.5)
        cursor.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE se.status = 'succeeded'), extract(epoch FROM max(se.finished_at) - min(se.started_at)),
                   count(DISTINCT se.run_id) FILTER (WHERE r.status = 'succeeded')
            FROM workflows_stepexecution se JOIN workflows_run r ON r.id = se.run_id
            WHERE r.business_key LIKE 'capacity-%%'
            """
        )
        executions, succeeded_steps, seconds, succeeded_runs = cursor.fetchone()
        cursor.execute(query)
        unfinished = int(cursor.fetchone()[0])
    connection.set_schema_to_public()
    seconds = float(seconds or 0) or 1e-9
    return {
        "what": "runs inserted ready before the workers started (copies of one run_start row), drained by the same workers "
        "with the web idle; timed from the first step started to the last step finished",
        "runs": count + 1,
        "runs_succeeded": int(succeeded_runs),
        "runs_unfinished": unfinished,
        "seconds": round(seconds, 2),
        "runs_per_s": round(int(succeeded_runs) / seconds, 1),
        "step_transitions_per_s": round(int(succeeded_steps) / seconds, 1),
        "step_executions": int(executions),
    }


# --- the baseline ---------------------------------------------------------------------------------


def noop_baseline(app: Any, worker_names: list[str], tasks: int) -> dict[str, Any]:
    """Fill a queue with `tasks` no-op tasks, let the same workers consume it, and time until the
    queue and the broker's unacknowledged set are empty."""
    if not app.conf.broker_url.startswith(("redis", "rediss")):
        return {"noop_tasks_per_s": None, "why": "the baseline reads queue depth from a Redis broker"}
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(tasks):
            app.send_task("bench.noop", queue=NOOP_QUEUE, producer=producer)
    publish_s = time.perf_counter() - started
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        queued = channel.client.llen(NOOP_QUEUE)
        log(f"baseline: {queued} no-op tasks queued in {publish_s:.1f}s; consuming")
        began = time.perf_counter()
        app.control.add_consumer(NOOP_QUEUE, destination=worker_names, reply=True, timeout=5)
        while channel.client.llen(NOOP_QUEUE) or channel.client.hlen(channel.unacked_key):
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
    app.control.cancel_consumer(NOOP_QUEUE, destination=worker_names, reply=True, timeout=5)
    return {
        "what": "bare Celery no-op tasks (bench.noop) consumed by the same workers from the same broker, queue filled first",
        "noop_tasks": tasks,
        "seconds": round(elapsed, 2),
        "noop_tasks_per_s": round(tasks / elapsed, 1),
    }


# --- load -----------------------------------------------------------------------------------------


@dataclass
class Start:
    """One run's start: in batch mode an item of a batch request, answered with the request."""

    key: str
    sent_at: float
    answered_at: float
    status: int
    run_id: int | None
    attempts: int


class BacklogMonitor(threading.Thread):
    """Counts the tenant's unfinished runs (ready or being advanced: `ready_at` is set until a run
    finishes or parks, a partial index) five times a second, on a connection of its own."""

    def __init__(self, schema: str, app: Any):
        super().__init__(name="backlog", daemon=True)
        self.schema = schema
        self.app = app
        self.backlog = 0
        self.peak = 0
        self.engine_queue_peak = 0
        self.engine_queue_at_load_end = 0
        self.stopping = threading.Event()

    def engine_queue(self) -> int:
        """Messages waiting in the engine queue (Redis brokers only; wake-ups are not coalesced)."""
        if not self.app.conf.broker_url.startswith(("redis", "rediss")):
            return 0
        with self.app.connection_for_write() as conn:
            return int(conn.default_channel.client.llen("engine"))

    def run(self) -> None:
        import psycopg
        from django.conf import settings

        database = settings.DATABASES["default"]
        conninfo = psycopg.conninfo.make_conninfo(
            dbname=database["NAME"],
            user=database["USER"] or None,
            host=database["HOST"] or None,
            port=str(database["PORT"] or "") or None,
            password=database["PASSWORD"] or None,
        )
        with psycopg.connect(conninfo, autocommit=True) as conn:
            tick = 0
            while not self.stopping.wait(0.2):
                row = conn.execute(f'SELECT count(*) FROM "{self.schema}".workflows_run WHERE ready_at IS NOT NULL').fetchone()
                self.backlog = int(row[0]) if row else 0
                self.peak = max(self.peak, self.backlog)
                if tick % 5 == 0:
                    self.engine_queue_peak = max(self.engine_queue_peak, self.engine_queue())
                tick += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


class LoadGenerator:
    """`clients` threads, each with its own keep-alive connection and API key, starting runs with
    unique business keys `{prefix}-…`, each also the run's idempotency key (so a retried start
    after a timeout or a 5xx is the same run): one run per request with start "single", or
    BATCH_SIZE per request to `runs/batch` with "batch", accounted per item. With `rate`,
    starts are spread evenly over time; with a backlog monitor, a client waits while its request
    would take the unfinished runs plus those in unanswered requests over `max_backlog`."""

    def __init__(
        self,
        port: int,
        host: str,
        secrets: list[str],
        runs: int,
        *,
        prefix: str,
        start: str,
        rate: float,
        max_backlog: int,
        backlog: BacklogMonitor | None = None,
    ):
        self.port, self.host, self.secrets, self.runs, self.prefix, self.start = port, host, secrets, runs, prefix, start
        self.rate, self.max_backlog, self.backlog = rate, max_backlog, backlog
        self.per_request = BATCH_SIZE if start == "batch" else 1
        self.held_back_s = 0.0
        self.path = f"/api/v1/processes/{DEFINITION_KEY}/runs" + ("/batch" if start == "batch" else "")
        self.issued = 0
        self.in_flight = 0
        self.lock = threading.Lock()
        self.starts: list[Start] = []
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.began = 0.0

    def _admit(self, runs: int) -> None:
        """Wait until `runs` more fit under max_backlog, then count them in flight (a request
        larger than the cap waits for an empty backlog)."""
        limit = max(self.max_backlog - runs, 0)
        waited_since: float | None = None
        while True:
            with self.lock:
                if self.backlog is None or self.backlog.backlog + self.in_flight <= limit:
                    self.in_flight += runs
                    if waited_since is not None:
                        self.held_back_s += time.perf_counter() - waited_since
                    return
            waited_since = waited_since or time.perf_counter()
            time.sleep(0.05)

    def _post(
        self, conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, int, bytes, int]:
        """POST with retries on connection errors, 5xx and 429: (connection, status, body, attempts)."""
        status, data = 0, b""
        for attempt in range(1, 11):
            try:
                conn.request("POST", self.path, body, headers)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                with self.lock:
                    self.errors[type(error).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                time.sleep(0.1 * attempt)
                continue
            with self.lock:
                self.statuses[status] += 1
            if status == 429:
                time.sleep(float(response.getheader("Retry-After") or 1))
                continue
            if status >= 500:
                time.sleep(0.1 * attempt)
                continue
            break  # answered: 2xx, or a 4xx other than 429 (not retried)
        return conn, status, data, attempt

    def _items(self, status: int, data: bytes, runs: int) -> list[tuple[int, int | None]]:
        """(status, run id) of each run of an answered request. A batch item's status is 201 for
        a run created, 200 for an existing one, or its error's; a refused request's is the
        request's. Refused items are counted in `errors` by status."""
        if self.start != "batch":
            return [(status, int(json.loads(data)["id"]) if status in (200, 201) else None)]
        if status != 200:
            return [(status, None)] * runs
        answered = {item["index"]: item for item in json.loads(data)["runs"]}
        items: list[tuple[int, int | None]] = []
        for position in range(runs):
            item = answered.get(position, {"error": {"status": 0}})  # 0: the answer left the item out
            if "error" in item:
                items.append((int(item["error"]["status"]), None))
                with self.lock:
                    self.errors[f"item {item['error']['status']}"] += 1
            else:
                items.append((201 if item["created"] else 200, int(item["id"])))
        return items

    def _client(self, secret: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {
            "Host": self.host,
            "Authorization": f"Api-Key {secret}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        mine: list[Start] = []
        while True:
            with self.lock:
                first, self.issued = self.issued, self.issued + self.per_request
            if first >= self.runs:
                break
            indexes = range(first, min(first + self.per_request, self.runs))
            if self.rate:
                delay = self.began + first / self.rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            self._admit(len(indexes))
            if self.start == "batch":
                keys, body = batch_body(indexes, self.prefix)
                request_headers = headers
            else:
                key, request = run_request(first, self.prefix)
                keys, body = [key], json.dumps(request).encode()
                request_headers = {**headers, "Idempotency-Key": key}
            sent_at = time.time()
            conn, status, data, attempts = self._post(conn, body, request_headers)
            answered_at = time.time()
            with self.lock:
                self.in_flight -= len(indexes)
            for key, (item_status, run_id) in zip(keys, self._items(status, data, len(keys)), strict=True):
                mine.append(Start(key, sent_at, answered_at, item_status, run_id, attempts))
        conn.close()
        with self.lock:
            self.starts.extend(mine)

    def run(self) -> None:
        self.began = time.time()
        threads = [threading.Thread(target=self._client, args=(self.secrets[i % len(self.secrets)],), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        last = 0
        while any(thread.is_alive() for thread in threads):
            time.sleep(5)
            issued = min(self.issued, self.runs)
            log(f"load ({self.start}): {issued}/{self.runs} starts sent ({(issued - last) / 5:.0f}/s)")
            last = issued
        for thread in threads:
            thread.join()


def worker_task_totals(app: Any, names: list[str]) -> Counter[str]:
    """Tasks each worker ran since it started, by name, added up (Celery's `inspect stats`)."""
    totals: Counter[str] = Counter()
    for stats in (app.control.inspect(destination=names, timeout=3).stats() or {}).values():
        totals.update(stats.get("total", {}))
    return totals


def runs_finished(schema: str, definition_id: int, prefix: str) -> int:
    """Finished runs of the bench definition with a business key `{prefix}-…`."""
    from django_tenants.utils import schema_context

    from tenants.db import connection

    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM workflows_run WHERE definition_id = %s AND business_key LIKE %s AND finished_at IS NOT NULL",
            [definition_id, f"{prefix}-%"],
        )
        return int(cursor.fetchone()[0])


def drain(schema: str, definition_id: int, prefix: str, accepted: int, timeout: float) -> float:
    """Wait until every accepted run finished (or `timeout`); returns the seconds waited."""
    began = time.monotonic()
    last_log = 0.0
    while time.monotonic() - began < timeout:
        finished = runs_finished(schema, definition_id, prefix)
        if finished >= accepted:
            break
        if time.monotonic() - last_log > 10:
            log(f"drain: {finished}/{accepted} runs finished")
            last_log = time.monotonic()
        time.sleep(1)
    return time.monotonic() - began


@dataclass
class Phase:
    """A load phase: its starts, the backlog they built, the CPU used during the load, the drain."""

    load: LoadGenerator
    monitor: BacklogMonitor
    cpu: dict[str, Any]
    drain_seconds: float


def load_phase(processes: Processes, app: Any, workspace: Workspace, *, prefix: str, runs: int, start: str, max_backlog: int) -> Phase:
    """Start `runs` runs (business keys `{prefix}-…`) through the web, metering each component's
    CPU during the load, then wait until the accepted ones finished."""
    assert processes.web is not None and processes.beat is not None
    monitor = BacklogMonitor(workspace.schema, app)
    monitor.start()
    load = LoadGenerator(
        processes.web_port,
        workspace.host,
        workspace.secrets,
        runs,
        prefix=prefix,
        start=start,
        rate=RATE,
        max_backlog=max_backlog,
        backlog=monitor if max_backlog else None,
    )
    meter = CpuMeter(
        {
            "web (gunicorn)": [processes.web.pid],
            "workers": processes.worker_pids(),
            "beat": [processes.beat.pid],
            "fake partner": [processes.partner.pid] if processes.partner else [],
            "load generator (this process)": [os.getpid()],
        },
        BENCH_DB,
        alone=("load generator (this process)",),
    )
    how = f"batches of {BATCH_SIZE}" if start == "batch" else "one per request"
    log(f"load: {runs} runs {prefix}-…, {how}, {CLIENTS} clients" + (f", {RATE:g}/s offered" if RATE else ", closed loop"))
    meter.start()
    load.run()
    cpu = meter.stop()
    monitor.engine_queue_at_load_end = monitor.engine_queue()
    accepted = len({start.run_id for start in load.starts if start.run_id is not None})
    log(f"load done: {accepted} runs accepted; draining")
    drained = drain(workspace.schema, workspace.definition_id, prefix, accepted, DRAIN_SECONDS)
    monitor.stop()
    return Phase(load, monitor, cpu, drained)


# --- analysis -------------------------------------------------------------------------------------


def partner_since(stats: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What the partner saw after `before` was taken: requests and effects, keys newly doubled."""
    known = set(before["keys_with_more_than_one_effect"])
    return {
        **{name: stats[name] - before[name] for name in ("requests", "effects", "replayed")},
        "keys_with_more_than_one_effect": [key for key in stats["keys_with_more_than_one_effect"] if key not in known],
    }


def analyse(workspace: Workspace, load: LoadGenerator, partner_stats: dict[str, Any]) -> dict[str, Any]:
    """Throughput over the steady window, latency, lost and duplicated runs, of the runs with the
    load's key prefix (so each phase is judged on its own runs)."""
    from django_tenants.utils import schema_context

    from tenants.db import connection

    keyed = [workspace.definition_id, f"{load.prefix}-%"]
    accepted_ids = {start.run_id for start in load.starts if start.run_id is not None}
    first_sent = min(start.sent_at for start in load.starts)
    last_answer = max(start.answered_at for start in load.starts)
    load_seconds = last_answer - first_sent

    with schema_context(workspace.schema), connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT id, status, extract(epoch FROM created_at), extract(epoch FROM finished_at), business_key
            FROM workflows_run WHERE definition_id = %s AND business_key LIKE %s
            """,
            keyed,
        )
        rows = cursor.fetchall()
        runs = {row[0]: (row[1], float(row[2]), float(row[3]) if row[3] is not None else None) for row in rows}
        run_keys = {row[0]: row[4] for row in rows}
        finished_all = [finished for _status, _created, finished in runs.values() if finished is not None]
        window_start = first_sent + max(MIN_WARMUP_SECONDS, WARMUP_FRACTION * load_seconds)
        window_end = last_answer
        steady = window_end - window_start >= MIN_WARMUP_SECONDS
        if not steady:  # a load this short (all of it under the backlog cap, say) has no steady state
            window_start, window_end = first_sent, max(finished_all, default=last_answer) + 0.001  # the last one included
        window = max(window_end - window_start, 1e-9)
        cursor.execute(
            """
            SELECT count(*) FROM workflows_stepexecution se JOIN workflows_run r ON r.id = se.run_id
            WHERE r.definition_id = %s AND r.business_key LIKE %s AND se.status = 'succeeded'
              AND se.finished_at >= to_timestamp(%s) AND se.finished_at < to_timestamp(%s)
            """,
            [*keyed, window_start, window_end],
        )
        steps_in_window = int(cursor.fetchone()[0])
        cursor.execute(
            """
            SELECT se.run_id, se.step_id, count(*) FROM workflows_stepexecution se JOIN workflows_run r ON r.id = se.run_id
            WHERE r.definition_id = %s AND r.business_key LIKE %s AND se.status = 'succeeded'
            GROUP BY se.run_id, se.step_id HAVING count(*) > 1
            """,
            keyed,
        )
        doubled_steps = cursor.fetchall()
        cursor.execute(
            """
            SELECT r.id FROM workflows_run r
            WHERE r.definition_id = %s AND r.business_key LIKE %s AND r.status = 'succeeded'
              AND (SELECT count(DISTINCT se.step_id) FROM workflows_stepexecution se WHERE se.run_id = r.id AND se.status = 'succeeded') <> %s
            """,
            [*keyed, STEPS_PER_RUN],
        )
        incomplete = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            """
            SELECT se.status, count(*) FROM workflows_stepexecution se JOIN workflows_run r ON r.id = se.run_id
            WHERE r.definition_id = %s AND r.business_key LIKE %s GROUP BY se.status
            """,
            keyed,
        )
        step_statuses = dict(cursor.fetchall())
        cursor.execute(
            "SELECT count(*) FROM workflows_incident i JOIN workflows_run r ON r.id = i.run_id WHERE r.definition_id = %s AND r.business_key LIKE %s",
            keyed,
        )
        incidents = int(cursor.fetchone()[0])

    missing = [run_id for run_id in accepted_ids if run_id not in runs]
    not_succeeded = Counter(runs[run_id][0] for run_id in accepted_ids if run_id in runs and runs[run_id][0] != "succeeded")
    # A start answered with a run of another key (a batch answer out of order, say) has no run of its own.
    misanswered = sum(1 for start in load.starts if start.run_id in run_keys and run_keys[start.run_id] != start.key)
    lost = len(missing) + sum(not_succeeded.values()) + misanswered
    extra_runs = max(len(runs) - len(accepted_ids), 0)
    partner_doubled = partner_stats.get("keys_with_more_than_one_effect", [])
    doubled_runs = {run_id for run_id, _step, _count in doubled_steps} | {int(key.split(":")[0]) for key in partner_doubled}
    duplicated = len(doubled_runs) + extra_runs

    completed_in_window = [
        finished for _status, _created, finished in runs.values() if finished is not None and window_start <= finished < window_end
    ]
    accepted_in_window = [start for start in load.starts if start.run_id is not None and window_start <= start.answered_at < window_end]
    latencies = [
        1000 * (finished - created)
        for status, created, finished in runs.values()
        if status == "succeeded" and finished is not None and window_start <= created < window_end
    ]
    succeeded = sum(1 for status, _created, _finished in runs.values() if status == "succeeded")
    answer_ms = [1000 * (start.answered_at - start.sent_at) for start in load.starts if start.run_id is not None]
    return {
        "runs_accepted": len(accepted_ids),
        "runs_completed": succeeded,
        "start_answers": {str(status): count for status, count in sorted(load.statuses.items())},
        "start_errors": dict(load.errors),
        "starts_not_accepted": sum(1 for start in load.starts if start.run_id is None),
        "starts_answered_existing": sum(1 for start in load.starts if start.run_id is not None and start.status == 200),
        "load_seconds": round(load_seconds, 1),
        "steady_window": {
            "what": "from the end of the warm-up to the last start answered"
            if steady
            else f"no steady state: under {MIN_WARMUP_SECONDS:g} s of load after the warm-up; the whole phase instead, "
            "from the first start sent to the last run finished, drain included",
            "from_s": round(window_start - first_sent, 1),
            "to_s": round(window_end - first_sent, 1),
            "seconds": round(window, 1),
        },
        "accepted_runs_per_s": round(len(accepted_in_window) / window, 1),
        "completed_runs_per_s": round(len(completed_in_window) / window, 1),
        "step_transitions_per_s": round(steps_in_window / window, 1),
        "completed_runs_per_s_whole_run": round(succeeded / (max(finished_all) - first_sent), 1) if finished_all else 0,
        "latency_ms": {
            "what": "created_at → finished_at of runs created in the steady window",
            "n": len(latencies),
            "p50": round(percentile(latencies, 0.5), 1) if latencies else None,
            "p99": round(percentile(latencies, 0.99), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
        },
        "api_answer_ms": {
            "what": f"sent → answered of each accepted start's request ({load.per_request} run(s) per request), retries included",
            "p50": round(percentile(answer_ms, 0.5), 1),
            "p99": round(percentile(answer_ms, 0.99), 1),
        }
        if answer_ms
        else {},
        "lost": lost,
        "duplicated": duplicated,
        "checks": {
            "accepted_runs_missing": len(missing),
            "accepted_runs_not_succeeded": dict(not_succeeded),
            "accepted_starts_answered_with_another_run": misanswered,
            "steps_succeeded_twice": len(doubled_steps),
            "partner_keys_with_two_effects": len(partner_doubled),
            "runs_beyond_accepted_starts": extra_runs,
            "succeeded_runs_without_all_4_steps": len(incomplete),
            "step_executions_by_status": step_statuses,
            "incidents": incidents,
            "partner": {key: value for key, value in partner_stats.items() if key != "keys_with_more_than_one_effect"},
        },
    }


# --- main -----------------------------------------------------------------------------------------


def _admin_conninfo() -> str:
    import dj_database_url
    import psycopg

    admin_url = dj_database_url.parse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    return psycopg.conninfo.make_conninfo(
        dbname="postgres",
        user=admin_url["USER"] or None,
        host=admin_url["HOST"] or None,
        port=admin_url["PORT"] or None,
        password=admin_url["PASSWORD"] or None,
    )


def main() -> None:
    if START not in ("batch", "single") or not 1 <= BATCH_SIZE <= 500:
        raise SystemExit(f"BENCH_ENGINE_START is batch or single (not {START!r}), BENCH_ENGINE_BATCH_SIZE 1-500 (not {BATCH_SIZE})")

    isolated_run("engine", database=BENCH_DB, tag=TAG, log_level=LOG_LEVEL, run=run)


def isolated_run(name: str, *, database: str, tag: str, log_level: str, run: Callable[[Processes, Path], Any]) -> None:
    """What every server bench does around its `run`: this process, the web and the workers share
    a throwaway database, a queue and cache prefix (`tag`) and the settings; afterwards the
    processes stop, the prefix's Redis keys and the database go, and the scratch folder too unless
    BENCH_<NAME>_KEEP_LOGS is set (and the database, when BENCH_<NAME>_KEEP_DATABASE is)."""
    import psycopg

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.update(
        DATABASE_NAME=database,
        DEBUG="0",
        LOG_LEVEL=log_level,
        BATON_FAST_PASSWORD_HASHER="1",
        BATON_CELERY_KEY_PREFIX=f"{tag}-",
        BATON_CACHE_KEY_PREFIX=tag,
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    for variable in ("BATON_DEMO_TRAFFIC", "BATON_CONNECTOR_HTTP_URL"):
        os.environ.pop(variable, None)
    conninfo = _admin_conninfo()
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    (scratch / "prometheus").mkdir()
    processes = Processes(scratch=scratch, env={})
    try:
        run(processes, scratch)
    finally:
        processes.stop()
        redis_cleanup(tag)
        from django.db import connections

        connections.close_all()
        if os.environ.get(f"BENCH_{name.upper()}_KEEP_DATABASE"):  # to look into afterwards; drop it by hand
            log(f"database {database} kept")
        else:
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if os.environ.get(f"BENCH_{name.upper()}_KEEP_LOGS"):
            log(f"logs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def redis_cleanup(tag: str = TAG) -> None:
    """Remove a run's broker and cache keys (they all carry its prefix, `tag`)."""
    with contextlib.suppress(Exception):
        import redis
        from django.conf import settings

        for url in {settings.REDIS_URL, os.environ.get("CELERY_BROKER_URL", "") or settings.REDIS_URL}:
            if not url.startswith(("redis", "unix")):
                continue
            client = redis.Redis.from_url(url)
            keys = [key for pattern in (f"{tag}*", f"*{tag}*") for key in client.scan_iter(match=pattern, count=1000)]
            for offset in range(0, len(keys), 1000):
                client.delete(*keys[offset : offset + 1000])


def run(processes: Processes, scratch: Path) -> None:
    import django

    django.setup()
    from django.conf import settings

    from config.celery import app
    from tenants.db import connection

    load_before = os.getloadavg()
    began = time.monotonic()
    log(f"database {BENCH_DB}: migrating, provisioning the bench tenant, publishing {DEFINITION_KEY}")
    workspace = workspace_create(CLIENTS)
    log(f"tenant {workspace.schema} at {workspace.host} ready in {time.monotonic() - began:.0f}s")

    processes.env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        "DJANGO_ENV": os.environ.get("DJANGO_ENV", "development"),
        "PROMETHEUS_MULTIPROC_DIR": str(scratch / "prometheus"),
    }
    partner_url = processes.partner_start()
    processes.env["BATON_CONNECTOR_HTTP_URL"] = partner_url
    log(f"fake partner at {partner_url}")

    profile: dict[str, Any] = {}
    if PROFILE:
        log("profiling an API start and the engine's steps in this process")
        profile = profile_in_process(workspace, partner_url, PROFILE_RUNS)
        api, step = profile["api_start"], profile["engine_step"]
        batched = profile.get("api_batch_start")
        log(
            f"profile: API start {api['queries_per_start']} queries, {api['cpu_ms_per_start']} ms CPU; "
            + (
                f"in batches of {BATCH_SIZE} {batched['queries_per_start']} queries, {batched['cpu_ms_per_start']} ms CPU a run; "
                if batched
                else ""
            )
            + f"step {step['queries_per_step']} queries, {step['cpu_ms_per_step']} ms CPU"
        )

    if CAPACITY_RUNS:
        capacity_runs_create(workspace, CAPACITY_RUNS)
    processes.web_start()
    processes.workers_start(app)
    processes.beat_start()
    log(f"gunicorn on :{processes.web_port} ({WEB_WORKERS}x{WEB_THREADS}), {WORKERS} worker(s) {POOL} -c {CONCURRENCY}, beat")

    sampler = RssSampler(processes.worker_pids())
    sampler.start()
    vacuumer = Vacuumer(BENCH_DB, [f"{workspace.schema}.{table}" for table in ("workflows_run",)])
    vacuumer.start()
    capacity: dict[str, Any] = {}
    if CAPACITY_RUNS:
        log(f"engine alone: the workers drain {CAPACITY_RUNS} ready runs")
        capacity = capacity_measure(app, workspace, CAPACITY_RUNS, DRAIN_SECONDS)
        log(f"engine alone: {capacity['runs_per_s']} runs/s, {capacity['step_transitions_per_s']} step transitions/s")
    baseline = noop_baseline(app, processes.worker_names, NOOP_TASKS)
    log(f"baseline: {baseline.get('noop_tasks_per_s')} no-op tasks/s")

    tasks_before = worker_task_totals(app, processes.worker_names)
    spies: list[tuple[str, Path, subprocess.Popen]] = []
    if PYSPY_SECONDS:
        for name, pid in (("worker", processes.worker_pids()[0]), ("web", processes.web_pid())):
            spy = pyspy_sample(pid, PYSPY_SECONDS, scratch / f"pyspy-{name}.txt") if pid else None
            if spy is not None:
                spies.append((name, scratch / f"pyspy-{name}.txt", spy))
    main_phase = load_phase(processes, app, workspace, prefix="bench", runs=RUNS, start=START, max_backlog=MAX_BACKLOG)
    tasks_after = worker_task_totals(app, processes.worker_names)
    tasks_during = {name: tasks_after.get(name, 0) - tasks_before.get(name, 0) for name in tasks_after}
    for _name, _path, spy in spies:
        spy.wait(timeout=PYSPY_SECONDS + 30)
    partner_stats = processes.partner_stats()
    connection.set_schema_to_public()
    figures = analyse(workspace, main_phase.load, partner_stats)

    single: dict[str, Any] = {
        "skipped": "the main phase started runs one per request" if START == "single" else "BENCH_ENGINE_SINGLE_RUNS=0"
    }
    if SINGLE_RUNS:
        log(f"single_start: {SINGLE_RUNS} runs one per request, same web and workers")
        single_phase = load_phase(
            processes, app, workspace, prefix="single", runs=SINGLE_RUNS, start="single", max_backlog=SINGLE_MAX_BACKLOG
        )
        connection.set_schema_to_public()
        single = {
            "what": "after the main phase drained, the single-request path with the same clients, web, workers and beat: "
            "POST /api/v1/processes/{key}/runs, one run per request (business key as Idempotency-Key), business keys single-…",
            "runs_requested": SINGLE_RUNS,
            "max_backlog": SINGLE_MAX_BACKLOG or None,
            "drain_seconds": round(single_phase.drain_seconds, 1),
            **analyse(workspace, single_phase.load, partner_since(processes.partner_stats(), partner_stats)),
            "backlog": {"peak": single_phase.monitor.peak, "client_seconds_held_back": round(single_phase.load.held_back_s, 1)},
            "cpu_during_load": single_phase.cpu,
        }
    sampler.stop()
    vacuuming = vacuumer.stop()

    rss_per_process = [{"role": role, "rss_mb": _mb(rss)} for role, rss in sorted(sampler.peak_per_process.values())]
    per_worker = [_mb(value) for value in sampler.peak_per_worker.values()]
    peak_worker = max(per_worker) if per_worker else None
    peak_all_workers = _mb(sampler.peak_total)
    worker_rss: dict[str, Any] = {
        "what": "peak RSS of each worker (one `celery worker` with its pool children; the target is judged on this), "
        "and of all workers together, sampled every 0.5 s during the baseline, both load phases and their drains",
        "peak": peak_worker,
        "peak_all_workers": peak_all_workers,
        "per_worker_peak": per_worker,
        "per_worker_peak_pss": [_mb(value) for value in sampler.peak_pss_per_worker.values()],
        "per_process": rss_per_process,
    }
    noop_rate = baseline.get("noop_tasks_per_s")
    met = {
        "completed_runs_per_s": figures["completed_runs_per_s"] >= TARGETS["completed_runs_per_s"],
        "step_transitions_over_noop_tasks": bool(noop_rate) and figures["step_transitions_per_s"] > noop_rate,
        "lost": figures["lost"] == 0,
        "duplicated": figures["duplicated"] == 0,
        "single_start_lost": single["lost"] == 0 if SINGLE_RUNS else None,
        "single_start_duplicated": single["duplicated"] == 0 if SINGLE_RUNS else None,
        "worker_rss_mb": peak_worker is not None and peak_worker < TARGETS["worker_rss_mb"],
        "worker_rss_mb_all_workers_together": peak_all_workers < TARGETS["worker_rss_mb"],
        "engine_alone_step_transitions_over_noop_tasks": bool(capacity and noop_rate and capacity["step_transitions_per_s"] > noop_rate),
    }
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]
    endpoint = main_phase.load.path.replace(DEFINITION_KEY, "{key}")
    runs_note = [
        f"runs started in batches of {BATCH_SIZE} (BENCH_ENGINE_START=batch); single_start measures one run per request"
        if START == "batch"
        else "runs started one per request (BENCH_ENGINE_START=single)"
    ]
    if RUNS < 100_000:
        runs_note.append(
            f"fewer than the issue's 100,000 (BENCH_ENGINE_RUNS): at {figures['completed_runs_per_s']} runs/s, 100,000 runs "
            f"would take about {100_000 / max(figures['completed_runs_per_s'], 0.1) / 60:.0f} minutes on this machine"
        )
    result = {
        "benchmark": "engine",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(load_before),
        "what": "runs of a 4-step workflow (decision, transform, connector over HTTP to a local fake partner, notify as the "
        f"recorded milestone) started through POST {endpoint} and advanced by Celery workers",
        "config": {
            "vacuum": vacuuming,
            "workers": WORKERS,
            "pool": POOL,
            "concurrency": CONCURRENCY,
            "web_workers": WEB_WORKERS,
            "web_threads": WEB_THREADS,
            "clients": CLIENTS,
            "api_keys": len(workspace.secrets),
            "offered_rate_per_s": RATE or "closed loop",
            "start": START,
            "batch_size": BATCH_SIZE if START == "batch" else None,
            "endpoint": endpoint,
            "max_backlog": MAX_BACKLOG or None,
            "broker": app.conf.broker_url.split(":", 1)[0],
            "database": {"kind": "embedded" if settings.EMBEDDED_SERVICES else "external", "server_version": server_version},
            "log_level": LOG_LEVEL,
            "debug": settings.DEBUG,
            "settings_module": os.environ["DJANGO_SETTINGS_MODULE"],
            "beat": True,
            "milestone_step": "notify (recorded in its StepExecution output; delivery is not implemented yet)",
            "connector": "connectors.outbound.HttpConnectorPort → tests.fake_partner (a process of its own, loopback)",
            "steps": [f"{step['id']}:{step['kind']}" for step in SPEC["steps"]],
            "drain_seconds": round(main_phase.drain_seconds, 1),
        },
        "runs_requested": RUNS,
        "runs_note": "; ".join(runs_note),
        **figures,
        "backlog": {
            "what": "unfinished runs (ready or being advanced); a client waits while its request would take them, with the "
            "runs of requests not yet answered, over max_backlog",
            "peak": main_phase.monitor.peak,
            "client_seconds_held_back": round(main_phase.load.held_back_s, 1),
        },
        "engine_tasks": {
            "during_load_and_drain": tasks_during,
            "advance_tasks_per_run": round(tasks_during.get("workflows.advance", 0) / max(figures["runs_accepted"], 1), 2),
            "engine_queue_peak": main_phase.monitor.engine_queue_peak,
            "engine_queue_at_load_end": main_phase.monitor.engine_queue_at_load_end,
            "note": "a start sends a workflows.advance wake-up unless one is pending (the schema's wake token); a busy "
            "worker leaves them queued (each later claims what is ready, often nothing)",
        },
        "worker_rss_mb": worker_rss,
        "baseline": baseline,
        "step_transitions_over_noop_tasks": round(figures["step_transitions_per_s"] / noop_rate, 2) if noop_rate else None,
        "engine_alone": {
            **capacity,
            "step_transitions_over_noop_tasks": round(capacity["step_transitions_per_s"] / noop_rate, 2)
            if capacity and noop_rate
            else None,
        },
        "cpu_during_load": main_phase.cpu,
        "single_start": single,
        "profile": profile,
        "pyspy": {name: pyspy_summary(path) for name, path, _spy in spies},
        "targets": TARGETS,
        "met": met,
        "total_seconds": round(time.monotonic() - began, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    summary = {
        key: result[key]
        for key in ("runs_accepted", "runs_completed", "completed_runs_per_s", "step_transitions_per_s", "lost", "duplicated")
    }
    single_summary = {
        key: single.get(key) for key in ("runs_accepted", "completed_runs_per_s", "latency_ms", "api_answer_ms", "lost", "duplicated")
    }
    log(
        json.dumps(
            {
                **summary,
                "latency_ms": figures["latency_ms"],
                "baseline": noop_rate,
                "worker_rss_peak_mb": worker_rss["peak"],
                "single_start": single_summary if SINGLE_RUNS else single,
                "met": met,
            }
        )
    )
    log(f"wrote {OUT.relative_to(ROOT) if OUT.is_relative_to(ROOT) else OUT}")


if __name__ == "__main__":
    if sys.argv[1:] == ["partner"]:
        partner_serve()
    else:
        main()
