import re

import pytest
from allauth.mfa.models import Authenticator
from django.core import signing
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context

from accounts.models import Role, User
from accounts.services import AccountError, api_key_create, api_key_revoke, user_create, user_invite
from config.encryption import SecretUnreadable, secret_decrypt, secret_encrypt
from governance.models import AuditEvent
from governance.services import Actor
from tenants.models import SupportAccessGrant
from tenants.selectors import site_for_tenant
from tenants.services import TenantError, support_access_request, support_access_revoke
from tests.conftest import PASSWORD, host_client, signed_in_client

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def test_roles_belong_to_their_schema(world):
    with pytest.raises(AccountError, match="does not exist in the MSP console"):
        user_create(email="x@msp.test", role=Role.PLANNER, actor=ACTOR)
    with schema_context(world.acme.schema), pytest.raises(AccountError, match="does not exist in a tenant"):
        user_create(email="x@acme.test", role=Role.MSP_ADMIN, actor=ACTOR)
    with schema_context(world.acme.schema), pytest.raises(AccountError, match="customer account"):
        user_create(email="c@acme.test", role=Role.CUSTOMER, actor=ACTOR)


def test_same_email_can_exist_in_two_tenants_as_separate_people(world):
    for tenant_world in (world.acme, world.globex):
        with schema_context(tenant_world.schema):
            user_create(email="same.person@example.test", role=Role.PLANNER, actor=ACTOR)
    with schema_context(world.acme.schema):
        assert User.objects.filter(email="same.person@example.test").count() == 1


def test_invitation_arrives_in_the_tenants_brand_and_sets_a_password(world, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        user_invite(
            email="new.planner@acme.test",
            role=Role.PLANNER,
            actor=world.acme.users["tenant_admin"],
            site=site_for_tenant(world.acme.tenant),
        )
    mail = mailoutbox[-1]
    assert "Acme Freight Hub" in mail.subject
    html = mail.alternatives[0][0]
    assert "#0b4f9c" in html.lower()
    link = re.search(r"http://acme\.localhost(?::\d+)?(/accounts/password/reset/key/[^\s\"<]+)", mail.body).group(1)
    client = host_client(world.acme.host)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    response = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
        {"password1": "a-brand-new-passphrase", "password2": "a-brand-new-passphrase"},
    )
    assert response.status_code == 302
    with schema_context(world.acme.schema):
        assert User.objects.get(email="new.planner@acme.test").check_password("a-brand-new-passphrase")


def test_repeated_failed_logins_lock_the_account(world):
    client = host_client(world.acme.host)
    email = world.acme.users["dispatcher"].email
    for _ in range(5):
        response = client.post("/accounts/login/", {"login": email, "password": "wrong-password"})
        assert response.status_code == 200
    locked = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert locked.status_code in (200, 429)
    assert "_auth_user_id" not in client.session
    assert b"Too many" in locked.content or locked.status_code == 429


def test_tenant_admins_without_totp_are_sent_to_set_it_up(world):
    with schema_context(world.acme.schema):
        admin = user_create(email="fresh.admin@acme.test", role=Role.TENANT_ADMIN, password=PASSWORD, actor=ACTOR)
    client = signed_in_client(world.acme.host, admin, world.acme.schema)
    response = client.get("/settings/audit/")
    assert response.status_code == 302 and "/accounts/2fa/totp/activate/" in response["Location"]
    planner = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    assert planner.get("/").status_code == 200


def test_totp_seeds_are_encrypted_at_rest(world):
    with schema_context(world.acme.schema):
        stored = Authenticator.objects.get(user__email=world.acme.users["tenant_admin"].email).data["secret"]
    assert stored != "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    assert secret_decrypt(stored) == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_a_wrong_key_raises_instead_of_returning_ciphertext():
    token = secret_encrypt("s3cret")
    with override_settings(BATON_ENCRYPTION_KEYS=["cHJvZHVjdGlvbi1rZXktZm9yLXRlc3RzLW9ubHktMzI="]):
        with pytest.raises(SecretUnreadable):
            secret_decrypt(token)
    with override_settings(
        BATON_ENCRYPTION_KEYS=["cHJvZHVjdGlvbi1rZXktZm9yLXRlc3RzLW9ubHktMzI=", "ZGV2ZWxvcG1lbnQtb25seS1rZXktZG8tbm90LXVzZTA="]
    ):
        assert secret_decrypt(token) == "s3cret"  # old key still decrypts during rotation


