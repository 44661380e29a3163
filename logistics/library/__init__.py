"""The domain's workflow templates for the library: every module here exports `TEMPLATE`, a dict
in `seed_library`'s shape (key, name, category, description, version, changelog, documentation,
parameters_schema, definition). `manage.py seed_library` publishes them with the starter ones."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def domain_templates() -> list[dict[str, Any]]:
    """Every module's TEMPLATE, in module-name order."""
    found = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        template = getattr(importlib.import_module(f"{__name__}.{module.name}"), "TEMPLATE", None)
        if template is not None:
            found.append(template)
    return found
