"""X12 EDI trading partners: their settings, our control numbers towards them, and the ways their
interchanges arrive and their 997s leave.

Every file – uploaded on a page, posted to the API or taken from the partner's SFTP inbound folder –
goes into the durable inbox through `edi_receive`: each interchange in it as its own event with the
external id `x12:<sender id>:<ISA13>`, so a resent interchange is a duplicate of the first, and any
text between or after the interchanges as an event of its own; input without an ISA is still stored.
The inbox's dispatch answers each interchange with a 997 and calls `edi_acknowledgement_prepare` (in
its transaction), which first refuses – quarantined, no 997 – text outside any interchange and an
interchange whose ISA sender or receiver is not the partner's configured ids; for a partner that
wants 997s it then writes the 997 again with the partner's settings and control numbers from the
database (`EdiControlNumbers`) and, for SFTP partners, queues it as an `EdiAcknowledgement` for the
next poll to put in their outbound folder.

SFTP partners log in with the user of the connection's auth settings and the password or the SSH
private key sealed with its credentials (`edi_partner_configure` takes the key: shown afterwards as
its type and fingerprint only); the server's host key is pinned – pasted on the partner card, or the
one presented at the first poll – and every later session must present it.

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
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncssh
import structlog
from django.db import transaction
from django.utils import timezone

from config.encryption import SecretUnreadable
from connectors.auth import MASK, connection_secrets, credentials_seal
from connectors.edi import FilePart, Interchange, PartnerSettings, acknowledge, parse, split
from connectors.models import (
    Connection,
    EdiAcknowledgement,
    EdiAcknowledgementStatus,
    EdiControlLevel,
    EdiControlNumber,
    EdiPartner,
    InboundEvent,
    InboundMapper,
    Transport,
)
from connectors.normalize import NormalizationFailed
from connectors.safety import HostUnresolved, OutboundRefused, host_check
from connectors.services import TRANSPORT_SECRETS, ConnectionProblem
from governance.services import audit_record
from tenants.db import connection as db

log = structlog.get_logger("baton.connectors.edi")

EDI_MAX_BYTES = 20 * 1024 * 1024  # an interchange file larger than this is refused (bench files are 10 MB)
EDI_CONTENT_TYPE = "application/edi-x12"
CONTROL_NUMBER_MAX = 999_999_999  # ISA13, GS06 and ST02 are at most nine digits; the next is 1 again
POLL_FILES_MAX = 200  # files taken per partner and poll; the rest wait for the next poll
WORKING_PREFIX = ".baton-"  # inbound files being taken: ".baton-<unix time>-<token>.<name>"
WORKING_STALE_SECONDS = 15 * 60  # a working file this old was left by a poller that died: take it again
_WORKING = re.compile(r"^\.baton-(\d+)-[0-9a-f]+\.(.+)$")
_FOLDER = re.compile(r"^[A-Za-z0-9._/-]{1,300}$")
SSH_KEY_MAX_CHARS = 16_000  # an RSA 16384-bit private key in PEM is under 13,000 characters
FILE_HEADER_PART = "X-Baton-File-Part"  # on each event stored from a file of several parts: "2 of 3"

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


class EdiInterchangeRefused(NormalizationFailed):
    """What the dispatch quarantines without a 997: an interchange from or to someone other than the
    partner's configured ids, or text outside any interchange of a file."""


@dataclass
class EdiPartnerInput:
    """A partner's settings as written by the setup page. The fields after `outbound_folder` are
    changes rather than settings: empty (or None) leaves what is stored."""

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
    sftp_host_key: str = ""  # the SFTP server's public key (OpenSSH, or a known_hosts line) to pin
    private_key: str = ""  # an SSH private key to log in with (SFTP), sealed with the credentials
    passphrase: str = ""  # the passphrase of `private_key`, when it is encrypted
    private_key_remove: bool = False
    next_interchange_control_number: int | None = None  # ISA13 of the next interchange Baton writes to them
    next_group_control_number: int | None = None  # GS06 of the next functional group


# The settings stored on `EdiPartner` as given.
PARTNER_FIELDS = (
    "their_qualifier",
    "their_id",
    "our_qualifier",
    "our_id",
    "their_application_id",
    "our_application_id",
    "version",
    "group_version",
    "usage",
    "element_separator",
    "component_separator",
    "segment_terminator",
    "repetition_separator",
    "wants_997",
    "inbound_folder",
    "archive_folder",
    "error_folder",
    "outbound_folder",
)


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


