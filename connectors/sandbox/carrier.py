"""A fake parcel/LTL carrier: tracker lookup, tracker creation, and tracking webhooks it pushes.

Trackers and events are shaped like EasyPost's (`Tracker` with `tracking_details`, `Event` with
`description` "tracker.created"/"tracker.updated" and the tracker as `result`). Each milestone
(`advance()`, the admin route, or every `advance_every` seconds) becomes one event, POSTed to the
configured loopback URL and signed with Standard Webhooks (the event id is the `webhook-id`) or
EasyPost's `X-Hmac-Signature`. A delivery that fails is retried with backoff; each attempt is signed
afresh, so it carries its own timestamp. The `duplicate_webhooks` and `reorder_webhooks` faults send
every event twice, or hold events and release them newest first.
"""

from __future__ import annotations

import copy
import http.client
import ipaddress
import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from connectors.sandbox.base import JSON, Answer, Faults, Fields, Problem, Route, SandboxRequest, SandboxSystem, utc_now_iso
from connectors.signatures import EASYPOST, STANDARD_WEBHOOKS, HmacScheme, SigningSecret, StandardWebhooks, standard_secret_key

WEBHOOK_SCHEMES: dict[str, StandardWebhooks | HmacScheme] = {"standard-webhooks": STANDARD_WEBHOOKS, "easypost": EASYPOST}
CARRIER = "SBXF"
# (status, message, city, state, zip): the journey every tracker makes, Memphis hub to Dallas.
MILESTONES = (
    ("pre_transit", "Shipment information received", "MEMPHIS", "TN", "38118"),
    ("in_transit", "Departed origin facility", "MEMPHIS", "TN", "38118"),
    ("in_transit", "Arrived at destination facility", "DALLAS", "TX", "75261"),
    ("out_for_delivery", "Out for delivery", "DALLAS", "TX", "75201"),
    ("delivered", "Delivered, signed for at dock door 4", "DALLAS", "TX", "75201"),
)


def loopback_address(host: str) -> str:
    """The address to connect to for a webhook host: loopback IPs, `localhost` and `*.localhost`
    (RFC 6761: always this machine, so tenant hosts such as acme.localhost work); nothing else."""
    if host == "localhost" or host.endswith(".localhost"):
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"the carrier sandbox pushes webhooks to loopback hosts only, not {host!r}")


@dataclass
class WebhookDelivery:
    """One attempt to deliver one event (copy 2: the injected duplicate)."""

    event_id: str
    tracking_code: str
    status: str
    attempt: int
    copy: int
    headers: dict[str, str]
    body: bytes
    http_status: int | None
    error: str
    sent_at: float


@dataclass(frozen=True)
class _Outgoing:
    event_id: str
    tracking_code: str
    status: str
    body: bytes
    copy: int = 1


