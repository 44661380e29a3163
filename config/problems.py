"""API errors as RFC 9457 problem+json."""

from typing import Any

from rest_framework import exceptions
from rest_framework.response import Response

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
    # Imported here: DRF's views read the API settings, which name classes in config.api_policies.
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
        return None
    # An exception may name its own problem type and carry its own `errors` list.
    kind = getattr(exc, "problem_type", "") or next((name for cls, name in _TYPES.items() if isinstance(exc, cls)), "error")
    body = {
        "type": PROBLEM_BASE + kind,
        "title": getattr(exc, "default_detail", "Error"),
        "status": response.status_code,
        "detail": _detail_text(response.data),
        "instance": context["request"].path if context.get("request") else "",
    }
    if getattr(exc, "problem_errors", None) is not None:
        body["errors"] = exc.problem_errors
    elif isinstance(exc, exceptions.ValidationError):
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


def serializer_error_pointers(errors: Any, pointer: str = "") -> list[tuple[str, str]]:
    """Every error of a DRF serializer as (JSON pointer, message), nested fields and list items included."""
    if isinstance(errors, dict):
        return [pair for name, inner in errors.items() for pair in serializer_error_pointers(inner, f"{pointer}/{name}")]
    if isinstance(errors, list) and errors and all(isinstance(item, str) for item in errors):
        return [(pointer, str(message)) for message in errors]
    if isinstance(errors, list):
        return [pair for index, inner in enumerate(errors) for pair in serializer_error_pointers(inner, f"{pointer}/{index}")]
    return [(pointer, str(errors))]
