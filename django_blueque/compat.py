"""One import point for Django's Tasks framework.

Django 6.0 and later ship it as ``django.tasks``; on Django 5.2 the
``django-tasks`` backport provides the same API as ``django_tasks``. The
backend is written once against the names below. (mypy reads the backport's
branch: ``TYPE_CHECKING`` makes the other unreachable for it.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import django

if django.VERSION < (6, 0):
    try:
        import django_tasks  # noqa: F401
    except ImportError as exc:  # installed with Python 3.12+ and Django 5.2: see setup.cfg
        raise ImportError(
            "On Django 5.2, django-blueque needs the Tasks API backport: pip install 'django-blueque[django52]' "
            "(or pip install django-tasks)"
        ) from exc

if TYPE_CHECKING or django.VERSION < (6, 0):
    from django_tasks import DEFAULT_TASK_QUEUE_NAME, TaskContext, TaskResult, TaskResultStatus, task, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskError
    from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

    #: The app to add to INSTALLED_APPS for the backport's checks and logging.
    TASKS_APP: str | None = "django_tasks"
else:
    from django.tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask as InvalidTaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    TASKS_APP = None

if TYPE_CHECKING:
    AnyTask = Task[..., Any]
    AnyTaskResult = TaskResult[Any]

__all__ = [
    "DEFAULT_TASK_QUEUE_NAME",
    "TASKS_APP",
    "BaseTaskBackend",
    "InvalidTaskError",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
