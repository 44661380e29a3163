"""The domain's actions for workflow steps on the `baton` connection (`workflows.actions`): every
module here exports `ACTIONS`, a list of (name, function, description), and may name the heavy
ones (a tenth of a second of CPU or more, see `workflows.actions.Action.heavy`) in `HEAVY`; `register` (called by
`LogisticsConfig.ready`) registers them all. A function takes the step's resolved input and the
idempotency key, acts through `logistics.services` and answers a JSON object; a refused input is
raised as `workflows.actions.ActionRefused` with what and why."""

from __future__ import annotations

import importlib
import pkgutil

from workflows.actions import action_register


def register() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        heavy: frozenset[str] = getattr(loaded, "HEAVY", frozenset())
        for name, function, description in getattr(loaded, "ACTIONS", []):
            action_register(name, function, description, heavy=name in heavy)
