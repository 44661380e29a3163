"""Export of an archived tenant's schema: every table as JSON lines in one gzip file."""

import gzip
import json
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone
from psycopg import sql

from tenants.models import Tenant


def tenant_schema_export(*, tenant: Tenant) -> Path:
    """Write `{"table": ..., "row": {...}}` lines for every row of every table in the schema."""
    folder = Path(settings.VAR_DIR) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{tenant.slug}-{timezone.now():%Y%m%dT%H%M%S}.jsonl.gz"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY c.relname",
            [tenant.schema_name],
        )
        tables = [row[0] for row in cursor.fetchall()]
        with gzip.open(path, "wt", encoding="utf-8") as out:
            for table in tables:
                cursor.execute(
                    sql.SQL("SELECT row_to_json(t)::text FROM {}.{} t")
                    .format(sql.Identifier(tenant.schema_name), sql.Identifier(table))
                    .as_string(cursor.connection)
                )
                for (row,) in cursor.fetchall():
                    out.write(json.dumps({"table": table, "row": json.loads(row)}) + "\n")
    return path
