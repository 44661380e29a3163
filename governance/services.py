"""The one way anything is written to the audit log."""

import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from django.db import connection, transaction
from django.utils import timezone

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
    """Append one row to the current schema's audit chain, inside the caller's transaction.

    The advisory lock serialises writers per schema so each row links to the one before it;
    it is released when the caller's transaction ends, together with the change it records.
    No savepoint: a failed audit write fails the caller's transaction, which is what the caller
    wants (the change must not commit unaudited), and the common write saves two round trips.
    Inside `audit_deferred` the row is written now and linked at the block's end.
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
    pending: list[AuditEvent] | None = getattr(connection, _PENDING, None)
    if pending is not None and connection.in_atomic_block:
        event.previous_hash, event.row_hash = "", f"pending-{secrets.token_hex(28)}"  # linked by _audit_link
        event.save(force_insert=True)
        pending.append(event)
        return event
    with transaction.atomic(savepoint=False):
        _audit_lock()
        event.previous_hash = _audit_last_hash()
        event.row_hash = _row_hash(audit_hash_fields(event))
        event.save(force_insert=True)
    return event


# The connection's attribute holding the rows an `audit_deferred` block wrote (connections are per thread).
_PENDING = "baton_audit_pending"


@contextmanager
def audit_deferred() -> Iterator[None]:
    """Inside a transaction: the audit rows written in the block are linked into the chain at its
    end, so the schema's audit lock is held from there to the commit instead of from the first row.
    A long transaction (an inbox batch, an action) otherwise makes every other audited write in the
    schema wait for all of it, and taking the lock last keeps it out of deadlocks with row locks.

    Rows are written at once (so a savepoint that rolls back takes its rows with it) with a
    placeholder hash and an empty `previous_hash`; at the end the rows still there get their
    links, and new ids taken under the lock, so the chain's order stays the order of the ids.
    Nested blocks leave the linking to the outermost; an exception out of the block rolls its
    transaction back, since its rows were not linked."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_deferred() needs a transaction: its rows are linked before the commit")
    if getattr(connection, _PENDING, None) is not None:
        yield
        return
    pending: list[AuditEvent] = []
    setattr(connection, _PENDING, pending)
    try:
        yield
    except BaseException:
        if pending:
            transaction.set_rollback(True)  # its rows are not linked: they must not commit
        raise
    finally:
        setattr(connection, _PENDING, None)
    if pending:
        _audit_link(pending)


def _audit_link(pending: list[AuditEvent]) -> None:
    """Link the rows of an `audit_deferred` block that are still there (see it), in the order written."""
    alive = set(AuditEvent.objects.filter(pk__in=[event.pk for event in pending]).values_list("pk", flat=True))
    events = [event for event in pending if event.pk in alive]
    if not events:
        return
    table = AuditEvent._meta.db_table
    _audit_lock()
    with connection.cursor() as cursor:
        # The chain's last link and the rows' new ids in one round trip: the lock is held to the
        # commit, and on a busy worker each statement also waits for its turn at the interpreter.
        cursor.execute(
            f"SELECT (SELECT row_hash FROM {table} WHERE previous_hash <> '' ORDER BY id DESC LIMIT 1),"  # noqa: S608 - the model's own table
            f" ARRAY(SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s))",
            [table, len(events)],
        )
        last, fresh = cursor.fetchone()
        previous, ids = last or GENESIS_HASH, sorted(fresh)
        links = []
        for event, new_id in zip(events, ids, strict=True):
            event.previous_hash = previous
            event.row_hash = previous = _row_hash(audit_hash_fields(event))
            links.extend([event.pk, new_id, event.previous_hash, event.row_hash])
            event.pk = new_id
        values = ", ".join(["(%s::bigint, %s::bigint, %s, %s)"] * len(events))
        cursor.execute(
            f"UPDATE {table} AS audit SET id = link.new_id, previous_hash = link.previous_hash,"  # noqa: S608 - the model's own table
            f" row_hash = link.row_hash FROM (VALUES {values}) AS link(old_id, new_id, previous_hash, row_hash)"
            " WHERE audit.id = link.old_id",
            links,
        )


def _audit_lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':audit'))")


def _audit_last_hash() -> str:
    """The chain's last link (under the lock); rows of an `audit_deferred` block still waiting for
    theirs are not part of it yet."""
    last = AuditEvent.objects.exclude(previous_hash="").order_by("-id").values_list("row_hash", flat=True).first()
    return last or GENESIS_HASH


def _current_tenant_slug() -> str:
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "slug", "") or ""


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    rows_checked: int
    broken_row_id: int | None = None
    problem: str = ""


def audit_chain_verify() -> AuditVerification:
    """Recompute every row's hash in the current schema and check each links to its predecessor."""
    previous = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.previous_hash != previous:
            return AuditVerification(
                False, checked, event.id, "its previous_hash does not match the row before it (a row was removed or reordered)"
            )
        if _row_hash(audit_hash_fields(event)) != event.row_hash:
            return AuditVerification(False, checked, event.id, "its content no longer matches its hash (the row was changed)")
        previous = event.row_hash
        checked += 1
    return AuditVerification(True, checked)
