"""Who may do what on a tenant's host: shared by every app with tenant pages (portal, workflows)."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from accounts.models import TENANT_STAFF_ROLES


def tenant_role_required(*roles: str):
    """Signed-in tenant staff with one of `roles` (any staff role when none are given).

    Support sessions act with the tenant admin's view: they were granted by name and are audited.
    """
    allowed = set(roles) or set(TENANT_STAFF_ROLES)

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.user.role not in allowed and not request.user.support_grant_id:
                raise PermissionDenied("Your role cannot see this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
