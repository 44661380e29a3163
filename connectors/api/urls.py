from django.urls import path

from connectors.api import views

urlpatterns = [
    path("connections", views.ConnectionListCreate.as_view(), name="api-connections"),
    path("connections/<slug:key>", views.ConnectionDetail.as_view(), name="api-connection"),
    path("connections/<slug:key>/test", views.ConnectionTest.as_view(), name="api-connection-test"),
]
