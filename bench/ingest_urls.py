"""The tenant URLconf plus the ingest bench's baseline view (`bench.ingest_baseline`)."""

from django.urls import path

from bench.ingest_baseline import BASELINE_PATH, baseline_receive
from config.urls_tenant import urlpatterns as tenant_urlpatterns

urlpatterns = [path(BASELINE_PATH.lstrip("/"), baseline_receive), *tenant_urlpatterns]
