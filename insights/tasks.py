"""Operational probes of the task pipeline."""

import time

from celery import shared_task

PROBE_KEY = "baton:probe:{probe_id}"  # probe ids are random: no prefix needed


@shared_task(name="insights.pipeline_probe", acks_late=True)
def pipeline_probe(probe_id: str, seconds: float = 0.0) -> int:
    """A round trip through the broker and a worker: counts each attempt, works `seconds`, then
    marks itself done. A probe whose worker died mid-way shows two attempts and one completion."""
    from config.observability import redis_client

    client = redis_client()
    key = PROBE_KEY.format(probe_id=probe_id)
    attempt = client.hincrby(key, "attempts", 1)
    client.expire(key, 3600)
    time.sleep(max(0.0, min(seconds, 600.0)))
    client.hset(key, "done", time.time())
    return int(attempt)
