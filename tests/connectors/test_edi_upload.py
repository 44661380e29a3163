"""Uploading X12 for a partner: the API (raw body, 202 with the event id, a resent interchange a
duplicate, refusals as problem+json saying why) and the staff page (a file in, then the event's
status, its problems with their positions and the 997 once dispatched), plus the partner form.

The routes are mounted here by this module's own urlconf until connectors/urls.py and
connectors/api/urls.py carry them."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import include, path
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from config import urls_tenant
from connectors import edi_views
from connectors import urls as connectors_urls
from connectors.api import edi as edi_api
from connectors.edi_transport import EdiPartnerInvalid, edi_partner_configure
from connectors.forms import EdiPartnerForm
from connectors.inbox import event_dispatch
from connectors.models import Connection, EdiPartner, InboundEvent
from tests.conftest import host_client, signed_in_client
from tests.connectors.edi.fixtures import STATUS_214, envelope
from tests.connectors.test_edi_partners import partner_made

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _edi_routes(settings):
    settings.ROOT_URLCONF = __name__


urlpatterns = [
    path(
        "connections/",
        include(([path("<slug:key>/edi/upload/", edi_views.edi_upload, name="edi_upload"), *connectors_urls.urlpatterns], "connectors")),
    ),
    path("api/v1/connections/<slug:key>/interchanges", edi_api.InterchangeReceive.as_view(), name="api-connection-interchanges"),
    *[pattern for pattern in urls_tenant.urlpatterns if str(getattr(pattern, "pattern", "")) != "connections/"],
]

INTERCHANGE = envelope(STATUS_214)
BROKEN = envelope(STATUS_214).replace("AT7*X1*NS***20260302*141530*CS~", "AT7*X1*NS***20260399*141530*CS~")


def _key(world, scope: str = "connections:write") -> str:
    with schema_context(world.acme.schema):
        _api_key, secret = api_key_create(name="edi", scopes=[scope], actor=world.acme.users["tenant_admin"])
    return secret


def _post(world, secret: str, key: str, body: bytes | str, content_type: str = "application/edi-x12", **extra):
    client = host_client(world.acme.host)
    return client.post(
        f"/api/v1/connections/{key}/interchanges", data=body, content_type=content_type, HTTP_AUTHORIZATION=f"Api-Key {secret}", **extra
    )


def test_the_api_stores_a_raw_interchange_and_answers_a_resent_one_with_the_first_id(world):
    with schema_context(world.acme.schema):
        partner_made()
    secret = _key(world)

    first = _post(world, secret, "shipperco", INTERCHANGE)
    again = _post(world, secret, "shipperco", INTERCHANGE, content_type="text/plain")

    assert first.status_code == 202, first.content
    assert first.json()["duplicate"] is False
    event_id = first.json()["event_id"]
    assert (again.status_code, again.json()) == (
        202,
        {
            "event_id": event_id,
            "duplicate": True,
            "events": [{"event_id": event_id, "external_id": "x12:SHIPPERCO:000000101", "duplicate": True, "outside": False}],
        },
    )
    with schema_context(world.acme.schema):
        event = InboundEvent.objects.get(pk=first.json()["event_id"])
        assert (event.channel, event.external_id, event.body) == ("api", "x12:SHIPPERCO:000000101", INTERCHANGE)
        assert event_dispatch(event.pk) == "delivered"


def test_the_api_takes_json_for_clients_that_only_send_json(world):
    with schema_context(world.acme.schema):
        partner_made()
    answer = _post(world, _key(world), "shipperco", json.dumps({"interchange": INTERCHANGE}), content_type="application/json")
    assert answer.status_code == 202, answer.content
    with schema_context(world.acme.schema):
        assert InboundEvent.objects.get(pk=answer.json()["event_id"]).body == INTERCHANGE


@pytest.mark.parametrize(
    ("case", "status", "kind", "detail"),
    [
        ("unknown", 404, "not-found", "There is no connection 'nobody'"),
        ("not_a_partner", 409, "edi-partner-missing", "has no EDI partner settings"),
        ("disabled", 403, "connection-disabled", "is disabled: nothing is accepted"),
        ("empty", 422, "edi-unreadable", "The body is empty"),
        ("binary", 422, "edi-unreadable", "NUL byte at offset 3"),
        ("xml", 415, "unsupported-media-type", "application/xml"),
        ("too_large", 413, "edi-too-large", "this endpoint takes interchanges of at most 100 bytes"),
        ("read_only_key", 403, "permission-denied", ""),
    ],
)
def test_the_api_refuses_with_a_problem_saying_why(world, monkeypatch, case, status, kind, detail):
    with schema_context(world.acme.schema):
        partner = partner_made()
        Connection.objects.create(key="plain-tms", name="TMS", kind="tms", base_url="https://tms.example")
        if case == "disabled":
            Connection.objects.filter(pk=partner.connection_id).update(enabled=False)
    if case == "too_large":
        monkeypatch.setattr(edi_api, "EDI_MAX_BYTES", 100)
    key = {"unknown": "nobody", "not_a_partner": "plain-tms"}.get(case, "shipperco")
    body = {"empty": "", "binary": b"ISA\x00"}.get(case, INTERCHANGE)
    content_type = "application/xml" if case == "xml" else "application/edi-x12"
    secret = _key(world, "connections:read" if case == "read_only_key" else "connections:write")

    answer = _post(world, secret, key, body, content_type=content_type)

    assert answer.status_code == status, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"].endswith("/" + kind) and detail in problem["detail"]
    with schema_context(world.acme.schema):
        assert not InboundEvent.objects.exists()


def test_a_planner_uploads_a_file_and_sees_its_problems_with_positions_and_the_997(world):
    with schema_context(world.acme.schema):
        partner_made()
    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    upload = SimpleUploadedFile("status.edi", BROKEN.encode(), content_type="application/octet-stream")

    answer = client.post("/connections/shipperco/edi/upload/", {"file": upload})

    assert answer.status_code == 302
    with schema_context(world.acme.schema):
        event = InboundEvent.objects.get(connection__key="shipperco")
    assert answer["Location"] == f"/connections/shipperco/edi/upload/?event={event.pk}"
    waiting = client.get(answer["Location"]).content.decode()
    assert f"Event #{event.pk}" in waiting and "Being read; this page refreshes by itself." in waiting
    assert 'http-equiv="refresh"' in waiting and "Stored as event" in waiting

    with schema_context(world.acme.schema):
        assert event_dispatch(event.pk) == "quarantined"  # its only set is rejected; the 997 says so
    page = client.get(answer["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in page and "Quarantined: nothing could be taken from it" in page
    assert "Problems found" in page
    assert "interchange 1, segment 20 (AT7), segment 18 of its transaction set, element 05, byte 518" in page
    assert "AT705 &#x27;20260399&#x27; is not a valid calendar date" in page and "element.invalid_date" in page
    assert "The 997" in page and "AK5*R*" in page and "997_000000001.edi, written to outbound/ at the next poll" in page


def test_an_uploaded_file_sent_again_is_not_stored_twice(world):
    with schema_context(world.acme.schema):
        partner_made()
    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    client.post("/connections/shipperco/edi/upload/", {"interchange": INTERCHANGE})
    answer = client.post("/connections/shipperco/edi/upload/", {"interchange": INTERCHANGE}, follow=True)
    assert "was received before, as event" in answer.content.decode()
    with schema_context(world.acme.schema):
        assert InboundEvent.objects.count() == 1


def test_the_upload_form_says_what_is_wrong(world):
    with schema_context(world.acme.schema):
        partner_made()
    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    nothing = client.post("/connections/shipperco/edi/upload/", {})
    both = client.post(
        "/connections/shipperco/edi/upload/", {"interchange": INTERCHANGE, "file": SimpleUploadedFile("a.edi", INTERCHANGE.encode())}
    )
    binary = client.post("/connections/shipperco/edi/upload/", {"file": SimpleUploadedFile("a.bin", b"\x00\x01")})
    assert nothing.status_code == both.status_code == binary.status_code == 400
    assert "Choose an interchange file, or paste one." in nothing.content.decode()
    assert "Choose a file or paste an interchange, not both." in both.content.decode()
    assert "it is binary, not an X12 interchange" in binary.content.decode()
    with schema_context(world.acme.schema):
        assert not InboundEvent.objects.exists()


def test_staff_who_do_not_edit_connections_see_the_page_but_cannot_upload(world):
    with schema_context(world.acme.schema):
        partner_made()
    client = signed_in_client(world.acme.host, world.acme.users["dispatcher"], world.acme.schema)
    page = client.get("/connections/shipperco/edi/upload/")
    assert page.status_code == 200 and "Tenant admins and planners upload interchanges." in page.content.decode()
    assert client.post("/connections/shipperco/edi/upload/", {"interchange": INTERCHANGE}).status_code == 403
    with schema_context(world.acme.schema):
        assert not InboundEvent.objects.exists()


def test_the_upload_page_of_a_connection_that_is_no_edi_partner_is_not_found(world):
    with schema_context(world.acme.schema):
        Connection.objects.create(key="plain-tms", name="TMS", kind="tms", base_url="https://tms.example")
    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    assert client.get("/connections/plain-tms/edi/upload/").status_code == 404


def test_the_partner_form_round_trips_the_settings_and_takes_back_the_services_problems(world):
    with schema_context(world.acme.schema):
        partner = partner_made()
        form = EdiPartnerForm.for_partner(partner)
        data = {name: value for name, value in form.initial.items() if value is not False}
        bound = EdiPartnerForm({**data, "our_id": "BATONPROD", "segment_terminator": "*"})
        assert bound.is_valid(), bound.errors
        with pytest.raises(EdiPartnerInvalid) as refused:
            edi_partner_configure(connection=partner.connection, data=bound.partner_input(), actor=world.acme.users["tenant_admin"])
        bound.add_problems(refused.value.problems)
        assert "separators must be distinct" in bound.non_field_errors()[0]
        fixed = EdiPartnerForm({**data, "our_id": "BATONPROD"})
        assert fixed.is_valid()
        edi_partner_configure(connection=partner.connection, data=fixed.partner_input(), actor=world.acme.users["tenant_admin"])
        assert EdiPartner.objects.get(pk=partner.pk).our_id == "BATONPROD"
        assert EdiPartnerForm.for_partner(None).initial["inbound_folder"] == "inbound"
