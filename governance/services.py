"""The one way anything is written to the audit log."""

import hashlib
import json
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
    """
    who = actor_of(actor)
    if target is not None:
        target_type = target_type or f"{target._meta.app_label}.{target._meta.model_name}"
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)[:200]
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':audit'))")
        last = AuditEvent.objects.order_by("-id").values_list("row_hash", flat=True).first()
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
            previous_hash=last or GENESIS_HASH,
        )
        event.row_hash = _row_hash(audit_hash_fields(event))
        event.save(force_insert=True)
    return event


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
