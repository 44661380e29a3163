"""The connection behind `/hooks/<key>` with its signing secrets opened, kept per process for a
moment, so a stream of webhooks does not read and decrypt the same row for every delivery.

Only a connection that takes webhooks is kept, for HOOK_CONNECTION_SECONDS. The services that
change a connection forget it in their process; another process may accept deliveries for up to
that long after a connection was disabled or a secret revoked there. A delivery the kept copy
refuses is checked again against the row (`connectors.inbox.webhook_receive`), so a new secret or
a re-enabled connection is never refused for it.
"""

from __future__ import annotations

import time

from connectors.auth import signing_secrets_open
from connectors.models import Connection
from connectors.signatures import SigningSecret
from tenants.db import connection as db

HOOK_CONNECTION_SECONDS = 2.0

_kept: dict[tuple[str, str], tuple[float, Connection, list[SigningSecret]]] = {}


def hook_connection(key: str, *, fresh: bool = False) -> tuple[Connection | None, list[SigningSecret], bool]:
    """The current schema's connection `key`, its opened signing secrets, and whether they came
    from the kept copy (False: read just now)."""
    now = time.monotonic()
    kept = None if fresh else _kept.get((db.schema_name, key))
    if kept is not None and now - kept[0] < HOOK_CONNECTION_SECONDS:
        return kept[1], kept[2], True
    found = Connection.objects.filter(key=key).first()
    if found is None or not found.inbound_scheme:
        _kept.pop((db.schema_name, key), None)
        return found, [], False
    secrets = signing_secrets_open(found.inbound_secrets)
    if len(_kept) > 5000:
        _kept.clear()
    _kept[(db.schema_name, key)] = (now, found, secrets)
    return found, secrets, False


def hook_connections_forget() -> None:
    """After a change to a connection in this process (and in tests)."""
    _kept.clear()
