"""API access on a tenant's host: staff by role, API keys by scope. Shared by every app with an API."""

from rest_framework.permissions import BasePermission

from accounts.api.authentication import ApiKeyPrincipal
from accounts.models import TENANT_STAFF_ROLES


def scoped(scope: str, *roles: str) -> type[BasePermission]:
    """Allow API keys holding `scope`, and signed-in staff with one of `roles` (any staff role if none)."""
    allowed_roles = set(roles) or set(TENANT_STAFF_ROLES)

    class Scoped(BasePermission):
        message = f"This needs the '{scope}' scope or a staff role that includes it."

        def has_permission(self, request, view) -> bool:
            user = request.user
            if isinstance(user, ApiKeyPrincipal):
                return scope in user.key.scopes
            return bool(user and user.is_authenticated and (user.role in allowed_roles or user.support_grant_id))

    Scoped.__name__ = f"Scoped_{scope.replace(':', '_')}"
    return Scoped
