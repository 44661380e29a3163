"""The customer-facing surfaces in German and Spanish: a customer who chose German reads the
shipment list and page in German with German dates and numbers, the milestone email goes out in
the recipient's language, and every string marked on the customer's pages has a translation in
each catalog (so a new string without one fails here, not in front of a customer)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils.translation.template import templatize
from django_tenants.utils import schema_context

from accounts.models import User
from logistics.models import MilestoneNotification
from logistics.notifications import milestone_email, subscription_create
from tests.accounts.test_language import person
from tests.conftest import signed_in_client
from tests.logistics.conftest import SYSTEM
from tests.portal.test_shipment_pages import _journey, acme, at, places, ship  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

# The customer's pages and everything they are made of; the staff-only pages may lag behind.
CUSTOMER_TEMPLATES = [
    "base.html",
    "portal/base.html",
    "403.html",
    "404.html",
    "500.html",
    "account/login.html",
    "account/password_reset_from_key.html",
    "components/user_menu.html",
    "components/language_switch.html",
    "components/error.html",
    "components/pagination.html",
    "components/toasts.html",
    "email/milestone.html",
    "email/milestone.txt",
    *sorted(
        str(path.relative_to(settings.BASE_DIR / "templates")) for path in (settings.BASE_DIR / "templates/portal/shipments").glob("*.html")
    ),
]
# templatize() writes each marked string as a gettext call with a Python literal: u'…' or u"…".
CALL = re.compile(r"""\b(?:n?gettext|pgettext)\(\s*(u?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"))""")


def _marked(template: str) -> set[str]:
    """The msgids makemessages would take from the template (Django's own template-to-gettext step)."""
    source = (settings.BASE_DIR / "templates" / template).read_text()
    # the first literal: the msgid, or a plural entry's singular, which names it in the catalog
    return {ast.literal_eval(call.group(1)) for call in CALL.finditer(templatize(source, origin=template))}


def _catalog(language: str) -> dict[str, bool]:
    """msgid -> translated (a msgstr that is not empty and not fuzzy), from the .po as committed."""
    text = (settings.BASE_DIR / "locale" / language / "LC_MESSAGES" / "django.po").read_text()
    entries = {}
    for block in text.split("\n\n"):
        fuzzy = "#, fuzzy" in block or re.search(r"^#,.*\bfuzzy\b", block, re.M) is not None
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            match = re.match(r'(msgid|msgid_plural|msgstr(?:\[\d\])?|msgctxt) "(.*)"$', line)
            if match:
                key = match.group(1)
                fields[key] = match.group(2)
            elif line.startswith('"') and key:
                fields[key] += line[1:-1]
        if fields.get("msgid"):
            msgid = fields["msgid"].replace('\\"', '"').replace("\\n", "\n")
            strings = [value for name, value in fields.items() if name.startswith("msgstr")]
            entries[msgid] = bool(strings) and all(strings) and not fuzzy
    return entries


@pytest.mark.parametrize("language", ["de", "es"])
def test_every_string_on_the_customers_pages_is_translated_in_the_catalog(language):
    catalog = _catalog(language)
    marked = {msgid: template for template in CUSTOMER_TEMPLATES for msgid in _marked(template)}
    assert len(marked) > 150  # the extraction sees the pages' strings at all
    missing = sorted(f"{template}: {msgid!r}" for msgid, template in marked.items() if not catalog.get(msgid))
    assert not missing, f"not translated in locale/{language} (run `make messages`, translate, `make install`):\n" + "\n".join(missing)


def test_the_catalogs_are_compiled_from_their_sources():
    """`make install` compiles them; a stale .mo would show yesterday's words."""
    for language in ("de", "es"):
        folder = Path(settings.BASE_DIR) / "locale" / language / "LC_MESSAGES"
        assert (folder / "django.mo").exists(), f"locale/{language} is not compiled: run `make install`"
        assert (folder / "django.mo").stat().st_mtime >= (folder / "django.po").stat().st_mtime, f"locale/{language} changed since compiled"


def test_a_customer_who_chose_german_reads_the_shipment_list_and_page_in_german(world, acme, places):  # noqa: F811
    _journey(acme, places)
    ship(acme, places, "SP-DE-2", eta=at(30))
    customer = person(world, language="de")
    client = signed_in_client(world.acme.host, customer, world.acme.schema)

    listing = client.get("/shipments/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="de">' in listing and "<title>Sendungen · Acme Freight Hub</title>" in listing
    assert ">Sendungen</h1>" in listing and "Filter und Sortierung" in listing and "Unterwegs" in listing
    assert "Zum Inhalt springen" in listing and "Kontomenü für" in listing
    # German short dates and times: the ETA "03.03.2026 08:00" (day first, 24-hour clock), never "03/03/2026 8 a.m."
    assert re.search(r">03\.03\.2026 \d\d:\d\d<", listing) and "a.m." not in listing and "p.m." not in listing

    page = client.get("/shipments/SP-D-1/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<title>Sendung SP-D-1 · Acme Freight Hub</title>" in page
    assert "Ereignisse" in page and "Am Abholort angekommen" in page and "Abgeholt" in page and "Stopps" in page
    assert "Zustellnachweis herunterladen" in page and "PDF herunterladen" in page
    assert "4 Std. später" in page  # the ETA's shift in words
    assert "2. März 2026" in page and "08:30" in page and "a.m." not in page  # German long dates, 24-hour times
    assert "1.234,50" in page and "3,5 °C" in page  # German decimal comma and thousands dot
    assert "Arrived at pickup" not in page and "Milestones" not in page


def test_the_milestone_email_speaks_the_recipients_language(world, acme, places):  # noqa: F811
    customer = person(world, language="es")
    with schema_context(world.acme.schema):
        shipment = ship(acme, places, "SP-MAIL-ES", pro_number="PRO-ES-1")
        subscription = subscription_create(
            customer_account=acme.customer_accounts[0],
            milestones=["in_transit"],
            channel="email",
            time_zone="Europe/Madrid",
            user=customer,
            actor=SYSTEM,
        )
        notification = MilestoneNotification.objects.create(
            subscription=subscription,
            shipment=shipment,
            milestone="in_transit",
            occurred_at=at(4),
            due_at=at(4),
            details={"label": "In transit"},
        )
        message = milestone_email([notification])
        assert message is not None
        html = message.alternatives[0][0]
        assert message.subject.startswith("Envío SP-MAIL-ES: En tránsito")
        assert '<html lang="es">' in html and "Novedad del envío" in html and "Cuándo" in html
        assert "2 de marzo de 2026" in message.body and "CET" in message.body  # Spanish date, Madrid's zone
        assert "Su contacto en" in message.body

        # The control: someone who chose nothing gets the default language.
        User.objects.filter(pk=customer.pk).update(language="")
        subscription.user.refresh_from_db()
        english = milestone_email([notification])
        assert english is not None and english.subject.startswith("Shipment SP-MAIL-ES: In transit")
        assert "March 2, 2026" in english.body
