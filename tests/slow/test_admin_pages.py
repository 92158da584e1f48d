"""The admin's pages do the same Redis work for a queue of 200,000 pending tasks as for one of
100: the same commands, as many times each, and about as many bytes back. Each page costs a
fixed number of round trips and work in proportion to what it shows, never to a queue's length.

Django's test client, a superuser logged in, requests each page on the queue ``work`` with 100
pending tasks (and a few complete and failed ones), then again once 199,900 more are pending.
Around each request the test reads ``INFO stats commandstats`` (one call, so it counts itself
alike every time): the calls of each command, and ``total_net_output_bytes``, what Redis sent
back. Wall-clock times are left to the benchmarks.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import redis
from django.test import Client as WebClient
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from django_blueque.protocol import Client, keys

pytestmark = pytest.mark.slow

QUEUE = "work"
SMALL, BIG = 100, 200_000
FILL_BATCH = 10_000
#: What Redis sends back for a page may differ a little (counts have more digits): by at most this factor.
BYTES_FACTOR = 1.2

Snapshot = tuple[dict[str, int], int]


def fill(conn: redis.Redis, count: int) -> list[str]:
    """``count`` more pending tasks on ``QUEUE``, as ``Queue.enqueue`` writes them; their ids."""
    now = time.time()
    written: list[str] = []
    for start in range(0, count, FILL_BATCH):
        ids = [str(uuid.uuid4()) for _ in range(min(FILL_BATCH, count - start))]
        with conn.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hset(
                    keys.task(task_id),
                    mapping={
                        "status": "pending",
                        "queue": QUEUE,
                        "parameters": "x" * 40,
                        "created": now,
                        "updated": now,
                    },
                )
            pipe.lpush(keys.pending(QUEUE), *ids)
            pipe.execute()
        written += ids
    conn.zincrby(keys.queues(), 0, QUEUE)
    return written


def finish(client: Client, count: int) -> str:
    """Run ``count`` of the oldest pending tasks to an end, every other one failed; a failed one's id."""
    failed_id = ""
    listener = client.get_listener(QUEUE)
    for i in range(count):
        taken = listener.listen(timeout=1)
        assert taken is not None
        processor = client.get_processor(taken)
        processor.start()
        if i % 2:
            processor.fail("no", exception="builtins.ValueError", traceback="Traceback ...")
            failed_id = taken.id
        else:
            processor.complete("ok")
    listener.close()
    return failed_id


def snapshot(conn: redis.Redis) -> Snapshot:
    info: dict[str, Any] = conn.info("stats", "commandstats")
    calls = {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in info.items()
        if name.startswith("cmdstat_")
    }
    return calls, int(info["total_net_output_bytes"])


def difference(before: Snapshot, after: Snapshot) -> Snapshot:
    calls = {name: n - before[0].get(name, 0) for name, n in after[0].items()}
    return {name: n for name, n in sorted(calls.items()) if n}, after[1] - before[1]


def test_admin_pages_do_the_same_redis_work_for_a_queue_of_any_length(
    redis_url: str, settings: SettingsWrapper, admin_client: WebClient
) -> None:
    settings.BLUEQUE = {**settings.BLUEQUE, "REDIS_URL": redis_url}
    conn = redis.Redis.from_url(redis_url)
    client = Client(redis_url)
    ids = fill(conn, SMALL + 6)
    failed_id = finish(client, 6)
    base = reverse("admin:django_blueque_queue", args=[QUEUE])
    pages = {
        "queues": reverse("admin:django_blueque_queue_changelist"),
        "counts": reverse("admin:django_blueque_counts"),
        "workers": reverse("admin:django_blueque_workers"),
        "find": f"{reverse('admin:django_blueque_find')}?id={ids[-1]}",
        "pending, page 1": f"{base}?state=pending",
        "pending, page 2": f"{base}?state=pending&page=2",
        "complete": f"{base}?state=complete",
        "failed": f"{base}?state=failed",
        "task": reverse("admin:django_blueque_task", args=[ids[-1]]),
        "failed task": reverse("admin:django_blueque_task", args=[failed_id]),
    }
    # What reading the figures costs by itself: one INFO, and its reply.
    itself = difference(snapshot(conn), snapshot(conn))

    def measure() -> dict[str, Snapshot]:
        for path in pages.values():
            admin_client.get(path)  # warm up: connections, scripts, templates
        work = {}
        for name, path in pages.items():
            before = snapshot(conn)
            status = admin_client.get(path).status_code
            calls, sent = difference(before, snapshot(conn))
            assert status in (200, 302), f"{name}: {status}"
            calls = {key: n - itself[0].get(key, 0) for key, n in calls.items()}
            work[name] = {key: n for key, n in calls.items() if n}, sent - itself[1]
        return work

    small = measure()
    fill(conn, BIG - SMALL)
    assert conn.llen(keys.pending(QUEUE)) == BIG
    big = measure()

    print(f"\nRedis work per admin page, {SMALL:,} pending -> {BIG:,} pending:")
    for name in pages:
        (calls, sent), (_, sent_big) = small[name], big[name]
        each = ", ".join(f"{command} {n}" for command, n in calls.items())
        print(f"  {name}: {sum(calls.values())} commands ({each}); bytes back {sent:,} -> {sent_big:,}")
    for name in pages:
        assert big[name][0] == small[name][0], (
            f"{name}: commands {small[name][0]} with {SMALL}, {big[name][0]} with {BIG}"
        )
        assert big[name][1] <= BYTES_FACTOR * small[name][1], f"{name}: {small[name][1]} bytes, then {big[name][1]}"
    conn.close()
    client.close()
