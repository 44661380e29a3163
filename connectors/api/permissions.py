"""API access to connections: any staff member reads (secrets are masked), tenant admins and
planners change and test them; API keys by scope."""

from accounts.api.permissions import scoped
from accounts.models import Role

READ_SCOPE = "connections:read"
WRITE_SCOPE = "connections:write"

CanRead = scoped(READ_SCOPE)
CanWrite = scoped(WRITE_SCOPE, Role.TENANT_ADMIN, Role.PLANNER)