# --- SSH keys -----------------------------------------------------------------------------------------


class SshKeyInvalid(ValueError):
    """A pasted SSH key that cannot be used; `pointer` names the input at fault."""

    def __init__(self, pointer: str, reason: str):
        super().__init__(reason)
        self.pointer, self.reason = pointer, reason


def ssh_key_label(key: asyncssh.SSHKey) -> str:
    """What may be shown of a key: its type and SHA-256 fingerprint, as `ssh-keygen -l` prints them."""
    return f"{key.get_algorithm()} {key.get_fingerprint()}"


def ssh_host_key_label(text: str) -> str:
    """The label of a pinned host key (OpenSSH public key text); "" when there is none or it is unreadable."""
    try:
        return ssh_key_label(asyncssh.import_public_key(text)) if text.strip() else ""
    except (asyncssh.KeyImportError, ValueError):
        return ""


def ssh_private_key_read(text: str, passphrase: str = "") -> asyncssh.SSHKey:
    """The private key in `text` (OpenSSH, PEM, PKCS#8 or PuTTY), opened with `passphrase` when it
    is encrypted; SshKeyInvalid saying what is wrong with which input."""
    text = text.strip()
    if len(text) > SSH_KEY_MAX_CHARS:
        raise SshKeyInvalid("/private_key", f"is longer than {SSH_KEY_MAX_CHARS} characters: paste one private key")
    try:
        return asyncssh.import_private_key(text)
    except asyncssh.KeyImportError as error:
        if "Passphrase must be specified" not in str(error):
            try:
                asyncssh.import_public_key(text)
            except (asyncssh.KeyImportError, ValueError):
                raise SshKeyInvalid(
                    "/private_key", "is not an SSH private key: paste the whole key file, from its -----BEGIN line to its -----END line"
                ) from error
            raise SshKeyInvalid("/private_key", "is a public key: paste the private key (the key file without .pub)") from error
    if not passphrase:
        raise SshKeyInvalid("/passphrase", "is required: this private key is encrypted, enter the passphrase that opens it")
    try:
        return asyncssh.import_private_key(text, passphrase)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as error:
        if "bcrypt" in str(error):
            raise SshKeyInvalid(
                "/private_key",
                "is encrypted in OpenSSH's own format, which this Baton cannot open (no bcrypt support): remove the passphrase "
                "(ssh-keygen -p -N '' -f KEYFILE) and paste the key again; Baton encrypts it at rest",
            ) from error
        raise SshKeyInvalid("/passphrase", "does not open this private key: check it and type it again") from error


