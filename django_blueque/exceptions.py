"""The Django app's own exceptions."""


class EnqueueError(Exception):
    """A task could not be enqueued: Redis could not be reached, or refused the write.

    Raised by ``BluequeBackend.enqueue()`` (so by ``my_task.enqueue(...)``)
    in place of redis-py's own errors, which stay available as ``__cause__``.
    The task was not enqueued, unless the failure came after Redis wrote it
    and before its reply arrived (the connection dropped just then):
    :attr:`task_id` is the id it was given, for ``get_result()`` to tell.
    """

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id
