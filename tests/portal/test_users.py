"""A tenant admin manages the tenant's people: staff roles, deactivation, customer users."""

import pytest
from django.core import mail
from django_tenants.utils import schema_context

from accounts.models import Role, User
from governance.models import AuditEvent
from tests.conftest import signed_in_client

pytestmark = pytest.mark.django_db


def _admin(world):
    return signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)


def _in_acme(world, query):
    with schema_context(world.acme.schema):
        return query()


def test_users_page_lists_staff_and_customer_users_with_their_account(world):
    body = _admin(world).get("/settings/users/").content.decode()
    assert world.acme.users["planner"].email in body
    assert "Customer users" in body and world.acme.users["customer"].email in body
    assert world.acme.customer_accounts[0].name in body  # the customer user's account, and a choice in the invite form
    assert world.acme.customer_accounts[1].name in body
    assert "globex" not in body.lower()


def test_users_search_narrows_both_lists(world):
    body = _admin(world).get("/settings/users/?q=dispatcher").content.decode()
    assert world.acme.users["dispatcher"].email in body
    assert world.acme.users["finance"].email not in body and world.acme.users["customer"].email not in body
    assert "No customer users match" in body


def test_changing_a_staff_role_is_audited_in_the_tenant(world):
    planner = world.acme.users["planner"]
    response = _admin(world).post(f"/settings/users/{planner.pk}/role/", {"role": "dispatcher"})
    assert response.status_code == 302 and response["Location"] == "/settings/users/"
    assert _in_acme(world, lambda: User.objects.get(pk=planner.pk).role) == Role.DISPATCHER
    event = _in_acme(world, lambda: AuditEvent.objects.filter(action="user.role_changed", target_id=str(planner.pk)).latest("id"))
    assert event.data == {"from": "planner", "to": "dispatcher"} and event.actor_email == world.acme.users["tenant_admin"].email
    with schema_context("public"):  # not in the console's log
        assert not AuditEvent.objects.filter(action="user.role_changed", target_id=str(planner.pk)).exists()


def test_a_customer_user_keeps_their_role(world):
    customer = world.acme.users["customer"]
    response = _admin(world).post(f"/settings/users/{customer.pk}/role/", {"role": "planner"})
    assert response.status_code == 400
    assert "A customer user keeps the customer role: invite a staff account instead." in response.content.decode()
    assert _in_acme(world, lambda: User.objects.get(pk=customer.pk).role) == Role.CUSTOMER


def test_only_staff_roles_can_be_given_here(world):
    planner = world.acme.users["planner"]
    for role in ("customer", "msp_admin"):
        response = _admin(world).post(f"/settings/users/{planner.pk}/role/", {"role": role})
        assert response.status_code == 400
        assert f"Select a valid choice. {role} is not one of the available choices." in response.content.decode()
    assert _in_acme(world, lambda: User.objects.get(pk=planner.pk).role) == Role.PLANNER


def test_deactivating_someone_is_audited_with_the_reason(world):
    finance = world.acme.users["finance"]
    client = _admin(world)
    response = client.post(f"/settings/users/{finance.pk}/deactivate/", {"reason": "moved to another company"})
    assert response.status_code == 302
    assert _in_acme(world, lambda: User.objects.get(pk=finance.pk).is_active) is False
    assert _in_acme(
        world,
        lambda: AuditEvent.objects.filter(action="user.deactivated", target_id=str(finance.pk), reason="moved to another company").exists(),
    )
    page = client.get("/settings/users/").content.decode()
    assert "Deactivated" in page
    # Their session no longer works.
    signed_out = signed_in_client(world.acme.host, world.acme.users["finance"], world.acme.schema).get("/settings/users/")
    assert signed_out.status_code == 302 and "/accounts/login/" in signed_out["Location"]


def test_customer_users_can_be_deactivated(world):
    customer = world.acme.users["customer"]
    response = _admin(world).post(f"/settings/users/{customer.pk}/deactivate/", {"reason": "contract ended"})
    assert response.status_code == 302
    assert _in_acme(world, lambda: User.objects.get(pk=customer.pk).is_active) is False


def test_an_admin_cannot_deactivate_themselves(world):
    admin = world.acme.users["tenant_admin"]
    response = _admin(world).post(f"/settings/users/{admin.pk}/deactivate/", {"reason": "bored"})
    assert response.status_code == 400
    assert "You cannot deactivate yourself: ask another admin." in response.content.decode()
    assert _in_acme(world, lambda: User.objects.get(pk=admin.pk).is_active)


