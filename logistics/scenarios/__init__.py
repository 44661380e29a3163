"""Demo scenarios (`manage.py demo_scenario`): each module here exports `SCENARIO`, a `Scenario`
that drives one library template through the real stack and checks what it proved. A new
scenario is one more module; `all` plays every one in `ORDER`, then any others by name."""

from __future__ import annotations

import importlib
import pkgutil
import time

from logistics.scenarios.base import Outcome, OutcomeMissing, Scenario, ScenarioContext, ScenarioUnavailable, library_has

ALL = "all"
ORDER = ("order_release", "carrier_exception", "inventory_sync", "pod_to_invoice", "claims", "notifications")


def scenarios() -> dict[str, Scenario]:
    """Every module's SCENARIO by name: those of ORDER first, in that order."""
    found: dict[str, Scenario] = {}
    for module in pkgutil.iter_modules(__path__):
        scenario = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SCENARIO", None)
        if isinstance(scenario, Scenario):
            found[scenario.name] = scenario
    ranked = sorted(found, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))
    return {name: found[name] for name in ranked}


def scenario_names() -> list[str]:
    return [*scenarios(), ALL]


def scenario_play(scenario: Scenario, context: ScenarioContext) -> list[Outcome]:
    """Play one scenario in the context's tenant (the caller is in its schema); its outcomes. A
    scenario that cannot be played, or whose template is not in the library, is one failed outcome
    saying why."""
    began = time.monotonic()
    first = len(context.outcomes)
    context.scenario = scenario.name
    in_library = library_has(scenario.template_key, scenario.template_major)
    if scenario.play is None or not in_library:
        reason = (
            f"not available: template {scenario.template_named} is not in the library"
            if not in_library
            else f"not available: no scenario is written for template {scenario.template_named} yet"
        )
        context.record("set up", f"template {scenario.template_named} in the library", ok=False, detail=reason)
        return context.outcomes[first:]
    context.watched = []
    try:
        scenario.play(context)
    except ScenarioUnavailable as unavailable:
        context.record("set up", "the tenant can play the scenario", ok=False, seconds=time.monotonic() - began, detail=str(unavailable))
    except OutcomeMissing:
        pass  # recorded by `expect`
    return context.outcomes[first:]
