"""A task that runs far longer than the listener timeout runs once, to the end, beside idle
workers that look for dead listeners all the while.

Three workers (``blueque_worker default --concurrency 2``, fork mode) with a listener timeout
of 2 s: a listener or a task's process whose heartbeat is over 2 s old is presumed dead, and
each worker looks for such listeners every half second. One task sleeps for 25 s
(``BLUEQUE_SLOW_LONG_TASK_SECONDS`` may make it longer: the check used to run it for ten
minutes). One worker runs it; the other two stay idle beside it and must recover nothing.
While it runs the test samples, at jittered times, the task's status, attempt, node and pid,
and the age of every heartbeat (printed, not asserted).
"""

from __future__ import annotations

import os
import random
import time

import pytest

from django_blueque.protocol import Client, keys
from django_blueque.protocol.replies import string_set
from tests.workers import tasks
from tests.workers.conftest import Spawn, events
from tests.workers.runs import LISTENER_TIMEOUT, queue_listeners, wait_for

pytestmark = pytest.mark.slow

WORKERS = 3
SECONDS = float(os.environ.get("BLUEQUE_SLOW_LONG_TASK_SECONDS", "25"))
#: Seconds between two samples, on average; jittered (+-50 %) so as not to lock onto the
#: heartbeats, which come at a fixed period (a quarter of the listener timeout).
SAMPLE_EVERY = 0.5


class Watch:
    """What the samples saw: the task's distinct states in order, and the oldest heartbeats."""

    def __init__(self, client: Client, task_id: str) -> None:
        self.client = client
        self.task_id = task_id
        self.states: list[tuple[str | None, ...]] = []
        self.samples = 0
        self.oldest_task_beat = 0.0
        self.oldest_listener_beat = 0.0

    def sample(self) -> str | None:
        """Note the task's state and the heartbeats' ages (on the Redis server's clock); return its status."""
        redis = self.client.redis
        listeners = sorted(string_set(redis.smembers(keys.listeners("default"))))
        with redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.task(self.task_id), ["status", "attempt", "node", "pid"])
            pipe.zscore(keys.task_heartbeats(), self.task_id)
            for listener in listeners:
                pipe.zscore(keys.heartbeats(), listener)
            pipe.time()
            fields, task_beat, *beats, (seconds, micros) = pipe.execute()
        now = int(seconds) + int(micros) / 1_000_000
        state = tuple(None if value is None else str(value) for value in fields)
        if not self.states or self.states[-1] != state:
            self.states.append(state)
        if state[0] == "started" and task_beat is not None:
            self.oldest_task_beat = max(self.oldest_task_beat, now - float(task_beat))
        for beat in beats:
            if beat is not None:
                self.oldest_listener_beat = max(self.oldest_listener_beat, now - float(beat))
        self.samples += 1
        return state[0]


def test_a_task_far_longer_than_the_listener_timeout_runs_once_to_the_end(blueque: Client, spawn_worker: Spawn) -> None:
    workers = [spawn_worker("default", "--concurrency", "2", "--mode", "fork") for _ in range(WORKERS)]
    wait_for(lambda: queue_listeners(blueque) >= WORKERS, 60, f"{WORKERS} workers to listen")
    time.sleep(2 * LISTENER_TIMEOUT)  # a few heartbeats and recovery rounds before the task
    task_id = tasks.sleep.enqueue(SECONDS).id
    wait_for(lambda: blueque.get_task(task_id).status == "started", 30, "the task to start")

    watch = Watch(blueque, task_id)
    deadline = time.monotonic() + SECONDS + 60
    while watch.sample() not in ("complete", "failed", None):
        assert time.monotonic() < deadline, f"the task did not finish; states seen: {watch.states}"
        assert all(worker.poll() is None for worker in workers), "a worker exited"
        time.sleep(random.uniform(0.5, 1.5) * SAMPLE_EVERY)
    time.sleep(2 * LISTENER_TIMEOUT)  # recovery rounds after the end could still misbehave
    watch.sample()

    task = blueque.get_task(task_id)
    # Started once, by one process, and never taken from it: two states only, started then complete.
    assert [state[0] for state in watch.states] == ["started", "complete"], watch.states
    assert len({state[1:] for state in watch.states}) == 1, watch.states  # same attempt, node and pid
    journal = events(blueque, task_id)
    assert [event for event, _, _ in journal] == ["start", "end"]
    assert len({pid for _, pid, _ in journal}) == 1
    assert task.status == "complete"
    assert [str(x) for x in blueque.redis.lrange(keys.complete("default"), 0, -1)].count(task_id) == 1
    assert task.fields.get("attempt") == "1"
    assert not {"recoveries", "lost", "reclaimed_node"} & set(task.fields), task.fields
    assert all(worker.poll() is None for worker in workers)

    elapsed = (task.updated or 0.0) - (task.created or 0.0)
    print(
        f"\nsleep({SECONDS:g}) with a {LISTENER_TIMEOUT:g} s listener timeout: enqueue -> complete {elapsed:.3f} s;"
        f" oldest heartbeat seen in {watch.samples} samples: task {watch.oldest_task_beat:.2f} s,"
        f" listeners {watch.oldest_listener_beat:.2f} s"
    )