def ssh_host_key_read(text: str) -> asyncssh.SSHKey:
    """The public key in `text`: an OpenSSH public key ("ssh-ed25519 AAAA…") or a known_hosts line
    ("host ssh-ed25519 AAAA…"); SshKeyInvalid otherwise."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 1:
        raise SshKeyInvalid("/sftp_host_key", "paste one key, on one line: the server's public host key or its known_hosts line")
    line = lines[0]
    for candidate in (line, line.split(None, 1)[-1]):  # the second without a known_hosts line's host names
        try:
            return asyncssh.import_public_key(candidate)
        except (asyncssh.KeyImportError, ValueError):
            continue
    private = "PRIVATE KEY" in text
    raise SshKeyInvalid(
        "/sftp_host_key",
        "is a private key: paste the server's public host key, never a private one"
        if private
        else "is not an SSH public key: paste a line like “ssh-ed25519 AAAA…” (ssh-keyscan prints it) or the server's known_hosts line",
    )


# --- partner settings ---------------------------------------------------------------------------------


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
    for name in ("next_interchange_control_number", "next_group_control_number"):
        number = getattr(data, name)
        if number is not None and not 1 <= number <= CONTROL_NUMBER_MAX:
            problems.append(ConnectionProblem(f"/{name}", f"must be a number from 1 to {CONTROL_NUMBER_MAX:,}"))
    return problems


def _key_problems(connection: Connection, data: EdiPartnerInput) -> tuple[list[ConnectionProblem], asyncssh.SSHKey | None, str]:
    """Problems with the pasted keys, the private key to store (if any) and the host key to pin
    (its OpenSSH text, "" to keep what is pinned)."""
    problems = []
    private_key = None
    if data.private_key.strip():
        if data.private_key_remove:
            problems.append(ConnectionProblem("/private_key", "choose one: remove the stored private key, or paste a new one"))
        elif connection.transport != Transport.SFTP:
            problems.append(
                ConnectionProblem("/private_key", "only SFTP partners log in with a key: this connection's transport is not SFTP")
            )
        else:
            try:
                private_key = ssh_private_key_read(data.private_key, data.passphrase)
            except SshKeyInvalid as invalid:
                problems.append(ConnectionProblem(invalid.pointer, invalid.reason))
    elif data.passphrase:
        problems.append(ConnectionProblem("/passphrase", "goes with a private key: paste the key it opens too"))
    host_key = ""
    if data.sftp_host_key.strip():
        try:
            host_key = ssh_host_key_read(data.sftp_host_key).export_public_key().decode().strip()
        except SshKeyInvalid as invalid:
            problems.append(ConnectionProblem(invalid.pointer, invalid.reason))
    return problems, private_key, host_key


def _private_key_store(connection: Connection, data: EdiPartnerInput, key: asyncssh.SSHKey | None) -> str:
    """Seal a new private key (and its passphrase) with the connection's credentials, or remove the
    stored one; the mask shown is the key's type and fingerprint. Returns what changed, for the audit."""
    if key is None and not (data.private_key_remove and "private_key" in connection.credential_masks):
        return ""
    locked = Connection.objects.select_for_update().get(pk=connection.pk)
    try:
        secrets = connection_secrets(locked)
    except SecretUnreadable as error:
        pointer = "/private_key" if key is not None else "/private_key_remove"
        raise EdiPartnerInvalid(
            [
                ConnectionProblem(
                    pointer, "the connection's stored credentials cannot be decrypted with the configured keys: enter them again first"
                )
            ]
        ) from error
    masks = {name: mask for name, mask in locked.credential_masks.items() if name not in TRANSPORT_SECRETS}
    secrets = {name: value for name, value in secrets.items() if name not in TRANSPORT_SECRETS}
    if key is not None:
        secrets["private_key"], masks["private_key"] = data.private_key.strip(), ssh_key_label(key)
        if _key_encrypted(data.private_key):
            secrets["passphrase"], masks["passphrase"] = data.passphrase, MASK
        change = f"set: {ssh_key_label(key)}"
    else:
        change = "removed"
    connection.credentials, connection.credential_masks = credentials_seal(secrets), masks
    connection.save(update_fields=["credentials", "credential_masks", "updated_at"])
    return change


def _key_encrypted(text: str) -> bool:
    """Whether the private key in `text` needs a passphrase to be opened."""
    try:
        asyncssh.import_private_key(text.strip())
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError):
        return True
    return False


def _control_numbers_continue(partner: EdiPartner, data: EdiPartnerInput) -> dict[str, int]:
    """Move the partner's interchange and group counters so the next number handed out is the one
    asked for (a partner migrating from another system continues its sequence); never back to or
    below a number already used. Returns the numbers set, by level."""
    asked = {
        EdiControlLevel.INTERCHANGE: (data.next_interchange_control_number, "next_interchange_control_number", "interchange (ISA13)"),
        EdiControlLevel.GROUP: (data.next_group_control_number, "next_group_control_number", "group (GS06)"),
    }
    problems, moved = [], {}
    for level, (number, name, what) in asked.items():
        if number is None:
            continue
        EdiControlNumber.objects.bulk_create([EdiControlNumber(partner=partner, level=level, last=0)], ignore_conflicts=True)
        counter = EdiControlNumber.objects.select_for_update().get(partner=partner, level=level)
        if number <= counter.last:
            problems.append(
                ConnectionProblem(
                    f"/{name}",
                    f"{number:09d} was used already: the last {what} control number Baton wrote to this partner is "
                    f"{counter.last:09d}, so the next can be {counter.last + 1:09d} or higher",
                )
            )
        elif number != counter.last + 1:
            counter.last = number - 1
            counter.save(update_fields=["last"])
            moved[name] = number
    if problems:
        raise EdiPartnerInvalid(problems)
    return moved


