"""Recovery between two steps of the protocol, through the management
commands: a process killed between the take (``BLMOVE``) and the reserve
script, a reserve that reaches Redis after the task was recovered, lost
replies of the worker's take and the monitor's, listeners judged by their own
timeouts, a task deleted while it runs, a queue name the protocol refuses.

``tests/protocol/`` tests each rule on the protocol API; these show that
``manage.py blueque_worker``, ``blueque_scheduler`` and ``blueque_monitor``
keep them with real processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from django_blueque.protocol import Client, keys
from django_blueque.protocol.replies import string_set, strings
from django_blueque.protocol.scripts import SOURCES
from tests.tcp_proxy import TcpProxy
from tests.workers import recovery_tasks
from tests.workers.conftest import MANAGE, ROOT, Spawn
from tests.workers.runs import (
    Journal,
    T,
    assert_clean,
    diagnose,
    leftovers,
    queue_listeners,
    wait_for,
    wait_until_complete,
)
from tests.workers.test_monitor_processes import finished_tasks, nothing_left, signalled


def log_of(tmp_path: Path, index: int) -> str:
    """The output of the ``index``-th process the test spawned."""
    return (tmp_path / f"worker-{index}.log").read_text()


def listener_pids(client: Client) -> list[int]:
    """The pids in the ids registered on queue "default"."""
    found = []
    for listener_id in string_set(client.redis.smembers(keys.listeners("default"))):
        parsed = keys.parse_listener_id(listener_id)
        assert parsed is not None, listener_id
        found.append(parsed[1])
    return found


def blocked_in_blmove(client: Client) -> bool:
    return any(entry["cmd"] == "blmove" and "b" in entry["flags"] for entry in client.redis.client_list())


def take_then_freeze(client: Client, pid: int, enqueue: Callable[[], str]) -> str:
    """Leave a task moved into the reserved list of process ``pid``, not yet marked reserved.

    The process is stopped (SIGSTOP) while Redis holds its ``BLMOVE``, then
    a task is enqueued: Redis moves its id, and the reply waits in a socket
    that nobody reads, exactly as if the process died right after the move.
    The process stays stopped; returns the task id.
    """
    for _ in range(50):
        os.kill(pid, signal.SIGSTOP)
        if blocked_in_blmove(client):
            task_id = enqueue()
            try:
                wait_for(lambda: client.redis.llen(keys.pending("default")) == 0, 1, "the blocked BLMOVE to take it")
            except AssertionError:
                # Its BLMOVE timed out between the check and the enqueue: try again.
                client.redis.lrem(keys.pending("default"), 0, task_id)
                client.redis.delete(keys.task(task_id))
            else:
                assert client.get_task(task_id).status == "pending"
                return task_id
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"process {pid} was never seen blocked in BLMOVE")


# -- Killed between the take and the reserve ---------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "killed"),
    [("prefork", "child"), ("prefork", "worker"), ("fork", "worker")],
    ids=["prefork-child", "prefork-worker", "fork-worker"],
)
def test_a_task_taken_by_a_process_killed_before_its_reserve_runs_once(
    blueque: Client, spawn: Spawn, journal: Journal, mode: str, killed: str
) -> None:
    w1 = spawn("default", "--concurrency", "1", "--mode", mode)
    wait_for(lambda: queue_listeners(blueque) == 1, 20, "W1 to register")
    (taker,) = listener_pids(blueque)
    assert (taker == w1.pid) == (mode == "fork")
    task_id = take_then_freeze(blueque, taker, lambda: recovery_tasks.run_for.enqueue(0.5).id)
    if killed == "child":
        # The prefork parent sees its child die and gives back what it left.
        os.kill(taker, signal.SIGKILL)
        runner = w1.pid
    else:
        os.killpg(w1.pid, signal.SIGKILL)
        w1.wait(10)
        # Another worker, on "another host" (its own random node), recovers it.
        runner = spawn("default", "--concurrency", "1").pid
    try:
        wait_until_complete(blueque, [task_id], 3 * T + 10, journal)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {diagnose(blueque, task_id)}") from None
    runs = journal.runs(task_id)
    assert len(runs) == 1, runs
    assert runs[0].parent == runner, f"run by {runs[0].parent}, expected a child of {runner}"
    assert_clean(blueque, [task_id], journal)


# -- A reserve that arrives after the task was recovered --------------------------------------


def test_a_reserve_that_arrives_after_recovery_does_not_run_the_task_again(
    blueque: Client, spawn: Spawn, journal: Journal, proxy: TcpProxy, tmp_path: Path
) -> None:
    """W1's reserve script is held in the network; W1, waiting for its reply,
    beats no more and is judged dead; the task goes to W2. Then W1's reserve
    reaches Redis: it must find the id gone from W1's list, and W1 must not
    run the task."""
    spawn(command="blueque_scheduler")
    w1 = spawn("default", "--concurrency", "1", url=proxy.url)
    wait_for(lambda: queue_listeners(blueque) == 1, 20, "W1 to register")
    reserve_sha = blueque.redis.script_load(SOURCES["reserve"])  # so the first EVALSHA runs it
    proxy.hold_next(reserve_sha.encode())
    task_id = recovery_tasks.run_for.enqueue(2 * T).id
    wait_for(lambda: proxy.holding, 10, "W1's reserve to be held")
    w2 = spawn("default", "--concurrency", "1")
    try:
        wait_for(lambda: journal.started(task_id) == 1, 3 * T + 10, "W2 to start the task recovered from W1")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {diagnose(blueque, task_id)}") from None
    proxy.release()
    wait_until_complete(blueque, [task_id], 2 * T + 10, journal)
    time.sleep(T)  # a run of W1's would have started by now
    runs = journal.runs(task_id)
    assert [run.parent for run in runs] == [w2.pid], runs
    assert w1.poll() is None, "W1 died"
    assert "was recovered from this listener before it was marked reserved" in log_of(tmp_path, 1)
    # W1 beats again, so it is registered again.
    wait_for(lambda: queue_listeners(blueque) == 2, 3 * T, "W1 to be registered again")
    assert_clean(blueque, [task_id], journal)


# -- Lost replies ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_worker_whose_take_reply_is_lost_runs_each_task_once(
    blueque: Client, spawn: Spawn, journal: Journal, proxy: TcpProxy, mode: str
) -> None:
    ids = [recovery_tasks.run_for.enqueue(0.2).id for _ in range(3)]
    # The worker's first BLMOVE moves an id; its reply is lost.
    proxy.drop_next_reply(b"BLMOVE")
    spawn("default", "--concurrency", "1", "--mode", mode, url=proxy.url)
    wait_until_complete(blueque, ids, 20, journal)
    assert not proxy.drop_pending, "no BLMOVE went through the proxy: the fault was not injected"
    assert [journal.started(task_id) for task_id in ids] == [1, 1, 1]
    assert_clean(blueque, ids, journal)


def test_a_monitor_whose_take_reply_is_lost_signals_each_task_once(
    blueque: Client, spawn_worker: Spawn, proxy: TcpProxy
) -> None:
    ids = finished_tasks(blueque, 40)
    blueque.redis.script_load(SOURCES["monitor_take"])
    # The take from the complete list (not the empty retrying one first).
    proxy.drop_next_reply(keys.complete("default").encode())
    spawn_worker("--interval", "0.1", command="blueque_monitor", url=proxy.url)
    wait_for(lambda: set(signalled(blueque)) == ids and nothing_left(blueque), 30, "every task to be signalled")
    time.sleep(0.5)  # nothing more may come
    assert not proxy.drop_pending, "the monitor's take did not go through the proxy: the fault was not injected"
    assert set(signalled(blueque).values()) == {1}


# -- Each listener judged by its own timeout -------------------------------------------------


def test_a_worker_with_a_longer_timeout_is_not_judged_by_a_scheduler_with_a_shorter_one(
    blueque: Client, spawn: Spawn, journal: Journal
) -> None:
    # The worker beats every 2.5 s (a quarter of 10 s); the scheduler's own timeout is 2 s.
    spawn(command="blueque_scheduler", listener_timeout=T)
    worker = spawn("default", "--concurrency", "1", listener_timeout=10.0)
    wait_for(lambda: queue_listeners(blueque) == 1, 20, "the worker to register")
    task_id = recovery_tasks.run_for.enqueue(4 * T).id
    registered = []
    deadline = time.monotonic() + 4 * T + 10
    while blueque.get_task(task_id).status != "complete" and time.monotonic() < deadline:
        registered.append(queue_listeners(blueque))
        time.sleep(0.1)
    assert blueque.get_task(task_id).status == "complete"
    runs = journal.runs(task_id)
    assert len(runs) == 1 and runs[0].parent == worker.pid, runs
    assert set(registered) == {1}, "the worker was deregistered while it ran"
    assert_clean(blueque, [task_id], journal)


def test_a_dead_worker_is_judged_by_its_own_shorter_timeout(blueque: Client, spawn: Spawn, journal: Journal) -> None:
    spawn(command="blueque_scheduler", listener_timeout=30.0)
    w1 = spawn("default", "--concurrency", "1", listener_timeout=T)
    wait_for(lambda: queue_listeners(blueque) == 1, 20, "W1 to register")
    task_id = recovery_tasks.run_for.enqueue(60).id
    wait_for(lambda: journal.started(task_id) == 1, 10, "W1 to start the task")
    os.killpg(w1.pid, signal.SIGKILL)
    killed_at = time.time()
    w1.wait(10)
    # W2 does no recovery of its own that could come first: it judges by 30 s too.
    spawn("default", "--concurrency", "1", listener_timeout=30.0)
    # Judged by W1's 2 s, not the scheduler's 30 s: back in pending after about 2 s of watching.
    wait_for(lambda: journal.started(task_id) == 2, 3 * T + 5, "the task to start again")
    again = journal.runs(task_id)[1].start - killed_at
    print(f"worker with a 2 s timeout killed: its task started again {again:.2f}s later")
    assert again < 3 * T + 5


# -- A task deleted while it runs ---------------------------------------------------------------


def test_a_task_deleted_while_it_runs_leaves_no_running_state(blueque: Client, spawn: Spawn, journal: Journal) -> None:
    spawn("default", "--concurrency", "1")
    task_id = recovery_tasks.run_for.enqueue(1.0).id
    wait_for(lambda: journal.started(task_id) == 1, 20, "the worker to start the task")
    blueque.redis.delete(keys.task(task_id))
    wait_for(lambda: all(run.stop is not None for run in journal.runs(task_id)), 10, "the run to end")
    wait_for(
        lambda: blueque.redis.zscore(keys.task_heartbeats(), task_id) is None,
        2 * T,
        "the task's heartbeat to be removed",
    )
    assert not blueque.redis.exists(keys.task(task_id)), "the worker wrote the deleted task's hash again"
    reserved = [key for key in blueque.redis.scan_iter("blueque_reserved_tasks_*") if blueque.redis.llen(key)]
    assert reserved == []
    assert strings(blueque.redis.smembers(keys.started("default"))) == []


# -- A queue name the protocol refuses ---------------------------------------------------------


@pytest.mark.parametrize("command", ["blueque_worker", "blueque_scheduler", "blueque_monitor", "blueque_run"])
def test_a_queue_name_with_whitespace_is_refused_in_one_line(redis_url: str, command: str) -> None:
    done = subprocess.run(
        [sys.executable, str(MANAGE), command, "default", "reports daily"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "BLUEQUE_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "CommandError: A queue name must be a non-empty string without whitespace, not 'reports daily'"
    )


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_task_a_live_worker_holds_but_does_not_run_runs_again(
    blueque: Client, spawn: Spawn, journal: Journal, mode: str
) -> None:
    # What a failover leaves when the replica had not yet received a task's outcome: the
    # task started, in a live listener's list, its run long over.
    spawn("default", "--concurrency", "1", "--mode", mode)
    wait_for(lambda: queue_listeners(blueque) == 1, 20, "the worker to register")
    (listener,) = string_set(blueque.redis.smembers(keys.listeners("default")))
    task_id = recovery_tasks.run_for.enqueue(0.1).id
    wait_until_complete(blueque, [task_id], 20, journal)
    redis = blueque.redis
    redis.lrem(keys.complete("default"), 1, task_id)
    redis.rpush(keys.reserved("default", listener), task_id)
    redis.hset(keys.task(task_id), mapping={"status": "started", "node": listener, "pid": 1, "attempt": 1})
    redis.sadd(keys.started("default"), keys.started_member(listener, 1, task_id))
    wait_for(lambda: journal.started(task_id) == 2, 10, "the task to run again")
    wait_until_complete(blueque, [task_id], 20, journal)
    assert blueque.get_task(task_id).fields.get("recoveries") == "1"
    assert not leftovers(blueque), leftovers(blueque)
