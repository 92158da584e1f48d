import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis

from django_blueque.protocol import Client, Task, forking_runner, keys
from django_blueque.protocol.work import TaskCallback


def echo(task: Task) -> str:
    return f"{task.parameters} done by {os.getpid()}"


def test_burst_runs_every_task_in_its_own_process(client: Client) -> None:
    queue = client.get_queue("q")
    ids = [queue.enqueue(str(i)) for i in range(10)]
    assert forking_runner.run(client, "q", echo, 3, burst=True) == 10
    tasks = client.get_tasks(ids)
    assert [t.status for t in tasks] == ["complete"] * 10
    assert all(t.result == f"{t.parameters} done by {t.pid}" for t in tasks)
    assert len({t.pid for t in tasks}) == 10
    assert os.getpid() not in {t.pid for t in tasks}
    stats = client.queue_stats(["q"])["q"]
    assert (stats.pending, stats.reserved, stats.started, stats.complete, stats.listeners) == (0, 0, 0, 10, 0)


def raise_error(task: Task) -> str:
    raise RuntimeError(f"cannot process {task.parameters}")


def return_a_number(task: Task) -> str:
    return 42  # type: ignore[return-value]


def kill_self(task: Task) -> str:
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


@pytest.mark.parametrize(
    ("callback", "error"),
    [
        (raise_error, "cannot process x"),
        (return_a_number, "A task callback must return a string or None, not int"),
        (kill_self, "Worker lost 4 times; last: process"),
    ],
)
def test_failures_end_failed_with_the_reason(client: Client, callback: TaskCallback, error: str, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("x")
    forking_runner.run(client, "q", callback, 1, burst=True)
    task = client.get_task(task_id)
    assert task.status == "failed"
    assert error in (task.error or "")
    assert db.lrange(keys.failed("q"), 0, -1) == [task_id]
    assert db.scard(keys.started("q")) == 0


def test_a_failure_keeps_the_exception_class_and_traceback(client: Client) -> None:
    task_id = client.get_queue("q").enqueue("x")
    forking_runner.run(client, "q", raise_error, 1, burst=True)
    task = client.get_task(task_id)
    assert task.exception == "builtins.RuntimeError"
    assert task.traceback is not None
    assert "in raise_error" in task.traceback
    assert task.traceback.rstrip().endswith("RuntimeError: cannot process x")


def test_runner_serves_several_queues_by_priority(client: Client) -> None:
    low = client.get_queue("low").enqueue("low")
    high = client.get_queue("high").enqueue("high")
    forking_runner.run(client, ["high", "low"], echo, 1, burst=True)
    first, second = client.get_tasks([high, low])
    assert first.status == second.status == "complete"
    assert (first.updated or 0) < (second.updated or 0)


def test_runner_claims_orphans_on_start(client: Client, db: Redis, named_host: Callable[[str], str]) -> None:
    named_host("box-a.example")  # 1.0.1's pid rule wants a host name no other host shares
    process = subprocess.Popen(["true"])
    process.wait()
    dead = f"{client.get_listener('q').id.rpartition('_')[0]}_{process.pid}"
    task_id = client.get_queue("q").enqueue("orphan")
    db.sadd(keys.listeners("q"), dead)
    db.lmove(keys.pending("q"), keys.reserved("q", dead), "RIGHT", "LEFT")
    db.hset(keys.task(task_id), mapping={"status": "reserved", "node": dead})
    forking_runner.run(client, "q", echo, 1, burst=True)
    assert client.get_task(task_id).status == "complete"
    assert dead not in db.smembers(keys.listeners("q"))


RUNNER = textwrap.dedent(
    """
    import sys, time
    from django_blueque.protocol import Client, forking_runner

    def slow(task):
        time.sleep(float(task.parameters))
        return "slept"

    forking_runner.run(Client(sys.argv[1]), "q", slow, 2, block_timeout=0.2)
    """
)


def test_sigterm_lets_running_tasks_finish_and_takes_no_more(client: Client, redis_url: str, db: Redis) -> None:
    queue = client.get_queue("q")
    running = [queue.enqueue("1.5"), queue.enqueue("1.5")]
    waiting = queue.enqueue("0")
    process = subprocess.Popen([sys.executable, "-c", RUNNER, redis_url])
    try:
        deadline = time.monotonic() + 10
        while client.queue_stats(["q"])["q"].started < 2:
            assert time.monotonic() < deadline, "the runner did not start its tasks"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
    assert [t.status for t in client.get_tasks(running)] == ["complete", "complete"]
    assert client.get_task(waiting).status == "pending"
    assert db.scard(keys.listeners("q")) == 0


def test_without_signal_handlers_a_full_runner_notices_a_finished_child_soon(client: Client) -> None:
    # Nothing wakes it on SIGCHLD then; it must not wait for its next heartbeat (15 s here).
    ids = [client.get_queue("q").enqueue(str(i)) for i in range(2)]
    started = time.monotonic()
    forking_runner.run(client, "q", echo, 1, burst=True, install_signal_handlers=False, listener_timeout=60)
    assert time.monotonic() - started < 5
    assert [t.status for t in client.get_tasks(ids)] == ["complete", "complete"]


def test_prepare_runs_in_the_runner_before_each_fork(client: Client) -> None:
    ids = [client.get_queue("q").enqueue(str(i)) for i in range(3)]
    prepared: list[str] = []

    def prepare(task: Task) -> None:
        prepared.append(task.id)
        if task.parameters == "1":
            raise ImportError("a broken task module: the child records the error")

    runner = forking_runner.ForkingRunner(client, "q", echo, 1, prepare=prepare)
    assert runner.run(burst=True) == 3
    assert prepared == ids
    assert [t.status for t in client.get_tasks(ids)] == ["complete"] * 3


def test_children_open_no_redis_connection_of_their_own(client: Client, db: Redis) -> None:
    # The runner starts each task for its child and records the outcome the
    # child sends back through a pipe: no connection per task.
    ids = [client.get_queue("q").enqueue(str(i)) for i in range(20)]
    before = int(db.info("stats")["total_connections_received"])
    assert forking_runner.run(client, "q", echo, 2, burst=True) == 20
    opened = int(db.info("stats")["total_connections_received"]) - before
    # The runner's own, and any child whose runner was too busy to record its
    # outcome within RECORD_WAIT (it then records it itself): not one each.
    assert opened <= 10, f"{opened} connections for 20 tasks"
    tasks = client.get_tasks(ids)
    assert [t.status for t in tasks] == ["complete"] * 20
    # Each ran in its own process, whose pid the start recorded.
    assert all(t.result == f"{t.parameters} done by {t.pid}" for t in tasks)
    assert len({t.pid for t in tasks}) == 20


def test_an_outcome_is_recorded_while_the_runner_waits_for_the_next_task(
    client: Client, redis_url: str, db: Redis
) -> None:
    # The runner has a free slot, so it waits in BLMOVE (here up to 15 s, a
    # quarter of the default listener timeout) and cannot read its child's
    # report; the child records its outcome itself rather than wait.
    process = subprocess.Popen([sys.executable, "-c", RUNNER.replace("0.2", "30"), redis_url])
    try:
        while db.scard(keys.listeners("q")) == 0:
            assert process.poll() is None
            time.sleep(0.05)
        time.sleep(0.2)  # the runner is waiting for a task
        task_id = client.get_queue("q").enqueue("0")
        deadline = time.monotonic() + 5
        while client.get_task(task_id).status != "complete":
            assert time.monotonic() < deadline, "the outcome waited for the runner's next wake"
            time.sleep(0.05)
        assert client.get_task(task_id).result == "slept"
    finally:
        process.kill()
        process.wait()


def task_processes(pid: int) -> list[int]:
    """The processes of runner ``pid`` that run tasks (or wait to), whether it or its fork server forked them."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            comm = Path(f"/proc/{child}/comm").read_text()
        except OSError:
            continue
        if comm.startswith("blueque-fork"):
            found.extend(task_processes(int(child)))
        elif comm.startswith("blueque-task"):
            found.append(int(child))
    return found


def test_an_idle_runner_keeps_one_process_forked_ahead_and_the_next_task_runs_in_it(
    client: Client, redis_url: str, db: Redis
) -> None:
    def children() -> list[int]:
        """The runner's task processes: its children, or its fork server's."""
        return task_processes(process.pid)

    def settle(predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not predicate():
            assert time.monotonic() < deadline, f"children: {children()}"
            time.sleep(0.05)

    process = subprocess.Popen([sys.executable, "-c", RUNNER, redis_url])
    try:
        settle(lambda: len(children()) == 1)
        [spare] = children()
        task_id = client.get_queue("q").enqueue("0")
        settle(lambda: client.get_task(task_id).status == "complete")
        assert client.get_task(task_id).pid == spare
        # Another takes its place while a slot is free.
        settle(lambda: len(children()) == 1 and children() != [spare])
    finally:
        process.kill()
        process.wait()
