"""Running a task: mark it started, then complete or failed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import keys
from .task import COMPLETE, FAILED, STARTED, Task

if TYPE_CHECKING:
    from redis import Redis


class Processor:
    """Updates one task as a process runs it. Made by :meth:`Client.get_processor`.

    The task must have been taken by a listener (it has a ``node`` and a
    ``queue``). Each method is one atomic round trip, the same commands as
    Blueque 1.0.1, so either implementation can finish what the other started.
    """

    def __init__(self, redis: Redis, task: Task) -> None:
        if not task.queue or not task.node:
            raise ValueError(
                f"Task {task.id} has not been taken by a listener (queue={task.queue!r}, node={task.node!r})"
            )
        self._redis = redis
        self._task = task
        self._queue: str = task.queue
        self._listener_id: str = task.node
        self._pid = task.pid

    @property
    def task(self) -> Task:
        return self._task

    def start(self, pid: int) -> str | None:
        """Record that process ``pid`` runs the task; return its parameters."""
        self._pid = pid
        now = time.time()
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(keys.started(self._queue), keys.started_member(self._listener_id, pid, self._task.id))
            pipe.hset(
                keys.task(self._task.id), mapping={"status": STARTED, "pid": pid, "updated": now, "started_at": now}
            )
            pipe.execute()
        return self._task.parameters

    def complete(self, result: str) -> None:
        """Record the task's result and move it to the complete list."""
        self._finish(COMPLETE, {"result": result}, keys.complete(self._queue))

    def fail(self, error: str, *, exception: str | None = None, traceback: str | None = None) -> None:
        """Record the task's error and move it to the failed list.

        ``error`` is the message (1.0's field); ``exception`` (the exception
        class's dotted path) and ``traceback`` are kept in extension fields.
        """
        details = {"error": error}
        if exception is not None:
            details["exception"] = exception
        if traceback is not None:
            details["traceback"] = traceback
        self._finish(FAILED, details, keys.failed(self._queue))

    def _finish(self, status: str, details: dict[str, str], finished_key: str) -> None:
        for field, value in details.items():
            if not isinstance(value, str):
                raise TypeError(f"A task's {field} must be a string, not {type(value).__name__}")
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrem(keys.reserved(self._queue, self._listener_id), 1, self._task.id)
            if self._pid is not None:
                pipe.srem(keys.started(self._queue), keys.started_member(self._listener_id, self._pid, self._task.id))
            outcome: dict[str, str | float] = {"status": status, **details, "updated": time.time()}
            pipe.hset(keys.task(self._task.id), mapping=outcome)  # type: ignore[arg-type]
            pipe.lpush(finished_key, self._task.id)
            pipe.execute()
