"""`python -m connectors.sandbox SYSTEM --port N`: run one sandbox system in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from connectors.sandbox import SYSTEMS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.sandbox", description="Run a sandbox partner system on loopback.")
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    carrier = parser.add_argument_group("carrier webhooks")
    carrier.add_argument("--webhook-url", default="", help="loopback URL the carrier pushes tracking events to")
    carrier.add_argument("--webhook-secret", action="append", default=[], help="signing secret (repeat: current first)")
    carrier.add_argument("--webhook-scheme", default="standard-webhooks", choices=("standard-webhooks", "easypost"))
    carrier.add_argument("--advance-every", type=float, default=0.0, help="seconds between automatic tracking milestones")
    arguments = parser.parse_args(argv)

    options: dict[str, Any] = {"port": arguments.port}
    if arguments.system == "carrier":
        options.update(
            webhook_url=arguments.webhook_url,
            webhook_secrets=arguments.webhook_secret,
            webhook_scheme=arguments.webhook_scheme,
            advance_every=arguments.advance_every,
        )
    elif arguments.webhook_url or arguments.webhook_secret or arguments.advance_every:
        parser.error("--webhook-* and --advance-every are for the carrier only")
    try:
        system = SYSTEMS[arguments.system](**options)
        system.set_faults(latency=arguments.latency)
        system.start()
    except (OSError, ValueError) as error:
        print(f"cannot start the {arguments.system} sandbox: {error}", file=sys.stderr)
        return 2
    print(f"{system.title} on {system.url} (faults: {system.url}/_sandbox/faults; Ctrl-C stops)", flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: system.request_stop())
    system.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
