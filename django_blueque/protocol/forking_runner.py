"""Run tasks in forked processes, one process per task, as Blueque 1.0 does.

The runner takes a task only when one of its slots is free (no prefetch) and
never times a task out. It keeps a heartbeat for its listener and for the
tasks its children run, and watches the other listeners of its queues to
recover the tasks of dead ones (see :mod:`.liveness`). A heartbeat that says
a child's task was taken over by another worker (this one was cut off from
Redis for longer than the listener timeout) stops that child at once. With
``lost_redis="stop"`` the runner stops its children itself once it has gone
three quarters of the timeout without a heartbeat, before anyone may take
their tasks over; they go back to pending when Redis answers again.

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

from . import liveness
from .defaults import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_LISTENER_TIMEOUT,
    DEFAULT_MAX_RECOVERIES,
    DEFAULT_MAX_RELEASES,
    MIN_LISTENER_TIMEOUT,
)
from .errors import TaskNotOwned
from .liveness import Run, beat_interval, reconnect_backoff_cap
from .processes import describe_status
from .proctitle import set_title
from .supervision import TRANSIENT, Backoff, Supervision, run_child
from .task import Task
from .work import (
    EXIT_REDIS_LOST,
    EXIT_TAKEN_OVER,
    Heartbeat,
    RedisWatchdog,
    TaskCallback,
    perform,
    stop_after_redis_lost,
)

if TYPE_CHECKING:
    from .client import Client
    from .listener import Listener

logger = logging.getLogger(__name__)

#: Seconds between SIGTERM and SIGKILL when stopping a child.
KILL_AFTER = 10.0


#: What a worker does with its running tasks when it cannot reach Redis.
CONTINUE, STOP = "continue", "stop"


@dataclass
class Child:
    """A forked process running one task, as the parent tracks it."""

    task: Task
    queue: str
    #: The attempt its start records (the task's count so far, plus one).
    attempt: int
    stop_sent_at: float | None = None
    #: Stopped because another worker took its task over, or because Redis was lost.
    taken_over: bool = False
    redis_lost: bool = False

    def run(self, pid: int) -> Run:
        return Run(self.task.id, pid, self.attempt)


def check_options(concurrency: int, listener_timeout: float, lost_redis: str) -> None:
    """Refuse options no runner can work with."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if listener_timeout < MIN_LISTENER_TIMEOUT:
        raise ValueError(f"listener_timeout must be at least {MIN_LISTENER_TIMEOUT:g}s, not {listener_timeout}")
    if lost_redis not in (CONTINUE, STOP):
        raise ValueError(f"lost_redis must be {CONTINUE!r} or {STOP!r}, not {lost_redis!r}")


