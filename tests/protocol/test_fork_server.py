"""A fork-mode worker's fork server: its task processes come from it, and its death, or its
freezing, loses no task and no exit status."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from django_blueque.protocol import Client, Task, fork_server, forking_runner, keys

pytestmark = pytest.mark.skipif(not fork_server.available(), reason="fork servers need Linux")

RUNNER = textwrap.dedent(
    """
    import sys, time
    from django_blueque.protocol import Client, fork_server, forking_runner

    fork_server.ANSWER_WITHIN = 1.0

    def slow(task):
        time.sleep(float(task.parameters))
        return "slept"

    forking_runner.run(Client(sys.argv[1]), "q", slow, 2, block_timeout=0.2, fork_server=sys.argv[2] == "on")
    """
)


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def name(pid: int) -> str:
    """A live process's name; "" once it has ended (gone, or a zombie)."""
    try:
        if Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
            return ""
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])


def servers(pid: int) -> list[int]:
    return [child for child in children(pid) if name(child).startswith("blueque-fork")]


def settle(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"waited for {what}"
        time.sleep(0.02)


def server_of(runner: subprocess.Popen[bytes]) -> int:
    """The fork server of a runner just started, once it has one."""
    settle(lambda: len(servers(runner.pid)) == 1, "the fork server")
    [server] = servers(runner.pid)
    return server


@pytest.fixture
def start_runner(redis_url: str) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(mode: str = "on") -> subprocess.Popen[bytes]:
        # A process group of its own: the task processes that outlive their worker (a
        # task run again after its loss, say) carry on alone, and must not outlive the test.
        process = subprocess.Popen([sys.executable, "-c", RUNNER, redis_url, mode], start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_task_processes_come_from_the_fork_server_and_the_worker_forks_none(
    client: Client, start_runner: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    runner = start_runner("on")
    server = server_of(runner)
    ids = [client.get_queue("q").enqueue("0") for _ in range(5)]
    settle(lambda: [t.status for t in client.get_tasks(ids)] == ["complete"] * 5, "the tasks")
    pids = {t.pid for t in client.get_tasks(ids)}
    assert len(pids) == 5
    # The worker's only child is its fork server; the process forked ahead of the next task is the server's.
    assert children(runner.pid) == [server]
    settle(lambda: len(children(server)) == 1, "a process forked ahead")
    assert name(children(server)[0]).startswith("blueque-task")


def test_without_a_fork_server_the_worker_forks_its_task_processes_itself(
    client: Client, start_runner: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    runner = start_runner("off")
    task_id = client.get_queue("q").enqueue("0")
    settle(lambda: client.get_task(task_id).status == "complete", "the task")
    settle(lambda: len(children(runner.pid)) == 1, "a process forked ahead")
    assert name(children(runner.pid)[0]).startswith("blueque-task")


def test_a_killed_fork_server_loses_no_task_and_no_exit_status(
    client: Client, db: Redis, start_runner: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    runner = start_runner("on")
    server = server_of(runner)
    queue = client.get_queue("q")
    finishing, doomed = queue.enqueue("1.5"), queue.enqueue("30")
    settle(lambda: client.queue_stats(["q"])["q"].started == 2, "both tasks to start")
    doomed_pid = client.get_task(doomed).pid
    assert doomed_pid is not None and parent(doomed_pid) == server

    os.kill(server, signal.SIGKILL)
    # The server's processes are the worker's now: it hears how each ends.
    settle(lambda: parent(doomed_pid) == runner.pid, "the task process handed to the worker")
    os.kill(doomed_pid, signal.SIGKILL)
    settle(lambda: client.get_task(finishing).status == "complete", "the other task's outcome")
    settle(lambda: "killed by SIGKILL" in (db.hget(f"blueque_task_{doomed}", "lost") or ""), "the loss recorded")
    assert client.get_task(finishing).result == "slept"

    # A new server forks the next tasks.
    settle(lambda: len(servers(runner.pid)) == 1 and servers(runner.pid) != [server], "a new fork server")
    later = queue.enqueue("0")
    settle(lambda: client.get_task(later).status == "complete", "a task after the loss")
    assert runner.poll() is None


def test_a_frozen_fork_server_is_killed_and_the_worker_forks_for_itself(
    client: Client, start_runner: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    runner = start_runner("on")
    server = server_of(runner)
    settle(lambda: len(children(server)) == 1, "a process forked ahead")
    os.kill(server, signal.SIGSTOP)
    try:
        # The first runs in the process forked ahead; the worker then asks the frozen server for
        # the next one, and forks it itself once the server has not answered within a second.
        ids = [client.get_queue("q").enqueue("0") for _ in range(3)]
        settle(lambda: [t.status for t in client.get_tasks(ids)] == ["complete"] * 3, "the tasks")
        settle(lambda: server not in children(runner.pid), "the frozen server killed and reaped")
    finally:
        if name(server):
            os.kill(server, signal.SIGCONT)
    assert runner.poll() is None


def test_the_fork_server_stops_with_the_worker_and_leaves_nothing_behind(
    client: Client, start_runner: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    runner = start_runner("on")
    server = server_of(runner)
    task_id = client.get_queue("q").enqueue("0.5")
    settle(lambda: client.get_task(task_id).status == "started", "the task to start")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(10) == 0
    assert client.get_task(task_id).status == "complete"
    assert not name(server), "the fork server outlived its worker"


def test_the_fork_server_leaves_when_its_worker_dies(
    client: Client, start_runner: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    runner = start_runner("on")
    server = server_of(runner)
    task_id = client.get_queue("q").enqueue("1")
    settle(lambda: client.get_task(task_id).status == "started", "the task to start")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    settle(lambda: not name(server), "the fork server to leave", timeout=5)
    # The task's process carries on alone and records its own outcome.
    settle(lambda: client.get_task(task_id).status == "complete", "the orphaned task's outcome")


def test_prepare_runs_in_the_process_the_children_are_forked_from(client: Client, tmp_path: Path) -> None:
    ids = [client.get_queue("q").enqueue(str(i)) for i in range(3)]
    prepared = tmp_path / "prepared"

    def prepare(task: Task) -> None:
        with prepared.open("a") as out:
            out.write(f"{os.getpid()}\n")

    def where(task: Task) -> str:
        return str(os.getppid())

    runner = forking_runner.ForkingRunner(client, "q", where, 1, prepare=prepare, fork_server=True)
    assert runner.run(burst=True) == 3
    forked_from = {int(t.result or 0) for t in client.get_tasks(ids)}
    assert len(forked_from) == 1 and os.getpid() not in forked_from
    assert forked_from <= {int(pid) for pid in prepared.read_text().split()}


def test_a_runner_in_this_process_stops_being_a_subreaper(client: Client) -> None:
    assert not fork_server.is_subreaper()
    client.get_queue("q").enqueue("0")
    assert forking_runner.run(client, "q", lambda task: "", 1, burst=True, fork_server=True) == 1
    assert not fork_server.is_subreaper()


@pytest.mark.parametrize("mode", ["on", "off"])
def test_a_worker_killed_while_it_waits_for_a_task_takes_no_more_through_its_children(
    client: Client, db: Redis, start_runner: Callable[[str], subprocess.Popen[bytes]], mode: str
) -> None:
    # Its task processes outlive it (they finish alone). Had they kept its Redis connection
    # open, Redis would still serve the BLMOVE it was waiting in: the next task pushed would
    # go into the dead worker's list, to wait there for recovery.
    runner = start_runner(mode)
    queue = client.get_queue("q")
    running = queue.enqueue("3")
    settle(lambda: client.get_task(running).status == "started", "the task to start")
    time.sleep(0.3)  # the worker is back in its BLMOVE
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    later = queue.enqueue("0")
    time.sleep(0.5)
    assert db.lrange(keys.pending("q"), 0, -1) == [later]
    settle(lambda: client.get_task(running).status == "complete", "the orphaned task's outcome")


def test_after_three_deaths_of_its_fork_server_the_worker_forks_for_itself(
    client: Client, start_runner: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    runner = start_runner("on")
    queue = client.get_queue("q")
    for death in range(1, forking_runner.FORK_SERVER_RESTARTS + 1):
        os.kill(server_of(runner), signal.SIGKILL)
        settle(lambda: servers(runner.pid) == [], f"death {death} seen")
        # The next process to fork (after a task) starts a new server, the first two times.
        task_id = queue.enqueue("0")
        settle(lambda: client.get_task(task_id).status == "complete", f"a task after death {death}")  # noqa: B023
    later = queue.enqueue("0")
    settle(lambda: client.get_task(later).status == "complete", "a task after the last death")
    settle(lambda: any(name(child).startswith("blueque-task") for child in children(runner.pid)), "a child of its own")
    assert servers(runner.pid) == []
    assert runner.poll() is None
