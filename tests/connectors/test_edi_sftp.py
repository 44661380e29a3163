"""SFTP polling of EDI partners, against a real SFTP server (asyncssh) on 127.0.0.1 serving a
temporary directory: files taken once, archived, an unstorable one moved to the error folder with
its reason, the 997 written to the outbound folder, the server's host key pinned, credentials from
the connection's encrypted secrets, the host through the address guard."""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from django.test import override_settings
from django_tenants.utils import schema_context

from connectors.auth import credentials_seal
from connectors.edi import parse, read
from connectors.edi_transport import EdiPartnerInput, edi_partner_configure, edi_poll, edi_poll_partners
from connectors.inbox import event_dispatch
from connectors.models import Connection, EdiAcknowledgement, EdiPartner, InboundEvent
from connectors.services import ConnectionInput, connection_create
from governance.models import AuditEvent
from governance.services import Actor
from tests.connectors.edi.fixtures import STATUS_214, envelope

in_db = pytest.mark.django_db  # not the two pollers: their writes must be committed for each other

ADMIN = Actor.system("tests-edi-sftp")
USER, PASSWORD = "shipperco", "sftp-password-for-tests"
LOOPBACK = override_settings(BATON_OUTBOUND_ALLOW=["127.0.0.0/8"])


@dataclass
class SftpServer:
    port: int
    root: Path
    host_key: asyncssh.SSHKey
    client_key: asyncssh.SSHKey


class _Login(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == (USER, PASSWORD)


class _KeyOnlyLogin(_Login):
    def password_auth_supported(self) -> bool:
        return False


@contextmanager
def sftp_server(
    root: Path, host_key: asyncssh.SSHKey | None = None, *, passwords: bool = True, client_key: asyncssh.SSHKey | None = None
) -> Iterator[SftpServer]:
    """An SFTP server on a free loopback port, chrooted to `root`, taking the password above (unless
    `passwords` is False) or the client key (generated unless given); it runs on its own thread
    and loop."""
    host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
    client_key = client_key or asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()
    started: list[asyncssh.SSHAcceptor] = []
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        acceptor = loop.run_until_complete(
            asyncssh.listen(
                "127.0.0.1",
                0,
                server_host_keys=[host_key],
                server_factory=_Login if passwords else _KeyOnlyLogin,
                authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
                sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=str(root).encode()),
                allow_scp=False,
            )
        )
        started.append(acceptor)
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="sftp-server", daemon=True)
    thread.start()
    assert ready.wait(10), "the SFTP server did not start"
    acceptor = started[0]
    try:
        yield SftpServer(acceptor.get_port(), root, host_key, client_key)
    finally:

        async def stop() -> None:
            acceptor.close()
            await acceptor.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def partner_over_sftp(server: SftpServer, key: str = "shipperco-sftp", **secrets: str) -> EdiPartner:
    """An EDI partner connection to the server, made through the services (password in the
    encrypted credentials), or with `secrets` sealed as given (a private key)."""
    data = ConnectionInput(
        key=key,
        name="ShipperCo EDI",
        kind="edi_partner",
        transport="sftp",
        base_url=f"sftp://127.0.0.1:{server.port}",
        auth_method="basic",
        auth_settings={"username": USER},
        secrets={"password": PASSWORD},
        connect_timeout=5,
        read_timeout=10,
    )
    connection = connection_create(data=data, actor=ADMIN)
    if secrets:
        connection.credentials = credentials_seal(secrets)
        connection.save(update_fields=["credentials"])
    partner_data = EdiPartnerInput(their_qualifier="ZZ", their_id="SHIPPERCO", our_qualifier="ZZ", our_id="BATON", usage="T")
    return edi_partner_configure(connection=connection, data=partner_data, actor=ADMIN)


def files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def sftp_root(tmp_path) -> Path:
    (tmp_path / "inbound").mkdir()
    return tmp_path


