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
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from . import liveness
from .errors import TaskNotOwned
from .fork_server import TITLE as FORK_SERVER_TITLE
from .fork_server import ForkServer, ForkServerGone, is_subreaper, set_subreaper
from .fork_server import available as fork_server_available
from .fork_server import serve as serve_forks
from .identity import hostname
from .liveness import Run
from .processes import describe_status, process_token
from .proctitle import set_title
from .runner import PREFORK_ONLY, Runner
from .supervision import TRANSIENT, Backoff, Escalation, Interrupted, reap_exited, run_child
from .task import Task
from .task_pipes import KEEPALIVE, RECORDED, REFUSE, ChildPipes, ParentPipes
from .work import (
    EXIT_REDIS_LOST,
    EXIT_TAKEN_OVER,
    Heartbeat,
    RedisWatchdog,
    TaskCallback,
    TaskHeartbeat,
    log_outcome,
    outcome_of,
    record,
    write_outcome,
)

if TYPE_CHECKING:
    from .client import Client
    from .listener import Listener
    from .processor import Processor

logger = logging.getLogger(__name__)

#: How long a child that has sent its outcome waits for its parent to record
#: it before recording it itself (the parent may be blocked waiting for the
#: next task, which it cannot leave early).
RECORD_WAIT = 0.05

#: A fork server that died this many times is not started again: the main
#: process forks for itself from then on.
FORK_SERVER_RESTARTS = 3


class Forked(NamedTuple):
    """A process just forked, waiting to be told which task to run."""

    pid: int
    pipes: ChildPipes
    #: Its :func:`~.processes.process_token`, read once it is forked (off the path of a task's start).
    token: str


@dataclass
class Child:
    """A forked process running one task, as the parent tracks it."""

    task: Task
    queue: str
    #: The attempt its start records (the task's count so far, plus one).
    attempt: int
    pipes: ChildPipes = field(repr=False)
    token: str = ""
    #: Set once this process has recorded the task's start for the child.
    processor: Processor | None = None
    #: ``(queue, id)`` of a task taken but not reserved yet: it is reserved
    #: and started in one step once the child exists (its pid is recorded).
    taken: tuple[str, str] | None = None
    #: Told not to run: the task was no longer this worker's.
    refused: bool = False
    #: The outcome the child reported is recorded.
    recorded: bool = False
    #: Stopped because another worker took its task over, or because Redis was lost.
    taken_over: bool = False
    redis_lost: bool = False

    @property
    def unrecorded(self) -> bool:
        """Started, and its outcome not recorded here (yet)."""
        return self.processor is not None and not self.recorded

    @property
    def reporting(self) -> bool:
        """Its outcome may still come through its report pipe (which is worth waiting on)."""
        return self.unrecorded and self.pipes.outcome is None and not self.pipes.closed

    def run(self, pid: int) -> Run | None:
        """The run a heartbeat vouches for; None for a task taken but not started yet (nothing to vouch for)."""
        return None if self.taken is not None and self.processor is None else Run(self.task.id, pid, self.attempt)


def describe_exit(status: int) -> str:
    """How a task's process ended, for its ``lost`` field."""
    if os.WIFSIGNALED(status):
        hint = " (the kernel's OOM killer sends SIGKILL)" if os.WTERMSIG(status) == signal.SIGKILL else ""
        return describe_status(status) + hint
    return f"{describe_status(status)} without recording an outcome"


