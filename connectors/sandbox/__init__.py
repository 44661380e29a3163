"""Sandbox partner systems: small local HTTP fakes of an ERP, a TMS, a WMS and a carrier that the
demo and the tests talk to instead of the outside world.

Each listens on loopback only, serves a handful of realistic JSON endpoints, honours
`Idempotency-Key`, answers errors as problem+json, and has switchable faults (latency, 5xx,
hangs, and for the carrier's pushed webhooks duplicates and out-of-order delivery) through
`set_faults()` or `POST /_sandbox/faults`. Start one with `python -m connectors.sandbox SYSTEM
--port N`, or from Python:

    with sandbox("tms") as tms:
        requests.post(f"{tms.url}/api/tenders", json=..., headers={"Idempotency-Key": "k1"})
        tms.set_faults(fail_next=2)

Standard library only (plus `connectors.signatures`), so it runs without Django.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from connectors.sandbox.base import Faults, Problem, SandboxSystem
from connectors.sandbox.carrier import CarrierSandbox
from connectors.sandbox.erp import ErpSandbox
from connectors.sandbox.tms import TmsSandbox
from connectors.sandbox.wms import WmsSandbox

SYSTEMS: dict[str, type[SandboxSystem]] = {system.name: system for system in (ErpSandbox, TmsSandbox, WmsSandbox, CarrierSandbox)}

__all__ = ["SYSTEMS", "CarrierSandbox", "ErpSandbox", "Faults", "Problem", "SandboxSystem", "TmsSandbox", "WmsSandbox", "sandbox"]


@contextmanager
def sandbox(system: str, **options: Any) -> Iterator[SandboxSystem]:
    """A running sandbox system (its `url` is where it answers), stopped afterwards."""
    if system not in SYSTEMS:
        raise ValueError(f"no sandbox system {system!r}; choose one of {', '.join(SYSTEMS)}")
    with SYSTEMS[system](**options) as running:
        yield running
