import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django_tenants.utils import schema_context

from governance.models import AuditEvent
from governance.services import Actor, audit_chain_verify, audit_record, audit_seal
from governance.tasks import audit_seal_all

pytestmark = pytest.mark.django_db
ACTOR = Actor(email="auditor@msp.test")


def test_rows_are_sealed_when_their_transaction_commits_each_linked_to_the_one_before(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = audit_record(actor=ACTOR, action="test.first", target_type="thing", target_id="1")
        second = audit_record(actor=ACTOR, action="test.second", target_type="thing", target_id="2", reason="because", data={"n": 2})
        assert first.chain_seq is None and second.previous_hash == ""  # written, not sealed yet
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.previous_hash == first.row_hash and second.chain_seq == first.chain_seq + 1
    result = audit_chain_verify()
    assert result.ok and result.waiting == 0


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
    call_command("audit_verify")  # seals the rows, then checks them
    assert "OK" in capsys.readouterr().out
    _tamper("UPDATE governance_auditevent SET reason = 'rewritten' WHERE id = %s", [changed.id])
    with pytest.raises(CommandError, match=f"row {changed.id}: its content no longer matches"):
        call_command("audit_verify")


def test_verify_notices_a_removed_row():
    audit_record(actor=ACTOR, action="test.a", target_type="thing", target_id="1")
    removed = audit_record(actor=ACTOR, action="test.b", target_type="thing", target_id="2")
    after = audit_record(actor=ACTOR, action="test.c", target_type="thing", target_id="3")
    audit_seal()
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


# --- sealing: after the commit, by whoever holds the seal lock ---------------------------------------


def _in_a_thread(work) -> list:
    """Run `work` on a thread of its own (its own connection, in autocommit); return its result."""
    results: list = []

    def target() -> None:
        try:
            results.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the thread did not finish"
    return results


def test_an_open_transaction_with_audit_rows_holds_up_no_other_writer():
    """Another connection writes, commits and is sealed while this transaction's row waits: rows
    are sealed in the order their transactions committed."""
    mine = audit_record(actor=ACTOR, action="test.open", target_type="thing", target_id="1")
    [other] = _in_a_thread(lambda: audit_record(actor=ACTOR, action="test.other", target_type="thing", target_id="2"))
    other.refresh_from_db()
    mine.refresh_from_db()
    assert other.chain_seq is not None and mine.chain_seq is None
    assert audit_seal() >= 1
    mine.refresh_from_db()
    assert mine.chain_seq > other.chain_seq and audit_chain_verify().ok


def test_rows_committed_while_another_seals_are_not_left_behind(world):
    """Eight writers commit small transactions at once; each commit's seal either gets the lock or
    leaves its rows to the holder, which looks again after it lets go. No row stays unsealed."""
    marker = f"race-{threading.get_ident()}-{id(world)}"

    def writer(n: int) -> None:
        try:
            with schema_context(world.acme.schema):
                for i in range(15):
                    with transaction.atomic():
                        for j in range(3):
                            audit_record(actor=ACTOR, action="test.race", target_type=marker, target_id=f"{n}.{i}.{j}")
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    with schema_context(world.acme.schema):
        written = AuditEvent.objects.filter(target_type=marker)
        assert written.count() == 8 * 15 * 3
        assert not written.filter(chain_seq__isnull=True).exists()
        seqs = sorted(written.values_list("chain_seq", flat=True))
        assert len(set(seqs)) == len(seqs) and audit_chain_verify().ok


def test_a_rolled_back_savepoint_takes_its_rows_out_and_the_rest_are_sealed_in_order(world, django_capture_on_commit_callbacks):
    with schema_context(world.acme.schema), django_capture_on_commit_callbacks(execute=True):
        kept = audit_record(actor=ACTOR, action="test.kept", target_type="thing", target_id="1")
        with pytest.raises(RuntimeError), transaction.atomic():
            audit_record(actor=ACTOR, action="test.dropped", target_type="thing", target_id="2")
            raise RuntimeError("the savepoint rolls back")
        after = audit_record(actor=ACTOR, action="test.after", target_type="thing", target_id="3")
    with schema_context(world.acme.schema):
        kept.refresh_from_db()
        after.refresh_from_db()
        assert after.previous_hash == kept.row_hash and after.chain_seq == kept.chain_seq + 1
        assert not AuditEvent.objects.filter(action="test.dropped").exists()
        assert audit_chain_verify().ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE governance_auditevent SET reason = 'rewritten', previous_hash = 'x', chain_seq = 999999 WHERE id = %s",
        "UPDATE governance_auditevent SET id = id + 1000000, previous_hash = 'x', chain_seq = 999999 WHERE id = %s",
        "UPDATE governance_auditevent SET row_hash = 'y' WHERE id = %s",
    ],
)
def test_an_unsealed_row_may_only_be_sealed(statement):
    event = audit_record(actor=ACTOR, action="test.waiting", target_type="thing", target_id="1")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [event.pk])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE governance_auditevent SET chain_seq = NULL, previous_hash = '' WHERE id = %s",
        "UPDATE governance_auditevent SET chain_seq = chain_seq + 1000000 WHERE id = %s",
        "UPDATE governance_auditevent SET previous_hash = 'x' WHERE id = %s",
    ],
)
def test_a_sealed_row_stays_as_sealed(statement):
    event = audit_record(actor=ACTOR, action="test.sealed", target_type="thing", target_id="1")
    audit_seal()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [event.pk])
    assert audit_chain_verify().ok


