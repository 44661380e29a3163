"""A person's language: chosen in the user menu (or on the sign-in page), kept on their account so
it follows them to another device and outranks the browser's Accept-Language; a visitor gets the
browser's language, and a choice of theirs lasts in a cookie. The portal and the staff workspace
both speak it, down to <html lang>."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.services import user_create
from governance.models import AuditEvent
from tests.conftest import PASSWORD, host_client, signed_in_client
from tests.logistics.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def person(world, role: str = "customer", language: str = "") -> User:
    with schema_context(world.acme.schema):
        user = user_create(
            email=f"lang-{uuid.uuid4().hex[:6]}@acme.test",
            role=role,
            password=PASSWORD,
            actor=SYSTEM,
            customer_account_id=world.acme.customer_accounts[0].pk if role == "customer" else None,
        )
        if language:
            User.objects.filter(pk=user.pk).update(language=language)
            user.language = language
    return user


def language_of(world, user: User) -> str:
    with schema_context(world.acme.schema):
        return User.objects.get(pk=user.pk).language


def test_a_visitor_gets_the_sign_in_page_in_the_browsers_language(world):
    spanish = host_client(world.acme.host).get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="es-ES,es;q=0.9,en;q=0.5").content.decode()
    assert '<html lang="es">' in spanish
    assert "Iniciar sesión en Acme Freight Hub" in spanish and "Las cuentas de Acme Freight Hub son por invitación" in spanish
    assert "Saltar al contenido" in spanish
    # The control: an English browser gets English, and a language we do not offer falls back to it.
    english = host_client(world.acme.host).get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Sign in to Acme Freight Hub" in english and "Iniciar sesión" not in english.split("language-switch")[0]
    assert "Sign in to Acme Freight Hub" in host_client(world.acme.host).get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="fi").content.decode()


def test_a_visitors_choice_on_the_sign_in_page_lasts_in_a_cookie(world):
    client = host_client(world.acme.host)
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'action="/accounts/language/"' in page and 'value="de" lang="de"' in page  # the switcher is there
    response = client.post("/accounts/language/", {"language": "de", "next": "/accounts/login/"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Bei Acme Freight Hub anmelden" in page and '<html lang="de">' in page


def test_switching_language_in_the_user_menu_is_kept_on_the_account_and_beats_accept_language(world):
    customer = person(world)
    client = signed_in_client(world.acme.host, customer, world.acme.schema)
    page = client.get("/shipments/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="en' in page and 'aria-pressed="true">English</button>' in page

    # the menu's form names no page: the person goes back to the one the browser came from
    came_from = f"http://{world.acme.host}/shipments/?q=PO-1"
    response = client.post("/accounts/language/", {"language": "de"}, HTTP_ACCEPT_LANGUAGE="en", HTTP_REFERER=came_from)
    assert response.status_code == 302 and response["Location"] == came_from
    assert language_of(world, customer) == "de"
    with schema_context(world.acme.schema):
        assert AuditEvent.objects.filter(action="user.language_changed", target_id=str(customer.pk)).exists()

    # Another device: a fresh session, no cookie, a Spanish browser. The account's choice wins.
    elsewhere = signed_in_client(world.acme.host, customer, world.acme.schema)
    page = elsewhere.get("/shipments/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert '<html lang="de">' in page
    assert ">Sendungen</h1>" in page and "Abmelden" in page and 'aria-pressed="true">Deutsch</button>' in page


def test_a_language_not_offered_or_a_foreign_next_changes_nothing_or_stays_on_this_host(world):
    customer = person(world, language="es")
    client = signed_in_client(world.acme.host, customer, world.acme.schema)
    refused = client.post("/accounts/language/", {"language": "fi", "next": "/shipments/"})
    assert refused.status_code == 400 and "Elija uno de los idiomas ofrecidos." in refused.content.decode()
    assert language_of(world, customer) == "es"
    moved = client.post("/accounts/language/", {"language": "en", "next": "https://elsewhere.test/phish"})
    assert moved.status_code == 302 and moved["Location"] == "/"
    referred = client.post("/accounts/language/", {"language": "en"}, HTTP_REFERER="https://elsewhere.test/phish")
    assert referred.status_code == 302 and referred["Location"] == "/"
    assert language_of(world, customer) == "en"
    assert client.get("/accounts/language/").status_code == 405  # a switch is a POST


def test_the_staff_workspace_speaks_the_staff_members_language_too(world):
    planner = person(world, role="planner", language="es")
    page = signed_in_client(world.acme.host, planner, world.acme.schema).get("/shipments/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert '<html lang="es">' in page
    # the navigation (groups and areas), the page and the role in the user menu
    assert ">Operar<" in page and ">Envíos<" in page and ">Flujos de trabajo<" in page
    assert "Los envíos de todos los clientes" in page and ">Planificador</span>" in page
