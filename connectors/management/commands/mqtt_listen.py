"""`manage.py mqtt_listen`: the MQTT telemetry listener (`connectors.telemetry.listener`), one per installation."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

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

    def handle(self, *args: Any, **options: Any) -> None:
        listener = TelemetryListener(
            refresh_seconds=options["refresh"],
            silence_check_seconds=options["silence_check"],
            client_prefix=options["client_prefix"] or None,
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: listener.stop())
        self.stdout.write(f"MQTT listener started: tenants' connections read every {options['refresh']:g} s; SIGTERM stops it.")
        listener.run()
        self.stdout.write("MQTT listener stopped.")
