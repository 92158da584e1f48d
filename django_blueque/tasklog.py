"""One log line when a worker starts a task and one when it ends, for people and for log collectors.

::

    task started id=0b6f... task=myapp.tasks.send_report queue=default attempt=1
    task finished id=0b6f... task=myapp.tasks.send_report queue=default attempt=1 duration=2.013 outcome=complete

The message is ``key=value`` pairs (logfmt: values with spaces or quotes are
quoted), and the same fields ride on the log record (``record.blueque``), so
a JSON formatter (:class:`JsonFormatter`, ``blueque_worker --log-format
json``) writes them as fields. At DEBUG (``-v 2``) the start line also has the
task's arguments, cut to 200 characters. Outcomes: ``complete``, ``failed``
(with ``exception=``), ``retry`` (another attempt is due). The logger is
``django_blueque.tasks``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import payload
from .protocol import Retry, Task, class_path

logger = logging.getLogger("django_blueque.tasks")

ARGUMENTS_SHOWN = 200


def logfmt(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        if not text or any(c in text for c in ' "=\\\n'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def task_name(task: Task, handler: str | None) -> str:
    """A Django task's path, or a raw queue's handler."""
    if handler is not None:
        return handler
    try:
        return payload.decode(task.parameters).task_path
    except payload.NotADjangoTask:
        return "?"


def _log(level: int, event: str, fields: dict[str, Any]) -> None:
    logger.log(level, "task %s %s", event, logfmt(fields), extra={"blueque": {"event": f"task_{event}", **fields}})


@contextmanager
def logged(task: Task, attempt: int, handler: str | None) -> Iterator[None]:
    """Log the start of ``task``'s run, then its end: how it went and how long it took."""
    fields: dict[str, Any] = {
        "id": task.id,
        "task": task_name(task, handler),
        "queue": task.queue or "",
        "attempt": attempt,
    }
    start = dict(fields)
    if logger.isEnabledFor(logging.DEBUG):
        start["parameters"] = (task.parameters or "")[:ARGUMENTS_SHOWN]
    _log(logging.INFO, "started", start)
    began = time.monotonic()
    try:
        yield
    except Retry as retry:
        _log(
            logging.INFO,
            "finished",
            {**fields, "duration": time.monotonic() - began, "outcome": "retry", "delay": retry.delay},
        )
        raise
    except BaseException as exc:
        failed = {**fields, "duration": time.monotonic() - began, "outcome": "failed", "exception": class_path(exc)}
        _log(logging.WARNING, "finished", failed)
        raise
    _log(logging.INFO, "finished", {**fields, "duration": time.monotonic() - began, "outcome": "complete"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, process, and a task line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "blueque", {}))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