def describe_exit(status: int) -> str:
    """How a task's process ended, for its ``lost`` field."""
    if os.WIFSIGNALED(status):
        hint = " (the kernel's OOM killer sends SIGKILL)" if os.WTERMSIG(status) == signal.SIGKILL else ""
        return describe_status(status) + hint
    return f"{describe_status(status)} without recording an outcome"


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
        max_releases: int = DEFAULT_MAX_RELEASES,
        lost_redis: str = CONTINUE,
        grace: float | None = None,
        max_tasks: int | None = None,
        prepare: Callable[[Task], None] | None = None,
    ) -> None:
        check_options(concurrency, listener_timeout, lost_redis)
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
        self._interval = beat_interval(listener_timeout)
        self._block = min(block_timeout, self._interval)
        self._max_recoveries = max_recoveries
        self._max_releases = max_releases
        self._redis_lost_after = stop_after_redis_lost(listener_timeout) if lost_redis == STOP else None
        self._grace = grace
        self._max_tasks = max_tasks
        self._children: dict[int, Child] = {}
        self._unsettled: list[tuple[Child, str | None]] = []
        self._supervision = Supervision()
        self.tasks_run = 0
        #: Tasks started here that went back to pending unfinished (a stop, Redis out of reach).
        self.tasks_released = 0
        self._announced = 0

    def stop(self) -> None:
        """Stop taking tasks; :meth:`run` returns once running tasks end. Signal-safe."""
        self._supervision.stop()

    def run(self, *, burst: bool = False, install_signal_handlers: bool = True) -> int:
        """Serve the queues until stopped; return how many tasks ran here (to an outcome, or lost).

        Tasks given back to pending unfinished (a stop) are not counted; see
        :attr:`tasks_released`. With ``burst``, return once no task is pending
        and none is running.
        """
        self._supervision.open(install_signal_handlers=install_signal_handlers)
        listener = self._supervision.until_connected(
            lambda: self._client.get_listener(
                *self._queues,
                block_timeout=self._block,
                heartbeat=True,
                timeout=self._timeout,
                max_recoveries=self._max_recoveries,
                max_releases=self._max_releases,
            ),
            "register the worker",
            reconnect_backoff_cap(self._timeout),
        )
        if listener is None:  # stopped before Redis answered
            self._supervision.close()
            return 0
        recovery = self._client.recovery(
            self._queues,
            timeout=self._timeout,
            max_recoveries=self._max_recoveries,
            max_releases=self._max_releases,
            exclude=[listener.id],
        )
        watchdog = None if self._redis_lost_after is None else RedisWatchdog(self._redis_lost_after, self._redis_lost)
        try:
            self._serve(listener, recovery, watchdog, burst)
        except BaseException:
            logger.exception("Runner stopping after an unexpected error")
            self.stop()
            raise
        finally:
            self._finish(listener, watchdog)
            if watchdog is not None:
                watchdog.stop()
            try:
                listener.close()
            except TRANSIENT:
                logger.warning("Could not deregister listener %s: Redis unavailable; recovery will", listener.id)
            self._supervision.close()
        if self._announced:
            logger.warning(
                "Stopped: %d task(s) ran, %d went back to pending",
                self.tasks_run - self.tasks_released,
                self.tasks_released,
            )
        return self.tasks_run - self.tasks_released

    def _announce_stop(self) -> None:
        """Say at once what a stop request does. From the loop: a signal handler must not log."""
        signals = self._supervision.signals
        if signals == self._announced:
            return
        self._announced = signals
        running = len(self._children)
        if signals == 1:
            if not running:
                logger.warning("Stopping: no task is running")
                return
            grace = "" if self._grace is None else f"; after {self._grace:g}s they are stopped and go back to pending"
            logger.warning(
                "Stopping: waiting for %d running task(s) to finish%s; send SIGTERM (or Ctrl-C) again to put them "
                "back in pending now",
                running,
                grace,
            )
        elif signals == 2:
            logger.warning("Stopping now: %d running task(s) go back to pending", running)

    def _beat(self, listener: Listener, watchdog: RedisWatchdog | None) -> None:
        """Beat for the listener and every child's run; stop the children whose task was taken over."""
        sent = time.monotonic()
        taken = set(listener.beat(child.run(pid) for pid, child in list(self._children.items())))
        if watchdog is not None:
            watchdog.beat_sent(sent)
        for pid, child in list(self._children.items()):
            if child.task.id in taken and not child.taken_over:
                logger.warning(
                    "Task %s (process %d) was taken over by another worker while this one was cut off; stopping it",
                    child.task.id,
                    pid,
                )
                child.taken_over = True
                os.kill(pid, signal.SIGKILL)

    def _redis_lost(self) -> None:
        """From the watchdog's thread: no heartbeat for too long; stop every child before it is taken over."""
        for pid, child in list(self._children.items()):
            if not child.redis_lost:
                logger.warning("Stopping task %s (process %d): Redis is out of reach", child.task.id, pid)
                child.redis_lost = True
                os.kill(pid, signal.SIGKILL)

    def _serve(
        self, listener: Listener, recovery: liveness.Recovery, watchdog: RedisWatchdog | None, burst: bool
    ) -> None:
        next_beat = next_recovery = 0.0
        backoff = Backoff(reconnect_backoff_cap(self._timeout), logger)
        while True:
            try:
                self._reap()
                self._settle(listener)
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(listener, watchdog)
                    next_beat = now + self._interval
                if self._supervision.stopping:
                    self._announce_stop()
                    if not self._children and not self._unsettled:
                        return
                    self._stop_children_past_grace()
                    self._supervision.wait(min(next_beat - now, 1.0))
                    continue
                if now >= next_recovery:
                    recovery.poll()
                    next_recovery = now + recovery.interval * random.uniform(0.8, 1.0)
                if self._max_tasks is not None and self.tasks_run >= self._max_tasks:
                    self.stop()
                    continue
                eligible = self._eligible_queues()
                if not eligible:
                    self._supervision.wait(min(next_beat, next_recovery) - now)
                    continue
                set_title(f"blueque-worker: listening on {', '.join(eligible)} ({len(self._children)} running)")
                task = listener.listen(timeout=0 if burst else min(self._block, recovery.interval), queues=eligible)
                backoff.succeeded()
                if task is not None:
                    self._fork(task)
                elif burst:
                    if not self._children:
                        return
                    self._supervision.wait(min(next_beat, next_recovery) - now)
            except TRANSIENT as exc:
                # Whatever was seen of others before the error no longer counts.
                recovery.forget()
                self._supervision.wait(backoff.failed(exc))

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
        # The reserve script checked that the count is a whole number.
        self._children[pid] = Child(task, task.queue or "", int(task.fields.get("attempt") or 0) + 1)
        self.tasks_run += 1
        logger.info("Task %s runs in process %d", task.id, pid)

    def _run_in_child(self, task: Task) -> None:
        self._supervision.in_child()
        set_title(f"blueque-task: {task.queue} {task.id}")

        owner = task.node or ""

        def beat(runs: list[Run]) -> list[str]:
            return liveness.beat(self._client.scripts, beater=None, owner=owner, runs=runs)[1]

        heartbeat = Heartbeat(self._interval, beat, self._redis_lost_after)

        def body() -> int:
            try:
                perform(self._client, task, self._callback, heartbeat=heartbeat)
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
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            if child is None or code == 0:
                continue
            if child.taken_over or code == EXIT_TAKEN_OVER:
                logger.warning("Task %s: its run here was stopped; another worker runs it", child.task.id)
                continue
            if child.redis_lost or code == EXIT_REDIS_LOST:
                self._unsettled.append((child, None))  # back to pending once Redis answers
            elif self._supervision.stopping and (
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
            outcome = listener.give_back(child.task, lost=lost, attempt=child.attempt)
            logger.info("Task %s %s", child.task.id, outcome)
            if outcome == "released":
                self.tasks_released += 1
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

    def _finish(self, listener: Listener, watchdog: RedisWatchdog | None) -> None:
        """Wait for every child and settle its task, whatever stopped the loop."""
        self.stop()
        while self._children or self._unsettled:
            try:
                self._reap()
                self._settle(listener)
                if self._children:
                    self._announce_stop()
                    self._beat(listener, watchdog)
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
    max_releases: int = DEFAULT_MAX_RELEASES,
    lost_redis: str = CONTINUE,
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
        max_releases=max_releases,
        lost_redis=lost_redis,
        grace=grace,
        max_tasks=max_tasks,
    )
    return runner.run(burst=burst, install_signal_handlers=install_signal_handlers)
