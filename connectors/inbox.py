"""The durable inbox: what partners send, kept before it is answered and handed on exactly once.

Receiving (`webhook_receive`, and `inbound_record` for every channel): a webhook is checked on its
raw body – size, content type, the connection's signature scheme and secrets – before anything
parses it; then the `InboundEvent` and its `EventDispatch` are written in one transaction, and
only then does the sender get its answer (202 with the event id). A redelivery (same connection
and external id: the webhook id, or the vendor's event id) gets the first event's id and changes
nothing. After commit the dispatch task is sent; if the broker is down the row waits for the
sweeper (`dispatch_sweep`), so an outage delays work but loses none.

Dispatching (`event_dispatch`): under the dispatch row's lock, the body is normalized into
canonical events (`connectors.normalize`) and each is handed to workflows – waiting runs woken
(`event_deliver`), event triggers started (`event_triggers_start`) – in the same transaction that
deletes the dispatch row, so a failure leaves everything as it was for the next attempt, and a
success cannot be applied twice. A body that cannot be normalized is quarantined with the reason
and where; an operator can fix and replay it (`inbound_replay`), audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from connectors.auth import secret_mask, signing_secrets_open, signing_secrets_seal
from connectors.edi_transport import edi_acknowledgement_prepare
from connectors.models import Connection, EventDispatch, InboundEvent, InboundScheme, InboundStatus
from connectors.normalize import NormalizationFailed, normalize, x12_acknowledgement
from connectors.signatures import (
    EASYPOST,
    GITHUB,
    SHOPIFY,
    STANDARD_WEBHOOKS,
    STRIPE,
    HmacScheme,
    SigningSecret,
    StandardWebhooks,
    generate_secret,
)
from governance.services import Actor, audit_record
from tenants.db import connection as db

log = structlog.get_logger("baton.connectors")

WEBHOOKS = Counter("baton_webhooks_received_total", "Webhooks received, by result", ["result"])
DISPATCHES = Counter("baton_inbox_dispatches_total", "Inbound events handed on, by result", ["result"])

ACCEPTED_MEDIA_TYPES = ("application/json",)
# Headers kept with an event: what identifies and verifies it, never anything that authenticates us.
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "x-github-delivery",
        "x-github-event",
        "x-shopify-webhook-id",
        "x-shopify-topic",
        "stripe-signature",
        "x-hmac-signature",
        "x-hub-signature-256",
        "x-shopify-hmac-sha256",
        "webhook-signature",
    }
)
DISPATCH_ATTEMPTS = 5  # a dispatch that keeps failing (not a mapping problem) is quarantined after this
SWEEP_AFTER_SECONDS = 30  # a dispatch row older than this is sent again by the sweeper
DEFAULT_SECRET_OVERLAP = timedelta(hours=24)


class WebhookRefused(Exception):
    """A delivery refused before it was stored: HTTP `status`, a problem `kind` (also the metrics
    label), a `title` and a `detail` saying what and why."""

    def __init__(self, status: int, kind: str, title: str, detail: str):
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail


class InboxError(Exception):
    """An operator's request the inbox cannot do (replaying an event that is not quarantined…)."""


@dataclass(frozen=True)
class Received:
    event: InboundEvent
    duplicate: bool


# --- signing secrets ------------------------------------------------------------------------------


def _secrets_open(connection: Connection) -> list[SigningSecret]:
    return signing_secrets_open(connection.inbound_secrets)


_SCHEMES: dict[str, StandardWebhooks | HmacScheme] = {
    InboundScheme.STANDARD_WEBHOOKS: STANDARD_WEBHOOKS,
    InboundScheme.GITHUB: GITHUB,
    InboundScheme.SHOPIFY: SHOPIFY,
    InboundScheme.STRIPE: STRIPE,
    InboundScheme.EASYPOST: EASYPOST,
}


def signature_scheme(scheme: str, scheme_settings: dict[str, Any]) -> StandardWebhooks | HmacScheme:
    """The scheme webhooks are checked with (a custom one built from its fields: a bad definition
    raises ValueError or TypeError)."""
    if scheme == InboundScheme.CUSTOM:
        return HmacScheme(**{**scheme_settings, "name": "custom"})
    return _SCHEMES[scheme]


