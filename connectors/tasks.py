"""Thin Celery entry points for the inbox (`connectors.inbox` does the work), on the `connectors` queue.

`dispatch_ready` runs inside one tenant's schema (the `_schema_name` header) and hands on a batch
of the inbox's waiting events; a repeated task finds nothing left or the rows locked. After the
batch it advances the schema's ready high-priority runs itself (`workflows.engine.runs_advance_urgent`):
the runs the batch started, such as a delay's exception, go on without queueing behind the engine. Beat sends
`dispatch_sweep_all`, which fans `dispatch_sweep` out to every ready tenant to wake the dispatcher
for events left behind.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from celery import shared_task
from django.conf import settings

from tenants.db import connection
from tenants.tasks import ready_tenants_send, schema_wake, schema_wake_token_drop

log = structlog.get_logger("baton.connectors")


@shared_task(name="connectors.dispatch_ready", acks_late=True)
def dispatch_ready() -> int:
    from connectors.inbox import dispatch_token
    from connectors.models import EventDispatch

    schema = connection.schema_name
    schema_wake_token_drop(dispatch_token(schema))  # before claiming: see tenants.tasks.schema_wake
    with dispatcher_lock() as alone:
        if not alone:  # the schema's dispatcher is at work: it takes these events too (or is sent again)
            return 0
        handed, more = _batches()
    if more or EventDispatch.objects.exists():
        # Time ran out, or events came after the last batch. Their wake-up may be on its way already
        # (one sent after the token was dropped above); the token keeps this from sending a second,
        # since two per task, each sending two, fill the queue with dispatchers of a few events each.
        schema_wake(dispatch_ready, schema, token=dispatch_token(schema), gather_seconds=0 if more else settings.BATON_INBOX_GATHER_SECONDS)
    return handed


def _batches() -> tuple[int, bool]:
    """Batch after batch while events wait, for up to BATON_INBOX_DISPATCH_SECONDS; (handed on,
    time ran out with more waiting)."""
    from connectors.inbox import events_dispatch

    batch = settings.BATON_INBOX_BATCH
    deadline = time.monotonic() + settings.BATON_INBOX_DISPATCH_SECONDS
    handed = 0
    while True:
        outcomes = events_dispatch(limit=batch, large=settings.BATON_INBOX_LARGE_BYTES)
        handed += len(outcomes)
        if "delivered" in outcomes.values():
            _urgent_runs_advance()
        if len(outcomes) < batch and not outcomes.more:
            return handed, False
        if time.monotonic() > deadline:
            return handed, True


@contextmanager
def dispatcher_lock() -> Iterator[bool]:
    """One dispatcher per schema at a time (a session advisory lock, gone with a dead worker's
    connection): two at once lock the same shipments and mostly wait for each other, while the
    engine's work waits for them both."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(current_schema() || ':dispatcher'))")
        alone = bool(cursor.fetchone()[0])
    try:
        yield alone
    finally:
        if alone:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(current_schema() || ':dispatcher'))")


def _urgent_runs_advance() -> None:
    """The high-priority runs ready now, advanced here; a failure leaves them to the engine (their
    start woke it; a lease this took runs out and the reaper frees it)."""
    from workflows.engine import runs_advance_urgent
    from workflows.tasks import worker_owner

    try:
        runs_advance_urgent(owner=worker_owner(), lease_seconds=settings.BATON_ENGINE_LEASE_SECONDS)
    except Exception:
        log.exception("urgent runs not advanced after the dispatch; the engine will")


@shared_task(name="connectors.dispatch_sweep_all")
def dispatch_sweep_all() -> list[str]:
    return ready_tenants_send(dispatch_sweep)


@shared_task(name="connectors.dispatch_sweep")
def dispatch_sweep() -> int:
    from connectors.inbox import dispatch_sweep as sweep

    return sweep()


@shared_task(name="connectors.deliver", acks_late=True)
def deliver(delivery_id: int) -> str:
    from connectors.deliveries import delivery_attempt

    return delivery_attempt(delivery_id).status


@shared_task(name="connectors.deliveries_due_all")
def deliveries_due_all() -> list[str]:
    return ready_tenants_send(deliveries_due)


@shared_task(name="connectors.deliveries_due")
def deliveries_due() -> int:
    """Inside one tenant's schema: send the deliveries whose (re)try time has come."""
    from connectors.deliveries import deliveries_due as due

    return due()


@shared_task(name="connectors.edi_poll_all")
def edi_poll_all() -> list[str]:
    return ready_tenants_send(edi_poll)


@shared_task(name="connectors.edi_poll")
def edi_poll() -> dict[str, str]:
    """Inside one tenant's schema: take every SFTP partner's inbound files and write its pending 997s."""
    from connectors.edi_transport import edi_poll_partners

    return edi_poll_partners()


@shared_task(name="connectors.exchanges_purge_all")
def exchanges_purge_all() -> list[str]:
    """Daily, from beat: `exchanges_purge` in every ready tenant's schema."""
    return ready_tenants_send(exchanges_purge)


@shared_task(name="connectors.exchanges_purge")
def exchanges_purge() -> dict[str, object]:
    """Inside one tenant's schema: delete the outbound log past BATON_CONNECTOR_EXCHANGE_DAYS; a
    purge the time limit stopped goes on in a new task."""
    from connectors.exchanges import exchanges_purge as purge
    from tenants.db import connection as db

    result = purge()
    if not result["complete"]:
        exchanges_purge.apply_async(headers={"_schema_name": db.schema_name})
    return result
