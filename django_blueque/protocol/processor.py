"""Running a task: mark it started, then complete or failed."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import keys
from .errors import MalformedTask, TaskNotOwned
from .processes import process_token
from .replies import strings
from .task import COMPLETE, FAILED, Task

if TYPE_CHECKING:
    from .scripts import Scripts


@dataclass
class NextTask:
    """The next task to take in the same round trip as an outcome (see :meth:`Listener.next_task`).

    ``queues`` in the order the listener serves them; after the outcome is
    written, ``taken`` is ``(queue, id)`` of the task moved into the
    listener's reserved list, for :meth:`Listener.start_taken`, or None.
    """

    queues: tuple[str, ...]
    listener_id: str
    taken: tuple[str, str] | None = None

    def keys(self) -> list[str]:
        return [keys.pending(queue) for queue in self.queues] + [
            keys.reserved(queue, self.listener_id) for queue in self.queues
        ]


class Processor:
    """Updates one task as a process runs it. Made by :meth:`Client.get_processor`.

    The task must have been taken by a listener (it has a ``node`` and a
    ``queue``). Each method is one atomic round trip doing what Blueque
    1.0.1's does, plus extension fields, so either implementation can read
    what the other wrote. Outcomes are fenced: once :meth:`start` has run,
    :meth:`complete` and :meth:`fail` record nothing if a newer attempt (after
    recovery) owns the task.
    """

    def __init__(self, scripts: Scripts, task: Task) -> None:
        if not task.queue or not task.node:
            raise ValueError(
                f"Task {task.id} has not been taken by a listener (queue={task.queue!r}, node={task.node!r})"
            )
        self._scripts = scripts
        self._task = task
        self._queue: str = task.queue
        self._listener_id: str = task.node
        self._pid = task.pid
        self._attempt: int | None = None

    @property
    def task(self) -> Task:
        return self._task

    @property
    def attempt(self) -> int | None:
        """The attempt number :meth:`start` recorded, or None before it."""
        return self._attempt

    def start(self, pid: int | None = None) -> str | None:
        """Record that process ``pid`` (default: this one) runs the task; return its parameters.

        Raises :class:`TaskNotOwned` if the task is no longer reserved by its
        listener (recovery handed it on): it must not run. Raises
        :class:`MalformedTask` (a ``TaskNotOwned``) if its counters are
        malformed: the task has been failed with that error.
        """
        pid = os.getpid() if pid is None else pid
        attempt = int(
            self._scripts.start(
                keys=[
                    keys.task(self._task.id),
                    keys.started(self._queue),
                    keys.task_heartbeats(),
                    keys.reserved(self._queue, self._listener_id),
                    keys.failed(self._queue),
                ],
                args=[self._task.id, self._listener_id, pid, process_token(pid), time.time()],
            )
        )
        if attempt < 0:
            raise MalformedTask(f"Task {self._task.id} has malformed counters; it was failed without running")
        if not attempt:
            raise TaskNotOwned(f"Task {self._task.id} is no longer reserved by {self._listener_id}")
        self._pid = pid
        self._attempt = int(attempt)
        return self._task.parameters

    def adopt(self, pid: int, attempt: int) -> None:
        """Carry on a run that another process started for process ``pid``.

        A fork-mode worker's main process starts each task for the child that
        runs it; either of them may then record the outcome.
        """
        self._pid, self._attempt = pid, attempt

    def complete(self, result: str, *, then: NextTask | None = None) -> bool:
        """Record the task's result and move it to the complete list; False if not ours any more.

        With ``then``, take the next task in the same round trip (see :class:`NextTask`).
        """
        return self._finish(COMPLETE, {"result": result}, keys.complete(self._queue), then)

    def fail(
        self, error: str, *, exception: str | None = None, traceback: str | None = None, then: NextTask | None = None
    ) -> bool:
        """Record the task's error and move it to the failed list; False if not ours any more.

        ``error`` is the message (1.0's field); ``exception`` (the exception
        class's dotted path) and ``traceback`` are kept in extension fields.
        With ``then``, take the next task in the same round trip.
        """
        details = {"error": error}
        if exception is not None:
            details["exception"] = exception
        if traceback is not None:
            details["traceback"] = traceback
        return self._finish(FAILED, details, keys.failed(self._queue), then)

    def retry(self, eta: float, error: str, *, exception: str = "", traceback: str = "") -> bool:
        """Send the task back to the scheduled set, to run again at ``eta``; False if not ours any more."""
        if not math.isfinite(eta):
            raise ValueError(f"A retry's time must be a finite number of seconds, not {eta!r}")
        recorded = self._scripts.retry(
            keys=[
                keys.reserved(self._queue, self._listener_id),
                keys.started(self._queue),
                keys.task(self._task.id),
                keys.scheduled(self._queue),
                keys.task_heartbeats(),
                keys.retrying(self._queue),
            ],
            args=[
                self._task.id,
                self._member(),
                self._attempt or "",
                self._listener_id,
                eta,
                time.time(),
                error,
                exception,
                traceback,
            ],
        )
        return bool(recorded)

    def _member(self) -> str:
        return keys.started_member(self._listener_id, self._pid if self._pid is not None else "", self._task.id)

    def _finish(self, status: str, details: dict[str, str], finished_key: str, then: NextTask | None) -> bool:
        for field, value in details.items():
            if not isinstance(value, str):
                raise TypeError(f"A task's {field} must be a string, not {type(value).__name__}")
        member = self._member()
        fields = [item for pair in details.items() for item in pair]
        recorded = self._scripts.finish(
            keys=[
                keys.reserved(self._queue, self._listener_id),
                keys.started(self._queue),
                keys.task(self._task.id),
                finished_key,
                keys.task_heartbeats(),
                *(then.keys() if then is not None else ()),
            ],
            args=[
                self._task.id,
                member,
                self._attempt or "",
                self._listener_id,
                status,
                *fields,
                "updated",
                time.time(),
            ],
        )
        if then is None:
            return bool(recorded)
        recorded, *taken = recorded
        if taken:
            index, task_id = strings(taken)
            then.taken = (then.queues[int(index)], task_id)
        return bool(recorded)