def connection_inbound_configure(
    *,
    connection: Connection,
    scheme: str,
    actor: Any,
    secret: str | None = None,
    rotate: bool = False,
    overlap: timedelta = DEFAULT_SECRET_OVERLAP,
    scheme_settings: dict[str, Any] | None = None,
    mapper: str | None = None,
    mapping: dict[str, Any] | None = None,
) -> str:
    """Set how the connection takes webhooks. With `rotate` (or no secret yet) a new signing
    secret becomes the current one – `secret` if given, else a generated one – and the previous
    one keeps verifying for `overlap`. Returns the new secret (shown to the person once), or "".
    Audited without secret values."""
    if scheme and scheme not in InboundScheme.values:
        raise InboxError(f"Unknown signature scheme '{scheme}'; use one of {', '.join(InboundScheme.values)}.")
    if scheme == InboundScheme.CUSTOM:
        signature_scheme(scheme, scheme_settings or {})  # a bad definition raises ValueError with its problems
    current = _secrets_open(connection)
    fresh = ""
    if scheme and (rotate or not current or secret):
        fresh = secret or (generate_secret() if scheme == InboundScheme.STANDARD_WEBHOOKS else generate_secret().removeprefix("whsec_"))
        now = timezone.now()
        kept = [SigningSecret(current[0].value, now + overlap)] if current and overlap.total_seconds() > 0 else []
        current = [SigningSecret(fresh), *kept]
    with transaction.atomic():
        connection.inbound_scheme = scheme
        connection.inbound_scheme_settings = scheme_settings or {}
        connection.inbound_secrets = signing_secrets_seal(current)
        connection.inbound_secret_masks = [secret_mask(item.value) for item in current]
        if mapper is not None:
            connection.inbound_mapper = mapper
        if mapping is not None:
            connection.inbound_mapping = mapping
        connection.save(
            update_fields=[
                "inbound_scheme",
                "inbound_scheme_settings",
                "inbound_secrets",
                "inbound_secret_masks",
                "inbound_mapper",
                "inbound_mapping",
                "updated_at",
            ]
        )
        audit_record(
            actor=actor,
            action="connection.inbound_configured",
            target=connection,
            data={
                "scheme": scheme,
                "secret_rotated": bool(fresh),
                "secrets": connection.inbound_secret_masks,
                "mapper": connection.inbound_mapper,
            },
        )
    return fresh


# --- receiving -----------------------------------------------------------------------------------


def _external_id(connection: Connection, webhook_id: str, body: bytes) -> str:
    """What makes a delivery the same delivery: the signed webhook id, else the vendor's event id
    in the body (EasyPost-style `id`), else the body's hash (an identical body is the same event)."""
    if webhook_id:
        return webhook_id[:200]
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("id"), str | int) and str(document["id"]).strip():
        return str(document["id"]).strip()[:200]
    return "sha256:" + hashlib.sha256(body).hexdigest()


def webhook_receive(*, connection_key: str, body: bytes, headers: Mapping[str, str], content_length: int | None = None) -> Received:
    """Check a webhook delivery to `/hooks/<connection_key>` and store it (see the module)."""
    connection = Connection.objects.filter(key=connection_key).first()
    try:
        if connection is None or not connection.inbound_scheme:
            raise WebhookRefused(
                404, "unknown-endpoint", "No such webhook endpoint", f"This workspace takes no webhooks at '{connection_key}'."
            )
        if not connection.enabled:
            raise WebhookRefused(
                403, "connection-disabled", "Connection disabled", f"The connection '{connection.key}' is disabled: nothing is accepted."
            )
        limit = settings.BATON_WEBHOOK_MAX_BYTES
        size = content_length if content_length is not None else len(body)
        if size > limit:
            raise WebhookRefused(413, "too-large", "Body too large", f"The body is {size} bytes; this endpoint takes at most {limit}.")
        media_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type not in ACCEPTED_MEDIA_TYPES:
            raise WebhookRefused(
                415,
                "unsupported-media-type",
                "Unsupported content type",
                f"The content type is '{media_type or 'missing'}'; send application/json.",
            )
        verification = signature_scheme(connection.inbound_scheme, connection.inbound_scheme_settings).verify(
            body, headers, _secrets_open(connection)
        )
        if not verification:
            kind = "stale-timestamp" if verification.counted_as == "stale" else "bad-signature"
            raise WebhookRefused(401, kind, "Signature refused", verification.detail)
    except WebhookRefused as refused:
        WEBHOOKS.labels(refused.kind).inc()
        raise
    assert connection is not None
    kept = {name: value for name, value in headers.items() if name.lower() in KEPT_HEADERS}
    received = inbound_record(
        connection=connection,
        channel="webhook",
        external_id=_external_id(connection, verification.webhook_id, body),
        body=body.decode("utf-8", errors="replace"),
        content_type=media_type,
        headers=kept,
    )
    WEBHOOKS.labels("duplicate" if received.duplicate else "accepted").inc()
    return received


