"""The shipment list's rows are worked out in Python once per page (`shipment_views._ListRows`)
instead of through template tags per row; a row must still read exactly as the tags printed it:
the link to the shipment, the references, status and mode in the viewer's language, the route, the
ETA or delivery and the created date in the language's short formats, the lateness verdict, the
exception and, for staff, the customer."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.template import engines
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from django_tenants.utils import schema_context

from logistics.models import StopKind
from logistics.services import StopInput, exception_open, tracking_event_record
from logistics.shipment_reads import ShipmentFilters, shipment_scope, shipments_page
from portal import shipment_views
from tests.conftest import host_client, signed_in_client
from tests.logistics.conftest import SYSTEM
from tests.portal.test_experience_api import key as api_key
from tests.portal.test_shipment_pages import acme, at, places, ship  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

# The row as the list's template printed it through tags and filters before the rows were
# prepared in Python: the oracle the prepared rows are held to.
TAGGED_ROW = """{% load i18n %}
{% translate "Status" as label_status %}{% translate "Route" as label_route %}{% translate "ETA vs promise" as label_eta %}{% translate "Exception" as label_exception %}{% translate "Created" as label_created %}{% translate "Customer" as label_customer %}{% translate "to" as word_to %}{% translate "No ETA yet" as no_eta %}{% translate "Open" as word_open %}{% translate "None" as word_none %}
{% for item in rows %}
  {% with shipment=item.shipment row=item.row %}
  <tr{% if row.has_open_exception %} class="shipment-row--exception"{% endif %}>
    <td class="cell-main">
      <a href="{% url 'portal:shipment' shipment.reference %}">{{ shipment.reference }}</a>
      {% if item.references %}<span class="cell-sub">{% for label, value in item.references %}{{ label }} {{ value }}{% if not forloop.last %} · {% endif %}{% endfor %}</span>{% endif %}
    </td>
    <td data-label="{{ label_status }}"><span class="badge badge--{{ item.status_tone }}">{% translate shipment.get_status_display %}</span><span class="cell-sub">{% translate shipment.get_mode_display %}</span></td>
    <td data-label="{{ label_route }}">{{ shipment.origin.name|default:"—" }} <span aria-hidden="true">→</span><span class="visually-hidden">{{ word_to }}</span> {{ shipment.destination.name|default:"—" }}</td>
    <td data-label="{{ label_eta }}" class="nowrap">
      {% if item.delivered %}
        <time datetime="{{ shipment.delivered_at|date:'c' }}">{{ shipment.delivered_at|date:"SHORT_DATETIME_FORMAT" }}</time>
      {% elif shipment.eta %}
        <time datetime="{{ shipment.eta|date:'c' }}">{{ shipment.eta|date:"SHORT_DATETIME_FORMAT" }}</time>
      {% else %}<span class="muted">{{ no_eta }}</span>{% endif %}
      <span class="cell-sub"><span class="badge badge--{{ item.lateness.tone }}">{{ item.lateness.text }}</span></span>
    </td>
    <td data-label="{{ label_exception }}">{% if row.has_open_exception %}<span class="badge badge--danger"><span aria-hidden="true">⚠</span> {{ word_open }}</span>{% else %}<span class="muted">{{ word_none }}</span>{% endif %}</td>
    <td data-label="{{ label_created }}" class="nowrap"><time datetime="{{ shipment.created_at|date:'c' }}">{{ shipment.created_at|date:"SHORT_DATE_FORMAT" }}</time></td>
    {% if is_staff %}<td data-label="{{ label_customer }}">{{ shipment.customer_account.name }}</td>{% endif %}
  </tr>
  {% endwith %}
{% endfor %}"""


def _squeezed(html: str) -> str:
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", html)).strip()


def _body_rows(page: str) -> str:
    return _squeezed(page.split("<tbody>", 1)[1].split("</tbody>", 1)[0])


@pytest.fixture
def varied(acme, places):  # noqa: F811
    """Rows that take every branch: delivered late with all five references and an open
    exception; on its way with an ETA; without ETA, promise or places; a reference that
    `reverse` has to quote; another account's (staff only)."""
    origin, destination = places
    delivered = ship(
        acme,
        places,
        "LR-DELIVERED",
        po_number="PO-77",
        bol_number="BOL<9>",
        pro_number="PRO-1",
        container_number="MSCU1234567",
        load_number="L-5",
        eta=at(21),
    )
    tracking_event_record(shipment=delivered, status="delivered", occurred_at=at(26.5), source="api", stop_sequence=2, actor=SYSTEM)
    exception_open(type="delay", reason="late", shipment=delivered, actor=SYSTEM)
    moving = ship(acme, places, "LR-MOVING", po_number="PO-78", eta=at(21), mode="ltl")
    tracking_event_record(shipment=moving, status="in_transit", occurred_at=at(4), source="api", eta=at(23.25), actor=SYSTEM)
    ship(acme, places, "LR-BARE", stops=[])
    ship(acme, places, "LR 7+ü", stops=[StopInput(1, StopKind.PICKUP, origin), StopInput(2, StopKind.DELIVERY, destination)])
    ship(acme, places, "LR-THEIRS", account=1, eta=at(40))