def edi_partner_configure(*, connection: Connection, data: EdiPartnerInput, actor: Any) -> EdiPartner:
    """Create or change the connection's partner settings; the connection's inbound mapper becomes
    x12, so what it receives is read as interchanges. Also, as asked: pin the SFTP server's host key,
    set or remove the SSH private key (sealed with the credentials, never shown again: its type and
    fingerprint are), continue the control numbers from given ones. Audited, without secrets."""
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
    key_problems, private_key, host_key = _key_problems(connection, data)
    problems += key_problems
    if problems:
        raise EdiPartnerInvalid(problems)
    with transaction.atomic():
        partner = EdiPartner.objects.select_for_update().filter(connection=connection).first() or EdiPartner(connection=connection)
        created = partner.pk is None
        for name in PARTNER_FIELDS:
            value = getattr(data, name)
            setattr(partner, name, value.strip() if isinstance(value, str) and name.endswith(("_id", "_folder")) else value)
        pinned = bool(host_key) and host_key != partner.sftp_host_key
        if pinned:
            partner.sftp_host_key = host_key
        partner.save()
        moved = _control_numbers_continue(partner, data)
        key_change = _private_key_store(connection, data, private_key)
        if connection.inbound_mapper != InboundMapper.X12:
            connection.inbound_mapper = InboundMapper.X12
            connection.save(update_fields=["inbound_mapper", "updated_at"])
        changes = {
            **moved,
            **({"sftp_host_key": ssh_host_key_label(host_key)} if pinned else {}),
            **({"private_key": key_change} if key_change else {}),
        }
        audit_record(
            actor=actor,
            action="connection.edi_partner_created" if created else "connection.edi_partner_updated",
            target=connection,
            data={**{name: getattr(data, name) for name in PARTNER_FIELDS}, **changes},
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


@dataclass(frozen=True)
class StoredPart:
    """One part of a received file as stored: an interchange, or text outside any (`outside`),
    which the dispatch quarantines with the reason."""

    event: InboundEvent
    duplicate: bool
    outside: bool


@dataclass(frozen=True)
class FileReceived:
    """What became of a received file: one inbound event per interchange, and one per piece of
    text outside them, in file order."""

    parts: list[StoredPart]

    @property
    def event(self) -> InboundEvent:
        return self.parts[0].event

    @property
    def duplicate(self) -> bool:
        """Every part was received before: the file changed nothing."""
        return all(part.duplicate for part in self.parts)

    @property
    def interchanges(self) -> list[StoredPart]:
        return [part for part in self.parts if not part.outside]

    @property
    def outside(self) -> list[StoredPart]:
        return [part for part in self.parts if part.outside]


def _interchange_id(interchange: Interchange | None) -> str:
    """`x12:<sender id>:<ISA13>`, or "" when the ISA gives no control number."""
    if interchange is None or not interchange.control_number:
        return ""
    return f"x12:{interchange.sender_id}:{interchange.control_number}"[:200]


def _file_parts(text: str, file_name: str) -> list[tuple[str, str, dict[str, str], bool]]:
    """(body, external id, headers, outside) of each event the file becomes. A file holding one
    interchange and nothing else is kept whole, byte for byte; a file of several parts is cut at
    the interchanges' bounds and each part says where it was in the file."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    named = {"X-Baton-File": file_name[:200]} if file_name else {}
    parts: list[FilePart] = split(text)
    if len(parts) <= 1:
        interchange = parts[0].interchange if parts else None
        return [(text, _interchange_id(interchange) or f"sha256:{digest}", named, interchange is None)]
    stored = []
    for number, part in enumerate(parts, 1):
        headers = {**named, FILE_HEADER_PART: f"{number} of {len(parts)}", "X-Baton-File-Bytes": f"{part.start}-{part.end}"}
        headers["X-Baton-File-Sha256"] = digest
        external_id = _interchange_id(part.interchange) or f"sha256:{digest}:{part.start}"
        stored.append((part.text, external_id, headers, part.outside))
    return stored


def edi_receive(*, connection: Connection, data: bytes | str, channel: str, file_name: str = "") -> FileReceived:
    """Store a file's interchanges in the inbox, each as its own event keyed `x12:<sender>:<ISA13>`
    (a known interchange returns its first event), and any text between or after them as an event
    of its own (quarantined by the dispatch, saying where it was); all parts or none. EdiRefused
    when the file cannot be stored at all. Unreadable X12 is stored and quarantined by the dispatch
    with the reason."""
    from connectors.inbox import inbound_record  # the inbox calls back into this module when it dispatches

    text = interchange_text(data)
    stored = []
    with transaction.atomic():
        for body, external_id, headers, outside in _file_parts(text, file_name):
            received = inbound_record(
                connection=connection, channel=channel, external_id=external_id, body=body, content_type=EDI_CONTENT_TYPE, headers=headers
            )
            stored.append(StoredPart(received.event, received.duplicate, outside))
    return FileReceived(stored)


# --- acknowledging ------------------------------------------------------------------------------------


def _outside_refusal(event: InboundEvent) -> EdiInterchangeRefused:
    """Why a part of a file that holds no interchange is quarantined: where it was, what it says."""
    excerpt = " ".join(event.body.split())[:60]
    where = f"part {event.headers.get(FILE_HEADER_PART, '?')} of the file"
    if event.headers.get("X-Baton-File-Bytes"):
        where += f", bytes {event.headers['X-Baton-File-Bytes']}"
    return EdiInterchangeRefused(
        f"text outside any interchange ({where}): {excerpt!r}. The interchanges around it were stored and answered on their own; "
        "if this is an interchange, fix it and replay"
    )


def _party_refusal(partner: EdiPartner, interchanges: list[Interchange]) -> EdiInterchangeRefused | None:
    """Why interchanges are not the partner's to us – their ISA05/06 are not the partner's ids, or
    ISA07/08 not ours for the partner – or None. An ISA too broken to name anyone is left to the
    reader's own errors."""
    name = partner.connection.name
    for interchange in interchanges:
        if len(interchange.header.elements) <= 8:
            continue
        expected = (
            (5, interchange.sender_qualifier, partner.their_qualifier, f"partner {name} sends with qualifier"),
            (6, interchange.sender_id, partner.their_id, f"partner {name} sends as"),
            (7, interchange.receiver_qualifier, partner.our_qualifier, f"partner {name} addresses us with qualifier"),
            (8, interchange.receiver_id, partner.our_id, f"partner {name} addresses us as"),
        )
        wrong = [(element, found, wanted, says) for element, found, wanted, says in expected if found != wanted]
        if wrong:
            reason = "; ".join(f"ISA{element:02d} is '{found}' but {says} '{wanted}'" for element, found, wanted, says in wrong)
            position = interchange.header.position(interchange.index, element=wrong[0][0])
            return EdiInterchangeRefused(f"{reason}: no 997 was sent", position.describe())
    return None


def edi_acknowledgement_prepare(event: InboundEvent) -> None:
    """Called by the inbox's dispatch for an X12 event, in its transaction, once it stored the 997
    in `event.acknowledgement` and before it normalizes the body.

    It refuses (raises EdiInterchangeRefused, a NormalizationFailed: the dispatch quarantines the
    event with the reason) text that was outside any interchange of a file, and an interchange not
    from the partner's ISA ids to ours; then no 997 is kept or sent, since the sender is not a party
    we know. Otherwise, for a partner that wants 997s, the 997 is written again with the partner's
    ids, delimiters and database control numbers (the stored one is replaced, so what the event
    shows is what the partner gets), and an SFTP partner's is queued for its outbound folder. A
    replayed event keeps the first answer: the partner has it or will."""
    interchanges = parse(event.body).interchanges if "ISA" in event.body else []
    refusal = _outside_refusal(event) if not interchanges and FILE_HEADER_PART in (event.headers or {}) else None
    partner = EdiPartner.objects.select_related("connection").filter(connection_id=event.connection_id).first()
    if refusal is None and partner is not None:
        refusal = _party_refusal(partner, interchanges)
    if refusal is not None:
        event.acknowledgement = ""
        event.save(update_fields=["acknowledgement"])
        raise refusal
    if partner is None or not partner.wants_997 or not event.acknowledgement:
        return
    queued = EdiAcknowledgement.objects.filter(event=event).first()
    if queued is not None:
        text = queued.text
    else:
        control_numbers = EdiControlNumbers()
        settings = partner_settings(partner)
        interchanges = parse(event.body).interchanges
        answers = [acknowledge(interchange, partner=settings, control_numbers=control_numbers) for interchange in interchanges]
        text = "".join(answer for answer in answers if answer)
        kind = "TA1" if all(interchange.rejected for interchange in interchanges) else "997"
        if not text:
            return
        if partner.connection.transport == Transport.SFTP:
            isa13 = f"{control_numbers.handed_out[0]:09d}"
            EdiAcknowledgement.objects.create(
                event=event,
                partner=partner,
                interchange_control_number=isa13,
                file_name=f"{kind}_{isa13}.edi",
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
        received = edi_receive(connection=connection, data=data, channel="sftp", file_name=original)
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
