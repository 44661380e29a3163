"""Customer webhooks: Baton's events out to the endpoints tenants' customers subscribe.

Publishing (`webhook_publish`) writes one `WebhookDelivery` per subscribed, enabled endpoint –
unique per endpoint and event id, so publishing an event again adds nothing – in the caller's
transaction, and sends `connectors.deliver` for each after commit. Beat's
`connectors.deliveries_due_all` sends again whatever is due (retries, and tasks lost with a
broker), so a delivery is never forgotten.

An attempt (`delivery_attempt`) claims the delivery by moving `next_attempt_at` past the call's
timeout (a second worker finds it not due), then POSTs outside any transaction: the event as JSON
(`type`, `id`, `timestamp`, `data`), signed with Standard Webhooks by every active secret of the
endpoint, through the SSRF guard, no redirects. A 2xx delivers it. Anything else is retried on
the Standard Webhooks schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about a day), then
given up (`failed`). An endpoint with only failures for `DISABLE_AFTER` is disabled, its owner
told by email and the change audited. `delivery_replay` sends one again on an operator's word.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import requests
import structlog
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from prometheus_client import Counter

from connectors.auth import secret_mask, signing_secrets_open, signing_secrets_seal
from connectors.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from connectors.safety import OutboundRefused, guarded_session, url_check
from connectors.signatures import STANDARD_WEBHOOKS, SigningSecret, generate_secret, new_webhook_id
from governance.services import Actor, audit_record
from tenants.db import connection as db

log = structlog.get_logger("baton.connectors")

DELIVERIES = Counter(
    "baton_webhook_deliveries_total", "Customer webhook delivery attempts, by result (delivered, retrying, failed)", ["result"]
)
ENDPOINTS_DISABLED = Counter(
    "baton_webhook_endpoints_disabled_total", "Customer webhook endpoints disabled for failing every delivery for a day"
)

# Seconds after the previous attempt (Standard Webhooks' recommended schedule): ~27 h in all.
RETRY_SCHEDULE = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
DELIVERY_TIMEOUT = (5.0, 15.0)  # connect, read
CLAIM_SECONDS = 60  # longer than a call can take: a claimed delivery is not due for anyone else
DISABLE_AFTER = timedelta(hours=24)  # only failures for this long: the endpoint is disabled
RESPONSE_CHARS = 500
DEFAULT_SECRET_OVERLAP = timedelta(hours=24)


class EndpointInvalid(Exception):
    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class Attempt:
    status: str  # delivered, retrying, failed, not_due
    status_code: int | None = None


# --- endpoints ----------------------------------------------------------------------------------------


def _secrets_open(endpoint: WebhookEndpoint) -> list[SigningSecret]:
    return signing_secrets_open(endpoint.secrets)


def _secrets_set(endpoint: WebhookEndpoint, secrets: list[SigningSecret]) -> None:
    endpoint.secrets = signing_secrets_seal(secrets)
    endpoint.secret_masks = [secret_mask(item.value) for item in secrets]


def _checked(url: str, event_types: Any) -> list[str]:
    if not url.startswith(("https://", "http://")):
        raise EndpointInvalid("The URL must start with https:// (or http:// for a test endpoint).", "url")
    try:
        url_check(url)
    except OutboundRefused as error:
        raise EndpointInvalid(str(error), "url") from error
    except Exception as error:  # noqa: BLE001 - an unresolvable host, said in words
        raise EndpointInvalid(f"The URL's host cannot be reached: {error}", "url") from error
    if not isinstance(event_types, list) or not event_types or not all(isinstance(item, str) and item.strip() for item in event_types):
        raise EndpointInvalid('Subscribe to at least one event type (or "*" for all).', "event_types")
    return sorted({item.strip() for item in event_types})


def webhook_endpoint_create(
    *, url: str, event_types: list[str], actor: Any, customer_account_id: int | None = None, description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once, to show its owner once)."""
    types = _checked(url, event_types)
    secret = generate_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint(
            customer_account_id=customer_account_id,
            url=url,
            description=description,
            event_types=types,
            created_by_email=getattr(actor, "email", ""),
        )
        _secrets_set(endpoint, [SigningSecret(secret)])
        endpoint.save()
        audit_record(actor=actor, action="webhook_endpoint.created", target=endpoint, data={"url": url, "event_types": types})
        endpoints_forget()
    return endpoint, secret