@pytest.mark.parametrize("language", ["en", "de", "es"])
@pytest.mark.parametrize("role", ["customer", "planner"])
def test_each_row_reads_as_the_template_tags_printed_it(world, acme, varied, role, language):  # noqa: F811
    user = acme.users[role]
    page = signed_in_client(acme.host, user, acme.schema).get("/shipments/", HTTP_ACCEPT_LANGUAGE=language)
    assert page.status_code == 200
    with schema_context(acme.schema), translation.override(language):
        rows = shipments_page(shipment_scope(user), ShipmentFilters(), limit=shipment_views.PER_PAGE).rows
        tagged = (
            engines["django"]
            .from_string(TAGGED_ROW)
            .render({"rows": [shipment_views._row_view(row) for row in rows], "is_staff": role != "customer"})
        )
    assert len(rows) == (5 if role != "customer" else 4)
    assert _body_rows(page.content.decode()) == _squeezed(tagged)


def test_a_german_row_has_german_labels_dates_and_verdicts(world, acme, varied):  # noqa: F811
    page = signed_in_client(acme.host, acme.users["customer"], acme.schema).get("/shipments/", HTTP_ACCEPT_LANGUAGE="de")
    rows = _body_rows(page.content.decode())
    delivered = rows.split("LR-DELIVERED</a>", 1)[1].split("</tr>", 1)[0]
    assert '<tr class="shipment-row--exception"><td class="cell-main"><a href="/shipments/LR-DELIVERED/">' in rows
    # The references escaped, in the order PO, BOL, PRO, container, load, with German labels.
    assert "Bestellnr. PO-77 · Frachtbrief BOL&lt;9&gt; · PRO PRO-1 · " in delivered and " L-5</span>" in delivered
    assert '<span class="badge badge--ok">Zugestellt</span><span class="cell-sub">Komplettladung (FTL)</span>' in delivered
    assert 'Chicago DC <span aria-hidden="true">→</span>' in delivered
    assert '<time datetime="2026-03-03T16:30:00+00:00">03.03.2026 16:30</time>' in delivered  # day first, 24-hour clock
    assert "zu spät zugestellt" in delivered and '<span aria-hidden="true">⚠</span> Offen</span>' in delivered
    assert '<time datetime="2026-' in delivered and "a.m." not in rows and "p.m." not in rows
    bare = rows.split("LR-BARE</a>", 1)[1].split("</tr>", 1)[0]
    assert "— <span" in bare and "</span> —</td>" in bare  # no places
    assert '<span class="muted">Noch keine Ankunftszeit</span>' in bare and '<span class="muted">Keine</span>' in bare


def test_a_reference_that_needs_quoting_links_as_reverse_quotes_it(world, acme, varied):  # noqa: F811
    page = signed_in_client(acme.host, acme.users["customer"], acme.schema).get("/shipments/").content.decode()
    with schema_context(acme.schema):
        quoted = reverse("portal:shipment", args=["LR 7+ü"])
    assert quoted == "/shipments/LR%207+%C3%BC/"
    assert f'<a href="{quoted}">LR 7+ü</a>' in page
    assert signed_in_client(acme.host, acme.users["customer"], acme.schema).get(quoted).status_code == 200


def _queries(client, path: str, **headers) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, **headers)
        assert response.status_code == 200, path
        b"".join(response.streaming_content) if response.streaming else response.content
    return len(captured.captured_queries)


def test_a_longer_page_makes_no_more_queries_on_any_list(world, acme, varied):  # noqa: F811
    """The lists leave the columns no row reads in the database (`shipment_reads.LIST_UNREAD`):
    a row that read one would cost a query per row, and this count would grow with the page."""
    customer = signed_in_client(acme.host, acme.users["customer"], acme.schema)
    planner = signed_in_client(acme.host, acme.users["planner"], acme.schema)
    key = api_key(acme)
    api = host_client(acme.host)
    for client, one, several in (
        (customer, "/shipments/?mode=ltl", "/shipments/?mode=ftl"),
        (planner, "/shipments/?mode=ltl", "/shipments/?mode=ftl"),
        (customer, "/shipments/export.csv?mode=ltl", "/shipments/export.csv?mode=ftl"),
        (planner, "/shipments/export.csv?mode=ltl", "/shipments/export.csv?mode=ftl"),
    ):
        assert _queries(client, one) == _queries(client, several), several
    auth = {"HTTP_AUTHORIZATION": f"Api-Key {key}"}
    assert len(api.get("/api/v1/shipments?mode=ftl", **auth).json()["results"]) == 3
    assert _queries(api, "/api/v1/shipments?mode=ltl", **auth) == _queries(api, "/api/v1/shipments?mode=ftl", **auth)
