"""API access to workflows: staff by role, API keys by scope."""

from accounts.api.permissions import scoped
from accounts.models import Role

READ_SCOPE = "workflows:read"
WRITE_SCOPE = "workflows:write"


CanRead = scoped(READ_SCOPE)
CanWrite = scoped(WRITE_SCOPE, Role.TENANT_ADMIN, Role.PLANNER)
RUN_SCOPE = "workflows:run"
CanStartRuns = scoped(RUN_SCOPE, Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER)