def test_the_sweep_seals_rows_whose_writer_did_not(world):
    """A writer whose seal could not run (here: the lock is held by this test's transaction, as by a
    stuck sealer) leaves its row; beat's sweep seals it in its schema."""
    with schema_context(world.acme.schema):
        audit_seal()  # takes acme's seal lock until the test's transaction ends

        def write() -> AuditEvent:
            with schema_context(world.acme.schema):
                return audit_record(actor=ACTOR, action="test.left", target_type="thing", target_id="1")

        [left] = _in_a_thread(write)
        left.refresh_from_db()
        assert left.chain_seq is None
        sealed = audit_seal_all()
        left.refresh_from_db()
        assert sealed.get(world.acme.schema, 0) >= 1 and left.chain_seq is not None
        assert audit_chain_verify().ok


def test_a_row_committed_while_the_sealer_is_busy_is_sealed_when_it_lets_go(world):
    """The race the second look is for, step by step: the sealer holds the lock (held up here by a
    row lock on one of the rows it seals), a writer commits, finds the lock taken and leaves its
    row; the sealer, once it lets go, looks again and seals that row too."""
    schema = world.acme.schema
    held, release = threading.Event(), threading.Event()

    def hold(statement: str, params: list) -> None:  # a connection holding a lock until released
        try:
            with schema_context(schema), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, params)
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    def write(action: str) -> AuditEvent:
        with schema_context(schema):
            return audit_record(actor=ACTOR, action=action, target_type="thing", target_id="1")

    # A committed, unsealed row: written while another connection holds the seal lock.
    locker = threading.Thread(target=hold, args=("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':audit'))", []))
    locker.start()
    assert held.wait(timeout=10)
    [first] = _in_a_thread(lambda: write("test.first"))
    release.set()
    locker.join(timeout=10)
    # Hold the sealer up inside its transaction: a row lock on that row.
    held.clear()
    release.clear()
    row_locker = threading.Thread(target=hold, args=("SELECT id FROM governance_auditevent WHERE id = %s FOR UPDATE", [first.pk]))
    row_locker.start()
    assert held.wait(timeout=10)
    sealer = threading.Thread(target=_seal_on_a_thread, args=(schema,))
    sealer.start()
    with connection.cursor() as cursor:  # until the sealer waits for the row lock, holding the seal lock
        for _ in range(300):
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted")
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the sealer never waited for the row lock")
    [second] = _in_a_thread(lambda: write("test.second"))  # its own seal finds the lock taken
    with schema_context(schema):
        second.refresh_from_db()
        assert second.chain_seq is None
        release.set()
        row_locker.join(timeout=10)
        sealer.join(timeout=30)
        assert not sealer.is_alive()
        first.refresh_from_db()
        second.refresh_from_db()
        assert first.chain_seq is not None and second.chain_seq == first.chain_seq + 1
        assert audit_chain_verify().ok


def _seal_on_a_thread(schema: str) -> None:
    try:
        with schema_context(schema):
            audit_seal()
    finally:
        connection.close()
