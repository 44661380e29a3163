"""X12 EDI trading partners: their settings, our control numbers towards them, and the ways their
interchanges arrive and their 997s leave.

Every interchange – uploaded on a page, posted to the API or taken from the partner's SFTP inbound
folder – goes into the durable inbox through `edi_receive` with the external id
`x12:<sender id>:<ISA13>`, so a resent interchange is a duplicate of the first, and input without an
ISA is still stored (then quarantined with the reason by the dispatch). The inbox's dispatch answers
it with a 997; for a partner that wants them, `edi_acknowledgement_prepare` (called by the dispatch,
in its transaction) writes that 997 again with the partner's settings and control numbers from the
database (`EdiControlNumbers`) and, for SFTP partners, queues it as an `EdiAcknowledgement` for the
next poll to put in their outbound folder.

SFTP polling (`edi_poll`) claims each inbound file by renaming it to a working name first (an SFTP
rename of a file another poller took fails), stores it, then moves it to the archive folder, or to
the error folder with a `.reason.txt` beside it when it could not even be stored. The SSH session
runs on a private asyncio loop driven step by step from this synchronous code, so database calls
happen between network steps, never inside a running loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import asyncssh
import structlog
from django.db import transaction
from django.utils import timezone

from connectors.auth import connection_secrets
from connectors.edi import PartnerSettings, acknowledge, parse, read
from connectors.models import (
    Connection,
    EdiAcknowledgement,
    EdiAcknowledgementStatus,
    EdiControlLevel,
    EdiPartner,
    InboundEvent,
    InboundMapper,
    Transport,
)
from connectors.safety import HostUnresolved, OutboundRefused, host_check
from connectors.services import ConnectionProblem
from governance.services import audit_record
from tenants.db import connection as db

if TYPE_CHECKING:
    from connectors.inbox import Received

log = structlog.get_logger("baton.connectors.edi")

EDI_MAX_BYTES = 20 * 1024 * 1024  # an interchange file larger than this is refused (bench files are 10 MB)
EDI_CONTENT_TYPE = "application/edi-x12"
CONTROL_NUMBER_MAX = 999_999_999  # ISA13, GS06 and ST02 are at most nine digits; the next is 1 again
POLL_FILES_MAX = 200  # files taken per partner and poll; the rest wait for the next poll
WORKING_PREFIX = ".baton-"  # inbound files being taken: ".baton-<unix time>-<token>.<name>"
WORKING_STALE_SECONDS = 15 * 60  # a working file this old was left by a poller that died: take it again
_WORKING = re.compile(r"^\.baton-(\d+)-[0-9a-f]+\.(.+)$")
_FOLDER = re.compile(r"^[A-Za-z0-9._/-]{1,300}$")

T = TypeVar("T")


class EdiRefused(Exception):
    """The input cannot even be stored as an inbound event (too large, binary); the message says why."""


class EdiTooLarge(EdiRefused):
    """The input is larger than Baton takes (`EDI_MAX_BYTES`)."""


class EdiPartnerInvalid(Exception):
    """The partner settings cannot be saved as given; every problem by JSON pointer."""

    def __init__(self, problems: list[ConnectionProblem]):
        super().__init__("; ".join(f"{problem.pointer}: {problem.reason}" for problem in problems))
        self.problems = problems


# --- partner settings and control numbers ---------------------------------------------------------


@dataclass
class EdiPartnerInput:
    """A partner's settings as written by the setup page."""

    their_qualifier: str
    their_id: str
    our_qualifier: str
    our_id: str
    their_application_id: str = ""
    our_application_id: str = ""
    version: str = "00401"
    group_version: str = "004010"
    usage: str = "P"
    element_separator: str = "*"
    component_separator: str = ">"
    segment_terminator: str = "~"
    repetition_separator: str = "^"
    wants_997: bool = True
    inbound_folder: str = "inbound"
    archive_folder: str = "archive"
    error_folder: str = "error"
    outbound_folder: str = "outbound"


def partner_settings(partner: EdiPartner) -> PartnerSettings:
    """How Baton writes to the partner: our ids as sender, theirs as receiver."""
    return PartnerSettings(
        partner=partner.connection.key,
        sender_qualifier=partner.our_qualifier,
        sender_id=partner.our_id,
        receiver_qualifier=partner.their_qualifier,
        receiver_id=partner.their_id,
        version=partner.version,
        group_version=partner.group_version,
        usage=partner.usage,
        element_separator=partner.element_separator,
        component_separator=partner.component_separator,
        segment_terminator=partner.segment_terminator,
        repetition_separator=partner.repetition_separator,
        application_sender=partner.our_application_id,
        application_receiver=partner.their_application_id,
    )


