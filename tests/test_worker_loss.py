"""Nothing is lost when a worker dies: a message it held comes back to another worker.

In a module of its own so that no other worker is alive to take the message first.
"""

import os
import signal
import time
import uuid

import pytest

from config.observability import redis_client
from insights.tasks import PROBE_KEY, pipeline_probe
from tests.processes import celery_worker, suite_env

pytestmark = pytest.mark.worker


def _wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_a_task_whose_worker_is_killed_mid_way_runs_again_on_another_worker(world, tmp_path, committed):
    """Late ack + a short visibility timeout: the message of a SIGKILLed worker is restored."""
    probe_id = uuid.uuid4().hex
    key = PROBE_KEY.format(probe_id=probe_id)
    # The visibility timeout must exceed the task's run time (in production: 1 h against a 15 min
    # limit), or a live worker's running task would be handed out a second time.
    fast_restore = {"BATON_BROKER_VISIBILITY_TIMEOUT": "5", "BATON_BROKER_RESTORE_INTERVAL": "1"}
    with celery_worker(tmp_path / "doomed.log", env=suite_env(**fast_restore)) as doomed:
        pipeline_probe.delay(probe_id, seconds=2)
        _wait_for(lambda: redis_client().hget(key, "attempts"))
        os.killpg(os.getpgid(doomed.pid), signal.SIGKILL)  # the whole worker, not just its child
        doomed.wait()
    assert not redis_client().hget(key, "done")
    with celery_worker(tmp_path / "rescuer.log", env=suite_env(**fast_restore)):
        # The rescuer restores the unacked message once its visibility timeout passed, and runs it.
        _wait_for(lambda: redis_client().hget(key, "done"), timeout=60)
    assert int(redis_client().hget(key, "attempts")) == 2
