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
import math
import mmap
import os
import signal
import struct
import time
from types import FrameType
from typing import TYPE_CHECKING

from . import keys
from .errors import TaskNotOwned
from .forking_runner import close, describe_exit
from .identity import beating_listener_id, hostname, unique_node
from .processes import process_token
from .proctitle import set_title
from .replies import strings
from .runner import FORK_ONLY, Runner
from .supervision import KILL_AFTER, TRANSIENT, Backoff, Escalation, Interrupted, reap_exited, run_child
from .work import (
    EXIT_REDIS_LOST,
    EXIT_TAKEN_OVER,
    Heartbeat,
    RunBeater,
    perform,
    record,
    run_to_outcome,
    with_retries,
)

if TYPE_CHECKING:
    from .listener import Listener
    from .processor import Processor

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


class Tally:
    """How many tasks each child has run, in memory shared with the parent.

    One 8-byte slot per child, written only by that child while it lives and
    read by the parent once it is reaped, so no lock is needed (a child killed
    with SIGKILL could not release one).
    """

    SLOT = struct.Struct("q")

    def __init__(self, slots: int) -> None:
        self._memory = mmap.mmap(-1, self.SLOT.size * slots)
        self._free = list(range(slots))
        self._slot_of: dict[int, int] = {}

    def take_slot(self) -> int:
        """A free slot, for the next child (zeroed)."""
        slot = self._free.pop()
        self.SLOT.pack_into(self._memory, slot * self.SLOT.size, 0)
        return slot

    def assign(self, pid: int, slot: int) -> None:
        self._slot_of[pid] = slot

    def write(self, slot: int, count: int) -> None:
        """In a child: the tasks it has run so far."""
        self.SLOT.pack_into(self._memory, slot * self.SLOT.size, count)

    def release(self, pid: int) -> int:
        """A child was reaped: what it ran; its slot is free again."""
        slot = self._slot_of.pop(pid)
        self._free.append(slot)
        count: int = self.SLOT.unpack_from(self._memory, slot * self.SLOT.size)[0]
        return count


