"""The machine a benchmark ran on, written beside its figures.

The sessions' machines differ in speed (the same code settled a quarter day in 144 s on one and
in 266 s on another), so each result carries a fixed pure-Python loop's time: figures from two
runs compare only as far as their loop times agree.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from typing import Any

LOOP = 20_000_000


def python_loop_seconds() -> float:
    """Best of three timings of a fixed loop of integer additions (one core, about 1-3 s)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        total = 0
        for number in range(LOOP):
            total += number
        best = min(best, time.perf_counter() - began)
    return round(best, 3)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine(load_before: Sequence[float], **more: Any) -> dict[str, Any]:
    """Cores, CPU model, Python, the load average before the run and the loop time (measured now)."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "load_average_before": [round(value, 2) for value in load_before],
        "python_loop_seconds": python_loop_seconds(),
        "python_loop": f"{LOOP:,} integer additions, best of 3: compare runs only on machines with similar times",
        **more,
    }
