"""Run tasks in forked processes, one process per task, as Blueque 1.0 does.

The runner takes a task only when one of its ``concurrency`` slots is free, so
a task never waits behind another on a busy process (no prefetch), and it
never times a task out.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from .listener import DEFAULT_BLOCK_TIMEOUT
from .task import FINISHED, Task
from .work import TaskCallback, perform

if TYPE_CHECKING:
    from .client import Client
    from .listener import Listener

logger = logging.getLogger(__name__)

#: Seconds between looks for tasks of dead listeners on this host.
ORPHAN_INTERVAL = 60.0


class ForkingRunner:
    """Listens on one or more queues and runs each task in a forked child."""

    def __init__(
        self,
        client: Client,
        queues: str | Sequence[str],
        task_callback: TaskCallback,
        concurrency: int = 1,
        *,
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        before_fork: Callable[[], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._client = client
        self._queues = (queues,) if isinstance(queues, str) else tuple(queues)
        self._callback = task_callback
        self._concurrency = concurrency
        self._block = block_timeout
        self._before_fork = before_fork
        self._children: dict[int, Task] = {}
        self._stopping = False
        self.tasks_run = 0

    def stop(self, *_: object) -> None:
        """Stop taking tasks; :meth:`run` returns once running tasks end. Signal-safe."""
        self._stopping = True

    def run(self, *, burst: bool = False, install_signal_handlers: bool = True) -> int:
        """Serve the queues until :meth:`stop` (or SIGTERM/SIGINT); return tasks run.

        With ``burst``, return once no task is pending and none is running.
        """
        if install_signal_handlers:
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        listener = self._client.get_listener(*self._queues, block_timeout=self._block)
        try:
            self._serve(listener, burst)
        finally:
            self._wait_for_children(block=True, every=True)
            listener.close()
            if install_signal_handlers:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return self.tasks_run

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("Received signal %s: finishing %d running task(s)", signum, len(self._children))
        self.stop()

    def _serve(self, listener: Listener, burst: bool) -> None:
        next_orphan_check = 0.0
        while True:
            self._wait_for_children(block=len(self._children) >= self._concurrency)
            # A signal may have come while we waited for a free slot.
            if self._stopping:
                return
            if len(self._children) >= self._concurrency:
                continue
            task = None
            if time.monotonic() >= next_orphan_check:
                task = listener.claim_orphan()
                if task is None:
                    next_orphan_check = time.monotonic() + ORPHAN_INTERVAL
            if task is None:
                task = listener.listen(timeout=0 if burst else self._block)
            if task is not None:
                self._fork(task)
            elif burst:
                if not self._children:
                    return
                self._wait_for_children(block=True)

    def _fork(self, task: Task) -> None:
        if self._before_fork is not None:
            self._before_fork()
        pid = os.fork()
        if pid == 0:
            self._run_in_child(task)
        self._children[pid] = task
        self.tasks_run += 1
        logger.info("Task %s runs in process %d", task.id, pid)

    def _run_in_child(self, task: Task) -> None:
        # The child stays in the runner's process group, so stopping the whole
        # group stops its tasks too. Ctrl-C in a terminal reaches the whole
        # group: the runner stops taking tasks and the child finishes its own.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        status = 0
        try:
            perform(self._client, task, self._callback)
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _wait_for_children(self, *, block: bool, every: bool = False) -> None:
        """Reap finished children; ``block``: wait for at least one; ``every``: for all."""
        while self._children:
            pid, status = os.waitpid(-1, 0 if block or every else os.WNOHANG)
            if pid == 0:
                return
            task = self._children.pop(pid, None)
            if task is not None:
                self._child_exited(task, pid, status)
            block = False

    def _child_exited(self, task: Task, pid: int, status: int) -> None:
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return
        # The child could not record an outcome itself: record it here, unless
        # it got as far as finishing the task before dying.
        how = (
            f"killed by signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"exited with status {os.WEXITSTATUS(status)}"
        )
        current = self._client.get_task(task.id)
        if current.status in FINISHED or current.node != task.node:
            return
        logger.error("Process %d running task %s %s", pid, task.id, how)
        self._client.get_processor(current).fail(f"Task process {pid} {how}")


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
) -> int:
    """Serve ``queue`` with ``concurrency`` forked processes, as in Blueque 1.0.

    ``task_callback(task)`` runs in the child and returns the result string
    (or ``None`` for an empty one); an exception fails the task with its
    message. With ``burst``, return once the queue is drained. Returns the
    number of tasks run.
    """
    runner = ForkingRunner(
        client, queue, task_callback, concurrency, block_timeout=block_timeout, before_fork=before_fork
    )
    return runner.run(burst=burst, install_signal_handlers=install_signal_handlers)
