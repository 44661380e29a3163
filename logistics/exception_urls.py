"""The exception queue, mounted at /exceptions/ (config/urls_tenant.py)."""

from django.urls import path

from logistics import exception_views

app_name = "exceptions"
urlpatterns = [
    path("", exception_views.exceptions, name="list"),
    path("<int:exception_id>/assign-to-me/", exception_views.exception_assign_to_me, name="assign_to_me"),
    path("<int:exception_id>/close/", exception_views.exception_close_view, name="close"),
]
