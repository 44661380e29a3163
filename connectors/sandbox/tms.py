"""A fake TMS: load tenders (an `Idempotency-Key` is required, as strict carrier APIs do) and their
status. A tender is pending until `decision_seconds` have passed, then accepted with a carrier and a
PRO number, or rejected when it is heavier than one truck carries.

Tenders come in two shapes: the TMS's own (`POST /api/tenders`: stops, date, weight), and an order
as an order-management workflow holds it (`POST /api/order-tenders`, `{"order": {"order_id",
"lines": [{"sku", "qty"}]}}`: the TMS plans the load itself), which can be cancelled again by order
(`POST /api/order-tenders/cancellations`) – what the demo's order release calls and compensates.

With `clients` (client id to secret) the TMS wants OAuth2: `POST /oauth/token` gives client
credentials (HTTP Basic or form fields) a bearer token, and every other route but `/_sandbox/`
answers 401 without one. Without clients it is open.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox.base import Answer, Fields, Problem, Route, SandboxRequest, SandboxSystem, utc_now_iso

EQUIPMENT = ("dry_van", "reefer", "flatbed")
TRUCK_CAPACITY_KG = 20_000
TOKEN_PATH = "/oauth/token"
TOKEN_LIFETIME_SECONDS = 3600
# An order tender is planned from the TMS's own distribution centre, at this weight per unit.
ORDER_ORIGIN = {"city": "Memphis", "country": "US"}
ORDER_DESTINATION = {"city": "Dallas", "country": "US"}
UNIT_WEIGHT_KG = 250


class TmsSandbox(SandboxSystem):
    name = "tms"
    title = "TMS sandbox (load tenders)"

    def __init__(self, *, decision_seconds: float = 0.0, clients: Mapping[str, str] | None = None, **options: Any):
        super().__init__(**options)
        self.decision_seconds = decision_seconds
        self.clients = dict(clients or {})
        self.tenders: dict[str, dict[str, Any]] = {}
        self._created_at: dict[str, float] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (client id, expiry on the monotonic clock)

    def routes(self) -> list[Route]:
        return [
            Route("POST", TOKEN_PATH, self._token_issued),
            Route("GET", "/api/tenders", self._tenders_listed),
            Route("POST", "/api/tenders", self._tender_created, writes=True),
            Route("GET", r"/api/tenders/(?P<tender_id>[^/]+)", self._tender_read),
            Route("POST", "/api/order-tenders", self._order_tendered, writes=True),
            Route("POST", "/api/order-tenders/cancellations", self._order_tender_cancelled, writes=True),
        ]

    # --- OAuth2 client credentials ------------------------------------------------------------

    def _authorize(self, request: SandboxRequest, route: Route) -> Problem | None:
        if not self.clients or route.pattern == TOKEN_PATH:
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        issued = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if issued is None or issued[1] <= time.monotonic():
            return Problem(401, "unauthorized", "Unauthorized", f"send Authorization: Bearer <token>, with a token from POST {TOKEN_PATH}")
        return None

    def _caller(self, request: SandboxRequest) -> str:
        """The OAuth2 client behind the bearer token (tokens change, the client does not)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        issued = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return issued[0] if issued else ""

    def _token_issued(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """RFC 6749 client credentials; errors are OAuth2's own `{"error": …}` answers."""
        form = request.body if isinstance(request.body, dict) else {}
        if form.get("grant_type") != "client_credentials":
            return Answer(400, {"error": "unsupported_grant_type", "error_description": "only grant_type=client_credentials is supported"})
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(credentials.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = secret = ""
        known = self.clients.get(client_id)
        if known is None or not secrets.compare_digest(known.encode(), secret.encode()):
            refusal = {"error": "invalid_client", "error_description": "unknown client id or wrong secret"}
            return Answer(401, refusal, (("WWW-Authenticate", 'Basic realm="tms-sandbox"'),))
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (client_id, time.monotonic() + TOKEN_LIFETIME_SECONDS)
        return Answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECONDS})

    # --- tenders -------------------------------------------------------------------------------

    def _tender_created(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        self._key_required(request, "/api/tenders")
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
        return Answer(201, self._tender_new(request, reference, stops, pickup_date, weight_kg, equipment))

    def _order_tendered(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        self._key_required(request, "/api/order-tenders")
        order = Fields(request.body).nested("order")
        order_id = order.text("order_id")
        units = sum(int(line.number("qty", integer=True)) for line in order.items("lines"))
        order.check()
        stops = {"origin": dict(ORDER_ORIGIN), "destination": dict(ORDER_DESTINATION)}
        today = datetime.now(tz=UTC).date().isoformat()
        return Answer(201, self._tender_new(request, order_id, stops, today, units * UNIT_WEIGHT_KG, "dry_van"))

    def _order_tender_cancelled(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """Cancel the newest open tender of the order (the compensation of a tender)."""
        order = Fields(request.body).nested("order")
        order_id = order.text("order_id")
        order.check()
        open_tenders = [t for t in self.tenders.values() if t["shipment_reference"] == order_id and t["status"] != "cancelled"]
        if not open_tenders:
            raise Problem(404, "tender-not-found", "Tender not found", f"the TMS has no open tender for order {order_id}")
        tender = open_tenders[-1]
        tender.update(status="cancelled", cancelled_at=utc_now_iso())
        self.record_effect("tender_cancellation", tender["tender_id"], request.body, request)
        return Answer(200, copy.deepcopy(tender))

    def _key_required(self, request: SandboxRequest, path: str) -> None:
        if not request.idempotency_key:
            raise Problem(400, "idempotency-key-required", "Idempotency-Key required", f"POST {path} needs an Idempotency-Key header")

    def _tender_new(
        self, request: SandboxRequest, reference: str, stops: dict[str, Any], pickup_date: str, weight_kg: float, equipment: str
    ) -> dict[str, Any]:
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
        return copy.deepcopy(tender)

    def _tenders_listed(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """Every tender, oldest first (decided ones with their decision)."""
        listed = [self._current(tender_id) for tender_id in self.tenders]
        return Answer(200, {"tenders": copy.deepcopy(listed), "count": len(listed)})

    def _tender_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        tender_id = match["tender_id"]
        if tender_id not in self.tenders:
            raise Problem(404, "tender-not-found", "Tender not found", f"the TMS has no tender {tender_id}")
        return Answer(200, copy.deepcopy(self._current(tender_id)))

    def _current(self, tender_id: str) -> dict[str, Any]:
        tender = self.tenders[tender_id]
        if tender["status"] == "pending" and time.monotonic() - self._created_at[tender_id] >= self.decision_seconds:
            self._decide(tender)
        return tender

    def _decide(self, tender: dict[str, Any]) -> None:
        if tender["weight_kg"] > TRUCK_CAPACITY_KG:
            tender.update(status="rejected", reason=f"{tender['weight_kg']} kg is over the {TRUCK_CAPACITY_KG} kg a truck carries")
        else:
            number = tender["tender_id"].removeprefix("TND-")
            tender.update(status="accepted", carrier="SBXF", pro_number=f"PRO{number}")
        tender["decided_at"] = utc_now_iso()
