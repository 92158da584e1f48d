"""Three real ``manage.py blueque_scheduler`` processes, one of them kill -9'd every 2 s (round
robin) and started again at once: every due task is moved to pending exactly once, and every
occurrence of a periodic task runs exactly once, with no gap. Behaviour only, no timings
(``bench/scheduler_failover.py`` measures those)."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from django_blueque.protocol import Client, keys
from tests.workers.conftest import MANAGE, ROOT, wait_for

SCHEDULERS = 3
KILL_EVERY = 2.0
#: The periodic entry of tests/workers/periodic_settings.py.
PERIODIC_NAME, PERIODIC_QUEUE = "every-second", "periodic"
RECORDED = re.compile(rf"^Periodic task {PERIODIC_NAME}, occurrence ([0-9.]+): recorded$", re.MULTILINE)

Spawn = Callable[[str], subprocess.Popen[bytes]]


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@pytest.fixture
def spawn_scheduler(redis_url: str, tmp_path: Path) -> Iterator[Spawn]:
    """Start ``manage.py blueque_scheduler`` with a settings module, in its own process group; all killed at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(settings_module: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")]),
            "DJANGO_SETTINGS_MODULE": settings_module,
            "BLUEQUE_REDIS_URL": redis_url,
            "DEMO_DATABASE": str(tmp_path / "db.sqlite3"),
        }
        with open(tmp_path / f"scheduler-{len(processes)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(MANAGE), "blueque_scheduler", "--interval", "0.25"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill it whole
            )
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        kill(process)


class Fleet:
    """``SCHEDULERS`` schedulers; :meth:`run` kills one every ``KILL_EVERY`` seconds and starts another."""

    def __init__(self, spawn: Spawn, settings_module: str, logs: Path) -> None:
        self.spawn = spawn
        self.settings_module = settings_module
        self.processes = [spawn(settings_module) for _ in range(SCHEDULERS)]
        self.kills = 0
        first_logs = [logs / f"scheduler-{n}.log" for n in range(SCHEDULERS)]
        wait_for(
            lambda: all("Scheduler serving" in path.read_text(errors="replace") for path in first_logs),
            30,
            f"{SCHEDULERS} schedulers to start",
        )

    def run(self, until: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        next_kill = time.monotonic() + KILL_EVERY
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            if time.monotonic() >= next_kill:
                slot = self.kills % SCHEDULERS
                kill(self.processes[slot])
                self.processes[slot] = self.spawn(self.settings_module)
                self.kills += 1
                next_kill += KILL_EVERY
            time.sleep(0.02)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(10)


def test_scheduled_tasks_move_exactly_once_while_schedulers_are_killed(
    redis_url: str, spawn_scheduler: Spawn, tmp_path: Path
) -> None:
    client = Client(redis_url)
    fleet = Fleet(spawn_scheduler, "testproject.settings", tmp_path)
    queue = client.get_queue("failover")
    base = time.time()
    # 600 tasks due over 6 s, from 1.5 s from now: three kills while they come due.
    etas = [base + 1.5 + 6 * i / 599 for i in range(600)]
    ids = [queue.schedule(f"task {i}", eta=eta) for i, eta in enumerate(etas)]
    fleet.run(
        lambda: time.time() > etas[-1] and client.redis.zcard(keys.scheduled("failover")) == 0,
        etas[-1] - time.time() + 10,
        "every scheduled task to be moved",
    )
    assert fleet.kills >= 3

    pending = [str(task_id) for task_id in client.redis.lrange(keys.pending("failover"), 0, -1)]
    assert len(pending) == len(set(pending)) == 600  # no duplicate
    assert set(pending) == set(ids)  # nothing missing, nothing else
    tasks = client.get_tasks(ids)
    assert Counter(task.status for task in tasks) == {"pending": 600}
    # Every one was moved by a scheduler, at or after its ETA (not enqueued at once for a late write).
    assert all(task.eta is not None and task.updated is not None and task.updated >= task.eta for task in tasks)
    fleet.stop()
    client.close()


def test_a_periodic_task_runs_once_per_occurrence_while_schedulers_are_killed(
    redis_url: str, spawn_scheduler: Spawn, tmp_path: Path
) -> None:
    client = Client(redis_url)
    fleet = Fleet(spawn_scheduler, "tests.workers.periodic_settings", tmp_path)
    wait_for(lambda: bool(client.redis.hexists(keys.periodic(), PERIODIC_NAME)), 10, "a scheduler to see the entry")
    end = time.monotonic() + 5.5
    fleet.run(lambda: time.monotonic() >= end, 10, "the periodic window")
    stopped_at = time.time()
    fleet.stop()
    assert fleet.kills >= 2

    pending = [str(task_id) for task_id in client.redis.lrange(keys.pending(PERIODIC_QUEUE), 0, -1)]
    runs = client.get_tasks(pending)
    assert len(pending) == len(set(pending))
    assert all(task.fields.get("periodic") == PERIODIC_NAME for task in runs)
    # Every run's task is in the pending list: none written elsewhere.
    hashes = [key for key in client.redis.scan_iter(match=keys.task("*")) if client.redis.hexists(key, "periodic")]
    assert len(hashes) == len(runs)
    occurrences = Counter(round(float(task.fields["occurrence"])) for task in runs)
    assert [o for o, n in occurrences.items() if n > 1] == []  # no occurrence ran twice
    # The occurrence current when the entry was first seen is only recorded (a new entry starts
    # at the next one). From the logs: the hash may hold a later one by the time it is read.
    recorded = [
        round(float(found))
        for path in tmp_path.glob("scheduler-*.log")
        for found in RECORDED.findall(path.read_text(errors="replace"))
    ]
    assert recorded
    assert [o for o in recorded if o in occurrences] == []
    # Every whole second after it, up to a second before the stop, has a run; none before.
    window = range(max(recorded) + 1, math.floor(stopped_at - 1) + 1)
    assert len(window) >= 3
    assert [o for o in window if o not in occurrences] == []  # no gap
    assert min(occurrences) == window[0]
    client.close()
