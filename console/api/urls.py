from django.urls import path

from console.api import views

urlpatterns = [
    path("tenants", views.TenantList.as_view(), name="api-tenants"),
    path("tenants/<int:pk>", views.TenantDetail.as_view(), name="api-tenant-detail"),
]