def _partner_problems(data: EdiPartnerInput) -> list[ConnectionProblem]:
    problems = []
    for name in ("their_application_id", "our_application_id"):
        if len(getattr(data, name)) > 15:
            problems.append(ConnectionProblem(f"/{name}", "is longer than 15 characters"))
    if not re.fullmatch(r"\d{6}[A-Z0-9]{0,6}", data.group_version):
        problems.append(ConnectionProblem("/group_version", f"'{data.group_version}' is not a GS08 version like 004010"))
    for name in ("inbound_folder", "archive_folder", "error_folder", "outbound_folder"):
        value = getattr(data, name)
        if not _FOLDER.match(value) or ".." in value.split("/"):
            problems.append(ConnectionProblem(f"/{name}", f"'{value}' is not a folder path: letters, digits, '.', '_', '-' and '/'"))
    folders = [data.inbound_folder, data.archive_folder, data.error_folder, data.outbound_folder]
    if len({folder.strip("/") for folder in folders}) != len(folders):
        problems.append(ConnectionProblem("/archive_folder", "the inbound, archive, error and outbound folders must all differ"))
    return problems


def edi_partner_configure(*, connection: Connection, data: EdiPartnerInput, actor: Any) -> EdiPartner:
    """Create or change the connection's partner settings; the connection's inbound mapper becomes
    x12, so what it receives is read as interchanges. Audited."""
    problems = _partner_problems(data)
    try:
        PartnerSettings(
            partner=connection.key,
            sender_qualifier=data.our_qualifier,
            sender_id=data.our_id,
            receiver_qualifier=data.their_qualifier,
            receiver_id=data.their_id,
            version=data.version,
            group_version=data.group_version,
            usage=data.usage,
            element_separator=data.element_separator,
            component_separator=data.component_separator,
            segment_terminator=data.segment_terminator,
            repetition_separator=data.repetition_separator,
        )
    except ValueError as error:
        problems.append(ConnectionProblem("", str(error).split(": ", 1)[-1]))
    if problems:
        raise EdiPartnerInvalid(problems)
    with transaction.atomic():
        partner = EdiPartner.objects.select_for_update().filter(connection=connection).first() or EdiPartner(connection=connection)
        created = partner.pk is None
        for name, value in vars(data).items():
            setattr(partner, name, value.strip() if isinstance(value, str) and name.endswith(("_id", "_folder")) else value)
        partner.save()
        if connection.inbound_mapper != InboundMapper.X12:
            connection.inbound_mapper = InboundMapper.X12
            connection.save(update_fields=["inbound_mapper", "updated_at"])
        audit_record(
            actor=actor,
            action="connection.edi_partner_created" if created else "connection.edi_partner_updated",
            target=connection,
            data={name: value for name, value in vars(data).items()},
        )
    return partner


_NEXT_NUMBER = """
INSERT INTO connectors_edicontrolnumber (partner_id, level, last)
SELECT partner.id, %s, 1
FROM connectors_edipartner partner JOIN connectors_connection connection ON connection.id = partner.connection_id
WHERE connection.key = %s
ON CONFLICT (partner_id, level) DO UPDATE
SET last = CASE WHEN connectors_edicontrolnumber.last >= %s THEN 1 ELSE connectors_edicontrolnumber.last + 1 END
RETURNING last
"""


class EdiControlNumbers:
    """The `ControlNumbers` of `connectors.edi` kept in the database, per partner (named by its
    connection's key) and level. One upsert takes the row's lock and moves it on, so concurrent
    writers each get their own number; inside a transaction the lock is held until it ends, so a
    rolled-back interchange leaves no gap. `handed_out` lists the interchange numbers this
    instance gave, for naming what was written."""

    def __init__(self) -> None:
        self.handed_out: list[int] = []

    def _next(self, partner: str, level: str) -> int:
        with db.cursor() as cursor:
            cursor.execute(_NEXT_NUMBER, [level, partner, CONTROL_NUMBER_MAX])
            row = cursor.fetchone()
        if row is None:
            raise LookupError(f"The connection '{partner}' has no EDI partner settings: set them up before writing to it.")
        return int(row[0])

    def next_interchange(self, partner: str) -> int:
        number = self._next(partner, EdiControlLevel.INTERCHANGE)
        self.handed_out.append(number)
        return number

    def next_group(self, partner: str) -> int:
        return self._next(partner, EdiControlLevel.GROUP)

    def next_set(self, partner: str) -> int:
        return self._next(partner, EdiControlLevel.SET)


