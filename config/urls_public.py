"""The MSP console's host (public schema)."""

from django.urls import include, path

from config.urls_common import urlpatterns as common

urlpatterns = [
    path("", include("console.urls")),
    path("api/v1/", include("console.api.urls")),
    *common,
]
