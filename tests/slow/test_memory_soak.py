"""Under a steady load of short tasks with a short RESULT_TTL, what Redis keeps stays bounded:
every finished task's hash is deleted within its time to live (plus a sweep and some slack),
however long the load lasts, and once the load stops everything the tasks left goes.

One ``blueque_run default --concurrency 4`` (a worker in fork mode, a scheduler and a monitor)
with ``RESULT_TTL`` and ``FAILED_RESULT_TTL`` of 10 s and a listener timeout of 4 s (the
monitor's expiry sweep runs every 2 s). For 60 s (``BLUEQUE_SLOW_SOAK_SECONDS`` may make it
longer) the test enqueues 50 tasks a second on a fixed schedule: no-op tasks, and every tenth
a raw task naming a Django task that does not exist, which the worker fails. About four times
a second, at jittered times, it reads the status of every task not yet seen finished and
counts the task hashes: never more than the tasks unfinished plus those seen finished within
the last TTL + sweep + slack. Redis's ``used_memory`` and the number of hashes are printed,
not asserted.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import statistics
import time
from dataclasses import dataclass, field

import pytest
import redis

from django_blueque.protocol import Client, keys
from tests.workers import tasks
from tests.workers.conftest import Spawn
from tests.workers.receivers.apps import JOURNAL as SIGNALS_JOURNAL
from tests.workers.runs import queue_listeners, wait_for

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("BLUEQUE_SLOW_SOAK_SECONDS", "60"))
RATE = 50.0
FAIL_EVERY = 10
TTL = 10.0
LISTENER_TIMEOUT = 4.0
SWEEP = LISTENER_TIMEOUT / 2
#: Seconds a finished task's hash may outlive TTL + SWEEP (reporting, a late sweep, a slow poll).
SLACK = 10.0
READ_EVERY = 0.25
MISSING_TASK = "tests.workers.tasks.no_such_task"
MIB = 1024 * 1024


@dataclass
class Tally:
    """Every task enqueued, and when it was first seen finished (read from its hash, before it goes)."""

    outstanding: dict[str, bool] = field(default_factory=dict)  # task id -> meant to fail
    finished_at: list[float] = field(default_factory=list)  # monotonic, in order
    enqueued: int = 0
    completed: int = 0
    failed: int = 0
    vanished: list[str] = field(default_factory=list)  # hash gone before a finished status was seen
    unexpected: list[str] = field(default_factory=list)  # a no-op that failed, a missing task that did not

    def add(self, task_id: str, failing: bool) -> None:
        self.outstanding[task_id] = failing
        self.enqueued += 1

    def poll(self, conn: redis.Redis) -> None:
        ids = list(self.outstanding)
        with conn.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(keys.task(task_id), ["status", "error"])
            replies = pipe.execute()
        now = time.monotonic()
        for task_id, (status, error) in zip(ids, replies, strict=True):
            if status not in (b"complete", b"failed", None):
                continue
            failing = self.outstanding.pop(task_id)
            self.finished_at.append(now)
            if status is None:
                self.vanished.append(task_id)
                continue
            self.completed += status == b"complete"
            self.failed += status == b"failed"
            if (status == b"failed") != failing:
                self.unexpected.append(f"{task_id}: {status!r} {error!r}")

    def may_hold(self, now: float) -> int:
        """How many task hashes Redis may hold: the unfinished, and those finished lately."""
        lately = len(self.finished_at) - bisect.bisect_left(self.finished_at, now - TTL - SWEEP - SLACK)
        return len(self.outstanding) + lately


def task_hashes(conn: redis.Redis) -> int:
    not_a_task = keys.task_heartbeats().encode()
    return sum(1 for key in conn.scan_iter(match=keys.task("*"), count=1000) if key != not_a_task)


def test_task_hashes_stay_bounded_under_steady_load_with_a_short_result_ttl(
    blueque: Client, redis_url: str, spawn_worker: Spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUEQUE_RESULT_TTL", str(TTL))
    monkeypatch.setenv("BLUEQUE_FAILED_RESULT_TTL", str(TTL))
    run = spawn_worker("default", "--concurrency", "4", command="blueque_run", listener_timeout=LISTENER_TIMEOUT)
    conn = redis.Redis.from_url(redis_url)
    wait_for(
        lambda: queue_listeners(blueque) >= 1 and bool(conn.scard(keys.monitors())),
        60,
        "blueque_run's worker and monitor to start",
    )
    keys_before = set(conn.keys())
    memory_before = int(conn.info("memory")["used_memory"])
    raw = blueque.get_queue("default")
    failing_parameters = json.dumps({"django_task": MISSING_TASK, "args": [], "kwargs": {}})

    tally = Tally()
    readings: list[tuple[float, int, int]] = []  # (seconds, used_memory, task hashes)
    over: list[str] = []
    begin = time.monotonic()
    next_reading = begin
    while (now := time.monotonic()) < begin + SECONDS:
        if now >= next_reading:
            tally.poll(conn)
            hashes, bound = task_hashes(conn), tally.may_hold(time.monotonic())
            if hashes > bound:
                over.append(f"{hashes} hashes at {now - begin:.1f} s, at most {bound} expected")
            # The journal of tests.workers.receivers grows with every task: not Blueque's, not read here.
            conn.delete(SIGNALS_JOURNAL)
            readings.append((now - begin, int(conn.info("memory")["used_memory"]), hashes))
            next_reading = now + READ_EVERY * random.uniform(0.5, 1.5)
            assert run.poll() is None, "blueque_run exited"
        due = begin + tally.enqueued / RATE
        if now >= due:
            failing = (tally.enqueued + 1) % FAIL_EVERY == 0
            tally.add(raw.enqueue(failing_parameters) if failing else tasks.noop.enqueue().id, failing)
        else:
            time.sleep(max(0.0, min(due, next_reading) - time.monotonic()))
    backlog = len(tally.outstanding)

    def drained() -> bool:
        tally.poll(conn)
        return not tally.outstanding

    wait_for(drained, 60, "the tasks enqueued to finish")
    assert over == []
    assert tally.unexpected == []
    assert tally.vanished == []  # each kept at least until it was seen finished
    assert (tally.completed, tally.failed) == (
        tally.enqueued - tally.enqueued // FAIL_EVERY,
        tally.enqueued // FAIL_EVERY,
    )
    # Once the load stops, every task hash goes, and with it every trace of the tasks.
    wait_for(lambda: task_hashes(conn) == 0, TTL + 2 * SWEEP + SLACK, "every task hash to expire")
    left = {key.decode() for key in set(conn.keys("blueque_*")) - keys_before if isinstance(key, bytes)}
    assert left <= {keys.per_minute("default", "complete"), keys.per_minute("default", "failed")}, left
    assert conn.zcard(keys.reported("default", "complete")) == conn.zcard(keys.reported("default", "failed")) == 0
    assert conn.zcard(keys.task_heartbeats()) == 0
    assert run.poll() is None

    memory_after = int(conn.info("memory")["used_memory"])
    second_half = [r for r in readings if r[0] >= SECONDS / 2]
    print(
        f"\n{tally.enqueued} tasks in {SECONDS:g} s ({tally.completed} complete, {tally.failed} failed),"
        f" {backlog} unfinished when the load stopped; TTL {TTL:g} s, sweep every {SWEEP:g} s;"
        f" task hashes: max {max(r[2] for r in readings)}, mean over the second half"
        f" {statistics.fmean(r[2] for r in second_half):.0f}; used_memory: {memory_before / MIB:.2f} MiB before,"
        f" mean over the second half {statistics.fmean(r[1] for r in second_half) / MIB:.2f} MiB,"
        f" max {max(r[1] for r in readings) / MIB:.2f} MiB, after expiry {memory_after / MIB:.2f} MiB"
    )
    conn.close()