# --- receiving ----------------------------------------------------------------------------------------


def interchange_text(data: bytes | str) -> str:
    """The file as text for the inbox (X12 is ASCII; anything else is kept byte for byte as
    Latin-1); EdiRefused when it is too large or binary."""
    size = len(data)
    if size > EDI_MAX_BYTES:
        raise EdiTooLarge(f"The file is {size} bytes; Baton takes interchanges of at most {EDI_MAX_BYTES} bytes.")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        text = data
    if "\x00" in text:
        raise EdiRefused(f"The file holds a NUL byte at offset {text.index(chr(0))}: it is binary, not an X12 interchange.")
    return text


def interchange_external_id(text: str) -> str:
    """`x12:<sender id>:<ISA13>` of the first interchange; the content's hash when there is no ISA."""
    interchanges = read(text).interchanges
    if interchanges and interchanges[0].control_number:
        first = interchanges[0]
        return f"x12:{first.sender_id}:{first.control_number}"[:200]
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def edi_receive(*, connection: Connection, data: bytes | str, channel: str) -> Received:
    """Store an interchange file in the inbox (a known interchange returns the first event);
    EdiRefused when it cannot be stored at all. Unreadable X12 is stored and quarantined by the
    dispatch with the reason."""
    from connectors.inbox import inbound_record  # the inbox calls back into this module when it dispatches

    text = interchange_text(data)
    return inbound_record(
        connection=connection,
        channel=channel,
        external_id=interchange_external_id(text),
        body=text,
        content_type=EDI_CONTENT_TYPE,
        headers={},
    )


# --- acknowledging ------------------------------------------------------------------------------------


def edi_acknowledgement_prepare(event: InboundEvent) -> None:
    """Called by the inbox's dispatch, in its transaction, once it stored the 997 in
    `event.acknowledgement`: for a partner that wants 997s the 997 is written again with the
    partner's ids, delimiters and database control numbers (the stored one is replaced, so what
    the event shows is what the partner gets), and an SFTP partner's is queued for its outbound
    folder. A replayed event keeps the first answer: the partner has it or will."""
    partner = EdiPartner.objects.select_related("connection").filter(connection_id=event.connection_id).first()
    if partner is None or not partner.wants_997 or not event.acknowledgement:
        return
    queued = EdiAcknowledgement.objects.filter(event=event).first()
    if queued is not None:
        text = queued.text
    else:
        control_numbers = EdiControlNumbers()
        settings = partner_settings(partner)
        answers = [
            acknowledge(interchange, partner=settings, control_numbers=control_numbers) for interchange in parse(event.body).interchanges
        ]
        text = "".join(answer for answer in answers if answer)
        if not text:
            return
        if partner.connection.transport == Transport.SFTP:
            isa13 = f"{control_numbers.handed_out[0]:09d}"
            EdiAcknowledgement.objects.create(
                event=event,
                partner=partner,
                interchange_control_number=isa13,
                file_name=f"997_{isa13}.edi",
                text=text,
                created_at=timezone.now(),
            )
    event.acknowledgement = text
    event.save(update_fields=["acknowledgement"])


# --- SFTP --------------------------------------------------------------------------------------------


class SftpUnavailable(Exception):
    """The partner's SFTP server could not be used; the message says why in words."""


@dataclass
class PollReport:
    """What one poll of one partner did."""

    taken: list[str] = field(default_factory=list)  # stored (new or duplicate) and archived
    duplicates: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # moved to the error folder, with why
    acknowledgements: list[str] = field(default_factory=list)  # 997 files written
    error: str = ""

    def summary(self) -> str:
        if self.error:
            return self.error
        parts = [f"{len(self.taken)} file{'s' if len(self.taken) != 1 else ''} taken"]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} already received")
        if self.refused:
            parts.append(f"{len(self.refused)} moved to the error folder")
        parts.append(f"{len(self.acknowledgements)} 997{'s' if len(self.acknowledgements) != 1 else ''} written")
        return ", ".join(parts) + "."


