from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from governance.api.serializers import AuditEventSerializer
from governance.models import AuditEvent
from portal.api.permissions import scoped
from tenants.db import connection


class TenantView(APIView):
    """The tenant this host serves."""

    permission_classes = [scoped("tenant:read")]

    @extend_schema(
        responses=inline_serializer(
            "Tenant",
            {
                "name": serializers.CharField(),
                "slug": serializers.CharField(),
                "plan": serializers.CharField(),
                "time_zone": serializers.CharField(),
            },
        )
    )
    def get(self, request):
        tenant = connection.tenant
        return Response({"name": tenant.name, "slug": tenant.slug, "plan": tenant.plan, "time_zone": tenant.time_zone})


class AuditEventList(generics.ListAPIView):
    """This tenant's audit log, newest first."""

    serializer_class = AuditEventSerializer
    permission_classes = [scoped("audit:read", Role.TENANT_ADMIN)]

    def get_queryset(self):
        return AuditEvent.objects.all()


class AuditEventDetail(generics.RetrieveAPIView):
    serializer_class = AuditEventSerializer
    permission_classes = [scoped("audit:read", Role.TENANT_ADMIN)]
    queryset = AuditEvent.objects.all()
