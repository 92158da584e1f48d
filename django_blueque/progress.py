"""Progress reports from inside a running task.

::

    from django_blueque.progress import report_progress

    @task
    def transcode(video_id):
        for i, chunk in enumerate(chunks):
            ...
            report_progress((i + 1) / len(chunks), f"chunk {i + 1} of {len(chunks)}")

The figure and message are stored in the task's hash, where
``blueque_status``, the admin and any Blueque client can read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .connection import get_client

_current_task_id: ContextVar[str | None] = ContextVar("blueque_current_task_id", default=None)


@contextmanager
def running(task_id: str) -> Iterator[None]:
    """Make ``task_id`` the task that :func:`report_progress` reports on."""
    token = _current_task_id.set(task_id)
    try:
        yield
    finally:
        _current_task_id.reset(token)


def current_task_id() -> str | None:
    """The id of the task running in this context, or None outside a task."""
    return _current_task_id.get()


def report_progress(fraction: float, message: str = "") -> bool:
    """Record the running task's progress (0.0 to 1.0). One Redis round trip.

    Raises ``RuntimeError`` outside a task run by a django-blueque worker.
    """
    task_id = _current_task_id.get()
    if task_id is None:
        raise RuntimeError("report_progress() was called outside a task run by a django-blueque worker")
    return get_client().report_progress(task_id, fraction, message)
