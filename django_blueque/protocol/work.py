"""Running one task in the current process: start, call, then complete or fail."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from .task import Task

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)

TaskCallback = Callable[[Task], "str | None"]


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


def perform(client: Client, task: Task, callback: TaskCallback, pid: int | None = None) -> bool:
    """Run a reserved task here and record the outcome; True if it completed.

    Any exception from ``callback`` fails the task, with its message, class
    and traceback; only ``KeyboardInterrupt`` propagates, leaving the task
    started for recovery to find.
    """
    processor = client.get_processor(task)
    processor.start(os.getpid() if pid is None else pid)
    try:
        result = result_string(callback(task))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        logger.info("Task %s failed: %s", task.id, error_string(exc))
        processor.fail(error_string(exc), exception=class_path(exc), traceback="".join(traceback.format_exception(exc)))
        return False
    processor.complete(result)
    return True