@in_db
@LOOPBACK
def test_a_poll_takes_each_file_archives_it_refuses_a_binary_one_and_writes_the_997(world, sftp_root):
    inbound = sftp_root / "inbound"
    (inbound / "status-1.edi").write_text(envelope(STATUS_214))
    (inbound / "garbage.bin").write_bytes(b"\x00\x01\x02 not text")
    (inbound / "notes.txt").write_text("this is not EDI\n")
    (inbound / ".uploading.edi").write_text("half a file")  # a partner's upload in progress is left alone
    with sftp_server(sftp_root) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)

        report = edi_poll(partner=partner)

        assert report.error == "", report.error
        assert sorted(report.taken) == ["notes.txt", "status-1.edi"]
        assert list(report.refused) == ["garbage.bin"] and "NUL byte at offset 0" in report.refused["garbage.bin"]
        assert files(inbound) == [".uploading.edi"]
        assert files(sftp_root / "archive") == ["notes.txt", "status-1.edi"]
        assert files(sftp_root / "error") == ["garbage.bin", "garbage.bin.reason.txt"]
        assert "it is binary, not an X12 interchange" in (sftp_root / "error" / "garbage.bin.reason.txt").read_text()
        events = {event.external_id: event for event in InboundEvent.objects.filter(connection=partner.connection)}
        assert set(events) >= {"x12:SHIPPERCO:000000101"} and len(events) == 2
        assert all(event.channel == "sftp" for event in events.values())

        for event in events.values():
            event_dispatch(event.pk)
        assert InboundEvent.objects.get(external_id="x12:SHIPPERCO:000000101").status == "delivered"
        second = edi_poll(partner=partner)

        assert second.acknowledgements == ["997_000000001.edi"] and second.taken == []
        assert files(sftp_root / "outbound") == ["997_000000001.edi"]
        written = (sftp_root / "outbound" / "997_000000001.edi").read_text()
        answer = read(written).interchanges[0]
        assert (answer.sender_id, answer.receiver_id, answer.control_number) == ("BATON", "SHIPPERCO", "000000001")
        assert parse(written).ok and "AK5*A~" in written
        assert EdiAcknowledgement.objects.get(partner=partner).status == "sent"
        assert edi_poll(partner=partner).acknowledgements == []  # sent once
        partner.refresh_from_db()
        assert partner.last_poll_ok and partner.last_poll_message == "0 files taken, 0 997s written."


@in_db
@LOOPBACK
def test_a_resent_file_is_a_duplicate_and_archived_beside_the_first(world, sftp_root):
    with sftp_server(sftp_root) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)
        (sftp_root / "inbound" / "status.edi").write_text(envelope(STATUS_214))
        edi_poll(partner=partner)
        (sftp_root / "inbound" / "status.edi").write_text(envelope(STATUS_214))
        report = edi_poll(partner=partner)
        assert report.duplicates == ["status.edi"]
        archived = files(sftp_root / "archive")
        assert len(archived) == 2 and archived[0] == "status.edi" and archived[1].startswith("status.edi.")
        assert InboundEvent.objects.filter(connection=partner.connection).count() == 1


@in_db
@LOOPBACK
def test_a_file_another_poller_is_taking_is_left_to_it_until_it_is_stale(world, sftp_root):
    inbound = sftp_root / "inbound"
    (inbound / f".baton-{int(time.time())}-abcd1234.fresh.edi").write_text(envelope(STATUS_214))
    (inbound / f".baton-{int(time.time()) - 3600}-abcd1234.stale.edi").write_text(envelope(STATUS_214).replace("000000101", "000000102"))
    with sftp_server(sftp_root) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)
        report = edi_poll(partner=partner)
        assert report.taken == ["stale.edi"]
        assert len(files(inbound)) == 1 and files(inbound)[0].endswith(".fresh.edi")
        assert files(sftp_root / "archive") == ["stale.edi"]


