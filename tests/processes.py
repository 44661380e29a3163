"""Real processes for tests: a Celery worker and a web server on the suite's database."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from deploy.local.lifeline import with_lifeline

ROOT = Path(__file__).resolve().parents[1]


def suite_env(**extra: str) -> dict[str, str]:
    """The environment of this test run, pointed at the test database."""
    env = dict(os.environ)
    env["DATABASE_NAME"] = settings.DATABASES["default"]["NAME"]
    env.setdefault("BATON_FAST_PASSWORD_HASHER", "1")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports, below the ephemeral range: there, outgoing
    connections (a worker's, PostgreSQL's) take ports at any moment, and one of a run of free
    ports was taken before the server under test bound it."""
    for _ in range(50):
        first = random.randrange(20000, 32000 - count)  # noqa: S311 - a port, not a secret
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", first + offset))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def dies_with_us(*python_args: str) -> list[str]:
    """The command line for `python *python_args` in a process that is sent SIGTERM when this
    test process dies: a test run killed mid-way (SIGKILL, a timeout) runs no `finally`, and a
    Celery worker it left behind would take the next run's tasks."""
    return with_lifeline([sys.executable, *python_args])


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first, nice at index 16)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (ended, not yet reaped by its parent) counts as gone."""
    try:
        return proc_stat(pid)[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def celery_worker(log_path: Path, *extra_args: str, env: dict[str, str] | None = None):
    """A real worker on every queue, in its own process group; yields the process."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            dies_with_us(
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "info",
                "-c",
                "1",
                "-Q",
                "default,engine,connectors,documents",
                "-n",
                f"test-{os.getpid()}@%h",
                *extra_args,
            ),
            cwd=ROOT,
            env=env or suite_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.time() + 60
            while "ready." not in log_path.read_text():
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError("Celery worker did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.2)
            yield process
        finally:
            _stop(process)


@contextmanager
def web_server(log_path: Path):
    """gunicorn serving Baton on a free loopback port; yields the port."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            dies_with_us("-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", "4", "--timeout", "60"),
            cwd=ROOT,
            env=suite_env(BATON_PUBLIC_PORT=str(port), DJANGO_ENV="development"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except OSError:
                    if process.poll() is not None or time.time() > deadline:
                        raise RuntimeError("web server did not start:\n" + log_path.read_text()[-3000:]) from None
                    time.sleep(0.2)
            yield port
        finally:
            _stop(process)