class ForkingRunner(Runner):
    """Listens on one or more queues, in priority order, and runs each task in a forked child.

    Takes :class:`~.runner.WorkerOptions` as keywords (``queue_limits`` caps
    the tasks of a queue run at once). ``prepare(task)`` runs for each task
    once its fields are read (just after the fork, as a task is taken before
    they are), in this process and in its fork server, e.g. to import its
    code once, for the children to come, rather than in every child.

    This process does its children's Redis work (see :mod:`.task_pipes`):
    it takes a task, reserves and starts it in one script for a child (one
    forked ahead of its task while a slot is free, else a new one), beats
    for it, and records the outcome the child sends back. On Linux the
    children are forked by a fork server (see :mod:`.fork_server`), so that
    this process, which keeps running while they do, pays for no fork;
    ``fork_server=False`` forks them here.
    """

    other_mode_options = PREFORK_ONLY

    def __init__(
        self,
        client: Client,
        queues: str | Sequence[str],
        task_callback: TaskCallback,
        concurrency: int = 1,
        *,
        before_fork: Callable[[], None] | None = None,
        prepare: Callable[[Task], None] | None = None,
        fork_server: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(client, queues, task_callback, concurrency, before_fork=before_fork, **options)
        self._prepare = prepare
        #: Whether children come from a fork server (None: where the platform has one).
        self._use_fork_server = fork_server_available() if fork_server is None else fork_server
        self._fork_server: ForkServer | None = None
        self._fork_server_deaths = 0
        #: Whether this process was a subreaper before its first fork server (then it stays one).
        self._was_subreaper: bool | None = None
        self._children: dict[int, Child] = {}
        self._unsettled: list[tuple[Child, str | None]] = []
        #: Ended after reporting an outcome that is not recorded yet, by pid.
        self._reported: list[tuple[int, Child]] = []
        #: A process forked ahead of its task, while a slot is free, so that
        #: the next task starts without waiting for a fork: its pid and pipes.
        self._spare: Forked | None = None
        self._escalation = Escalation()
        #: Tasks forked for, for ``max_tasks``.
        self._forked = 0

    def _serve(self, burst: bool) -> None:
        options = self.options
        listener = self._supervision.until_connected(
            lambda: self._client.get_listener(
                *self._queues,
                block_timeout=options.block,
                heartbeat=True,
                timeout=options.listener_timeout,
                max_recoveries=options.max_recoveries,
                max_releases=options.max_releases,
            ),
            "register the worker",
            options.backoff_cap,
        )
        if listener is None:  # stopped before Redis answered
            return
        recovery = self._client.recovery(
            self._queues,
            timeout=options.listener_timeout,
            max_recoveries=options.max_recoveries,
            max_releases=options.max_releases,
            exclude=[listener.id],
        )
        lost_after = options.redis_lost_after
        watchdog = None if lost_after is None else RedisWatchdog(lost_after, self._redis_lost)
        try:
            self._listen(listener, recovery, watchdog, burst)
        except BaseException:
            logger.exception("Runner stopping after an unexpected error")
            self.stop()
            raise
        finally:
            try:
                self._finish(listener, watchdog)
            finally:
                self._stop_fork_server()
            if watchdog is not None:
                watchdog.stop()
            close(listener)

    def _announce_stop(self) -> None:
        """Say at once what a stop request does."""
        signals = self._new_stop_request()
        running = len(self._children)
        if signals == 1:
            if not running:
                logger.warning("Stopping: no task is running")
                return
            logger.warning(
                "Stopping: waiting for %d running task(s) to finish%s; send SIGTERM (or Ctrl-C) again to put them "
                "back in pending now",
                running,
                self._grace_note(),
            )
        elif signals == 2:
            logger.warning("Stopping now: %d running task(s) go back to pending", running)

    def _beat(self, listener: Listener, watchdog: RedisWatchdog | None) -> None:
        """Beat for the listener and every child's run; stop the children whose task was taken over."""
        sent = time.monotonic()
        every = [*self._children.items(), *self._reported]
        taken = set(listener.beat(run for pid, child in every if (run := child.run(pid)) is not None))
        if watchdog is not None:
            watchdog.beat_sent(sent)
        for child in self._children.values():
            if child.processor is not None:  # the others have not been told to run yet
                child.pipes.send(KEEPALIVE)
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

    def _listen(
        self, listener: Listener, recovery: liveness.Recovery, watchdog: RedisWatchdog | None, burst: bool
    ) -> None:
        interval, block, max_tasks = self.options.beat_interval, self.options.block, self.options.max_tasks
        next_beat = next_recovery = 0.0
        backoff = Backoff(self.options.backoff_cap, logger)
        while True:
            try:
                self._reap()
                self._start_waiting(listener)
                self._record_reports()
                self._settle(listener)
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(listener, watchdog)
                    next_beat = now + interval
                if self._supervision.stopping:
                    self._dismiss_spare()
                    self._announce_stop()
                    if not self._children and not self._unsettled and not self._reported:
                        return
                    self._stop_children_past_grace()
                    self._wait(min(next_beat - now, 1.0))
                    continue
                if now >= next_recovery:
                    recovery.poll()
                    listener.give_back_strays(
                        [child.task.id for child in self._children.values()]
                        + [child.task.id for child, _ in self._unsettled]
                        + [child.task.id for _, child in self._reported]
                    )
                    next_recovery = now + recovery.interval * random.uniform(0.8, 1.0)
                if max_tasks is not None and self._forked >= max_tasks:
                    self.stop()
                    continue
                eligible = self._eligible_queues()
                if self._spare is None and not burst:
                    # Forked ahead: while every slot is busy (the main process would only
                    # wait), or while one is free, so that the next task does not wait for
                    # a fork. It runs nothing until told which task.
                    self._spare = self._new_process()
                if not eligible:
                    self._wait(min(next_beat, next_recovery) - now)
                    continue
                set_title(f"blueque-worker: listening on {', '.join(eligible)} ({len(self._children)} running)")
                # Back in time for the next heartbeat: the children hear from this process after each.
                timeout = 0 if burst else max(min(block, recovery.interval, next_beat - now), 0.0)
                task = None
                try:
                    with self._supervision.interruptible():
                        if listener.settled:
                            taken = listener.take(timeout, eligible)
                        else:  # a reply was lost: listen() repairs that first
                            task = listener.listen(timeout=timeout, queues=eligible)
                            taken = None if task is None else (task.queue or "", task.id)
                except Interrupted:
                    listener.unsettle()  # the stop's give-back repairs what the cut left
                    continue
                if task is not None:
                    self._fork(listener, task=task)
                elif taken is not None:
                    self._fork(listener, taken=taken)
                backoff.succeeded()
                if taken is None and burst:
                    if not self._children and not self._reported:
                        return
                    self._wait(min(next_beat, next_recovery) - now)
            except TRANSIENT as exc:
                # Whatever was seen of others before the error no longer counts.
                recovery.forget()
                self._supervision.wait(backoff.failed(exc))

    def _wait(self, timeout: float) -> None:
        """Sleep until a signal, a child's report, word from the fork server, or ``timeout``."""
        also = [child.pipes.report for child in self._children.values() if child.reporting]
        if self._fork_server is not None:
            also.append(self._fork_server.fileno())
        self._supervision.wait(timeout, also)

    def _eligible_queues(self) -> list[str]:
        concurrency, limits = self.options.concurrency, self.options.queue_limits
        # A child whose outcome is recorded holds no slot: its task is done, and its process
        # is only exiting (the next task need not wait for the exit and the reaping).
        busy = [child for child in self._children.values() if not child.recorded]
        if len(busy) >= concurrency:
            return []
        running: dict[str, int] = {}
        for child in busy:
            running[child.queue] = running.get(child.queue, 0) + 1
        return [q for q in self._queues if running.get(q, 0) < limits.get(q, concurrency)]

    def _fork(self, listener: Listener, *, task: Task | None = None, taken: tuple[str, str] | None = None) -> None:
        """Fork a child for a task ``listen()`` reserved, or for one ``take()`` moved (started once forked)."""
        if task is not None:
            self._prepare_for(task)
        else:
            assert taken is not None
            task = Task(taken[1], {"queue": taken[0], "node": listener.id})
        if self._spare is not None:
            (pid, pipes, token), self._spare = self._spare, None
        else:
            pid, pipes, token = self._new_process()
        # The reserve script checked that the count is a whole number.
        child = Child(task, task.queue or "", int(task.fields.get("attempt") or 0) + 1, pipes, token, taken=taken)
        self._children[pid] = child
        self._forked += 1
        logger.info("Task %s runs in process %d", task.id, pid)
        self._start(listener, pid, child)

    def _new_process(self) -> Forked:
        """Fork a process that waits to be told which task to run (see :mod:`.task_pipes`)."""
        pipes = ChildPipes()
        server = self._started_fork_server()
        if server is not None:
            try:
                pid, token = server.fork(pipes.child_ends())
            except ForkServerGone as exc:
                self._lose_fork_server(str(exc))
                # Its process may have been forked all the same: these pipes are its, and
                # once closed here they tell it to leave without running anything.
                pipes.discard()
                pipes = ChildPipes()
            else:
                pipes.in_parent()
                return Forked(pid, pipes, token)
        if self._before_fork is not None:
            self._before_fork()
        pid = os.fork()
        if pid == 0:
            for sibling in self._children.values():
                sibling.pipes.close()
            if self._spare is not None:
                self._spare.pipes.close()
            self._run_in_child(pipes.in_child())
        pipes.in_parent()
        return Forked(pid, pipes, process_token(pid))

    def _dismiss_spare(self) -> None:
        """Let the spare process go: it leaves without running anything."""
        if self._spare is not None:
            pipes, self._spare = self._spare.pipes, None
            pipes.send(REFUSE)
            pipes.close()

    def _prepare_for(self, task: Task) -> None:
        if self._prepare is not None:
            try:
                self._prepare(task)
            except Exception:  # the child will meet the same error and record it
                logger.debug("Preparing task %s failed", task.id, exc_info=True)
            if self._fork_server is not None:
                try:
                    self._fork_server.prepare(task.id, task.fields)
                except ForkServerGone as exc:
                    self._lose_fork_server(str(exc))

    def _started_fork_server(self) -> ForkServer | None:
        """The fork server, started if there is none yet; None where this process forks for itself."""
        if self._fork_server is not None or not self._use_fork_server:
            return self._fork_server
        if self._fork_server_deaths >= FORK_SERVER_RESTARTS:
            logger.warning("The fork server died %d times; this process forks for itself", self._fork_server_deaths)
            self._use_fork_server = False
            return None
        # Its orphans must come here, with their exit statuses, if it dies.
        if self._was_subreaper is None:
            self._was_subreaper = is_subreaper()
        if not set_subreaper(True):
            logger.warning("Cannot be the reaper of a fork server's processes; this process forks for itself")
            self._use_fork_server = False
            return None
        if self._before_fork is not None:
            self._before_fork()
        self._fork_server = ForkServer.start(self._serve_forks)
        logger.debug("Fork server started: process %d", self._fork_server.pid)
        return self._fork_server

    def _serve_forks(self, connection: socket.socket) -> NoReturn:
        """In the fork server, forked from this process: let go of its state, then only fork."""
        self._supervision.in_child()
        self._client.close_inherited_connections()
        for child in self._children.values():
            child.pipes.close()
        if self._spare is not None:
            self._spare.pipes.close()
        # The copies here are stale: a process forked from here must not close their fds again.
        self._children, self._spare, self._reported, self._unsettled = {}, None, [], []
        set_title(FORK_SERVER_TITLE)

        def prepare(task_id: str, fields: dict[str, str]) -> None:
            if self._prepare is not None:
                self._prepare(Task(task_id, fields))

        run_child(
            lambda: serve_forks(
                connection,
                lambda control, report: self._run_in_child(ParentPipes(control, report)),
                before_fork=self._before_fork,
                prepare=prepare,
            )
        )

    def _lose_fork_server(self, why: str) -> None:
        """Let a dead or stuck fork server go; its processes are this one's to reap now."""
        if self._fork_server is None:
            return
        logger.warning("The fork server (process %d) is lost: %s", self._fork_server.pid, why)
        self._fork_server.kill()
        self._fork_server = None
        self._fork_server_deaths += 1

    def _stop_fork_server(self) -> None:
        """Once every child is reaped: stop the fork server, and stop being a subreaper if this process was not."""
        if self._fork_server is not None:
            server, self._fork_server = self._fork_server, None
            server.stop()
        if self._was_subreaper is False:
            set_subreaper(False)

    def _start(self, listener: Listener, pid: int, child: Child) -> None:
        """Record the start of the child's task for it, then let it run (or tell it not to)."""
        if child.taken is not None:
            started = listener.start_taken(child.taken, pid, child.token or process_token(pid))
            if started is None:
                child.refused = True
                child.pipes.send(REFUSE)
                return
            task, attempt = started
            child.pipes.go(attempt, task.id, task.fields)  # first: the child waits for it
            processor = self._client.get_processor(task)
            processor.adopt(pid, attempt)
            child.task, child.processor, child.attempt = task, processor, attempt
            self._prepare_for(task)  # for the children to come
            return
        processor = self._client.get_processor(child.task)
        try:
            processor.start(pid)
        except TaskNotOwned as exc:
            logger.warning("Not running task %s: %s", child.task.id, exc)
            child.refused = True
            child.pipes.send(REFUSE)
            return
        assert processor.attempt is not None
        child.processor, child.attempt = processor, processor.attempt
        child.pipes.go(child.attempt, child.task.id, child.task.fields)

    def _start_waiting(self, listener: Listener) -> None:
        """Start the tasks whose start Redis did not take (it was out of reach)."""
        for pid, child in list(self._children.items()):
            if child.processor is None and not child.refused:
                self._start(listener, pid, child)

    def _record_reports(self) -> None:
        """Record the outcomes children have reported, and tell each child."""
        for child in self._children.values():
            if child.unrecorded and (outcome := child.pipes.read_report()) is not None:
                assert child.processor is not None
                log_outcome(child.task.id, outcome, write_outcome(child.processor, outcome))
                child.recorded = True
                child.pipes.send(RECORDED)
        while self._reported:
            _, child = self._reported[0]
            assert child.processor is not None and child.pipes.outcome is not None
            log_outcome(child.task.id, child.pipes.outcome, write_outcome(child.processor, child.pipes.outcome))
            self._reported.pop(0)
            self.tasks_run += 1

    def _run_in_child(self, pipes: ParentPipes) -> NoReturn:
        self._supervision.in_child()
        self._client.close_inherited_connections()
        set_title("blueque-task: waiting for a task")
        options = self.options
        pipes.prepare_watch()

        def body() -> int:
            go = pipes.wait_for_go()
            if go is None:  # not to run (no longer this worker's task, a stop), or the worker is gone
                return 0
            attempt, task_id, fields = go
            task = Task(task_id, fields)
            set_title(f"blueque-task: {task.queue} {task.id}")
            owner = task.node or ""

            def beat(runs: list[Run]) -> list[str]:
                return liveness.beat(self._client.scripts, beater=None, owner=owner, runs=runs)[1]

            heartbeat = Heartbeat(options.beat_interval, beat, options.redis_lost_after)
            run = Run(task.id, os.getpid(), attempt)
            beating: list[TaskHeartbeat] = []

            def on_own() -> None:
                logger.warning("Task %s beats for itself: %s", task.id, pipes.alone_because)
                beating.append(TaskHeartbeat(heartbeat, run, at_once=True))

            pipes.watch(2 * options.beat_interval, on_own)
            outcome = outcome_of(task, self._callback, own_interrupts=True)
            if not pipes.alone and pipes.report(outcome, RECORD_WAIT):
                return 0
            processor = self._client.get_processor(task)
            processor.adopt(os.getpid(), attempt)
            record(processor, outcome)
            for beater in beating:
                beater.stop()
            return 0

        run_child(body)

    def _reap(self) -> None:
        # This process's own children: the fork server, children it forked itself, and
        # those of a fork server that died (this process is their reaper then).
        for pid, status in reap_exited():
            if self._fork_server is not None and pid == self._fork_server.pid:
                self._lose_fork_server(f"it ended: {describe_status(status)}")
                continue
            self._ended(pid, status)
        if self._fork_server is not None:
            try:
                for pid, status in self._fork_server.exited():
                    self._ended(pid, status)
                    self._fork_server.acknowledge(pid)  # forgotten here: the pid may be reused
            except ForkServerGone as exc:
                self._lose_fork_server(str(exc))

    def _ended(self, pid: int, status: int) -> None:
        """A process forked for a task has ended (one this process does not know is ignored)."""
        if self._spare is not None and self._spare.pid == pid:
            self._spare.pipes.close()
            self._spare = None
            return
        child = self._children.pop(pid, None)
        asked_to_stop = self._escalation.forget(pid)
        if child is None:
            return
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        reported = code != 0 and child.unrecorded and child.pipes.read_report() is not None
        child.pipes.close()
        if reported and not child.taken_over:
            self._reported.append((pid, child))  # ended before its outcome was recorded: record it
            return
        if code == 0:
            self.tasks_run += 1
            return
        if child.taken_over or code == EXIT_TAKEN_OVER:
            logger.warning("Task %s: its run here was stopped; another worker runs it", child.task.id)
            self.tasks_run += 1
            return
        if child.redis_lost or code == EXIT_REDIS_LOST:
            self._unsettled.append((child, None))  # back to pending once Redis answers
        elif self._supervision.stopping and (
            asked_to_stop or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
        ):
            # Stopped by us or with us (a SIGTERM to the whole group): not its fault.
            self._unsettled.append((child, None))
        else:
            reason = f"process {pid} on {hostname()} {describe_exit(status)}"
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
            else:
                self.tasks_run += 1
            self._unsettled.pop(0)

    def _stop_children_past_grace(self) -> None:
        if not self._supervision.past_grace(self.options.grace):
            return
        for pid, child in self._children.items():
            if self._escalation.ask(pid):
                logger.warning("Stopping task %s (process %d); it goes back to pending", child.task.id, pid)
        self._escalation.kill_overdue()

    def _finish(self, listener: Listener, watchdog: RedisWatchdog | None) -> None:
        """Wait for every child and settle its task, whatever stopped the loop."""
        self.stop()
        self._dismiss_spare()
        while self._children or self._unsettled or self._reported:
            try:
                self._reap()
                self._start_waiting(listener)
                self._record_reports()
                self._settle(listener)
                if self._children:
                    self._announce_stop()
                    self._beat(listener, watchdog)
                    self._stop_children_past_grace()
                    self._wait(min(self.options.beat_interval, 1.0))
            except TRANSIENT as exc:
                logger.warning("Redis unavailable while stopping (%s)", exc)
                self._supervision.wait(1.0)


def close(listener: Listener) -> None:
    """Deregister a runner's listener once nothing of it runs, first giving back what a take cut
    short by the stop, or a lost reply, left in its lists."""
    try:
        if not listener.settled:
            listener.give_back_strays(())
        listener.close()
    except TRANSIENT:
        logger.warning("Could not deregister listener %s: Redis unavailable; recovery will", listener.id)


def run(
    client: Client,
    queue: str | Sequence[str],
    task_callback: TaskCallback,
    concurrency: int = 1,
    *,
    burst: bool = False,
    install_signal_handlers: bool = True,
    before_fork: Callable[[], None] | None = None,
    prepare: Callable[[Task], None] | None = None,
    **options: Any,
) -> int:
    """Serve ``queue`` with ``concurrency`` forked processes, as in Blueque 1.0.

    ``task_callback(task)`` runs in the child and returns the result string
    (or ``None`` for an empty one); an exception fails the task with its
    message. With ``burst``, return once the queue is drained. ``options``
    are :class:`~.runner.WorkerOptions`, as for :class:`ForkingRunner`.
    Returns the number of tasks run.
    """
    runner = ForkingRunner(
        client, queue, task_callback, concurrency, before_fork=before_fork, prepare=prepare, **options
    )
    return runner.run(burst=burst, install_signal_handlers=install_signal_handlers)
