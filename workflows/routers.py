"""Keep the template library in the public schema only.

The workflows app is shared and tenant (definitions are per tenant), but the library must be
one set of tables: a tenant's copy would shadow public's on the search path `t_<slug>, public`
and show an empty library. This router sits before django-tenants' and refuses the library
models outside public; every other decision falls through to TenantSyncRouter.
"""

from typing import Any


class LibraryInPublicRouter:
    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        from django.db import connections

        from workflows.models import LIBRARY_MODELS

        if app_label == "workflows" and model_name in LIBRARY_MODELS and getattr(connections[db], "schema_name", "public") != "public":
            return False
        return None
