"""API permissions for the portal's endpoints; the rule itself lives in accounts.api.permissions."""

from accounts.api.permissions import scoped

__all__ = ["scoped"]
