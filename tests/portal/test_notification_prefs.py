"""The customer portal's notification preferences and customer API keys: a customer user sees and
changes their own account's notifications and keys only (another account's ids are 404, another
tenant's host knows nothing of them), staff see every account's, and every write goes through the
services, audited."""

from __future__ import annotations

import uuid

import pytest
from django_tenants.utils import schema_context

from accounts.models import ApiKey
from accounts.services import api_key_create
from connectors.models import WebhookEndpoint
from governance.models import AuditEvent
from logistics.models import MilestoneSubscription
from logistics.notifications import subscription_create
from tenants.db import connection
from tests.conftest import host_client, signed_in_client
from tests.logistics.conftest import SYSTEM

pytestmark = pytest.mark.django_db

FORM = {
    "milestones": ["picked_up", "delivered"],
    "send_to": "me",
    "time_zone": "America/Chicago",
    "digest": "off",
}


def _client(world, role: str = "customer", tenant=None):
    tenant = tenant or world.acme
    return signed_in_client(tenant.host, tenant.users[role], tenant.schema)


def _in_acme(world, query):
    with schema_context(world.acme.schema):
        value = query()
    connection.set_schema_to_public()
    return value


def _subscription(world, account_index: int, email: str = "") -> MilestoneSubscription:
    account = world.acme.customer_accounts[account_index]
    email = email or f"{uuid.uuid4().hex[:8]}@coyote.test"
    return _in_acme(
        world,
        lambda: subscription_create(
            customer_account=account, milestones=["delivered"], channel="email", email=email, time_zone="UTC", actor=SYSTEM
        ),
    )


# --- notification preferences ------------------------------------------------------------------


def test_a_customer_without_notifications_is_told_how_to_add_one(world):
    page = _client(world).get("/notifications/")
    body = page.content.decode()
    assert page.status_code == 200 and page["Cache-Control"].startswith("max-age=0")
    assert "You get no notifications yet" in body and 'href="/notifications/new/"' in body
    assert "Nothing told yet" in body
    assert "Notifications are not switched on yet" in body  # no sending workflow published in this test


def test_a_customer_sees_only_their_own_accounts_notifications_in_the_grid(world):
    mine = _subscription(world, 0, "mine@coyote.test")
    _subscription(world, 1, "theirs@coyote.test")
    body = _client(world).get("/notifications/?account=" + str(world.acme.customer_accounts[1].pk)).content.decode()
    assert "Email to mine@coyote.test" in body and f'href="/notifications/{mine.pk}/"' in body
    assert "theirs@coyote.test" not in body
    assert "Delivered" in body and "Picked up" in body  # the grid's rows: the usual milestones


def test_a_customer_saves_email_to_me_for_their_own_account_whatever_account_the_form_names(world):
    customer = world.acme.users["customer"]
    data = {**FORM, "customer_account": str(world.acme.customer_accounts[1].pk), "quiet_start": "21:00", "quiet_end": "07:00"}
    response = _client(world).post("/notifications/new/", data)
    assert response.status_code == 302 and response["Location"] == "/notifications/"
    made = _in_acme(world, lambda: MilestoneSubscription.objects.select_related("user").get(user_id=customer.pk))
    assert made.customer_account_id == world.acme.customer_accounts[0].pk
    assert made.milestones == ["picked_up", "delivered"] and made.time_zone == "America/Chicago" and made.channel == "email"
    assert str(made.quiet_start) == "21:00:00" and made.digest == "off"
    event = _in_acme(world, lambda: AuditEvent.objects.get(action="milestone_subscription.created", target_id=str(made.pk)))
    assert event.actor_email == customer.email and event.data["to"] == customer.email
    listed = _client(world).get("/notifications/").content.decode()
    assert "Email to me" in listed and "quiet 21:00–07:00" in listed


def test_a_mistake_is_said_next_to_its_field(world):
    client = _client(world)
    no_address = client.post("/notifications/new/", {**FORM, "send_to": "address"})
    assert no_address.status_code == 400 and "Give the address to email." in no_address.content.decode()
    half_quiet = client.post("/notifications/new/", {**FORM, "quiet_start": "21:00"})
    assert "Give both the start and the end of quiet hours, or neither." in half_quiet.content.decode()
    zone = client.post("/notifications/new/", {**FORM, "time_zone": "Mars/Olympus"})
    assert "&#x27;Mars/Olympus&#x27; is not an IANA time zone" in zone.content.decode()
    no_hook = client.post("/notifications/new/", {**FORM, "send_to": "webhook"})
    assert "the account has no webhook endpoint that receives milestones yet" in no_hook.content.decode()
    assert _in_acme(world, lambda: MilestoneSubscription.objects.count()) == 0


