"""Scenario 5: the tasks of a dead listener, recovered by many observers at once.

A listener that beat once and died holds 1,000 tasks: half taken (reserved),
half started with a process that beat for them too. Ten observers, each a
process of its own with the recovery watch every worker and scheduler runs,
watch it at once; all of them judge it dead after its timeout and race to
recover its tasks.

Pass line: each task goes back to pending exactly once: in the pending list
once; a started one counted once as a recovery (its run was lost), a merely
reserved one once as a release (it never ran); nothing left in the
listener's list, the started set or the task heartbeats.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import redis

from django_blueque.protocol import Client, keys
from tests.reliability.figures import Row, full_size, record

DEAD = "far.example-0a1b2c3d_4242"
TIMEOUT = 1.0


def orphans(client: Client, count: int) -> list[str]:
    """``count`` tasks held by :data:`DEAD`, which beat once, long ago."""
    queue = client.get_queue("q")
    ids = [queue.enqueue(str(i)) for i in range(count)]
    db = client.redis
    with db.pipeline(transaction=False) as pipe:
        pipe.sadd(keys.listeners("q"), DEAD)
        pipe.zadd(keys.heartbeats(), {DEAD: 1000.0})
        pipe.hset(keys.listener_timeouts(), DEAD, TIMEOUT)
        for index, task_id in enumerate(ids):
            pipe.lmove(keys.pending("q"), keys.reserved("q", DEAD), "RIGHT", "LEFT")
            if index % 2:
                pipe.hset(keys.task(task_id), mapping={"status": "reserved", "node": DEAD})
            else:
                pid = 10_000 + index
                pipe.hset(keys.task(task_id), mapping={"status": "started", "node": DEAD, "pid": pid, "attempt": 1})
                pipe.sadd(keys.started("q"), keys.started_member(DEAD, pid, task_id))
                pipe.zadd(keys.task_heartbeats(), {task_id: 1000.0})
        pipe.execute()
    return ids


def observe(url: str, seconds: float, results: multiprocessing.Queue[Counter[str]]) -> None:
    client = Client(url)
    recovery = client.recovery(["q"], timeout=TIMEOUT)
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts += recovery.poll()
        time.sleep(recovery.interval)
    results.put(counts)
    client.close()


def test_the_tasks_of_a_dead_listener_are_requeued_once_by_ten_observers_at_once(redis_url: str) -> None:
    rounds = 10 if full_size() else 1
    tasks, observers = 1_000, 10
    client = Client(redis_url)
    db = redis.Redis.from_url(redis_url, decode_responses=True)
    started_at = time.monotonic()
    extra = lost = 0
    context = multiprocessing.get_context("fork")
    for _ in range(rounds):
        db.flushdb()
        ids = orphans(client, tasks)
        results: multiprocessing.Queue[Counter[str]] = context.Queue()
        processes = [context.Process(target=observe, args=(redis_url, 4 * TIMEOUT, results)) for _ in range(observers)]
        for process in processes:
            process.start()
        counts = sum((results.get(timeout=60) for _ in processes), Counter())
        for process in processes:
            process.join(10)
        pending = Counter(db.lrange(keys.pending("q"), 0, -1))
        fields = [db.hmget(keys.task(task_id), "status", "recoveries", "releases") for task_id in ids]
        returned = counts["requeued"] + counts["released"]
        extra += sum(max(0, n - 1) for n in pending.values()) + max(0, returned - tasks)
        lost += sum(1 for task_id in ids if pending[task_id] != 1)
        assert (counts["requeued"], counts["released"]) == (tasks // 2, tasks // 2), counts
        assert sorted(pending) == sorted(ids) and set(pending.values()) == {1}, "each id in the pending list once"
        # Even indexes were started (a lost run: a recovery), odd ones only reserved (a release).
        assert fields == [["pending", "1", None] if i % 2 == 0 else ["pending", None, "1"] for i in range(tasks)]
        assert db.llen(keys.reserved("q", DEAD)) == 0
        assert db.scard(keys.started("q")) == 0
        assert db.zcard(keys.task_heartbeats()) == 0
        assert DEAD not in db.smembers(keys.listeners("q"))
    record(
        Row(
            scenario="5. 1,000 orphans, 10 observers recovering at once",
            tasks=tasks * rounds,
            faults=rounds,
            lost=lost,
            overlapping=0,
            extra_runs=extra,
            wall=time.monotonic() - started_at,
            note=f"each round: one dead listener; {observers} observer processes; T = {TIMEOUT:g} s",
        )
    )
    db.close()
    client.close()
