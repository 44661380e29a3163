"""Files of several interchanges, and interchanges from or to the wrong party.

A file holding interchanges back to back becomes one inbound event per interchange (each with its
own `x12:<sender>:<ISA13>`, deduplicated and answered with its own 997), and any text between or
after them an event of its own, quarantined saying where it was – through the upload page, the
API and (in test_edi_sftp) SFTP. An interchange whose ISA sender or receiver is not the partner's
configured ids is quarantined with the reason and gets no 997. A partner moving from another system
continues its control numbers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from accounts.services import api_key_create
from connectors.edi import read
from connectors.edi_transport import EdiPartnerInput, EdiPartnerInvalid, edi_partner_configure, edi_receive
from connectors.inbox import event_dispatch, inbound_replay
from connectors.models import EdiAcknowledgement, EdiControlNumber, InboundEvent
from tests.conftest import host_client, signed_in_client
from tests.connectors.edi.fixtures import ISA, RESPONSE_990, STATUS_214, envelope
from tests.connectors.test_edi_partner_page import SETTINGS
from tests.connectors.test_edi_partners import ADMIN, PARTNER, partner_made

in_db = pytest.mark.django_db  # not the browser test: its writes must be committed for the web server

FIRST = envelope(STATUS_214)
SECOND = envelope(RESPONSE_990, functional_id="GF").replace("000000101", "000000102")
# The third uses other delimiters (| and !, newline after each segment): each ISA brings its own.
THIRD = envelope(STATUS_214).replace("000000101", "000000103").replace("*", "|").replace("~", "!")


def interchange_from(sender: str = "SHIPPERCO", receiver: str = "BATON", qualifier: str = "ZZ", control: str = "000000101") -> str:
    isa = ISA.replace("*ZZ*SHIPPERCO      *", f"*{qualifier}*{sender:<15}*").replace("*ZZ*BATON          *", f"*ZZ*{receiver:<15}*")
    return envelope(STATUS_214, isa=isa).replace("000000101", control)


# --- receiving a file of several parts ------------------------------------------------------------


@in_db
def test_each_interchange_of_a_file_is_its_own_event_answered_on_its_own_and_the_text_between_is_quarantined(world):
    with schema_context(world.acme.schema):
        partner = partner_made()
        text = FIRST + "GARBAGE BETWEEN\n" + SECOND
        received = edi_receive(connection=partner.connection, data=text.encode(), channel="upload", file_name="two.edi")

        assert [(part.event.external_id, part.outside, part.duplicate) for part in received.parts] == [
            ("x12:SHIPPERCO:000000101", False, False),
            (received.parts[1].event.external_id, True, False),
            ("x12:SHIPPERCO:000000102", False, False),
        ]
        assert received.parts[1].event.external_id.startswith("sha256:") and not received.duplicate
        events = [InboundEvent.objects.get(pk=part.event.pk) for part in received.parts]
        assert [event.body for event in events] == [FIRST.rstrip("\n"), "GARBAGE BETWEEN", SECOND.rstrip("\n")]
        assert events[1].headers["X-Baton-File-Part"] == "2 of 3" and events[1].headers["X-Baton-File"] == "two.edi"

        outcomes = [event_dispatch(event.pk) for event in events]

        assert outcomes == ["delivered", "quarantined", "delivered"]
        first, between, second = (InboundEvent.objects.get(pk=event.pk) for event in events)
        assert between.error.startswith("text outside any interchange (part 2 of 3 of the file, bytes ")
        assert "'GARBAGE BETWEEN'" in between.error and between.acknowledgement == ""
        assert [item["event_type"] for item in first.canonical] == ["shipment.milestone"] * 3
        assert [item["event_type"] for item in second.canonical] == ["edi.990"]
        answers = {read(event.acknowledgement).interchanges[0].control_number: event for event in (first, second)}
        assert sorted(answers) == ["000000001", "000000002"]  # each its own 997, numbered on
        assert "AK1*QM*7001~" in first.acknowledgement and "AK1*GF*7001~" in second.acknowledgement
        assert EdiAcknowledgement.objects.filter(partner=partner).count() == 2


@in_db
def test_a_resent_file_is_a_duplicate_part_by_part_and_a_new_interchange_in_it_is_not(world):
    with schema_context(world.acme.schema):
        connection = partner_made().connection
        first = edi_receive(connection=connection, data=FIRST + SECOND + "tail", channel="sftp")
        again = edi_receive(connection=connection, data=FIRST + SECOND + "tail", channel="sftp")
        assert again.duplicate and [part.event.pk for part in again.parts] == [part.event.pk for part in first.parts]
        grown = edi_receive(connection=connection, data=SECOND + THIRD, channel="sftp")
        assert [part.duplicate for part in grown.parts] == [True, False]
        assert grown.parts[0].event.pk == first.parts[1].event.pk
        assert InboundEvent.objects.filter(connection=connection).count() == 4


@in_db
def test_a_file_of_one_interchange_is_kept_whole_byte_for_byte(world):
    with schema_context(world.acme.schema):
        connection = partner_made().connection
        text = "\ufeff" + FIRST + "\n\n"
        received = edi_receive(connection=connection, data=text, channel="upload")
        assert len(received.parts) == 1 and received.event.body == text and received.event.headers == {}


@in_db
def test_the_upload_page_shows_every_event_a_file_became(world):
    with schema_context(world.acme.schema):
        partner_made()
    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    upload = SimpleUploadedFile("batch.edi", (FIRST + "NOT EDI\n" + SECOND).encode())

    answer = client.post("/connections/shipperco/edi/upload/", {"file": upload})

    assert answer.status_code == 302
    with schema_context(world.acme.schema):
        events = list(InboundEvent.objects.filter(connection__key="shipperco").order_by("pk"))
    assert answer["Location"] == "/connections/shipperco/edi/upload/?" + "&".join(f"event={event.pk}" for event in events)
    page = client.get(answer["Location"]).content.decode()
    assert "The file holds 2 interchanges: stored as events" in page and "the text outside them is event" in page
    assert "The file became 3 events" in page and all(f"Event #{event.pk}" in page for event in events)
    assert "part 2 of 3 of batch.edi, bytes" in page and 'http-equiv="refresh"' in page
    with schema_context(world.acme.schema):
        assert [event_dispatch(event.pk) for event in events] == ["delivered", "quarantined", "delivered"]
    page = client.get(answer["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in page and page.count('<h2 id="ack-title-') == 2 and "text outside any interchange" in page


@in_db
def test_the_api_lists_an_event_per_interchange(world):
    with schema_context(world.acme.schema):
        partner_made()
        _api_key, secret = api_key_create(name="edi", scopes=["connections:write"], actor=world.acme.users["tenant_admin"])
    answer = host_client(world.acme.host).post(
        "/api/v1/connections/shipperco/interchanges",
        data=FIRST + SECOND,
        content_type="application/edi-x12",
        HTTP_AUTHORIZATION=f"Api-Key {secret}",
    )
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert [(item["external_id"], item["duplicate"], item["outside"]) for item in body["events"]] == [
        ("x12:SHIPPERCO:000000101", False, False),
        ("x12:SHIPPERCO:000000102", False, False),
    ]
    assert body["event_id"] == body["events"][0]["event_id"] and body["duplicate"] is False


# --- the sender and receiver must be the partner's ------------------------------------------------


@in_db
@pytest.mark.parametrize(
    ("interchange", "reason"),
    [
        (interchange_from(sender="EVILCO"), "ISA06 is 'EVILCO' but partner Partner shipperco sends as 'SHIPPERCO'"),
        (interchange_from(qualifier="01"), "ISA05 is '01' but partner Partner shipperco sends with qualifier 'ZZ'"),
        (interchange_from(receiver="SOMEONEELSE"), "ISA08 is 'SOMEONEELSE' but partner Partner shipperco addresses us as 'BATON'"),
    ],
)
def test_an_interchange_not_from_the_partner_to_us_is_quarantined_and_gets_no_997(world, interchange, reason):
    with schema_context(world.acme.schema):
        partner = partner_made()
        received = edi_receive(connection=partner.connection, data=interchange, channel="api")

        assert event_dispatch(received.event.pk) == "quarantined"

        event = InboundEvent.objects.get(pk=received.event.pk)
        assert event.error == f"{reason}: no 997 was sent"
        assert event.error_pointer.startswith("interchange 1, segment 1 (ISA), element 0")
        assert event.acknowledgement == "" and event.canonical == []
        assert not EdiAcknowledgement.objects.exists() and not EdiControlNumber.objects.filter(partner=partner).exists()


@in_db
def test_a_refused_interchange_fixed_and_replayed_is_taken_and_answered(world):
    with schema_context(world.acme.schema):
        partner = partner_made(wants_997=True)
        received = edi_receive(connection=partner.connection, data=interchange_from(sender="SHIPPER-CO"), channel="upload")
        assert event_dispatch(received.event.pk) == "quarantined"
        inbound_replay(event=received.event, actor=ADMIN, body=interchange_from())
        assert event_dispatch(received.event.pk) == "delivered"
        event = InboundEvent.objects.get(pk=received.event.pk)
        assert read(event.acknowledgement).interchanges[0].receiver_id == "SHIPPERCO"
        assert EdiAcknowledgement.objects.get(event=event).status == "pending"


@in_db
def test_a_partner_that_wants_no_997_is_still_checked(world):
    with schema_context(world.acme.schema):
        partner = partner_made(wants_997=False)
        received = edi_receive(connection=partner.connection, data=interchange_from(sender="EVILCO"), channel="upload")
        assert event_dispatch(received.event.pk) == "quarantined"
        assert InboundEvent.objects.get(pk=received.event.pk).acknowledgement == ""


# --- continuing a partner's control numbers -------------------------------------------------------


@in_db
def test_a_migrating_partner_continues_its_control_numbers_and_never_goes_back(world):
    with schema_context(world.acme.schema):
        data = EdiPartnerInput(**{**vars(PARTNER), "next_interchange_control_number": 4711, "next_group_control_number": 88})
        partner = partner_made()
        partner = edi_partner_configure(connection=partner.connection, data=data, actor=ADMIN)
        received = edi_receive(connection=partner.connection, data=FIRST, channel="upload")
        event_dispatch(received.event.pk)
        answer = read(InboundEvent.objects.get(pk=received.event.pk).acknowledgement).interchanges[0]
        assert (answer.control_number, answer.groups[0].control_number) == ("000004711", "88")

        with pytest.raises(EdiPartnerInvalid) as refused:
            edi_partner_configure(
                connection=partner.connection,
                data=EdiPartnerInput(**{**vars(PARTNER), "next_interchange_control_number": 4711}),
                actor=ADMIN,
            )
        [problem] = refused.value.problems
        assert problem.pointer == "/next_interchange_control_number"
        assert problem.reason == (
            "000004711 was used already: the last interchange (ISA13) control number Baton wrote to this partner is 000004711, "
            "so the next can be 000004712 or higher"
        )
        assert EdiControlNumber.objects.get(partner=partner, level="ISA").last == 4711
        edi_partner_configure(
            connection=partner.connection, data=EdiPartnerInput(**{**vars(PARTNER), "next_interchange_control_number": 9000}), actor=ADMIN
        )
        assert EdiControlNumber.objects.get(partner=partner, level="ISA").last == 8999


@in_db
def test_a_new_partner_set_up_with_control_numbers_starts_there_and_bad_numbers_are_refused_on_their_field(world):
    from connectors.models import Connection

    with schema_context(world.acme.schema):
        connection = Connection.objects.create(
            key="carrier-x-edi", name="Carrier X EDI", kind="edi_partner", transport="sftp", base_url="sftp://127.0.0.1:2222"
        )
    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    refused = client.post(f"/connections/{connection.key}/edi/partner/", {**SETTINGS, "next_interchange_control_number": "1000000000"})
    assert refused.status_code == 400 and "Ensure this value is less than or equal to 999999999." in refused.content.decode()
    saved = client.post(f"/connections/{connection.key}/edi/partner/", {**SETTINGS, "next_interchange_control_number": "120"})
    assert saved.status_code == 302
    page = client.get(f"/connections/{connection.key}/").content.decode()
    assert "ISA13 <code>000000119</code>" in page
    again = client.post(f"/connections/{connection.key}/edi/partner/", {**SETTINGS, "next_interchange_control_number": "12"})
    assert again.status_code == 400 and "000000012 was used already" in again.content.decode()


# --- in the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(tmp_path_factory, django_db_setup):
    from tests.processes import web_server

    with web_server(tmp_path_factory.mktemp("edi-interchanges-web") / "web.log") as port:
        yield port


@pytest.mark.browser
def test_a_planner_uploads_a_file_of_several_interchanges_and_sees_each_one(world, live_port, committed, tmp_path):
    from playwright.sync_api import sync_playwright

    from connectors.models import Connection
    from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
    from tests.conftest import PASSWORD

    with schema_context(world.acme.schema):
        partner_made(key="batch-partner")

    def dispatch_all() -> list[str]:
        from django.db import connections

        try:
            with schema_context(world.acme.schema):
                events = InboundEvent.objects.filter(connection__key="batch-partner").order_by("pk")
                return [event_dispatch(pk) for pk in events.values_list("pk", flat=True)]
        finally:
            connections.close_all()

    path = tmp_path / "batch.edi"
    path.write_text(FIRST + "END OF BATCH\n" + SECOND)
    base = f"http://{world.acme.host}:{live_port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
            sign_in(page, base, world.acme.users["planner"].email, PASSWORD)
            page.goto(f"{base}/connections/batch-partner/edi/upload/")
            page.set_input_files("#id_file", str(path))
            page.get_by_role("button", name="Upload and read").click()
            page.wait_for_load_state()
            with ThreadPoolExecutor(1) as pool:  # the ORM refuses to run inside Playwright's event loop
                assert pool.submit(dispatch_all).result(60) == ["delivered", "quarantined", "delivered"]
            page.reload()
            text = page.locator("main").inner_text()
            page.add_style_tag(content=".toasts{display:none!important}")
            screenshot(page, "edi-upload-several-interchanges")
            browser.close()
        assert "The file became 3 events" in text and "text outside any interchange (part 2 of 3" in text
        assert text.count("The 997") == 2
    finally:
        with schema_context(world.acme.schema):
            InboundEvent.objects.filter(connection__key="batch-partner").delete()
            Connection.objects.filter(key="batch-partner").delete()


# --- a broken envelope refuses what it holds ------------------------------------------------------


@in_db
@pytest.mark.parametrize(
    ("body", "answer", "error"),
    [
        (
            FIRST.replace("IEA*1*000000101", "IEA*1*000000999"),
            "TA1*000000101*",
            "interchange 1 was refused with a TA1: IEA02 control number '000000999' does not match ISA13 '000000101'",
        ),
        (FIRST[: FIRST.index("IEA*")], "TA1*000000101*", "interchange 1 was refused with a TA1: Interchange 000000101 has no IEA"),
        (FIRST.replace("GE*1*", "GE*7*"), "AK9*R*7*1*1*5~", "functional group 7001 was rejected in the 997: GE01 says 7"),
    ],
    ids=["iea-control-number", "iea-missing", "ge-count"],
)
def test_an_interchange_or_group_with_a_broken_envelope_is_refused_whole_answered_and_applies_nothing(world, body, answer, error):
    with schema_context(world.acme.schema):
        partner = partner_made(wants_997=True)
        received = edi_receive(connection=partner.connection, data=body, channel="api")

        assert event_dispatch(received.event.pk) == "quarantined"  # at once: not retried five times

        event = InboundEvent.objects.get(pk=received.event.pk)
        assert event.error.startswith(error), event.error
        assert event.canonical == [] and answer in event.acknowledgement
        if answer.startswith("TA1"):
            ta1 = read(event.acknowledgement).interchanges[0]
            assert not ta1.errors and not ta1.groups and ta1.receiver_id == "SHIPPERCO"
            assert ta1.acknowledgements[0].element(4) == "R" and ta1.acknowledgements[0].element(5) in ("001", "023")
        inbound_replay(event=event, actor=ADMIN, body=FIRST)  # the operator mends it: then it is taken
        assert event_dispatch(received.event.pk) == "delivered"
