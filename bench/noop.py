"""The engine bench's baseline task: it does nothing, so its rate is what the broker and a worker
cost per task. Workers load it with `-I bench.noop`; nothing in Baton sends it."""

from celery import shared_task


@shared_task(name="bench.noop", ignore_result=True)
def noop() -> None:
    """Nothing: the baseline measures only receiving, running and acknowledging a task."""
