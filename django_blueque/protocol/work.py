"""Running one task in the current process: start, call, then complete or fail."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import redis.exceptions

from .errors import Retry
from .task import Task

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)

TaskCallback = Callable[[Task], "str | None"]
T = TypeVar("T")

#: Redis errors worth waiting out: the server restarting or unreachable.
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
MAX_BACKOFF = 5.0


def result_string(result: object) -> str:
    """What a callback returned, as the string stored in ``result``."""
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    raise TypeError(f"A task callback must return a string or None, not {type(result).__name__}")


def error_string(exc: BaseException) -> str:
    """The ``error`` field for an exception: its message, as Blueque 1.0.1 stores it."""
    return str(exc) or type(exc).__name__


def class_path(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def with_retries(step: Callable[[], T], what: str) -> T:
    """Run a Redis step until it succeeds, waiting out connection trouble.

    Used for the writes that must not be lost (a task's start and outcome):
    the scripts behind them are idempotent, so a retry after a lost reply is
    safe.
    """
    delay = 0.1
    while True:
        try:
            return step()
        except TRANSIENT as exc:
            logger.warning("Redis unavailable while %s (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


class TaskHeartbeat:
    """Beats for one running task from a thread, until stopped.

    The thread keeps the task alive in other workers' eyes even if this
    process's listener dies; a task whose code holds the GIL for long can
    starve it, which is why the listener beats for its children too.
    """

    def __init__(self, client: Client, task_id: str, interval: float, listener_id: str | None = None) -> None:
        self._client = client
        self._task_id = task_id
        self._listener_id = listener_id
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"blueque-heartbeat-{task_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._client.beat(self._listener_id, [self._task_id])
            except Exception:  # the next beat may succeed; recovery tolerates a few missed
                logger.warning("Heartbeat for task %s failed", self._task_id, exc_info=True)

    def stop(self) -> None:
        self._stopped.set()


def perform(
    client: Client,
    task: Task,
    callback: TaskCallback,
    *,
    heartbeat_interval: float | None = None,
    heartbeat_listener: str | None = None,
) -> bool:
    """Run a reserved task here and record the outcome; True if it completed.

    Any exception from ``callback`` fails the task, with its message, class
    and traceback; only ``KeyboardInterrupt`` propagates, leaving the task
    started for recovery to find. With ``heartbeat_interval`` a thread beats
    for the task (and for ``heartbeat_listener``, when the listener runs the
    task in its own thread) while it runs. Raises ``TaskNotOwned`` (and runs nothing)
    if the task was handed to another listener meanwhile. The start and the
    outcome are retried while Redis is unreachable, so an outcome produced
    during an outage is stored once Redis is back.
    """
    processor = client.get_processor(task)
    with_retries(processor.start, f"starting task {task.id}")
    beating = TaskHeartbeat(client, task.id, heartbeat_interval, heartbeat_listener) if heartbeat_interval else None
    try:
        try:
            result = result_string(callback(task))
        except KeyboardInterrupt:
            raise
        except Retry as retry:
            cause = retry.__cause__ or retry
            message = error_string(cause)
            exception, trace = class_path(cause), "".join(traceback.format_exception(cause))
            eta = time.time() + retry.delay
            logger.info("Task %s will run again in %.1fs: %s", task.id, retry.delay, message)
            with_retries(
                lambda: processor.retry(eta, message, exception=exception, traceback=trace),
                f"recording task {task.id}'s retry",
            )
            return False
        except BaseException as exc:
            message = error_string(exc)
            exception, trace = class_path(exc), "".join(traceback.format_exception(exc))
            logger.info("Task %s failed: %s", task.id, message)
            with_retries(
                lambda: processor.fail(message, exception=exception, traceback=trace),
                f"recording task {task.id}'s failure",
            )
            return False
    finally:
        if beating is not None:
            beating.stop()
    recorded = with_retries(lambda: processor.complete(result), f"recording task {task.id}'s result")
    if not recorded:
        logger.warning("Task %s completed, but a newer attempt owns it: its result was not recorded", task.id)
    return True
