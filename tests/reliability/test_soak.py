"""Scenario 13: a soak, with every kind of fault at a low rate.

For ``BLUEQUE_SOAK`` hours (``make reliability SOAK=1`` for one hour,
``SOAK=0.05`` for three minutes; the test is skipped without it) a producer
enqueues short and long tasks at a steady rate while two workers (fork and
prefork), a scheduler and a monitor run. Now and then, at random: a worker is
killed with SIGKILL and started again, a worker is frozen for three times
``LISTENER_TIMEOUT`` and resumed, or the proxy every process reaches Redis
through loses, delays and cuts replies for a few seconds. Redis's memory is read every minute.

Pass line: every task completes; none is lost; runs of a task overlap only
while a frozen worker's run had yet to hear its task was taken over (less
than ``LISTENER_TIMEOUT``); nothing is left behind; memory does not keep
growing (its last quarter's mean is within 50 % of its second quarter's).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time

import pytest

from django_blueque.protocol import Client
from tests.reliability.figures import Row, record
from tests.tcp_proxy import Chaos, TcpProxy
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import (
    Journal,
    T,
    kill_group,
    leftovers,
    queue_listeners,
    statuses,
    tally,
    wait_for,
)

SOAK_ENV = "BLUEQUE_SOAK"
RESULT_TTL = 60


def test_a_soak_with_every_fault_at_a_low_rate(
    blueque: Client, spawn: Spawn, journal: Journal, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    seconds = 3600 * float(os.environ.get(SOAK_ENV) or 0)
    if not seconds:
        pytest.skip(f"a soak runs for ${SOAK_ENV} hours: make reliability SOAK=1")
    # Finished tasks expire after a minute, as a deployment keeps them a
    # while and no longer, so that Redis's memory can settle.
    monkeypatch.setenv("BLUEQUE_RESULT_TTL", str(RESULT_TTL))
    monkeypatch.setenv("BLUEQUE_FAILED_RESULT_TTL", str(RESULT_TTL))
    started_at = time.monotonic()
    modes = ("fork", "prefork")

    def start(mode: str) -> subprocess.Popen[str]:
        return spawn("default", "--concurrency", "4", "--mode", mode, url=proxy.url, max_recoveries=1_000)

    workers = [start(mode) for mode in modes]
    others = [spawn(command=command, url=proxy.url) for command in ("blueque_scheduler", "blueque_monitor")]
    wait_for(lambda: queue_listeners(blueque) >= 2, 30, "the workers to register")
    ids: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        rng = random.Random()
        while not stop.is_set():
            seconds_each = rng.choice([0.05, 0.2, 1.0, 3 * T])
            ids.append(recovery_tasks.run_for.enqueue(seconds_each).id)
            # Two a second, under half of what the eight slots run (tasks
            # last 1.8 s on average), so that the load leaves room for the
            # faults and the backlog stays small: the soak measures faults
            # over time, not a queue growing for an hour.
            time.sleep(0.5)

    producer = threading.Thread(target=produce)
    producer.start()
    rng = random.Random()
    faults = {"kill": 0, "freeze": 0, "chaos": 0}
    memory: list[tuple[float, int]] = []
    frozen: list[tuple[int, float, float]] = []
    next_fault = time.monotonic() + rng.uniform(10, 30)
    next_sample = time.monotonic()
    try:
        while time.monotonic() - started_at < seconds:
            now = time.monotonic()
            if now >= next_sample:
                memory.append((now - started_at, int(blueque.redis.info("memory")["used_memory"])))
                next_sample = now + 60
            if now >= next_fault:
                kind = rng.choice(sorted(faults))
                index = rng.randrange(len(workers))
                if kind == "kill":
                    kill_group(workers[index])
                    workers[index] = start(modes[index])
                elif kind == "freeze":
                    os.killpg(workers[index].pid, signal.SIGSTOP)
                    pause = time.time()
                    time.sleep(3 * T)
                    os.killpg(workers[index].pid, signal.SIGCONT)
                    frozen.append((workers[index].pid, pause, time.time()))
                else:
                    proxy.chaos(Chaos(drop_reply=0.02, cut_midway=0.01, delay=0.02, longest_delay=0.3))
                    time.sleep(5)
                    proxy.chaos(None)
                faults[kind] += 1
                next_fault = time.monotonic() + rng.uniform(10, 30)
            time.sleep(0.2)
    finally:
        stop.set()
        producer.join(10)
    done = list(ids)

    def finished() -> bool:
        # Complete, or completed and expired since: the journal saw a run end.
        ended = {run.task_id for run in journal.runs() if run.end is not None}
        states = statuses(blueque, done)
        return all(
            state == "complete" or (state is None and task_id in ended)
            for task_id, state in zip(done, states, strict=True)
        )

    wait_for(finished, 120, f"{len(done)} task(s) to complete")
    for process in (*workers, *others):
        process.send_signal(signal.SIGTERM)
    for process in (*workers, *others):
        process.wait(60)
    result = tally(journal, done)
    frozen_pids = {pid for pid, _, _ in frozen}
    unexplained = [(a, b) for a, b in result.overlapping if a.parent not in frozen_pids and b.parent not in frozen_pids]
    quarter = max(1, len(memory) // 4)
    early = sum(used for _, used in memory[quarter : 2 * quarter]) / max(1, len(memory[quarter : 2 * quarter]))
    late = sum(used for _, used in memory[-quarter:]) / quarter
    record(
        Row(
            scenario=f"13. soak, {seconds / 60:.0f} min, every fault at a low rate",
            tasks=len(done),
            faults=sum(faults.values()),
            lost=len(result.lost),
            overlapping=len(result.overlapping),
            extra_runs=result.reruns,
            wall=time.monotonic() - started_at,
            note=", ".join(f"{count} {kind}" for kind, count in faults.items())
            + "; Redis memory (MiB) by minute: "
            + " ".join(f"{used / 2**20:.1f}" for _, used in memory),
        )
    )
    assert result.lost == [], result
    assert unexplained == [], unexplained
    assert len(memory) < 8 or late <= early * 1.5, memory
    wait_for(lambda: not leftovers(blueque), T, "every reserved list and started set to be empty")
