import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from governance.services import Actor, audit_chain_verify, audit_deferred, audit_record

pytestmark = pytest.mark.django_db
ACTOR = Actor(email="auditor@msp.test")


def test_each_row_links_to_the_previous_ones_hash():
    first = audit_record(actor=ACTOR, action="test.first", target_type="thing", target_id="1")
    second = audit_record(actor=ACTOR, action="test.second", target_type="thing", target_id="2", reason="because", data={"n": 2})
    assert second.previous_hash == first.row_hash
    assert audit_chain_verify().ok


@pytest.mark.parametrize("statement", ["UPDATE governance_auditevent SET reason = 'x'", "DELETE FROM governance_auditevent"])
def test_the_database_refuses_update_and_delete(statement, world):
    audit_record(actor=ACTOR, action="test.row", target_type="thing", target_id="1")
    for schema in ("public", world.acme.schema):
        with schema_context(schema), pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)


def _tamper(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER governance_auditevent_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER governance_auditevent_append_only")


def test_verify_names_the_first_changed_row(capsys):
    audit_record(actor=ACTOR, action="test.a", target_type="thing", target_id="1")
    changed = audit_record(actor=ACTOR, action="test.b", target_type="thing", target_id="2")
    audit_record(actor=ACTOR, action="test.c", target_type="thing", target_id="3")
    call_command("audit_verify")
    assert "OK" in capsys.readouterr().out
    _tamper("UPDATE governance_auditevent SET reason = 'rewritten' WHERE id = %s", [changed.id])
    with pytest.raises(CommandError, match=f"row {changed.id}: its content no longer matches"):
        call_command("audit_verify")


def test_verify_notices_a_removed_row():
    audit_record(actor=ACTOR, action="test.a", target_type="thing", target_id="1")
    removed = audit_record(actor=ACTOR, action="test.b", target_type="thing", target_id="2")
    after = audit_record(actor=ACTOR, action="test.c", target_type="thing", target_id="3")
    _tamper("DELETE FROM governance_auditevent WHERE id = %s", [removed.id])
    result = audit_chain_verify()
    assert not result.ok and result.broken_row_id == after.id and "removed" in result.problem


def test_tenant_chains_are_separate_and_verified_by_slug(world, capsys):
    with schema_context(world.acme.schema):
        connection.tenant = world.acme.tenant
        event = audit_record(actor=ACTOR, action="test.tenant", target_type="thing", target_id="9")
        assert event.tenant_slug == "acme"
    assert not AuditEvent.objects.filter(pk=event.pk, action="test.tenant").exists()
    call_command("audit_verify", "--tenant", "acme")
    assert "OK: acme" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No tenant"):
        call_command("audit_verify", "--tenant", "nope")


# --- rows linked at the end of a block (audit_deferred) ---------------------------------------------


def test_a_deferred_block_lets_other_writers_on_and_links_its_rows_after_theirs():
    """The audit lock is taken at the block's end, not at its first row: another transaction
    (a thread, its own connection) writes and commits meanwhile, and the block's rows follow it in
    the chain, in their order."""
    others: list[AuditEvent] = []

    def other_writer() -> None:
        try:
            others.append(audit_record(actor=ACTOR, action="test.other", target_type="thing", target_id="2"))
        finally:
            connection.close()

    with transaction.atomic():
        with audit_deferred():
            first = audit_record(actor=ACTOR, action="test.deferred", target_type="thing", target_id="1")
            writer = threading.Thread(target=other_writer)
            writer.start()
            writer.join(timeout=10)
            assert not writer.is_alive() and len(others) == 1  # it did not wait for this transaction
            second = audit_record(actor=ACTOR, action="test.deferred", target_type="thing", target_id="3")
        assert first.previous_hash == others[0].row_hash and second.previous_hash == first.row_hash
        assert others[0].pk < first.pk < second.pk
        assert audit_chain_verify().ok


def test_a_savepoint_rolled_back_in_a_deferred_block_takes_its_rows_out_of_the_chain(world):
    with schema_context(world.acme.schema):
        before = audit_record(actor=ACTOR, action="test.before", target_type="thing", target_id="0")
        with transaction.atomic(), audit_deferred():
            kept = audit_record(actor=ACTOR, action="test.kept", target_type="thing", target_id="1")
            with pytest.raises(RuntimeError), transaction.atomic():
                audit_record(actor=ACTOR, action="test.dropped", target_type="thing", target_id="2")
                raise RuntimeError("the savepoint rolls back")
            after = audit_record(actor=ACTOR, action="test.after", target_type="thing", target_id="3")
        assert kept.previous_hash == before.row_hash and after.previous_hash == kept.row_hash
        assert not AuditEvent.objects.filter(action="test.dropped").exists()
        assert not AuditEvent.objects.filter(previous_hash="").exists()
        assert audit_chain_verify().ok


def test_only_the_link_of_a_waiting_row_may_be_set_and_only_once():
    with transaction.atomic(), audit_deferred():
        event = audit_record(actor=ACTOR, action="test.waiting", target_type="thing", target_id="1")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE governance_auditevent SET reason = 'rewritten', previous_hash = 'x' WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE governance_auditevent SET previous_hash = '' WHERE id = %s", [event.pk])
    assert audit_chain_verify().ok


def test_a_deferred_block_needs_a_transaction():
    refused: list[Exception] = []

    def outside_a_transaction() -> None:  # a thread's own connection, in autocommit
        try:
            with audit_deferred():
                pass
        except RuntimeError as error:
            refused.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=outside_a_transaction)
    thread.start()
    thread.join(timeout=10)
    assert len(refused) == 1 and "needs a transaction" in str(refused[0])
