"""``manage.py blueque_monitor`` as real processes: each finished task signalled once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

from django_blueque.protocol import Client, keys
from tests.workers.conftest import Spawn, wait_for
from tests.workers.receivers.apps import JOURNAL


def finished_tasks(client: Client, count: int) -> set[str]:
    """``count`` finished tasks on "default", half complete, half failed, as workers leave them."""
    ids = set()
    with client.redis.pipeline(transaction=False) as pipe:
        for i in range(count):
            task_id = f"finished-{i}"
            status, field, value = ("complete", "result", "ok") if i % 2 else ("failed", "error", "no")
            pipe.hset(
                keys.task(task_id), mapping={"status": status, "queue": "default", "parameters": "", field: value}
            )
            pipe.lpush(keys.complete("default") if i % 2 else keys.failed("default"), task_id)
            ids.add(task_id)
        pipe.zincrby(keys.queues(), 0, "default")
        pipe.execute()
    return ids


def signalled(client: Client) -> Counter[str]:
    entries = [entry.decode() if isinstance(entry, bytes) else entry for entry in client.redis.lrange(JOURNAL, 0, -1)]
    return Counter(entry.split()[2] for entry in entries)


def nothing_left(client: Client) -> bool:
    redis = client.redis
    in_flight = sum(redis.llen(key) for key in redis.scan_iter("blueque_monitoring_*"))
    return redis.llen(keys.complete("default")) + redis.llen(keys.failed("default")) + in_flight == 0


def test_two_monitors_signal_each_completion_and_failure_once(blueque: Client, spawn_worker: Spawn) -> None:
    ids = finished_tasks(blueque, 5000)
    for _ in range(2):
        spawn_worker("--interval", "0.1", command="blueque_monitor")
    wait_for(lambda: sum(signalled(blueque).values()) >= 5000 and nothing_left(blueque), 120, "5000 signals")
    time.sleep(0.5)  # nothing more may come
    counts = signalled(blueque)
    assert set(counts) == ids
    assert set(counts.values()) == {1}
    entries = [e.decode() if isinstance(e, bytes) else e for e in blueque.redis.lrange(JOURNAL, 0, -1)]
    assert Counter(entry.split()[0] for entry in entries) == {"completed": 2500, "failed": 2500}
    assert {entry.split()[1] for entry in entries} == {"default"}  # the sender is the queue


def test_a_monitor_killed_mid_run_leaves_nothing_unsignalled(blueque: Client, spawn_worker: Spawn) -> None:
    ids = finished_tasks(blueque, 5000)
    doomed = spawn_worker("--interval", "0.1", command="blueque_monitor")
    spawn_worker("--interval", "0.1", command="blueque_monitor")
    wait_for(lambda: sum(signalled(blueque).values()) >= 500, 60, "the monitors to get going")
    os.killpg(doomed.pid, signal.SIGKILL)
    wait_for(lambda: set(signalled(blueque)) == ids and nothing_left(blueque), 120, "every task to be signalled")
    counts = signalled(blueque)
    duplicates = sum(n - 1 for n in counts.values())
    # Only what the killed monitor held in flight (one batch per list) may come twice.
    assert duplicates <= 200
    print(f"monitor kill -9 mid-run: 5000 tasks, all signalled, {duplicates} signalled twice")
