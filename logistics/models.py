"""The logistics domain. The foundation holds only customer accounts, which scope customer users."""

from django.db import models


class ServiceTier(models.TextChoices):
    STANDARD = "standard", "Standard"
    PRIORITY = "priority", "Priority"
    CRITICAL = "critical", "Critical"


class CustomerAccount(models.Model):
    """A shipper the tenant serves; its users see only its own shipments."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    service_tier = models.CharField(max_length=20, choices=ServiceTier.choices, default=ServiceTier.STANDARD)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