def test_a_webhook_url_becomes_the_accounts_endpoint_and_its_secret_is_shown_once(world):
    client = _client(world)
    response = client.post("/notifications/new/", {**FORM, "send_to": "webhook", "webhook_url": "http://127.0.0.1:9/hooks/baton"})
    body = response.content.decode()
    assert response.status_code == 200 and "Copy the signing secret now" in body and "whsec_" in body
    assert "no-store" in response["Cache-Control"]
    endpoint = _in_acme(world, lambda: WebhookEndpoint.objects.get(url="http://127.0.0.1:9/hooks/baton"))
    assert endpoint.customer_account_id == world.acme.customer_accounts[0].pk and endpoint.event_types == ["shipment.milestone"]
    made = _in_acme(world, lambda: MilestoneSubscription.objects.get(channel="webhook"))
    assert made.customer_account_id == world.acme.customer_accounts[0].pk
    # The same URL again: the endpoint is reused, no secret shown.
    again = client.post(f"/notifications/{made.pk}/", {**FORM, "send_to": "webhook", "webhook_url": "http://127.0.0.1:9/hooks/baton"})
    assert again.status_code == 302
    assert _in_acme(world, lambda: WebhookEndpoint.objects.filter(url="http://127.0.0.1:9/hooks/baton").count()) == 1
    page = client.get(f"/notifications/{made.pk}/").content.decode()
    assert "http://127.0.0.1:9/hooks/baton" in page and "whsec_" not in page


def test_a_customer_edits_pauses_and_resumes_their_own_notification(world):
    mine = _subscription(world, 0)
    client = _client(world)
    edited = client.post(
        f"/notifications/{mine.pk}/", {**FORM, "send_to": "address", "email": "ops@coyote.test", "digest": "daily", "digest_at": "17:00"}
    )
    assert edited.status_code == 302
    stored = _in_acme(world, lambda: MilestoneSubscription.objects.get(pk=mine.pk))
    assert stored.email == "ops@coyote.test" and stored.digest == "daily" and str(stored.digest_at) == "17:00:00"
    assert client.post(f"/notifications/{mine.pk}/pause/").status_code == 302
    stored = _in_acme(world, lambda: MilestoneSubscription.objects.get(pk=mine.pk))
    assert stored.enabled is False and stored.disabled_reason == f"Paused by {world.acme.users['customer'].email} in the customer portal."
    paused = client.get(f"/notifications/{mine.pk}/").content.decode()
    assert "Paused: nothing new is told" in paused and ">Resume<" in paused
    assert client.post(f"/notifications/{mine.pk}/resume/").status_code == 302
    assert _in_acme(world, lambda: MilestoneSubscription.objects.get(pk=mine.pk).enabled) is True


def test_another_accounts_notification_is_not_found_for_a_customer(world):
    theirs = _subscription(world, 1, "theirs@coyote.test")
    client = _client(world)
    assert client.get(f"/notifications/{theirs.pk}/").status_code == 404
    assert client.post(f"/notifications/{theirs.pk}/", {**FORM, "send_to": "people"}).status_code == 404
    assert client.post(f"/notifications/{theirs.pk}/pause/").status_code == 404
    stored = _in_acme(world, lambda: MilestoneSubscription.objects.get(pk=theirs.pk))
    assert stored.enabled is True and stored.email == "theirs@coyote.test"


def test_staff_see_every_account_and_only_editors_change(world):
    theirs = _subscription(world, 1, "theirs@coyote.test")
    listed = _client(world, "dispatcher").get("/notifications/").content.decode()
    assert "theirs@coyote.test" in listed and world.acme.customer_accounts[1].name in listed
    assert _client(world, "dispatcher").post("/notifications/new/", FORM).status_code == 403
    assert _client(world, "finance").post(f"/notifications/{theirs.pk}/pause/").status_code == 403
    made = _client(world, "planner").post(
        "/notifications/new/", {**FORM, "send_to": "people", "customer_account": str(world.acme.customer_accounts[1].pk)}
    )
    assert made.status_code == 302
    assert _in_acme(world, lambda: MilestoneSubscription.objects.filter(customer_account=world.acme.customer_accounts[1]).count()) == 2
    me = _client(world, "planner").post("/notifications/new/", {**FORM, "customer_account": str(world.acme.customer_accounts[1].pk)})
    assert me.status_code == 400 and "Select a valid choice. me is not one of the available choices." in me.content.decode()


def test_another_tenants_host_knows_nothing_of_the_notification(world):
    mine = _subscription(world, 0, "mine@coyote.test")
    globex = _client(world, tenant=world.globex)
    page = globex.get(f"/notifications/{mine.pk}/")
    assert page.status_code == 404 and "mine@coyote.test" not in page.content.decode()
    stolen = host_client(world.globex.host)
    stolen.cookies = _client(world).cookies
    refused = stolen.get("/notifications/")
    assert refused.status_code == 302 and "/accounts/login/" in refused["Location"]


