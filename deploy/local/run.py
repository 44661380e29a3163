"""`make run`: all of Baton on one machine, in one terminal.

Embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset, migrations, demo data, then the
sandbox partner systems (ERP, TMS, WMS, carrier on loopback from BATON_SANDBOX_PORT, which the demo
tenants' connections call), the web server, a Celery worker, Celery beat and the MQTT listener with
prefixed output, and a banner with the URLs and demo logins once the web answers /healthz. Ctrl-C
(or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.embedded import services_ensure, services_stop  # noqa: E402
from connectors.sandbox import DEMO_BASE_PORT, SYSTEMS, demo_ports, demo_urls  # noqa: E402 - standard library only, no Django
from deploy.local.lifeline import with_lifeline  # noqa: E402

STOP_GRACE_SECONDS = 10  # SIGTERM first (Celery finishes or hands back tasks), then SIGKILL
_print_lock = threading.Lock()
_pumps: dict[int, threading.Thread] = {}  # child pid -> thread copying its output


def say(line: str) -> None:
    """One whole line at a time: three children print from three threads."""
    with _print_lock:
        print(line, flush=True)


def child_commands(port: int, sandbox_port: int = DEMO_BASE_PORT) -> dict[str, list[str]]:
    python = sys.executable
    return {
        # The partner systems the demo tenants' connections call, with switchable faults.
        "sandbox": [python, "-m", "connectors.sandbox", "all", "--port", str(sandbox_port)],
        "web": [python, "manage.py", "runserver", f"0.0.0.0:{port}", "--noreload"],
        "worker": [python, "-m", "celery", "-A", "config", "worker", "-l", "info", "-Q", "default,engine,connectors,documents", "-c", "2"],
        "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "info", "-s", "var/celerybeat-schedule"],
        # Tenants' MQTT telemetry; with no broker up it retries quietly (one warning per connection).
        "mqtt": [python, "manage.py", "mqtt_listen"],
    }


def demo_environment(port: int, sandbox_port: int, env: dict[str, str]) -> dict[str, str]:
    """What the children need to agree on about the demo: where the sandbox systems listen (the
    seeded connections point there) and the port the tenants' hosts are served on (the demo
    carrier posts its webhooks to their public URLs). A variable the user set wins for the latter.

    Connections may call the sandbox on loopback because development's BATON_OUTBOUND_ALLOW
    (127.0.0.0/8, ::1, localhost) says so – `make run` always runs with DJANGO_ENV=development –
    and production's allows none of them. The guard allows hosts and networks, not ports."""
    public_port = env["BATON_PUBLIC_PORT"] if "BATON_PUBLIC_PORT" in env else str(port)
    return {"BATON_SANDBOX_PORT": str(sandbox_port), "BATON_PUBLIC_PORT": public_port}


def terminate(processes: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each child's process group, SIGKILL what is left after the grace period."""
    running = {name: proc for name, proc in processes.items() if proc.poll() is None}
    for proc in running.values():
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, proc in running.items():
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"run | {name} still running {STOP_GRACE_SECONDS} s after SIGTERM: killing it")
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    for proc in processes.values():  # let the last lines (a traceback, say) reach the terminal
        if proc.pid in _pumps:
            _pumps[proc.pid].join(timeout=2)


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)  # each child leads its own group (process_group=0)


def run_step(args: list[str], env: dict[str, str], stopping: threading.Event) -> bool:
    """`manage.py ARGS` in the foreground; False if it failed or we are stopping."""
    say(f"run | manage.py {' '.join(args)}")
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, process_group=0)
    while proc.poll() is None:
        if stopping.wait(0.1):
            terminate({"manage.py": proc})
            return False
    if proc.returncode != 0:
        say(f"run | manage.py {' '.join(args)} failed (exit code {proc.returncode}): stopping")
        return False
    say(f"run | manage.py {args[0]} done in {time.monotonic() - began:.1f} s")
    return True


def spawn(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start a child in its own process group with its output prefixed by `name |`; it ends with
    this supervisor even when the supervisor is killed (`with_lifeline`)."""
    proc = subprocess.Popen(
        with_lifeline(command),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        process_group=0,
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            say(f"{name} | {line.rstrip()}")

    _pumps[proc.pid] = threading.Thread(target=pump, name=f"{name}-output", daemon=True)
    _pumps[proc.pid].start()
    return proc


def metrics_dir_reset(path: Path) -> Path:
    """Prometheus multiprocess mode: web, worker and beat write their counters to files here and
    /metrics adds them up, so the worker's counters show on the web's /metrics. Each start counts
    afresh: the previous run's files (only those: the folder may be the user's) are removed."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


def web_health(port: int) -> str:
    """'' when GET /healthz answers 200, else why not (shown if the web stays unhealthy)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": f"localhost:{port}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return "" if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


def on_port(url: str, port: int) -> str:
    """Show *.localhost URLs on the port actually served (demo.json may assume the default 8000)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if host != "localhost" and not host.endswith(".localhost"):
        return url
    return parts._replace(netloc=f"{host}:{port}").geturl()


