"""Runs recorded outside Redis, and what Redis holds afterwards, for the
recovery tests: a journal of every run of a task (``tests.workers.recovery_tasks``
appends to a file) watched by a thread that notes when each run's process
died, so a run killed midway still has an end; and the invariants checked
after each test (nothing lost, overlaps and re-runs counted, nothing left in
a reserved list or a started set).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django_blueque.protocol import Client, keys
from django_blueque.protocol.replies import string_set, strings

#: Short, so tests see recovery in seconds.
LISTENER_TIMEOUT = 2.0
T = LISTENER_TIMEOUT


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


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
    #: The worker the process ran for (its parent, or its fork server's parent), as its start line says.
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
        self._runs: dict[tuple[str, int, int], Run] = {}
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
            event, task_id, attempt, pid, when, parent = line.decode().split()
            key = (task_id, int(attempt), int(pid))  # a prefork child may run a task again
            if event == "start":
                self._runs[key] = Run(task_id, int(attempt), int(pid), float(when), parent=int(parent))
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


def cut_short(journal: Journal) -> tuple[list[Run], list[float]]:
    """The runs a fault cut short, and for each that ran again the seconds from its death to the next start."""
    killed = [run for run in journal.runs() if run.killed]
    recovery = []
    for run in killed:
        later = [other.start for other in journal.runs(run.task_id) if other.start > run.start]
        if later and run.death is not None:
            recovery.append(min(later) - run.death)
    return killed, recovery


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


def kill_group(process: subprocess.Popen[str]) -> float:
    """kill -9 a worker and every process of its group; return when."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    return time.time()