class _Sftp:
    """A blocking face on an asyncssh SFTP session: each call runs its coroutine to completion on
    the session's own loop, so the caller may use the database between calls."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: asyncssh.SFTPClient, timeout: float):
        self.loop, self.client, self.timeout = loop, client, timeout

    def _run(self, step: Awaitable[T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(step, self.timeout))

    def names(self, folder: str) -> list[str]:
        return sorted(name for name in self._run(self.client.listdir(folder)) if name not in (".", ".."))

    def is_file(self, path: str) -> bool:
        return bool(self._run(self.client.isfile(path)))

    def exists(self, path: str) -> bool:
        return bool(self._run(self.client.exists(path)))

    def rename(self, source: str, target: str) -> bool:
        """False when `source` is gone (another poller took it)."""
        try:
            self._run(self.client.rename(source, target))
        except asyncssh.SFTPNoSuchFile:
            return False
        return True

    def read(self, path: str) -> bytes:
        async def _read() -> bytes:
            async with self.client.open(path, "rb") as handle:
                return await handle.read(EDI_MAX_BYTES + 1)

        return self._run(_read())

    def write(self, path: str, data: bytes) -> None:
        async def _write() -> None:
            async with self.client.open(path, "wb") as handle:
                await handle.write(data)

        self._run(_write())

    def makedirs(self, folder: str) -> None:
        self._run(self.client.makedirs(folder, exist_ok=True))


def _known_hosts(partner: EdiPartner) -> Any:
    if not partner.sftp_host_key:
        return None  # the first connection records the key (below); every later one must match it
    return ([asyncssh.import_public_key(partner.sftp_host_key)], [], [])


@contextmanager
def sftp_session(connection: Connection, partner: EdiPartner) -> Iterator[_Sftp]:
    """An SFTP session with the partner's server: the host through the address guard (the checked
    address is the one dialled), the user from the auth settings, the password or private key
    from the encrypted secrets, the server's host key pinned. SftpUnavailable says what failed."""
    parts = urlsplit(connection.base_url)
    host, port = parts.hostname or "", parts.port or 22
    try:
        address = host_check(host, port)[0]
    except (OutboundRefused, HostUnresolved) as error:
        raise SftpUnavailable(f"Refused: {error}") from error
    secrets = connection_secrets(connection)
    keys = [asyncssh.import_private_key(secrets["private_key"], secrets.get("passphrase") or None)] if secrets.get("private_key") else None
    loop = asyncio.new_event_loop()
    try:
        try:
            ssh = loop.run_until_complete(
                asyncio.wait_for(
                    asyncssh.connect(
                        address,
                        port,
                        username=connection.auth_settings.get("username", ""),
                        password=secrets.get("password") or None,
                        client_keys=keys,
                        known_hosts=_known_hosts(partner),
                        config=None,
                        agent_path=None,
                    ),
                    connection.connect_timeout,
                )
            )
        except TimeoutError as error:
            raise SftpUnavailable(f"Timed out after {connection.connect_timeout:g} s connecting to {host}:{port}") from error
        except asyncssh.HostKeyNotVerifiable as error:
            raise SftpUnavailable(f"{host}:{port} presented a host key other than the one recorded for this partner: {error}") from error
        except asyncssh.PermissionDenied as error:
            raise SftpUnavailable(f"{host}:{port} refused the user and credentials: {error}") from error
        except (OSError, asyncssh.Error) as error:
            raise SftpUnavailable(f"Could not connect to {host}:{port}: {error}") from error
        try:
            if not partner.sftp_host_key:
                server_key = ssh.get_server_host_key()
                if server_key is not None:
                    partner.sftp_host_key = server_key.export_public_key().decode().strip()
                    partner.save(update_fields=["sftp_host_key", "updated_at"])
            client = loop.run_until_complete(ssh.start_sftp_client())
            try:
                yield _Sftp(loop, client, connection.read_timeout)
            finally:
                client.exit()
        finally:
            ssh.close()
            loop.run_until_complete(ssh.wait_closed())
    finally:
        loop.close()


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}"


def _free_name(sftp: _Sftp, folder: str, name: str) -> str:
    """`name` in `folder`, or with a time stamp added when a file of that name is there already."""
    path = _join(folder, name)
    if not sftp.exists(path):
        return path
    return _join(folder, f"{name}.{timezone.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}")


def _inbound_files(sftp: _Sftp, folder: str) -> list[tuple[str, str]]:
    """(file name in the folder, the partner's name for it): new files, and working files a dead
    poller left behind long enough ago."""
    now = time.time()
    found = []
    for name in sftp.names(folder):
        working = _WORKING.match(name)
        if working is not None:
            if now - int(working.group(1)) > WORKING_STALE_SECONDS:
                found.append((name, working.group(2)))
        elif not name.startswith("."):  # dot files are partners' uploads in progress
            found.append((name, name))
    return found