def webhook_endpoint_rotate(*, endpoint: WebhookEndpoint, actor: Any, overlap: timedelta = DEFAULT_SECRET_OVERLAP) -> str:
    """A new signing secret; the previous one keeps signing alongside for `overlap`."""
    secret = generate_secret()
    with transaction.atomic():
        current = _secrets_open(endpoint)
        kept = [SigningSecret(current[0].value, timezone.now() + overlap)] if current and overlap.total_seconds() > 0 else []
        _secrets_set(endpoint, [SigningSecret(secret), *kept])
        endpoint.save(update_fields=["secrets", "secret_masks"])
        audit_record(actor=actor, action="webhook_endpoint.secret_rotated", target=endpoint, data={"secrets": endpoint.secret_masks})
        endpoints_forget()
    return secret


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint, actor: Any) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason, endpoint.failing_since = True, None, "", None
        endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason", "failing_since"])
        audit_record(actor=actor, action="webhook_endpoint.enabled", target=endpoint)
        endpoints_forget()
    return endpoint


# --- publishing ----------------------------------------------------------------------------------------


def endpoint_receives(endpoint: WebhookEndpoint, event_type: str) -> bool:
    """Whether the endpoint's event types (exact or glob patterns, `*` for all) take `event_type`."""
    return any(pattern == "*" or fnmatch.fnmatchcase(event_type, pattern) for pattern in endpoint.event_types)


# Enabled endpoints per (schema, customer), kept this long per process: publishing (a notify step
# in every run) then costs no query; a new or changed endpoint is seen by other processes within
# this time (this process forgets at once).
ENDPOINTS_CACHE_SECONDS = 5.0
_endpoints_seen: dict[tuple[str, int | None], tuple[float, list[WebhookEndpoint]]] = {}


def _enabled_endpoints(customer_account_id: int | None) -> list[WebhookEndpoint]:
    key, now = (db.schema_name, customer_account_id), time.monotonic()
    seen = _endpoints_seen.get(key)
    if seen is None or seen[0] < now:
        seen = (now + ENDPOINTS_CACHE_SECONDS, list(WebhookEndpoint.objects.filter(enabled=True, customer_account_id=customer_account_id)))
        _endpoints_seen[key] = seen
    return seen[1]


def endpoints_forget() -> None:
    """After an endpoint changed in this process: publish reads them afresh."""
    _endpoints_seen.clear()


def webhook_publish(*, event_type: str, event_id: str, payload: dict[str, Any], customer_account_id: int | None) -> list[int]:
    """Queue the event for the customer's subscribed, enabled endpoints (the tenant's own, without
    a customer); returns the new deliveries' ids. Runs in the caller's transaction."""
    endpoints = [endpoint for endpoint in _enabled_endpoints(customer_account_id) if endpoint_receives(endpoint, event_type)]
    if not endpoints:
        return []
    now = timezone.now()
    created = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                event_type=event_type,
                event_id=event_id,
                payload=payload,
                webhook_id=new_webhook_id(),
                next_attempt_at=now,
                created_at=now,
            )
            for endpoint in endpoints
        ],
        ignore_conflicts=True,  # published before for this endpoint: nothing new
    )
    ids = list(WebhookDelivery.objects.filter(webhook_id__in=[delivery.webhook_id for delivery in created]).values_list("pk", flat=True))
    if ids:
        transaction.on_commit(partial(deliveries_send, db.schema_name, ids))
    return ids


def deliveries_send(schema: str, delivery_ids: Iterable[int]) -> None:
    """Send `connectors.deliver` for each; a broker failure is logged (the due sweep sends it later)."""
    from connectors.tasks import deliver

    for delivery_id in delivery_ids:
        try:
            deliver.apply_async(args=[delivery_id], headers={"_schema_name": schema}, retry=False)
        except Exception as error:  # noqa: BLE001 - the delivery is committed and due: the sweep sends it
            log.warning("webhook delivery not sent; the due sweep will", delivery=delivery_id, error=f"{type(error).__name__}: {error}")


