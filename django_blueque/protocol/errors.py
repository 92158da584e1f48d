"""Exceptions of the protocol core."""


class BluequeError(Exception):
    """Base class of the protocol's own errors."""


class TaskNotOwned(BluequeError):
    """The task is no longer this listener's to run: recovery gave it to another."""


class WorkerLost(BluequeError):
    """Recorded as the exception of a task whose process died too many times.

    Never raised: it names the failure in the task's ``exception`` field, so
    that Django's ``TaskError.exception_class`` can resolve it.
    """
