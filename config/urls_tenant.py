"""A tenant's host (its schema): the workspace, the customer portal and the tenant API."""

from django.urls import include, path

from config.urls_common import urlpatterns as common

urlpatterns = [
    path("", include("portal.urls")),
    path("workflows/", include("workflows.urls")),
    path("connections/", include("connectors.urls")),
    path("logistics/", include("logistics.urls")),
    path("exceptions/", include("logistics.exception_urls")),
    path("insights/", include("insights.urls")),
    path("hooks/", include("connectors.hook_urls")),
    path("api/v1/", include("portal.api.urls")),
    *common,
]
