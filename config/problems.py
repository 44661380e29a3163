"""API errors as RFC 9457 problem+json, and per-plan request throttling."""

from django.conf import settings
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import exception_handler

from tenants.db import connection

PROBLEM_BASE = "https://baton.dev/problems/"
_TYPES = {
    exceptions.NotAuthenticated: "not-authenticated",
    exceptions.AuthenticationFailed: "authentication-failed",
    exceptions.PermissionDenied: "permission-denied",
    exceptions.NotFound: "not-found",
    exceptions.ValidationError: "validation-error",
    exceptions.Throttled: "rate-limited",
    exceptions.MethodNotAllowed: "method-not-allowed",
    exceptions.ParseError: "malformed-request",
    exceptions.UnsupportedMediaType: "unsupported-media-type",
}


def problem_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None
    kind = next((name for cls, name in _TYPES.items() if isinstance(exc, cls)), "error")
    body = {
        "type": PROBLEM_BASE + kind,
        "title": getattr(exc, "default_detail", "Error"),
        "status": response.status_code,
        "detail": _detail_text(response.data),
        "instance": context["request"].path if context.get("request") else "",
    }
    if isinstance(exc, exceptions.ValidationError):
        body["errors"] = response.data
    if isinstance(exc, exceptions.Throttled) and exc.wait:
        body["retry_after_seconds"] = int(exc.wait)
    problem = Response(body, status=response.status_code, headers=dict(response.items()))
    problem.content_type = "application/problem+json"
    return problem


def _detail_text(data) -> str:
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    if isinstance(data, dict):
        return "; ".join(f"{field}: {' '.join(map(str, errors)) if isinstance(errors, list) else errors}" for field, errors in data.items())
    if isinstance(data, list):
        return " ".join(map(str, data))
    return str(data)


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
        key = getattr(request, "auth", None)
        ident = (
            f"key:{key.pk}"
            if key is not None and hasattr(key, "prefix")
            else (f"user:{request.user.pk}" if request.user and request.user.is_authenticated else f"ip:{self.get_ident(request)}")
        )
        return f"throttle:{connection.schema_name}:{ident}"


class NewestFirstCursorPagination(CursorPagination):
    """Cursor pagination on the primary key: stable under inserts, cheap at any depth."""

    ordering = "-pk"
    page_size_query_param = "page_size"
    max_page_size = 200
