"""Scheduler processes under fire, for ``test_scheduler_processes.py`` (short) and
``tests/slow/test_scheduler_failover.py`` (long): a :class:`Fleet` of ``manage.py
blueque_scheduler`` processes, one of them kill -9'd every few seconds (round robin) and
started again at once, and the two checks run under it: every due task is moved to pending
exactly once, and every occurrence of a periodic task runs exactly once, with no gap.

The checks assert behaviour only; they return how late each move or run was, for the
slow tests to print, never to assert.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from django_blueque.protocol import Client, keys
from tests.workers.runs import wait_for

#: Schedulers in a fleet, and seconds between two kills.
SCHEDULERS = 3
KILL_EVERY = 2.0
#: The settings with a periodic task, and its entry (tests/workers/periodic_settings.py).
PERIODIC_SETTINGS = "tests.workers.periodic_settings"
PERIODIC_NAME, PERIODIC_QUEUE = "every-second", "periodic"
RECORDED = re.compile(rf"^Periodic task {PERIODIC_NAME}, occurrence ([0-9.]+): recorded$", re.MULTILINE)
SCHEDULED_QUEUE = "failover"

#: ``spawn_scheduler(settings_module)``, the fixture in ``tests/workers/conftest.py``.
SpawnScheduler = Callable[[str], subprocess.Popen[bytes]]


def kill(process: subprocess.Popen[bytes]) -> None:
    """kill -9 a process's whole group, and reap it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


class Fleet:
    """``SCHEDULERS`` schedulers, the first ``spawn`` starts (their logs are ``logs/scheduler-<n>.log``);
    :meth:`run` kills one every ``kill_every`` seconds and starts another in its place."""

    def __init__(self, spawn: SpawnScheduler, settings_module: str, logs: Path, kill_every: float = KILL_EVERY) -> None:
        self.spawn = spawn
        self.settings_module = settings_module
        self.logs = logs
        self.kill_every = kill_every
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
        next_kill = time.monotonic() + self.kill_every
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            if time.monotonic() >= next_kill:
                slot = self.kills % SCHEDULERS
                kill(self.processes[slot])
                self.processes[slot] = self.spawn(self.settings_module)
                self.kills += 1
                next_kill += self.kill_every
            time.sleep(0.02)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(10)


def move_scheduled(client: Client, fleet: Fleet, count: int, span: float, lead: float) -> list[float]:
    """Schedule ``count`` tasks due evenly over ``span`` seconds, the first ``lead`` seconds from now;
    run ``fleet`` until all are due and moved, then stop it. Checks that each was moved to pending
    exactly once, by a scheduler, at or after its ETA; returns each move's lateness (updated - eta), s.

    ``lead`` must leave time to write them all: one written after its ETA is enqueued at once, and
    fails the check.
    """
    queue = client.get_queue(SCHEDULED_QUEUE)
    base = time.time()
    etas = [base + lead + span * i / max(count - 1, 1) for i in range(count)]
    ids = [queue.schedule(f"task {i}", eta=eta) for i, eta in enumerate(etas)]
    fleet.run(
        lambda: time.time() > etas[-1] and client.redis.zcard(keys.scheduled(SCHEDULED_QUEUE)) == 0,
        etas[-1] - time.time() + 10,
        "every scheduled task to be moved",
    )
    fleet.stop()

    pending = [str(task_id) for task_id in client.redis.lrange(keys.pending(SCHEDULED_QUEUE), 0, -1)]
    assert len(pending) == len(set(pending)) == count  # no duplicate
    assert set(pending) == set(ids)  # nothing missing, nothing else
    tasks = client.get_tasks(ids)
    assert Counter(task.status for task in tasks) == {"pending": count}
    # Every one was moved by a scheduler, at or after its ETA (not enqueued at once for a late write).
    assert all(task.eta is not None and task.updated is not None and task.updated >= task.eta for task in tasks)
    return [(task.updated or 0.0) - (task.eta or 0.0) for task in tasks]


def run_periodic(client: Client, fleet: Fleet, seconds: float) -> list[float]:
    """Run ``fleet`` (with ``PERIODIC_SETTINGS``) for ``seconds`` once a scheduler has seen the periodic
    entry, then stop it. Checks that no occurrence ran twice, the first one seen was only recorded,
    and every later whole second up to one before the stop has a run; returns each run's lateness
    (created - occurrence), s."""
    wait_for(lambda: bool(client.redis.hexists(keys.periodic(), PERIODIC_NAME)), 10, "a scheduler to see the entry")
    end = time.monotonic() + seconds
    fleet.run(lambda: time.monotonic() >= end, seconds + 5, "the periodic window")
    stopped_at = time.time()
    fleet.stop()

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
        for path in fleet.logs.glob("scheduler-*.log")
        for found in RECORDED.findall(path.read_text(errors="replace"))
    ]
    assert recorded
    assert [o for o in recorded if o in occurrences] == []
    # Every whole second after it, up to a second before the stop, has a run; none before.
    window = range(max(recorded) + 1, math.floor(stopped_at - 1) + 1)
    assert len(window) >= 3
    assert [o for o in window if o not in occurrences] == []  # no gap
    assert min(occurrences) == window[0]
    return [(task.created or 0.0) - float(task.fields["occurrence"]) for task in runs]