def banner(port: int, elapsed: float, sandbox_port: int = 0) -> str:
    var = Path(os.environ.get("BATON_VAR_DIR", ROOT / "var"))
    try:
        demo = json.loads((var / "demo.json").read_text())
    except (FileNotFoundError, ValueError):
        demo = {}

    def logins(entry: dict) -> list[str]:
        return [
            f"      {item['email']}  /  {item['password']}  ({item.get('role', '')}{', TOTP' if item.get('mfa') else ''})"
            for item in entry.get("logins", [])
        ]

    lines = [
        "",
        "=" * 72,
        f"  Baton is running (ready in {elapsed:.1f} s)",
        "",
        f"  Console  http://localhost:{port}/",
        *logins(demo.get("console", {})),
    ]
    for tenant in demo.get("tenants", []):
        lines += ["", f"  {tenant['name']}  {on_port(tenant['url'], port)}", *logins(tenant)]
    if sandbox_port:
        lines += [
            "",
            "  Sandbox partner systems: each tenant's connections call them (see",
            "  /connections/ and the inbound events under /connections/inbox/)",
            *(f"      {SYSTEMS[name].title.split(' (')[0]:<16} {url}" for name, url in demo_urls(sandbox_port).items()),
            "  Switch a fault on: curl -d '{\"fail_next\": 3}' <url>/_sandbox/faults",
        ]
    if demo.get("totp_secret"):
        lines += [
            "",
            f"  TOTP secret for the demo accounts marked TOTP: {demo['totp_secret']}",
            "  (add it to an authenticator app, or run `make totp` for the current code)",
        ]
    lines += ["", "  Ctrl-C stops the sandbox, web, worker, beat, mqtt and the embedded services.", "=" * 72, ""]
    return "\n".join(lines)


def supervise(children: dict[str, subprocess.Popen], port: int, started_at: float, stopping: threading.Event, sandbox_port: int = 0) -> int:
    """Wait for Ctrl-C/SIGTERM (0) or a child dying (1); print the banner once the web is healthy."""
    ready = False
    warned = False
    while not stopping.wait(0.25):
        for name, proc in children.items():
            if proc.poll() is not None:
                if proc.pid in _pumps:
                    _pumps[proc.pid].join(timeout=2)
                say(f"run | {name} exited unexpectedly (exit code {proc.returncode}): stopping the rest")
                return 1
        if not ready:
            problem = web_health(port)
            if not problem:
                ready = True
                say(banner(port, time.monotonic() - started_at, sandbox_port))
            elif not warned and time.monotonic() - started_at > 90:
                warned = True
                say(f"run | web does not answer /healthz yet ({problem}); still waiting")
    say("run | stopping…")
    return 0


def main(argv: list[str] | None = None) -> int:
    started_at = time.monotonic()
    parser = argparse.ArgumentParser(prog="python -m deploy.local.run", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-seed", action="store_true", help="skip `seed_demo --if-empty`")
    args = parser.parse_args(argv)
    try:
        sandbox_port = demo_ports()["erp"]  # BATON_SANDBOX_PORT, else the default; the systems follow it
    except ValueError as error:
        say(f"run | {error}")
        return 1

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())

    (ROOT / "var").mkdir(exist_ok=True)
    additions: dict[str, str] = {}
    children: dict[str, subprocess.Popen] = {}
    try:
        try:
            additions = services_ensure(ROOT, log=lambda line: say(f"run | {line}"))
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            say(f"run | could not start the embedded services: {error}")
            return 1
        say(f"run | services ready in {time.monotonic() - started_at:.1f} s")
        # `make run` is the development runner: every child gets development settings, and
        # unbuffered output so log lines show up as they happen.
        env = {**os.environ, **additions, "DJANGO_ENV": "development", "PYTHONUNBUFFERED": "1"}
        # Live sample runs in the demo tenants; BATON_DEMO_TRAFFIC=0 turns them off.
        env.setdefault("BATON_DEMO_TRAFFIC", "0" if args.no_seed else "1")
        env.update(demo_environment(args.port, sandbox_port, env))
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir_reset(Path(env.get("PROMETHEUS_MULTIPROC_DIR") or ROOT / "var" / "prometheus")))
        steps = [["baton_migrate"]] + ([] if args.no_seed else [["seed_demo", "--if-empty"]])
        for step in steps:
            if stopping.is_set():
                return 0
            if not run_step(step, env, stopping):
                return 0 if stopping.is_set() else 1
        for name, command in child_commands(args.port, sandbox_port).items():
            children[name] = spawn(name, command, env)
        return supervise(children, args.port, started_at, stopping, sandbox_port)
    finally:
        terminate(children)
        services_stop(ROOT, additions, log=lambda line: say(f"run | {line}"))


if __name__ == "__main__":
    sys.exit(main())
