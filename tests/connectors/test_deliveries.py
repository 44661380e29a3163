"""Customer webhooks out: publishing to subscribed endpoints once per event, signed attempts a
receiver can verify, the retry schedule, claims that keep two workers from sending one delivery,
disabling a failing endpoint (and telling its owner), replay, rotation, and tenant isolation."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_tenants.utils import schema_context
from prometheus_client import REGISTRY

from connectors.deliveries import (
    RETRY_SCHEDULE,
    EndpointInvalid,
    delivery_attempt,
    delivery_replay,
    webhook_endpoint_create,
    webhook_endpoint_rotate,
    webhook_publish,
)
from connectors.models import WebhookDelivery, WebhookEndpoint
from connectors.signatures import STANDARD_WEBHOOKS
from governance.models import AuditEvent
from governance.services import Actor
from tests.fake_partner import fake_partner

pytestmark = pytest.mark.django_db

OWNER = Actor(email="ops@acme.test", kind="user")


def counted(name: str, **labels: str) -> float:
    """A counter's value in this process (what `/metrics` adds up across processes)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def receiver():
    with fake_partner() as partner:
        yield partner


def _endpoint(tenant_world, receiver, *, customer: int | None = None, types: list[str] | None = None) -> tuple[WebhookEndpoint, str]:
    with schema_context(tenant_world.schema):
        return webhook_endpoint_create(
            url=f"{receiver.url}/hooks/in", event_types=types or ["shipment.*"], actor=OWNER, customer_account_id=customer
        )


def _customer(tenant_world, index: int = 0) -> int:
    return tenant_world.customer_accounts[index].pk


def test_an_event_goes_once_to_each_subscribed_enabled_endpoint_of_its_customer(world, receiver):
    first, _ = _endpoint(world.acme, receiver, customer=_customer(world.acme))
    other_type, _ = _endpoint(world.acme, receiver, customer=_customer(world.acme), types=["invoice.*"])
    other_customer, _ = _endpoint(world.acme, receiver, customer=_customer(world.acme, 1))
    disabled, _ = _endpoint(world.acme, receiver, customer=_customer(world.acme))
    with schema_context(world.acme.schema):
        WebhookEndpoint.objects.filter(pk=disabled.pk).update(enabled=False)
        ids = webhook_publish(
            event_type="shipment.milestone", event_id="evt-1", payload={"code": "delivered"}, customer_account_id=_customer(world.acme)
        )
        assert [WebhookDelivery.objects.get(pk=pk).endpoint_id for pk in ids] == [first.pk]
        again = webhook_publish(event_type="shipment.milestone", event_id="evt-1", payload={}, customer_account_id=_customer(world.acme))
        assert again == [] and WebhookDelivery.objects.count() == 1
    assert other_type and other_customer


def test_an_attempt_posts_the_event_signed_so_the_receiver_can_verify_it(world, receiver):
    endpoint, secret = _endpoint(world.acme, receiver, customer=_customer(world.acme))
    with schema_context(world.acme.schema):
        (delivery_id,) = webhook_publish(
            event_type="shipment.milestone", event_id="evt-2", payload={"code": "in_transit"}, customer_account_id=_customer(world.acme)
        )
        delivered = counted("baton_webhook_deliveries_total", result="delivered")
        assert delivery_attempt(delivery_id).status == "delivered"
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
        assert delivery_attempt(delivery_id).status == "not_due"  # a repeated task sends nothing
        assert counted("baton_webhook_deliveries_total", result="delivered") == delivered + 1  # the not-due one is no attempt
    (request,) = receiver.requests
    raw = json.dumps(request.body, separators=(",", ":")).encode()
    assert request.body == {
        "type": "shipment.milestone",
        "id": "evt-2",
        "timestamp": delivery.created_at.isoformat(),
        "data": {"code": "in_transit"},
    }
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert STANDARD_WEBHOOKS.verify(raw, request.headers, [secret]), "the receiver cannot verify the signature"
    assert secret not in json.dumps(endpoint.secret_masks)


def test_a_failed_attempt_is_retried_on_the_schedule_then_given_up(world, receiver):
    _endpoint(world.acme, receiver, customer=_customer(world.acme))
    receiver.fail_next(times=2, status=503)
    with schema_context(world.acme.schema):
        (delivery_id,) = webhook_publish(
            event_type="shipment.milestone", event_id="evt-3", payload={}, customer_account_id=_customer(world.acme)
        )
        before = timezone.now()
        retrying, failed = (counted("baton_webhook_deliveries_total", result=result) for result in ("retrying", "failed"))
        assert delivery_attempt(delivery_id).status == "retrying"
        assert counted("baton_webhook_deliveries_total", result="retrying") == retrying + 1
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        assert delivery.last_status_code == 503 and delivery.next_attempt_at >= before + timedelta(seconds=RETRY_SCHEDULE[0])
        assert delivery_attempt(delivery_id).status == "not_due"  # not before its time
        WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now(), attempts=len(RETRY_SCHEDULE))
        assert delivery_attempt(delivery_id).status == "failed"
        assert WebhookDelivery.objects.get(pk=delivery_id).status == "failed"
        assert counted("baton_webhook_deliveries_total", result="failed") == failed + 1
        assert counted("baton_webhook_deliveries_total", result="retrying") == retrying + 1


