"""The durable inbox: what partners send, kept before it is answered and handed on exactly once.

Receiving (`webhook_receive`, and `inbound_record` for every channel): a webhook is checked on its
raw body – size, content type, the connection's signature scheme and secrets – before anything
parses it; then the `InboundEvent` and its `EventDispatch` are written by one statement, and
only then does the sender get its answer (202 with the event id). A redelivery (same connection
and external id: the webhook id, or the vendor's event id) gets the first event's id and changes
nothing. After commit the schema's dispatcher is woken – one wake-up for however many events
arrive before it runs (`tenants.tasks.schema_wake`); if the broker is down the rows wait for the
sweeper (`dispatch_sweep`), so an outage delays work but loses none.

Dispatching (`events_dispatch`, a batch per task): under each dispatch row's lock, the body is
normalized into canonical events (`connectors.normalize`) and each is handed to workflows –
waiting runs woken (`event_deliver`), event triggers started (`event_triggers_start`) – in the
same transaction that deletes the dispatch row, so a failure leaves everything as it was for the
next attempt, and a success cannot be applied twice. A body that cannot be normalized is quarantined with the reason
and where; an operator can fix and replay it (`inbound_replay`), audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
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
from connectors.edi.parse import parses_shared
from connectors.edi_transport import edi_acknowledgement_prepare
from connectors.hook_connections import hook_connection, hook_connections_forget
from connectors.models import Connection, EventDispatch, InboundEvent, InboundScheme, InboundStatus
from connectors.normalize import CanonicalEvent, NormalizationFailed, normalize, x12_acknowledgement
from connectors.signatures import (
    EASYPOST,
    GITHUB,
    SHOPIFY,
    STANDARD_WEBHOOKS,
    STRIPE,
    HmacScheme,
    SigningSecret,
    StandardWebhooks,
    Verification,
    generate_secret,
)
from governance.services import Actor, audit_record
from tenants.db import connection as db
from tenants.db import rows_json
from tenants.tasks import schema_send, schema_wake

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
    hook_connections_forget()
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
    connection, secrets, kept = hook_connection(connection_key)
    try:
        try:
            media_type, verification = _webhook_check(connection_key, connection, secrets, body, headers, content_length)
        except WebhookRefused:
            if not kept:
                raise
            # The kept copy may be behind the row: a new secret, a connection enabled again.
            connection, secrets, _kept = hook_connection(connection_key, fresh=True)
            media_type, verification = _webhook_check(connection_key, connection, secrets, body, headers, content_length)
    except WebhookRefused as refused:
        WEBHOOKS.labels(refused.kind).inc()
        raise
    assert connection is not None
    kept_headers = {name: value for name, value in headers.items() if name.lower() in KEPT_HEADERS}
    received = inbound_record(
        connection=connection,
        channel="webhook",
        external_id=_external_id(connection, verification.webhook_id, body),
        body=body.decode("utf-8", errors="replace"),
        content_type=media_type,
        headers=kept_headers,
    )
    WEBHOOKS.labels("duplicate" if received.duplicate else "accepted").inc()
    return received


def _webhook_check(
    key: str,
    connection: Connection | None,
    secrets: list[SigningSecret],
    body: bytes,
    headers: Mapping[str, str],
    content_length: int | None,
) -> tuple[str, Verification]:
    """The delivery's media type and verified signature, or WebhookRefused saying why."""
    if connection is None or not connection.inbound_scheme:
        raise WebhookRefused(404, "unknown-endpoint", "No such webhook endpoint", f"This workspace takes no webhooks at '{key}'.")
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
    verification = signature_scheme(connection.inbound_scheme, connection.inbound_scheme_settings).verify(body, headers, secrets)
    if not verification:
        kind = "stale-timestamp" if verification.counted_as == "stale" else "bad-signature"
        raise WebhookRefused(401, kind, "Signature refused", verification.detail)
    return media_type, verification


