"""`manage.py mqtt_listen`: the MQTT telemetry listener (`connectors.telemetry.listener`), one per installation."""

from __future__ import annotations

import os
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config.observability import worker_metrics_serve
from connectors.telemetry.listener import TelemetryListener


class Command(BaseCommand):
    help = "Listen to every tenant's MQTT connections: latest positions and temperatures, rules raising inbox events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--refresh", type=float, default=30.0, help="seconds between reads of the tenants' connections (30)")
        parser.add_argument("--silence-check", type=float, default=30.0, help="seconds between no-ping checks (30)")
        parser.add_argument(
            "--client-prefix",
            default="",
            help="MQTT client ids are PREFIX-<schema>-<connection id> (default BATON_MQTT_CLIENT_PREFIX or baton)",
        )
        parser.add_argument(
            "--metrics-listen",
            default=os.environ.get("BATON_MQTT_METRICS_LISTEN", ""),
            metavar="HOST:PORT",
            help="serve this process's counters on GET /metrics there, with the web's bearer token "
            "(default BATON_MQTT_METRICS_LISTEN; empty: not served, as when the web shares PROMETHEUS_MULTIPROC_DIR)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        listener = TelemetryListener(
            refresh_seconds=options["refresh"],
            silence_check_seconds=options["silence_check"],
            client_prefix=options["client_prefix"] or None,
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: listener.stop())
        metrics = worker_metrics_serve(options["metrics_listen"]) if options["metrics_listen"] else None
        self.stdout.write(f"MQTT listener started: tenants' connections read every {options['refresh']:g} s; SIGTERM stops it.")
        if metrics is not None:
            self.stdout.write(f"Its counters are served on {options['metrics_listen']} at /metrics.")
        try:
            listener.run()
        finally:
            if metrics is not None:
                metrics.shutdown()
                metrics.server_close()
        self.stdout.write("MQTT listener stopped.")
