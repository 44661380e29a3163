"""`notify` steps deliver: email to the people of the step's roles (once per step), webhooks to
the run's customer's subscribed endpoints (in the step's transaction, once per step key)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.core import mail
from django_tenants.utils import schema_context

from connectors.deliveries import webhook_endpoint_create
from connectors.models import WebhookDelivery
from governance.services import Actor
from tests.fake_partner import fake_partner
from tests.workflows.runs_setup import ORDER, ORDER_SPEC, definition_published, run_advanced, run_started
from workflows.notify import notify_email_send

pytestmark = pytest.mark.django_db

LARGE = {**ORDER, "total": 5000}


def _spec(channel: str, roles: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(ORDER_SPEC)
    for step in spec["steps"]:
        if step["id"] == "hold":
            step.update({"channel": channel, "to_roles": roles})
    return spec


def test_an_email_notification_goes_once_to_the_active_people_of_its_roles_in_the_brand(world, fake):
    definition = definition_published(world.acme, _spec("email", ["planner"]))
    run = run_advanced(world.acme, run_started(world.acme, definition, input=LARGE, correlation={"order": "SO-77"}))
    assert run.status == "succeeded" and run.context["hold"]["queued"] == {"email": True}
    with schema_context(world.acme.schema):
        assert notify_email_send(run.pk, "hold", f"{run.pk}:hold") == 1
        assert notify_email_send(run.pk, "hold", f"{run.pk}:hold") == 0  # a redelivered task sends nothing
    (message,) = mail.outbox
    assert message.to == [world.acme.users["planner"].email]
    assert message.subject.startswith("Large-order") or "large" in message.subject.lower()
    html = message.alternatives[0][0]
    assert "SO-77" in html and f"/workflows/runs/{run.pk}/" in html and "Acme" in html


def test_a_webhook_notification_is_queued_for_the_runs_customer_once(world, fake):
    customer = world.acme.customer_accounts[0].pk
    with fake_partner() as receiver:
        with schema_context(world.acme.schema):
            webhook_endpoint_create(
                url=f"{receiver.url}/in", event_types=["notification.*"], actor=Actor.system("t"), customer_account_id=customer
            )
            other, _ = webhook_endpoint_create(
                url=f"{receiver.url}/other",
                event_types=["*"],
                actor=Actor.system("t"),
                customer_account_id=world.acme.customer_accounts[1].pk,
            )
        definition = definition_published(world.acme, _spec("webhook", ["customer"]))
        run = run_advanced(world.acme, run_started(world.acme, definition, input={**LARGE, "customer_account_id": customer}))
    assert run.context["hold"]["queued"] == {"webhooks": 1}
    with schema_context(world.acme.schema):
        (delivery,) = WebhookDelivery.objects.all()
        assert (delivery.event_type, delivery.event_id) == ("notification.large-order", f"{run.pk}:hold")
        assert delivery.payload["input"]["customer_account_id"] == customer and delivery.endpoint_id != other.pk


def test_an_sms_notification_is_recorded_only(world, fake):
    definition = definition_published(world.acme, _spec("sms", ["planner"]))
    run = run_advanced(world.acme, run_started(world.acme, definition, input=LARGE))
    assert run.status == "succeeded" and "recorded only" in run.context["hold"]["note"]
