"""The one way anything is written to the audit log."""

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import structlog
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from governance.models import AuditEvent

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who acted: a person (by email), a machine credential, or Baton itself."""

    email: str
    kind: str = "user"  # user, support, api_key, system

    @classmethod
    def system(cls, name: str = "baton") -> "Actor":
        return cls(email=f"system:{name}", kind="system")


def actor_of(actor: Any) -> Actor:
    """Accept an Actor or a signed-in user; support sessions are marked as such."""
    if isinstance(actor, Actor):
        return actor
    if actor is None or not getattr(actor, "is_authenticated", False):
        return Actor.system()
    kind = "support" if getattr(actor, "support_grant_id", None) else "user"
    return Actor(email=actor.email, kind=kind)


def _row_hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def audit_hash_fields(event: AuditEvent) -> dict[str, Any]:
    """The fields a row's hash covers; shared by the writer and the verifier."""
    return {
        "occurred_at": event.occurred_at.isoformat(),
        "actor_email": event.actor_email,
        "actor_kind": event.actor_kind,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": str(event.target_id),
        "target_label": event.target_label,
        "tenant_slug": event.tenant_slug,
        "reason": event.reason,
        "data": event.data,
        "request_id": event.request_id,
        "previous_hash": event.previous_hash,
    }


def audit_record(
    *,
    actor: Any,
    action: str,
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    tenant_slug: str = "",
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one row to the current schema's audit log, inside the caller's transaction, so it
    commits with the change it records or not at all.

    No lock and no savepoint: the row is written unsealed and linked into the hash chain after the
    commit (`audit_seal`), so audited writes never queue behind one another. A failed audit write
    fails the caller's transaction, which is what the caller wants (no change commits unaudited).
    """
    who = actor_of(actor)
    if target is not None:
        target_type = target_type or f"{target._meta.app_label}.{target._meta.model_name}"
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)[:200]
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor_email=who.email,
        actor_kind=who.kind,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        target_label=target_label,
        tenant_slug=tenant_slug or _current_tenant_slug(),
        reason=reason,
        data=json.loads(json.dumps(data or {}, default=str)),
        request_id=request_id,
    )
    event.previous_hash, event.row_hash = "", f"pending-{secrets.token_hex(28)}"  # set when sealed
    event.save(force_insert=True)
    _seal_after_commit()
    return event


# Rows per sealing transaction: a backlog is sealed in several, each short.
SEAL_BATCH = 1000
# How long one caller goes on sealing others' rows while they keep arriving; past it, the next
# commit's seal (or the sweep, if none comes) takes over.
SEAL_SECONDS = 1.0
# The connection's attribute: per schema, when (time.monotonic_ns) this connection last began
# sealing. Connections are per thread, and a commit's callbacks run on its thread in order.
_SEALING_SINCE = "baton_audit_sealing_since"


def _sealing_since() -> dict[str, int]:
    """This connection's record of when it last began sealing, per schema."""
    since: dict[str, int] | None = getattr(connection, _SEALING_SINCE, None)
    if since is None:
        since = {}
        setattr(connection, _SEALING_SINCE, since)
    return since


def _seal_after_commit() -> None:
    """Seal once the writer's transaction commits (at once in autocommit). One seal per commit and
    schema: the callbacks of rows written before a seal began on this connection have nothing left."""
    schema, written = _schema(), time.monotonic_ns()

    def seal() -> None:
        if _sealing_since().get(schema, 0) > written:
            return
        if _schema() == schema:
            audit_seal()
            return
        with schema_context(schema):
            audit_seal()

    transaction.on_commit(seal, robust=True)  # a failed seal is logged; the next seal or the sweep takes the rows


def audit_seal(seconds: float = SEAL_SECONDS) -> int:
    """Link the current schema's committed, unsealed audit rows into its hash chain, in the order of
    their ids, and give each its place (`chain_seq`). Returns how many it sealed.

    Writers never wait for each other or for the chain: a row is written unsealed in its writer's
    transaction, and sealed after the commit by whoever gets the schema's seal lock. One that does
    not get it leaves its rows to the holder, which looks again after letting the lock go, so a row
    committed while a seal was running is not left behind. It stops after `seconds` while rows
    keep coming (a stream's next commit seals them), so no writer's thread becomes the sealer for
    good. Rows of a transaction that rolls back are never sealed; the beat sweep
    (`governance.audit_seal_all`) seals what a crash or a last hand-over left."""
    _sealing_since()[_schema()] = time.monotonic_ns()
    sealed, deadline = 0, time.monotonic() + seconds
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || ':audit'))")
                if not cursor.fetchone()[0]:
                    return sealed  # the holder looks again after it lets go
            batch = _seal_batch()
        sealed += batch
        if time.monotonic() > deadline or (batch < SEAL_BATCH and not AuditEvent.objects.filter(chain_seq__isnull=True).exists()):
            return sealed


def _seal_batch() -> int:
    """Under the seal lock: link up to SEAL_BATCH unsealed rows after the chain's last."""
    table = AuditEvent._meta.db_table
    last = AuditEvent.objects.filter(chain_seq__isnull=False).order_by("-chain_seq").values_list("chain_seq", "row_hash").first()
    seq, previous = last or (0, GENESIS_HASH)
    assert seq is not None  # the filter's
    events = list(AuditEvent.objects.filter(chain_seq__isnull=True).order_by("id")[:SEAL_BATCH])
    if not events:
        return 0
    links: list[Any] = []
    for event in events:
        seq += 1
        event.previous_hash = previous
        event.row_hash = previous = _row_hash(audit_hash_fields(event))
        links.extend([event.pk, seq, event.previous_hash, event.row_hash])
    values = ", ".join(["(%s::bigint, %s::bigint, %s, %s)"] * len(events))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS audit SET chain_seq = link.chain_seq, previous_hash = link.previous_hash,"  # noqa: S608 - the model's own table
            f" row_hash = link.row_hash FROM (VALUES {values}) AS link(id, chain_seq, previous_hash, row_hash)"
            " WHERE audit.id = link.id",
            links,
        )
    return len(events)


def _schema() -> str:
    return connection.schema_name  # type: ignore[attr-defined]  # django-tenants' connection


def _current_tenant_slug() -> str:
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "slug", "") or ""


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    rows_checked: int
    broken_row_id: int | None = None
    problem: str = ""
    waiting: int = 0  # rows written but not sealed yet (their transactions may still be open)


def audit_chain_verify() -> AuditVerification:
    """Recompute every sealed row's hash in the current schema, in chain order, and check each links
    to its predecessor."""
    previous = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.filter(chain_seq__isnull=False).order_by("chain_seq").iterator(chunk_size=2000):
        if event.previous_hash != previous:
            return AuditVerification(
                False, checked, event.id, "its previous_hash does not match the row before it (a row was removed or reordered)"
            )
        if _row_hash(audit_hash_fields(event)) != event.row_hash:
            return AuditVerification(False, checked, event.id, "its content no longer matches its hash (the row was changed)")
        previous = event.row_hash
        checked += 1
    return AuditVerification(True, checked, waiting=AuditEvent.objects.filter(chain_seq__isnull=True).count())
