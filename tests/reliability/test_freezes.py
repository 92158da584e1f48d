"""Scenario 2: a worker, a scheduler and a monitor frozen (SIGSTOP) for three
times ``LISTENER_TIMEOUT``, resumed, and the worker later killed.

While the worker is frozen the others judge it dead and run its tasks again;
when it wakes, its frozen runs hear at their first heartbeat that their
tasks were taken over, and stop. The scheduler and the monitor, frozen
beside it, are written off and whole again when they wake.

Pass line: every task completes, with the outcome of its last attempt (no
stale write from a woken run is accepted); none is lost; every woken run of
a task taken over stops at its first heartbeat after waking (or ends first,
if its code was done, and its outcome is refused); apart from those moments,
no two runs of a task run at once (frozen time does not count: a frozen
process runs nothing); the worker's
later tasks are recovered after the kill; nothing is left in a reserved list
or the started set.
"""

from __future__ import annotations

import os
import random
import signal
import time

from django_blueque.protocol import Client
from tests.reliability.figures import Row, full_size, record
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import (
    Journal,
    Run,
    T,
    assert_clean,
    kill_group,
    queue_listeners,
    wait_for,
    wait_until_complete,
)


def running_time(run: Run, frozen: list[tuple[float, float]], frozen_pid: int, now: float) -> list[tuple[float, float]]:
    """The spans in which ``run`` could run: frozen spans taken out if it was a child of the frozen worker."""
    spans = [(run.start, run.until(now))]
    if run.parent != frozen_pid:
        return spans
    for pause, resume in frozen:
        spans = [piece for start, end in spans for piece in ((start, min(end, pause)), (max(start, resume), end))]
    return [(start, end) for start, end in spans if end > start]


def woke(run: Run, frozen: list[tuple[float, float]], frozen_pid: int) -> bool:
    """A run of the frozen worker: seen as its child, or too short-lived to be seen, started as it woke."""
    if run.parent is not None:
        return run.parent == frozen_pid
    return any(resume <= run.start <= resume + T for _, resume in frozen)


def at_once(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def test_frozen_processes_lose_nothing_and_their_stale_writes_are_refused(
    blueque: Client, spawn: Spawn, journal: Journal
) -> None:
    cycles, per_cycle = (3, 60) if full_size() else (1, 24)
    started_at = time.monotonic()
    scheduler = spawn(command="blueque_scheduler")
    monitor = spawn(command="blueque_monitor")
    frozen_worker = spawn("default", "--concurrency", "3")
    others = [spawn("default", "--concurrency", "3", "--mode", mode) for mode in ("fork", "prefork")]
    wait_for(lambda: queue_listeners(blueque) >= 3, 30, "the workers to register")
    rng = random.Random()
    ids: list[str] = []
    frozen: list[tuple[float, float]] = []
    for _ in range(cycles):
        batch = [recovery_tasks.run_for.enqueue(round(rng.uniform(1.0, 3 * T), 2)).id for _ in range(per_cycle)]
        ids += batch
        wait_for(
            lambda: any(run.parent == frozen_worker.pid for run in journal.runs() if run.stop is None),
            30,
            "the worker to be frozen to run a task",
        )
        groups = [frozen_worker.pid, scheduler.pid, monitor.pid]
        for group in groups:
            os.killpg(group, signal.SIGSTOP)
        pause = time.time()
        time.sleep(3 * T)
        for group in groups:
            os.killpg(group, signal.SIGCONT)
        frozen.append((pause, time.time()))
        wait_until_complete(blueque, batch, 6 * T + per_cycle * 3 * T / 9 + 30, journal)
    # Later: the woken worker takes tasks again, and is killed while it runs them.
    later = [recovery_tasks.run_for.enqueue(2 * T).id for _ in range(9)]
    ids += later
    wait_for(
        lambda: any(
            run.parent == frozen_worker.pid and run.stop is None for task_id in later for run in journal.runs(task_id)
        ),
        30,
        "the woken worker to run one of the later tasks",
    )
    killed_at = kill_group(frozen_worker)
    wait_until_complete(blueque, ids, 60, journal)
    for process in (scheduler, monitor, *others):
        process.send_signal(signal.SIGTERM)
    for process in (scheduler, monitor, *others):
        process.wait(30)

    now = time.time()
    woken, overlaps, stale, lost = [], [], [], []
    strangers: list[tuple[Run, Run]] = []
    recovery = []
    for task_id in ids:
        runs = journal.runs(task_id)
        if not any(run.end is not None for run in runs):
            lost.append(task_id)
        task = blueque.get_task(task_id)
        last = max(runs, key=lambda run: run.attempt)
        if str(last.attempt) != task.fields.get("attempt") or task.pid != last.pid:
            stale.append(task_id)
        for run in runs:
            if run.parent == frozen_worker.pid and any(run.start < pause <= run.until(now) for pause, _ in frozen):
                woken.append(run)  # running when frozen
            if run.parent == frozen_worker.pid and run.killed and run.start < killed_at < run.until(now) + 1:
                after = [other.start for other in runs if other.start > killed_at]
                if after:
                    recovery.append(min(after) - killed_at)
        for i, a in enumerate(runs):
            for b in runs[i + 1 :]:
                seconds = at_once(
                    running_time(a, frozen, frozen_worker.pid, now), running_time(b, frozen, frozen_worker.pid, now)
                )
                if seconds > 0:
                    overlaps.append(seconds)
                    if not any(woke(run, frozen, frozen_worker.pid) for run in (a, b)):
                        strangers.append((a, b))
    taken_over_and_woken = [run for run in woken if len(journal.runs(run.task_id)) > 1]
    record(
        Row(
            scenario="2. worker, scheduler, monitor frozen 3T, worker later killed",
            tasks=len(ids),
            faults=2 * cycles + 1,
            lost=len(lost),
            overlapping=len(overlaps),
            extra_runs=sum(len(journal.runs(task_id)) - 1 for task_id in ids),
            recovery=recovery,
            wall=time.monotonic() - started_at,
            note=f"{len(taken_over_and_woken)} woken runs of tasks taken over, "
            f"{sum(run.killed for run in taken_over_and_woken)} stopped by their heartbeat, the others done on "
            "waking; ran at once with the new run "
            f"{max(overlaps, default=0.0):.3f} s at most; stale outcomes kept: {len(stale)}",
        )
    )
    assert taken_over_and_woken, "no frozen run was taken over: the test tested nothing"
    assert lost == [], lost
    assert stale == [], "outcomes not from the last attempt: " + "; ".join(
        f"{task_id}: {blueque.get_task(task_id).fields} runs {journal.runs(task_id)}" for task_id in stale
    )
    # Running at once only while a run of the frozen worker had yet to hear its task was taken over: its
    # first beat, at once on waking (a bound of T leaves room for a loaded machine). A child forked just
    # before the freeze may write its start only on waking, so its run is told by its worker, not its start.
    assert strangers == [], f"runs overlapped that the freeze does not explain: {strangers}"
    assert all(seconds < T for seconds in overlaps), overlaps
    assert recovery, "the kill cut no run short: the later tasks were not recovered from a dead worker"
    assert_clean(blueque, ids, journal)
