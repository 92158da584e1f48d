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

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from django_blueque.connection import get_client
from django_blueque.protocol import Client, Task, keys
from django_blueque.protocol.replies import string_set, strings
from tests.redis_server import RedisServer
from tests.tcp_proxy import TcpProxy
from tests.workers import recovery_tasks
from tests.workers.conftest import LISTENER_TIMEOUT, Spawn, wait_for

T = LISTENER_TIMEOUT


# -- The journal, and the processes behind it -------------------------------------------------


@dataclass
class Run:
    """One run of a task: a process that started it and, unless it was killed, ended it."""

    task_id: str
    attempt: int
    pid: int
    start: float
    #: When the task's code returned (its ``end`` line); None if the run was cut short.
    end: float | None = None
    #: When the process was seen gone (or a zombie); None while it lives or if never watched.
    death: float | None = None
    #: The parent of the process (the worker that forked it), when first seen alive.
    parent: int | None = None

    @property
    def killed(self) -> bool:
        return self.end is None

    @property
    def stop(self) -> float | None:
        """When the run stopped: its end, else its process's death; None while it runs."""
        return self.end if self.end is not None else self.death

    def until(self, now: float) -> float:
        stop = self.stop
        return now if stop is None else stop

    def show(self, origin: float = 0.0) -> str:
        """A line for reports; times in seconds after ``origin``."""
        if self.end is not None:
            how = f"ended at {self.end - origin:.2f}"
        elif self.death is not None:
            how = f"killed, dead by {self.death - origin:.2f}"
        else:
            how = "still running"
        return f"{self.task_id[:8]}: pid {self.pid} (worker {self.parent}) from {self.start - origin:.2f}, {how}"

    def __str__(self) -> str:
        return self.show()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0].decode(), int(fields[1])


class Journal:
    """Reads the journal file; a thread notes each running process's parent and death time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, int], Run] = {}
        self._offset = 0
        self._partial = b""
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="journal-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as journal:
                journal.seek(self._offset)
                data = journal.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            event, task_id, attempt, pid, when = line.decode().split()
            key = (task_id, int(pid))
            if event == "start":
                self._runs[key] = Run(task_id, int(attempt), int(pid), float(when))
            elif key in self._runs:
                self._runs[key].end = float(when)

    def _watch(self) -> None:
        while not self._stopped.wait(0.02):
            self.poll()

    def poll(self) -> None:
        with self._lock:
            self._read()
            now = time.time()
            for run in self._runs.values():
                if run.end is not None or run.death is not None:
                    continue
                stat = _proc_stat(run.pid)
                if stat is None or stat[0] == "Z":
                    run.death = now
                elif run.parent is None:
                    run.parent = stat[1]

    def runs(self, task_id: str | None = None) -> list[Run]:
        """Every run so far (copies), oldest first."""
        self.poll()
        with self._lock:
            found = [Run(**vars(run)) for run in self._runs.values() if task_id is None or run.task_id == task_id]
        return sorted(found, key=lambda run: run.start)

    def started(self, task_id: str) -> int:
        return len(self.runs(task_id))


@dataclass
class Tally:
    lost: list[str]
    overlapping: list[tuple[Run, Run]]
    overlap_seconds: float
    reruns: int

    def show(self, origin: float = 0.0) -> str:
        pairs = "; ".join(f"[{a.show(origin)}] with [{b.show(origin)}]" for a, b in self.overlapping)
        return (
            f"lost {len(self.lost)}, re-runs {self.reruns}, overlapping pairs {len(self.overlapping)}, "
            f"overlap {self.overlap_seconds:.2f}s" + (f" ({pairs})" if pairs else "")
        )

    def __str__(self) -> str:
        return self.show()


def overlap(a: Run, b: Run, now: float) -> float:
    """Seconds two runs ran at once (a run still going counts until ``now``)."""
    return max(0.0, min(a.until(now), b.until(now)) - max(a.start, b.start))


def tally(journal: Journal, task_ids: list[str]) -> Tally:
    """Lost (never ran to its end), overlapping runs of a task, total overlap and re-runs."""
    now = time.time()
    lost, pairs, seconds, reruns = [], [], 0.0, 0
    for task_id in task_ids:
        runs = journal.runs(task_id)
        if not any(run.end is not None for run in runs):
            lost.append(task_id)
        reruns += max(0, len(runs) - 1)
        for a, b in itertools.combinations(runs, 2):
            if (seconds_at_once := overlap(a, b, now)) > 0:
                pairs.append((a, b))
                seconds += seconds_at_once
    return Tally(lost, pairs, seconds, reruns)


# -- What Redis holds ---------------------------------------------------------------------------


def _members(client: Client, pattern: str, read: Callable[[str], list[str]]) -> dict[str, list[str]]:
    return {key: found for key in client.redis.scan_iter(pattern) if (found := read(key))}


def leftovers(client: Client) -> dict[str, list[str]]:
    """Every non-empty reserved list and started set."""
    return {
        **_members(client, "blueque_reserved_tasks_*", lambda key: strings(client.redis.lrange(key, 0, -1))),
        **_members(client, "blueque_started_tasks_*", lambda key: sorted(string_set(client.redis.smembers(key)))),
    }


def statuses(client: Client, ids: list[str]) -> list[str | None]:
    return [task.status for task in client.get_tasks(ids)]


def wait_until_complete(client: Client, ids: list[str], timeout: float, journal: Journal) -> None:
    try:
        wait_for(lambda: statuses(client, ids) == ["complete"] * len(ids), timeout, f"{len(ids)} task(s) to complete")
    except AssertionError as exc:
        runs = "\n  ".join(map(str, journal.runs()))
        raise AssertionError(f"{exc}; statuses {statuses(client, ids)}; runs:\n  {runs}") from None


def assert_clean(client: Client, ids: list[str], journal: Journal) -> None:
    """Nothing lost, nothing left behind."""
    assert statuses(client, ids) == ["complete"] * len(ids)
    assert tally(journal, ids).lost == []
    # Cleaning up may trail the outcome by a beat: give it one timeout.
    try:
        wait_for(lambda: not leftovers(client), T, "every reserved list and started set to be empty")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {leftovers(client)}") from None


def diagnose(client: Client, task_id: str) -> str:
    """Where a task stands, and who is registered on its queue (for failure messages)."""
    task = client.get_task(task_id)
    shown = {name: task.fields.get(name) for name in ("status", "node", "pid", "attempt", "recoveries")}
    registered = sorted(string_set(client.redis.smembers(keys.listeners("default"))))
    holding = [key for key, ids in leftovers(client).items() if task_id in " ".join(ids)]
    return f"task {shown}; listeners registered on default: {registered}; held in: {holding}"


def queue_listeners(client: Client) -> int:
    return client.queue_stats(["default"])["default"].listeners


# -- Fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    watched = Journal(tmp_path / "journal.log")
    watched.start()
    yield watched
    watched.stop()


@pytest.fixture
def spawn(spawn_worker: Spawn, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> Spawn:
    """``spawn_worker``, with the journal's path in the environment of what it starts."""

    def start(*args: str, **kwargs: object) -> subprocess.Popen[str]:
        monkeypatch.setenv(recovery_tasks.JOURNAL_ENV, str(journal.path))
        return spawn_worker(*args, **kwargs)

    return start


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(redis_url)
    with TcpProxy(parts.port or 6379, target_host=parts.hostname or "127.0.0.1") as running:
        yield running


def kill_group(process: subprocess.Popen[str]) -> float:
    """kill -9 a worker and every process of its group; return when."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    return time.time()


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
