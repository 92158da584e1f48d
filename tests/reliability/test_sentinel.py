"""Scenario 8: Redis Sentinel fails the primary over while workers run tasks.

One primary, one replica and three sentinels (``tests/sentinel.py``); the
workers and the producer find the primary through the sentinels, and the
producer's backend waits for a replica to hold each task before
``enqueue()`` returns (``OPTIONS["REPLICAS"]``). During the run the sentinels
are asked to fail over, again and again.

Pass line: every task whose ``enqueue()`` returned completes; the workers
start tasks again within 30 s of each failover; nothing is left in a
reserved list or the started set.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django import Settings as SettingsWrapper

from django_blueque import EnqueueError
from django_blueque.connection import get_client
from django_blueque.protocol import Client
from tests.reliability.figures import Row, full_size, record
from tests.sentinel import SERVICE, SentinelCluster
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import Journal, T, assert_clean, queue_listeners, tally, wait_for, wait_until_complete


@pytest.fixture
def cluster(
    tmp_path: Path, settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch, blueque: Client
) -> Iterator[SentinelCluster]:
    # After the blueque fixture, which points the settings at the suite's own Redis.
    running = SentinelCluster(tmp_path / "sentinel")
    running.start()
    settings.BLUEQUE = {
        **{key: value for key, value in settings.BLUEQUE.items() if key != "REDIS_URL"},
        "SENTINELS": running.sentinels,
        "SENTINEL_SERVICE": SERVICE,
        "LISTENER_TIMEOUT": T,
    }
    settings.TASKS = {
        "default": {
            "BACKEND": "django_blueque.backends.BluequeBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"REPLICAS": 1, "REPLICA_TIMEOUT": 2.0},
        }
    }
    monkeypatch.setenv("BLUEQUE_TEST_SENTINELS", ",".join(str(port) for _, port in running.sentinels))
    yield running
    running.stop()


def test_failovers_lose_no_task_a_replica_acknowledged(
    cluster: SentinelCluster, spawn: Spawn, journal: Journal
) -> None:
    tasks, failovers = (5_000, 3) if full_size() else (200, 1)
    settings_module = "tests.reliability.sentinel_settings"
    client = get_client()
    started_at = time.monotonic()
    workers = [
        spawn("default", "--concurrency", "4", "--mode", mode, settings_module=settings_module)
        for mode in ("fork", "prefork")
    ]
    wait_for(lambda: queue_listeners(client) >= 2, 30, "the workers to register")

    acknowledged: list[str] = []
    refused: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        # A steady stream, before, during and after each failover.
        rng = random.Random()
        while not stop.is_set():
            try:
                acknowledged.append(recovery_tasks.run_for.enqueue(round(rng.uniform(0.01, 0.1), 3)).id)
            except EnqueueError as exc:
                refused.append(str(exc))  # not acknowledged: it may or may not be there, and is not counted
                time.sleep(0.1)
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    back: list[float] = []
    try:
        for round_ in range(failovers):
            wait_for(lambda r=round_: len(acknowledged) >= tasks * (r + 1) // (failovers + 1), 300, "tasks to go")  # type: ignore[misc]
            done_at = cluster.failover()
            wait_for(lambda at=done_at: any(run.start > at for run in journal.runs()), 30, "a run after the failover")  # type: ignore[misc]
            back.append(min(run.start for run in journal.runs() if run.start > done_at) - done_at)
        wait_for(lambda: len(acknowledged) >= tasks, 300, f"{tasks} tasks to be enqueued")
    finally:
        stop.set()
        producer.join(10)
    ids = list(acknowledged)
    wait_until_complete(client, ids, len(ids) * 0.05 + 60, journal)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(30)
    result = tally(journal, ids)
    record(
        Row(
            scenario="8. Sentinel failovers (enqueue waits for a replica)",
            tasks=len(ids),
            faults=failovers,
            lost=len(result.lost),
            overlapping=len(result.overlapping),
            extra_runs=result.reruns,
            recovery=back,
            wall=time.monotonic() - started_at,
            note=f"recovery: first run after each failover; {len(refused)} enqueue(s) refused during failovers",
        )
    )
    assert result.lost == [], result
    assert all(seconds < 30 for seconds in back), back
    assert_clean(client, ids, journal)
