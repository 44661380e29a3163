"""Reads of the logistics domain."""

from django.db.models import QuerySet

from logistics.models import CustomerAccount


def customer_accounts_all() -> QuerySet[CustomerAccount]:
    return CustomerAccount.objects.order_by("name")
