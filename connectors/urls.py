from django.urls import path

from connectors import views

app_name = "connectors"
urlpatterns = [
    path("", views.connections, name="connections"),
    path("new/", views.connection_new, name="connection_new"),
    path("<slug:key>/", views.connection_detail, name="connection"),
    path("<slug:key>/test/", views.connection_test_view, name="connection_test"),
    path("<slug:key>/disable/", views.connection_disable_view, name="connection_disable"),
    path("<slug:key>/enable/", views.connection_enable_view, name="connection_enable"),
]
