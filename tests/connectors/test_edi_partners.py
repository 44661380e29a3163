"""EDI trading partners: settings that say how we write to them, control numbers from the database
that two workers never share, interchanges received into the inbox once, and the 997 answering
them written with the partner's settings (and queued for SFTP partners)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.db import transaction as db_transaction
from django_tenants.utils import schema_context

from connectors.edi import parse, read
from connectors.edi_transport import (
    CONTROL_NUMBER_MAX,
    EdiControlNumbers,
    EdiPartnerInput,
    EdiPartnerInvalid,
    EdiRefused,
    edi_partner_configure,
    edi_receive,
)
from connectors.inbox import event_dispatch, inbound_replay
from connectors.models import Connection, EdiAcknowledgement, EdiControlNumber, EdiPartner, InboundEvent
from governance.models import AuditEvent
from governance.services import Actor
from tests.connectors.edi.fixtures import ISA, STATUS_214, envelope

ADMIN = Actor.system("tests-edi")
PARTNER = EdiPartnerInput(their_qualifier="ZZ", their_id="SHIPPERCO", our_qualifier="ZZ", our_id="BATON", usage="T")


def partner_made(key: str = "shipperco", transport: str = "sftp", **options) -> EdiPartner:
    """An EDI partner connection in the current schema, set up through the service."""
    connection = Connection.objects.create(
        key=key, name=f"Partner {key}", kind="edi_partner", transport=transport, base_url="sftp://edi.partner.example:22"
    )
    data = EdiPartnerInput(**{**vars(PARTNER), **options})
    return edi_partner_configure(connection=connection, data=data, actor=ADMIN)


@pytest.mark.django_db
def test_partner_setup_makes_the_connection_read_x12_and_is_audited(world):
    with schema_context(world.acme.schema):
        partner = partner_made()
        connection = Connection.objects.get(key="shipperco")
        assert connection.inbound_mapper == "x12"
        assert (partner.their_id, partner.our_id, partner.version, partner.wants_997) == ("SHIPPERCO", "BATON", "00401", True)
        audit = AuditEvent.objects.filter(action="connection.edi_partner_created").latest("pk")
        assert audit.data["their_id"] == "SHIPPERCO"
        changed = edi_partner_configure(
            connection=connection, data=EdiPartnerInput(**{**vars(PARTNER), "our_id": "BATONPROD"}), actor=ADMIN
        )
        assert changed.pk == partner.pk and EdiPartner.objects.get(pk=partner.pk).our_id == "BATONPROD"


@pytest.mark.django_db
def test_partner_settings_that_could_not_be_written_are_refused_with_every_problem(world):
    with schema_context(world.acme.schema):
        connection = Connection.objects.create(key="bad-partner", name="Bad", kind="edi_partner", transport="sftp", base_url="sftp://x:22")
        data = EdiPartnerInput(
            **{**vars(PARTNER), "their_qualifier": "ZZZ", "segment_terminator": "*", "group_version": "4010", "error_folder": "../etc"}
        )
        with pytest.raises(EdiPartnerInvalid) as refused:
            edi_partner_configure(connection=connection, data=data, actor=ADMIN)
        reasons = {problem.pointer: problem.reason for problem in refused.value.problems}
        assert "'4010' is not a GS08 version" in reasons["/group_version"]
        assert "is not a folder path" in reasons["/error_folder"]
        assert "separators must be distinct" in reasons[""] and "receiver qualifier must be 2 characters" in reasons[""]
        assert not EdiPartner.objects.filter(connection=connection).exists()


@pytest.mark.django_db
def test_control_numbers_count_per_partner_and_level_and_wrap_after_the_x12_maximum(world):
    with schema_context(world.acme.schema):
        partner = partner_made()
        partner_made(key="other-partner")
        numbers = EdiControlNumbers()
        assert [numbers.next_interchange("shipperco") for _ in range(3)] == [1, 2, 3]
        assert (numbers.next_group("shipperco"), numbers.next_set("shipperco"), numbers.next_interchange("other-partner")) == (1, 1, 1)
        assert numbers.handed_out == [1, 2, 3, 1]
        EdiControlNumber.objects.filter(partner=partner, level="ISA").update(last=CONTROL_NUMBER_MAX)
        assert numbers.next_interchange("shipperco") == 1
        with pytest.raises(LookupError, match="'nobody' has no EDI partner settings"):
            numbers.next_set("nobody")


def test_two_workers_never_get_the_same_control_number(world, committed):
    with schema_context(world.acme.schema):
        partner_made(key="busy-partner")
    start = threading.Barrier(4)

    def take() -> list[int]:
        try:
            with schema_context(world.acme.schema):
                start.wait(timeout=10)
                numbers = EdiControlNumbers()
                taken = []
                for _ in range(25):
                    with db_transaction.atomic():  # as in a dispatch: the lock is held until commit
                        taken.append(numbers.next_interchange("busy-partner"))
                return taken
        finally:
            connections.close_all()

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = [future.result(timeout=60) for future in [pool.submit(take) for _ in range(4)]]
        every = [number for taken in results for number in taken]
        assert sorted(every) == list(range(1, 101))
        assert all(taken == sorted(taken) for taken in results)
    finally:
        with schema_context(world.acme.schema):
            Connection.objects.filter(key="busy-partner").delete()


@pytest.mark.django_db
def test_a_received_interchange_lands_in_the_inbox_once_and_a_resent_one_is_a_duplicate(world):
    with schema_context(world.acme.schema):
        connection = partner_made().connection
        text = envelope(STATUS_214)
        first = edi_receive(connection=connection, data=text.encode(), channel="upload")
        again = edi_receive(connection=connection, data=text.encode(), channel="sftp")
        assert not first.duplicate and again.duplicate and again.event.pk == first.event.pk
        event = InboundEvent.objects.get(pk=first.event.pk)
        assert (event.external_id, event.channel, event.content_type, event.body) == (
            "x12:SHIPPERCO:000000101",
            "upload",
            "application/edi-x12",
            text,
        )
        assert InboundEvent.objects.filter(connection=connection).count() == 1


@pytest.mark.django_db
def test_a_dispatched_interchange_becomes_milestones_and_a_997_written_with_the_partners_settings(world):
    with schema_context(world.acme.schema):
        partner = partner_made()
        received = edi_receive(connection=partner.connection, data=envelope(STATUS_214), channel="upload")
        assert event_dispatch(received.event.pk) == "delivered"
        event = InboundEvent.objects.get(pk=received.event.pk)
        assert [item["event_type"] for item in event.canonical] == ["shipment.milestone"] * 3
        assert event.canonical[0]["correlation"]["pro"] == "PRO778899"
        answer = read(event.acknowledgement).interchanges[0]
        assert (answer.sender_id, answer.receiver_id, answer.usage, answer.control_number) == ("BATON", "SHIPPERCO", "T", "000000001")
        assert parse(event.acknowledgement).ok
        assert "AK1*QM*7001~" in event.acknowledgement and "AK5*A~" in event.acknowledgement
        queued = EdiAcknowledgement.objects.get(event=event)
        assert (queued.file_name, queued.status, queued.text) == ("997_000000001.edi", "pending", event.acknowledgement)
        assert EdiControlNumber.objects.get(partner=partner, level="ISA").last == 1


@pytest.mark.django_db
def test_a_replayed_interchange_keeps_its_first_997_and_uses_no_new_control_numbers(world):
    with schema_context(world.acme.schema):
        partner = partner_made()
        broken = envelope(STATUS_214).replace("B10*PRO778899*SHIP-1001*ABCD~", "B10~")
        received = edi_receive(connection=partner.connection, data=broken, channel="upload")
        assert event_dispatch(received.event.pk) == "quarantined"
        event = InboundEvent.objects.get(pk=received.event.pk)
        first = event.acknowledgement
        assert "AK5*R" in first and EdiAcknowledgement.objects.get(event=event).text == first
        inbound_replay(event=event, actor=ADMIN, body=envelope(STATUS_214))
        assert event_dispatch(event.pk) == "delivered"
        event.refresh_from_db()
        assert event.acknowledgement == first
        assert EdiControlNumber.objects.get(partner=partner, level="ISA").last == 1


@pytest.mark.django_db
def test_a_partner_that_wants_no_997_gets_none_queued_and_no_numbers_spent(world):
    with schema_context(world.acme.schema):
        partner = partner_made(wants_997=False)
        received = edi_receive(connection=partner.connection, data=envelope(STATUS_214), channel="upload")
        assert event_dispatch(received.event.pk) == "delivered"
        event = InboundEvent.objects.get(pk=received.event.pk)
        assert event.acknowledgement.startswith("ISA")  # the inbox's own answer is still kept for operators
        assert not EdiAcknowledgement.objects.exists() and not EdiControlNumber.objects.filter(partner=partner).exists()


@pytest.mark.django_db
def test_an_https_partners_997_is_written_with_its_settings_but_not_queued_for_a_folder(world):
    with schema_context(world.acme.schema):
        partner = partner_made(key="https-partner", transport="https", element_separator="|")
        received = edi_receive(connection=partner.connection, data=envelope(STATUS_214), channel="api")
        event_dispatch(received.event.pk)
        event = InboundEvent.objects.get(pk=received.event.pk)
        assert event.acknowledgement.startswith("ISA|00|")  # the partner's delimiters, not those it sent
        assert read(event.acknowledgement).interchanges[0].sender_id == "BATON"
        assert not EdiAcknowledgement.objects.exists()


@pytest.mark.django_db
def test_input_without_an_isa_is_stored_and_quarantined_with_the_reason(world):
    with schema_context(world.acme.schema):
        partner = partner_made()
        received = edi_receive(connection=partner.connection, data=b"hello, this is not EDI\n", channel="upload")
        assert received.event.external_id.startswith("sha256:")
        assert event_dispatch(received.event.pk) == "quarantined"
        event = InboundEvent.objects.get(pk=received.event.pk)
        assert event.error.startswith("this is not an X12 interchange")
        assert not EdiAcknowledgement.objects.exists()


@pytest.mark.django_db
def test_binary_or_oversized_input_cannot_be_stored_and_says_why(world, monkeypatch):
    with schema_context(world.acme.schema):
        connection = partner_made().connection
        with pytest.raises(EdiRefused, match="NUL byte at offset 3: it is binary"):
            edi_receive(connection=connection, data=b"ISA\x00\x01", channel="upload")
        monkeypatch.setattr("connectors.edi_transport.EDI_MAX_BYTES", 100)
        with pytest.raises(EdiRefused, match=r"The file is \d+ bytes; Baton takes interchanges of at most"):
            edi_receive(connection=connection, data=ISA * 2, channel="upload")
        assert not InboundEvent.objects.exists()