def test_deactivating_without_a_reason_is_refused_inline(world):
    planner = world.acme.users["planner"]
    response = _admin(world).post(f"/settings/users/{planner.pk}/deactivate/", {"reason": "  "})
    assert response.status_code == 400
    body = response.content.decode()
    assert f'id="deactivate-{planner.pk}-errors"' in body and "Say why you deactivate them" in body
    assert _in_acme(world, lambda: User.objects.get(pk=planner.pk).is_active)


def test_inviting_a_customer_user_binds_them_to_the_account(world, django_capture_on_commit_callbacks):
    account = world.acme.customer_accounts[1]
    with django_capture_on_commit_callbacks(execute=True):
        response = _admin(world).post(
            "/settings/users/customers/invite/", {"email": "Buyer@Shipper.test", "full_name": "Bo Buyer", "customer_account": account.pk}
        )
    assert response.status_code == 302 and response["Location"] == "/settings/users/#customers"
    person = _in_acme(world, lambda: User.objects.get(email="buyer@shipper.test"))
    assert person.role == Role.CUSTOMER and person.customer_account_id == account.pk
    assert mail.outbox[-1].to == ["buyer@shipper.test"] and "Acme Freight Hub" in mail.outbox[-1].subject
    assert _in_acme(world, lambda: AuditEvent.objects.filter(action="user.invited", target_id=str(person.pk)).exists())


def test_a_customer_user_needs_an_account_of_this_tenant(world):
    unknown = max(a.pk for a in world.acme.customer_accounts) + 1000
    for account_id in ("", str(unknown)):
        response = _admin(world).post("/settings/users/customers/invite/", {"email": "who@shipper.test", "customer_account": account_id})
        assert response.status_code == 400
        assert "customer_account" in response.context["customer_form"].errors
    assert not _in_acme(world, lambda: User.objects.filter(email="who@shipper.test").exists())


def test_inviting_an_existing_customer_email_is_refused_inline(world):
    response = _admin(world).post(
        "/settings/users/customers/invite/",
        {"email": world.acme.users["customer"].email, "customer_account": world.acme.customer_accounts[0].pk},
    )
    assert response.status_code == 400
    assert response.context["customer_form"].errors["email"] == [f"{world.acme.users['customer'].email} already has an account here."]


@pytest.mark.parametrize("role", ["planner", "dispatcher", "customer"])
def test_only_tenant_admins_manage_users(world, role):
    client = signed_in_client(world.acme.host, world.acme.users[role], world.acme.schema)
    target = world.acme.users["finance"]
    assert client.get("/settings/users/").status_code == 403
    assert client.post(f"/settings/users/{target.pk}/role/", {"role": "tenant_admin"}).status_code == 403
    assert client.post(f"/settings/users/{target.pk}/deactivate/", {"reason": "x"}).status_code == 403
    response = client.post(
        "/settings/users/customers/invite/", {"email": "sneaky@shipper.test", "customer_account": world.acme.customer_accounts[0].pk}
    )
    assert response.status_code == 403
    target = _in_acme(world, lambda: User.objects.get(pk=target.pk))
    assert target.role == Role.FINANCE and target.is_active
    assert not _in_acme(world, lambda: User.objects.filter(email="sneaky@shipper.test").exists())


def test_an_unknown_user_id_is_not_found(world):
    client = _admin(world)
    assert client.post("/settings/users/10000000/deactivate/", {"reason": "x"}).status_code == 404
    assert client.post("/settings/users/10000000/role/", {"role": "planner"}).status_code == 404


def test_a_role_change_on_one_tenant_leaves_the_other_alone(world):
    """User ids are per schema, so the same id exists in both tenants: only the host's own row changes."""
    globex_planner = world.globex.users["planner"]
    client = signed_in_client(world.globex.host, world.globex.users["tenant_admin"], world.globex.schema)
    assert client.post(f"/settings/users/{globex_planner.pk}/role/", {"role": "finance"}).status_code == 302
    with schema_context(world.globex.schema):
        assert User.objects.get(pk=globex_planner.pk).role == Role.FINANCE
    with schema_context(world.acme.schema):
        assert User.objects.get(email="planner@acme.test").role == Role.PLANNER
