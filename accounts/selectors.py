"""Reads of users for the people pages of the console and the portal."""

from collections.abc import Iterable

from allauth.mfa.models import Authenticator
from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import User


def users_filter(*, roles: Iterable[str], query: str = "") -> QuerySet[User]:
    """People with one of `roles` in the current schema, each with `has_mfa` (a TOTP is set up).

    Support-session identities are not people of the tenant and are left out.
    """
    users = User.objects.filter(role__in=list(roles), support_grant_id__isnull=True)
    if query:
        users = users.filter(Q(email__icontains=query) | Q(full_name__icontains=query))
    totp = Authenticator.objects.filter(user=OuterRef("pk"), type=Authenticator.Type.TOTP)
    return users.annotate(has_mfa=Exists(totp)).order_by("-is_active", "email")


def user_for_management(*, user_id: int, roles: Iterable[str]) -> User | None:
    return User.objects.filter(pk=user_id, role__in=list(roles), support_grant_id__isnull=True).first()


def users_of_customer_account(customer_account_id: int) -> QuerySet[User]:
    """The active people of one customer account (who hear about its webhooks and shipments)."""
    return User.objects.filter(customer_account_id=customer_account_id, is_active=True, support_grant_id__isnull=True).order_by("email")
