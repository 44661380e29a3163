"""Fixtures for tests that need a real PostgreSQL (no Django involved).

The server is taken from BATON_TEST_DSN (default: the local trust-auth
PostgreSQL 15).  Each test runs in one transaction that is rolled back, so it
leaves nothing behind; tests that need committed state (several connections)
take unique schema names from ``committed_schema`` and the schemas are dropped
afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_dsn(django_db_setup) -> str:
    """The suite's own test database (embedded or real, whatever `make test` started), unless
    BATON_TEST_DSN names another server."""
    if os.environ.get("BATON_TEST_DSN"):
        return os.environ["BATON_TEST_DSN"]
    from django.db import connection

    settings = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=settings["NAME"],
        host=settings["HOST"] or None,
        port=str(settings["PORT"] or "") or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
    )


@pytest.fixture
def pg_conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    """A connection with autocommit off; whatever the test did is rolled back."""
    conn = psycopg.connect(pg_dsn, autocommit=False)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def pg_cursor(pg_conn: psycopg.Connection) -> Iterator[psycopg.Cursor]:
    with pg_conn.cursor() as cursor:
        yield cursor


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Unique lower-case names, so concurrent test runs never touch each other's objects."""

    def make(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def committed_schema(pg_dsn: str, unique_name: Callable[[str], str]) -> Iterator[Callable[[str], str]]:
    """Hands out unique schema names and drops those schemas (if created) at teardown."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(unique_name(prefix))
        return names[-1]

    yield make
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
