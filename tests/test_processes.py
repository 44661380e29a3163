"""Processes a test starts end with the test run, even when it is killed and runs no `finally`."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.processes import ROOT, process_alive

# A stand-in for a test run: starts a long sleeper the way the suite starts its worker, prints
# the sleeper's pid, and then waits to be killed.
_RUN = """
import subprocess, sys, time
from tests.processes import dies_with_us
sleeper = subprocess.Popen(dies_with_us("-c", "import time; time.sleep(120)"))
print(sleeper.pid, flush=True)
time.sleep(120)
"""


def test_a_process_started_for_a_test_ends_when_the_test_run_is_killed():
    run = subprocess.Popen([sys.executable, "-c", _RUN], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        sleeper = int(run.stdout.readline())
        assert process_alive(sleeper)
        run.send_signal(signal.SIGKILL)
        run.wait()
        deadline = time.time() + 10
        while process_alive(sleeper) and time.time() < deadline:
            time.sleep(0.05)
        assert not process_alive(sleeper), "the sleeper outlived the run that started it"
    finally:
        run.kill()


# A stand-in for `make run`'s supervisor: starts a non-Python child as it starts the web server
# and the workers, prints the child's pid, and waits to be killed.
_SUPERVISOR = """
import sys, time
from deploy.local import run
child = run.spawn("sleeper", ["sleep", "120"], {})
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_child_of_make_run_ends_when_the_supervisor_is_killed():
    supervisor = subprocess.Popen([sys.executable, "-c", _SUPERVISOR], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child = int(supervisor.stdout.readline())

        def command() -> list[str]:
            return Path(f"/proc/{child}/cmdline").read_text().split("\0")[:2]

        deadline = time.time() + 10
        while command() != ["sleep", "120"] and time.time() < deadline:
            time.sleep(0.05)  # the guard execs the command in place: same pid, the command's own line
        assert command() == ["sleep", "120"]
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        deadline = time.time() + 10
        while process_alive(child) and time.time() < deadline:
            time.sleep(0.05)
        assert not process_alive(child), "make run's child outlived the supervisor"
    finally:
        supervisor.kill()


def test_a_process_whose_test_run_has_already_ended_does_not_start():
    guard = subprocess.run(
        [sys.executable, "-c", "import json; from tests.processes import dies_with_us; print(json.dumps(dies_with_us('-c', 'pass')))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    argv = json.loads(guard.stdout)
    # the pid in it is the helper's, which has ended: the guard refuses to go on
    ended = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert ended.returncode == 1
    assert "already ended" in ended.stderr
