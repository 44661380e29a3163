"""The API's defaults: per-plan throttling and cursor pagination (named in config/settings/api.py)."""

from django.conf import settings
from rest_framework.pagination import CursorPagination
from rest_framework.throttling import SimpleRateThrottle

from tenants.db import connection


class PlanRateThrottle(SimpleRateThrottle):
    """Requests per minute per API key or user, by the tenant's plan; counted per schema."""

    scope = "plan"

    def get_rate(self) -> str:
        return "60/min"

    def allow_request(self, request, view):
        tenant = getattr(request, "tenant", None)
        plan = getattr(tenant, "plan", "enterprise")
        self.num_requests, self.duration = settings.BATON_PLAN_RATE_LIMITS.get(plan, 60), 60
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        """Per key by its random prefix, not its row id: ids repeat in a restored or recreated
        database while the counters in Redis live on."""
        key = getattr(request, "auth", None)
        ident = (
            f"key:{key.prefix}"
            if key is not None and hasattr(key, "prefix")
            else (f"user:{request.user.pk}" if request.user and request.user.is_authenticated else f"ip:{self.get_ident(request)}")
        )
        return f"throttle:{connection.schema_name}:{ident}"


class NewestFirstCursorPagination(CursorPagination):
    """Cursor pagination on the primary key: stable under inserts, cheap at any depth."""

    ordering = "-pk"
    page_size_query_param = "page_size"
    max_page_size = 200
