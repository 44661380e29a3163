"""Long-running processes keep start-up's objects out of the garbage collector's passes."""

import json
import os
import subprocess
import sys

from tests.processes import ROOT

_SETTLE = """
import gc, json
import django
django.setup()
from config.heap import YOUNG_THRESHOLD, heap_settle
before = gc.get_freeze_count()
heap_settle()
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0], "wanted": YOUNG_THRESHOLD}))
"""


def test_settling_freezes_what_start_up_made_and_collects_the_young_less_often():
    done = subprocess.run(
        [sys.executable, "-c", _SETTLE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    heap = json.loads(done.stdout.strip().splitlines()[-1])
    assert heap["before"] == 0
    assert heap["frozen"] > 10_000, heap  # Django and Baton's modules, settings and models
    assert heap["young"] == heap["wanted"] > 700  # CPython's default
