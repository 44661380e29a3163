"""`python -m deploy.local.with_services -- CMD ARGS...`: run CMD with PostgreSQL and Redis available.

For `make test` / `make bench` on a machine without them: embedded servers are started for
DATABASE_URL / REDIS_URL when unset, CMD runs with those URLs, and the servers this run started
are stopped afterwards. Exits with CMD's exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.embedded import services_ensure, services_stop  # noqa: E402


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m deploy.local.with_services -- CMD [ARGS...]", file=sys.stderr)
        return 2
    additions = services_ensure(ROOT)
    try:
        try:
            child = subprocess.Popen(argv, env={**os.environ, **additions})
        except FileNotFoundError:
            print(f"with_services: command not found: {argv[0]}", file=sys.stderr)
            return 127
        # Ctrl-C reaches CMD through the terminal's process group: let CMD finish its own
        # cleanup, then stop the services. SIGTERM is sent to us alone, so pass it on.
        # (Set after Popen: an ignored signal would be inherited by CMD.)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
        returncode = child.wait()
    finally:
        services_stop(ROOT, additions)
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
