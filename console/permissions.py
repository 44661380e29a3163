"""Who may do what on the console."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from accounts.models import Role


def msp_staff_required(*roles: str):
    """Signed-in MSP staff with one of `roles` (any MSP role when none are given)."""
    allowed = set(roles) or {Role.MSP_ADMIN, Role.MSP_OPERATOR, Role.MSP_SUPPORT}

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.user.role not in allowed:
                raise PermissionDenied("Your role cannot do this.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
