"""Template 3: inventory and warehouse synchronisation (`logistics.inventory_sync`, actions in
`logistics.actions.inventory`)."""

from __future__ import annotations

from typing import Any

from workflows.models import TemplateCategory

CONNECTION = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,79}$"}
RETRY_PARTNER = {"attempts": 5, "backoff_seconds": 30, "jitter": True, "non_retryable": ["HttpClientError"]}
RETRY_BATON = {"attempts": 3, "backoff_seconds": 2, "non_retryable": ["ActionRefused"]}
COMPARE = "$.context.compare"


def _correct(system: str) -> dict[str, Any]:
    return {
        "id": f"correct_{system}",
        "kind": "connector",
        "name": f"Correct the {system.upper()}",
        "connection": f"{{{{params.{system}_connection}}}}",
        "action": "adjust_inventory",
        "input": {
            "adjustments": f"{COMPARE}.adjustments",
            "source_of_truth": f"{COMPARE}.truth",
            "reference": f"{COMPARE}.truth_snapshot_id",
            "reason": "Inventory sync: within tolerance, adjusted to the source of truth",
        },
        "retry": RETRY_PARTNER,
        "next": "adjusted",
    }


TEMPLATE: dict[str, Any] = {
    "key": "inventory-sync",
    "name": "Inventory and warehouse synchronisation",
    "category": TemplateCategory.INVENTORY,
    "description": "Compare the ERP's and the WMS's inventory per SKU and location, correct small differences by policy, send large ones to a person, and give customers the corrected position.",
    "version": "1.0.0",
    "changelog": "First version.",
    "documentation": """\
Keeps the ERP's book inventory and the WMS's physical inventory in step, per SKU and location.
Small differences are corrected in the system that is not the source of truth; larger ones
become an *Inventory variance* exception for a person; customers' systems get the corrected
position by webhook.

**Triggers**: `inventory.snapshot` – by API or webhook (`system` erp or wms, `as_of`, `location`,
`positions` of `sku`, `quantity`, optionally `unit`, their own `location` and the owning
`customer` account code) or an X12 846 from the warehouse (system wms); `warehouse.shipped` (EDI
945) and `stock.transfer_received` (EDI 944); the *Pull schedule*, which reads both systems'
inventory through their connections; or by hand (a start without positions pulls too).

**Steps**
1. *Take it in* – the snapshot is recorded (bins of one location add up; a site code is a Baton
   location or mapped in *Site locations*; a time without a zone is the location's). A 945
   takes the shipped quantities out of its warehouse, a 944 puts the received ones in: they are
   kept as movements (once per document number) and end the run.
2. *Compare* – with the other system's latest snapshot covering the same locations, rolled to the
   same moment by the 945/944 movements in between (so goods that moved between the two counts
   are no variance). A difference is within tolerance when it is at most *Quantity tolerance*
   units or *Percent tolerance* % of the source of truth's quantity.
3. *Correct* – differences within tolerance are sent to the system that is not the *Source of
   truth* through its connection (action `adjust_inventory`: each `sku`, `location`, the
   `quantity` to hold and `adjust_by`), then marked adjusted.
4. *Open an exception* – differences beyond tolerance open one *Inventory variance* exception
   per pair of systems and locations, every variance itemised (high severity when a SKU is on
   hand in one system only); a later comparison updates the open case instead of opening
   another. Planners are told.
5. *Publish* – the source of truth's position goes to each customer account owning the SKUs as
   an `inventory.position` webhook (the tenant's own endpoints for SKUs nobody owns); lines
   still beyond tolerance are marked `under_review`.

**Parameters**: the source of truth, the two tolerances, the ERP's and the WMS's connections,
the site codes' locations and the pull schedule.
""",
    "parameters_schema": {
        "type": "object",
        "properties": {
            "source_of_truth": {
                "title": "Source of truth",
                "description": "Whose count wins: the other system is corrected.",
                "enum": ["wms", "erp"],
                "default": "wms",
            },
            "quantity_tolerance": {
                "title": "Quantity tolerance",
                "description": "A difference of at most this many units is corrected without a person.",
                "type": "number",
                "minimum": 0,
                "default": 2,
            },
            "percent_tolerance": {
                "title": "Percent tolerance",
                "description": "…or of at most this percentage of the source of truth's quantity.",
                "type": "number",
                "minimum": 0,
                "maximum": 100,
                "default": 1,
            },
            "erp_connection": {
                "title": "ERP connection",
                "description": "Read inventory from, and correct, the ERP.",
                **CONNECTION,
                "default": "erp",
            },
            "wms_connection": {
                "title": "WMS connection",
                "description": "Read inventory from, and correct, the WMS.",
                **CONNECTION,
                "default": "wms",
            },
            "site_locations": {
                "title": "Site locations",
                "description": 'The systems\' site or warehouse codes and the Baton location each stands for, such as {"DAL1": "dallas-dc"}.',
                "type": "object",
                "additionalProperties": {"type": "string"},
                "default": {},
            },
            "pull_schedule": {
                "title": "Pull schedule",
                "description": "When both systems' inventory is read and compared (cron, in the workspace's time zone).",
                "type": "string",
                "default": "0 5 * * *",
            },
        },
    },
    "definition": {
        "description": "Inventory and warehouse synchronisation",
        "start": "take",
        "triggers": [
            {"kind": "event", "event_type": "inventory.snapshot"},
            {"kind": "event", "event_type": "warehouse.shipped"},
            {"kind": "event", "event_type": "stock.transfer_received"},
            {"kind": "schedule", "cron": "{{params.pull_schedule}}"},
            {"kind": "manual"},
        ],
        "steps": [
            {
                "id": "take",
                "kind": "connector",
                "name": "Take it in",
                "connection": "baton",
                "action": "inventory.take",
                "input": {"event": "$.input", "site_locations": "{{params.site_locations}}"},
                "retry": RETRY_BATON,
                "next": "what",
            },
            {
                "id": "what",
                "kind": "decision",
                "name": "Snapshot, movement or pull?",
                "cases": [
                    {"when": 'context.take.kind == "snapshot"', "next": "compare", "label": "snapshot"},
                    {"when": 'context.take.kind == "movement"', "next": "movement_recorded", "label": "movement"},
                ],
                "default": "pull_erp",
            },
            {
                "id": "pull_erp",
                "kind": "connector",
                "name": "Read the ERP's inventory",
                "connection": "{{params.erp_connection}}",
                "action": "read_inventory",
                "input": {},
                "retry": RETRY_PARTNER,
                "next": "pull_wms",
            },
            {
                "id": "pull_wms",
                "kind": "connector",
                "name": "Read the WMS's inventory",
                "connection": "{{params.wms_connection}}",
                "action": "read_inventory",
                "input": {},
                "retry": RETRY_PARTNER,
                "next": "pulled",
            },
            {
                "id": "pulled",
                "kind": "connector",
                "name": "Record both",
                "connection": "baton",
                "action": "inventory.pulled",
                "input": {
                    "erp": "$.context.pull_erp",
                    "wms": "$.context.pull_wms",
                    "site_locations": "{{params.site_locations}}",
                    "source_of_truth": "{{params.source_of_truth}}",
                },
                "retry": RETRY_BATON,
                "next": "compare",
            },
            {
                "id": "compare",
                "kind": "connector",
                "name": "Compare per SKU and location",
                "connection": "baton",
                "action": "inventory.compare",
                "input": {
                    "snapshot_id": "$.context.take.snapshot_id",
                    "pulled_snapshot_id": "$.context.pulled.snapshot_id",
                    "source_of_truth": "{{params.source_of_truth}}",
                    "quantity_tolerance": "{{params.quantity_tolerance}}",
                    "percent_tolerance": "{{params.percent_tolerance}}",
                },
                "retry": RETRY_BATON,
                "next": "compared",
            },
            {
                "id": "compared",
                "kind": "decision",
                "name": "Anything to correct?",
                "cases": [
                    {"when": "!context.compare.compared", "next": "nothing_to_compare", "label": "no other count yet"},
                    {
                        "when": 'context.compare.within_count > 0 && context.compare.wrong == "erp"',
                        "next": "correct_erp",
                        "label": "correct the ERP",
                    },
                    {
                        "when": 'context.compare.within_count > 0 && context.compare.wrong == "wms"',
                        "next": "correct_wms",
                        "label": "correct the WMS",
                    },
                ],
                "default": "beyond",
            },
            _correct("erp"),
            _correct("wms"),
            {
                "id": "adjusted",
                "kind": "connector",
                "name": "Record the adjustments",
                "connection": "baton",
                "action": "inventory.adjusted",
                "input": {"compare": COMPARE, "erp_answer": "$.context.correct_erp", "wms_answer": "$.context.correct_wms"},
                "retry": RETRY_BATON,
                "next": "beyond",
            },
            {
                "id": "beyond",
                "kind": "decision",
                "name": "Beyond tolerance?",
                "cases": [{"when": "context.compare.beyond_count > 0", "next": "open_exception", "label": "beyond tolerance"}],
                "default": "publish",
            },
            {
                "id": "open_exception",
                "kind": "connector",
                "name": "Open an inventory variance exception",
                "connection": "baton",
                "action": "inventory.exception_open",
                "input": {"compare": COMPARE},
                "retry": RETRY_BATON,
                "next": "tell_planners",
            },
            {
                "id": "tell_planners",
                "kind": "notify",
                "name": "Inventory variance to investigate",
                "channel": "email",
                "to_roles": ["planner"],
                "template": "inventory-variance",
                "next": "publish",
            },
            {
                "id": "publish",
                "kind": "connector",
                "name": "Publish the corrected position",
                "connection": "baton",
                "action": "inventory.publish",
                "input": {"compare": COMPARE, "owners": "$.context.take.owners"},
                "retry": RETRY_BATON,
                "next": "synced",
            },
            {"id": "synced", "kind": "end", "name": "In step", "outcome": "succeeded"},
            {"id": "movement_recorded", "kind": "end", "name": "Movement recorded", "outcome": "succeeded"},
            {"id": "nothing_to_compare", "kind": "end", "name": "Nothing to compare yet", "outcome": "succeeded"},
        ],
    },
}
