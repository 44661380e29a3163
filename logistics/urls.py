from django.urls import path

from logistics import notification_views, views

app_name = "logistics"
urlpatterns = [
    path("mappings/", views.mappings, name="mappings"),
    path("mappings/<str:kind>/new/", views.mapping_draft_new, name="mapping_draft_new"),
    path("mappings/<str:kind>/<int:number>/", views.mapping_version, name="mapping_version"),
    path("mappings/<str:kind>/<int:number>/entries/", views.mapping_entry_save, name="mapping_entry_save"),
    path("mappings/<str:kind>/<int:number>/entries/remove/", views.mapping_entry_remove, name="mapping_entry_remove"),
    path("mappings/<str:kind>/<int:number>/discard/", views.mapping_version_discard, name="mapping_version_discard"),
    path("mappings/<str:kind>/<int:number>/publish/", views.mapping_version_publish, name="mapping_version_publish"),
    path("mappings/<str:kind>/<int:number>/activate/", views.mapping_version_activate, name="mapping_version_activate"),
    # customer milestone notifications (logistics/notification_views.py)
    path("notifications/", notification_views.subscriptions, name="notifications"),
    path("notifications/new/", notification_views.subscription_new, name="notification_new"),
    path("notifications/<int:subscription_id>/", notification_views.subscription_detail, name="notification_subscription"),
    path("notifications/<int:subscription_id>/disable/", notification_views.subscription_disable, name="notification_disable"),
    path("notifications/<int:subscription_id>/enable/", notification_views.subscription_enable, name="notification_enable"),
]
