from rest_framework import generics, serializers
from rest_framework.permissions import BasePermission

from tenants.models import Tenant
from tenants.selectors import tenants_filter


class IsMspStaff(BasePermission):
    message = "Only MSP staff can use the console API."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and getattr(request.user, "is_msp_staff", False))


class TenantSerializer(serializers.ModelSerializer):
    domains: serializers.SlugRelatedField = serializers.SlugRelatedField(many=True, read_only=True, slug_field="domain")
    partner: serializers.SlugRelatedField = serializers.SlugRelatedField(read_only=True, slug_field="slug")

    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "slug",
            "partner",
            "status",
            "status_reason",
            "plan",
            "time_zone",
            "domains",
            "created_at",
            "ready_at",
            "provisioning_seconds",
        ]


class TenantList(generics.ListAPIView):
    serializer_class = TenantSerializer
    permission_classes = [IsMspStaff]

    def get_queryset(self):
        return tenants_filter(query=self.request.query_params.get("q", ""), status=self.request.query_params.get("status", ""))


class TenantDetail(generics.RetrieveAPIView):
    serializer_class = TenantSerializer
    permission_classes = [IsMspStaff]
    queryset = Tenant.objects.prefetch_related("domains").select_related("partner")
