"""A fake WMS: warehouse shipping orders released as 940-like JSON, an inventory snapshot, and the
945-like shipment confirmation once the order has shipped (`ship_seconds` after its release).

A release allocates stock (refused, naming the line, when there is not enough); shipping moves it
out of the building and writes the confirmation. A receipt (`POST /api/receipts`, a 944-like
goods receipt) brings stock in, so a long-running demo does not run the building dry. An inventory
adjustment (`POST /api/inventory/adjustments`, the inventory sync's `adjust_inventory`) corrects
on-hand counts, never below what is allocated."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from connectors.sandbox.base import Answer, Fields, Problem, Route, SandboxRequest, SandboxSystem, utc_now_iso
from connectors.sandbox.erp import adjustments_read

SITE = "DAL1"


class WmsSandbox(SandboxSystem):
    name = "wms"
    title = "WMS sandbox (releases, inventory, shipment confirmations)"

    def __init__(self, *, ship_seconds: float = 0.0, **options: Any):
        super().__init__(**options)
        self.ship_seconds = ship_seconds
        self.stock: dict[str, dict[str, Any]] = {
            "SKU-PALLET-A": {"location": "A-01-01", "on_hand": 140, "allocated": 0},
            "SKU-CARTON-B": {"location": "B-04-02", "on_hand": 2_300, "allocated": 0},
            "SKU-REEFER-C": {"location": "C-COLD-1", "on_hand": 48, "allocated": 0},
        }
        self.releases: dict[str, dict[str, Any]] = {}
        self._released_at: dict[str, float] = {}

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/api/releases", self._order_released, writes=True),
            Route("GET", r"/api/releases/(?P<release_id>[^/]+)", self._release_read),
            Route("GET", r"/api/releases/(?P<release_id>[^/]+)/shipment-confirmation", self._confirmation_read),
            Route("GET", "/api/inventory", self._inventory_read),
            Route("POST", "/api/receipts", self._goods_received, writes=True),
            Route("POST", "/api/inventory/adjustments", self._inventory_adjusted, writes=True),
        ]

    def _order_released(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        self._ship_due()
        fields = Fields(request.body)
        order_number = fields.text("order_number")
        ship_to = fields.nested("ship_to")
        destination = {"name": ship_to.text("name"), "city": ship_to.text("city"), "country": ship_to.text("country")}
        carrier = fields.text("carrier", required=False, default="SBXF")
        wanted: dict[str, int] = {}
        lines: list[dict[str, Any]] = []
        for line in fields.items("lines"):
            sku = line.text("sku")
            quantity = int(line.number("quantity", integer=True))
            if sku and sku not in self.stock:
                line.fail("sku", f"{sku} is not stocked at {SITE}")
            lines.append({"line": len(lines) + 1, "sku": sku, "quantity": quantity})
            if sku in self.stock and quantity > 0:
                wanted[sku] = wanted.get(sku, 0) + quantity
                available = self.stock[sku]["on_hand"] - self.stock[sku]["allocated"]
                if wanted[sku] > available:
                    line.fail("quantity", f"{wanted[sku]} {sku} wanted, {available} available")
        fields.check()
        for sku, quantity in wanted.items():
            self.stock[sku]["allocated"] += quantity
        release_id = f"REL-{len(self.releases) + 1:06d}"
        release = {
            "release_id": release_id,
            "order_number": order_number,
            "status": "released",
            "site": SITE,
            "ship_to": destination,
            "carrier": carrier,
            "lines": lines,
            "released_at": utc_now_iso(),
            "shipment": None,
        }
        self.releases[release_id] = release
        self._released_at[release_id] = time.monotonic()
        self.record_effect("release", release_id, request.body, request)
        return Answer(201, copy.deepcopy(release))

    def _known(self, release_id: str) -> dict[str, Any]:
        self._ship_due()
        if release_id not in self.releases:
            raise Problem(404, "release-not-found", "Release not found", f"the WMS has no release {release_id}")
        return self.releases[release_id]

    def _release_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        return Answer(200, copy.deepcopy(self._known(match["release_id"])))

    def _confirmation_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        release = self._known(match["release_id"])
        if release["shipment"] is None:
            raise Problem(
                409, "not-shipped-yet", "Not shipped yet", f"release {release['release_id']} is {release['status']}; it has not shipped yet"
            )
        return Answer(200, copy.deepcopy(release["shipment"]))

    def _goods_received(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """Stock received at the dock: `{"reference", "lines": [{"sku", "quantity"}]}`, each SKU
        one the building stocks."""
        fields = Fields(request.body)
        reference = fields.text("reference")
        received: dict[str, int] = {}
        for line in fields.items("lines"):
            sku = line.text("sku")
            quantity = int(line.number("quantity", integer=True))
            if sku and sku not in self.stock:
                line.fail("sku", f"{sku} is not stocked at {SITE}")
            elif sku and quantity > 0:
                received[sku] = received.get(sku, 0) + quantity
        fields.check()
        for sku, quantity in received.items():
            self.stock[sku]["on_hand"] += quantity
        receipt = {
            "reference": reference,
            "site": SITE,
            "lines": [{"sku": sku, "quantity": quantity, "on_hand": self.stock[sku]["on_hand"]} for sku, quantity in received.items()],
            "received_at": utc_now_iso(),
        }
        self.record_effect("receipt", reference, request.body, request)
        return Answer(201, receipt)

    def _inventory_adjusted(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """On-hand counts corrected (the same body as the ERP's): each SKU one the building
        stocks; refused whole when a SKU would hold less than is allocated to releases."""
        self._ship_due()
        fields = Fields(request.body)
        changes = adjustments_read(fields)
        for index, line in enumerate(fields.body.get("adjustments") or []):
            sku = line.get("sku") if isinstance(line, dict) else None
            if isinstance(sku, str) and sku and sku not in self.stock:
                fields.fail(f"adjustments[{index}].sku", f"{sku} is not stocked at {SITE}")
        fields.check()
        short = [
            f"{sku} would hold {self.stock[sku]['on_hand'] + by}, {self.stock[sku]['allocated']} allocated"
            for sku, by in changes.items()
            if self.stock[sku]["on_hand"] + by < self.stock[sku]["allocated"]
        ]
        if short:
            raise Problem(
                409, "stock-allocated", "Stock is allocated", f"the WMS cannot adjust below what is allocated: {'; '.join(short)}"
            )
        for sku, by in changes.items():
            self.stock[sku]["on_hand"] += by
        reference = f"CC-{len(self.effects_for('inventory_adjustment')) + 1:05d}"
        self.record_effect("inventory_adjustment", reference, request.body, request)
        on_hand = {sku: self.stock[sku]["on_hand"] for sku in changes}
        return Answer(201, {"adjustment_id": reference, "site": SITE, "lines": len(fields.body["adjustments"]), "on_hand": on_hand})

    def _inventory_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        self._ship_due()
        items = [
            {
                "sku": sku,
                "location": place["location"],
                "on_hand": place["on_hand"],
                "allocated": place["allocated"],
                "available": place["on_hand"] - place["allocated"],
            }
            for sku, place in sorted(self.stock.items())
        ]
        return Answer(200, {"as_of": utc_now_iso(), "site": SITE, "items": items})

    def _ship_due(self) -> None:
        """Ship every release whose time has come (checked lazily on each request, under the lock)."""
        now = time.monotonic()
        for release_id, release in self.releases.items():
            if release["status"] == "released" and now - self._released_at[release_id] >= self.ship_seconds:
                for line in release["lines"]:
                    place = self.stock[line["sku"]]
                    place["on_hand"] -= line["quantity"]
                    place["allocated"] -= line["quantity"]
                number = release_id.removeprefix("REL-")
                release["status"] = "shipped"
                release["shipment"] = {
                    "release_id": release_id,
                    "order_number": release["order_number"],
                    "site": SITE,
                    "carrier": release["carrier"],
                    "tracking_number": f"SBX{number}0001",
                    "bill_of_lading": f"BOL-{number}",
                    "shipped_at": utc_now_iso(),
                    "lines": [
                        {"line": line["line"], "sku": line["sku"], "shipped_quantity": line["quantity"]} for line in release["lines"]
                    ],
                }
