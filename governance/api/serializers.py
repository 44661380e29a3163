from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    row_hash = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "actor_email",
            "actor_kind",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "tenant_slug",
            "reason",
            "data",
            "chain_seq",
            "row_hash",
        ]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_row_hash(self, event: AuditEvent) -> str | None:
        """Null until the row is sealed into the chain (moments after its transaction commits)."""
        return event.row_hash if event.chain_seq is not None else None
