"""Scenario 1: workers killed with SIGKILL again and again under load.

Producers enqueue tasks of random length from several threads while three
workers (two in fork mode, one in prefork mode) run them; every few seconds
one worker, in turn, is killed with its whole process group (its running
tasks with it) and started again. Every run is journaled outside Redis.

Pass line: every task completes; none is lost; no two runs of a task
overlap; a task runs again only after a run of it on a killed worker (cut
short, or ended with its outcome not yet recorded when the kill came); no
reserved list or started set keeps an id.
"""

from __future__ import annotations

import random
import signal
import threading
import time

from django_blueque.protocol import Client
from tests.reliability.figures import Row, full_size, record
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import (
    Journal,
    T,
    assert_clean,
    cut_short,
    kill_group,
    queue_listeners,
    statuses,
    tally,
    wait_for,
)

MODES = ("fork", "fork", "prefork")


def test_workers_killed_again_and_again_lose_nothing_and_run_nothing_twice_at_once(
    blueque: Client, spawn: Spawn, journal: Journal
) -> None:
    tasks, producers, shortest, longest = (10_000, 4, 0.1, 2.0) if full_size() else (150, 2, 0.1, 0.6)
    kill_every = 2.0
    started_at = time.monotonic()

    def start(mode: str):  # type: ignore[no-untyped-def]
        # Kills do not count against a task: it must come through all of them.
        return spawn("default", "--concurrency", "4", "--mode", mode, max_recoveries=1_000_000)

    workers = [start(mode) for mode in MODES]
    wait_for(lambda: queue_listeners(blueque) >= 3, 30, "the workers to register")

    ids: list[str] = []
    lock = threading.Lock()

    def produce(count: int) -> None:
        rng = random.Random()
        for _ in range(count):
            task_id = recovery_tasks.run_for.enqueue(round(rng.uniform(shortest, longest), 3)).id
            with lock:
                ids.append(task_id)

    threads = [threading.Thread(target=produce, args=(tasks // producers,)) for _ in range(producers)]
    for thread in threads:
        thread.start()

    kills: list[float] = []
    killed_workers: set[int] = set()
    turn = 0
    next_kill = time.monotonic() + kill_every

    def done() -> bool:
        with lock:
            snapshot = list(ids)
        return len(snapshot) == tasks and statuses(blueque, snapshot) == ["complete"] * tasks

    deadline = time.monotonic() + (tasks * (shortest + longest) / 2 / 12) * 3 + 120
    while not done():
        assert time.monotonic() < deadline, f"the tasks did not all complete: {statuses_summary(blueque, ids)}"
        if time.monotonic() >= next_kill:
            index = turn % len(workers)
            killed_workers.add(workers[index].pid)
            kills.append(kill_group(workers[index]))
            workers[index] = start(MODES[index])
            turn += 1
            next_kill = time.monotonic() + kill_every
        time.sleep(0.1)
    for thread in threads:
        thread.join(10)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(30)

    result = tally(journal, ids)
    killed, recovery = cut_short(journal)
    record(
        Row(
            scenario="1. workers kill -9'd every 2 s",
            tasks=tasks,
            faults=len(kills),
            lost=len(result.lost),
            overlapping=len(result.overlapping),
            extra_runs=result.reruns,
            recovery=recovery,
            wall=time.monotonic() - started_at,
            note=f"{len(killed)} runs cut short; T = {T:g} s",
        )
    )
    assert kills, "no worker was killed: the run was too short to test anything"
    assert result.lost == [], result
    assert result.overlapping == [], result
    # A task runs again only after a run of it on a worker that was killed: cut short, or ended with
    # its outcome not yet recorded when the kill came.
    unexplained = [
        run
        for task_id in ids
        for run in sorted(journal.runs(task_id), key=lambda run: run.attempt)[:-1]
        if run.parent not in killed_workers
    ]
    assert unexplained == [], unexplained
    assert_clean(blueque, ids, journal)


def statuses_summary(client: Client, ids: list[str]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for status in statuses(client, list(ids)):
        counts[status] = counts.get(status, 0) + 1
    return counts
