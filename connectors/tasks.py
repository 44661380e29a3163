"""Thin Celery entry points for the inbox (`connectors.inbox` does the work), on the `connectors` queue.

`dispatch` runs inside one tenant's schema (the `_schema_name` header); a repeated task finds its
dispatch row gone or locked and does nothing. Beat sends `dispatch_sweep_all`, which fans
`dispatch_sweep` out to every ready tenant to resend dispatches left behind.
"""

from celery import shared_task

from tenants.tasks import ready_tenants_send


@shared_task(name="connectors.dispatch", acks_late=True)
def dispatch(event_id: int) -> str:
    from connectors.inbox import event_dispatch

    return event_dispatch(event_id)


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
