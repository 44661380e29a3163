from django.urls import path

from connectors import inbox_views, views

app_name = "connectors"
urlpatterns = [
    path("", views.connections, name="connections"),
    path("new/", views.connection_new, name="connection_new"),
    path("inbox/", inbox_views.inbox, name="inbox"),
    path("inbox/replay/", inbox_views.inbox_replay_all, name="inbox_replay_all"),
    path("inbox/<int:event_id>/", inbox_views.inbound_event, name="inbound_event"),
    path("inbox/<int:event_id>/replay/", inbox_views.inbound_event_replay, name="inbound_event_replay"),
    path("<slug:key>/", views.connection_detail, name="connection"),
    path("<slug:key>/test/", views.connection_test_view, name="connection_test"),
    path("<slug:key>/disable/", views.connection_disable_view, name="connection_disable"),
    path("<slug:key>/enable/", views.connection_enable_view, name="connection_enable"),
    path("<slug:key>/inbound/", views.connection_inbound_view, name="connection_inbound"),
    path("<slug:key>/inbound/rotate/", views.connection_inbound_rotate_view, name="connection_inbound_rotate"),
]
