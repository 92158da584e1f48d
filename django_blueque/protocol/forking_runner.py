"""Run tasks in forked processes, one process per task, as Blueque 1.0 does.

The runner takes a task only when one of its slots is free (no prefetch) and
never times a task out. It keeps a heartbeat for its listener and for the
tasks its children run, and now and then recovers the tasks of dead
listeners on its queues (see :mod:`.liveness`).

Stopping: SIGTERM or SIGINT stops taking tasks and waits for the running
ones; with ``grace``, those still running after that many seconds are
stopped and put back in pending at once. A second signal stops them at once.
Children ignore SIGINT, so Ctrl-C in a terminal, which reaches the whole
process group, stops the runner gracefully.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import TaskNotOwned
from .listener import DEFAULT_BLOCK_TIMEOUT, DEFAULT_LISTENER_TIMEOUT, DEFAULT_MAX_RECOVERIES
from .proctitle import set_title
from .supervision import Supervision, run_child
from .task import Task
from .work import MAX_BACKOFF, TRANSIENT, TaskCallback, perform

if TYPE_CHECKING:
    from .client import Client
    from .listener import Listener

logger = logging.getLogger(__name__)

#: Seconds between SIGTERM and SIGKILL when stopping a child.
KILL_AFTER = 10.0


@dataclass
class Child:
    task: Task
    queue: str
    stop_sent_at: float | None = None


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        hint = " (the kernel's OOM killer sends SIGKILL)" if number == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with status {os.WEXITSTATUS(status)} without recording an outcome"


class ForkingRunner:
    """Listens on one or more queues, in priority order, and runs each task in a forked child."""

    def __init__(
        self,
        client: Client,
        queues: str | Sequence[str],
        task_callback: TaskCallback,
        concurrency: int = 1,
        *,
        queue_limits: dict[str, int] | None = None,
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        before_fork: Callable[[], None] | None = None,
        listener_timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        grace: float | None = None,
        max_tasks: int | None = None,
        prepare: Callable[[Task], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if listener_timeout <= 0:
            raise ValueError(f"listener_timeout must be positive, not {listener_timeout}")
        self._client = client
        self._queues = (queues,) if isinstance(queues, str) else tuple(queues)
        self._callback = task_callback
        self._concurrency = concurrency
        self._limits = dict(queue_limits or {})
        self._before_fork = before_fork
        # Run in this process before forking for a task, e.g. to import its
        # code once here rather than in every child.
        self._prepare = prepare
        self._timeout = listener_timeout
        self._interval = listener_timeout / 4
        self._block = min(block_timeout, self._interval)
        self._max_recoveries = max_recoveries
        self._grace = grace
        self._max_tasks = max_tasks
        self._children: dict[int, Child] = {}
        self._unsettled: list[tuple[Child, str | None]] = []
        self._supervision = Supervision()
        self.tasks_run = 0

    def stop(self) -> None:
        """Stop taking tasks; :meth:`run` returns once running tasks end. Signal-safe."""
        self._supervision.stop()

    def run(self, *, burst: bool = False, install_signal_handlers: bool = True) -> int:
        """Serve the queues until stopped; return how many tasks were started.

        With ``burst``, return once no task is pending and none is running.
        """
        self._supervision.open(install_signal_handlers=install_signal_handlers)
        listener = self._client.get_listener(
            *self._queues, block_timeout=self._block, heartbeat=True, max_recoveries=self._max_recoveries
        )
        try:
            self._recover_earlier_self(listener)
            self._serve(listener, burst)
        except BaseException:
            logger.exception("Runner stopping after an unexpected error")
            self.stop()
            raise
        finally:
            self._finish(listener)
            listener.close()
            self._supervision.close()
        return self.tasks_run

    def _recover_earlier_self(self, listener: Listener) -> None:
        # A process that had our pid before us (and so our listener id) may
        # have left tasks in our reserved lists: deal with them first.
        for queue in self._queues:
            self._client.recover_listener(
                queue, listener.id, timeout=self._timeout, max_recoveries=self._max_recoveries, force=True
            )

    def _serve(self, listener: Listener, burst: bool) -> None:
        next_beat = next_recovery = 0.0
        backoff = 0.0
        while True:
            try:
                self._reap()
                self._settle(listener)
                now = time.monotonic()
                if now >= next_beat:
                    listener.beat(child.task.id for child in self._children.values())
                    next_beat = now + self._interval
                if self._supervision.stopping:
                    if not self._children and not self._unsettled:
                        return
                    self._stop_children_past_grace()
                    self._supervision.wait(min(next_beat - now, 1.0))
                    continue
                if now >= next_recovery:
                    self._client.recover(
                        self._queues, timeout=self._timeout, max_recoveries=self._max_recoveries, exclude=[listener.id]
                    )
                    next_recovery = now + self._timeout / 2 * random.uniform(0.75, 1.25)
                if self._max_tasks is not None and self.tasks_run >= self._max_tasks:
                    self.stop()
                    continue
                eligible = self._eligible_queues()
                if not eligible:
                    self._supervision.wait(next_beat - now)
                    continue
                set_title(f"blueque-worker: listening on {', '.join(eligible)} ({len(self._children)} running)")
                task = listener.listen(timeout=0 if burst else self._block, queues=eligible)
                backoff = 0.0
                if task is not None:
                    self._fork(task)
                elif burst:
                    if not self._children:
                        return
                    self._supervision.wait(next_beat - now)
            except TRANSIENT as exc:
                backoff = min(backoff * 2 or 0.1, MAX_BACKOFF)
                logger.warning("Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                self._supervision.wait(backoff)

    def _eligible_queues(self) -> list[str]:
        if len(self._children) >= self._concurrency:
            return []
        running: dict[str, int] = {}
        for child in self._children.values():
            running[child.queue] = running.get(child.queue, 0) + 1
        return [q for q in self._queues if running.get(q, 0) < self._limits.get(q, self._concurrency)]

    def _fork(self, task: Task) -> None:
        if self._prepare is not None:
            try:
                self._prepare(task)
            except Exception:  # the child will meet the same error and record it
                logger.debug("Preparing task %s failed", task.id, exc_info=True)
        if self._before_fork is not None:
            self._before_fork()
        pid = os.fork()
        if pid == 0:
            self._run_in_child(task)
        self._children[pid] = Child(task, task.queue or "")
        self.tasks_run += 1
        logger.info("Task %s runs in process %d", task.id, pid)

    def _run_in_child(self, task: Task) -> None:
        self._supervision.in_child()
        set_title(f"blueque-task: {task.queue} {task.id}")

        def body() -> int:
            try:
                perform(self._client, task, self._callback, heartbeat_interval=self._interval)
            except TaskNotOwned as exc:
                logger.warning("Not running task %s: %s", task.id, exc)
            return 0

        run_child(body)

    def _reap(self) -> None:
        while self._children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            child = self._children.pop(pid, None)
            if child is None or (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                continue
            if self._supervision.stopping and (
                child.stop_sent_at is not None or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
            ):
                # Stopped by us or with us (a SIGTERM to the whole group): not its fault.
                self._unsettled.append((child, None))
            else:
                reason = f"process {pid} on {os.uname().nodename} {describe_exit(status)}"
                logger.error("Task %s: %s", child.task.id, reason)
                self._unsettled.append((child, reason))

    def _settle(self, listener: Listener) -> None:
        """Give back the tasks of children that ended without an outcome (kept until Redis takes them)."""
        while self._unsettled:
            child, lost = self._unsettled[0]
            outcome = listener.give_back(child.task, lost=lost)
            logger.info("Task %s %s", child.task.id, outcome)
            self._unsettled.pop(0)

    def _stop_children_past_grace(self) -> None:
        stopping_since = self._supervision.stopping_since
        assert stopping_since is not None
        now = time.monotonic()
        past_grace = self._grace is not None and now - stopping_since >= self._grace
        if not (past_grace or self._supervision.signals >= 2):
            return
        for pid, child in self._children.items():
            if child.stop_sent_at is None:
                logger.warning("Stopping task %s (process %d); it goes back to pending", child.task.id, pid)
                child.stop_sent_at = now
                os.kill(pid, signal.SIGTERM)
            elif now - child.stop_sent_at >= KILL_AFTER:
                os.kill(pid, signal.SIGKILL)

    def _finish(self, listener: Listener) -> None:
        """Wait for every child and settle its task, whatever stopped the loop."""
        self.stop()
        while self._children or self._unsettled:
            try:
                self._reap()
                self._settle(listener)
                if self._children:
                    listener.beat(child.task.id for child in self._children.values())
                    self._stop_children_past_grace()
                    self._supervision.wait(min(self._interval, 1.0))
            except TRANSIENT as exc:
                logger.warning("Redis unavailable while stopping (%s)", exc)
                self._supervision.wait(1.0)


def run(
    client: Client,
    queue: str | Sequence[str],
    task_callback: TaskCallback,
    concurrency: int = 1,
    *,
    burst: bool = False,
    install_signal_handlers: bool = True,
    block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
    before_fork: Callable[[], None] | None = None,
    listener_timeout: float = DEFAULT_LISTENER_TIMEOUT,
    max_recoveries: int = DEFAULT_MAX_RECOVERIES,
    grace: float | None = None,
    max_tasks: int | None = None,
) -> int:
    """Serve ``queue`` with ``concurrency`` forked processes, as in Blueque 1.0.

    ``task_callback(task)`` runs in the child and returns the result string
    (or ``None`` for an empty one); an exception fails the task with its
    message. With ``burst``, return once the queue is drained. Returns the
    number of tasks run.
    """
    runner = ForkingRunner(
        client,
        queue,
        task_callback,
        concurrency,
        block_timeout=block_timeout,
        before_fork=before_fork,
        listener_timeout=listener_timeout,
        max_recoveries=max_recoveries,
        grace=grace,
        max_tasks=max_tasks,
    )
    return runner.run(burst=burst, install_signal_handlers=install_signal_handlers)