# One statement, so one round trip in autocommit: the event and its dispatch row exist together or
# not at all; a known external id inserts neither and returns no row.
_INSERT = """
WITH event AS (
    INSERT INTO connectors_inboundevent
        (connection_id, channel, external_id, content_type, headers, body, original_body, received_at, status, canonical, error,
         error_pointer, replays, acknowledgement)
    VALUES (%s, %s, %s, %s, %s::jsonb, %s, '', %s, 'received', '[]'::jsonb, '', '', 0, '')
    ON CONFLICT (connection_id, external_id) WHERE external_id <> '' DO NOTHING
    RETURNING id, received_at
)
INSERT INTO connectors_eventdispatch (event_id, created_at, attempts, last_error)
SELECT id, received_at, 0, '' FROM event
RETURNING event_id
"""


def inbound_record(
    *, connection: Connection, channel: str, external_id: str, body: str, content_type: str, headers: dict[str, str]
) -> Received:
    """Store an event and its dispatch row together (a known external id returns the first event
    instead); the dispatcher is woken after commit."""
    now = timezone.now()
    with db.cursor() as cursor:
        cursor.execute(_INSERT, [connection.pk, channel, external_id, content_type, json.dumps(headers), body, now])
        row = cursor.fetchone()
    if row is None:
        return Received(InboundEvent.objects.get(connection=connection, external_id=external_id), duplicate=True)
    transaction.on_commit(partial(dispatch_wake, db.schema_name))
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


def dispatch_token(schema: str) -> str:
    return f"connectors:inbox-wake:{schema}"


def dispatch_wake(schema: str) -> None:
    """Wake the schema's dispatcher unless a wake-up is on its way already (`tenants.tasks.schema_wake`);
    with the broker down the event waits for the sweeper."""
    from connectors.tasks import dispatch_ready

    schema_wake(dispatch_ready, schema, token=dispatch_token(schema), gather_seconds=settings.BATON_INBOX_GATHER_SECONDS)


def dispatch_send(schema: str) -> None:
    """Send the dispatcher whatever the token says (the sweeper: a token may outlive a lost task)."""
    from connectors.tasks import dispatch_ready

    schema_send(dispatch_ready, schema)


# --- dispatching ---------------------------------------------------------------------------------


class Outcomes(dict[int, str]):
    """Each claimed event's outcome; `more` when the batch stopped at a large event with events it
    had claimed still waiting (so a caller looping while batches are full goes on)."""

    more: bool = False


def _large_alone(dispatches: list[EventDispatch], large: int | None) -> list[EventDispatch]:
    """The batch up to the first event whose body is over `large` bytes, or that one alone when
    it comes first: a 214 file of a thousand events is handed on in a batch of its own, so the
    delays in it wait for its own events only and the webhooks before it do not wait for it.
    Small events are batched as before."""
    if large is None:
        return dispatches
    for position, dispatch in enumerate(dispatches):
        if len(dispatch.event.body) > large:
            return dispatches[: position or 1]
    return dispatches


