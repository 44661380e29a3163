"""`BATON_WORKER_NICE` lowers a real worker's CPU priority, also where the kernel shares CPU time
between sessions first (autogroup): there a process's own niceness alone changes nothing."""

import os
from pathlib import Path

import pytest

from tests.processes import celery_worker, proc_stat, suite_env

pytestmark = pytest.mark.worker


def _niceness(pid: int) -> int:
    return int(proc_stat(pid)[16])


def test_a_batch_worker_leading_its_session_lowers_the_session_weight_too(tmp_path, django_db_setup):
    with celery_worker(tmp_path / "worker.log", env=suite_env(BATON_WORKER_NICE="7")) as worker:
        assert _niceness(worker.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 7, 19)  # on top of this run's own
        autogroup = Path(f"/proc/{worker.pid}/autogroup")
        if autogroup.exists():  # a kernel built with autogroup scheduling
            assert autogroup.read_text().split()[-1] == "7", autogroup.read_text()


def test_a_worker_without_the_setting_keeps_its_priority(tmp_path, django_db_setup):
    with celery_worker(tmp_path / "worker.log") as worker:
        assert _niceness(worker.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        autogroup = Path(f"/proc/{worker.pid}/autogroup")
        if autogroup.exists():
            assert autogroup.read_text().split()[-1] == "0", autogroup.read_text()