_INSERT = """
INSERT INTO connectors_inboundevent
    (connection_id, channel, external_id, content_type, headers, body, original_body, received_at, status, canonical, error,
     error_pointer, replays, acknowledgement)
VALUES (%s, %s, %s, %s, %s::jsonb, %s, '', %s, 'received', '[]'::jsonb, '', '', 0, '')
ON CONFLICT (connection_id, external_id) WHERE external_id <> '' DO NOTHING
RETURNING id
"""


def inbound_record(
    *, connection: Connection, channel: str, external_id: str, body: str, content_type: str, headers: dict[str, str]
) -> Received:
    """Store an event and its dispatch row in one transaction (a known external id returns the
    first event instead); the dispatch task is sent after commit."""
    now = timezone.now()
    with transaction.atomic():
        with db.cursor() as cursor:
            cursor.execute(_INSERT, [connection.pk, channel, external_id, content_type, json.dumps(headers), body, now])
            row = cursor.fetchone()
        if row is None:
            return Received(InboundEvent.objects.get(connection=connection, external_id=external_id), duplicate=True)
        EventDispatch.objects.create(event_id=row[0], created_at=now)
        transaction.on_commit(partial(dispatch_send, db.schema_name, row[0]))
    event = InboundEvent(
        pk=row[0],
        connection=connection,
        channel=channel,
        external_id=external_id,
        content_type=content_type,
        headers=headers,
        body=body,
        received_at=now,
        status=InboundStatus.RECEIVED,
    )
    return Received(event, duplicate=False)


def dispatch_send(schema: str, event_id: int) -> None:
    """Send `connectors.dispatch` for the event; a broker failure is logged (the sweeper sends it later)."""
    from connectors.tasks import dispatch

    try:
        dispatch.apply_async(args=[event_id], headers={"_schema_name": schema}, retry=False)
    except Exception as error:  # noqa: BLE001 - the event is committed: the sweeper dispatches it
        log.warning("inbox dispatch not sent; the sweeper will", event_id=event_id, error=f"{type(error).__name__}: {error}")


# --- dispatching ---------------------------------------------------------------------------------


