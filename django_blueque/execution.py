"""What a worker does with a task it took: the Django side of running it.

A queue with a ``HANDLER`` passes the Blueque task to that function (the
1.0-style interface: ``task.parameters`` in, a result string out), so
producers written for Blueque 1.0.1, or in any language, can use Django
workers. Any other queue runs Django tasks: the parameters name a ``Task``
object (see :mod:`django_blueque.payload`) and its function is called with
the JSON arguments. Django's ``task_started`` and ``task_finished`` signals
fire here, in the process that runs the task.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from functools import cache
from typing import cast

from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import import_string

from . import payload, progress, tasklog
from .compat import TaskContext, TaskError, TaskResultStatus, normalize_json, task_backends, task_finished, task_started
from .conf import get_settings
from .protocol import Retry, Task, class_path
from .results import set_return_value, to_task_result, update, worker_ids
from .retry import retry_or_raise

logger = logging.getLogger(__name__)

Handler = Callable[[Task], "str | None"]


@cache
def _handler(path: str) -> Handler:
    return cast(Handler, import_string(path))


def run_task(task: Task, *, manage_connections: bool = True) -> str | None:
    """Run one Blueque task in this process and return its result string.

    Any exception propagates, and the runner records the task as failed.
    Database connections that are broken or past their age are closed before
    and after the task, as Django does around a request; tests running tasks
    inside their own transaction turn that off.
    """
    queue = get_settings().queues.get(task.queue or "")
    if manage_connections:
        close_old_connections()
    try:
        with progress.running(task.id), tasklog.logged(task, current_attempt(task), queue.handler if queue else None):
            if queue is not None and queue.handler is not None:
                handler = _handler(queue.handler)
                try:
                    return handler(task)
                except Retry:
                    raise
                except Exception as exc:
                    retry_or_raise(handler, exc, current_attempt(task))
                    raise
            return run_django_task(task)
    finally:
        if manage_connections:
            close_old_connections()


def prepare(task: Task) -> None:
    """Import a task's code in the worker process, so its forked children find it loaded."""
    queue = get_settings().queues.get(task.queue or "")
    if queue is not None and queue.handler is not None:
        _handler(queue.handler)
    else:
        payload.resolve(payload.decode(task.parameters).task_path)


def current_attempt(task: Task) -> int:
    """The number of the attempt now running (``task`` is the snapshot taken before it started)."""
    return int(task.fields.get("attempt") or 0) + 1


def run_django_task(task: Task) -> str:
    """Call the Django task a Blueque task names; its JSON return value is the result."""
    data = payload.decode(task.parameters)
    result = to_task_result(task, to_run=True)
    backend = task_backends[data.backend]
    now = timezone.now()
    # ``task`` is the snapshot taken before it started: fill in the run.
    update(
        result,
        status=TaskResultStatus.RUNNING,
        started_at=now,
        last_attempted_at=now,
        worker_ids=worker_ids(task, current_attempt(task)),
    )
    task_started.send(type(backend), task_result=result)
    django_task = result.task

    def failed(exc: BaseException) -> None:
        traceback_text = "".join(traceback.format_exception(exc))
        update(result, status=TaskResultStatus.FAILED, finished_at=timezone.now())
        result.errors.append(TaskError(exception_class_path=class_path(exc), traceback=traceback_text))
        task_finished.send(type(backend), task_result=result)

    try:
        if django_task.takes_context:
            value = django_task.call(TaskContext(task_result=result), *data.args, **data.kwargs)
        else:
            value = django_task.call(*data.args, **data.kwargs)
    except Retry:
        raise
    except BaseException as exc:
        # Another attempt to come: not finished, so no task_finished.
        retry_or_raise(django_task.func, exc, current_attempt(task))
        failed(exc)
        raise
    try:
        # Outside the retry policy: every attempt would return what JSON cannot hold, after
        # doing its work again. No NaN or Infinity either: other clients could not read it.
        encoded = json.dumps(normalize_json(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        error = type(exc)(f"{result.task.module_path} returned a value JSON cannot hold: {exc}")
        error.__cause__ = exc  # in the traceback kept with the result, as the raise below sets it
        failed(error)
        raise error from exc
    update(result, status=TaskResultStatus.SUCCESSFUL, finished_at=timezone.now())
    set_return_value(result, json.loads(encoded))
    task_finished.send(type(backend), task_result=result)
    return encoded
