from django.urls import path

from insights import views

app_name = "insights"
urlpatterns = [
    path("outcomes/", views.outcomes_page, name="outcomes"),
]
