"""The connection keeps its search_path across switches back to the same tenant, and never
trusts a value the session no longer holds (a rollback, a savepoint rollback, a new connection)."""

import pytest
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from tenants.db import connection


def _held() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return cursor.fetchone()[0]


def _sets(captured: CaptureQueriesContext) -> int:
    return sum(query["sql"].startswith("SET search_path") for query in captured.captured_queries)


def _switch_to(schema: str) -> None:
    """What a request does: public for the host, then the tenant."""
    connection.set_schema_to_public()
    connection.set_schema(schema)


def test_a_switch_back_to_the_same_tenant_sets_nothing(world, committed):
    acme, globex = world.acme.schema, world.globex.schema
    _switch_to(acme)
    assert _held() == f"{acme}, public"
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            _switch_to(acme)
            assert _held() == f"{acme}, public"
    assert _sets(captured) == 0
    with CaptureQueriesContext(connection) as captured:
        _switch_to(globex)
        assert _held() == f"{globex}, public"
        _switch_to(acme)
        assert _held() == f"{acme}, public"
    assert _sets(captured) == 2


def test_a_rolled_back_set_is_set_again(world, committed):
    acme, globex = world.acme.schema, world.globex.schema
    _switch_to(acme)
    _held()
    with pytest.raises(RuntimeError), transaction.atomic():
        _switch_to(globex)
        assert _held() == f"{globex}, public"
        raise RuntimeError("undo")  # PostgreSQL reverts the SET with the transaction
    _switch_to(globex)  # the session holds acme's again; remembering globex's would skip this SET
    assert _held() == f"{globex}, public"


def test_a_set_undone_by_a_savepoint_rollback_is_set_again(world, committed):
    acme, globex = world.acme.schema, world.globex.schema
    with transaction.atomic():
        _switch_to(acme)
        assert _held() == f"{acme}, public"
        savepoint = transaction.savepoint()
        _switch_to(globex)
        assert _held() == f"{globex}, public"
        transaction.savepoint_rollback(savepoint)  # the session holds acme's again
        _switch_to(globex)
        assert _held() == f"{globex}, public"


def test_a_new_connection_is_set_again(world, committed):
    acme = world.acme.schema
    _switch_to(acme)
    _held()
    connection.close()
    _switch_to(acme)
    assert _held() == f"{acme}, public"
