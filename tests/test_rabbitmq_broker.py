"""RabbitMQ as the broker: the same worker runs tasks taken from AMQP instead of Redis."""

import socket
import time
import uuid

import pytest
from kombu import Connection

from config.observability import redis_client
from insights.tasks import PROBE_KEY, pipeline_probe
from tests.processes import celery_worker, suite_env

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
pytestmark = pytest.mark.worker


def _rabbitmq_listening() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", 5672)) == 0


@pytest.mark.skipif(not _rabbitmq_listening(), reason="RabbitMQ is not running on 127.0.0.1:5672 (not installed here)")
def test_a_worker_on_rabbitmq_runs_a_probe_sent_over_amqp(tmp_path, django_db_setup):
    probe_id = uuid.uuid4().hex
    with celery_worker(tmp_path / "amqp-worker.log", env=suite_env(CELERY_BROKER_URL=AMQP_URL)):
        with Connection(AMQP_URL) as connection:
            pipeline_probe.apply_async(args=[probe_id], connection=connection)
        deadline = time.time() + 30
        while not redis_client().hget(PROBE_KEY.format(probe_id=probe_id), "done"):
            assert time.time() < deadline, "the AMQP worker never ran the probe"
            time.sleep(0.2)
