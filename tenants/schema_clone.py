"""Fast, scale-independent cloning of a PostgreSQL schema for tenant provisioning.

A migrated *template* schema is captured once (per migration state) into a
``SchemaSnapshot``: plain DDL statements in which the template's own objects are
unqualified.  Replaying the snapshot into a new schema is then just a fixed list
of ``CREATE``/``ALTER`` statements run with ``search_path = <target>, public``;
it issues no catalog queries, so its cost does not grow with the number of
schemas in the database, and it creates no shared helper objects, so several
replays can run concurrently.

The trick that makes the DDL schema-agnostic: PostgreSQL's deparsers
(``pg_get_constraintdef``, ``pg_get_indexdef``, ``pg_get_triggerdef``,
``pg_get_expr``, ``format_type``) qualify a name only when it is not visible on
the ``search_path``.  Capturing with ``search_path = <template>`` therefore prints
template objects bare and everything else (``public.country``, ``public.f()``)
qualified, which is exactly what the replay needs.

Everything runs inside the caller's transaction: the caller commits or rolls
back, so a failed replay leaves nothing behind.  Functions take any DB-API
cursor that uses psycopg-style ``%s`` parameters (a psycopg 3 cursor or Django's
cursor wrapper).  Capture filters the catalogs by the namespace OID and never
uses ``information_schema``, which gets slow with thousands of relations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SchemaCloneError",
    "SchemaSnapshot",
    "SequenceReset",
    "TableCopy",
    "quote_ident",
    "schema_capture",
    "schema_describe",
    "schema_replay",
    "validate_target_schema",
]

SNAPSHOT_FORMAT = 1

_TARGET_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RESERVED_TARGETS = frozenset({"public", "information_schema"})

# Settings that change how the deparsers print (or the parser reads) DDL.  They
# are pinned during capture and replay so a snapshot means the same thing in
# any session, the way pg_dump pins them.
_PINNED_SETTINGS = {
    "standard_conforming_strings": "on",
    "datestyle": "ISO, MDY",
    "intervalstyle": "postgres",
    "extra_float_digits": "3",
}


class SchemaCloneError(Exception):
    """The schema cannot be captured or replayed; the message names the object and why."""


@dataclass(frozen=True)
class TableCopy:
    """A table whose rows are copied on replay, with its insertable (non-generated) columns."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class SequenceReset:
    """A sequence whose position is copied from the source schema after the rows are."""

    name: str