def event_dispatch(event_id: int) -> str:
    """Hand the event on (see the module); returns what happened: delivered, quarantined, gone
    (done already, or another worker has it), or failed (left for another attempt)."""
    from workflows.triggers import event_triggers_start
    from workflows.waits import event_deliver

    try:
        with transaction.atomic():
            # OF self: lock the dispatch row only. Without it the join locks the connection row every
            # event shares too, so concurrent dispatches (and webhooks' inserts, which key-share
            # lock it) make each other skip.
            dispatch = (
                EventDispatch.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("event__connection")
                .filter(event_id=event_id)
                .first()
            )
            if dispatch is None:
                return "gone"
            event = dispatch.event
            connection = event.connection
            try:
                # Telemetry excursions are written as Baton events whatever the connection's webhook mapper.
                mapper = "canonical" if event.channel == "mqtt" else connection.inbound_mapper
                if mapper == "x12":  # every interchange is answered, whatever could be taken from it
                    event.acknowledgement = x12_acknowledgement(event.body.encode())
                    event.save(update_fields=["acknowledgement"])
                    edi_acknowledgement_prepare(event)  # in the partner's settings and numbers, queued for its transport
                canonical = normalize(mapper=mapper, body=event.body.encode(), mapping=connection.inbound_mapping)
            except NormalizationFailed as failed:
                _quarantine(event, failed.reason, failed.pointer)
                dispatch.delete()
                DISPATCHES.labels("quarantined").inc()
                return "quarantined"
            actor = Actor.system(f"connector:{connection.key}")
            handed: list[dict[str, Any]] = []
            for item in canonical:
                woken = event_deliver(
                    event_type=item.event_type, correlation=item.correlation, payload=item.payload, event_id=item.event_id
                )
                fired = event_triggers_start(
                    event_type=item.event_type, payload=item.payload, correlation=item.correlation, event_id=item.event_id, actor=actor
                )
                handed.append({**item.as_data(), "woken_runs": woken, "started_runs": [run.pk for run in fired.started]})
            event.status, event.canonical, event.delivered_at = InboundStatus.DELIVERED, handed, timezone.now()
            event.error, event.error_pointer = "", ""
            event.save(update_fields=["status", "canonical", "delivered_at", "error", "error_pointer"])
            dispatch.delete()
    except Exception as error:
        _dispatch_failed(event_id, error)
        DISPATCHES.labels("failed").inc()
        log.exception("inbox dispatch failed", event_id=event_id)
        return "failed"
    DISPATCHES.labels("delivered").inc()
    return "delivered"


def _quarantine(event: InboundEvent, reason: str, pointer: str) -> None:
    event.status, event.error, event.error_pointer = InboundStatus.QUARANTINED, reason, pointer
    event.save(update_fields=["status", "error", "error_pointer"])


def _dispatch_failed(event_id: int, error: Exception) -> None:
    """Count the failed attempt; after DISPATCH_ATTEMPTS the event is quarantined with the error."""
    message = f"{type(error).__name__}: {error}"[:2000]
    with transaction.atomic():
        dispatch = EventDispatch.objects.select_for_update().select_related("event").filter(event_id=event_id).first()
        if dispatch is None:
            return
        dispatch.attempts += 1
        dispatch.last_error = message
        if dispatch.attempts >= DISPATCH_ATTEMPTS:
            _quarantine(dispatch.event, f"handing it on failed {dispatch.attempts} times: {message}", "")
            dispatch.delete()
        else:
            dispatch.save(update_fields=["attempts", "last_error"])


def dispatch_sweep(*, older_than: float = SWEEP_AFTER_SECONDS) -> int:
    """Send the dispatch task again for rows left behind (a lost task, a broker outage); returns how many."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    event_ids = list(EventDispatch.objects.filter(created_at__lt=cutoff).order_by("pk").values_list("event_id", flat=True)[:1000])
    for event_id in event_ids:
        dispatch_send(db.schema_name, event_id)
    return len(event_ids)


# --- operators -------------------------------------------------------------------------------------


def inbound_replay(*, event: InboundEvent, actor: Any, body: str | None = None) -> InboundEvent:
    """Send a quarantined event through normalization again, with the operator's fixed `body`
    if given (the original is kept). Audited with the bodies' hashes, not their contents."""
    with transaction.atomic():
        event = InboundEvent.objects.select_for_update().get(pk=event.pk)
        if event.status != InboundStatus.QUARANTINED:
            raise InboxError(f"Event {event.pk} is {event.get_status_display().lower()}, not quarantined: there is nothing to replay.")
        changed = body is not None and body != event.body
        before = hashlib.sha256(event.body.encode()).hexdigest()
        if changed:
            assert body is not None
            event.original_body = event.original_body or event.body
            event.body = body
        event.status, event.error, event.error_pointer = InboundStatus.RECEIVED, "", ""
        event.replays += 1
        event.save(update_fields=["original_body", "body", "status", "error", "error_pointer", "replays"])
        EventDispatch.objects.create(event=event, created_at=timezone.now())
        audit_record(
            actor=actor,
            action="inbound_event.replayed",
            target=event,
            data={"fixed": changed, "body_sha256_before": before, "body_sha256": hashlib.sha256(event.body.encode()).hexdigest()},
        )
        transaction.on_commit(partial(dispatch_send, db.schema_name, event.pk))
    return event
