"""API access on a tenant's host: staff by role, API keys by scope. Shared by every app with an API."""

from rest_framework.permissions import BasePermission

from accounts.api.authentication import ApiKeyPrincipal
from accounts.models import TENANT_STAFF_ROLES


def scoped(scope: str, *roles: str, customers: bool = False) -> type[BasePermission]:
    """Allow API keys holding `scope`, and signed-in staff with one of `roles` (any staff role if
    none). A key bound to a customer account is refused unless `customers`: only endpoints that
    narrow what they answer to the key's account (the Experience API) take such keys, so a
    shipper's key never reads the workspace's connections, runs or audit trail."""
    allowed_roles = set(roles) or set(TENANT_STAFF_ROLES)
    needs = f"This needs the '{scope}' scope or a staff role that includes it."

    class Scoped(BasePermission):
        message = needs

        def has_permission(self, request, view) -> bool:
            user = request.user
            if isinstance(user, ApiKeyPrincipal):
                if user.key.customer_account_id is not None and not customers:
                    self.message = "This API key belongs to a customer account; this endpoint is for the workspace's staff."
                    return False
                self.message = needs
                return scope in user.key.scopes
            return bool(user and user.is_authenticated and (user.role in allowed_roles or user.support_grant_id))

    Scoped.__name__ = f"Scoped_{scope.replace(':', '_')}"
    return Scoped
