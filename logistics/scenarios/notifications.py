"""Milestone notifications (subscriptions with quiet hours and digests): not written yet. Until
the template is in the library the scenario reports it as not available (a failed outcome); then
`play` drives it like the others."""

from __future__ import annotations

from logistics.scenarios.base import Scenario

SCENARIO = Scenario(
    name="notifications", title="Milestone notifications", template_key="customer-milestone-notifications", template_major=2
)
