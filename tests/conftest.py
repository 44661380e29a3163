"""Shared fixtures: a real PostgreSQL test database with two provisioned tenants (Acme, Globex).

The tenants and their users are created once per session and committed, so a real web server,
a real Celery worker and a real browser all see them. Tests that only read or whose writes can
be rolled back use the `db` fixture as usual; tests that need committed writes use `committed`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import Role, User
from accounts.services import user_create, user_mfa_totp_activate
from governance.services import Actor
from logistics.models import CustomerAccount
from tenants.db import connection
from tenants.models import Partner, Tenant
from tenants.services import BrandingInput, partner_create, tenant_provision
from tenants.template_schema import template_schema_refresh

# Tests change tenants under running servers: every request looks its host up (a test turns the
# per-process host cache on to check it). Also for the servers and workers the suite starts.
os.environ["BATON_TENANT_HOST_CACHE_SECONDS"] = "0"
settings.BATON_TENANT_HOST_CACHE_SECONDS = 0.0

PASSWORD = "correct-horse-battery-staple"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
FIXTURE_ACTOR = Actor.system("tests")


@dataclass
class TenantWorld:
    """One provisioned tenant with a user per role and two customer accounts."""

    tenant: Tenant
    host: str
    users: dict[str, User] = field(default_factory=dict)
    customer_accounts: list[CustomerAccount] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return self.tenant.schema_name


@dataclass
class World:
    partner: Partner
    msp: dict[str, User]
    acme: TenantWorld
    globex: TenantWorld


def _tenant_world(partner: Partner, slug: str, name: str, primary: str, accent: str) -> TenantWorld:
    tenant = tenant_provision(
        partner=partner,
        name=name,
        slug=slug,
        domains=[],
        plan="standard",
        actor=FIXTURE_ACTOR,
        branding=BrandingInput(product_name=f"{name} Hub", primary_color=primary, accent_color=accent),
    )
    assert tenant.status == "ready", tenant.status_reason
    world = TenantWorld(tenant=tenant, host=f"{slug}.localhost")
    with schema_context(tenant.schema_name):
        for index in range(2):
            world.customer_accounts.append(CustomerAccount.objects.create(code=f"{slug}-c{index}", name=f"{name} customer {index}"))
        for role in (Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER, Role.CUSTOMER_SERVICE, Role.FINANCE, Role.CUSTOMER):
            account = world.customer_accounts[0].pk if role == Role.CUSTOMER else None
            user = user_create(
                email=f"{role.value}@{slug}.test", role=role, password=PASSWORD, actor=FIXTURE_ACTOR, customer_account_id=account
            )
            if user.requires_mfa:
                user_mfa_totp_activate(user=user, secret=TOTP_SECRET, actor=FIXTURE_ACTOR)
            world.users[role.value] = user
    return world


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_keepdb, django_db_modify_db_settings):
    """The test database (always, even when only browser or worker tests run, which carry no
    django_db mark), then the template snapshot, then Acme and Globex, all committed."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        db_cfg = setup_databases(verbosity=0, interactive=False, keepdb=django_db_keepdb, aliases={"default"})
        template_schema_refresh(verbosity=0)
        connection.set_schema_to_public()
        partner = partner_create(name="Test MSP", slug="test-msp", actor=FIXTURE_ACTOR, branding=BrandingInput(product_name="Test Console"))
        for role in (Role.MSP_ADMIN, Role.MSP_OPERATOR, Role.MSP_SUPPORT):
            staff = user_create(email=f"{role.value}@msp.test", role=role, password=PASSWORD, actor=FIXTURE_ACTOR)
            user_mfa_totp_activate(user=staff, secret=TOTP_SECRET, actor=FIXTURE_ACTOR)
        _tenant_world(partner, "acme", "Acme Freight", "#0b4f9c", "#b4400a")
        _tenant_world(partner, "globex", "Globex Distribution", "#1e5b32", "#7a2f9c")
        connection.set_schema_to_public()
    yield
    with django_db_blocker.unblock():
        connection.close()
        teardown_databases(db_cfg, verbosity=0)


@pytest.fixture(scope="session")
def world(django_db_setup, django_db_blocker) -> World:
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        partner = Partner.objects.get(slug="test-msp")
        msp = {u.role: u for u in User.objects.filter(email__endswith="@msp.test")}
        worlds = {}
        for slug in ("acme", "globex"):
            tenant = Tenant.objects.get(slug=slug)
            world = TenantWorld(tenant=tenant, host=f"{slug}.localhost")
            with schema_context(tenant.schema_name):
                world.users = {u.role: u for u in User.objects.filter(email__endswith=f"@{slug}.test")}
                world.customer_accounts = list(CustomerAccount.objects.filter(code__startswith=f"{slug}-").order_by("code"))
            worlds[slug] = world
        connection.set_schema_to_public()
    return World(partner=partner, msp=msp, acme=worlds["acme"], globex=worlds["globex"])


@pytest.fixture(autouse=True)
def _public_schema_first():
    """Each test starts on the public schema, whatever the previous request switched to."""
    connection.set_schema_to_public()  # only sets the search path for the next query; opens nothing
    yield


@pytest.fixture(autouse=True)
def _default_language_first():
    """Each test starts in the default language: a request through the test client activates the
    person's or the workspace's language on this thread, and it stays active after the request."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield


@pytest.fixture(autouse=True)
def _connector_guards_reset():
    """Circuit and rate-limit state lives in Redis across processes: each test starts with every
    connection's circuit closed, whatever an earlier test's failing partner left behind."""
    yield
    import redis

    from connectors.deliveries import endpoints_forget
    from connectors.guards import guards_forget
    from connectors.hook_connections import hook_connections_forget

    endpoints_forget()  # endpoints a rolled-back test made are gone
    hook_connections_forget()  # and so are its webhook connections
    with contextlib.suppress(redis.RedisError):  # a test that stopped Redis: nothing to forget
        guards_forget()


@pytest.fixture
def committed(django_db_blocker):
    """Database access without a wrapping transaction: writes are visible to other processes."""
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        yield
        connection.set_schema_to_public()


def host_client(host: str) -> Client:
    return Client(HTTP_HOST=host)


def signed_in_client(host: str, user: User, schema: str, *, mfa_passed: bool = True) -> Client:
    """A client with a session made in `schema` for `user` (sessions live in each schema), as a
    real sign-in leaves it: allauth records the password and, for people with an authenticator,
    the second factor (pages that need MFA read that record). `mfa_passed=False` leaves the
    second factor out, like a session signed in before its authenticator was set up."""
    from allauth.account.internal.flows.login import record_authentication
    from allauth.mfa.models import Authenticator
    from django.test import RequestFactory

    client = host_client(host)
    with schema_context(schema):
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        request = RequestFactory().get("/")
        request.session = client.session
        record_authentication(request, user, "password", email=user.email)
        totp = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
        if mfa_passed and totp is not None:
            record_authentication(request, user, "mfa", id=totp.pk, type=totp.type)
        request.session.save()
    connection.set_schema_to_public()
    return client
