"""The console's management pages: a tenant's brand, MSP staff, partners."""

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role, User
from governance.models import AuditEvent
from tenants.models import Branding, Partner
from tests.conftest import host_client, signed_in_client

pytestmark = pytest.mark.django_db

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _console(world, role="msp_admin"):
    client = signed_in_client("localhost", world.msp[role], "public")
    session = client.session
    session["baton.mfa_enrolled"] = True
    session.save()
    return client


def _brand_post(**overrides):
    data = {
        "product_name": "Acme Control Tower",
        "primary_color": "#123456",
        "on_primary_color": "#ffffff",
        "accent_color": "#8a2be2",
        "email_sender_name": "Acme Ops",
        "email_sender_address": "ops@acme.test",
    }
    return {**data, **overrides}


# ---------- Edit a tenant's brand ----------


def test_brand_edit_changes_the_tenants_pages_and_is_audited(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    tenant = world.acme.tenant
    client = _console(world, "msp_operator")
    logo = SimpleUploadedFile("acme.png", PNG, content_type="image/png")
    response = client.post(f"/tenants/{tenant.pk}/brand/", _brand_post(logo=logo))
    assert response.status_code == 302 and response["Location"] == f"/tenants/{tenant.pk}/"

    brand = Branding.objects.get(tenant=tenant)
    assert (brand.product_name, brand.primary_color, brand.accent_color) == ("Acme Control Tower", "#123456", "#8a2be2")
    assert brand.email_sender_address == "ops@acme.test" and brand.logo.name.endswith(".png")
    event = AuditEvent.objects.filter(action="tenant.branding_updated", tenant_slug="acme").latest("id")
    assert event.actor_email == world.msp["msp_operator"].email
    assert event.data["after"]["product_name"] == "Acme Control Tower"

    detail = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert "Acme Control Tower" in detail and "--brand-primary: #123456" in detail  # the preview card
    assert "Acme Ops &lt;ops@acme.test&gt;" in detail
    tenant_page = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema).get("/").content.decode()
    assert "Welcome to Acme Control Tower" in tenant_page and "--brand-primary: #123456" in tenant_page
    assert host_client(world.acme.host).get("/brand/logo").status_code == 200


