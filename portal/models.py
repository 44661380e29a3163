"""portal: the tenant host's own small tables (the rest of what it shows belongs to other apps)."""

from django.conf import settings
from django.db import models


class SavedView(models.Model):
    """A person's named filter of the shipments list: the list's query string, kept as typed
    (minus the cursor), so opening it is following a link."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner", "name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="saved_view_name_unique_per_owner")]

    def __str__(self) -> str:
        return self.name
