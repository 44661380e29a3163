"""A fake ERP: sales orders to list and read, order confirmations to post, an inventory snapshot
and its adjustments, and a webhook inbox for Baton's events (`POST /api/events`: what a customer's
system subscribed to them receives, so a demo can see its webhooks arrive)."""

from __future__ import annotations

import copy
import re
from typing import Any

from connectors.sandbox.base import Answer, Fields, Problem, Route, SandboxRequest, SandboxSystem, utc_now_iso

DECISIONS = ("accepted", "rejected")


def _order(number: str, customer: str, city: str, country: str, lines: list[tuple[str, int]], status: str = "open") -> dict[str, Any]:
    return {
        "number": number,
        "status": status,
        "customer": customer,
        "ship_to": {"name": customer, "city": city, "country": country},
        "requested_ship_date": "2025-07-01",
        "lines": [{"line": index, "sku": sku, "quantity": quantity, "uom": "EA"} for index, (sku, quantity) in enumerate(lines, 1)],
        "confirmation": None,
        "updated_at": "2025-06-20T08:00:00Z",
    }


def _seed_orders() -> dict[str, dict[str, Any]]:
    orders = [
        _order("SO-1001", "Northwind Retail", "Dallas", "US", [("SKU-PALLET-A", 12), ("SKU-CARTON-B", 40)]),
        _order("SO-1002", "Contoso Foods", "Chicago", "US", [("SKU-REEFER-C", 6)]),
        _order("SO-1003", "Fabrikam Parts", "Monterrey", "MX", [("SKU-CARTON-B", 100)]),
        _order("SO-1004", "Tailspin Outdoor", "Denver", "US", [("SKU-PALLET-A", 3)], status="shipped"),
    ]
    return {order["number"]: order for order in orders}


