"""`tenants.tasks.schema_wake`: one wake-up per token, and nothing that holds a request when the
cache or the broker is down (the sweepers send what was not)."""

import pytest
from django.core.cache import cache

from tenants import tasks


class Sent:
    name = "tests.sent"

    def __init__(self, fail: bool = False):
        self.calls: list[dict] = []
        self.fail = fail

    def apply_async(self, **options):
        self.calls.append(options)
        if self.fail:
            raise ConnectionRefusedError("broker down")


@pytest.fixture(autouse=True)
def _broker_up(monkeypatch):
    monkeypatch.setattr(tasks, "_broker_down_until", 0.0)


def test_one_wake_up_per_token_until_the_task_drops_it():
    task, token = Sent(), "tests:wake:one"
    cache.delete(token)
    tasks.schema_wake(task, "t_one", token=token, gather_seconds=0.2)
    tasks.schema_wake(task, "t_one", token=token)
    assert [(call["headers"], call["countdown"]) for call in task.calls] == [({"_schema_name": "t_one"}, 0.2)]
    tasks.schema_wake_token_drop(token)
    tasks.schema_wake(task, "t_one", token=token)
    assert len(task.calls) == 2 and task.calls[1]["countdown"] is None
    cache.delete(token)


def test_without_the_cache_nothing_is_sent(monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(cache, "add", down)
    task = Sent()
    tasks.schema_wake(task, "t_one", token="tests:wake:two")
    assert task.calls == []


def test_after_a_failed_publish_the_process_sends_nothing_for_a_while(monkeypatch):
    broken, token = Sent(fail=True), "tests:wake:three"
    cache.delete(token)
    tasks.schema_wake(broken, "t_one", token=token)  # raises nothing: the work is committed
    assert len(broken.calls) == 1
    cache.delete(token)
    healthy = Sent()
    tasks.schema_wake(healthy, "t_one", token=token)
    assert healthy.calls == []  # within BROKER_DOWN_SECONDS
    monkeypatch.setattr(tasks, "_broker_down_until", 0.0)
    cache.delete(token)
    tasks.schema_wake(healthy, "t_one", token=token)
    assert len(healthy.calls) == 1
    cache.delete(token)