@LOOPBACK
def test_two_pollers_at_once_take_every_file_exactly_once(world, sftp_root, committed):
    for number in range(12):
        (sftp_root / "inbound" / f"status-{number:02d}.edi").write_text(envelope(STATUS_214).replace("000000101", f"{500 + number:09d}"))
    with sftp_server(sftp_root) as server:
        with schema_context(world.acme.schema):
            partner = partner_over_sftp(server, key="racing-partner")
        try:
            barrier = threading.Barrier(2)

            def poll() -> list[str]:
                from django.db import connections

                try:
                    with schema_context(world.acme.schema):
                        mine = EdiPartner.objects.select_related("connection").get(pk=partner.pk)
                        barrier.wait(10)
                        return edi_poll(partner=mine).taken
                finally:
                    connections.close_all()

            results: list[list[str]] = []
            threads = [threading.Thread(target=lambda: results.append(poll())) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            taken = [name for result in results for name in result]
            assert sorted(taken) == [f"status-{number:02d}.edi" for number in range(12)]
            assert len(files(sftp_root / "archive")) == 12 and files(sftp_root / "inbound") == []
            with schema_context(world.acme.schema):
                assert InboundEvent.objects.filter(connection__key="racing-partner").count() == 12
        finally:
            with schema_context(world.acme.schema):
                InboundEvent.objects.filter(connection__key="racing-partner").delete()
                Connection.objects.filter(key="racing-partner").delete()


@in_db
@LOOPBACK
def test_a_private_key_from_the_encrypted_secrets_logs_in(world, sftp_root):
    with sftp_server(sftp_root) as server, schema_context(world.acme.schema):
        private_key = server.client_key.export_private_key().decode()
        partner = partner_over_sftp(server, private_key=private_key)
        report = edi_poll(partner=partner)
        assert report.error == "" and partner.last_poll_ok


@in_db
@LOOPBACK
def test_the_first_host_key_is_recorded_and_a_different_one_is_refused(world, sftp_root):
    with sftp_server(sftp_root) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)
        edi_poll(partner=partner)
        partner.refresh_from_db()
        assert partner.sftp_host_key == server.host_key.export_public_key().decode().strip()
        port = server.port
    with sftp_server(sftp_root) as impostor, schema_context(world.acme.schema):
        Connection.objects.filter(pk=partner.connection_id).update(base_url=f"sftp://127.0.0.1:{impostor.port}")
        partner = EdiPartner.objects.select_related("connection").get(pk=partner.pk)
        report = edi_poll(partner=partner)
        assert port != impostor.port
        assert "presented a host key other than the one recorded for this partner" in report.error
        partner.refresh_from_db()
        assert partner.last_poll_ok is False and partner.last_poll_message == report.error


@in_db
@LOOPBACK
def test_a_wrong_password_is_reported_in_words(world, sftp_root):
    with sftp_server(sftp_root) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server, password="not-the-password")
        report = edi_poll(partner=partner)
        assert report.error.startswith(f"127.0.0.1:{server.port} refused the user and credentials")


@in_db
def test_a_loopback_host_is_refused_unless_allowed(world, sftp_root):
    with (
        sftp_server(sftp_root) as server,
        schema_context(world.acme.schema),
        override_settings(BATON_OUTBOUND_ALLOW=[]),
    ):
        partner = partner_over_sftp(server)
        (sftp_root / "inbound" / "status.edi").write_text(envelope(STATUS_214))
        report = edi_poll(partner=partner)
        assert report.error.startswith("Refused: 127.0.0.1 is a loopback address")
        assert files(sftp_root / "inbound") == ["status.edi"]


@in_db
@LOOPBACK
def test_the_tenant_task_polls_every_enabled_sftp_partner(world, sftp_root):
    with sftp_server(sftp_root) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)
        (sftp_root / "inbound" / "status.edi").write_text(envelope(STATUS_214))
        disabled = partner_over_sftp(server, key="disabled-sftp")
        Connection.objects.filter(pk=disabled.connection_id).update(enabled=False)
        assert edi_poll_partners() == {partner.connection.key: "1 file taken, 0 997s written."}


# --- logging in with a key entered on the partner card, the host key pinned from the card ------------


def _card_post(world, partner: EdiPartner, **changes: str):
    """Post the partner card's form as a planner: the partner's settings as they are, plus `changes`."""
    from connectors.forms import EdiPartnerForm
    from tests.conftest import signed_in_client

    settings = {name: value for name, value in EdiPartnerForm.for_partner(partner).initial.items() if value is not False}
    settings = {name: "on" if value is True else value for name, value in settings.items()}
    client = signed_in_client(world.acme.host, world.acme.users["planner"], world.acme.schema)
    return client, client.post(f"/connections/{partner.connection.key}/edi/partner/", {**settings, **changes})


