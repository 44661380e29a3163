import gzip
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_exists

from governance.models import AuditEvent
from governance.services import Actor
from tenants.models import Tenant, TenantStatus
from tenants.services import BrandingInput, tenant_archive, tenant_archived_drop_due, tenant_provision
from tests.conftest import signed_in_client

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def _console(world, role="msp_admin"):
    client = signed_in_client("localhost", world.msp[role], "public")
    session = client.session
    session["baton.mfa_enrolled"] = True
    session.save()
    return client


def test_tenant_list_searches_and_filters_by_status(world):
    client = _console(world)
    page = client.get("/tenants/?q=acme").content.decode()
    assert "Acme Freight" in page and "Globex Distribution" not in page
    page = client.get("/tenants/?status=suspended").content.decode()
    assert "Acme Freight" not in page


def test_new_tenant_form_shows_inline_errors_for_bad_input(world):
    client = _console(world)
    response = client.post(
        "/tenants/new/",
        {
            "partner": world.partner.pk,
            "name": "Bad",
            "slug": "bad",
            "plan": "standard",
            "time_zone": "UTC",
            "product_name": "Bad",
            "primary_color": "#ffee00",
            "on_primary_color": "#ffffff",
            "accent_color": "#b4490c",
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "contrast" in body and "4.5:1" in body
    assert not Tenant.objects.filter(slug="bad").exists()


def test_new_tenant_form_queues_provisioning_and_redirects_to_live_progress(world, django_capture_on_commit_callbacks):
    client = _console(world)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/tenants/new/",
            {
                "partner": world.partner.pk,
                "name": "Hooli",
                "slug": "hooli",
                "plan": "standard",
                "time_zone": "Europe/Berlin",
                "product_name": "Hooli Ops",
                "primary_color": "#0b4f9c",
                "on_primary_color": "#ffffff",
                "accent_color": "#b4490c",
            },
        )
    tenant = Tenant.objects.get(slug="hooli")
    assert response.status_code == 302 and response["Location"] == f"/tenants/{tenant.pk}/"
    sent = [callback for callback in callbacks if callback.__module__ != "governance.services"]  # not the audit's seal
    assert tenant.status == TenantStatus.PROVISIONING and len(sent) == 1  # the build task, sent on commit
    progress = client.get(f"/tenants/{tenant.pk}/progress/").content.decode()
    assert "Queued" in progress and "every 500ms" in progress  # keeps polling while provisioning


def test_operators_cannot_suspend_tenants(world):
    response = _console(world, "msp_operator").post(f"/tenants/{world.acme.tenant.pk}/suspend/", {"reason": "x"})
    assert response.status_code == 403
    assert Tenant.objects.get(pk=world.acme.tenant.pk).status == TenantStatus.READY


def test_archive_exports_every_table_then_drops_the_schema_after_the_grace_period(world):
    tenant = tenant_provision(
        partner=world.partner,
        name="Massive Dynamic",
        slug="massive",
        domains=[],
        plan="standard",
        branding=BrandingInput(product_name="Massive"),
        actor=ACTOR,
        admin_email="boss@massive.test",
    )
    tenant = tenant_archive(tenant=tenant, reason="contract ended", actor=ACTOR)
    assert tenant.status == TenantStatus.ARCHIVED and tenant.drop_after > timezone.now() + timedelta(days=29)
    with gzip.open(tenant.archive_export_path, "rt") as export:
        rows = [json.loads(line) for line in export]
    assert any(row["table"] == "accounts_user" and row["row"]["email"] == "boss@massive.test" for row in rows)
    assert tenant_archived_drop_due() == []  # still in its grace period
    assert schema_exists("t_massive")
    assert tenant_archived_drop_due(now=tenant.drop_after + timedelta(seconds=1)) == ["massive"]
    assert not schema_exists("t_massive")
    assert AuditEvent.objects.filter(action="tenant.schema_dropped", tenant_slug="massive").exists()


def test_a_custom_domain_serves_the_tenant_and_is_audited(world):
    client = _console(world)
    response = client.post(f"/tenants/{world.acme.tenant.pk}/domains/", {"domain": "track.acme-freight.test"})
    assert response.status_code == 302
    assert world.acme.tenant.domains.filter(domain="track.acme-freight.test", is_primary=False).exists()
    assert AuditEvent.objects.filter(action="tenant.domain_added", tenant_slug="acme").exists()
    from tests.conftest import host_client

    assert "Acme Freight Hub" in host_client("track.acme-freight.test").get("/accounts/login/").content.decode()
    taken = client.post(f"/tenants/{world.globex.tenant.pk}/domains/", {"domain": "track.acme-freight.test"}, follow=True)
    assert "already serves a tenant" in taken.content.decode()
    assert _console(world, "msp_support").post(f"/tenants/{world.acme.tenant.pk}/domains/", {"domain": "x.test"}).status_code == 403
