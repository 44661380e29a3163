from django.urls import path

from connectors import edi_views, inbox_views, views, webhook_views

app_name = "connectors"
urlpatterns = [
    path("", views.connections, name="connections"),
    path("new/", views.connection_new, name="connection_new"),
    path("inbox/", inbox_views.inbox, name="inbox"),
    path("inbox/replay/", inbox_views.inbox_replay_all, name="inbox_replay_all"),
    path("inbox/<int:event_id>/", inbox_views.inbound_event, name="inbound_event"),
    path("inbox/<int:event_id>/replay/", inbox_views.inbound_event_replay, name="inbound_event_replay"),
    path("webhooks/", webhook_views.webhooks, name="webhooks"),
    path("webhooks/new/", webhook_views.webhook_new, name="webhook_new"),
    path("webhooks/<int:endpoint_id>/", webhook_views.webhook_endpoint, name="webhook_endpoint"),
    path("webhooks/<int:endpoint_id>/rotate/", webhook_views.webhook_endpoint_rotate_view, name="webhook_endpoint_rotate"),
    path("webhooks/<int:endpoint_id>/enable/", webhook_views.webhook_endpoint_enable_view, name="webhook_endpoint_enable"),
    path("webhooks/<int:endpoint_id>/disable/", webhook_views.webhook_endpoint_disable_view, name="webhook_endpoint_disable"),
    path("webhooks/deliveries/replay/", webhook_views.webhook_replay_failed_view, name="webhook_replay_failed"),
    path("webhooks/deliveries/<int:delivery_id>/replay/", webhook_views.webhook_delivery_replay_view, name="webhook_delivery_replay"),
    path("<slug:key>/", views.connection_detail, name="connection"),
    path("<slug:key>/test/", views.connection_test_view, name="connection_test"),
    path("<slug:key>/outbound/", views.connection_exchanges, name="connection_exchanges"),
    path("<slug:key>/outbound/<int:exchange_id>/", views.connection_exchange, name="connection_exchange"),
    path("<slug:key>/disable/", views.connection_disable_view, name="connection_disable"),
    path("<slug:key>/enable/", views.connection_enable_view, name="connection_enable"),
    path("<slug:key>/inbound/", views.connection_inbound_view, name="connection_inbound"),
    path("<slug:key>/inbound/rotate/", views.connection_inbound_rotate_view, name="connection_inbound_rotate"),
    path("<slug:key>/edi/upload/", edi_views.edi_upload, name="edi_upload"),
    path("<slug:key>/edi/partner/", views.connection_edi_partner_view, name="connection_edi_partner"),
]
