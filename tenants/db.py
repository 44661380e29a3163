"""The default database connection, typed as what it is: Baton's schema-aware wrapper (`tenants.postgresql_backend`)."""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection as _connection

if TYPE_CHECKING:
    from tenants.postgresql_backend.base import DatabaseWrapper

connection = cast("DatabaseWrapper", _connection)


def rows_copy(table: str, columns: tuple[str, ...], rows: Iterable[Sequence[Any]]) -> None:
    """Write `rows` (values in `columns` order; JSON columns as JSON text) into `table` of the
    current schema with one COPY: for the hundreds of JSON-heavy rows a round of the engine writes,
    a fraction of what building and parsing a multi-row INSERT costs. Constraints hold as for an
    INSERT; a failure raises and leaves the transaction to the caller."""
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class _RowsEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder with times at full precision (it cuts them to milliseconds) and
    intervals as PostgreSQL reads them."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        if isinstance(o, timedelta):
            return f"{o.total_seconds()} seconds"
        return super().default(o)


def rows_json(rows: Iterable[dict[str, Any]]) -> str:
    """A batch's rows as one JSON parameter, for `jsonb_to_recordset(%s::jsonb) AS batch(column
    type, ...)`. Bound as arrays instead (`unnest(%s::text[], ...)`), psycopg's client-side binding
    escapes every element in Python – a regular-expression substitution per quote of a JSON
    value – which cost more than the rest of an inbox batch; one string is escaped in C."""
    return json.dumps(list(rows), cls=_RowsEncoder, separators=(",", ":"))