def test_an_endpoint_failing_for_a_day_is_disabled_audited_and_its_owner_told(world, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = _endpoint(world.acme, receiver, customer=_customer(world.acme))
    receiver.fail_next(times=1, status=500)
    with schema_context(world.acme.schema):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=25))
        (delivery_id,) = webhook_publish(
            event_type="shipment.milestone", event_id="evt-4", payload={}, customer_account_id=_customer(world.acme)
        )
        disabled = counted("baton_webhook_endpoints_disabled_total")
        with django_capture_on_commit_callbacks(execute=True):
            delivery_attempt(delivery_id)
        endpoint.refresh_from_db()
        assert not endpoint.enabled and "HTTP 500" in endpoint.disabled_reason
        assert counted("baton_webhook_endpoints_disabled_total") == disabled + 1
        assert AuditEvent.objects.filter(action="webhook_endpoint.disabled", target_id=str(endpoint.pk)).exists()
        assert (
            webhook_publish(event_type="shipment.milestone", event_id="evt-5", payload={}, customer_account_id=_customer(world.acme)) == []
        )
    (message,) = mail.outbox
    assert (
        message.subject == "Webhook endpoint disabled – Acme Freight Hub" and "ops@acme.test" in message.to and receiver.url in message.body
    )


def test_a_replayed_delivery_goes_again_and_is_audited(world, receiver):
    _endpoint(world.acme, receiver, customer=_customer(world.acme))
    with schema_context(world.acme.schema):
        (delivery_id,) = webhook_publish(
            event_type="shipment.milestone", event_id="evt-6", payload={}, customer_account_id=_customer(world.acme)
        )
        delivery_attempt(delivery_id)
        delivery_replay(delivery=WebhookDelivery.objects.get(pk=delivery_id), actor=OWNER)
        assert delivery_attempt(delivery_id).status == "delivered"
        assert WebhookDelivery.objects.get(pk=delivery_id).attempts == 2
        assert AuditEvent.objects.filter(action="webhook_delivery.replayed", target_id=str(delivery_id)).exists()
    assert len(receiver.requests) == 2 and receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]


def test_after_a_rotation_deliveries_carry_both_signatures_for_the_overlap(world, receiver):
    endpoint, old = _endpoint(world.acme, receiver, customer=_customer(world.acme))
    with schema_context(world.acme.schema):
        new = webhook_endpoint_rotate(endpoint=endpoint, actor=OWNER)
        (delivery_id,) = webhook_publish(
            event_type="shipment.milestone", event_id="evt-7", payload={}, customer_account_id=_customer(world.acme)
        )
        delivery_attempt(delivery_id)
    (request,) = receiver.requests
    raw = json.dumps(request.body, separators=(",", ":")).encode()
    assert len(request.headers["webhook-signature"].split()) == 2
    assert STANDARD_WEBHOOKS.verify(raw, request.headers, [old]) and STANDARD_WEBHOOKS.verify(raw, request.headers, [new])


def test_an_endpoint_must_be_a_reachable_public_url_with_event_types(world, receiver, settings):
    with schema_context(world.acme.schema):
        with pytest.raises(EndpointInvalid, match="must start with https://"):
            webhook_endpoint_create(url="ftp://x", event_types=["*"], actor=OWNER)
        with pytest.raises(EndpointInvalid, match="at least one event type"):
            webhook_endpoint_create(url=f"{receiver.url}/in", event_types=[], actor=OWNER)
        settings.BATON_OUTBOUND_ALLOW = []
        with pytest.raises(EndpointInvalid, match="loopback"):
            webhook_endpoint_create(url=f"{receiver.url}/in", event_types=["*"], actor=OWNER)


def test_one_tenants_events_never_reach_another_tenants_endpoints(world, receiver):
    _endpoint(world.acme, receiver, customer=None, types=["*"])
    with schema_context(world.globex.schema):
        assert webhook_publish(event_type="shipment.milestone", event_id="evt-8", payload={}, customer_account_id=None) == []
    with schema_context(world.acme.schema):
        assert WebhookDelivery.objects.count() == 0
