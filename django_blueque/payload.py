"""How a Django task travels in Blueque 1.0's ``parameters`` field: JSON.

::

    {"django_task": "myapp.tasks.send_report",   # module path of the Task object
     "args": [...], "kwargs": {...},              # JSON values, as Django's Tasks API requires
     "backend": "default",                        # the TASKS alias that enqueued it
     "run_after": "2026-01-01T12:00:00+00:00"}    # or null

A task is never pickled, and a worker only runs what the path names if it is
a ``Task`` object (made by ``@task``), never any other callable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from .compat import Task, normalize_json

if TYPE_CHECKING:
    from .compat import AnyTask

MARKER = "django_task"


class NotADjangoTask(ValueError):
    """The parameters do not describe a Django task, or name no ``Task`` object."""


@dataclass(frozen=True)
class Payload:
    task_path: str
    args: list[Any]
    kwargs: dict[str, Any]
    backend: str
    run_after: datetime | None


def encode(task: AnyTask, args: Any, kwargs: Any, backend: str) -> str:
    """The ``parameters`` string for a Django task; TypeError for arguments JSON cannot hold."""
    return json.dumps(
        {
            MARKER: task.module_path,
            "args": normalize_json(list(args)),
            "kwargs": normalize_json(dict(kwargs)),
            "backend": backend,
            "run_after": task.run_after.isoformat() if task.run_after else None,
        },
        separators=(",", ":"),
    )


def decode(parameters: str | None) -> Payload:
    """Read the parameters of a Django task; ``NotADjangoTask`` for anything else."""
    try:
        data = json.loads(parameters or "")
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get(MARKER), str):
        raise NotADjangoTask("The task's parameters do not describe a Django task")
    args, kwargs = data.get("args", []), data.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise NotADjangoTask("A Django task's args must be a JSON list and its kwargs a JSON object")
    run_after = data.get("run_after")
    return Payload(
        task_path=data[MARKER],
        args=args,
        kwargs=kwargs,
        backend=str(data.get("backend", "default")),
        run_after=datetime.fromisoformat(run_after) if isinstance(run_after, str) else None,
    )


def resolve(task_path: str) -> AnyTask:
    """The ``Task`` object at ``task_path``; ``NotADjangoTask`` if there is none."""
    try:
        found = import_string(task_path)
    except ImportError as exc:
        raise NotADjangoTask(f"Cannot import the task {task_path!r}: {exc}") from exc
    if not isinstance(found, Task):
        raise NotADjangoTask(f"{task_path!r} is not a Django task (define it with @task)")
    return found
