"""A fake TMS: load tenders (an `Idempotency-Key` is required, as strict carrier APIs do) and their
status. A tender is pending until `decision_seconds` have passed, then accepted with a carrier and a
PRO number, or rejected when it is heavier than one truck carries."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from connectors.sandbox.base import Answer, Fields, Problem, Route, SandboxRequest, SandboxSystem, utc_now_iso

EQUIPMENT = ("dry_van", "reefer", "flatbed")
TRUCK_CAPACITY_KG = 20_000


class TmsSandbox(SandboxSystem):
    name = "tms"
    title = "TMS sandbox (load tenders)"

    def __init__(self, *, decision_seconds: float = 0.0, **options: Any):
        super().__init__(**options)
        self.decision_seconds = decision_seconds
        self.tenders: dict[str, dict[str, Any]] = {}
        self._created_at: dict[str, float] = {}

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/api/tenders", self._tender_created, writes=True),
            Route("GET", r"/api/tenders/(?P<tender_id>[^/]+)", self._tender_read),
        ]

    def _tender_created(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        if not request.idempotency_key:
            raise Problem(400, "idempotency-key-required", "Idempotency-Key required", "POST /api/tenders needs an Idempotency-Key header")
        fields = Fields(request.body)
        reference = fields.text("shipment_reference")
        stops = {}
        for stop in ("origin", "destination"):
            place = fields.nested(stop)
            stops[stop] = {"city": place.text("city"), "country": place.text("country")}
        pickup_date = fields.text("pickup_date")
        weight_kg = fields.number("weight_kg")
        equipment = fields.text("equipment", required=False, choices=EQUIPMENT, default="dry_van")
        fields.check()
        tender_id = f"TND-{len(self.tenders) + 1:06d}"
        tender = {
            "tender_id": tender_id,
            "status": "pending",
            "shipment_reference": reference,
            **stops,
            "pickup_date": pickup_date,
            "weight_kg": weight_kg,
            "equipment": equipment,
            "carrier": None,
            "pro_number": None,
            "reason": None,
            "created_at": utc_now_iso(),
        }
        self.tenders[tender_id] = tender
        self._created_at[tender_id] = time.monotonic()
        self.record_effect("tender", tender_id, request.body, request)
        return Answer(201, copy.deepcopy(tender))

    def _tender_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        tender_id = match["tender_id"]
        if tender_id not in self.tenders:
            raise Problem(404, "tender-not-found", "Tender not found", f"the TMS has no tender {tender_id}")
        tender = self.tenders[tender_id]
        if tender["status"] == "pending" and time.monotonic() - self._created_at[tender_id] >= self.decision_seconds:
            self._decide(tender)
        return Answer(200, copy.deepcopy(tender))

    def _decide(self, tender: dict[str, Any]) -> None:
        if tender["weight_kg"] > TRUCK_CAPACITY_KG:
            tender.update(status="rejected", reason=f"{tender['weight_kg']} kg is over the {TRUCK_CAPACITY_KG} kg a truck carries")
        else:
            number = tender["tender_id"].removeprefix("TND-")
            tender.update(status="accepted", carrier="SBXF", pro_number=f"PRO{number}")
        tender["decided_at"] = utc_now_iso()
