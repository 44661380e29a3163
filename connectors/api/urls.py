from django.urls import path

from connectors.api import views

urlpatterns = [
    path("connections", views.ConnectionListCreate.as_view(), name="api-connections"),
    path("connections/<slug:key>", views.ConnectionDetail.as_view(), name="api-connection"),
    path("connections/<slug:key>/test", views.ConnectionTest.as_view(), name="api-connection-test"),
    path("inbound-events", views.InboundEventList.as_view(), name="api-inbound-events"),
    path("inbound-events/<int:event_id>", views.InboundEventDetail.as_view(), name="api-inbound-event"),
    path("inbound-events/<int:event_id>/replay", views.InboundEventReplay.as_view(), name="api-inbound-event-replay"),
]