def test_api_keys_are_hashed_shown_once_revocable_and_record_use(world):
    with schema_context(world.acme.schema):
        key, secret = api_key_create(name="ERP", scopes=["tenant:read"], actor=world.acme.users["tenant_admin"])
        assert secret not in key.secret_hash and secret.startswith(key.prefix)
    response = host_client(world.acme.host).get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert response.status_code == 200 and response.json()["slug"] == "acme"
    with schema_context(world.acme.schema):
        key.refresh_from_db()
        assert key.last_used_at is not None
        api_key_revoke(key=key, actor=world.acme.users["tenant_admin"])
    revoked = host_client(world.acme.host).get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    connection.set_schema_to_public()


def test_support_access_is_time_boxed_audited_visible_and_revocable(world):
    staff = world.msp["msp_support"]
    with pytest.raises(TenantError, match="at most 8 hours"):
        support_access_request(tenant=world.acme.tenant, staff_user=staff, reason="ticket 42", hours=9, actor=staff)
    with pytest.raises(TenantError, match="why"):
        support_access_request(tenant=world.acme.tenant, staff_user=staff, reason="", hours=1, actor=staff)
    grant = support_access_request(tenant=world.acme.tenant, staff_user=staff, reason="ticket 42: stuck import", hours=2, actor=staff)
    assert AuditEvent.objects.filter(action="support_access.granted", target_id=str(grant.pk)).exists()

    # The console hands a signed ticket to the tenant host, which opens a support session.
    ticket = signing.dumps({"grant": grant.pk, "schema": world.acme.schema}, salt="baton.support.enter")
    client = host_client(world.acme.host)
    entered = client.get(f"/support/enter?ticket={ticket}")
    assert entered.status_code == 302 and entered["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and "Support session" in home.content.decode()
    assert client.get(f"/support/enter?ticket={ticket}").status_code == 403  # one use only
    elsewhere = host_client(world.globex.host).get(f"/support/enter?ticket={ticket}")
    assert elsewhere.status_code == 403

    # The tenant admin sees it and revokes it: the support session ends on its next request.
    admin = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    listing = admin.get("/settings/support-access/").content.decode()
    assert "ticket 42: stuck import" in listing and staff.email in listing
    assert admin.post(f"/settings/support-access/{grant.pk}/revoke/", {"reason": "done"}).status_code == 302
    after = client.get("/")
    assert after.status_code == 302 and "/accounts/login/" in after["Location"]
    connection.set_schema_to_public()
    assert SupportAccessGrant.objects.get(pk=grant.pk).revoked_at is not None
    with schema_context(world.acme.schema):
        assert AuditEvent.objects.filter(action="support_access.revoked").exists()
        assert AuditEvent.objects.filter(action="support_access.session_started").exists()
    assert AuditEvent.objects.filter(action="support_access.revoked", target_id=str(grant.pk)).exists()
    support_access_revoke(grant=SupportAccessGrant.objects.get(pk=grant.pk), actor=staff)  # idempotent


def test_password_reset_mail_comes_in_the_hosts_brand_and_links_back_to_that_host(world, mailoutbox):
    response = host_client(world.globex.host).post("/accounts/password/reset/", {"email": world.globex.users["planner"].email})
    assert response.status_code == 302
    mail = mailoutbox[-1]
    assert "Globex Distribution Hub" in mail.subject + mail.body
    assert "http://globex.localhost" in mail.body and "acme" not in mail.body.lower()
    assert mail.to == [world.globex.users["planner"].email]


def test_password_reset_for_an_address_of_another_tenant_sends_no_link(world, mailoutbox):
    host_client(world.globex.host).post("/accounts/password/reset/", {"email": world.acme.users["planner"].email})
    assert all("/accounts/password/reset/key/" not in m.body for m in mailoutbox)


def test_rotate_keys_reencrypts_every_schema_so_the_old_key_can_go(world, capsys):
    from django.core.management import call_command

    new_key = "cHJvZHVjdGlvbi1rZXktZm9yLXRlc3RzLW9ubHktMzI="
    old_key = "ZGV2ZWxvcG1lbnQtb25seS1rZXktZG8tbm90LXVzZTA="
    with override_settings(BATON_ENCRYPTION_KEYS=[new_key, old_key]):
        call_command("rotate_keys")
    assert "done:" in capsys.readouterr().out
    with override_settings(BATON_ENCRYPTION_KEYS=[new_key]):  # the old key is gone
        for schema in ("public", world.acme.schema, world.globex.schema):
            with schema_context(schema):
                for authenticator in Authenticator.objects.filter(type="totp"):
                    assert secret_decrypt(authenticator.data["secret"]) == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
