"""django-tenants' PostgreSQL backend, keeping a connection's search_path across tenant switches.

django-tenants (with TENANT_LIMIT_SET_CALLS) sets the search_path once per tenant switch, and
every request and every tenant task switches twice: to public for the host, then to the tenant.
On a persistent connection that serves one tenant request after request, that is a `SET
search_path` round trip per webhook for a value the session already has. This backend remembers
what the session really holds and skips the SET when a switch comes back to it. Whatever can
change or undo the session's value without a SET from here (a new connection, a rollback, a
savepoint rollback) makes it forget.
"""

from __future__ import annotations

from typing import Any

from django_tenants.postgresql_backend import base


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.search_path_held: list[str] | None = None  # set before super(): it switches to public
        super().__init__(*args, **kwargs)

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        if self.search_path_held is not None and self.search_path_held == self._get_cursor_search_paths():
            self.search_path_set_schemas = self.search_path_held

    def _handle_search_path(self, cursor: Any = None) -> None:
        super()._handle_search_path(cursor)
        if not self._setting_search_path:
            self.search_path_held = self.search_path_set_schemas

    def init_connection_state(self) -> None:
        self.search_path_held = None
        super().init_connection_state()

    def close(self) -> None:
        self.search_path_held = None
        super().close()

    def rollback(self) -> None:
        self.search_path_held = None
        super().rollback()

    def savepoint_rollback(self, sid: str) -> None:
        try:
            super().savepoint_rollback(sid)
        finally:
            self.search_path_held = None
