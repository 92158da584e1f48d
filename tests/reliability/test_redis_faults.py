"""Scenarios 6 and 7: Redis itself fails under running workers.

6. Redis is killed with SIGKILL in the middle of a run and started again on
   its append-only file (``appendfsync always``): no task whose enqueue was
   acknowledged is lost, and the workers are back at work soon after Redis.
7. Redis stops answering (SIGSTOP) for twice ``LISTENER_TIMEOUT`` while
   tasks run: the workers neither exit nor hang, the outcomes reached during
   the outage are stored after it, and no task runs twice at once.

Every run is journaled outside Redis (``tests.workers.recovery_tasks``).
"""

from __future__ import annotations

import random
import signal
import threading
import time

from django_blueque import EnqueueError
from django_blueque.protocol import Client
from tests.redis_server import RedisServer
from tests.reliability.figures import Row, full_size, record
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import Journal, T, assert_clean, queue_listeners, statuses, tally, wait_for, wait_until_complete


def test_redis_killed_and_restarted_on_its_append_only_file_loses_no_acknowledged_task(
    persistent_redis: RedisServer, spawn: Spawn, journal: Journal
) -> None:
    tasks, shortest, longest = (5_000, 0.01, 0.2) if full_size() else (300, 0.01, 0.05)
    url = persistent_redis.url
    client = Client(url)
    started_at = time.monotonic()
    workers = [spawn("default", "--concurrency", "4", "--mode", mode, url=url) for mode in ("fork", "prefork")]
    wait_for(lambda: queue_listeners(client) >= 2, 30, "the workers to register")

    acknowledged: list[str] = []
    refused = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal refused
        rng = random.Random()
        while len(acknowledged) < tasks and not stop.is_set():
            try:
                acknowledged.append(recovery_tasks.run_for.enqueue(round(rng.uniform(shortest, longest), 3)).id)
            except EnqueueError:
                refused += 1  # not acknowledged: it may or may not be there, and is not counted
                time.sleep(0.05)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_for(lambda: len(acknowledged) >= tasks // 3, 60, "a third of the tasks to be enqueued")
        assert persistent_redis.process is not None
        persistent_redis.process.kill()
        persistent_redis.process.wait(10)
        killed_at = time.time()
        time.sleep(T / 2)
        persistent_redis.start()
        restarted_at = time.time()
        producer.join(timeout=tasks * 0.01 + 120)
    finally:
        stop.set()
        producer.join(10)
    ids = list(acknowledged)
    wait_until_complete(client, ids, tasks * (shortest + longest) / 2 / 8 * 3 + 60, journal)
    back = [run.start - restarted_at for run in journal.runs() if run.start > restarted_at]
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(30)
    result = tally(journal, ids)
    record(
        Row(
            scenario="6. Redis kill -9'd, restarted on its AOF",
            tasks=len(ids),
            faults=1,
            lost=len(result.lost),
            overlapping=len(result.overlapping),
            extra_runs=result.reruns,
            recovery=[min(back)] if back else [],
            wall=time.monotonic() - started_at,
            note=f"recovery: first run after the restart; Redis down {restarted_at - killed_at:.1f} s; "
            f"{refused} enqueue(s) refused while down",
        )
    )
    assert result.lost == [], result
    assert result.overlapping == [], result
    assert back and min(back) < 10, f"no run started within 10 s of Redis's restart: {sorted(back)[:3]}"
    assert_clean(client, ids, journal)
    client.close()


def test_redis_unreachable_for_twice_the_timeout_under_running_tasks(
    persistent_redis: RedisServer, spawn: Spawn, journal: Journal
) -> None:
    outages = 3 if full_size() else 1
    url = persistent_redis.url
    client = Client(url)
    started_at = time.monotonic()
    spawn(command="blueque_scheduler", url=url)
    workers = [spawn("default", "--concurrency", "10", "--mode", mode, url=url) for mode in ("fork", "prefork")]
    wait_for(lambda: queue_listeners(client) >= 2, 30, "the workers to register")
    assert persistent_redis.process is not None
    ids: list[str] = []
    finished_during: list[int] = []
    for _ in range(outages):
        # Twenty tasks, most of which end while Redis is away.
        batch = [recovery_tasks.run_for.enqueue(round(T * (0.5 + i / 10), 2)).id for i in range(20)]
        ids += batch
        wait_for(lambda b=batch: sum(journal.started(t) for t in b) == 20, 30, "the 20 tasks to start")  # type: ignore[misc]
        persistent_redis.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(2 * T)
            ended = [run for task_id in batch for run in journal.runs(task_id) if run.end is not None]
            finished_during.append(len(ended))
        finally:
            persistent_redis.process.send_signal(signal.SIGCONT)
        wait_until_complete(client, batch, 3 * T + 30, journal)
        assert all(worker.poll() is None for worker in workers), "a worker exited during the outage"
    # Not hung: each worker still takes work afterwards.
    after = [recovery_tasks.run_for.enqueue(0.2).id for _ in range(20)]
    wait_until_complete(client, after, 30, journal)
    result = tally(journal, ids + after)
    record(
        Row(
            scenario="7. Redis unreachable for 2T under 20 running tasks",
            tasks=len(ids),
            faults=outages,
            lost=len(result.lost),
            overlapping=len(result.overlapping),
            extra_runs=result.reruns,
            wall=time.monotonic() - started_at,
            note=f"T = {T:g} s; outcomes reached during each outage: {finished_during}",
        )
    )
    assert all(count > 0 for count in finished_during), "no task ended during the outage: the test tested nothing"
    assert statuses(client, ids) == ["complete"] * len(ids)
    assert result.lost == [] and result.overlapping == [] and result.reruns == 0, result
    assert_clean(client, ids + after, journal)
    client.close()
