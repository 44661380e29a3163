from django.urls import path

from connectors.api import edi, exchanges, views, webhooks

urlpatterns = [
    path("connections", views.ConnectionListCreate.as_view(), name="api-connections"),
    path("connections/<slug:key>", views.ConnectionDetail.as_view(), name="api-connection"),
    path("connections/<slug:key>/test", views.ConnectionTest.as_view(), name="api-connection-test"),
    path("connections/<slug:key>/interchanges", edi.InterchangeReceive.as_view(), name="api-connection-interchanges"),
    path("connections/<slug:key>/exchanges", exchanges.ConnectorExchangeList.as_view(), name="api-connection-exchanges"),
    path(
        "connections/<slug:key>/exchanges/<int:exchange_id>",
        exchanges.ConnectorExchangeDetail.as_view(),
        name="api-connection-exchange",
    ),
    path("inbound-events", views.InboundEventList.as_view(), name="api-inbound-events"),
    path("inbound-events/<int:event_id>", views.InboundEventDetail.as_view(), name="api-inbound-event"),
    path("inbound-events/<int:event_id>/replay", views.InboundEventReplay.as_view(), name="api-inbound-event-replay"),
    path("webhook-endpoints", webhooks.WebhookEndpointListCreate.as_view(), name="api-webhook-endpoints"),
    path("webhook-endpoints/<int:endpoint_id>", webhooks.WebhookEndpointDetail.as_view(), name="api-webhook-endpoint"),
    path("webhook-endpoints/<int:endpoint_id>/rotate", webhooks.WebhookEndpointRotate.as_view(), name="api-webhook-endpoint-rotate"),
    path(
        "webhook-endpoints/<int:endpoint_id>/deliveries",
        webhooks.WebhookEndpointDeliveries.as_view(),
        name="api-webhook-endpoint-deliveries",
    ),
    path("webhook-deliveries/<int:delivery_id>/replay", webhooks.WebhookDeliveryReplay.as_view(), name="api-webhook-delivery-replay"),
]