@dataclass(frozen=True)
class SchemaSnapshot:
    """Schema-agnostic DDL for a template schema plus what to copy on replay.

    ``statements`` run before the rows are copied (sequences, tables with their
    primary key/unique/check/exclusion constraints, indexes, comments) and
    ``post_data_statements`` after (foreign keys, NOT VALID constraints,
    triggers): copying rows before foreign keys and triggers exist means the copy
    does not depend on table order and does not fire the template's triggers.
    """

    source_schema: str
    statements: tuple[str, ...]
    post_data_statements: tuple[str, ...]
    tables: tuple[TableCopy, ...]
    sequences: tuple[SequenceReset, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": SNAPSHOT_FORMAT,
                "source_schema": self.source_schema,
                "statements": list(self.statements),
                "post_data_statements": list(self.post_data_statements),
                "tables": [{"name": t.name, "columns": list(t.columns)} for t in self.tables],
                "sequences": [s.name for s in self.sequences],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> SchemaSnapshot:
        data = json.loads(text)
        if data.get("format") != SNAPSHOT_FORMAT:
            raise SchemaCloneError(f"snapshot format {data.get('format')!r} is not supported (expected {SNAPSHOT_FORMAT})")
        return cls(
            source_schema=data["source_schema"],
            statements=tuple(data["statements"]),
            post_data_statements=tuple(data["post_data_statements"]),
            tables=tuple(TableCopy(t["name"], tuple(t["columns"])) for t in data["tables"]),
            sequences=tuple(SequenceReset(name) for name in data["sequences"]),
        )


# --------------------------------------------------------------------------- helpers


def quote_ident(name: str) -> str:
    """Quote an identifier unconditionally (always valid, never ambiguous)."""
    if not name or "\x00" in name:
        raise SchemaCloneError(f"invalid identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def validate_target_schema(name: str) -> str:
    """Refuse anything but a plain lower-case name that is not a system schema."""
    if not isinstance(name, str) or not _TARGET_NAME.match(name):
        raise SchemaCloneError(f"target schema {name!r} is not a valid tenant schema name (must match {_TARGET_NAME.pattern})")
    if name in _RESERVED_TARGETS or name.startswith("pg_"):
        raise SchemaCloneError(f"target schema {name!r} is reserved")
    return name


def _fetchall(cursor, query: str, params: tuple | dict | None = None) -> list[tuple]:
    cursor.execute(query, params)
    return list(cursor.fetchall())


def _namespace_oid(cursor, schema: str) -> int:
    rows = _fetchall(cursor, "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,))
    if not rows:
        raise SchemaCloneError(f"schema {schema!r} does not exist")
    return rows[0][0]


@contextmanager
def _session_settings(cursor, *, search_path: str) -> Iterator[None]:
    """Pin search_path (and deparse settings) for the rest of the block, then restore them.

    ``pg_temp`` is listed last: unlisted, it would be searched *first*, and a
    session's temporary table could capture a name meant for the schema.

    The settings are transaction-local (``set_config(..., true)``).  Reading the
    search_path back in a second statement also proves we are inside a
    transaction: in autocommit mode the local setting is already gone, and a
    replay there could leave a half-built schema behind.
    """
    settings = {"search_path": search_path, **_PINNED_SETTINGS}
    names = tuple(settings)
    saved = _fetchall(
        cursor,
        "SELECT " + ", ".join("pg_catalog.current_setting(%s)" for _ in names),
        names,
    )[0]

    def apply(values: dict[str, str]) -> str:
        """Set the values; return the search_path as PostgreSQL stored it."""
        return _fetchall(
            cursor,
            "SELECT " + ", ".join("pg_catalog.set_config(%s, %s, true)" for _ in values),
            tuple(item for pair in values.items() for item in pair),
        )[0][0]

    stored = apply(settings)
    effective = _fetchall(cursor, "SELECT pg_catalog.current_setting('search_path')")[0][0]
    if effective != stored:
        apply(dict(zip(names, saved, strict=True)))
        raise SchemaCloneError("schema cloning must run inside a transaction (the cursor is in autocommit mode)")
    try:
        yield
    except BaseException:
        # If the transaction is aborted this fails too; the caller rolls back,
        # which restores the settings anyway.  Never mask the original error.
        with suppress(Exception):
            apply(dict(zip(names, saved, strict=True)))
        raise
    apply(dict(zip(names, saved, strict=True)))


# --------------------------------------------------------------------------- capture

# Catalog rows for objects that a tenant schema must not contain, as (kind, name).
_UNSUPPORTED_OBJECTS = """
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
       p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_catalog.pg_proc p WHERE p.pronamespace = %(ns)s
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                      WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index'
                      WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'composite type' END,
       c.relname
  FROM pg_catalog.pg_class c WHERE c.relnamespace = %(ns)s AND c.relkind IN ('v', 'm', 'p', 'I', 'f', 'c')
UNION ALL
SELECT CASE t.typtype WHEN 'e' THEN 'enum type' WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range type'
                      WHEN 'm' THEN 'multirange type' ELSE 'type' END,
       t.typname
  FROM pg_catalog.pg_type t
  LEFT JOIN pg_catalog.pg_type elem ON elem.oid = t.typelem
 WHERE t.typnamespace = %(ns)s AND t.typrelid = 0 AND elem.typarray IS DISTINCT FROM t.oid
UNION ALL
SELECT CASE WHEN c.relispartition THEN 'partition' ELSE 'inheriting table' END, c.relname
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
 WHERE c.relnamespace = %(ns)s
UNION ALL
SELECT 'rule', r.rulename || ' on ' || c.relname
  FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
 WHERE c.relnamespace = %(ns)s AND c.relkind = 'r'
UNION ALL
SELECT 'row level security policy', p.polname || ' on ' || c.relname
  FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = %(ns)s
UNION ALL
SELECT 'statistics object', s.stxname FROM pg_catalog.pg_statistic_ext s WHERE s.stxnamespace = %(ns)s
UNION ALL
SELECT 'collation', c.collname FROM pg_catalog.pg_collation c WHERE c.collnamespace = %(ns)s
UNION ALL
SELECT 'operator', o.oprname FROM pg_catalog.pg_operator o WHERE o.oprnamespace = %(ns)s
UNION ALL
SELECT 'operator class', o.opcname FROM pg_catalog.pg_opclass o WHERE o.opcnamespace = %(ns)s
UNION ALL
SELECT 'operator family', o.opfname FROM pg_catalog.pg_opfamily o WHERE o.opfnamespace = %(ns)s
UNION ALL
SELECT 'text search configuration', t.cfgname FROM pg_catalog.pg_ts_config t WHERE t.cfgnamespace = %(ns)s
UNION ALL
SELECT 'text search dictionary', t.dictname FROM pg_catalog.pg_ts_dict t WHERE t.dictnamespace = %(ns)s
UNION ALL
SELECT 'conversion', c.conname FROM pg_catalog.pg_conversion c WHERE c.connamespace = %(ns)s
UNION ALL
SELECT 'extension', e.extname FROM pg_catalog.pg_extension e WHERE e.extnamespace = %(ns)s
ORDER BY 1, 2
"""


def _check_unsupported_objects(cursor, schema: str, ns: int) -> None:
    """Refuse objects that a replay could not reproduce, instead of silently dropping them."""
    rows = _fetchall(cursor, _UNSUPPORTED_OBJECTS, {"ns": ns})
    if rows:
        kind, name = rows[0]
        kinds = re.sub(r"y$", "ie", kind) + ("es" if kind.endswith("s") else "s")
        more = f" (and {len(rows) - 1} more unsupported objects)" if len(rows) > 1 else ""
        raise SchemaCloneError(f"{kind} {schema}.{name}: {kinds} inside a tenant schema are not supported{more}")


def _capture_tables(cursor, schema: str, ns: int) -> list[tuple[int, str, str]]:
    """Plain tables as (oid, name, persistence), refusing table features we don't reproduce."""
    rows = _fetchall(
        cursor,
        """
        SELECT c.oid, c.relname, c.relpersistence, c.reloptions IS NOT NULL, c.reloftype <> 0,
               c.relrowsecurity OR c.relforcerowsecurity, c.relreplident <> 'd'
          FROM pg_catalog.pg_class c
         WHERE c.relnamespace = %s AND c.relkind = 'r'
         ORDER BY c.oid
        """,
        (ns,),
    )
    problems = {
        3: "storage parameters (WITH ...) are not supported",
        4: "typed tables (OF type) are not supported",
        5: "row level security is not supported",
        6: "a non-default replica identity is not supported",
    }
    for row in rows:
        for index, problem in problems.items():
            if row[index]:
                raise SchemaCloneError(f"table {schema}.{row[1]}: {problem}")
    return [(oid, name, persistence) for oid, name, persistence, *_ in rows]


def _capture_sequences(cursor, schema: str, ns: int) -> dict[str, dict[str, Any]]:
    """Every sequence in the schema with its options and the column that owns it, if any.

    ``deptype`` is 'i' for an identity column's sequence (created by CREATE
    TABLE) and 'a' for a serial-style sequence owned by a column.
    """
    rows = _fetchall(
        cursor,
        """
        SELECT s.relname, s.relpersistence, pg_catalog.format_type(q.seqtypid, NULL),
               q.seqstart, q.seqincrement, q.seqmin, q.seqmax, q.seqcache, q.seqcycle,
               d.deptype, t.relname, t.relnamespace, a.attname
          FROM pg_catalog.pg_class s
          JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
          LEFT JOIN pg_catalog.pg_depend d
                 ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.oid
                AND d.objsubid = 0 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND d.deptype IN ('a', 'i')
          LEFT JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
          LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE s.relnamespace = %s AND s.relkind = 'S'
         ORDER BY s.oid
        """,
        (ns,),
    )
    sequences = {}
    for name, persistence, type_, start, inc, min_, max_, cache, cycle, deptype, table, table_ns, column in rows:
        if table is not None and table_ns != ns:
            raise SchemaCloneError(f"sequence {schema}.{name}: owned by a table outside the schema, which is not supported")
        sequences[name] = {
            "persistence": persistence,
            "type": type_,
            "options": (
                f"START WITH {int(start)} INCREMENT BY {int(inc)} MINVALUE {int(min_)} "
                f"MAXVALUE {int(max_)} CACHE {int(cache)} {'CYCLE' if cycle else 'NO CYCLE'}"
            ),
            "deptype": deptype,
            "table": table,
            "column": column,
        }
    return sequences


def _sequence_statements(sequences: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """CREATE SEQUENCE for non-identity sequences (before tables, whose defaults use them)
    and ALTER SEQUENCE ... OWNED BY (after tables)."""
    creates, owned_by = [], []
    for name, seq in sequences.items():
        if seq["deptype"] == "i":
            continue  # created by the identity column itself
        unlogged = "UNLOGGED " if seq["persistence"] == "u" else ""
        creates.append(f"CREATE {unlogged}SEQUENCE {quote_ident(name)} AS {seq['type']} {seq['options']}")
        if seq["deptype"] == "a":
            owned_by.append(f"ALTER SEQUENCE {quote_ident(name)} OWNED BY {quote_ident(seq['table'])}.{quote_ident(seq['column'])}")
    return creates, owned_by


def _capture_columns(cursor, ns: int) -> dict[int, list[tuple]]:
    """Columns per table oid, in column order, with the pieces of their definition."""
    rows = _fetchall(
        cursor,
        """
        SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
               a.attnotnull, a.attidentity, a.attgenerated,
               pg_catalog.pg_get_expr(d.adbin, d.adrelid),
               CASE WHEN a.attcollation <> t.typcollation
                    THEN a.attcollation::pg_catalog.regcollation::text END
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
          JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attrelid, a.attnum
        """,
        (ns,),
    )
    columns: dict[int, list[tuple]] = {}
    for relid, *column in rows:
        columns.setdefault(relid, []).append(tuple(column))
    return columns


def _column_sql(table: str, column: tuple, identity_sequences: dict[tuple[str, str], tuple[str, str]]) -> str:
    name, type_, notnull, identity, generated, default, collation = column
    parts = [quote_ident(name), type_]
    if collation:
        parts.append(f"COLLATE {collation}")
    if generated == "s":
        parts.append(f"GENERATED ALWAYS AS ({default}) STORED")
    elif identity:
        seq_name, options = identity_sequences[(table, name)]
        kind = "ALWAYS" if identity == "a" else "BY DEFAULT"
        parts.append(f"GENERATED {kind} AS IDENTITY (SEQUENCE NAME {quote_ident(seq_name)} {options})")
    elif default is not None:
        parts.append(f"DEFAULT {default}")
    if notnull:
        parts.append("NOT NULL")
    return " ".join(parts)


def _capture_constraints(cursor, ns: int) -> list[tuple[int, str, str, str, bool]]:
    """Table constraints as (table oid, name, contype, definition, validated).

    Constraint triggers ('t') are skipped here: CREATE CONSTRAINT TRIGGER, captured
    with the triggers, recreates them.
    """
    return _fetchall(
        cursor,
        """
        SELECT con.conrelid, con.conname, con.contype, pg_catalog.pg_get_constraintdef(con.oid),
               con.convalidated
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_constraint con ON con.conrelid = c.oid
         WHERE c.relnamespace = %s AND c.relkind = 'r' AND con.contype <> 't'
         ORDER BY con.conrelid, con.contype = 'p' DESC, con.conname
        """,
        (ns,),
    )


def _table_statements(
    tables: list[tuple[int, str, str]],
    columns: dict[int, list[tuple]],
    constraints: list[tuple[int, str, str, str, bool]],
    sequences: dict[str, dict[str, Any]],
) -> tuple[list[str], list[str], list[TableCopy]]:
    """CREATE TABLE with columns and validated non-FK constraints inline; foreign keys
    and NOT VALID constraints become ALTER TABLE statements that run after the data copy."""
    identity_sequences = {(seq["table"], seq["column"]): (name, seq["options"]) for name, seq in sequences.items() if seq["deptype"] == "i"}
    inline: dict[int, list[str]] = {}
    deferred: list[str] = []
    names = {oid: name for oid, name, _ in tables}
    for relid, conname, contype, definition, validated in constraints:
        clause = f"CONSTRAINT {quote_ident(conname)} {definition}"
        if contype == "f" or not validated:
            deferred.append(f"ALTER TABLE {quote_ident(names[relid])} ADD {clause}")
        else:
            inline.setdefault(relid, []).append(clause)

    creates, copies = [], []
    for oid, name, persistence in tables:
        cols = columns.get(oid, [])
        elements = [_column_sql(name, col, identity_sequences) for col in cols]
        elements += inline.get(oid, [])
        unlogged = "UNLOGGED " if persistence == "u" else ""
        creates.append(f"CREATE {unlogged}TABLE {quote_ident(name)} ({', '.join(elements)})")
        insertable = tuple(col[0] for col in cols if col[4] == "")
        copies.append(TableCopy(name, insertable))
    return creates, deferred, copies


def _capture_indexes(cursor, schema: str, ns: int) -> list[str]:
    """CREATE INDEX for indexes that don't back a primary key/unique/exclusion constraint
    (those are recreated by the constraint).  Pretty mode leaves the table unqualified."""
    rows = _fetchall(
        cursor,
        """
        SELECT ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true), i.indisvalid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_index i ON i.indrelid = c.oid
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         WHERE c.relnamespace = %s AND c.relkind = 'r'
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint con
                            WHERE con.conrelid = i.indrelid AND con.conindid = i.indexrelid
                              AND con.contype IN ('p', 'u', 'x'))
         ORDER BY i.indexrelid
        """,
        (ns,),
    )
    for name, _definition, valid in rows:
        if not valid:
            raise SchemaCloneError(
                f"index {schema}.{name}: the index is invalid (a failed CREATE INDEX CONCURRENTLY?); drop or rebuild it before capturing"
            )
    return [definition for _name, definition, _valid in rows]


def _capture_triggers(cursor, ns: int) -> list[str]:
    """CREATE TRIGGER for user triggers (and their enabled state).  Pretty mode leaves the
    table unqualified; a function in public prints as public.f()."""
    rows = _fetchall(
        cursor,
        """
        SELECT c.relname, t.tgname, pg_catalog.pg_get_triggerdef(t.oid, true), t.tgenabled
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid
         WHERE c.relnamespace = %s AND c.relkind = 'r' AND NOT t.tgisinternal
         ORDER BY t.oid
        """,
        (ns,),
    )
    enable = {"D": "DISABLE TRIGGER", "R": "ENABLE REPLICA TRIGGER", "A": "ENABLE ALWAYS TRIGGER"}
    statements = []
    for table, name, definition, enabled in rows:
        statements.append(definition)
        if enabled in enable:
            statements.append(f"ALTER TABLE {quote_ident(table)} {enable[enabled]} {quote_ident(name)}")
    return statements


def _capture_comments(cursor, ns: int) -> list[str]:
    """COMMENT ON statements (Django's db_comment / db_table_comment among them).

    The text is quoted by the server's quote_literal, which is correct whatever
    standard_conforming_strings says.
    """
    rows = _fetchall(
        cursor,
        """
        SELECT CASE WHEN d.objsubid > 0 THEN 'COLUMN'
                    WHEN c.relkind = 'i' THEN 'INDEX'
                    WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
               c.relname, a.attname, pg_catalog.quote_literal(d.description)
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_description d
            ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
          LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid
         WHERE c.relnamespace = %(ns)s AND c.relkind IN ('r', 'i', 'S')
        UNION ALL
        SELECT 'CONSTRAINT', c.relname, con.conname, pg_catalog.quote_literal(d.description)
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_constraint con ON con.conrelid = c.oid
          JOIN pg_catalog.pg_description d
            ON d.objoid = con.oid AND d.classoid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
         WHERE c.relnamespace = %(ns)s AND c.relkind = 'r'
        UNION ALL
        SELECT 'TRIGGER', c.relname, t.tgname, pg_catalog.quote_literal(d.description)
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid
          JOIN pg_catalog.pg_description d
            ON d.objoid = t.oid AND d.classoid = 'pg_catalog.pg_trigger'::pg_catalog.regclass
         WHERE c.relnamespace = %(ns)s AND c.relkind = 'r'
         ORDER BY 1, 2, 3
        """,
        {"ns": ns},
    )
    statements = []
    for kind, relname, subname, literal in rows:
        if kind == "COLUMN":
            target = f"{quote_ident(relname)}.{quote_ident(subname)}"
        elif kind in ("CONSTRAINT", "TRIGGER"):
            target = f"{quote_ident(subname)} ON {quote_ident(relname)}"
        else:
            target = quote_ident(relname)
        statements.append(f"COMMENT ON {kind} {target} IS {literal}")
    return statements


def _strip_literals(statement: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", statement)


def _check_schema_agnostic(schema: str, statements: list[str]) -> None:
    """Guard against the source schema's name leaking into the DDL (it would make every
    clone point back at the template, e.g. a template table shadowed by a pg_catalog name)."""
    leak = re.compile(r'(?<![\w$"])(?:' + re.escape(quote_ident(schema)) + "|" + re.escape(schema) + r")\.")
    for statement in statements:
        if leak.search(_strip_literals(statement)):
            raise SchemaCloneError(f"statement refers to schema {schema!r} explicitly, so a clone would point at the template: {statement}")


def schema_capture(cursor, *, source_schema: str) -> SchemaSnapshot:
    """Capture ``source_schema`` into a snapshot that can be replayed into any schema.

    Must run inside a transaction; the session's search_path is restored afterwards.
    """
    with _session_settings(cursor, search_path=f"{quote_ident(source_schema)}, pg_temp"):
        ns = _namespace_oid(cursor, source_schema)
        _check_unsupported_objects(cursor, source_schema, ns)
        tables = _capture_tables(cursor, source_schema, ns)
        sequences = _capture_sequences(cursor, source_schema, ns)
        columns = _capture_columns(cursor, ns)
        constraints = _capture_constraints(cursor, ns)
        creates, constraint_alters, copies = _table_statements(tables, columns, constraints, sequences)
        sequence_creates, owned_by = _sequence_statements(sequences)
        indexes = _capture_indexes(cursor, source_schema, ns)
        triggers = _capture_triggers(cursor, ns)
        comments = _capture_comments(cursor, ns)

    statements = sequence_creates + creates + owned_by + indexes
    post_data = constraint_alters + triggers + comments
    _check_schema_agnostic(source_schema, statements + post_data)
    return SchemaSnapshot(
        source_schema=source_schema,
        statements=tuple(statements),
        post_data_statements=tuple(post_data),
        tables=tuple(copies),
        sequences=tuple(SequenceReset(name) for name in sequences),
    )


# --------------------------------------------------------------------------- replay


def _execute_batch(cursor, statements: Sequence[str]) -> None:
    """Send the statements as one multi-statement query.

    One round trip instead of hundreds takes about a quarter off a replay.
    PostgreSQL runs them in order inside the caller's transaction and stops at the
    first error, whose position (when it has one) tells which statement failed.
    """
    if not statements:
        return
    try:
        cursor.execute(";\n".join(statements))
    except Exception as exc:
        exc.add_note(_failed_statement_note(exc, statements))
        raise


def _failed_statement_note(exc: Exception, statements: Sequence[str]) -> str:
    diag = getattr(exc, "diag", None) or getattr(exc.__cause__, "diag", None)  # Django wraps psycopg
    position = getattr(diag, "statement_position", None)
    if position:
        offset = int(position) - 1
        for statement in statements:
            if offset < len(statement) + 2:
                return f"while replaying schema snapshot statement: {statement}"
            offset -= len(statement) + 2
    return f"while replaying a batch of {len(statements)} schema snapshot statements starting with: {statements[0]}"


def _copy_rows(cursor, snapshot: SchemaSnapshot, target_schema: str) -> None:
    """INSERT ... SELECT every table from the source schema.  OVERRIDING SYSTEM VALUE keeps
    the ids of GENERATED ALWAYS identity columns; generated columns are recomputed."""
    inserts = []
    for table in snapshot.tables:
        cols = ", ".join(quote_ident(c) for c in table.columns)
        target_cols = f"({cols}) OVERRIDING SYSTEM VALUE" if cols else ""  # a table may have no columns
        inserts.append(
            f"INSERT INTO {_qualified(target_schema, table.name)} {target_cols} "
            f"SELECT {cols} FROM {_qualified(snapshot.source_schema, table.name)}"
        )
    _execute_batch(cursor, inserts)


def _copy_sequence_positions(cursor, snapshot: SchemaSnapshot, target_schema: str) -> None:
    """Set each sequence to the source's current position (last_value and is_called), so the
    next id continues after the copied rows and an untouched sequence stays untouched."""
    if not snapshot.sequences:
        return
    selects = [
        "SELECT pg_catalog.setval(%s::pg_catalog.regclass, s.last_value, s.is_called) FROM "
        + _qualified(snapshot.source_schema, seq.name).replace("%", "%%")  # text beside %s placeholders
        + " s"
        for seq in snapshot.sequences
    ]
    cursor.execute(
        " UNION ALL ".join(selects),
        tuple(_qualified(target_schema, seq.name) for seq in snapshot.sequences),
    )
    cursor.fetchall()


def schema_replay(cursor, *, snapshot: SchemaSnapshot, target_schema: str, copy_data: bool = True) -> None:
    """Create ``target_schema`` from ``snapshot`` inside the caller's transaction.

    With ``copy_data`` the rows of the snapshot's source schema (read now, not at
    capture time) are copied and sequences continue from the source's positions.
    """
    validate_target_schema(target_schema)
    with _session_settings(cursor, search_path=f"{quote_ident(target_schema)}, public, pg_temp"):
        cursor.execute(f"CREATE SCHEMA {quote_ident(target_schema)}")
        _execute_batch(cursor, snapshot.statements)
        if copy_data:
            _copy_rows(cursor, snapshot, target_schema)
            _copy_sequence_positions(cursor, snapshot, target_schema)
        _execute_batch(cursor, snapshot.post_data_statements)


# --------------------------------------------------------------------------- describe


def schema_describe(cursor, *, schema: str) -> dict:
    """A normalized, schema-name-free description of a schema's structure and data.

    Run with search_path = <schema> so that, like the snapshot, the schema's own
    objects print bare and anything elsewhere prints qualified: two schemas
    describe equal only if their objects are defined alike *and* point at the
    same outside objects (and each at its own inside ones).  Meant for tests.
    """
    with _session_settings(cursor, search_path=f"{quote_ident(schema)}, pg_temp"):
        ns = _namespace_oid(cursor, schema)
        tables = _describe_tables(cursor, schema, ns)
        sequences = {}
        for name, seq in _capture_sequences(cursor, schema, ns).items():
            last_value, is_called = _fetchall(cursor, f"SELECT last_value, is_called FROM {_qualified(schema, name)}")[0]
            sequences[name] = {**seq, "last_value": last_value, "is_called": is_called}
        comments = sorted(_capture_comments(cursor, ns))
    return {"tables": tables, "sequences": sequences, "comments": comments}


_COLUMN_KEYS = ("name", "type", "not_null", "identity", "generated", "default", "collation")


def _describe_tables(cursor, schema: str, ns: int) -> dict[str, dict[str, Any]]:
    rows = _fetchall(
        cursor,
        """
        SELECT c.oid, c.relname, c.relpersistence, c.reloptions FROM pg_catalog.pg_class c
         WHERE c.relnamespace = %s AND c.relkind = 'r'
        """,
        (ns,),
    )
    names = {oid: name for oid, name, *_ in rows}
    tables: dict[str, dict[str, Any]] = {
        name: {
            "persistence": persistence,
            "options": options,
            "columns": [],
            "constraints": {},
            "indexes": {},
            "triggers": {},
        }
        for _oid, name, persistence, options in rows
    }
    for relid, cols in _capture_columns(cursor, ns).items():
        tables[names[relid]]["columns"] = [dict(zip(_COLUMN_KEYS, col, strict=True)) for col in cols]
    for table, name, *details in _fetchall(
        cursor,
        """
        SELECT c.relname, con.conname, con.contype, pg_catalog.pg_get_constraintdef(con.oid),
               con.condeferrable, con.condeferred, con.convalidated
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_constraint con ON con.conrelid = c.oid
         WHERE c.relnamespace = %s AND c.relkind = 'r'
        """,
        (ns,),
    ):
        tables[table]["constraints"][name] = dict(zip(("type", "definition", "deferrable", "deferred", "validated"), details, strict=True))
    for table, name, definition, valid in _fetchall(
        cursor,
        """
        SELECT c.relname, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true), i.indisvalid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_index i ON i.indrelid = c.oid
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         WHERE c.relnamespace = %s AND c.relkind = 'r'
        """,
        (ns,),
    ):
        tables[table]["indexes"][name] = {"definition": definition, "valid": valid}
    for table, name, definition, enabled in _fetchall(
        cursor,
        """
        SELECT c.relname, t.tgname, pg_catalog.pg_get_triggerdef(t.oid, true), t.tgenabled
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid
         WHERE c.relnamespace = %s AND c.relkind = 'r' AND NOT t.tgisinternal
        """,
        (ns,),
    ):
        tables[table]["triggers"][name] = {"definition": definition, "enabled": enabled}
    for name, table in tables.items():
        # Row count plus a checksum of the rows' text, so equal data is really equal.
        table["rows"], table["checksum"] = _fetchall(
            cursor,
            "SELECT count(*), pg_catalog.md5(coalesce(pg_catalog.string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
            f" FROM {_qualified(schema, name)} t",
        )[0]
    return tables
