"""Exceptions of the protocol core."""


class BluequeError(Exception):
    """Base class of the protocol's own errors."""


class TaskNotOwned(BluequeError):
    """The task is no longer this listener's to run: recovery gave it to another."""


class Retry(BluequeError):
    """Raised by a task (or for it, by a retry policy) to run it again later.

    The task goes back to the scheduled set, due ``delay`` seconds from now;
    the error of this attempt is kept in the task's ``errors`` field, and
    monitors send ``task_retrying``. Raise it ``from`` the exception that
    caused it, so that exception is what the attempt records.
    """

    def __init__(self, delay: float = 0.0, message: str = "") -> None:
        super().__init__(message or f"retry in {delay:g}s")
        self.delay = max(float(delay), 0.0)


class WorkerLost(BluequeError):
    """Recorded as the exception of a task whose process died too many times.

    Never raised: it names the failure in the task's ``exception`` field, so
    that Django's ``TaskError.exception_class`` can resolve it.
    """