def _fresh(partner: EdiPartner) -> EdiPartner:
    return EdiPartner.objects.select_related("connection").get(pk=partner.pk)


@in_db
@LOOPBACK
def test_a_private_key_entered_on_the_card_logs_in_to_a_server_that_takes_keys_only_and_is_never_shown(world, sftp_root):
    key = asyncssh.generate_private_key("ssh-ed25519", comment="baton@acme")
    encrypted = key.export_private_key("pkcs8-pem", passphrase="correct horse").decode()
    (sftp_root / "inbound" / "status.edi").write_text(envelope(STATUS_214))
    with sftp_server(sftp_root, passwords=False, client_key=key) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)
        assert edi_poll(partner=partner).error.startswith(f"127.0.0.1:{server.port} refused the user and credentials")

        client, saved = _card_post(world, partner, private_key=encrypted, passphrase="correct horse")

        assert saved.status_code == 302, saved.content.decode()[:3000]
        label = f"ssh-ed25519 {key.get_fingerprint()}"
        connection = Connection.objects.get(pk=partner.connection_id)
        assert connection.credential_masks["private_key"] == label and connection.credential_masks["passphrase"] == "••••"
        assert "BEGIN" not in connection.credentials and "correct horse" not in connection.credentials
        page = client.get(f"/connections/{connection.key}/").content.decode()
        assert label in page and "with its passphrase" in page and "Replace the SSH private key" in page
        assert "PRIVATE KEY-----\n" not in page and key.export_private_key().decode().split("\n")[1] not in page
        audit = AuditEvent.objects.filter(action="connection.edi_partner_updated").latest("pk")
        assert audit.data["private_key"] == f"set: {label}" and "correct horse" not in str(audit.data)

        report = edi_poll(partner=_fresh(partner))

        assert report.error == "" and report.taken == ["status.edi"]


@in_db
@LOOPBACK
def test_the_key_survives_an_edit_of_the_connection_and_can_be_removed(world, sftp_root):
    from connectors.selectors import connection_input
    from connectors.services import connection_update

    key = asyncssh.generate_private_key("ssh-ed25519")
    with sftp_server(sftp_root, passwords=False, client_key=key) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)
        _client, saved = _card_post(world, partner, private_key=key.export_private_key().decode())
        assert saved.status_code == 302
        connection = Connection.objects.get(pk=partner.connection_id)
        assert "passphrase" not in connection.credential_masks  # an unencrypted key has none
        data = connection_input(connection)
        data.secrets = {"password": "a-new-password-for-the-connection"}
        connection_update(connection=connection, data=data, actor=ADMIN)
        assert set(Connection.objects.get(pk=connection.pk).credential_masks) == {"password", "private_key"}
        assert edi_poll(partner=_fresh(partner)).error == ""

        _client, removed = _card_post(world, _fresh(partner), private_key_remove="on")

        assert removed.status_code == 302
        assert set(Connection.objects.get(pk=connection.pk).credential_masks) == {"password"}
        assert edi_poll(partner=_fresh(partner)).error.startswith(f"127.0.0.1:{server.port} refused the user and credentials")


def _openssh_encrypted_key(tmp_path: Path) -> str:
    """A key as `ssh-keygen` writes it with a passphrase (OpenSSH format, bcrypt KDF)."""
    import shutil
    import subprocess

    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(path)], check=True, timeout=30)
    return path.read_text()


