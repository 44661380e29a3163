"""Children that end with the process that started them, even when it is killed.

A supervisor killed with SIGKILL (an OOM kill, a CI timeout, `kill -9`) runs no cleanup, and the
web server and Celery workers it started would go on: taking the next run's tasks off a shared
broker, holding its ports. `with_lifeline(argv)` starts `argv` behind a small guard that asks the
kernel to send it SIGTERM when its parent dies (PR_SET_PDEATHSIG, Linux), then execs it in place.
The signal comes when the *thread* that started the child ends: start children from a thread
that lives as long as they should.
"""

from __future__ import annotations

import os
import sys

_GUARD = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"  # PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]):\n"  # the parent died before the guard was set
    "    sys.exit('the process that started this one has already ended')\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def with_lifeline(argv: list[str]) -> list[str]:
    """The command line that runs `argv` and sends it SIGTERM when this process dies."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-c", _GUARD, str(os.getpid()), *argv]
