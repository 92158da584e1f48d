"""``manage.py blueque_monitor`` as real processes: each finished task signalled once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from django_blueque.protocol import Client, keys
from django_blueque.protocol.replies import string_set
from tests.workers.conftest import LISTENER_TIMEOUT, Spawn, wait_for
from tests.workers.receivers.apps import DELAY_ENV, JOURNAL


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


def monitors(client: Client) -> set[str]:
    return string_set(client.redis.smembers(keys.monitors()))


def test_a_slow_monitor_written_off_is_whole_again_and_recovered_when_it_dies(
    blueque: Client, spawn_worker: Spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M1's receivers take longer than the timeout (so it cannot beat within
    one): M2 judges it dead and reports what it held. M1 must be back in the
    monitor set at its next beat, so that when it is killed later with tasks
    in flight, another monitor still reports them."""
    first = finished_tasks(blueque, 4)
    monkeypatch.setenv(DELAY_ENV, str(1.5 * LISTENER_TIMEOUT))
    m1 = spawn_worker("--interval", "0.1", command="blueque_monitor")
    wait_for(lambda: len(monitors(blueque)) == 1, 20, "M1 to register")
    (m1_id,) = monitors(blueque)
    wait_for(lambda: blueque.redis.llen(keys.monitoring(m1_id)) > 0, 10, "M1 to take a batch")
    monkeypatch.delenv(DELAY_ENV)
    m2 = spawn_worker("--interval", "0.1", command="blueque_monitor")
    wait_for(lambda: m1_id not in monitors(blueque), 4 * LISTENER_TIMEOUT + 10, "M2 to write M1 off")
    wait_for(lambda: set(signalled(blueque)) == first, 20, "M2 to report what M1 held")
    wait_for(lambda: m1_id in monitors(blueque), 4 * LISTENER_TIMEOUT, "M1 to be back in the monitor set")
    # Now only M1 runs, slowly; it is killed with tasks in flight.
    os.killpg(m2.pid, signal.SIGTERM)
    m2.wait(20)
    wait_for(lambda: not blueque.redis.llen(keys.monitoring(m1_id)), 30, "M1 to finish its batch")
    second = {f"later-{task_id}" for task_id in first}
    with blueque.redis.pipeline(transaction=False) as pipe:
        for task_id in second:
            pipe.hset(keys.task(task_id), mapping={"status": "complete", "queue": "default", "parameters": ""})
            pipe.lpush(keys.complete("default"), task_id)
        pipe.execute()
    wait_for(lambda: blueque.redis.llen(keys.monitoring(m1_id)) > 0, 10, "M1 to take the later tasks")
    os.killpg(m1.pid, signal.SIGKILL)
    m1.wait(10)
    spawn_worker("--interval", "0.1", command="blueque_monitor")
    wait_for(
        lambda: second <= set(signalled(blueque)) and nothing_left(blueque),
        4 * LISTENER_TIMEOUT + 20,
        "the tasks M1 held when it died to be signalled",
    )
    counts = signalled(blueque)
    print(f"slow monitor: {sum(counts.values())} signals for {len(counts)} tasks")
    assert set(counts) == first | second
