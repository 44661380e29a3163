"""Baton actions of the `inventory-sync` template (`logistics.inventory_sync` does the work): take
in a snapshot, a movement or the systems' pulled inventory, compare, record the correction the
wrong system took, open the variance exception, publish the corrected position."""

from __future__ import annotations

from typing import Any

from governance.services import Actor
from logistics.actions.invoices import record_id
from logistics.inventory_sync import (
    SYSTEMS,
    adjustments_record,
    input_kind,
    inventory_compare,
    movement_take,
    position_publish,
    pulled_snapshot_take,
    snapshot_take,
    variance_exception_open,
)
from logistics.models import InventorySnapshot
from logistics.services import LogisticsRefused
from workflows.actions import ActionRefused

ACTOR = Actor.system("inventory-sync")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sites(payload: dict[str, Any]) -> dict[str, str]:
    sites = _object(payload.get("site_locations"))
    return {str(site).strip(): str(code).strip() for site, code in sites.items() if str(code or "").strip()}


def _refused(refused: LogisticsRefused) -> ActionRefused:
    where = f" ({refused.field})" if refused.field and refused.field not in refused.message else ""
    return ActionRefused(f"{refused.message}{where}")


def take(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """`event`: the run's input – an `inventory.snapshot` (recorded), a 945 or 944 (recorded as a
    movement), or anything else (a schedule's firing: the systems are pulled next)."""
    event = _object(payload.get("event"))
    kind = input_kind(event)
    try:
        if kind == "snapshot":
            return snapshot_take(payload=event, site_locations=_sites(payload), actor=ACTOR).as_data()
        if kind == "movement":
            return movement_take(payload=event, site_locations=_sites(payload), actor=ACTOR).as_data()
    except LogisticsRefused as refused:
        raise _refused(refused) from refused
    return {"kind": "pull", "reason": "no positions came with the run: the ERP's and the WMS's inventory is read"}


def pulled(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """`erp`, `wms`: what each system's `read_inventory` answered; both recorded. `snapshot_id` is
    the one to compare: the system that is not the source of truth."""
    truth = str(payload.get("source_of_truth") or "wms")
    taken = {}
    try:
        for system in SYSTEMS:
            taken[system] = pulled_snapshot_take(
                answer=_object(payload.get(system)), system=system, site_locations=_sites(payload), actor=ACTOR
            )
    except LogisticsRefused as refused:
        raise _refused(refused) from refused
    wrong = "erp" if truth == "wms" else "wms"
    return {
        "snapshot_id": taken[wrong].snapshot_id,
        "erp_snapshot_id": taken["erp"].snapshot_id,
        "wms_snapshot_id": taken["wms"].snapshot_id,
        "locations": sorted(set(taken["erp"].locations) | set(taken["wms"].locations)),
    }


def _snapshot(value: Any) -> InventorySnapshot:
    snapshot = InventorySnapshot.objects.select_related("customer_account").filter(pk=record_id(value)).first()
    if snapshot is None:
        raise ActionRefused(f"there is no inventory snapshot with id {value!r}")
    return snapshot


def compare(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Compare the run's snapshot (`snapshot_id`, else `pulled_snapshot_id`) with the other system's latest."""
    snapshot = _snapshot(payload.get("snapshot_id") or payload.get("pulled_snapshot_id"))
    try:
        comparison = inventory_compare(
            snapshot=snapshot,
            source_of_truth=str(payload.get("source_of_truth") or ""),
            quantity_tolerance=payload.get("quantity_tolerance", 0),
            percent_tolerance=payload.get("percent_tolerance", 0),
            actor=ACTOR,
        )
    except LogisticsRefused as refused:
        raise _refused(refused) from refused
    return {**comparison.as_data(), "snapshot_id": snapshot.pk}


def adjusted(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """The wrong system took the correction (`answer`: what it said): mark the variances adjusted."""
    comparison = _object(payload.get("compare"))
    ids = [item.get("variance_id") for item in comparison.get("variances") or [] if isinstance(item, dict) and item.get("within_tolerance")]
    answer = _object(payload.get("answer") or payload.get("erp_answer") or payload.get("wms_answer"))
    done = adjustments_record(variance_ids=ids, system=str(comparison.get("wrong") or ""), answer=answer, actor=ACTOR)
    return {"adjusted": done, "system": comparison.get("wrong"), "count": len(done)}


def exception_open(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Open (or bring up to date) the inventory-variance exception for what is beyond tolerance."""
    comparison = _object(payload.get("compare"))
    snapshot = _snapshot(comparison.get("snapshot_id"))
    try:
        return variance_exception_open(comparison=comparison, snapshot=snapshot, actor=ACTOR).as_data()
    except LogisticsRefused as refused:
        raise _refused(refused) from refused


def publish(payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    """Send the corrected position to the customers' systems (`owners`: SKU → customer account code)."""
    comparison = _object(payload.get("compare"))
    owners = {str(sku): str(code) for sku, code in _object(payload.get("owners")).items() if code}
    key = f"inventory-position:{comparison.get('truth_snapshot_id')}:{comparison.get('wrong_snapshot_id')}"
    try:
        published = position_publish(comparison=comparison, owners=owners, event_key=key)
    except LogisticsRefused as refused:
        raise _refused(refused) from refused
    return {"published": published, "webhooks": sum(item["deliveries"] for item in published)}


ACTIONS = [
    ("inventory.take", take, "Record an inventory snapshot (API or EDI 846) or a 945/944 movement, or say the systems must be pulled."),
    ("inventory.pulled", pulled, "Record the ERP's and the WMS's inventory as read through their connections."),
    (
        "inventory.compare",
        compare,
        "Compare a snapshot with the other system's latest (movements in between applied), per SKU and location.",
    ),
    ("inventory.adjusted", adjusted, "Mark the within-tolerance variances adjusted once the wrong system took the correction."),
    ("inventory.exception_open", exception_open, "Open or update the inventory-variance exception, itemising what is beyond tolerance."),
    ("inventory.publish", publish, "Send the corrected inventory position to the customers' systems by webhook."),
]