class CarrierSandbox(SandboxSystem):
    name = "carrier"
    title = "Carrier sandbox (trackers, signed tracking webhooks)"
    sends_webhooks = True

    def __init__(
        self,
        *,
        webhook_url: str = "",
        webhook_secrets: Sequence[str | SigningSecret] = (),
        webhook_scheme: str = "standard-webhooks",
        advance_every: float = 0.0,
        webhook_attempts: int = 3,
        webhook_retry_seconds: float = 0.5,
        webhook_timeout: float = 10.0,
        **options: Any,
    ):
        super().__init__(**options)
        self.configure_webhooks(webhook_url, webhook_secrets, webhook_scheme)
        self.advance_every = advance_every
        self.webhook_attempts = webhook_attempts
        self.webhook_retry_seconds = webhook_retry_seconds
        self.webhook_timeout = webhook_timeout
        self.trackers: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[WebhookDelivery] = []
        self._held: list[list[_Outgoing]] = []
        self._outbox: queue.Queue[_Outgoing | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        seeded = self._tracker_new("SBX0000000001")
        self._milestone_add(seeded)

    def configure_webhooks(self, url: str, secrets: Sequence[str | SigningSecret], scheme: str = "standard-webhooks") -> None:
        """Where tracking events go and how they are signed (ValueError saying what is wrong)."""
        if scheme not in WEBHOOK_SCHEMES:
            raise ValueError(f"webhook scheme {scheme!r} is not one of {', '.join(WEBHOOK_SCHEMES)}")
        if url:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"the webhook URL must be http://host[:port]/path, not {url!r}")
            loopback_address(parts.hostname)
            if not secrets:
                raise ValueError("signed webhooks need at least one secret")
            if scheme == "standard-webhooks":
                for secret in secrets:
                    standard_secret_key(secret if isinstance(secret, str) else secret.value)
        with self._lock:
            self.webhook_url, self.webhook_secrets, self.webhook_scheme = url, list(secrets), scheme

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/api/trackers", self._tracker_created, writes=True),
            Route("GET", r"/api/trackers/(?P<code>[^/]+)", self._tracker_read),
            Route("POST", r"/_sandbox/trackers/(?P<code>[^/]+)/advance", self._tracker_advanced, admin=True),
            Route("POST", "/_sandbox/webhooks", self._webhooks_configured, admin=True),
            Route("GET", "/_sandbox/deliveries", self._deliveries_listed, admin=True),
        ]

    # --- lifecycle: the delivery worker and the optional ticker ------------------------------

    def start(self) -> Self:
        super().start()
        self._workers = [threading.Thread(target=self._deliver_forever, name="sandbox-carrier-webhooks", daemon=True)]
        if self.advance_every > 0:
            self._workers.append(threading.Thread(target=self._advance_forever, name="sandbox-carrier-ticker", daemon=True))
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        super().stop()  # sets the closing event first: retries and the ticker stop waiting
        self._outbox.put(None)
        for worker in self._workers:
            worker.join(timeout=self.webhook_timeout + 1)
        self._workers = []

    # --- trackers ---------------------------------------------------------------------------

    def advance(self, tracking_code: str) -> dict[str, Any]:
        """Move a tracker to its next milestone and push the event; Problem when unknown or delivered."""
        with self._lock:
            tracker = self._known(tracking_code)
            if tracker["status"] == "delivered":
                raise Problem(409, "already-delivered", "Already delivered", f"tracker {tracking_code} is already delivered")
            previous = tracker["status"]
            self._milestone_add(tracker)
            self._emit(tracker, "tracker.updated", previous)
            return copy.deepcopy(tracker)

    def _tracker_new(self, tracking_code: str) -> dict[str, Any]:
        now = utc_now_iso()
        tracker: dict[str, Any] = {
            "id": f"trk_{uuid.uuid4().hex[:24]}",
            "object": "Tracker",
            "mode": "test",
            "tracking_code": tracking_code,
            "carrier": CARRIER,
            "status": "unknown",
            "signed_by": None,
            "est_delivery_date": None,
            "tracking_details": [],
            "created_at": now,
            "updated_at": now,
        }
        self.trackers[tracking_code] = tracker
        return tracker

    def _milestone_add(self, tracker: dict[str, Any]) -> None:
        status, message, city, state, zip_code = MILESTONES[len(tracker["tracking_details"])]
        now = utc_now_iso()
        tracker["tracking_details"].append(
            {
                "object": "TrackingDetail",
                "message": message,
                "status": status,
                "datetime": now,
                "source": CARRIER,
                "tracking_location": {"object": "TrackingLocation", "city": city, "state": state, "country": "US", "zip": zip_code},
            }
        )
        tracker.update(status=status, updated_at=now, signed_by="R. DOCK" if status == "delivered" else None)

    def _known(self, tracking_code: str) -> dict[str, Any]:
        if tracking_code not in self.trackers:
            raise Problem(404, "tracker-not-found", "Tracker not found", f"the carrier has no tracker for {tracking_code}")
        return self.trackers[tracking_code]

    def _tracker_created(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        """Like EasyPost: creating a tracker for a known code answers the existing tracker."""
        fields = Fields(request.body)
        tracking_code = fields.text("tracking_code")
        carrier = fields.text("carrier", required=False, default=CARRIER)
        fields.check()
        if carrier != CARRIER:
            raise Problem(422, "unknown-carrier", "Unknown carrier", f"this sandbox carrier is {CARRIER}, not {carrier}")
        if tracking_code in self.trackers:
            return Answer(200, copy.deepcopy(self.trackers[tracking_code]))
        tracker = self._tracker_new(tracking_code)
        self._milestone_add(tracker)
        self.record_effect("tracker", tracker["id"], request.body, request)
        self._emit(tracker, "tracker.created", "unknown")
        return Answer(201, copy.deepcopy(tracker))

    def _tracker_read(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        return Answer(200, copy.deepcopy(self._known(match["code"])))

    def _tracker_advanced(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        return Answer(200, self.advance(match["code"]))

    def _webhooks_configured(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        fields = Fields(request.body)
        url = fields.text("url")
        secret = fields.text("secret")
        scheme = fields.text("scheme", required=False, choices=tuple(WEBHOOK_SCHEMES), default="standard-webhooks")
        fields.check()
        try:
            self.configure_webhooks(url, [secret], scheme)
        except ValueError as error:
            raise Problem(422, "invalid-webhooks", "Invalid webhook target", str(error)) from error
        return Answer(200, {"url": url, "scheme": scheme})

    def _deliveries_listed(self, request: SandboxRequest, match: re.Match[str]) -> Answer:
        listed = [
            {
                "event_id": delivery.event_id,
                "tracking_code": delivery.tracking_code,
                "status": delivery.status,
                "attempt": delivery.attempt,
                "copy": delivery.copy,
                "http_status": delivery.http_status,
                "error": delivery.error,
            }
            for delivery in self.deliveries
        ]
        return Answer(200, {"deliveries": listed})

    # --- webhooks ---------------------------------------------------------------------------

    def _emit(self, tracker: dict[str, Any], description: str, previous_status: str) -> None:
        """Record the event and queue its delivery (under the lock), applying the webhook faults."""
        event = {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "Event",
            "mode": "test",
            "description": description,
            "created_at": tracker["updated_at"],
            "previous_attributes": {"status": previous_status},
            "result": copy.deepcopy(tracker),
        }
        self.events.append(event)
        if not self.webhook_url:
            return
        body = json.dumps(event, separators=(",", ":")).encode()
        group = [_Outgoing(event["id"], tracker["tracking_code"], tracker["status"], body)]
        if self.faults.duplicate_webhooks:
            group.append(_Outgoing(event["id"], tracker["tracking_code"], tracker["status"], body, copy=2))
        if self.faults.reorder_webhooks:
            self._held.append(group)
            if len(self._held) >= self.faults.reorder_window:
                self._release_held()
            return
        for outgoing in group:
            self._outbox.put(outgoing)

    def _release_held(self) -> None:
        for group in reversed(self._held):
            for outgoing in group:
                self._outbox.put(outgoing)
        self._held = []

    def _faults_changed(self, before: Faults) -> None:
        """Held events go out (still newest first) when reordering is switched off."""
        with self._lock:
            if before.reorder_webhooks and not self.faults.reorder_webhooks and self._held:
                self._release_held()

    def _deliver_forever(self) -> None:
        while (outgoing := self._outbox.get()) is not None:
            for attempt in range(1, self.webhook_attempts + 1):
                delivery = self._deliver(outgoing, attempt)
                if delivery.http_status is not None and 200 <= delivery.http_status < 300:
                    break
                if attempt < self.webhook_attempts and self._closing.wait(self.webhook_retry_seconds * 2 ** (attempt - 1)):
                    return

    def _deliver(self, outgoing: _Outgoing, attempt: int) -> WebhookDelivery:
        with self._lock:
            url, secrets, scheme = self.webhook_url, list(self.webhook_secrets), WEBHOOK_SCHEMES[self.webhook_scheme]
        headers = {"Content-Type": JSON, "User-Agent": "baton-sandbox-carrier/1"}
        headers.update(scheme.sign(outgoing.body, secrets=secrets, webhook_id=outgoing.event_id))
        parts = urlsplit(url)
        status, error = None, ""
        connection = http.client.HTTPConnection(loopback_address(parts.hostname or ""), parts.port or 80, timeout=self.webhook_timeout)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", path, body=outgoing.body, headers={"Host": parts.netloc, **headers})
            response = connection.getresponse()
            response.read()
            status = response.status
        except OSError as failure:
            error = str(failure) or failure.__class__.__name__
        finally:
            connection.close()
        delivery = WebhookDelivery(
            outgoing.event_id,
            outgoing.tracking_code,
            outgoing.status,
            attempt,
            outgoing.copy,
            headers,
            outgoing.body,
            status,
            error,
            time.time(),
        )
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def _advance_forever(self) -> None:
        while not self._closing.wait(self.advance_every):
            with self._lock:
                moving = [code for code, tracker in self.trackers.items() if tracker["status"] != "delivered"]
            for code in moving:
                try:
                    self.advance(code)
                except Problem:  # delivered meanwhile through the admin route
                    continue

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Block until at least `count` delivery attempts were made; TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.02)
        raise TimeoutError(f"the carrier made {len(self.deliveries)} delivery attempts within {timeout} s, expected {count}")
