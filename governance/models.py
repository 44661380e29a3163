"""The audit log: append-only at the database level and hash-chained row to row."""

from django.db import models


class AuditEvent(models.Model):
    """Who did what to which thing, when and why. Written in the same transaction as the change.

    Each schema has its own chain: platform events in public, a tenant's events in its schema.
    A row is written unsealed (empty `previous_hash`, a placeholder `row_hash`, no `chain_seq`) and
    sealed after its transaction commits (`governance.services.audit_seal`).
    """

    occurred_at = models.DateTimeField()
    actor_email = models.CharField(max_length=254)
    actor_kind = models.CharField(max_length=20)  # user, system, api_key, support
    action = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=80)
    target_id = models.CharField(max_length=80)
    target_label = models.CharField(max_length=200, blank=True)
    tenant_slug = models.CharField(max_length=40, blank=True, db_index=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict)
    request_id = models.CharField(max_length=64, blank=True)
    previous_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64, unique=True)
    chain_seq = models.BigIntegerField(null=True, unique=True, editable=False)  # its place in the chain, once sealed

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["occurred_at"]),
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["id"], condition=models.Q(chain_seq__isnull=True), name="governance_audit_unsealed"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id} by {self.actor_email}"
