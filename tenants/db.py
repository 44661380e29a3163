"""The default database connection, typed as what it is: django-tenants' schema-aware wrapper."""

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from django.db import connection as _connection

if TYPE_CHECKING:
    from django_tenants.postgresql_backend.base import DatabaseWrapper

connection = cast("DatabaseWrapper", _connection)


def rows_copy(table: str, columns: tuple[str, ...], rows: Iterable[Sequence[Any]]) -> None:
    """Write `rows` (values in `columns` order; JSON columns as JSON text) into `table` of the
    current schema with one COPY: for the hundreds of JSON-heavy rows a round of the engine writes,
    a fraction of what building and parsing a multi-row INSERT costs. Constraints hold as for an
    INSERT; a failure raises and leaves the transaction to the caller."""
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