@in_db
def test_a_bad_key_or_passphrase_is_refused_on_its_field_and_nothing_is_stored(world, tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    encrypted = key.export_private_key("pkcs8-pem", passphrase="right").decode()
    cases = [
        ({"private_key": "hello, not a key"}, "is not an SSH private key: paste the whole key file"),
        ({"private_key": key.export_public_key().decode()}, "is a public key: paste the private key (the key file without .pub)"),
        ({"private_key": encrypted}, "is required: this private key is encrypted, enter the passphrase that opens it"),
        ({"private_key": encrypted, "passphrase": "wrong"}, "does not open this private key: check it and type it again"),
        ({"passphrase": "right"}, "goes with a private key: paste the key it opens too"),
        ({"private_key": key.export_private_key().decode(), "private_key_remove": "on"}, "choose one: remove the stored private key"),
        ({"sftp_host_key": key.export_private_key().decode()}, "paste one key, on one line"),
        ({"sftp_host_key": "ssh-ed25519 not-base64"}, "is not an SSH public key"),
    ]
    with schema_context(world.acme.schema):
        partner = partner_over_sftp(SftpServer(2222, tmp_path, key, key))
        bcrypt = {"private_key": _openssh_encrypted_key(tmp_path), "passphrase": "a passphrase"}
        try:
            asyncssh.import_private_key(bcrypt["private_key"], bcrypt["passphrase"])
        except asyncssh.KeyEncryptionError:
            cases.append((bcrypt, "is encrypted in OpenSSH's own format, which this Baton cannot open (no bcrypt support)"))
        for changes, reason in cases:
            _client, refused = _card_post(world, partner, **changes)
            body = refused.content.decode()
            assert refused.status_code == 400 and "field--invalid" in body, changes
            assert html.escape(reason) in body, (changes, reason)
            assert "BEGIN" not in body.split('id="id_private_key"')[1].split("</textarea>")[0]  # never rendered back
        connection = Connection.objects.get(pk=partner.connection_id)
        assert set(connection.credential_masks) == {"password"} and _fresh(partner).sftp_host_key == ""


@in_db
@LOOPBACK
def test_a_host_key_pasted_on_the_card_is_required_from_the_first_poll_and_with_key_login_too(world, sftp_root):
    key = asyncssh.generate_private_key("ssh-ed25519")
    (sftp_root / "inbound" / "status.edi").write_text(envelope(STATUS_214))
    with sftp_server(sftp_root, passwords=False, client_key=key) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)
        impostor_key = asyncssh.generate_private_key("ssh-ed25519")
        known_hosts_line = f"[127.0.0.1]:{server.port} {impostor_key.export_public_key().decode().strip()}"
        client, saved = _card_post(world, partner, private_key=key.export_private_key().decode(), sftp_host_key=known_hosts_line)
        assert saved.status_code == 302
        page = client.get(f"/connections/{partner.connection.key}/").content.decode()
        assert f"ssh-ed25519 {impostor_key.get_fingerprint()}" in page and "Replace the server host key" in page

        report = edi_poll(partner=_fresh(partner))

        assert "presented a host key other than the one recorded for this partner" in report.error
        assert (sftp_root / "inbound" / "status.edi").exists()
        _client, saved = _card_post(world, _fresh(partner), sftp_host_key=server.host_key.export_public_key().decode())
        assert saved.status_code == 302
        assert edi_poll(partner=_fresh(partner)).taken == ["status.edi"]
        assert AuditEvent.objects.filter(action="connection.edi_partner_updated").latest("pk").data["sftp_host_key"] == (
            f"ssh-ed25519 {server.host_key.get_fingerprint()}"
        )


@in_db
@LOOPBACK
def test_a_polled_file_of_several_interchanges_is_stored_and_answered_interchange_by_interchange(world, sftp_root):
    second = envelope(STATUS_214).replace("000000101", "000000102")
    (sftp_root / "inbound" / "batch.edi").write_text(envelope(STATUS_214) + "END OF BATCH\n" + second)
    with sftp_server(sftp_root) as server, schema_context(world.acme.schema):
        partner = partner_over_sftp(server)
        report = edi_poll(partner=partner)
        assert report.taken == ["batch.edi"] and files(sftp_root / "archive") == ["batch.edi"]
        events = list(InboundEvent.objects.filter(connection=partner.connection).order_by("pk"))
        assert [event.external_id.split(":")[0:3] for event in events][::2] == [
            ["x12", "SHIPPERCO", "000000101"],
            ["x12", "SHIPPERCO", "000000102"],
        ]
        assert events[1].headers["X-Baton-File"] == "batch.edi" and events[1].body == "END OF BATCH"
        assert [event_dispatch(event.pk) for event in events] == ["delivered", "quarantined", "delivered"]

        written = edi_poll(partner=partner)

        assert written.acknowledgements == ["997_000000001.edi", "997_000000002.edi"]
        answered = [read((sftp_root / "outbound" / name).read_text()).interchanges[0] for name in written.acknowledgements]
        assert [answer.groups[0].sets[0].code for answer in answered] == ["997", "997"]