def events_dispatch(*, limit: int = 100, large: int | None = None, event_ids: list[int] | None = None) -> Outcomes:
    """Hand on up to `limit` waiting events (the oldest first; only `event_ids` if given; one over
    `large` bytes goes alone, `_large_alone`) in one transaction. Dispatch rows locked by another
    dispatcher are skipped. The batch is handed on together (`_hand_on_many`: a few statements
    for the lot); if that fails, each event is handed on alone in its own savepoint, so one failing event leaves the others' work standing. Returns
    each claimed event's outcome: delivered, quarantined, or failed (counted, left for another
    attempt; quarantined with the error after DISPATCH_ATTEMPTS). A transaction that cannot commit
    leaves every row as it was."""
    outcomes = Outcomes()
    try:
        with transaction.atomic():
            # OF self: lock the dispatch rows only. Without it the join locks the connection row every
            # event shares too, so concurrent dispatches (and webhooks' inserts, which key-share
            # lock it) make each other skip.
            claimed = EventDispatch.objects.select_for_update(skip_locked=True, of=("self",)).select_related("event__connection")
            if event_ids is not None:
                claimed = claimed.filter(event_id__in=event_ids)
            claimed_rows = list(claimed.order_by("event_id")[:limit])
            dispatches = _large_alone(claimed_rows, large)
            try:
                with transaction.atomic():
                    outcomes = Outcomes(_hand_on_many([dispatch.event for dispatch in dispatches]))
                done = [dispatch.pk for dispatch in dispatches]
            except Exception:
                log.warning("inbox batch failed; handing its events on one by one", events=len(dispatches), exc_info=True)
                outcomes, done = Outcomes(), []
                for dispatch in dispatches:
                    try:
                        with transaction.atomic():
                            outcomes[dispatch.event_id] = _hand_on_many([dispatch.event])[dispatch.event_id]
                        done.append(dispatch.pk)
                    except Exception as error:
                        log.exception("inbox dispatch failed", event_id=dispatch.event_id)
                        outcomes[dispatch.event_id] = "failed"
                        if _dispatch_failed(dispatch, error):
                            done.append(dispatch.pk)
            EventDispatch.objects.filter(pk__in=done).delete()
    except Exception:
        log.exception("inbox dispatch round failed; its events wait for the next", events=sorted(outcomes))
        DISPATCHES.labels("failed").inc(len(outcomes) or 1)
        return Outcomes(dict.fromkeys(outcomes, "failed"))
    for outcome in outcomes.values():
        DISPATCHES.labels(outcome).inc()
    outcomes.more = len(dispatches) < len(claimed_rows)
    return outcomes


def event_dispatch(event_id: int) -> str:
    """Hand one event on (`events_dispatch`); "gone" when it was done already or another dispatcher has it."""
    return events_dispatch(event_ids=[event_id]).get(event_id, "gone")


def _normalized(event: InboundEvent, connection: Connection) -> list[CanonicalEvent]:
    """The event's canonical events (raises NormalizationFailed). An X12 interchange is answered
    (997) whatever could be taken from it."""
    # Telemetry excursions are written as Baton events whatever the connection's webhook mapper.
    mapper = "canonical" if event.channel == "mqtt" else connection.inbound_mapper
    if mapper != "x12":
        return normalize(mapper=mapper, body=event.body.encode(), mapping=connection.inbound_mapping)
    with parses_shared():  # the interchange is read once for its 997, its parties and its events
        event.acknowledgement = x12_acknowledgement(event.body.encode())
        event.save(update_fields=["acknowledgement"])
        edi_acknowledgement_prepare(event)  # in the partner's settings and numbers, queued for its transport
        return normalize(mapper=mapper, body=event.body.encode(), mapping=connection.inbound_mapping)


# Apps that apply canonical events to their own records (the logistics domain records a
# `shipment.milestone` on its shipment) register here, by event type, in their AppConfig.ready.
InboundConsumer = Callable[[list[CanonicalEvent]], list[dict[str, Any]]]
_CONSUMERS: dict[str, InboundConsumer] = {}


def inbound_consumer_register(event_type: str, consumer: InboundConsumer) -> None:
    """`consumer(events)` is given every canonical event of `event_type` a dispatch batch holds, in
    the batch's transaction before workflows get them, and answers one note per event (kept in the
    inbound event's `canonical` record as `applied`). It raises only for what should fail the batch."""
    _CONSUMERS[event_type] = consumer


def _consumers_apply(items: list[CanonicalEvent]) -> list[dict[str, Any] | None]:
    notes: list[dict[str, Any] | None] = [None] * len(items)
    for event_type, consumer in _CONSUMERS.items():
        positions = [index for index, item in enumerate(items) if item.event_type == event_type]
        if positions:
            for index, note in zip(positions, consumer([items[index] for index in positions]), strict=True):
                notes[index] = note
    return notes


