"""Processes a test starts end with the test run, even when it is killed and runs no `finally`."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.processes import ROOT, process_alive

# Stand-ins for a parent: each starts a long sleeper, prints its pid, and waits to be killed.
# A test run starts it the way the suite starts its worker (a Python child)...
_RUN = """
import subprocess, sys, time
from tests.processes import dies_with_us
sleeper = subprocess.Popen(dies_with_us("-c", "import time; time.sleep(120)"))
print(sleeper.pid, flush=True)
time.sleep(120)
"""
# ...and `make run`'s supervisor the way it starts the web server and the workers (any command).
_SUPERVISOR = """
import sys, time
from deploy.local import run
child = run.spawn("sleeper", ["sleep", "120"], {})
print(child.pid, flush=True)
time.sleep(120)
"""


def _killed_parents_child(parent_code: str, command: list[str]) -> int:
    """Start the parent, wait until its child runs `command` (the guard execs it in place: same
    pid, the command's own line), SIGKILL the parent – no `finally` runs – and return the
    child's pid once it is gone or 10 s have passed."""
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        cmdline = Path(f"/proc/{child}/cmdline")
        deadline = time.time() + 10
        while cmdline.read_text().split("\0")[: len(command)] != command and time.time() < deadline:
            time.sleep(0.05)
        assert cmdline.read_text().split("\0")[: len(command)] == command
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 10
        while process_alive(child) and time.time() < deadline:
            time.sleep(0.05)
        return child
    finally:
        parent.kill()


def test_a_process_started_for_a_test_ends_when_the_test_run_is_killed():
    sleeper = _killed_parents_child(_RUN, [sys.executable, "-c", "import time; time.sleep(120)"])
    assert not process_alive(sleeper), "the sleeper outlived the run that started it"


def test_a_child_of_make_run_ends_when_the_supervisor_is_killed():
    child = _killed_parents_child(_SUPERVISOR, ["sleep", "120"])
    assert not process_alive(child), "make run's child outlived the supervisor"


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
