import json

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from accounts.models import Role, User
from governance.models import AuditEvent
from governance.services import Actor
from tenants.models import ProvisioningStep, Tenant, TenantStatus
from tenants.services import BrandingInput, TenantError, tenant_provision, tenant_resume, tenant_suspend
from tenants.template_schema import TemplateSchemaSnapshot

ACTOR = Actor.system("test")
pytestmark = pytest.mark.django_db


def _provision(world, slug, **overrides):
    params = dict(
        partner=world.partner,
        name=f"Tenant {slug}",
        slug=slug,
        domains=[],
        plan="starter",
        actor=ACTOR,
        branding=BrandingInput(product_name=f"{slug} hub"),
        admin_email=f"boss@{slug}.test",
    )
    params.update(overrides)
    return tenant_provision(**params)


def test_provisioned_tenant_is_ready_with_schema_admin_invite_and_audit(world, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        tenant = _provision(world, "initech")
    assert tenant.status == TenantStatus.READY
    assert schema_exists("t_initech")
    assert tenant.domains.get().domain == "initech.localhost"
    with schema_context("t_initech"):
        admin = User.objects.get(email="boss@initech.test")
        assert admin.role == Role.TENANT_ADMIN and not admin.has_usable_password()
        assert AuditEvent.objects.filter(action="user.invited").exists()
    assert [m.to for m in mailoutbox] == [["boss@initech.test"]]
    assert "initech hub" in mailoutbox[0].subject
    assert "http://initech.localhost" in mailoutbox[0].body
    assert AuditEvent.objects.filter(action="tenant.provisioned", tenant_slug="initech").exists()
    assert list(ProvisioningStep.objects.filter(tenant=tenant).values_list("state", flat=True))[-1] == "done"


def test_provisioning_is_idempotent_on_slug(world):
    first = _provision(world, "umbrella")
    again = _provision(world, "umbrella")
    assert again.pk == first.pk
    assert Tenant.objects.filter(slug="umbrella").count() == 1


def test_failed_provisioning_is_marked_with_reason_leaves_no_schema_and_can_be_retried(world):
    # An admin email that already exists can't fail; a pre-existing schema with the same name does.
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "t_stark"; CREATE TABLE "t_stark".accounts_user (id int)')
    tenant = _provision(world, "stark")
    assert tenant.status == TenantStatus.FAILED
    assert "accounts_user" in tenant.status_reason or "exists" in tenant.status_reason
    assert not schema_exists("t_stark")  # the leftover is removed
    retried = _provision(world, "stark")
    assert retried.pk == tenant.pk and retried.status == TenantStatus.READY
    assert AuditEvent.objects.filter(action="tenant.provision_failed", tenant_slug="stark").exists()


def test_stale_template_snapshot_is_refused_with_instructions(world):
    TemplateSchemaSnapshot.objects.all().delete()
    tenant = _provision(world, "wayne")
    assert tenant.status == TenantStatus.FAILED
    assert "baton_migrate" in tenant.status_reason
    assert not schema_exists("t_wayne")


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"slug": "Bad Slug"}, "slug", "lowercase"),
        ({"domains": ["localhost"]}, "domains", "console"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "time zone"),
    ],
)
def test_bad_requests_are_refused_with_a_specific_message(world, overrides, field, text):
    with pytest.raises(TenantError) as caught:
        _provision(world, overrides.pop("slug", "okslug"), **overrides)
    assert caught.value.field == field and text in caught.value.message


def test_unreadable_brand_colours_are_refused(world):
    from tenants.branding import BrandColourError

    with pytest.raises(BrandColourError) as caught:
        _provision(world, "yellow", branding=BrandingInput(product_name="x", primary_color="#ffd700"))
    assert "contrast" in str(caught.value) and "4.5:1" in str(caught.value)
    assert not Tenant.objects.filter(slug="yellow").exists()


def test_suspend_and_resume_are_audited_and_need_a_reason(world):
    tenant = _provision(world, "cyberdyne")
    with pytest.raises(TenantError):
        tenant_suspend(tenant=tenant, reason=" ", actor=ACTOR)
    tenant = tenant_suspend(tenant=tenant, reason="unpaid invoice", actor=ACTOR)
    assert tenant.status == TenantStatus.SUSPENDED
    tenant = tenant_resume(tenant=tenant, actor=ACTOR)
    assert tenant.status == TenantStatus.READY
    actions = list(AuditEvent.objects.filter(tenant_slug="cyberdyne").values_list("action", flat=True))
    assert "tenant.suspended" in actions and "tenant.resumed" in actions


def test_provision_tenant_command_prints_one_json_object(world, capsys):
    call_command(
        "provision_tenant",
        "--partner",
        world.partner.slug,
        "--name",
        "Soylent",
        "--slug",
        "soylent",
        "--domain",
        "soylent.example.test",
        "--primary-color",
        "#0b4f9c",
    )
    result = json.loads(capsys.readouterr().out.strip())
    assert result["status"] == "ready" and result["slug"] == "soylent"
    assert result["elapsed_seconds"] < 30 and isinstance(result["tenant_id"], int)
