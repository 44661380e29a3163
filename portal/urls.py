from django.urls import path

from portal import views

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
    path("brand/<str:kind>", views.brand_asset, name="brand_asset"),
]
