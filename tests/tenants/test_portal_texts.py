"""The tenant admin's portal texts: written on /settings/portal-texts/ (admins only, audited, plain
text with its limits, a preview that saves nothing) and shown to customers on their home page,
the sign-in page, the footer and error and empty pages – never on another tenant's host."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from tenants.models import PortalTexts
from tenants.selectors import portal_copy_for_tenant
from tenants.services import PortalTextsInput, TenantError, portal_texts_update
from tests.conftest import FIXTURE_ACTOR, host_client, signed_in_client

pytestmark = pytest.mark.django_db

FORM = {
    "welcome_headline": "Your freight, in view",
    "welcome_message": "Track every load here.\nCall us <anytime> & we answer.",
    "support_email": "help@acme-freight.test",
    "support_phone": "+1 312 555 0100",
    "support_hours": "Mon–Fri 07:00–19:00 CT",
    "notice": "Planned maintenance Sunday 02:00–03:00.",
    "notice_expires_at": "",
    "sign_in_message": "No account yet?\nAsk your Acme account manager.",
    "action": "save",
}


def _client(world, role="tenant_admin", tenant="acme"):
    place = getattr(world, tenant)
    return signed_in_client(place.host, place.users[role], place.schema)


def _errors(body: str, field: str) -> str:
    found = re.search(rf'<ul class="field__errors" id="id_{field}_errors"[^>]*>(.*?)</ul>', body, re.S)
    return found.group(1) if found else ""


def test_the_admin_saves_texts_and_customers_see_them_escaped_with_their_line_breaks(world):
    response = _client(world).post("/settings/portal-texts/", FORM, follow=True)
    assert response.redirect_chain[-1][0] == "/settings/portal-texts/"
    assert "Portal texts saved: your customers see them from now on." in response.content.decode()
    stored = PortalTexts.objects.get(tenant=world.acme.tenant)
    assert stored.welcome_message == "Track every load here.\nCall us <anytime> & we answer."
    assert stored.updated_by_email == "tenant_admin@acme.test"
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.get(action="tenant.portal_texts_updated")
    assert event.actor_email == "tenant_admin@acme.test" and "welcome_message" in event.data["changed"]

    home = _client(world, "customer").get("/").content.decode()
    assert '<h1 id="welcome-title" class="portal-text">Your freight, in view</h1>' in home
    assert "Track every load here.<br>Call us &lt;anytime&gt; &amp; we answer." in home and "<anytime>" not in home
    assert 'class="portal-notice"' in home and "Planned maintenance Sunday 02:00–03:00." in home
    footer = home[home.index('<footer class="site-footer"') :]
    assert 'href="mailto:help@acme-freight.test"' in footer and 'href="tel:+13125550100"' in footer and "Mon–Fri 07:00–19:00 CT" in footer

    sign_in = host_client(world.acme.host).get("/accounts/login/").content.decode()
    assert "No account yet?<br>Ask your Acme account manager." in sign_in and "Planned maintenance" in sign_in
    assert "help@acme-freight.test" in sign_in  # signed-out visitors see who to ask
    missing = _client(world, "customer").get("/no-such-page/")
    assert missing.status_code == 404 and "help@acme-freight.test" in missing.content.decode()[: missing.content.decode().index("<footer")]
    # Staff know their own support: no customer contact in their footer, but the notice is there.
    staff = _client(world, "planner").get("/").content.decode()
    assert "help@acme-freight.test" not in staff and "Planned maintenance" in staff


def test_another_tenants_host_shows_none_of_the_texts(world):
    portal_texts_update(
        tenant=world.acme.tenant, texts=PortalTextsInput(welcome_headline="Acme secret welcome", notice="Acme notice"), actor=FIXTURE_ACTOR
    )
    for page in (
        _client(world, "customer", "globex").get("/").content.decode(),
        host_client(world.globex.host).get("/accounts/login/").content.decode(),
    ):
        assert "Acme secret welcome" not in page and "Acme notice" not in page
    assert "Acme notice" not in signed_in_client("localhost", world.msp["msp_admin"], "public").get("/accounts/login/").content.decode()


def test_preview_shows_the_unsaved_texts_and_saves_nothing(world):
    response = _client(world).post("/settings/portal-texts/", {**FORM, "welcome_headline": "Draft headline", "action": "preview"})
    body = response.content.decode()
    assert response.status_code == 200 and "Preview – not saved yet" in body
    preview = body[body.index('class="texts-preview"') :]
    assert "Draft headline" in preview and "Call us &lt;anytime&gt;" in preview and "+1 312 555 0100" in preview
    assert not PortalTexts.objects.filter(tenant=world.acme.tenant).exists()
    assert "Draft headline" not in _client(world, "customer").get("/").content.decode()


def test_too_long_or_malformed_texts_are_refused_with_the_field_and_the_limit(world):
    client = _client(world)
    response = client.post("/settings/portal-texts/", {**FORM, "notice": "x" * 301})
    assert response.status_code == 400
    assert "Notice is 301 characters long; at most 300 fit." in _errors(response.content.decode(), "notice")
    response = client.post("/settings/portal-texts/", {**FORM, "support_phone": "call me"})
    assert "Support phone takes digits" in _errors(response.content.decode(), "support_phone")
    response = client.post("/settings/portal-texts/", {**FORM, "support_email": "not-an-address"})
    assert "is not an email address" in _errors(response.content.decode(), "support_email")
    response = client.post("/settings/portal-texts/", {**FORM, "notice_expires_at": "2020-01-01T10:00"})
    assert "choose a time in the future" in _errors(response.content.decode(), "notice_expires_at")
    assert not PortalTexts.objects.filter(tenant=world.acme.tenant).exists()


def test_the_notice_disappears_when_it_expires(world):
    soon = timezone.now() + timedelta(minutes=5)
    portal_texts_update(
        tenant=world.acme.tenant, texts=PortalTextsInput(notice="Short notice", notice_expires_at=soon), actor=FIXTURE_ACTOR
    )
    tenant = type(world.acme.tenant).objects.get(pk=world.acme.tenant.pk)
    assert portal_copy_for_tenant(tenant).notice == "Short notice"
    assert portal_copy_for_tenant(tenant, now=soon + timedelta(seconds=1)).notice == ""
    with pytest.raises(TenantError, match="An expiry needs a notice"):
        portal_texts_update(tenant=tenant, texts=PortalTextsInput(notice_expires_at=soon), actor=FIXTURE_ACTOR)


def test_control_characters_go_and_single_line_fields_stay_on_one_line(world):
    row = portal_texts_update(
        tenant=world.acme.tenant,
        texts=PortalTextsInput(welcome_headline="Hello\r\n  there\x07", welcome_message="a\r\nb\x00\r\n"),
        actor=FIXTURE_ACTOR,
    )
    assert (row.welcome_headline, row.welcome_message) == ("Hello there", "a\nb")


@pytest.mark.parametrize("role", ["customer", "planner", "dispatcher", "customer_service", "finance"])
def test_only_tenant_admins_may_open_or_change_the_texts(world, role):
    client = _client(world, role)
    assert client.get("/settings/portal-texts/").status_code == 403
    assert client.post("/settings/portal-texts/", FORM).status_code == 403
    assert not PortalTexts.objects.filter(tenant=world.acme.tenant).exists()
    assert host_client(world.acme.host).get("/settings/portal-texts/").status_code == 302  # signed out: to sign in
