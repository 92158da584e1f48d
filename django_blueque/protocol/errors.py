"""Exceptions of the protocol core."""

import math


class BluequeError(Exception):
    """Base class of the protocol's own errors."""


class TaskNotOwned(BluequeError):
    """The task is no longer this listener's to run: recovery gave it to another."""


class MalformedTask(TaskNotOwned):
    """The task's data cannot be used (bad counters, fields that are not UTF-8).

    Recorded as the exception of such a task, which fails without running;
    raised by :meth:`Processor.start` when it finds one.
    """


class Retry(BluequeError):
    """Raised by a task (or for it, by a retry policy) to run it again later.

    The task goes back to the scheduled set, due ``delay`` seconds from now;
    the error of this attempt is kept in the task's ``errors`` field, and
    monitors send ``task_retrying``. Raise it ``from`` the exception that
    caused it, so that exception is what the attempt records.
    """

    def __init__(self, delay: float = 0.0, message: str = "") -> None:
        delay = float(delay)
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(f"Retry needs a finite delay of seconds >= 0, not {delay!r}")
        super().__init__(message or f"retry in {delay:g}s")
        self.delay = delay


class WorkerLost(BluequeError):
    """Recorded as the exception of a task whose process died too many times.

    Never raised: it names the failure in the task's ``exception`` field, so
    that Django's ``TaskError.exception_class`` can resolve it.
    """


class Cancelled(BluequeError):
    """Recorded as the exception of a task cancelled before it started (see operations.py).

    Never raised, like :class:`WorkerLost`.
    """


class NotReplicated(BluequeError):
    """Fewer replicas than asked acknowledged a new task in time (Redis ``WAIT``).

    The task is on the primary and will run unless a failover loses it
    first: a caller that enqueues again may run it twice.
    """

    def __init__(self, task_id: str, acknowledged: int, asked: int) -> None:
        super().__init__(f"task {task_id}: {acknowledged} of {asked} replica(s) acknowledged it in time")
        self.task_id = task_id
        self.acknowledged = acknowledged
        self.asked = asked
