"""`python -m connectors.sandbox SYSTEM --port N`: run one sandbox system in the foreground;
`python -m connectors.sandbox all [--port FIRST]`: every system, as `make run` runs them."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from connectors.sandbox import SYSTEMS, SandboxSystem, demo_systems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.sandbox", description="Run a sandbox partner system on loopback.")
    parser.add_argument("system", choices=[*sorted(SYSTEMS), "all"], help="one system, or all of them on consecutive ports")
    parser.add_argument(
        "--port", type=int, default=None, help="port on 127.0.0.1 (default: any free port; for all: BATON_SANDBOX_PORT or 8701)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    tms = parser.add_argument_group("TMS")
    tms.add_argument("--client", action="append", default=[], metavar="ID:SECRET", help="an OAuth2 client (repeat); none: open")
    carrier = parser.add_argument_group("carrier webhooks")
    carrier.add_argument("--webhook-url", default="", help="loopback URL the carrier pushes tracking events to")
    carrier.add_argument("--webhook-secret", action="append", default=[], help="signing secret (repeat: current first)")
    carrier.add_argument("--webhook-scheme", default="standard-webhooks", choices=("standard-webhooks", "easypost"))
    carrier.add_argument("--advance-every", type=float, default=0.0, help="seconds between automatic tracking milestones")
    arguments = parser.parse_args(argv)

    if arguments.system == "all":
        if arguments.client or arguments.webhook_url or arguments.webhook_secret or arguments.advance_every:
            parser.error("all runs the systems as `make run` does: --client, --webhook-* and --advance-every are for one system")
        try:
            systems = demo_systems(arguments.port)
        except ValueError as error:
            print(f"cannot start the sandbox: {error}", file=sys.stderr)
            return 2
        return _serve(systems, arguments.latency, hint=" (another program has the port? set BATON_SANDBOX_PORT to another first port)")

    options: dict[str, Any] = {"port": arguments.port or 0}
    if arguments.system == "carrier":
        options.update(
            webhook_url=arguments.webhook_url,
            webhook_secrets=arguments.webhook_secret,
            webhook_scheme=arguments.webhook_scheme,
            advance_every=arguments.advance_every,
        )
    elif arguments.webhook_url or arguments.webhook_secret or arguments.advance_every:
        parser.error("--webhook-* and --advance-every are for the carrier only")
    if arguments.client:
        if arguments.system != "tms":
            parser.error("--client is for the TMS only")
        pairs = [client.partition(":") for client in arguments.client]
        if any(not client_id or not separator or not secret for client_id, separator, secret in pairs):
            parser.error("--client takes ID:SECRET")
        options["clients"] = {client_id: secret for client_id, _, secret in pairs}
    try:
        system = SYSTEMS[arguments.system](**options)
    except ValueError as error:
        print(f"cannot start the {arguments.system} sandbox: {error}", file=sys.stderr)
        return 2
    return _serve([system], arguments.latency)


def _serve(systems: list[SandboxSystem], latency: float, hint: str = "") -> int:
    """Start every system, say where each answers, and serve until SIGTERM or Ctrl-C."""
    started: list[SandboxSystem] = []
    try:
        for system in systems:
            system.set_faults(latency=latency)
            system.start()
            started.append(system)
    except (OSError, ValueError) as error:
        for system in started:
            system.stop()
        print(f"cannot start the {system.name} sandbox on port {system._port}: {error}{hint}", file=sys.stderr)
        return 2
    for system in started:
        print(f"{system.title} on {system.url} (faults: {system.url}/_sandbox/faults; Ctrl-C stops)", flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for system in started:
            system.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
