"""Inventory synchronisation: not written yet. Until the template is in the library the scenario
reports it as not available (a failed outcome); then `play` drives it like the others."""

from __future__ import annotations

from logistics.scenarios.base import Scenario

SCENARIO = Scenario(name="inventory_sync", title="Inventory synchronisation", template_key="inventory-sync", template_major=1)
