"""REST API: DRF with tenant API keys, problem+json errors, OpenAPI, per-plan throttling."""

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.problems.problem_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["config.api_policies.PlanRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "config.api_policies.NewestFirstCursorPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Baton API",
    "DESCRIPTION": "Baton's tenant API. Authenticate with `Authorization: Api-Key <key>`. Errors are RFC 9457 problem+json documents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status`: name each choice set rather than let a hash do it.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "workflows.models.RunStatus",
        "StepStatusEnum": "workflows.models.StepStatus",
        "VersionStatusEnum": "workflows.models.VersionStatus",
        "IncidentStatusEnum": "workflows.models.IncidentStatus",
        "ApprovalStatusEnum": "workflows.models.ApprovalStatus",
        "ConnectionKindEnum": "connectors.models.ConnectionKind",
        "InboundStatusEnum": "connectors.models.InboundStatus",
        "WebhookDeliveryStatusEnum": "connectors.models.DeliveryStatus",
    },
}
# Requests per minute per API key (or per user), by the tenant's plan.
BATON_PLAN_RATE_LIMITS = {"starter": 60, "standard": 600, "enterprise": 6000}
