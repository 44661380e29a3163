from django.urls import path

from portal import account_views, notification_views, shipment_views, texts_views, views

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("settings/audit/", views.audit, name="audit"),
    path("settings/users/", views.users, name="users"),
    path("settings/users/customers/invite/", views.customer_invite, name="customer_invite"),
    path("settings/users/<int:user_id>/role/", views.user_role, name="user_role"),
    path("settings/users/<int:user_id>/deactivate/", views.user_deactivate_view, name="user_deactivate"),
    path("settings/api-keys/", views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
    path("settings/support-access/", views.support_access, name="support_access"),
    path("settings/support-access/<int:grant_id>/revoke/", views.support_access_revoke_view, name="support_access_revoke"),
    path("support/enter", views.support_enter, name="support_enter"),
    path("settings/portal-texts/", texts_views.portal_texts, name="portal_texts"),
    path(".well-known/baton-domain", texts_views.domain_token_answer, name="domain_token"),
    path("brand/<str:kind>", views.brand_asset, name="brand_asset"),
    # customer portal: shipments (portal/shipment_views.py)
    path("shipments/", shipment_views.shipments, name="shipments"),
    path("shipments/export.csv", shipment_views.shipments_export, name="shipments_export"),
    path("shipments/saved-views/", shipment_views.saved_view_create, name="saved_view_create"),
    path("shipments/saved-views/<int:view_id>/delete/", shipment_views.saved_view_remove, name="saved_view_delete"),
    path("shipments/documents/<str:token>/", shipment_views.document_download, name="shipment_document"),
    path("shipments/<str:reference>/", shipment_views.shipment, name="shipment"),
    path("shipments/<str:reference>/timeline.json", shipment_views.shipment_timeline, name="shipment_timeline"),
    # customer portal: notification preferences and the account's API keys (portal/notification_views.py, account_views.py)
    path("notifications/", notification_views.preferences, name="notifications"),
    path("notifications/new/", notification_views.preference_new, name="notification_new"),
    path("notifications/<int:subscription_id>/", notification_views.preference, name="notification"),
    path("notifications/<int:subscription_id>/pause/", notification_views.preference_pause, name="notification_pause"),
    path("notifications/<int:subscription_id>/resume/", notification_views.preference_resume, name="notification_resume"),
    path("account/api-keys/", account_views.api_keys, name="account_api_keys"),
    path("account/api-keys/<int:key_id>/revoke/", account_views.api_key_revoke_view, name="account_api_key_revoke"),
]