# --- customer API keys -------------------------------------------------------------------------


def test_a_tenant_admin_binds_a_key_to_a_customer_account_with_experience_scopes_only(world):
    admin = _client(world, "tenant_admin")
    account = world.acme.customer_accounts[1]
    wrong = admin.post(
        "/settings/api-keys/", {"name": "shipper TMS", "scopes": ["shipments:read", "connections:read"], "customer_account": account.pk}
    )
    assert wrong.status_code == 400
    assert "A key bound to a customer account holds Experience API scopes only" in wrong.content.decode()
    assert "not connections:read" in wrong.content.decode()
    made = admin.post("/settings/api-keys/", {"name": "shipper TMS", "scopes": ["shipments:read"], "customer_account": account.pk})
    assert made.status_code == 200 and "Copy your new key now" in made.content.decode()
    key = _in_acme(world, lambda: ApiKey.objects.get(name="shipper TMS"))
    assert key.customer_account_id == account.pk and key.scopes == ["shipments:read"]
    assert f"Customer key: {account.name}" in admin.get("/settings/api-keys/").content.decode()


def test_a_customer_makes_a_key_for_their_account_shown_once_which_reads_only_the_experience_api(world):
    client = _client(world)
    empty = client.get("/account/api-keys/").content.decode()
    assert "No API keys yet" in empty
    made = client.post(
        "/account/api-keys/", {"name": "our TMS", "scopes": ["shipments:read"], "customer_account": world.acme.customer_accounts[1].pk}
    )
    body = made.content.decode()
    assert made.status_code == 200 and "Copy your new key now" in body and "no-store" in made["Cache-Control"]
    secret = body.split('id="new-secret"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    key = _in_acme(world, lambda: ApiKey.objects.get(name="our TMS"))
    assert key.customer_account_id == world.acme.customer_accounts[0].pk and secret.startswith(key.prefix)
    assert (
        key.prefix in client.get("/account/api-keys/").content.decode() and secret not in client.get("/account/api-keys/").content.decode()
    )
    api = host_client(world.acme.host)
    assert api.get("/api/v1/shipments", HTTP_AUTHORIZATION=f"Api-Key {secret}").status_code == 200
    staff_only = api.get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert staff_only.status_code == 403 and "belongs to a customer account" in staff_only.json()["detail"]
    refused = client.post("/account/api-keys/", {"name": "wider", "scopes": ["connections:read"]})
    assert (
        refused.status_code == 400
        and "Select a valid choice. connections:read is not one of the available choices." in refused.content.decode()
    )


def test_a_customer_revokes_their_own_key_and_another_accounts_keys_are_404(world):
    def make(account_index: int, name: str) -> ApiKey:
        account = world.acme.customer_accounts[account_index]
        return _in_acme(
            world,
            lambda: api_key_create(name=name, scopes=["shipments:read"], actor=SYSTEM, customer_account_id=account.pk)[0],
        )

    mine, theirs = make(0, "mine-key"), make(1, "theirs-key")
    workspace = _in_acme(world, lambda: api_key_create(name="workspace-key", scopes=["tenant:read"], actor=SYSTEM)[0])
    client = _client(world)
    listed = client.get("/account/api-keys/").content.decode()
    assert "mine-key" in listed and "theirs-key" not in listed and "workspace-key" not in listed
    assert client.post(f"/account/api-keys/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/account/api-keys/{workspace.pk}/revoke/").status_code == 404
    assert client.post(f"/account/api-keys/{mine.pk}/revoke/").status_code == 302
    keys = _in_acme(world, lambda: {key.name: key.revoked_at for key in ApiKey.objects.all()})
    assert keys["mine-key"] is not None and keys["theirs-key"] is None and keys["workspace-key"] is None
    event = _in_acme(world, lambda: AuditEvent.objects.get(action="api_key.revoked", target_id=str(mine.pk)))
    assert event.actor_email == world.acme.users["customer"].email


def test_customer_keys_page_roles_and_other_tenants(world):
    assert _client(world, "planner").get("/account/api-keys/").status_code == 403
    theirs = _in_acme(
        world,
        lambda: api_key_create(
            name="acme-key", scopes=["shipments:read"], actor=SYSTEM, customer_account_id=world.acme.customer_accounts[1].pk
        )[0],
    )
    admin = _client(world, "tenant_admin").get("/account/api-keys/").content.decode()
    assert "acme-key" in admin and world.acme.customer_accounts[1].name in admin
    globex = _client(world, tenant=world.globex)
    assert "acme-key" not in globex.get("/account/api-keys/").content.decode()
    assert globex.post(f"/account/api-keys/{theirs.pk}/revoke/").status_code == 404
    assert _in_acme(world, lambda: ApiKey.objects.get(pk=theirs.pk).revoked_at) is None
