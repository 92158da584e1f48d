"""Fault injection on real worker processes: kill -9, SIGSTOP, SIGTERM, a
Redis restart, a task that kills its own process. Each test ends with every
task in exactly one known state and nothing left in a reserved list."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from django_blueque.connection import get_client
from django_blueque.protocol import Client
from django_blueque.protocol.supervision import KILL_AFTER
from tests.redis_server import RedisServer
from tests.workers import tasks
from tests.workers.conftest import LISTENER_TIMEOUT, Spawn, events, wait_for


def reserved_ids(client: Client) -> list[str]:
    found: list[str] = []
    for key in client.redis.scan_iter("blueque_reserved_tasks_*"):
        found += [v.decode() if isinstance(v, bytes) else v for v in client.redis.lrange(key, 0, -1)]
    return found


def statuses(client: Client, ids: list[str]) -> list[str | None]:
    return [task.status for task in client.get_tasks(ids)]


def test_kill_9_of_a_whole_worker_its_tasks_complete_on_another(blueque: Client, spawn_worker: Spawn) -> None:
    ids = [tasks.sleep.enqueue(3).id for _ in range(10)]
    doomed = spawn_worker("default", "--concurrency", "10")
    wait_for(lambda: all(events(blueque, task_id) for task_id in ids), 30, "10 tasks to start")
    spawn_worker("default", "--concurrency", "10")
    os.killpg(doomed.pid, signal.SIGKILL)
    killed_at = time.time()
    wait_for(lambda: statuses(blueque, ids) == ["complete"] * 10, LISTENER_TIMEOUT + 3 + 10, "all 10 to complete")
    done_after = max(task.updated or 0 for task in blueque.get_tasks(ids)) - killed_at
    for task_id in ids:
        runs = events(blueque, task_id)
        starts = [when for event, _, when in runs if event == "start"]
        ends = [when for event, _, when in runs if event == "end"]
        # Once in the killed worker, once again elsewhere, and never both at once.
        assert len(starts) == 2, runs
        assert len(ends) == 1, runs
        assert starts[1] > killed_at
        assert blueque.get_task(task_id).fields.get("recoveries") == "1"
    assert reserved_ids(blueque) == []
    assert done_after < LISTENER_TIMEOUT + 3 + 5
    print(f"kill -9 of a worker running 10 three-second tasks: all complete {done_after:.2f}s after the kill")


def test_kill_9_of_the_listener_alone_its_children_finish_once(blueque: Client, spawn_worker: Spawn) -> None:
    ids = [tasks.sleep.enqueue(4).id for _ in range(5)]
    doomed = spawn_worker("default", "--concurrency", "5")
    # Running: each task's code has begun (its start recorded is not enough: a
    # child told nothing before its main process died does not run its task,
    # which is then recovered like any task of a dead worker).
    wait_for(lambda: all(events(blueque, task_id) for task_id in ids), 30, "5 tasks to start")
    spawn_worker("default", "--concurrency", "5")
    os.kill(doomed.pid, signal.SIGKILL)  # the listener only; its children live on
    wait_for(lambda: statuses(blueque, ids) == ["complete"] * 5, 30, "all 5 to complete")
    for task_id in ids:
        runs = events(blueque, task_id)
        assert [event for event, _, _ in runs] == ["start", "end"], runs
        assert "recoveries" not in blueque.get_task(task_id).fields
    # The dead listener, once empty, is deregistered by the live one.
    wait_for(lambda: blueque.queue_stats(["default"])["default"].listeners == 1, 10, "the dead listener to go")
    assert reserved_ids(blueque) == []


def test_a_frozen_listener_alone_its_children_beat_for_themselves(blueque: Client, spawn_worker: Spawn) -> None:
    # The main process stops (SIGSTOP to it alone) for three listener timeouts
    # while its children run: it beats for them no more, so each child
    # notices and beats for itself; no other worker takes their tasks over.
    ids = [tasks.sleep.enqueue(3 * LISTENER_TIMEOUT + 2).id for _ in range(3)]
    frozen = spawn_worker("default", "--concurrency", "3")
    wait_for(lambda: all(events(blueque, task_id) for task_id in ids), 30, "3 tasks to start")
    spawn_worker("default", "--concurrency", "3")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        time.sleep(3 * LISTENER_TIMEOUT)
        assert [[event for event, _, _ in events(blueque, task_id)] for task_id in ids] == [["start"]] * 3
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    wait_for(lambda: statuses(blueque, ids) == ["complete"] * 3, 30, "all 3 to complete")
    for task_id in ids:
        assert [event for event, _, _ in events(blueque, task_id)] == ["start", "end"]
        assert "recoveries" not in blueque.get_task(task_id).fields
    assert reserved_ids(blueque) == []


def test_a_frozen_worker_cannot_overwrite_a_newer_attempt(blueque: Client, spawn_worker: Spawn) -> None:
    task_id = tasks.sleep.enqueue(2).id
    frozen = spawn_worker("default", "--concurrency", "1")
    wait_for(lambda: blueque.get_task(task_id).status == "started", 20, "the task to start")
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        spawn_worker("default", "--concurrency", "1")
        wait_for(lambda: blueque.get_task(task_id).status == "complete", LISTENER_TIMEOUT + 15, "the second attempt")
        winner = blueque.get_task(task_id)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    # The first attempt wakes up; its first heartbeat tells it that the task
    # was taken over, and it is stopped (unless it ended first). Either way
    # its outcome must not land.
    time.sleep(3 * LISTENER_TIMEOUT)
    # (It may have been frozen before its task's code wrote its first line.)
    assert len(events(blueque, task_id)) in (2, 3, 4)
    after = blueque.get_task(task_id)
    assert (after.fields["attempt"], after.pid, after.updated) == ("2", winner.pid, winner.updated)
    assert blueque.task_ids("default", "complete") == [task_id]
    assert blueque.redis.scard("blueque_started_tasks_default") == 0


def test_sigterm_lets_running_tasks_finish_and_takes_no_more(blueque: Client, spawn_worker: Spawn) -> None:
    running = [tasks.sleep.enqueue(2).id for _ in range(2)]
    waiting = [tasks.noop.enqueue().id for _ in range(2)]
    worker = spawn_worker("default", "--concurrency", "2")
    wait_for(lambda: statuses(blueque, running) == ["started"] * 2, 20, "2 tasks to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert statuses(blueque, running) == ["complete"] * 2
    assert statuses(blueque, waiting) == ["pending"] * 2
    assert reserved_ids(blueque) == []
    assert blueque.queue_stats(["default"])["default"].listeners == 0


def test_sigterm_lets_a_prefork_child_finish_a_task_however_long(blueque: Client, spawn_worker: Spawn) -> None:
    """Without --grace a stopping worker waits for its tasks, in prefork mode too: past the ten seconds
    after which a child that ignores its stop request is killed."""
    task_id = tasks.sleep.enqueue(KILL_AFTER + 2).id
    worker = spawn_worker("default", "--concurrency", "1", "--mode", "prefork")
    wait_for(lambda: statuses(blueque, [task_id]) == ["started"], 20, "the task to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(KILL_AFTER + 20) == 0
    assert statuses(blueque, [task_id]) == ["complete"]
    assert [event for event, _, _ in events(blueque, task_id)] == ["start", "end"]
    assert reserved_ids(blueque) == []


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_sigterm_twice_puts_running_tasks_back_at_once(
    blueque: Client, spawn_worker: Spawn, mode: str, tmp_path: Path
) -> None:
    ids = [tasks.sleep.enqueue(60).id for _ in range(2)]
    worker = spawn_worker("default", "--concurrency", "2", "--mode", mode)
    wait_for(lambda: statuses(blueque, ids) == ["started"] * 2, 20, "2 tasks to start")
    log = tmp_path / "worker-0.log"
    worker.send_signal(signal.SIGTERM)
    # Said at once, while the tasks run on.
    first = (
        "Stopping: waiting for 2 running task(s) to finish; send SIGTERM (or Ctrl-C) again"
        if mode == "fork"
        else "Stopping: each of 2 child process(es) finishes the task it runs, if any; send SIGTERM (or Ctrl-C) again"
    )
    wait_for(lambda: first in log.read_text(), 3, "the worker to say what it does")
    assert statuses(blueque, ids) == ["started"] * 2
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    said = log.read_text()
    assert "Stopping now: " in said
    if mode == "fork":
        assert "Stopped: 0 task(s) ran, 2 went back to pending" in said
        assert said.rstrip().endswith("Ran 0 task(s); 2 went back to pending.")
    assert statuses(blueque, ids) == ["pending"] * 2
    assert sorted(blueque.task_ids("default", "pending")) == sorted(ids)
    assert all("recoveries" not in task.fields for task in blueque.get_tasks(ids))
    assert reserved_ids(blueque) == []


def test_grace_period_then_running_tasks_go_back(blueque: Client, spawn_worker: Spawn, tmp_path: Path) -> None:
    ids = [tasks.sleep.enqueue(60).id for _ in range(2)]
    worker = spawn_worker("default", "--concurrency", "2", "--grace", "1")
    wait_for(lambda: statuses(blueque, ids) == ["started"] * 2, 20, "2 tasks to start")
    worker.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert worker.wait(20) == 0
    said = (tmp_path / "worker-0.log").read_text()
    assert "Stopping: waiting for 2 running task(s) to finish; after 1s they are stopped and go back to pending" in said
    assert 0.9 < time.monotonic() - stopped < 10
    assert statuses(blueque, ids) == ["pending"] * 2
    assert reserved_ids(blueque) == []


def test_a_redis_restart_under_a_busy_worker(persistent_redis: RedisServer, spawn_worker: Spawn) -> None:
    client = get_client()
    ids = [tasks.nap.enqueue(0.3).id for _ in range(30)]
    worker = spawn_worker("default", "--concurrency", "4", url=persistent_redis.url)
    wait_for(lambda: len(client.task_ids("default", "complete", count=100)) >= 6, 30, "some tasks to finish")
    persistent_redis.stop()
    time.sleep(2)  # tasks finish while Redis is away; their outcomes wait
    persistent_redis.start()
    try:
        wait_for(lambda: statuses(client, ids) == ["complete"] * 30, 60, "all 30 to complete")
    except AssertionError:
        print("statuses:", statuses(client, ids), "reserved:", reserved_ids(client))
        raise
    assert worker.poll() is None
    assert sorted(client.task_ids("default", "complete", count=100)) == sorted(ids)
    assert reserved_ids(client) == []
    assert client.redis.scard("blueque_started_tasks_default") == 0


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_task_that_kills_its_process_fails_after_max_recoveries(
    blueque: Client, spawn_worker: Spawn, mode: str
) -> None:
    killer = tasks.kill_own_process.enqueue().id
    normal = [tasks.noop.enqueue().id for _ in range(100)]
    worker = spawn_worker("default", "--concurrency", "4", "--mode", mode, "--burst")
    assert worker.wait(120) == 0
    assert statuses(blueque, normal) == ["complete"] * 100
    dead = blueque.get_task(killer)
    assert dead.status == "failed"
    assert (dead.error or "").startswith("Worker lost 4 times; last: process ")
    assert "killed by SIGKILL" in (dead.error or "")
    assert dead.exception == "django_blueque.protocol.errors.WorkerLost"
    assert len(events(blueque, killer)) == 4  # the first run and MAX_RECOVERIES (3) more
    assert reserved_ids(blueque) == []


def test_a_prefork_worker_recovers_the_tasks_of_a_dead_worker(blueque: Client, spawn_worker: Spawn) -> None:
    # No scheduler and no fork-mode worker: the prefork worker alone must find them.
    ids = [tasks.sleep.enqueue(30).id for _ in range(2)]
    doomed = spawn_worker("default", "--concurrency", "2")
    # Their journal lines, not just the status: a run killed before its first line would not count.
    wait_for(lambda: all(events(blueque, task_id) for task_id in ids), 20, "2 tasks to start")
    spawn_worker("default", "--concurrency", "2", "--mode", "prefork")
    os.killpg(doomed.pid, signal.SIGKILL)
    wait_for(
        lambda: all(len(events(blueque, task_id)) == 2 for task_id in ids),
        3 * LISTENER_TIMEOUT + 10,
        "both tasks to start again on the prefork worker",
    )
    assert [task.fields.get("recoveries") for task in blueque.get_tasks(ids)] == ["1", "1"]


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_full_redis_stalls_a_worker_without_losing_its_task(
    blueque: Client, spawn_worker: Spawn, mode: str, tmp_path: Path
) -> None:
    """Redis at maxmemory with noeviction refuses writes (OOM) for longer than the timeout: the worker,
    a scheduler and a monitor wait, as for an outage, and go on once memory is freed; the task ran once."""
    task_id = tasks.nap.enqueue(1).id
    worker = spawn_worker("default", "--concurrency", "1", "--mode", mode)
    others = [spawn_worker(command=command) for command in ("blueque_scheduler", "blueque_monitor")]
    wait_for(lambda: statuses(blueque, [task_id]) == ["started"], 20, "the task to start")
    blueque.redis.config_set("maxmemory-policy", "noeviction")
    blueque.redis.config_set("maxmemory", 1)  # below what Redis uses: writes are refused
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            blueque.redis.set("probe", "x")
        time.sleep(LISTENER_TIMEOUT * 2)  # the task ends meanwhile
        logs = [(tmp_path / f"worker-{n}.log").read_text() for n in range(3)]
        assert [process.poll() for process in (worker, *others)] == [None] * 3, logs
        assert "maxmemory" in logs[0]  # it did meet the refusal
    finally:
        blueque.redis.config_set("maxmemory", 0)
    wait_for(lambda: statuses(blueque, [task_id]) == ["complete"], 20, "the outcome to land")
    task = blueque.get_task(task_id)
    assert (task.fields["attempt"], "recoveries" in task.fields, "releases" in task.fields) == ("1", False, False)
    wait_for(lambda: blueque.redis.llen("blueque_complete_tasks_default") == 0, 20, "the monitor to report the task")
    for process in (worker, *others):
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    assert reserved_ids(blueque) == []
