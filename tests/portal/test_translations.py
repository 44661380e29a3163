"""The surfaces in German and Spanish: a customer who chose German reads the shipment list and
page in German with German dates and numbers, the milestone email goes out in the recipient's
language, a workspace's default language (its admin's choice) is what its people read until they
choose one, every string marked in any template has a translation in each catalog (so a new
string without one fails here, not in front of someone), and no template shows visible text that
is not marked at all."""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.template.base import Lexer, TokenType
from django.utils.translation.template import templatize
from django_tenants.utils import schema_context
from playwright.sync_api import expect, sync_playwright

from accounts.models import User
from governance.models import AuditEvent
from logistics.models import MilestoneNotification
from logistics.notifications import milestone_email, subscription_create
from tenants.models import Tenant
from tenants.services import TenantError, tenant_default_language_set
from tests.accounts.test_language import person
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, TOTP_SECRET, host_client, signed_in_client
from tests.logistics.conftest import SYSTEM
from tests.portal.test_shipment_pages import _journey, acme, at, places, ship  # noqa: F401 - fixtures
from tests.portal.test_shipments_browser import in_thread, live_port  # noqa: F401 - fixtures

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
TEMPLATES = settings.BASE_DIR / "templates"
# Every template makemessages reads (`make messages`: -e html,txt).
ALL_TEMPLATES = sorted(str(path.relative_to(TEMPLATES)) for suffix in ("*.html", "*.txt") for path in TEMPLATES.rglob(suffix))
# templatize() writes each marked string as a gettext call with Python literals: u'…' or u"…",
# and keeps a tag's `_("…")` argument as it is; pgettext and npgettext put the context first, so
# the msgid is the second literal.
LITERAL = r"""u?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
CALL = re.compile(rf"\b(?:(?:n?gettext|_)\(\s*({LITERAL})|n?pgettext\(\s*{LITERAL}\s*,\s*({LITERAL}))")


def _marked(template: str) -> set[str]:
    """The msgids makemessages would take from the template (Django's own template-to-gettext step)."""
    source = (TEMPLATES / template).read_text()
    # the msgid, or a plural entry's singular, which names it in the catalog
    return {ast.literal_eval(call.group(1) or call.group(2)) for call in CALL.finditer(templatize(source, origin=template))}


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


# What a template may show without marking it: the product's own name where a template spells it.
ALLOWED_TEXT = {"Baton", "HTTP", "SFTP", "UTC", "ms"}
# Attributes people read or hear: tooltips, screen-reader names, hints, image text, the label a
# stacked table row shows (CSS `content: attr(data-label)`) and the question a confirm dialog asks.
VISIBLE_ATTRIBUTE = re.compile(r"""\s(title|aria-label|placeholder|alt|data-label|data-confirm)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
BUTTON_VALUE = re.compile(r"""\svalue\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
# Literals handed to a component to show: {% include "components/empty.html" with title="…" %} (marked: title=_("…")).
SHOWN_ARGUMENT = re.compile(r"""\b(title|text|label|action_label|detail|hint|nav_label|where)=(?:"([^"]*)"|'([^']*)')""")
# The template tags whose output is translated text, and where the template language steps aside.
TRANSLATED, OPAQUE = "\x02", "\x01"
SKIPPED_ELEMENTS = re.compile(r"<(script|style|code|pre|kbd|samp)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.S | re.I)
HTML_TAG = re.compile(r"<[a-zA-Z/!\x01][^>]*>")  # a tag whose name a template tag picks starts with a marker
ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
WORD = re.compile(r"[^\W\d_]{2,}")  # two letters at least: "x" of "3 x 4" or "h" of "4 h" is no text to translate
# A link, a path or a host name (a placeholder's "track.example.com") reads the same in every language.
URL_LIKE = re.compile(r"^(?:https?://\S*|[/?#][\w/.\-=&?#%:]*|[\w-]+(?:\.[\w-]+)*\.[a-z]{2,})$")
# A code's element reference (EDI's ISA13, GS06) is an identifier, the same in every language.
IDENTIFIER = re.compile(r"^[A-Z]{1,4}\d{1,3}$")
# Blocks a base template fills into an attribute: a body class, a region id – names, not words.
NAME_BLOCK = re.compile(r"^block\s+\w+_(?:class|id)$")


@dataclass
class _Page:
    """A template as the browser would get it: each template tag and variable one marker
    character (translated text: TRANSLATED), blocktranslate and comment bodies gone; with the
    source line where each token starts, and the literals the template hands to components."""

    text: str = ""
    tokens: list[tuple[int, int, str]] = field(default_factory=list)  # (offset in text, source line, piece)
    arguments: list[tuple[int, str]] = field(default_factory=list)

    def line_of(self, position: int) -> int:
        index = max(bisect.bisect_right([offset for offset, _line, _piece in self.tokens], position) - 1, 0)
        offset, line, piece = self.tokens[index]
        return line + piece[: position - offset].count("\n")


def _page(source: str) -> _Page:
    page = _Page()
    parts: list[str] = []
    offset = 0
    inside = ""  # the end tag of a block whose body is no page text (blocktranslate, comment, verbatim)
    for token in Lexer(source).tokenize():
        name = token.contents.split()[0] if token.token_type == TokenType.BLOCK and token.contents.split() else ""
        if inside:
            inside = "" if name == inside else inside
            continue
        if token.token_type == TokenType.TEXT:
            piece = token.contents
        elif token.token_type == TokenType.COMMENT:
            piece = ""
        elif name in ("blocktranslate", "blocktrans", "translate", "trans"):
            piece = TRANSLATED
            inside = "end" + name if name.startswith("block") else ""
        else:
            piece = OPAQUE
            inside = "end" + name if name in ("comment", "verbatim") else "endblock" if NAME_BLOCK.match(token.contents) else ""
            if name == "include":
                page.arguments += [
                    (token.lineno or 0, match.group(2) or match.group(3) or "") for match in SHOWN_ARGUMENT.finditer(token.contents)
                ]
        page.tokens.append((offset, token.lineno or 0, piece))
        parts.append(piece)
        offset += len(piece)
    page.text = "".join(parts)
    return page


def _visible(text: str) -> str:
    """The words a person reads in a piece of page text, or "" when there are none."""
    text = " ".join(ENTITY.sub(" ", text).split())
    if not text or URL_LIKE.match(text) or IDENTIFIER.match(text) or text in ALLOWED_TEXT or not WORD.search(text):
        return ""
    return text


def _words(text: str, start: int = 0) -> list[tuple[int, str]]:
    """The runs of text between template tags and variables that a person would read, with their offsets."""
    return [(start + run.start(), words) for run in re.finditer(r"[^\x01\x02]+", text) if (words := _visible(run.group(0)))]


def _unmarked(template: str, source: str | None = None) -> list[str]:
    """Visible text the template shows without marking it: page text between tags, the visible
    attributes, a submit button's value and the literals it hands to components to show."""
    page = _page((TEMPLATES / template).read_text() if source is None else source)
    # Elements whose content is code or a program: blanked out, keeping offsets (and so lines).
    text = SKIPPED_ELEMENTS.sub(lambda element: re.sub(r"[^\n]", " ", element.group(0)), page.text)
    found: list[tuple[int, str]] = []
    position = 0
    for tag in HTML_TAG.finditer(text):
        found += _words(text[position : tag.start()], position)
        for attribute in VISIBLE_ATTRIBUTE.finditer(tag.group(0)):
            found += [
                (tag.start(), f"{attribute.group(1)}={words!r}") for _at, words in _words(attribute.group(2) or attribute.group(3) or "")
            ]
        if re.match(r"<input\b", tag.group(0), re.I) and re.search(r"""\stype\s*=\s*["']?(submit|button|reset)""", tag.group(0), re.I):
            for button in BUTTON_VALUE.finditer(tag.group(0)):
                found += [(tag.start(), f"value={words!r}") for _at, words in _words(button.group(1) or button.group(2) or "")]
        position = tag.end()
    found += _words(text[position:], position)
    lines = [(page.line_of(at), words) for at, words in found]
    lines += [(line, f"include argument {value!r}") for line, value in page.arguments if _visible(value)]
    return [f"{template}:{line}: {words}" for line, words in sorted(lines)]


@pytest.mark.parametrize("language", ["de", "es"])
def test_every_string_on_the_customers_pages_is_translated_in_the_catalog(language):
    catalog = _catalog(language)
    marked = {msgid: template for template in CUSTOMER_TEMPLATES for msgid in _marked(template)}
    assert len(marked) > 150  # the extraction sees the pages' strings at all
    missing = sorted(f"{template}: {msgid!r}" for msgid, template in marked.items() if not catalog.get(msgid))
    assert not missing, f"not translated in locale/{language} (run `make messages`, translate, `make install`):\n" + "\n".join(missing)


@pytest.mark.parametrize("language", ["de", "es"])
def test_every_string_marked_in_any_template_is_translated_in_the_catalog(language):
    """Staff pages, the console, emails and components too: a marked string without a translation
    shows English in the middle of a German page."""
    catalog = _catalog(language)
    marked = {msgid: template for template in ALL_TEMPLATES for msgid in _marked(template)}
    assert len(marked) > 1000  # the extraction sees every area's strings at all
    missing = sorted(f"{template}: {msgid!r}" for msgid, template in marked.items() if not catalog.get(msgid))
    assert not missing, f"{len(missing)} not translated in locale/{language} (`make messages`, translate, `make install`):\n" + "\n".join(
        missing
    )


AREAS = sorted({template.split("/")[0] if "/" in template else "(top level)" for template in ALL_TEMPLATES})


@pytest.mark.parametrize("area", AREAS)
def test_no_template_shows_text_that_is_not_marked_for_translation(area):
    templates = [t for t in ALL_TEMPLATES if (t.split("/")[0] if "/" in t else "(top level)") == area]
    offenders = [offence for template in templates for offence in _unmarked(template)]
    assert not offenders, f"{len(offenders)} visible texts in templates/{area} are not marked for translation:\n" + "\n".join(offenders)


def test_the_unmarked_text_check_names_every_offender_and_passes_what_needs_no_words():
    source = """{% load i18n %}{% extends "base.html" %}{% block body_class %}surface-portal{% endblock %}
<h1>Shipments</h1>
<p>{% translate "Marked" %} · {{ count }} overdue</p>
<input type="search" placeholder="Name or email" aria-label="{% translate 'Search' %}">
<td data-label="Status">{% blocktranslate with n=count %}{{ n }} open{% endblocktranslate %}</td>
<button type="submit" name="action" value="save">{% translate "Save" %}</button><input type="submit" value="Send now">
<img alt="Company logo" src="/brand/logo"><a title="{{ site.product_name }}" href="/help/">?</a>
{% include "components/empty.html" with title="Nothing here" text=_("Marked text") action_url="?" %}
{% comment %}A note for developers{% endcomment %}{# and another #}<!-- and one in HTML -->
<script>const hint = "not page text";</script><style>.x::after { content: "nor this"; }</style>
<code>Authorization: Api-Key</code> <span>&nbsp;– 42 % ✓ ×</span> <a href="/x/">/api/v1/shipments</a> Baton
{% block content %}Left here{% endblock %}"""
    assert _unmarked("example.html", source) == [
        "example.html:2: Shipments",
        "example.html:3: overdue",
        "example.html:4: placeholder='Name or email'",
        "example.html:5: data-label='Status'",
        "example.html:6: value='Send now'",
        "example.html:7: alt='Company logo'",
        "example.html:8: include argument 'Nothing here'",
        "example.html:12: Left here",
    ]


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


def _in_transit_notification(acme, shipment, customer) -> MilestoneNotification:  # noqa: F811
    """An in-transit email notification of `shipment` to `customer`, due now (in the tenant's schema)."""
    subscription = subscription_create(
        customer_account=acme.customer_accounts[0],
        milestones=["in_transit"],
        channel="email",
        time_zone="Europe/Madrid",
        user=customer,
        actor=SYSTEM,
    )
    return MilestoneNotification.objects.create(
        subscription=subscription,
        shipment=shipment,
        milestone="in_transit",
        occurred_at=at(4),
        due_at=at(4),
        details={"label": "In transit"},
    )


def test_the_milestone_email_speaks_the_recipients_language(world, acme, places):  # noqa: F811
    customer = person(world, language="es")
    with schema_context(world.acme.schema):
        notification = _in_transit_notification(acme, ship(acme, places, "SP-MAIL-ES", pro_number="PRO-ES-1"), customer)
        subscription = notification.subscription
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


def _default_language(world, slug: str, language: str) -> None:
    """As the tenant's admin sets it on the settings page (a fresh row: the world's stays as it is)."""
    tenant = Tenant.objects.get(slug=getattr(world, slug).tenant.slug)
    with schema_context(tenant.schema_name):
        tenant_default_language_set(tenant=tenant, language=language, actor=SYSTEM)


def test_the_tenant_admin_sets_the_workspaces_default_language_on_the_portal_texts_page(world):
    admin = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    page = admin.get("/settings/portal-texts/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Workspace language" in page and '<option value="browser" selected>' in page and '<option value="de">Deutsch</option>' in page

    response = admin.post("/settings/portal-texts/", {"action": "language", "default_language": "de"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302 and response["Location"] == "/settings/portal-texts/"
    assert Tenant.objects.get(slug=world.acme.tenant.slug).default_language == "de"
    with schema_context(world.acme.schema):  # in the tenant's own audit log, where its admins read it
        event = AuditEvent.objects.get(action="tenant.default_language_changed")
        assert event.data == {"from": "", "to": "de"} and event.actor_email == world.acme.users["tenant_admin"].email
    # The texts were not touched, and the admin (who chose no language) now reads German too.
    page = admin.get("/settings/portal-texts/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="de">' in page and '<option value="de" selected>Deutsch</option>' in page

    refused = admin.post("/settings/portal-texts/", {"action": "language", "default_language": "fi"}, HTTP_ACCEPT_LANGUAGE="en")
    # said in the workspace's German now, as the admin chose no language of their own
    assert refused.status_code == 400 and "Wählen Sie eine der angebotenen Sprachen." in refused.content.decode()
    assert Tenant.objects.get(slug=world.acme.tenant.slug).default_language == "de"
    with pytest.raises(TenantError, match="'fi' is not offered here"):
        tenant_default_language_set(tenant=Tenant.objects.get(slug=world.acme.tenant.slug), language="fi", actor=SYSTEM)
    planner = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    assert planner.post("/settings/portal-texts/", {"action": "language", "default_language": "es"}).status_code == 403
    assert Tenant.objects.get(slug=world.acme.tenant.slug).default_language == "de"
    # "The browser's language" hands the choice back to each browser.
    assert admin.post("/settings/portal-texts/", {"action": "language", "default_language": "browser"}).status_code == 302
    assert Tenant.objects.get(slug=world.acme.tenant.slug).default_language == ""
    assert '<html lang="en' in admin.get("/settings/portal-texts/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_people_who_chose_no_language_read_their_workspaces_default_before_their_browsers(world):
    _default_language(world, "acme", "de")
    _default_language(world, "globex", "es")
    # A visitor with an English browser: each host in its own workspace's language.
    acme_page = host_client(world.acme.host).get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="de">' in acme_page and "Bei Acme Freight Hub anmelden" in acme_page
    globex = host_client(world.globex.host).get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="es">' in globex and "Iniciar sesión en Globex" in globex
    # A signed-in customer who chose nothing: the workspace's German, whatever the browser says.
    nobody = person(world)
    page = signed_in_client(world.acme.host, nobody, world.acme.schema).get("/shipments/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert '<html lang="de">' in page and ">Sendungen</h1>" in page

    # A person's own choice still wins: on their account, or a visitor's pick in the switcher.
    spanish = person(world, language="es")
    page = signed_in_client(world.acme.host, spanish, world.acme.schema).get("/shipments/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert '<html lang="es">' in page and ">Envíos</h1>" in page
    visitor = host_client(world.acme.host)
    visitor.post("/accounts/language/", {"language": "en", "next": "/accounts/login/"})
    assert "Sign in to Acme Freight Hub" in visitor.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    # The control: without a default, the browser decides again.
    _default_language(world, "acme", "")
    english = host_client(world.acme.host).get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="en' in english and "Sign in to Acme Freight Hub" in english


def test_mail_to_someone_who_chose_no_language_goes_out_in_the_workspaces_default(world, acme, places, django_capture_on_commit_callbacks):  # noqa: F811
    _default_language(world, "acme", "es")
    customer = person(world)  # chose nothing
    with schema_context(world.acme.schema):
        notification = _in_transit_notification(acme, ship(acme, places, "SP-MAIL-DEF", pro_number="PRO-DEF-1"), customer)
        subscription = notification.subscription
        message = milestone_email([notification])
        assert message is not None and message.subject.startswith("Envío SP-MAIL-DEF: En tránsito")
        # The recipient's own choice wins over the workspace's.
        User.objects.filter(pk=customer.pk).update(language="de")
        subscription.user.refresh_from_db()
        german = milestone_email([notification])
        assert german is not None and german.subject.startswith("Sendung SP-MAIL-DEF")

    # An invitation: the invitee has chosen nothing yet, so the workspace's language – not the inviter's.
    admin = signed_in_client(world.acme.host, world.acme.users["tenant_admin"], world.acme.schema)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post("/settings/users/", {"email": "nuevo@acme.test", "role": "planner"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    invitation = mail.outbox[-1]
    assert invitation.to == ["nuevo@acme.test"] and '<html lang="es">' in invitation.alternatives[0][0]


@pytest.mark.browser
def test_the_admin_switches_the_workspace_to_german_in_a_browser(world, live_port):  # noqa: F811
    """The setting where tenant admins find it, saved with one button; the pages turn German at
    once and still fit a phone's screen. Screenshots for people to look at."""
    base = f"http://{world.acme.host}:{live_port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US").new_page()
            sign_in(page, base, world.acme.users["tenant_admin"].email, PASSWORD, TOTP_SECRET)
            page.goto(f"{base}/settings/portal-texts/")
            expect(page.get_by_label("Default language")).to_have_value("browser")
            screenshot(page, "i18n-workspace-language")
            page.get_by_label("Default language").select_option("de")
            page.get_by_role("button", name="Save language").click()
            page.wait_for_load_state()
            assert page.evaluate("document.documentElement.lang") == "de"
            expect(page.locator("#id_default_language")).to_have_value("de")
            expect(page.locator(".toasts")).not_to_be_empty()
            for width in (1366, 390):
                page.set_viewport_size({"width": width, "height": 900})
                assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, f"wider than {width}px"
            screenshot(page, "i18n-workspace-language-de")
            browser.close()
        assert in_thread(lambda: Tenant.objects.get(slug=world.acme.tenant.slug).default_language) == "de"
    finally:
        in_thread(lambda: Tenant.objects.filter(slug=world.acme.tenant.slug).update(default_language=""))
