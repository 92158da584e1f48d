"""Recovery under faults that a live worker survives: a frozen worker, a
Redis outage longer than the listener timeout, one worker cut off from Redis
(a partition, through ``tests.tcp_proxy``), a lost reply.

Runs are recorded outside Redis (``tests.workers.recovery_tasks`` appends
to a journal file), and a thread watches the processes that run them, so a
run killed midway still has an end: when its process died. Each test ends
with every task complete, nothing in a reserved list or a started set, and
says how many runs overlapped, for how long, and how many re-ran.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from django_blueque.connection import get_client
from django_blueque.protocol import Client, Task, keys
from django_blueque.protocol.replies import strings
from tests.redis_server import RedisServer
from tests.tcp_proxy import TcpProxy
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import (
    Journal,
    T,
    assert_clean,
    diagnose,
    kill_group,
    leftovers,
    queue_listeners,
    statuses,
    tally,
    wait_for,
    wait_until_complete,
)

# -- a. A frozen worker ---------------------------------------------------------------------------


def test_a_frozen_worker_is_whole_again_when_it_wakes(blueque: Client, spawn: Spawn, journal: Journal) -> None:
    spawn(command="blueque_scheduler")
    w1 = spawn("default", "--concurrency", "1")
    wait_for(lambda: queue_listeners(blueque) == 1, 20, "W1 to register")
    os.killpg(w1.pid, signal.SIGSTOP)
    try:
        # Long enough for the scheduler to judge W1 dead (it has nothing to recover).
        time.sleep(3 * T)
    finally:
        os.killpg(w1.pid, signal.SIGCONT)
    time.sleep(2 * T)
    task_id = recovery_tasks.run_for.enqueue(10).id
    wait_for(lambda: journal.started(task_id) == 1, 10, "W1 to start the task")
    wait_for(lambda: journal.runs(task_id)[0].parent is not None, 5, "the run's process to be seen")
    assert journal.runs(task_id)[0].parent == w1.pid
    killed_at = kill_group(w1)
    w2 = spawn("default", "--concurrency", "1")
    try:
        wait_for(lambda: journal.started(task_id) == 2, 3 * T + 5, "the task to start again on W2 after W1's kill -9")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {diagnose(blueque, task_id)}") from None
    again = journal.runs(task_id)[1]
    print(f"frozen then killed worker: its task started again {again.start - killed_at:.2f}s after the kill")
    assert again.start > killed_at
    wait_until_complete(blueque, [task_id], 10 + 10, journal)
    assert journal.runs(task_id)[1].parent == w2.pid
    assert_clean(blueque, [task_id], journal)


# -- b. Redis away for longer than the timeout ------------------------------------------------


def test_a_redis_outage_longer_than_the_timeout_runs_nothing_twice(
    persistent_redis: RedisServer, spawn: Spawn, journal: Journal
) -> None:
    client = get_client()
    url = persistent_redis.url
    spawn(command="blueque_scheduler", url=url)
    workers = [spawn("default", "--concurrency", "1", url=url) for _ in range(4)]
    wait_for(lambda: queue_listeners(client) == 4, 20, "4 workers to register")
    ids = []
    for _ in range(4):
        # One at a time, so they end one after another: a worker freed while
        # the others still run could take a task of theirs that recovery put back.
        ids.append(recovery_tasks.run_for.enqueue(4 * T + 2).id)
        wait_for(lambda: journal.started(ids[-1]) == 1, 10, "the task to start")
        time.sleep(0.3)
    wait_for(lambda: all(run.parent is not None for run in journal.runs()), 5, "the runs' processes to be seen")
    assert sorted(run.parent or 0 for run in journal.runs()) == sorted(w.pid for w in workers), "one task per worker"
    persistent_redis.stop()
    time.sleep(2 * T)
    persistent_redis.start()
    wait_until_complete(client, ids, 4 * T + 2 + 15, journal)
    # A run started again after the last original ended would be missed.
    time.sleep(T)
    result = tally(journal, ids)
    print(f"Redis away for {2 * T:.0f}s under 4 running tasks: {result}")
    started = [journal.started(task_id) for task_id in ids]
    assert result.overlapping == [], f"runs of a task overlapped: {result}"
    assert started == [1] * 4, f"tasks started more than once: {started}; {result}"
    assert_clean(client, ids, journal)


# -- c. One worker cut off from Redis -----------------------------------------------------------


def test_one_worker_cut_off_continue_mode(
    blueque: Client, spawn: Spawn, journal: Journal, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut_off(blueque, spawn, journal, proxy, monkeypatch, "continue")


def test_one_worker_cut_off_stop_mode(
    blueque: Client, spawn: Spawn, journal: Journal, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut_off(blueque, spawn, journal, proxy, monkeypatch, "stop")


def cut_off(
    blueque: Client, spawn: Spawn, journal: Journal, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """W1 reaches Redis through the proxy, W2 and the scheduler directly; W1 is cut off for 2T mid-task.

    ``mode`` is BLUEQUE["LOST_REDIS"] for every process.
    """
    monkeypatch.setenv("BLUEQUE_LOST_REDIS", mode)
    spawn(command="blueque_scheduler")
    w1 = spawn("default", "--concurrency", "1", url=proxy.url)
    task_id = recovery_tasks.run_for.enqueue(15).id
    wait_for(lambda: journal.started(task_id) == 1, 20, "W1 to start the task")
    wait_for(lambda: journal.runs(task_id)[0].parent is not None, 5, "the run's process to be seen")
    assert journal.runs(task_id)[0].parent == w1.pid
    # W2 only now, so it cannot have taken the task first.
    w2 = spawn("default", "--concurrency", "1")
    wait_for(lambda: queue_listeners(blueque) == 2, 20, "W2 to register")
    proxy.cut()
    cut_at = time.time()
    time.sleep(2 * T)
    proxy.heal()
    healed_at = time.time()
    wait_until_complete(blueque, [task_id], 15 + 15, journal)
    wait_for(lambda: all(run.stop is not None for run in journal.runs(task_id)), 15, "every run to stop")
    runs = journal.runs(task_id)
    result = tally(journal, [task_id])
    on_w1 = [run for run in runs if run.parent == w1.pid]
    on_w2 = [run for run in runs if run.parent == w2.pid]
    # Times in seconds after the cut.
    described = "\n  ".join(run.show(cut_at) for run in runs)
    report = f"{result.show(cut_at)}; times after the cut, healed at {healed_at - cut_at:.2f}:\n  {described}"
    print(f"W1 cut off for {2 * T:.0f}s, LOST_REDIS={mode!r}: {report}")
    assert (len(on_w1), len(on_w2), len(runs)) == (1, 1, 2), f"expected one run on W1, one on W2: {report}"
    first, second = on_w1[0], on_w2[0]
    # One outcome: the task completed once, by W2's run.
    assert blueque.task_ids("default", "complete") == [task_id]
    assert second.end is not None, f"W2's run did not end: {report}"
    if mode == "continue":
        # W1 hears at its first beat after the heal that its task went to W2, and stops its run.
        overlap_end = min(first.until(time.time()), second.until(time.time()))
        assert overlap_end <= healed_at + T, (
            f"the runs overlapped until {overlap_end - healed_at:.2f}s after the heal (limit {T}s): {report}"
        )
        assert first.killed, f"W1's run was not stopped, it ran to its end: {report}"
    else:
        # W1 stops its run on its own, cut off, before anyone may take the task over.
        assert first.killed, f"W1's run was not stopped, it ran to its end: {report}"
        assert first.until(time.time()) < second.start, f"W1's run still ran when W2's started: {report}"
        assert result.overlapping == [], report
    assert_clean(blueque, [task_id], journal)


# -- d. A lost reply --------------------------------------------------------------------------


def test_a_lost_blmove_reply_leaves_nothing_behind(proxy: TcpProxy) -> None:
    # redis-py's defaults: a connection error makes it send the command again, on its own.
    client = Client(hostname="127.0.0.1", port=proxy.port)
    listener = client.get_listener("q")
    queue = client.get_queue("q")
    ids = [queue.enqueue("a"), queue.enqueue("b")]
    proxy.drop_next_reply(b"BLMOVE")

    def listen(timeout: float) -> Task | None:
        try:
            return listener.listen(timeout=timeout)
        except redis.ConnectionError:
            return listener.listen(timeout=timeout)

    taken: list[Task] = []
    task = listen(5)
    assert not proxy.drop_pending, "no BLMOVE went through the proxy: the fault was not injected"
    for _ in range(10):
        if task is None:
            break
        taken.append(task)
        task = listen(1)
    returned = sorted(task.id for task in taken)
    own_list = keys.reserved("q", listener.id)
    stuck = [
        task_id
        for task_id in strings(client.redis.lrange(own_list, 0, -1))
        if client.redis.hget(keys.task(task_id), "status") == "pending"
    ]
    print(f"lost BLMOVE reply: listen returned {len(taken)} of {len(ids)} tasks; pending ids in own list: {stuck}")
    problem = f"listen returned {returned} for tasks {sorted(ids)}; ids left pending in the listener's list: {stuck}"
    assert returned == sorted(ids), problem
    assert stuck == [], problem
    for task in taken:
        processor = client.get_processor(task)
        processor.start()
        assert processor.complete("done")
    assert statuses(client, ids) == ["complete", "complete"]
    assert not leftovers(client), leftovers(client)
    listener.close()
    client.close()