def deliveries_due(*, limit: int = 500) -> int:
    """Send the task for deliveries whose time has come (retries, lost tasks); returns how many."""
    due = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    deliveries_send(db.schema_name, due)
    return len(due)


# --- attempts ------------------------------------------------------------------------------------------


def _claim(delivery_id: int) -> WebhookDelivery | None:
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))  # not the endpoint every delivery shares
            .select_related("endpoint")
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
            .first()
        )
        if delivery is None:
            return None
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=CLAIM_SECONDS)
        delivery.save(update_fields=["next_attempt_at"])
        return delivery


def _body(delivery: WebhookDelivery) -> bytes:
    document = {
        "type": delivery.event_type,
        "id": delivery.event_id,
        "timestamp": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(document, separators=(",", ":"), default=str).encode()


def delivery_attempt(delivery_id: int, *, session: requests.Session | None = None) -> Attempt:
    """Try the delivery now if it is due and nobody else is at it (see the module)."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return Attempt("not_due")
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        return _record(delivery, ok=False, status_code=None, error="the endpoint is disabled", response="", retry=False)
    body = _body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Baton-Webhooks/1",
        **STANDARD_WEBHOOKS.sign(body, secrets=_secrets_open(endpoint), webhook_id=delivery.webhook_id, timestamp=int(time.time())),
    }
    try:
        answer = (session or guarded_session()).post(
            endpoint.url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT, allow_redirects=False
        )
    except OutboundRefused as error:
        return _record(delivery, ok=False, status_code=None, error=str(error), response="")
    except requests.RequestException as error:
        return _record(delivery, ok=False, status_code=None, error=f"{type(error).__name__}: {error}"[:500], response="")
    text = answer.text[:RESPONSE_CHARS]
    ok = 200 <= answer.status_code < 300
    return _record(delivery, ok=ok, status_code=answer.status_code, error="" if ok else f"HTTP {answer.status_code}", response=text)


def _record(delivery: WebhookDelivery, *, ok: bool, status_code: int | None, error: str, response: str, retry: bool = True) -> Attempt:
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
        endpoint = delivery.endpoint
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error, delivery.last_response = status_code, error, response
        if ok:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.DELIVERED, now, None
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
                endpoint.save(update_fields=["failing_since"])
            result = "delivered"
        elif retry and delivery.attempts <= len(RETRY_SCHEDULE):
            delivery.next_attempt_at = now + timedelta(seconds=RETRY_SCHEDULE[delivery.attempts - 1])
            result = "retrying"
        else:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            result = "failed"
        delivery.save(
            update_fields=["attempts", "last_status_code", "last_error", "last_response", "status", "delivered_at", "next_attempt_at"]
        )
        if not ok and endpoint.enabled:
            endpoint.failing_since = endpoint.failing_since or now
            endpoint.save(update_fields=["failing_since"])
            if now - endpoint.failing_since >= DISABLE_AFTER:
                _endpoint_disable(endpoint, now, error or "no answer")
    DELIVERIES.labels(result).inc()
    return Attempt(result, status_code)


def _endpoint_disable(endpoint: WebhookEndpoint, now: datetime, last_error: str) -> None:
    """Only failures for DISABLE_AFTER: stop sending, tell the owner, audit (inside the caller's transaction)."""
    endpoint.enabled, endpoint.disabled_at = False, now
    endpoint.disabled_reason = f"every delivery failed since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC (the last: {last_error})"
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
    audit_record(actor=Actor.system("webhook-deliveries"), action="webhook_endpoint.disabled", target=endpoint, data={"url": endpoint.url})
    endpoints_forget()
    transaction.on_commit(partial(_owner_tell, endpoint.pk))
    transaction.on_commit(ENDPOINTS_DISABLED.inc)


def _owner_tell(endpoint_id: int) -> None:
    """Email the endpoint's creator (and its customer's users) that it was disabled, in the tenant's brand."""
    from accounts.selectors import users_of_customer_account

    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        return
    recipients = {endpoint.created_by_email} if endpoint.created_by_email else set()
    if endpoint.customer_account_id is not None:
        recipients |= {user.email for user in users_of_customer_account(endpoint.customer_account_id)}
    recipients.discard("")
    if not recipients:
        return
    try:
        from tenants.selectors import site_for_tenant, tenant_language, tenants_filter

        tenant = tenants_filter().get(schema_name=db.schema_name)
        site = site_for_tenant(tenant)
        context = {"site": site, "endpoint": endpoint}
        # One message to several people: the workspace's language (tenants.Tenant.default_language).
        with translation.override(tenant_language(tenant)):
            message = EmailMultiAlternatives(
                subject=_("Webhook endpoint disabled – %(product)s") % {"product": site.product_name},
                body=render_to_string("email/webhook_disabled.txt", context),
                from_email=site.from_email,
                to=sorted(recipients),
            )
            message.attach_alternative(render_to_string("email/webhook_disabled.html", context), "text/html")
        message.send()
    except Exception:  # noqa: BLE001 - the disabling stands; the mail is best effort and logged
        log.exception("endpoint owner not told", endpoint=endpoint_id)


class ReplayRefused(Exception):
    """The delivery's endpoint is disabled: a replay would fail at once."""


def delivery_replay(*, delivery: WebhookDelivery, actor: Any) -> WebhookDelivery:
    """Send a delivery again now (a failed one, or a delivered one the receiver lost), audited.
    Raises ReplayRefused while its endpoint is disabled."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update(of=("self",)).select_related("endpoint").get(pk=delivery.pk)
        if not delivery.endpoint.enabled:
            raise ReplayRefused(f"Webhook endpoint {delivery.endpoint_id} is disabled.")
        delivery.status, delivery.next_attempt_at = DeliveryStatus.PENDING, timezone.now()
        delivery.save(update_fields=["status", "next_attempt_at"])
        audit_record(actor=actor, action="webhook_delivery.replayed", target=delivery, data={"attempts_before": delivery.attempts})
        transaction.on_commit(partial(deliveries_send, db.schema_name, [delivery.pk]))
    return delivery


# --- operators' changes to an endpoint ---------------------------------------------------------------


def _event_types_checked(event_types: Any) -> list[str]:
    if not isinstance(event_types, list) or not event_types or not all(isinstance(item, str) and item.strip() for item in event_types):
        raise EndpointInvalid('Subscribe to at least one event type (or "*" for all).', "event_types")
    return sorted({item.strip() for item in event_types})


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, actor: Any, event_types: list[str] | None = None, description: str | None = None
) -> WebhookEndpoint:
    """Change what the endpoint subscribes to or its description (the URL and customer stay: a new
    receiver is a new endpoint, with its own secret). Deliveries already queued keep going."""
    changed: dict[str, Any] = {}
    if event_types is not None:
        changed["event_types"] = _event_types_checked(event_types)
    if description is not None:
        changed["description"] = description.strip()
    changed = {name: value for name, value in changed.items() if getattr(endpoint, name) != value}
    if not changed:
        return endpoint
    with transaction.atomic():
        for name, value in changed.items():
            setattr(endpoint, name, value)
        endpoint.save(update_fields=list(changed))
        audit_record(actor=actor, action="webhook_endpoint.updated", target=endpoint, data=changed)
        endpoints_forget()
    return endpoint


def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, actor: Any, reason: str = "") -> WebhookEndpoint:
    """Stop sending on an operator's word: nothing new is queued for it, and what is pending fails
    at its next attempt (replayable once it is enabled again)."""
    if not endpoint.enabled:
        return endpoint
    who = getattr(actor, "email", "") or "an operator"
    with transaction.atomic():
        endpoint.enabled, endpoint.disabled_at = False, timezone.now()
        endpoint.disabled_reason = f"disabled by {who}" + (f": {reason.strip()}" if reason.strip() else "")
        endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
        audit_record(actor=actor, action="webhook_endpoint.disabled", target=endpoint, reason=reason.strip(), data={"url": endpoint.url})
        endpoints_forget()
    return endpoint
