"""How a Django task travels in Blueque 1.0's ``parameters`` field: JSON.

::

    {"django_task": "myapp.tasks.send_report",   # module path of the Task object
     "args": [...], "kwargs": {...},              # JSON values, as Django's Tasks API requires
     "backend": "default",                        # the TASKS alias that enqueued it
     "run_after": "2026-01-01T12:00:00+00:00"}    # or null

A task is never pickled, and a worker only runs what the path names if it is
a ``Task`` object (made by ``@task``), never any other callable. Nor does a
path read from Redis import just any module, whose import alone runs code: a
module is imported only if it is loaded already or belongs to the project
(the top-level package of an installed app, of the settings module, or of a
task ``BLUEQUE["SCHEDULE"]`` names).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
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


def encode(task: AnyTask, args: Any, kwargs: Any, backend: str, max_bytes: int | None = None) -> str:
    """The ``parameters`` string for a Django task.

    ``TypeError`` for arguments JSON cannot hold; ``ValueError`` for a float
    that is not finite (``NaN`` and ``Infinity`` are not JSON: other clients
    could not read them), naming the argument, and for parameters over
    ``max_bytes``.
    """
    args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
    for where, value in _floats(args, "args") + _floats(kwargs, "kwargs"):
        if not math.isfinite(value):
            raise ValueError(f"Task argument {where} is {value}, which JSON cannot hold: pass a finite number")
    text = json.dumps(
        {
            MARKER: task.module_path,
            "args": args,
            "kwargs": kwargs,
            "backend": backend,
            "run_after": task.run_after.isoformat() if task.run_after else None,
        },
        separators=(",", ":"),
        allow_nan=False,
    )
    size = len(text.encode())
    if max_bytes is not None and size > max_bytes:
        raise ValueError(
            f"The arguments of {task.module_path} are {size:,} bytes as JSON, over BLUEQUE['MAX_PARAMETERS'] "
            f"({max_bytes:,}): store large data elsewhere (a file, a database row) and pass its reference"
        )
    return text


def _floats(value: Any, where: str) -> list[tuple[str, float]]:
    """Every float inside a JSON value, with where it is (``kwargs['ratio']``, ``args[0][2]``)."""
    if isinstance(value, float):
        return [(where, value)]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _floats(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _floats(item, f"{where}[{key!r}]")]
    return []


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


def project_packages() -> set[str]:
    """The top-level packages whose modules a task path may import.

    Those of the installed apps, of the settings module, and of the tasks
    that ``BLUEQUE["SCHEDULE"]`` names: what the project itself names.
    """
    packages = {config.name.partition(".")[0] for config in apps.get_app_configs()}
    # override_settings() hides SETTINGS_MODULE (None); the environment still names it.
    module = getattr(settings, "SETTINGS_MODULE", None) or os.environ.get("DJANGO_SETTINGS_MODULE")
    if module:
        packages.add(module.partition(".")[0])
    blueque = getattr(settings, "BLUEQUE", None)
    schedule = blueque.get("SCHEDULE") if isinstance(blueque, dict) else None
    if isinstance(schedule, dict):
        packages.update(
            entry["TASK"].partition(".")[0]
            for entry in schedule.values()
            if isinstance(entry, dict) and isinstance(entry.get("TASK"), str)
        )
    return packages


def resolve(task_path: str) -> AnyTask:
    """The ``Task`` object at ``task_path``; ``NotADjangoTask`` if there is none.

    Imports the task's module only if it is loaded already or belongs to the
    project (:func:`project_packages`): the path comes from Redis, which
    anyone with access to it can write.
    """
    module = task_path.rpartition(".")[0]
    if module not in sys.modules and module.partition(".")[0] not in project_packages():
        raise NotADjangoTask(
            f"Cannot import the task {task_path!r}: its module is neither loaded nor part of the project "
            "(the package of an installed app, of the settings, or of a SCHEDULE task)"
        )
    try:
        found = import_string(task_path)
    except ImportError as exc:
        raise NotADjangoTask(f"Cannot import the task {task_path!r}: {exc}") from exc
    if not isinstance(found, Task):
        raise NotADjangoTask(f"{task_path!r} is not a Django task (define it with @task)")
    return found
