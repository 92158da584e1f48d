"""Scenario 4: lost, late and cut replies under load.

Workers and a monitor reach Redis only through a loopback proxy that, at
random, loses the reply to a command (it ran, the client never hears), delays
a command, or closes the connection halfway through one (Redis drops the
part it got). Producers reach Redis directly.

Pass line: every task completes; none is lost; no two runs of a task overlap;
nothing stays in a live listener's own list or the started set.
"""

from __future__ import annotations

import random
import signal
import time

from django_blueque.protocol import Client
from tests.reliability.figures import Row, full_size, record
from tests.tcp_proxy import Chaos, TcpProxy
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import Journal, assert_clean, queue_listeners, tally, wait_for, wait_until_complete


def test_lost_late_and_cut_replies_under_load_lose_nothing_and_run_nothing_twice_at_once(
    blueque: Client, spawn: Spawn, journal: Journal, proxy: TcpProxy
) -> None:
    tasks, odds = (2_000, 0.02) if full_size() else (150, 0.02)
    started_at = time.monotonic()
    workers = [spawn("default", "--concurrency", "4", "--mode", mode, url=proxy.url) for mode in ("fork", "prefork")]
    monitor = spawn(command="blueque_monitor", url=proxy.url)
    wait_for(lambda: queue_listeners(blueque) >= 2, 30, "the workers to register")
    chaos = Chaos(drop_reply=odds, cut_midway=odds / 2, delay=odds, longest_delay=0.3)
    proxy.chaos(chaos)
    rng = random.Random()
    ids = [recovery_tasks.run_for.enqueue(round(rng.uniform(0.01, 0.2), 3)).id for _ in range(tasks)]
    try:
        wait_until_complete(blueque, ids, tasks * 0.1 + 120, journal)
    finally:
        proxy.chaos(None)
    for process in (*workers, monitor):
        process.send_signal(signal.SIGTERM)
    for process in (*workers, monitor):
        process.wait(60)
    result = tally(journal, ids)
    record(
        Row(
            scenario="4. replies lost, delayed, cut midway at random",
            tasks=tasks,
            faults=sum(chaos.injected.values()),
            lost=len(result.lost),
            overlapping=len(result.overlapping),
            extra_runs=result.reruns,
            wall=time.monotonic() - started_at,
            note=", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in chaos.injected.items()),
        )
    )
    assert chaos.injected["drop_reply"] and chaos.injected["cut_midway"], f"too few faults injected: {chaos.injected}"
    assert result.lost == [], result
    assert result.overlapping == [], result
    assert_clean(blueque, ids, journal)
