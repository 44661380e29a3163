"""Send a probe through the broker to a worker and report how long the round trip took."""

import time
import uuid

from django.core.management.base import BaseCommand, CommandError

from config.observability import redis_client
from insights.tasks import PROBE_KEY, pipeline_probe


class Command(BaseCommand):
    help = "Check the task pipeline end to end: broker, a worker on the default queue, and Redis."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args, **options):
        probe_id = uuid.uuid4().hex
        started = time.perf_counter()
        pipeline_probe.delay(probe_id)
        key = PROBE_KEY.format(probe_id=probe_id)
        while time.perf_counter() - started < options["timeout"]:
            if redis_client().hget(key, "done"):
                self.stdout.write(f"OK: a worker answered in {time.perf_counter() - started:.2f}s")
                return
            time.sleep(0.1)
        raise CommandError(f"No worker finished the probe within {options['timeout']:.0f}s: is a worker running on the default queue?")
