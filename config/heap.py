"""The garbage collector's settings for Baton's long-running processes (web, workers).

A worker or web process holds a few hundred thousand objects from start-up – modules, settings,
URL patterns, model metadata – that live as long as it does, and CPython's full collections walk
every one of them each time. In the domain bench a tenth of the inbox dispatcher's time went to
collections. `heap_settle()` moves what start-up made into the permanent generation, which
collections skip (`gc.freeze`), and collects the youngest generation less often, since a batch
of a thousand events allocates in bursts that mostly die young.
"""

from __future__ import annotations

import gc

# Allocations (minus deallocations) before a young collection; CPython's default is 700.
YOUNG_THRESHOLD = 10_000


def heap_settle() -> None:
    """Call once start-up is done, in the process that serves (after a fork, in the child)."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