def _take_file(sftp: _Sftp, connection: Connection, partner: EdiPartner, name: str, original: str, report: PollReport) -> None:
    working = _join(partner.inbound_folder, f"{WORKING_PREFIX}{int(time.time())}-{uuid.uuid4().hex[:8]}.{original}")
    if not sftp.rename(_join(partner.inbound_folder, name), working):
        return  # another poller has it
    if not sftp.is_file(working):
        sftp.rename(working, _join(partner.inbound_folder, original))
        return
    data = sftp.read(working)
    try:
        received = edi_receive(connection=connection, data=data, channel="sftp")
    except EdiRefused as refused:
        sftp.makedirs(partner.error_folder)
        target = _free_name(sftp, partner.error_folder, original)
        sftp.rename(working, target)
        sftp.write(f"{target}.reason.txt", f"{refused}\n".encode())
        report.refused[original] = str(refused)
        log.warning("edi file refused", connection=connection.key, file=original, reason=str(refused))
        return
    except Exception:
        sftp.rename(working, _join(partner.inbound_folder, original))  # not stored: the next poll tries again
        raise
    sftp.makedirs(partner.archive_folder)
    sftp.rename(working, _free_name(sftp, partner.archive_folder, original))
    report.taken.append(original)
    if received.duplicate:
        report.duplicates.append(original)


def _send_acknowledgements(sftp: _Sftp, partner: EdiPartner, report: PollReport) -> None:
    """Write the partner's pending 997s to its outbound folder, each under its row's lock (two
    pollers never both send one) and through a dot-file renamed into place (the partner never
    picks up half a file)."""
    pending = list(
        EdiAcknowledgement.objects.filter(partner=partner, status=EdiAcknowledgementStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if pending:
        sftp.makedirs(partner.outbound_folder)
    for pk in pending:
        with transaction.atomic():
            acknowledgement = (
                EdiAcknowledgement.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, status=EdiAcknowledgementStatus.PENDING)
                .first()
            )
            if acknowledgement is None:
                continue
            target = _join(partner.outbound_folder, acknowledgement.file_name)
            if not sftp.exists(target):  # there already: written by a poll that died before recording it
                partial = _join(partner.outbound_folder, f".{acknowledgement.file_name}.{uuid.uuid4().hex[:8]}.part")
                sftp.write(partial, acknowledgement.text.encode("latin-1", errors="replace"))
                sftp.rename(partial, target)
            acknowledgement.status, acknowledgement.sent_at = EdiAcknowledgementStatus.SENT, timezone.now()
            acknowledgement.save(update_fields=["status", "sent_at"])
        report.acknowledgements.append(acknowledgement.file_name)


def edi_poll(*, partner: EdiPartner) -> PollReport:
    """Take the files in the partner's inbound folder and write its pending 997s; what happened
    is kept on the partner (`last_poll_*`) and returned."""
    connection = partner.connection
    report = PollReport()
    try:
        with sftp_session(connection, partner) as sftp:
            for name, original in _inbound_files(sftp, partner.inbound_folder)[:POLL_FILES_MAX]:
                _take_file(sftp, connection, partner, name, original, report)
            _send_acknowledgements(sftp, partner, report)
    except SftpUnavailable as error:
        report.error = str(error)
    except (OSError, asyncssh.Error, TimeoutError) as error:
        report.error = f"The SFTP session failed: {type(error).__name__}: {error}"
    if report.error:
        log.warning("edi poll failed", connection=connection.key, error=report.error)
    partner.last_poll_at, partner.last_poll_ok, partner.last_poll_message = timezone.now(), not report.error, report.summary()
    partner.save(update_fields=["last_poll_at", "last_poll_ok", "last_poll_message", "updated_at"])
    return report


def edi_poll_partners() -> dict[str, str]:
    """Poll every enabled SFTP partner of the current tenant, one after the other; what each poll
    did, by connection key."""
    partners = EdiPartner.objects.select_related("connection").filter(connection__enabled=True, connection__transport=Transport.SFTP)
    done: dict[str, str] = {}
    for partner in partners:
        try:
            done[partner.connection.key] = edi_poll(partner=partner).summary()
        except Exception as error:  # noqa: BLE001 - one partner's failure (a database hiccup) must not stop the others' polls
            log.exception("edi poll failed", connection=partner.connection.key)
            done[partner.connection.key] = f"failed: {type(error).__name__}: {error}"
    return done
