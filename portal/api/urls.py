from django.urls import include, path

from portal.api import views

urlpatterns = [
    path("tenant", views.TenantView.as_view(), name="api-tenant"),
    path("audit-events", views.AuditEventList.as_view(), name="api-audit-events"),
    path("audit-events/<int:pk>", views.AuditEventDetail.as_view(), name="api-audit-event"),
    path("", include("workflows.api.urls")),
    path("", include("connectors.api.urls")),
    path("", include("logistics.notification_api")),  # milestone subscriptions
    path("", include("insights.api")),
]
urlpatterns += [path("", include("portal.api.experience"))]  # the Experience API: shipments, documents, invoices, subscriptions