def test_brand_edit_without_a_new_file_keeps_the_logo(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    tenant = world.acme.tenant
    client = _console(world)
    client.post(f"/tenants/{tenant.pk}/brand/", _brand_post(logo=SimpleUploadedFile("first.png", PNG, content_type="image/png")))
    first_logo = Branding.objects.get(tenant=tenant).logo.name
    response = client.post(f"/tenants/{tenant.pk}/brand/", _brand_post(product_name="Acme Again"))
    assert response.status_code == 302
    brand = Branding.objects.get(tenant=tenant)
    assert brand.product_name == "Acme Again" and brand.logo.name == first_logo


def test_brand_edit_refuses_unreadable_colours_inline_under_the_field(world):
    tenant = world.acme.tenant
    response = _console(world).post(f"/tenants/{tenant.pk}/brand/", _brand_post(primary_color="#ffee00"))
    assert response.status_code == 400
    errors = response.context["brand_form"].errors
    assert list(errors) == ["primary_color"]
    assert (
        "#ffee00 against #ffffff has a contrast of" in errors["primary_color"][0]
        and "WCAG AA needs at least 4.5:1" in errors["primary_color"][0]
    )
    body = response.content.decode()
    assert 'id="id_primary_color_errors"' in body and '<details class="disclosure" id="edit-brand" open>' in body
    assert Branding.objects.get(tenant=tenant).primary_color == "#0b4f9c"
    assert not AuditEvent.objects.filter(action="tenant.branding_updated", tenant_slug="acme").exists()


def test_brand_edit_refuses_a_script_capable_logo(world):
    svg = SimpleUploadedFile("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    response = _console(world).post(f"/tenants/{world.acme.tenant.pk}/brand/", _brand_post(logo=svg))
    assert response.status_code == 400
    assert "File extension “svg” is not allowed." in response.context["brand_form"].errors["logo"][0]


def test_support_staff_see_the_brand_but_cannot_edit_it(world):
    client = _console(world, "msp_support")
    detail = client.get(f"/tenants/{world.acme.tenant.pk}/").content.decode()
    assert "Acme Freight Hub" in detail and "Edit brand" not in detail
    response = client.post(f"/tenants/{world.acme.tenant.pk}/brand/", _brand_post())
    assert response.status_code == 403
    assert Branding.objects.get(tenant=world.acme.tenant).product_name == "Acme Freight Hub"


# ---------- MSP staff ----------


def test_staff_page_lists_msp_staff_with_their_mfa_and_nav_link(world):
    client = _console(world)
    body = client.get("/staff/").content.decode()
    for role in ("msp_admin", "msp_operator", "msp_support"):
        assert world.msp[role].email in body
    assert "Set up" in body and 'href="/staff/"' in body
    assert "acme.test" not in body  # tenant people live in their own schemas
    assert 'href="/staff/"' not in _console(world, "msp_operator").get("/tenants/").content.decode()


def test_staff_search_narrows_the_list(world):
    body = _console(world).get("/staff/?q=operator").content.decode()
    assert world.msp["msp_operator"].email in body and world.msp["msp_support"].email not in body


def test_inviting_msp_staff_mails_them_and_is_audited(world, django_capture_on_commit_callbacks):
    client = _console(world)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/staff/", {"email": "new.operator@msp.test", "full_name": "Nia Operator", "role": "msp_operator"})
    assert response.status_code == 302 and response["Location"] == "/staff/"
    person = User.objects.get(email="new.operator@msp.test")
    assert person.role == Role.MSP_OPERATOR and person.full_name == "Nia Operator" and not person.has_usable_password()
    assert mail.outbox[-1].to == ["new.operator@msp.test"] and "Test Console" in mail.outbox[-1].subject
    assert AuditEvent.objects.filter(action="user.invited", target_id=str(person.pk), actor_email=world.msp["msp_admin"].email).exists()
    listing = client.get("/staff/").content.decode()
    assert "Nia Operator" in listing and "Invited" in listing and "Not yet" in listing


def test_inviting_an_existing_email_is_refused_inline(world):
    response = _console(world).post("/staff/", {"email": world.msp["msp_support"].email, "role": "msp_operator"})
    assert response.status_code == 400
    assert response.context["form"].errors["email"] == [f"{world.msp['msp_support'].email} already has an account here."]


def test_inviting_with_a_tenant_role_is_refused(world):
    response = _console(world).post("/staff/", {"email": "planner@msp.test", "role": "planner"})
    assert response.status_code == 400 and "role" in response.context["form"].errors
    assert not User.objects.filter(email="planner@msp.test").exists()


def test_changing_a_staff_role_is_audited(world):
    support = world.msp["msp_support"]
    response = _console(world).post(f"/staff/{support.pk}/role/", {"role": "msp_operator"})
    assert response.status_code == 302
    assert User.objects.get(pk=support.pk).role == Role.MSP_OPERATOR
    event = AuditEvent.objects.filter(action="user.role_changed", target_id=str(support.pk)).latest("id")
    assert event.data == {"from": "msp_support", "to": "msp_operator"}


def test_an_admin_cannot_change_their_own_role(world):
    admin = world.msp["msp_admin"]
    response = _console(world).post(f"/staff/{admin.pk}/role/", {"role": "msp_support"})
    assert response.status_code == 400
    assert "You cannot change your own role: ask another admin." in response.content.decode()
    assert User.objects.get(pk=admin.pk).role == Role.MSP_ADMIN


def test_deactivating_staff_needs_a_reason_and_is_audited(world):
    client = _console(world)
    operator = world.msp["msp_operator"]
    refused = client.post(f"/staff/{operator.pk}/deactivate/", {"reason": ""})
    assert refused.status_code == 400 and "Say why you deactivate them" in refused.content.decode()
    assert User.objects.get(pk=operator.pk).is_active

    response = client.post(f"/staff/{operator.pk}/deactivate/", {"reason": "left the company"})
    assert response.status_code == 302
    assert not User.objects.get(pk=operator.pk).is_active
    assert AuditEvent.objects.filter(action="user.deactivated", target_id=str(operator.pk), reason="left the company").exists()
    assert "Deactivated" in client.get("/staff/").content.decode()


def test_an_admin_cannot_deactivate_themselves(world):
    admin = world.msp["msp_admin"]
    response = _console(world).post(f"/staff/{admin.pk}/deactivate/", {"reason": "testing"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "You cannot deactivate yourself: ask another admin." in body
    assert User.objects.get(pk=admin.pk).is_active


@pytest.mark.parametrize("role", ["msp_operator", "msp_support"])
def test_only_msp_admins_manage_staff(world, role):
    client = _console(world, role)
    target = world.msp["msp_admin"]
    assert client.get("/staff/").status_code == 403
    assert client.post("/staff/", {"email": "sneaky@msp.test", "role": "msp_admin"}).status_code == 403
    assert client.post(f"/staff/{target.pk}/role/", {"role": "msp_support"}).status_code == 403
    assert client.post(f"/staff/{target.pk}/deactivate/", {"reason": "x"}).status_code == 403
    assert not User.objects.filter(email="sneaky@msp.test").exists()
    assert User.objects.get(pk=target.pk).role == Role.MSP_ADMIN and User.objects.get(pk=target.pk).is_active


# ---------- Partners ----------


def test_creating_a_partner_is_audited(world):
    client = _console(world)
    response = client.post("/partners/new/", {"name": "Northwind MSP", "slug": "northwind", "product_name": "Northwind Console"})
    assert response.status_code == 302 and response["Location"] == "/partners/"
    partner = Partner.objects.get(slug="northwind")
    assert partner.name == "Northwind MSP" and partner.branding.product_name == "Northwind Console"
    assert AuditEvent.objects.filter(action="partner.created", target_id=str(partner.pk), actor_email=world.msp["msp_admin"].email).exists()
    assert "Northwind Console" in client.get("/partners/").content.decode()


def test_a_partner_slug_in_use_is_refused_inline(world):
    response = _console(world).post("/partners/new/", {"name": "Copycat", "slug": "test-msp", "product_name": "Copycat"})
    assert response.status_code == 400
    assert response.context["form"].errors["slug"] == ["Slug 'test-msp' is already used by another partner."]
    assert Partner.objects.filter(slug="test-msp").count() == 1


def test_operators_see_partners_but_cannot_create_them(world):
    client = _console(world, "msp_operator")
    page = client.get("/partners/").content.decode()
    assert "Test MSP" in page and "New partner" not in page
    assert client.post("/partners/new/", {"name": "Nope", "slug": "nope", "product_name": "Nope"}).status_code == 403
    assert not Partner.objects.filter(slug="nope").exists()
