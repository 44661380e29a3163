"""Who may do what on a tenant's host.

The decorator lives in accounts so that apps below the surfaces (workflows' pages) can use it
without importing the portal; it is re-exported here for the portal's views.
"""

from accounts.permissions import tenant_role_required

__all__ = ["tenant_role_required"]
