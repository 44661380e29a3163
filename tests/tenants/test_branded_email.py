"""Every kind of email Baton sends carries the brand of the host it is about: the From name and
address, the product name in the subject and the text, and an HTML part in the shared layout
(`templates/email/base.html`) with the tenant's logo and colours. The kinds: invitations,
password resets (and "no account for this address"), approval requests, `notify` steps,
customer milestone emails and webhook-endpoint warnings; the console's mails in its own brand."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import Role
from accounts.services import user_invite
from connectors.deliveries import _endpoint_disable
from connectors.models import WebhookEndpoint
from logistics.models import MilestoneNotification
from logistics.notifications import milestone_email, subscription_create
from tenants.models import Tenant
from tenants.selectors import site_for_console, site_for_tenant
from tenants.services import BrandingInput, tenant_branding_update
from tests.conftest import FIXTURE_ACTOR, host_client
from tests.logistics.conftest import SYSTEM, make_shipment
from tests.workflows.runs_setup import definition_published, run_advanced, run_started
from workflows.approval_mail import approvals_announce
from workflows.models import Approval
from workflows.notify import notify_email_send

pytestmark = pytest.mark.django_db

PRODUCT = "Acme Freight Hub"
SENDER = "Acme Dispatch <dispatch@acme.example>"
PRIMARY = "#0b4f9c"
# The smallest PNG there is: one transparent pixel.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
NOTIFY_SPEC = {
    "start": "tell",
    "steps": [
        {"id": "tell", "kind": "notify", "channel": "email", "to_roles": ["planner"], "template": "order-held", "next": "done"},
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}
APPROVAL_SPEC = {
    "start": "ok",
    "steps": [
        {"id": "ok", "kind": "approval", "title": "Approve the rate", "assignee_roles": ["planner"], "next": "done", "on_reject": "done"},
        {"id": "done", "kind": "end", "outcome": "succeeded"},
    ],
}


@pytest.fixture
def branded(world, settings, tmp_path):
    """Acme with its own sender and a logo (the test's transaction takes both back)."""
    settings.MEDIA_ROOT = str(tmp_path)
    tenant_branding_update(
        tenant=world.acme.tenant,
        branding=BrandingInput(
            product_name=PRODUCT,
            primary_color=PRIMARY,
            accent_color="#b4400a",
            email_sender_name="Acme Dispatch",
            email_sender_address="dispatch@acme.example",
            logo=ContentFile(PIXEL, name="acme.png"),
        ),
        actor=FIXTURE_ACTOR,
    )
    mail.outbox.clear()
    return world.acme


def _html(message) -> str:
    (html, kind) = message.alternatives[0]
    assert kind == "text/html"
    return html


def assert_branded(message, *, product: str = PRODUCT, sender: str = SENDER, primary: str = PRIMARY, logo: bool = True) -> None:
    assert message.from_email == sender
    assert product in message.subject, message.subject
    assert product in message.body
    html = _html(message)
    # The shared layout: the brand's colour in the header bar, its logo (or name), its name in the footer.
    assert f"background:{primary}" in html
    if logo:
        assert f'/brand/logo" alt="{product}"' in html
    else:
        assert re.search(rf'font-weight:700;">\s*{re.escape(product)}\s*</td>', html)
    assert re.search(rf"<strong[^>]*>{re.escape(product)}</strong> · <a href=", html)
    assert "Baton" not in message.subject and "Baton" not in message.from_email


def test_an_invitation_comes_from_the_tenants_sender_in_its_brand(branded, django_capture_on_commit_callbacks):
    tenant = Tenant.objects.select_related("branding").get(pk=branded.tenant.pk)
    with schema_context(branded.schema), django_capture_on_commit_callbacks(execute=True):
        user_invite(email="new.planner@acme.test", role=Role.PLANNER, actor=FIXTURE_ACTOR, site=site_for_tenant(tenant))
    (message,) = mail.outbox
    assert message.to == ["new.planner@acme.test"] and message.subject == f"You're invited to {PRODUCT}"
    assert_branded(message)
    assert "http://acme.localhost:" in _html(message)  # links point at the tenant's host


def test_password_reset_and_unknown_account_mails_are_in_the_hosts_brand(branded):
    client = host_client(branded.host)
    client.post("/accounts/password/reset/", {"email": branded.users["planner"].email})
    client.post("/accounts/password/reset/", {"email": "nobody@elsewhere.test"})
    reset, unknown = mail.outbox
    assert reset.to == [branded.users["planner"].email] and reset.subject == f"Reset your {PRODUCT} password"
    assert_branded(reset)
    assert "/accounts/password/reset/key/" in _html(reset) and ">Choose a new password</a>" in _html(reset)
    assert unknown.to == ["nobody@elsewhere.test"] and unknown.subject == f"{PRODUCT}: no account for this address"
    assert_branded(unknown)


def test_an_approval_request_is_in_the_tenants_brand(branded):
    definition = definition_published(branded, APPROVAL_SPEC, key=f"brand-approval-{uuid.uuid4().hex[:6]}")
    run = run_advanced(branded, run_started(branded, definition, input={}))
    with schema_context(branded.schema):
        approval = Approval.objects.get(run=run)
        assert approvals_announce(approval.pk) == 1
    (message,) = mail.outbox
    assert message.subject == f"Approval needed – Approve the rate (run #{run.pk}) – {PRODUCT}"
    assert_branded(message)


def test_a_notify_step_email_is_in_the_tenants_brand(branded):
    definition = definition_published(branded, NOTIFY_SPEC, key=f"brand-notify-{uuid.uuid4().hex[:6]}")
    run = run_advanced(branded, run_started(branded, definition, input={}, correlation={"order": "SO-9"}))
    with schema_context(branded.schema):
        assert notify_email_send(run.pk, "tell", f"{run.pk}:tell:{uuid.uuid4().hex[:6]}") == 1
    (message,) = mail.outbox
    assert message.subject.endswith(f" – {PRODUCT}")
    assert_branded(message)


def test_a_customer_milestone_email_is_in_the_tenants_brand(branded):
    from logistics.services import location_create

    with schema_context(branded.schema):
        places = (
            location_create(code="dock-brand", name="Chicago DC", time_zone="America/Chicago", city="Chicago", actor=SYSTEM),
            location_create(code="store-brand", name="Denver store", time_zone="America/Denver", city="Denver", actor=SYSTEM),
        )
        shipment = make_shipment(branded, places, "SH-BRAND-1")
        subscription = subscription_create(
            customer_account=branded.customer_accounts[0], milestones=["delivered"], channel="email", time_zone="UTC", actor=SYSTEM
        )
        moment = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
        notification = MilestoneNotification.objects.create(
            subscription=subscription, shipment=shipment, milestone="delivered", occurred_at=moment, due_at=moment
        )
        message = milestone_email([notification])
    assert message is not None and message.subject == f"Shipment SH-BRAND-1: Delivered – {PRODUCT}"
    assert_branded(message)


def test_a_disabled_webhook_endpoints_owner_is_told_in_the_tenants_brand(branded, django_capture_on_commit_callbacks):
    with schema_context(branded.schema), django_capture_on_commit_callbacks(execute=True):
        endpoint = WebhookEndpoint.objects.create(
            url="https://hooks.example.test/in",
            event_types=["*"],
            created_by_email="ops@acme.test",
            failing_since=timezone.now() - timedelta(hours=25),
        )
        _endpoint_disable(endpoint, timezone.now(), "HTTP 500")
    (message,) = mail.outbox
    assert message.to == ["ops@acme.test"] and message.subject == f"Webhook endpoint disabled – {PRODUCT}"
    assert_branded(message)
    assert "https://hooks.example.test/in" in message.body and "HTTP 500" in _html(message)


def test_without_a_sender_address_mail_comes_from_the_brands_name_at_the_installations_address(django_capture_on_commit_callbacks):
    """The console's brand (the MSP's) has no sender address or logo: its name, the installation's address."""
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        user_invite(email="new.operator@msp.test", role=Role.MSP_OPERATOR, actor=FIXTURE_ACTOR, site=site_for_console())
    (message,) = mail.outbox
    assert_branded(message, product="Test Console", sender="Test Console <no-reply@baton.localhost>", primary="#1f4e79", logo=False)
