"""Reading a Blueque task as a Django ``TaskResult``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from . import payload
from .compat import DEFAULT_TASK_QUEUE_NAME, InvalidTaskError, TaskError, TaskResult, TaskResultStatus
from .compat import Task as DjangoTask
from .protocol import COMPLETE, FAILED, STARTED, Task

if TYPE_CHECKING:
    from .compat import AnyTask, AnyTaskResult

#: How each Blueque status reads in Django's Tasks API.
STATUS_MAP = {
    "scheduled": TaskResultStatus.READY,
    "pending": TaskResultStatus.READY,
    "reserved": TaskResultStatus.READY,
    STARTED: TaskResultStatus.RUNNING,
    COMPLETE: TaskResultStatus.SUCCESSFUL,
    FAILED: TaskResultStatus.FAILED,
}


def as_datetime(timestamp: float | None) -> datetime | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def django_task_for(blueque_task: Task, data: payload.Payload) -> AnyTask:
    """The ``Task`` object of a Blueque task, with the queue and backend it was enqueued with."""
    django_task = payload.resolve(data.task_path)
    try:
        return django_task.using(queue_name=blueque_task.queue, backend=data.backend, run_after=data.run_after)
    except InvalidTaskError:
        # The settings changed since it was enqueued: report it as defined.
        return django_task


def stand_in(task_path: str, backend: str, queue: str | None) -> AnyTask:
    """A ``Task`` object for a path that names no task any more, so that its result stays readable.

    It has the name and module path of the task that was enqueued; calling
    it raises ``ImportError``, as a worker running it would.
    """
    module, _, name = task_path.rpartition(".")

    def missing(*args: Any, **kwargs: Any) -> None:
        raise ImportError(f"The task {task_path!r} no longer exists")

    missing.__module__ = module
    missing.__name__ = missing.__qualname__ = name or task_path
    # The backend, or its queue, may be gone too: the task is described as well as the settings allow.
    for options in ({"backend": backend, "queue_name": queue or DEFAULT_TASK_QUEUE_NAME}, {"backend": backend}, {}):
        try:
            return DjangoTask(func=missing, **options)  # type: ignore[arg-type]
        except (InvalidTaskError, KeyError, ImproperlyConfigured, LookupError):
            continue
    raise payload.NotADjangoTask(f"Cannot describe the task {task_path!r}: no backend is configured")


def earlier_errors(blueque_task: Task) -> list[dict[str, Any]]:
    """The errors of the attempts before this one that were retried (the ``errors`` field)."""
    try:
        found = json.loads(blueque_task.fields.get("errors") or "[]")
    except ValueError:
        return []
    return [entry for entry in found if isinstance(entry, dict)] if isinstance(found, list) else []


def worker_ids(blueque_task: Task, attempts: int) -> list[str]:
    """One entry per attempt, as Django counts attempts (``TaskResult.attempts`` is ``len(worker_ids)``).

    The last is the task's node; the workers of earlier attempts are not
    kept, and are given as empty strings.
    """
    if attempts < 1:
        return []
    return [""] * (attempts - 1) + [blueque_task.node or ""]


def to_task_result(blueque_task: Task, backend_alias: str | None = None, *, to_run: bool = False) -> AnyTaskResult:
    """A ``TaskResult`` describing ``blueque_task``; ``NotADjangoTask`` if it is not one.

    A task whose function is gone is described by a :func:`stand_in`, unless
    the result is ``to_run``: then ``NotADjangoTask`` says why it cannot run.
    """
    data = payload.decode(blueque_task.parameters)
    status = STATUS_MAP.get(blueque_task.status or "", TaskResultStatus.READY)
    started_at = as_datetime(blueque_task.started_at)
    finished = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    errors = [
        TaskError(
            exception_class_path=str(e.get("exception") or "builtins.Exception"),
            traceback=str(e.get("traceback") or e.get("error") or ""),
        )
        for e in earlier_errors(blueque_task)
    ]
    if status == TaskResultStatus.FAILED:
        errors.append(
            TaskError(
                exception_class_path=blueque_task.exception or "builtins.Exception",
                traceback=blueque_task.traceback or blueque_task.error or "",
            )
        )
    try:
        django_task = django_task_for(blueque_task, data)
    except payload.NotADjangoTask:
        if to_run:
            raise
        django_task = stand_in(data.task_path, data.backend, blueque_task.queue)
    result: AnyTaskResult = TaskResult(
        task=django_task,
        id=blueque_task.id,
        status=status,
        enqueued_at=as_datetime(blueque_task.created),
        started_at=started_at,
        finished_at=as_datetime(blueque_task.updated) if finished else None,
        last_attempted_at=started_at,
        args=data.args,
        kwargs=data.kwargs,
        backend=backend_alias or data.backend,
        errors=errors,
        worker_ids=worker_ids(blueque_task, int(blueque_task.fields.get("attempt") or 0))
        if blueque_task.node and (finished or status == TaskResultStatus.RUNNING)
        else [],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        set_return_value(result, json.loads(blueque_task.result or "null"))
    return result


def set_return_value(result: AnyTaskResult, value: Any) -> None:
    # TaskResult is frozen; Django's own backends set the outcome this way too.
    object.__setattr__(result, "_return_value", value)


def update(result: AnyTaskResult, **changes: Any) -> None:
    for name, value in changes.items():
        object.__setattr__(result, name, value)
