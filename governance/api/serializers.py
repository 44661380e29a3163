from rest_framework import serializers

from governance.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
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
            "row_hash",
        ]
