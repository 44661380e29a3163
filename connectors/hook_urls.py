from django.urls import path

from connectors import hooks

app_name = "hooks"
urlpatterns = [path("<slug:key>", hooks.webhook, name="webhook")]
