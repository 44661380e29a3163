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

`make run` starts all four (`python -m connectors.sandbox all`) on consecutive loopback ports from
`BATON_SANDBOX_PORT` (`demo_urls()`), with the demo tenants' OAuth2 clients at the TMS; the demo
tenants' connections point at them (`connectors.demo`).

Standard library only (plus `connectors.signatures`), so it runs without Django.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from connectors.sandbox.base import Faults, Problem, SandboxSystem
from connectors.sandbox.carrier import CarrierSandbox
from connectors.sandbox.erp import ErpSandbox
from connectors.sandbox.tms import TmsSandbox
from connectors.sandbox.wms import WmsSandbox

SYSTEMS: dict[str, type[SandboxSystem]] = {system.name: system for system in (ErpSandbox, TmsSandbox, WmsSandbox, CarrierSandbox)}

__all__ = [
    "DEMO_BASE_PORT",
    "DEMO_TMS_CLIENTS",
    "SYSTEMS",
    "CarrierSandbox",
    "ErpSandbox",
    "Faults",
    "Problem",
    "SandboxSystem",
    "TmsSandbox",
    "WmsSandbox",
    "demo_ports",
    "demo_systems",
    "demo_urls",
    "sandbox",
]

# `make run`: the systems listen on this port and the next three, in SYSTEMS order, unless
# BATON_SANDBOX_PORT names another first port.
DEMO_BASE_PORT = 8701
# The demo tenants' OAuth2 clients at the TMS: demo values, like the demo passwords.
DEMO_TMS_CLIENTS = {"baton-acme": "tms-sandbox-acme-2026", "baton-globex": "tms-sandbox-globex-2026"}


@contextmanager
def sandbox(system: str, **options: Any) -> Iterator[SandboxSystem]:
    """A running sandbox system (its `url` is where it answers), stopped afterwards."""
    if system not in SYSTEMS:
        raise ValueError(f"no sandbox system {system!r}; choose one of {', '.join(SYSTEMS)}")
    with SYSTEMS[system](**options) as running:
        yield running


def demo_ports(first: int | None = None) -> dict[str, int]:
    """Each system's port under `make run`: `first` (default BATON_SANDBOX_PORT, else
    DEMO_BASE_PORT) and the ports after it."""
    if first is None:
        setting = os.environ.get("BATON_SANDBOX_PORT", "").strip()
        if setting and not setting.isdigit():
            raise ValueError(f"BATON_SANDBOX_PORT must be a port number, not {setting!r}")
        first = int(setting) if setting else DEMO_BASE_PORT
    if not 1 <= first <= 65535 - len(SYSTEMS):
        raise ValueError(f"the sandbox ports start at {first}: choose a first port from 1 to {65535 - len(SYSTEMS)}")
    return {name: first + offset for offset, name in enumerate(SYSTEMS)}


def demo_urls(first: int | None = None) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{port}" for name, port in demo_ports(first).items()}


def demo_systems(first: int | None = None) -> list[SandboxSystem]:
    """Every system as `make run` runs it (not started): on the demo ports, the TMS with the demo
    tenants' OAuth2 clients."""
    built: list[SandboxSystem] = []
    for name, port in demo_ports(first).items():
        options: dict[str, Any] = {"port": port}
        if name == TmsSandbox.name:
            options["clients"] = DEMO_TMS_CLIENTS
        built.append(SYSTEMS[name](**options))
    return built