class PreforkRunner(Runner):
    """Runs tasks in ``concurrency`` long-lived children, each a listener; see the module's doc.

    Takes :class:`~.runner.WorkerOptions` as keywords (``max_tasks_per_child``
    and ``max_memory_mb`` say when a child is replaced; ``max_tasks`` caps
    each child and stops replacing them).
    """

    other_mode_options = FORK_ONLY

    def _setup(self) -> None:
        # The node name of this worker's children: its own random token, so
        # the ids of its children are told from any other process's.
        self._node = unique_node()
        # With max_tasks each child runs at most that many and is not replaced.
        self._respawn = self.options.max_tasks is None
        self._children: set[int] = set()
        # A child is asked at once to finish its task and leave. Without a grace period
        # it may take as long as its task does (a stop never cuts a task short unless
        # asked to); with one, it is killed once the grace period is over (_stop_children),
        # and, should that kill be missed, KILL_AFTER later.
        grace = self.options.grace
        self._escalation = Escalation(math.inf if grace is None else KILL_AFTER + grace)
        self._tally = Tally(self.options.concurrency)
        self._child_stop = False

    def _serve(self, burst: bool) -> None:
        options = self.options
        started = 0
        # Children would crash, and be replaced, in a loop while Redis is not there yet.
        self._supervision.until_connected(self._client.redis.ping, "start", options.backoff_cap)
        if self._supervision.stopping:  # stopped before Redis answered
            return
        recovery = self._client.recovery(
            self._queues,
            timeout=options.listener_timeout,
            max_recoveries=options.max_recoveries,
            max_releases=options.max_releases,
        )
        next_recovery = 0.0
        try:
            while True:
                drained = self._reap()
                if not self._supervision.stopping and not (burst and drained):
                    while len(self._children) < options.concurrency and (
                        self._respawn or started < options.concurrency
                    ):
                        self._spawn(burst)
                        started += 1
                if not self._children:
                    return
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

    def _announce_stop(self) -> None:
        """Say at once what a stop request does."""
        signals = self._new_stop_request()
        if signals == 1:
            logger.warning(
                "Stopping: each of %d child process(es) finishes the task it runs, if any%s; send SIGTERM (or "
                "Ctrl-C) again to put running tasks back in pending now",
                len(self._children),
                self._grace_note(),
            )
        elif signals == 2:
            logger.warning("Stopping now: running tasks go back to pending")

    def _spawn(self, burst: bool) -> None:
        if self._before_fork is not None:
            self._before_fork()
        slot = self._tally.take_slot()
        pid = os.fork()
        if pid == 0:
            self._child_main(burst, slot)
        self._tally.assign(pid, slot)
        self._children.add(pid)

    def _reap(self) -> bool:
        """Reap exited children, counting their tasks and giving back what they left; True if one found the
        queues drained."""
        drained = requeued = False
        for pid, status in reap_exited():
            if pid not in self._children:
                continue
            self._children.discard(pid)
            self.tasks_run += self._tally.release(pid)
            asked_to_stop = self._escalation.forget(pid)
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            if code in (RECYCLE, DRAINED):
                drained = drained or code == DRAINED
                continue
            stopped_by_us = asked_to_stop and self._supervision.stopping
            if code == EXIT_TAKEN_OVER:
                logger.warning("Child %d stopped its task: another worker took it over", pid)
            lost = (
                None
                if stopped_by_us or code in (EXIT_TAKEN_OVER, EXIT_REDIS_LOST)
                else f"process {pid} on {hostname()} {describe_exit(status)}"
            )
            requeued = self._give_back_tasks_of(beating_listener_id(self._node, pid), lost) or requeued
        # A task given back to pending is not drained, even in a burst.
        return drained and not requeued

    def _give_back_tasks_of(self, listener_id: str, lost: str | None) -> bool:
        """Give back what an ended child left in its lists (a run of another worker's is left alone).

        True if a task went back to pending to run again.
        """
        options = self.options
        requeued = False

        def give_back() -> None:
            nonlocal requeued
            listener = self._client.get_listener(
                *self._queues,
                listener_id=listener_id,
                timeout=options.listener_timeout,
                max_recoveries=options.max_recoveries,
                max_releases=options.max_releases,
            )
            for queue in self._queues:
                for task_id in strings(self._client.redis.lrange(keys.reserved(queue, listener_id), 0, -1)):
                    outcome = listener.give_back(self._client.get_task(task_id), lost=lost)
                    logger.warning("Task %s of ended child %s: %s", task_id, listener_id, outcome)
                    if outcome == "released":
                        self.tasks_released += 1
                    elif outcome != "not-ours":
                        self.tasks_run += 1
                    requeued = requeued or outcome == "requeued"
            listener.close()

        with_retries(give_back, f"giving back the tasks of child {listener_id}")
        return requeued

    def _stop_children(self) -> None:
        hard = self._supervision.past_grace(self.options.grace)
        for pid in self._children:
            self._escalation.ask(pid)  # finish the current task, then leave
            if hard:
                self._escalation.kill(pid)
        self._escalation.kill_overdue()

    # The child.

    def _over_memory(self) -> bool:
        limit = self.options.max_memory_mb
        return limit is not None and resident_memory_mb() > limit

    def _on_child_signal(self, signum: int, frame: FrameType | None) -> None:
        self._child_stop = True
        # Waiting for a task: stop waiting. About to wait (the loop looked before the signal): the
        # wait ends before it begins, as stopping is set.
        self._supervision.stop()
        self._supervision.interrupt()

    def _child_main(self, burst: bool, slot: int) -> None:
        self._supervision.in_child()
        # SIGTERM from the parent: finish the task in hand, then leave.
        signal.signal(signal.SIGTERM, self._on_child_signal)
        run_child(lambda: self._child_loop(burst, slot))

    def _start_taken(self, listener: Listener, taken: tuple[str, str], token: str) -> Processor | None:
        """Reserve and start a task this child took; its processor, or None when it is not to run.

        Retried through Redis outages, as a start is: the same pid gets the same answer.
        """
        pid = os.getpid()
        started = with_retries(lambda: listener.start_taken(taken, pid, token), f"starting task {taken[1]}")
        if started is None:
            return None
        task, attempt = started
        processor = self._client.get_processor(task)
        processor.adopt(pid, attempt)
        return processor

    def _child_loop(self, burst: bool, slot: int) -> int:
        options = self.options
        listener = self._client.get_listener(
            *self._queues,
            block_timeout=options.block,
            listener_id=beating_listener_id(self._node),
            heartbeat=True,
            timeout=options.listener_timeout,
            max_recoveries=options.max_recoveries,
            max_releases=options.max_releases,
        )
        # An earlier child with our pid (so our id) may have left tasks in our lists.
        recovery = self._client.recovery(
            self._queues,
            timeout=options.listener_timeout,
            max_recoveries=options.max_recoveries,
            max_releases=options.max_releases,
        )
        for queue in self._queues:
            recovery.recover_listener(queue, listener.id)
        # The listener's own heartbeat would stop while a task runs in this
        # thread: the heartbeat thread beats for both while a task runs.
        beating = RunBeater(Heartbeat(options.beat_interval, listener.beat, options.redis_lost_after))
        most = (
            options.max_tasks_per_child
            if options.max_tasks is None
            else min(options.max_tasks, options.max_tasks_per_child)
        )
        done = 0
        token = process_token(os.getpid())
        next_beat = 0.0
        backoff = Backoff(options.backoff_cap, logger)
        # A task the last outcome's round trip moved into our list, to start next.
        next_taken: tuple[str, str] | None = None
        try:
            while not self._child_stop and done < most:
                try:
                    if time.monotonic() >= next_beat:
                        listener.beat()
                        # Its lists hold nothing it runs, but the task taken next.
                        listener.give_back_strays(() if next_taken is None else (next_taken[1],))
                        next_beat = time.monotonic() + options.beat_interval
                    set_title(f"blueque-worker child: listening on {', '.join(self._queues)} ({done} done)")
                    # Back in time for the next heartbeat.
                    timeout = 0 if burst else max(min(options.block, next_beat - time.monotonic()), 0.0)
                    taken = started = task = None
                    if next_taken is not None:
                        taken, next_taken = next_taken, None
                        started = self._start_taken(listener, taken, token)
                        task = None if started is None else started.task
                    elif listener.settled:
                        # Take, then reserve and start in one script: a round trip fewer.
                        with self._supervision.interruptible():
                            taken = listener.take(timeout)
                        started = None if taken is None else self._start_taken(listener, taken, token)
                        task = None if started is None else started.task
                    else:  # a reply was lost: listen() repairs that first
                        with self._supervision.interruptible():
                            task = listener.listen(timeout=timeout)
                    backoff.succeeded()
                except TRANSIENT as exc:
                    time.sleep(backoff.failed(exc))
                    continue
                except Interrupted:
                    listener.unsettle()  # the give-back below repairs what the cut left
                    continue
                if task is None:
                    if taken is not None:
                        continue  # taken, but not to run
                    if burst:
                        return DRAINED
                    continue
                set_title(f"blueque-task: {task.queue} {task.id}")
                over_memory = False
                try:
                    if started is not None:
                        outcome = run_to_outcome(started, self._callback, beating)
                        over_memory = self._over_memory()
                        # Not stopping: the outcome's round trip takes the next task too.
                        then = None if self._child_stop or done + 1 >= most or over_memory else listener.next_task()
                        record(started, outcome, then=then, lost=listener.unsettle)
                        next_taken = None if then is None else then.taken
                    else:
                        perform(self._client, task, self._callback, beating=beating)
                        over_memory = self._over_memory()
                except TaskNotOwned as exc:
                    logger.warning("Not running task %s: %s", task.id, exc)
                done += 1
                self._tally.write(slot, done)
                if over_memory:
                    logger.info(
                        "Child %d leaves after %d tasks: memory above %s MiB", os.getpid(), done, options.max_memory_mb
                    )
                    break
        finally:
            beating.stop()
            if next_taken is not None:  # taken as a stop came: the give-back at the close puts it back
                listener.unsettle()
            close(listener)
        return RECYCLE
