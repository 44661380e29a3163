"""Embedded PostgreSQL/Redis (config/embedded.py), which `make run` / `make test` rely on.

No Django here: these servers must work before settings can even load. Everything runs in a
temporary directory over unix sockets only, so the shared servers on 5432/6379 are never touched.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
import redis
from kombu import Connection

from config import embedded


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    """A project root whose var/ holds the servers; every server started in it is stopped after."""
    path = tmp_path_factory.mktemp("baton")
    yield path
    embedded.postgres_stop(path / "var" / "pg")
    embedded.redis_stop(path / "var" / "redis")


def test_postgres_query_and_data_survive_a_restart(root: Path) -> None:
    data_dir = root / "var" / "pg"
    service = embedded.postgres_start(data_dir)
    assert service.url.startswith("postgresql://postgres@")
    with psycopg.connect(service.url, autocommit=True) as conn:
        assert conn.execute("SELECT current_database(), 1 + 1").fetchone() == ("baton", 2)
        conn.execute("CREATE TABLE IF NOT EXISTS kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('before restart')")

    began = time.monotonic()
    again = embedded.postgres_start(data_dir)
    assert not again.started_here and again.url == service.url
    assert time.monotonic() - began < 2  # reuse, not a restart

    embedded.postgres_stop(data_dir)
    embedded.postgres_stop(data_dir)  # stopping a stopped server is fine
    restarted = embedded.postgres_start(data_dir)
    assert restarted.started_here
    with psycopg.connect(restarted.url) as conn:
        assert ("before restart",) in conn.execute("SELECT note FROM kept").fetchall()


def test_redis_set_get_and_append_only_data_survive_a_restart(root: Path) -> None:
    data_dir = root / "var" / "redis"
    service = embedded.redis_start(data_dir)
    assert service.url == f"unix://{data_dir.resolve()}/redis.sock?db=0"
    client = redis.Redis.from_url(service.url)
    client.set("queued", "task-1")
    assert client.get("queued") == b"task-1"
    assert not embedded.redis_start(data_dir).started_here

    embedded.redis_stop(data_dir)
    embedded.redis_stop(data_dir)
    assert (data_dir / "appendonly.aof").exists()
    assert embedded.redis_start(data_dir).started_here
    assert redis.Redis.from_url(service.url).get("queued") == b"task-1"


def test_celery_broker_url_reaches_the_embedded_redis(root: Path) -> None:
    service = embedded.redis_start(root / "var" / "redis")
    broker = embedded.celery_broker_url(service.url.replace("db=0", "db=2"))
    assert broker.startswith("redis+socket:///") and broker.endswith("?virtual_host=2")
    with Connection(broker) as conn:
        queue = conn.SimpleQueue("baton-test-embedded")
        queue.put({"task": "ping"})
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert message.payload == {"task": "ping"}
    assert redis.Redis.from_url(service.url.replace("db=0", "db=2")).exists("_kombu.binding.baton-test-embedded")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("unix:///tmp/x/redis.sock?db=0", "redis+socket:///tmp/x/redis.sock?virtual_host=0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("amqp://guest:guest@localhost:5672//", "amqp://guest:guest@localhost:5672//"),
    ],
)
def test_celery_broker_url_only_rewrites_unix_sockets(url: str, expected: str) -> None:
    assert embedded.celery_broker_url(url) == expected


def test_socket_of_a_too_long_data_dir_goes_to_a_short_tmp_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / ("a-very-long-ci-checkout-folder-name-" * 3) / "var" / "redis"
    service = embedded.redis_start(data_dir)
    try:
        assert service.url.startswith("unix:///tmp/baton-")
        assert redis.Redis.from_url(service.url).ping()
        assert (data_dir / "redis.conf").exists()  # the data still lives in data_dir
    finally:
        embedded.redis_stop(data_dir)
        Path(service.url[len("unix://") :].partition("?")[0]).parent.rmdir()  # empty once Redis is gone


def test_services_ensure_adds_nothing_when_urls_are_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/baton")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    assert embedded.services_ensure(tmp_path) == {}
    assert not (tmp_path / "var").exists()


def test_services_ensure_starts_reuses_and_stops(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    embedded.postgres_stop(root / "var" / "pg")
    embedded.redis_stop(root / "var" / "redis")

    additions = embedded.services_ensure(root, log=None)
    assert set(additions) == {"DATABASE_URL", "REDIS_URL", "BATON_EMBEDDED_SERVICES"}
    began = time.monotonic()
    assert embedded.services_ensure(root, log=None) == additions
    assert time.monotonic() - began < 2

    embedded.services_stop(root, additions, log=None)
    assert not (root / "var" / "pg" / "postmaster.pid").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(additions["REDIS_URL"], retry=None).ping()