class ErpSandbox(SandboxSystem):
    name = "erp"
    title = "ERP sandbox (sales orders, confirmations, inventory)"

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.orders = _seed_orders()
        self.inventory = {"SKU-PALLET-A": 140, "SKU-CARTON-B": 2_300, "SKU-REEFER-C": 48}
        self._confirmations = 0
        self.invoices: dict[str, dict[str, Any]] = {}
        self.inventory_locked = ""  # why adjustments are refused (a closed period), or "" when they are taken
        self.events_received: dict[str, dict[str, Any]] = {}  # webhook id → the event

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api/orders", self._orders_listed),
            Route("POST", "/api/orders", self._order_placed, writes=True),
            Route("GET", r"/api/orders/(?P<number>[^/]+)", self._order_read),
            Route("POST", r"/api/orders/(?P<number>[^/]+)/confirmations", self._order_confirmed, writes=True),
            Route("POST", "/api/order-confirmations", self._order_confirmed_by_body, writes=True),
            Route("POST", "/api/invoices", self._invoice_imported, writes=True),
            Route("GET", r"/api/invoices/(?P<number>[^/]+)", self._invoice_read),
            Route("GET", "/api/inventory", self._inventory_read),
            Route("POST", "/api/inventory/adjustments", self._inventory_adjusted, writes=True),
            Route("POST", "/api/events", self._event_received),
        ]

    def _known(self, number: str) -> dict[str, Any]:
        if number not in self.orders:
            raise Problem(404, "order-not-found", "Order not found", f"the ERP has no order {number}")
        return self.orders[number]

    def _orders_listed(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """`?status=open&limit=2&offset=0`: newest numbers last, like a paged ERP export."""
        status = request.query.get("status", "")
        try:
            limit = int(request.query.get("limit", "50"))
            offset = int(request.query.get("offset", "0"))
        except ValueError as error:
            raise Problem(400, "invalid-query", "Invalid query", "limit and offset must be whole numbers") from error
        if limit < 1 or offset < 0:
            raise Problem(400, "invalid-query", "Invalid query", "limit must be at least 1 and offset at least 0")
        chosen = [order for order in self.orders.values() if not status or order["status"] == status]
        page = chosen[offset : offset + limit]
        following = offset + limit if offset + limit < len(chosen) else None
        return Answer(200, {"orders": copy.deepcopy(page), "count": len(chosen), "next_offset": following})

    def _order_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        return Answer(200, copy.deepcopy(self._known(match["number"])))

    def _order_placed(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """A sales order entered in the ERP (what the demo's customers order): open, unconfirmed."""
        fields = Fields(request.body)
        number = fields.text("number")
        customer = fields.text("customer")
        ship_to = fields.nested("ship_to")
        destination = {"name": ship_to.text("name"), "city": ship_to.text("city"), "country": ship_to.text("country")}
        requested = fields.text("requested_ship_date", required=False)
        lines = []
        for index, line in enumerate(fields.items("lines"), 1):
            lines.append({"line": index, "sku": line.text("sku"), "quantity": line.number("quantity", integer=True), "uom": "EA"})
        fields.check()
        if number in self.orders:
            raise Problem(409, "order-exists", "Order exists", f"the ERP already has an order {number}")
        order = {
            "number": number,
            "status": "open",
            "customer": customer,
            "ship_to": destination,
            "requested_ship_date": requested or utc_now_iso()[:10],
            "lines": lines,
            "confirmation": None,
            "updated_at": utc_now_iso(),
        }
        self.orders[number] = order
        self.record_effect("order", number, request.body, request)
        return Answer(201, copy.deepcopy(order))

    def _order_confirmed_by_body(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """The same confirmation addressed by the body's `order_number`."""
        fields = Fields(request.body)
        number = fields.text("order_number")
        fields.check()
        return self._confirm(request, self._known(number))

    def _order_confirmed(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        return self._confirm(request, self._known(match["number"]))

    def _confirm(self, request: SandboxRequest, order: dict[str, Any]) -> Answer:
        fields = Fields(request.body)
        decision = fields.text("decision", choices=DECISIONS)
        reference = fields.text("reference", required=False)
        note = fields.text("note", required=False)
        fields.check()
        if order["confirmation"] is not None:
            earlier = order["confirmation"]
            raise Problem(
                409,
                "order-already-confirmed",
                "Order already confirmed",
                f"order {order['number']} was already {earlier['decision']} ({earlier['confirmation_id']})",
            )
        if order["status"] != "open":
            raise Problem(409, "order-not-open", "Order not open", f"order {order['number']} is {order['status']}, not open")
        self._confirmations += 1
        confirmation = {
            "confirmation_id": f"CNF-{self._confirmations:04d}",
            "order": order["number"],
            "decision": decision,
            "reference": reference,
            "note": note,
            "confirmed_at": utc_now_iso(),
        }
        order["confirmation"] = confirmation
        order["status"] = "confirmed" if decision == "accepted" else "rejected"
        order["updated_at"] = confirmation["confirmed_at"]
        self.record_effect("order_confirmation", confirmation["confirmation_id"], request.body, request)
        return Answer(201, copy.deepcopy(confirmation))

    def _invoice_imported(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """A customer invoice into accounts receivable (`{"invoice": {"number", "total",
        "document": {"content_base64"}, …}}`); the ERP answers its own reference."""
        fields = Fields(request.body)
        invoice = fields.nested("invoice")
        number = invoice.text("number")
        invoice.text("total")
        invoice.nested("document").text("content_base64")
        fields.check()
        if number in self.invoices:
            earlier = self.invoices[number]
            raise Problem(409, "invoice-exists", "Invoice exists", f"invoice {number} was imported already as {earlier['reference']}")
        reference = f"AR-{len(self.invoices) + 1:05d}"
        self.invoices[number] = {"reference": reference, "number": number, "invoice": request.body["invoice"], "imported_at": utc_now_iso()}
        self.record_effect("invoice", reference, request.body, request)
        return Answer(201, {"reference": reference, "number": number})

    def _invoice_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        number = match["number"]
        if number not in self.invoices:
            raise Problem(404, "invoice-not-found", "Invoice not found", f"the ERP has no invoice {number}")
        imported = self.invoices[number]
        return Answer(200, {"reference": imported["reference"], "number": number, "imported_at": imported["imported_at"]})

    def _inventory_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        items = [{"sku": sku, "on_hand": on_hand, "uom": "EA"} for sku, on_hand in sorted(self.inventory.items())]
        return Answer(200, {"as_of": utc_now_iso(), "site": "ERP-MAIN", "items": items})

    def _inventory_adjusted(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """Book inventory corrected (`{"adjustments": [{"sku", "adjust_by", …}], "reason",
        "reference"}`, the inventory sync's `adjust_inventory`): each SKU's on-hand moves by
        `adjust_by`; refused whole when a SKU would go below zero or the period is closed."""
        fields = Fields(request.body)
        changes = adjustments_read(fields)
        fields.check()
        if self.inventory_locked:
            raise Problem(409, "period-closed", "Inventory is locked", self.inventory_locked)
        after = {sku: self.inventory.get(sku, 0) + by for sku, by in changes.items()}
        short = [f"{sku} would be {quantity}" for sku, quantity in after.items() if quantity < 0]
        if short:
            raise Problem(409, "stock-negative", "Stock cannot go negative", f"the ERP cannot adjust below zero: {'; '.join(short)}")
        self.inventory.update(after)
        reference = f"ADJ-{len(self.effects_for('inventory_adjustment')) + 1:04d}"
        self.record_effect("inventory_adjustment", reference, request.body, request)
        return Answer(201, {"adjustment_id": reference, "lines": len(fields.body["adjustments"]), "on_hand": after})

    def _event_received(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """A webhook from Baton (Standard Webhooks: `type`, `id`, `data`), kept as an effect
        `webhook` once per `webhook-id` (a redelivery is answered, not kept again). The sandbox
        holds no endpoint secret, so the signature is only required, not verified."""
        fields = Fields(request.body)
        kind = fields.text("type")
        event_id = fields.text("id")
        fields.nested("data")
        headers = {name.lower(): value for name, value in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        if not webhook_id or not headers.get("webhook-signature"):
            fields.fail("headers", "webhook-id and webhook-signature are required (Standard Webhooks)")
        fields.check()
        if webhook_id in self.events_received:
            return Answer(200, {"received": webhook_id, "duplicate": True})
        self.events_received[webhook_id] = {"type": kind, "id": event_id, "received_at": utc_now_iso()}
        self.record_effect(
            "webhook", event_id, {"type": kind, "id": event_id, "webhook_id": webhook_id, "data": request.body["data"]}, request
        )
        return Answer(200, {"received": webhook_id, "duplicate": False})


def adjustments_read(fields: Fields) -> dict[str, int]:
    """The net change per SKU of an adjustment request's lines (whole units, not 0); problems are
    collected on `fields`."""
    changes: dict[str, int] = {}
    for line in fields.items("adjustments"):
        sku = line.text("sku")
        by = line.number("adjust_by", integer=True, positive=False)
        if by == 0 and type(line.body.get("adjust_by")) is int:  # not already refused as no number
            line.fail("adjust_by", "must not be 0: there is nothing to adjust")
        if sku:
            changes[sku] = changes.get(sku, 0) + int(by)
    return changes