def _hand_on_many(events: list[InboundEvent]) -> dict[int, str]:
    """Normalize each event and hand its canonical events to workflows – waiting runs woken
    (`events_deliver`, once for the lot), event triggers started (their definitions looked up once
    per event type) – then record every outcome with one update. A body that cannot be
    normalized is quarantined with the reason."""
    from workflows.triggers import event_triggered, event_triggers_start
    from workflows.waits import Delivery, events_deliver

    outcomes: dict[int, str] = {}
    normalized: list[tuple[InboundEvent, list[CanonicalEvent]]] = []
    for event in events:
        try:
            normalized.append((event, _normalized(event, event.connection)))
        except NormalizationFailed as failed:
            event.status, event.error, event.error_pointer = InboundStatus.QUARANTINED, failed.reason, failed.pointer
            outcomes[event.pk] = "quarantined"
    items = [item for _event, canonical in normalized for item in canonical]
    applied = iter(_consumers_apply(items))
    woken = iter(events_deliver([Delivery(item.event_type, item.correlation, item.payload, item.event_id) for item in items]))
    triggered = {event_type: event_triggered(event_type) for event_type in sorted({item.event_type for item in items})}
    now = timezone.now()
    for event, canonical in normalized:
        actor = Actor.system(f"connector:{event.connection.key}")
        handed: list[dict[str, Any]] = []
        for item in canonical:
            runs_woken = next(woken)
            started = []
            if triggered[item.event_type]:
                fired = event_triggers_start(
                    event_type=item.event_type,
                    payload=item.payload,
                    correlation=item.correlation,
                    event_id=item.event_id,
                    actor=actor,
                    definitions=triggered[item.event_type],
                )
                started = [run.pk for run in fired.started]
            note = next(applied)
            handed.append({**item.as_data(), "woken_runs": runs_woken, "started_runs": started, **({"applied": note} if note else {})})
        event.status, event.canonical, event.delivered_at = InboundStatus.DELIVERED, handed, now
        event.error, event.error_pointer = "", ""
        outcomes[event.pk] = "delivered"
    _outcomes_write(events)
    return outcomes


# A batch's outcomes in one statement (Django's bulk_update builds a CASE per field and row: a
# quarter of a dispatch batch's time went into it, with a 214 file's canonical list in each CASE),
# its rows bound as one JSON document (`tenants.db.rows_json`).
_OUTCOMES_WRITE = """
UPDATE connectors_inboundevent AS event
SET status = batch.status, canonical = batch.canonical, delivered_at = batch.delivered_at, error = batch.error, error_pointer = batch.error_pointer
FROM jsonb_to_recordset(%s::jsonb)
    AS batch(id bigint, status text, canonical jsonb, delivered_at timestamptz, error text, error_pointer text)
WHERE event.id = batch.id
"""


def _outcomes_write(events: list[InboundEvent]) -> None:
    if events:
        rows = (
            {
                "id": event.pk,
                "status": event.status,
                "canonical": event.canonical,
                "delivered_at": event.delivered_at,
                "error": event.error,
                "error_pointer": event.error_pointer,
            }
            for event in events
        )
        with db.cursor() as cursor:
            cursor.execute(_OUTCOMES_WRITE, [rows_json(rows)])


def _dispatch_failed(dispatch: EventDispatch, error: Exception) -> bool:
    """Count the failed attempt; after DISPATCH_ATTEMPTS the event is quarantined with the error
    (returns True: its dispatch row goes)."""
    message = f"{type(error).__name__}: {error}"[:2000]
    dispatch.attempts += 1
    dispatch.last_error = message
    if dispatch.attempts >= DISPATCH_ATTEMPTS:
        InboundEvent.objects.filter(pk=dispatch.event_id).update(
            status=InboundStatus.QUARANTINED, error=f"handing it on failed {dispatch.attempts} times: {message}", error_pointer=""
        )
        return True
    dispatch.save(update_fields=["attempts", "last_error"])
    return False


def dispatch_sweep(*, older_than: float = SWEEP_AFTER_SECONDS) -> int:
    """Wake the dispatcher for rows left behind (a lost wake-up, a broker outage, a failed attempt);
    returns how many rows are older than `older_than` seconds."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    left = EventDispatch.objects.filter(created_at__lt=cutoff).count()
    if left:
        dispatch_send(db.schema_name)
    return left


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
        transaction.on_commit(partial(dispatch_wake, db.schema_name))
    return event
