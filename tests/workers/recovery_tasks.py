"""Tasks for the recovery tests. Each run is recorded outside Redis, so the
record survives whatever Redis goes through: a line per event appended to
the file named by ``BLUEQUE_TEST_JOURNAL``,

    <event> <task id> <attempt> <pid> <time.time()> <worker pid>

with event ``start`` or ``end`` (a run killed midway has no ``end``). Each
line is one ``write`` on a file opened with ``O_APPEND``, so lines from
processes writing at once do not mix."""

from __future__ import annotations

import os
import time
from pathlib import Path

from django_blueque.compat import TaskContext, task

JOURNAL_ENV = "BLUEQUE_TEST_JOURNAL"


def _attempt(context: TaskContext) -> int:
    # Django's TaskContext has ``attempt`` (the task result's ``attempts``) in
    # recent versions; older ones only the result.
    attempt = getattr(context, "attempt", None)
    if attempt is None:
        attempt = context.task_result.attempts
    return int(attempt)


def _worker_pid() -> int:
    """The worker this process runs for: its parent, or its parent's parent when a fork server forked it."""
    parent = os.getppid()
    try:
        if Path(f"/proc/{parent}/comm").read_text().startswith("blueque-fork"):
            return int(Path(f"/proc/{parent}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return parent


def record(context: TaskContext, event: str) -> None:
    # The worker's pid is read here: a watcher polling /proc misses a process
    # killed within its polling period (with its worker, say).
    line = f"{event} {context.task_result.id} {_attempt(context)} {os.getpid()} {time.time()} {_worker_pid()}\n"
    fd = os.open(os.environ[JOURNAL_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@task(takes_context=True)
def run_for(context: TaskContext, seconds: float) -> float:
    """Sleep ``seconds`` without touching Redis, recording the run."""
    record(context, "start")
    time.sleep(seconds)
    record(context, "end")
    return seconds
