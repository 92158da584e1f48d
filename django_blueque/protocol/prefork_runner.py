"""Run tasks in long-lived child processes, for high rates of short tasks.

Each child is a listener of its own: it takes one task only when it is idle
(still no prefetch), runs it in-process, and beats for itself and its task
from a thread. The parent starts ``concurrency`` children and replaces one
that exits: after ``max_tasks_per_child`` tasks or once its resident memory
passes ``max_memory_mb`` it leaves, to give memory back. When a child dies
without finishing its task, the parent gives the task back at once (lost:
requeued up to the recovery limit), rather than waiting for the heartbeat to
expire. The parent also watches the other listeners of its queues and
recovers the tasks of dead ones, as the forking runner does.

A child whose task was taken over by another worker (it was cut off from
Redis for longer than the listener timeout) leaves at once; with
``lost_redis="stop"`` a child that has gone three quarters of the timeout
without a heartbeat leaves too, and its task goes back to pending.

Per-queue concurrency limits are not enforced in this mode (each child
serves every queue in priority order); use the forking runner for them.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from . import keys
from .defaults import DEFAULT_BLOCK_TIMEOUT, DEFAULT_LISTENER_TIMEOUT, DEFAULT_MAX_RECOVERIES, DEFAULT_MAX_RELEASES
from .errors import TaskNotOwned
from .forking_runner import CONTINUE, KILL_AFTER, STOP, check_options, describe_exit
from .identity import beating_listener_id, unique_node
from .liveness import beat_interval, reconnect_backoff_cap
from .proctitle import set_title
from .replies import strings
from .supervision import TRANSIENT, Backoff, Supervision, run_child
from .work import (
    EXIT_REDIS_LOST,
    EXIT_TAKEN_OVER,
    Heartbeat,
    TaskCallback,
    perform,
    stop_after_redis_lost,
    with_retries,
)

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)

#: A child's exit status when it leaves to be replaced, or because a burst is done.
RECYCLE, DRAINED = 0, 3


def resident_memory_mb() -> float:
    """This process's resident memory, in MiB (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class PreforkRunner:
    """Runs tasks in ``concurrency`` long-lived children, each a listener; see the module's doc."""

    def __init__(
        self,
        client: Client,
        queues: str | Sequence[str],
        task_callback: TaskCallback,
        concurrency: int = 1,
        *,
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        before_fork: Callable[[], None] | None = None,
        listener_timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
        lost_redis: str = CONTINUE,
        grace: float | None = None,
        max_tasks: int | None = None,
        max_tasks_per_child: int = 1000,
        max_memory_mb: float | None = None,
    ) -> None:
        check_options(concurrency, listener_timeout, lost_redis)
        self._client = client
        self._queues = (queues,) if isinstance(queues, str) else tuple(queues)
        self._callback = task_callback
        self._concurrency = concurrency
        self._before_fork = before_fork
        self._timeout = listener_timeout
        self._interval = beat_interval(listener_timeout)
        self._block = min(block_timeout, self._interval)
        self._max_recoveries = max_recoveries
        self._max_releases = max_releases
        self._redis_lost_after = stop_after_redis_lost(listener_timeout) if lost_redis == STOP else None
        # The node name of this worker's children: its own random token, so
        # the ids of its children are told from any other process's.
        self._node = unique_node()
        self._grace = grace
        # With max_tasks each child runs at most that many and is not replaced.
        self._respawn = max_tasks is None
        self._max_tasks_per_child = max_tasks_per_child if max_tasks is None else min(max_tasks, max_tasks_per_child)
        self._max_memory_mb = max_memory_mb
        self._children: dict[int, float | None] = {}  # pid -> when we asked it to stop
        self._announced = 0
        self._supervision = Supervision()
        self._child_stop = False

    def stop(self) -> None:
        self._supervision.stop()

    def run(self, *, burst: bool = False, install_signal_handlers: bool = True) -> int:
        """Run children until stopped (or, with ``burst``, until the queues are drained).

        Returns how many children were started.
        """
        self._supervision.open(install_signal_handlers=install_signal_handlers)
        started = 0
        # Children would crash, and be replaced, in a loop while Redis is not there yet.
        self._supervision.until_connected(self._client.redis.ping, "start", reconnect_backoff_cap(self._timeout))
        if self._supervision.stopping:  # stopped before Redis answered
            self._supervision.close()
            return started
        recovery = self._client.recovery(
            self._queues, timeout=self._timeout, max_recoveries=self._max_recoveries, max_releases=self._max_releases
        )
        next_recovery = 0.0
        try:
            while True:
                drained = self._reap()
                if not self._supervision.stopping and not (burst and drained):
                    while len(self._children) < self._concurrency and (self._respawn or started < self._concurrency):
                        self._spawn(burst)
                        started += 1
                if not self._children:
                    return started
                if self._supervision.stopping:
                    self._announce_stop()
                    self._stop_children()
                elif time.monotonic() >= next_recovery:
                    try:
                        recovery.poll()
                    except TRANSIENT as exc:
                        recovery.forget()
                        logger.warning("Redis unavailable for recovery (%s)", exc)
                    next_recovery = time.monotonic() + recovery.interval
                self._supervision.wait(min(1.0, max(next_recovery - time.monotonic(), 0.0)))
        finally:
            self.stop()
            while self._children:
                self._stop_children()
                self._reap()
                if self._children:
                    self._supervision.wait(0.5)
            self._supervision.close()

    def _announce_stop(self) -> None:
        """Say at once what a stop request does. From the loop: a signal handler must not log."""
        signals = self._supervision.signals
        if signals == self._announced:
            return
        self._announced = signals
        if signals == 1:
            grace = "" if self._grace is None else f"; after {self._grace:g}s they are stopped and go back to pending"
            logger.warning(
                "Stopping: each of %d child process(es) finishes the task it runs, if any%s; send SIGTERM (or "
                "Ctrl-C) again to put running tasks back in pending now",
                len(self._children),
                grace,
            )
        elif signals == 2:
            logger.warning("Stopping now: running tasks go back to pending")

    def _spawn(self, burst: bool) -> None:
        if self._before_fork is not None:
            self._before_fork()
        pid = os.fork()
        if pid == 0:
            self._child_main(burst)
        self._children[pid] = None

    def _reap(self) -> bool:
        """Reap exited children, giving back what they left; True if one found the queues drained."""
        drained = False
        while self._children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            stop_sent = self._children.pop(pid, None)
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            if code in (RECYCLE, DRAINED):
                drained = drained or code == DRAINED
                continue
            stopped_by_us = stop_sent is not None and self._supervision.stopping
            if code == EXIT_TAKEN_OVER:
                logger.warning("Child %d stopped its task: another worker took it over", pid)
            lost = (
                None
                if stopped_by_us or code in (EXIT_TAKEN_OVER, EXIT_REDIS_LOST)
                else f"process {pid} on {os.uname().nodename} {describe_exit(status)}"
            )
            self._give_back_tasks_of(beating_listener_id(self._node, pid), lost)
        return drained

    def _give_back_tasks_of(self, listener_id: str, lost: str | None) -> None:
        """Give back what an ended child left in its lists (a run of another worker's is left alone)."""

        def give_back() -> None:
            listener = self._client.get_listener(
                *self._queues,
                listener_id=listener_id,
                timeout=self._timeout,
                max_recoveries=self._max_recoveries,
                max_releases=self._max_releases,
            )
            for queue in self._queues:
                for task_id in strings(self._client.redis.lrange(keys.reserved(queue, listener_id), 0, -1)):
                    outcome = listener.give_back(self._client.get_task(task_id), lost=lost)
                    logger.warning("Task %s of ended child %s: %s", task_id, listener_id, outcome)
            listener.close()

        with_retries(give_back, f"giving back the tasks of child {listener_id}")

    def _stop_children(self) -> None:
        stopping_since = self._supervision.stopping_since
        assert stopping_since is not None
        now = time.monotonic()
        hard = self._supervision.signals >= 2 or (self._grace is not None and now - stopping_since >= self._grace)
        for pid, stop_sent in list(self._children.items()):
            if stop_sent is None:
                os.kill(pid, signal.SIGTERM)  # finish the current task, then leave
                self._children[pid] = now
            elif hard or now - stop_sent >= KILL_AFTER + (self._grace or 0):
                os.kill(pid, signal.SIGKILL)

    # The child.

    def _on_child_signal(self, signum: int, frame: FrameType | None) -> None:
        self._child_stop = True

    def _child_main(self, burst: bool) -> None:
        self._supervision.in_child()
        # SIGTERM from the parent: finish the task in hand, then leave.
        signal.signal(signal.SIGTERM, self._on_child_signal)
        run_child(lambda: self._child_loop(burst))

    def _child_loop(self, burst: bool) -> int:
        listener = self._client.get_listener(
            *self._queues,
            block_timeout=self._block,
            listener_id=beating_listener_id(self._node),
            heartbeat=True,
            timeout=self._timeout,
            max_recoveries=self._max_recoveries,
            max_releases=self._max_releases,
        )
        # An earlier child with our pid (so our id) may have left tasks in our lists.
        recovery = self._client.recovery(
            self._queues, timeout=self._timeout, max_recoveries=self._max_recoveries, max_releases=self._max_releases
        )
        for queue in self._queues:
            recovery.recover_listener(queue, listener.id)
        # The listener's own heartbeat would stop while a task runs in this
        # thread: the task's heartbeat thread beats for both.
        heartbeat = Heartbeat(self._interval, listener.beat, self._redis_lost_after)
        done = 0
        next_beat = 0.0
        backoff = Backoff(reconnect_backoff_cap(self._timeout), logger)
        try:
            while not self._child_stop and done < self._max_tasks_per_child:
                try:
                    if time.monotonic() >= next_beat:
                        listener.beat()
                        next_beat = time.monotonic() + self._interval
                    set_title(f"blueque-worker child: listening on {', '.join(self._queues)} ({done} done)")
                    task = listener.listen(timeout=0 if burst else self._block)
                    backoff.succeeded()
                except TRANSIENT as exc:
                    time.sleep(backoff.failed(exc))
                    continue
                if task is None:
                    if burst:
                        return DRAINED
                    continue
                set_title(f"blueque-task: {task.queue} {task.id}")
                try:
                    perform(self._client, task, self._callback, heartbeat=heartbeat)
                except TaskNotOwned as exc:
                    logger.warning("Not running task %s: %s", task.id, exc)
                done += 1
                if self._max_memory_mb is not None and resident_memory_mb() > self._max_memory_mb:
                    logger.info(
                        "Child %d leaves after %d tasks: memory above %s MiB", os.getpid(), done, self._max_memory_mb
                    )
                    break
        finally:
            listener.close()
        return RECYCLE
