"""A tenant's custom domains in the console: remove one, make one primary (verified custom domains
only), and check one – the host must answer /.well-known/baton-domain with the tenant's token.
Here a local server answers what a host pointing elsewhere would; the check against Baton itself
(a real web server on loopback) is in tests/tenants/test_brand_browser.py."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.utils import timezone

from governance.models import AuditEvent
from tenants.domains import domain_token
from tenants.models import Domain
from tenants.selectors import site_for_tenant
from tenants.services import tenant_domain_add
from tests.conftest import FIXTURE_ACTOR, host_client
from tests.console.test_console import _console
from tests.processes import free_port

pytestmark = pytest.mark.django_db


@contextmanager
def answering(text: str, status: int = 200) -> Iterator[int]:
    """A loopback HTTP server answering every GET with `text`: a host that reaches another server."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _custom(world, host: str = "track.acme-freight.localhost") -> Domain:
    return tenant_domain_add(tenant=world.acme.tenant, host=host, actor=FIXTURE_ACTOR)


@pytest.fixture
def custom_suffix(settings):
    """The installation's own hosts under baton.test, so *.localhost names count as custom domains."""
    settings.BATON_TENANT_DOMAIN_SUFFIX = "baton.test"


def test_a_custom_domain_can_be_removed_but_not_the_primary_one(world, custom_suffix):
    custom = _custom(world)
    client = _console(world)
    page = client.get(f"/tenants/{world.acme.tenant.pk}/").content.decode()
    assert "track.acme-freight.localhost" in page and "Unverified" in page and "Not checked yet." in page
    primary = world.acme.tenant.domains.get(is_primary=True)
    refused = client.post(f"/tenants/{world.acme.tenant.pk}/domains/{primary.pk}/remove/", follow=True).content.decode()
    assert "is the primary domain: make another domain primary before removing it." in refused
    assert Domain.objects.filter(pk=primary.pk).exists()
    done = client.post(f"/tenants/{world.acme.tenant.pk}/domains/{custom.pk}/remove/", follow=True).content.decode()
    assert "track.acme-freight.localhost no longer serves Acme Freight." in done
    assert not Domain.objects.filter(pk=custom.pk).exists()
    assert AuditEvent.objects.filter(action="tenant.domain_removed", tenant_slug="acme", data__domain=custom.domain).exists()
    assert host_client("track.acme-freight.localhost").get("/accounts/login/").status_code == 404


def test_a_domain_of_another_tenant_is_not_found_through_this_tenants_url(world):
    globex = world.globex.tenant.domains.get(is_primary=True)
    client = _console(world)
    for action in ("remove", "primary", "verify"):
        assert client.post(f"/tenants/{world.acme.tenant.pk}/domains/{globex.pk}/{action}/").status_code == 404
    assert Domain.objects.filter(pk=globex.pk, is_primary=True).exists()


def test_support_staff_cannot_change_domains(world):
    custom = _custom(world)
    support = _console(world, "msp_support")
    for action in ("remove", "primary", "verify"):
        assert support.post(f"/tenants/{world.acme.tenant.pk}/domains/{custom.pk}/{action}/").status_code == 403
    assert Domain.objects.filter(pk=custom.pk, is_primary=False, verification_checked_at=None).exists()


def test_an_unverified_custom_domain_cannot_be_made_primary(world, custom_suffix):
    custom = _custom(world)
    page = _console(world).post(f"/tenants/{world.acme.tenant.pk}/domains/{custom.pk}/primary/", follow=True).content.decode()
    assert "Verify track.acme-freight.localhost before making it primary: links in emails would point at it." in page
    assert not Domain.objects.get(pk=custom.pk).is_primary


def test_a_verified_domain_made_primary_is_where_links_point(world, custom_suffix, settings):
    custom = _custom(world)
    Domain.objects.filter(pk=custom.pk).update(verified_at=timezone.now())
    before = world.acme.tenant.domains.get(is_primary=True)
    page = _console(world).post(f"/tenants/{world.acme.tenant.pk}/domains/{custom.pk}/primary/", follow=True).content.decode()
    assert "track.acme-freight.localhost is now the primary domain" in page
    assert list(world.acme.tenant.domains.filter(is_primary=True).values_list("domain", flat=True)) == ["track.acme-freight.localhost"]
    assert not Domain.objects.get(pk=before.pk).is_primary
    tenant = type(world.acme.tenant).objects.prefetch_related("domains").get(pk=world.acme.tenant.pk)
    assert site_for_tenant(tenant).base_url.startswith("http://track.acme-freight.localhost")
    event = AuditEvent.objects.get(action="tenant.domain_made_primary", tenant_slug="acme")
    assert event.data == {"domain": "track.acme-freight.localhost", "before": before.domain}


def test_a_host_answering_something_else_stays_unverified_with_the_reason(world, settings):
    custom = _custom(world)
    client = _console(world)
    with answering("someone-elses-token") as port:
        settings.BATON_PUBLIC_PORT = str(port)
        page = client.post(f"/tenants/{world.acme.tenant.pk}/domains/{custom.pk}/verify/", follow=True).content.decode()
    assert "track.acme-freight.localhost is not verified" in page and "not this tenant&#x27;s token" in page
    checked = Domain.objects.get(pk=custom.pk)
    assert checked.verified_at is None and checked.verification_checked_at is not None
    assert (
        f"http://track.acme-freight.localhost:{port}/.well-known/baton-domain answered 'someone-elses-token'" in checked.verification_error
    )
    assert AuditEvent.objects.filter(action="tenant.domain_verification_failed", tenant_slug="acme").exists()
    # The instructions show the token to serve.
    assert domain_token(world.acme.tenant) in client.get(f"/tenants/{world.acme.tenant.pk}/").content.decode()


def test_a_verified_domain_that_stops_answering_is_unverified_again(world, settings):
    custom = _custom(world)
    Domain.objects.filter(pk=custom.pk).update(verified_at=timezone.now())
    with answering("gone", status=404) as port:
        settings.BATON_PUBLIC_PORT = str(port)
        _console(world).post(f"/tenants/{world.acme.tenant.pk}/domains/{custom.pk}/verify/")
    assert Domain.objects.get(pk=custom.pk).verification_error.endswith("answered HTTP 404, not 200 with the token.")
    settings.BATON_PUBLIC_PORT = str(free_port())  # nobody listens there
    _console(world).post(f"/tenants/{world.acme.tenant.pk}/domains/{custom.pk}/verify/")
    checked = Domain.objects.get(pk=custom.pk)
    assert checked.verified_at is None and checked.verification_error.startswith("No answer from http://track.acme-freight.localhost:")


def test_every_tenant_host_answers_its_own_token(world):
    acme = host_client(world.acme.host).get("/.well-known/baton-domain")
    globex = host_client(world.globex.host).get("/.well-known/baton-domain")
    assert acme.status_code == 200 and acme.content.decode() == domain_token(world.acme.tenant)
    assert globex.content.decode() == domain_token(world.globex.tenant) != acme.content.decode()
    assert host_client("localhost").get("/.well-known/baton-domain").status_code == 404  # not on the console
