"""URL forms that differ between redis-py and kombu for the same Redis server."""


def celery_broker_url(redis_url: str) -> str:
    """kombu spells a Redis unix socket `redis+socket://`; redis-py spells it `unix://`."""
    if redis_url.startswith("unix://"):
        path, _, query = redis_url[len("unix://") :].partition("?")
        return f"redis+socket://{path}" + (f"?{query}" if query else "")
    return redis_url
