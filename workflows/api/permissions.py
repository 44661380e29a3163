"""API access to workflows: staff by role, API keys by scope."""

from accounts.api.permissions import scoped
from accounts.models import Role

READ_SCOPE = "workflows:read"
WRITE_SCOPE = "workflows:write"


CanRead = scoped(READ_SCOPE)
CanWrite = scoped(WRITE_SCOPE, Role.TENANT_ADMIN, Role.PLANNER)
RUN_SCOPE = "workflows:run"
CanStartRuns = scoped(RUN_SCOPE, Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER)
# Pause, resume, cancel runs; read, retry and restart incidents.
OPERATE_SCOPE = "workflows:operate"
CanOperate = scoped(OPERATE_SCOPE, Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER)
# Approvals: any staff member may look; who may decide is the approval's assignee roles (a key decides any).
APPROVE_SCOPE = "workflows:approve"
CanApprove = scoped(APPROVE_SCOPE)
# Events from partner and internal systems: they wake waiting runs and start event-triggered ones.
EVENTS_SCOPE = "events:write"
CanSendEvents = scoped(EVENTS_SCOPE, Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER)
