"""System checks for the ``BLUEQUE`` setting (ids ``django_blueque.E0xx``; see docs/settings.md).

The problems found in the setting itself are validation.py's; these add the
ones that need the project's code imported (handlers, SCHEDULE's tasks).

The checks of a ``TASKS`` backend (unknown queue, unreachable Redis) run
through Django's Tasks framework, from ``BluequeBackend.check()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import django
from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from . import schedule
from .conf import DEFAULT_QUEUE, DEFAULT_REDIS_URL, get_settings
from .validation import problems


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Iterable[checks.CheckMessage]:
    found = problems()
    yield from (checks.Error(problem.msg, hint=problem.hint, id=problem.id) for problem in found)
    if found:
        return
    yield from (checks.Error(p.msg, hint=p.hint, id=p.id) for p in schedule.problems())
    yield from _defaults_in_use()
    yield from _tasks_backport_missing()
    for queue in get_settings().queues.values():
        if queue.handler is None:
            continue
        try:
            handler = import_string(queue.handler)
        except ImportError as exc:
            handler, reason = None, f"cannot be imported: {exc}"
        else:
            reason = "is not callable"
        if not callable(handler):
            yield checks.Error(
                f"The HANDLER of queue {queue.name!r}, {queue.handler!r}, {reason}.",
                hint="Give the dotted path of a function taking a Blueque task and returning a string or None.",
                id="django_blueque.E024",
            )


def _defaults_in_use() -> Iterable[checks.CheckMessage]:
    raw = getattr(settings, "BLUEQUE", None)
    config = get_settings()
    if raw is None or (config.redis_url == DEFAULT_REDIS_URL and not raw.get("REDIS_URL")):
        yield checks.Info(
            f"BLUEQUE names no Redis: using {DEFAULT_REDIS_URL}"
            + ("" if raw and raw.get("QUEUES") else f", with one queue, {DEFAULT_QUEUE!r}")
            + ".",
            hint='Set BLUEQUE = {"REDIS_URL": ..., "QUEUES": {...}} (see docs/settings.md) to say so yourself.',
            id="django_blueque.I001",
        )


def _tasks_backport_missing() -> Iterable[checks.CheckMessage]:
    """On Django 5.2 the Tasks API is the django-tasks backport, whose checks run only if it is installed."""
    if django.VERSION >= (6, 0) or apps.is_installed("django_tasks"):
        return
    backend = "django_blueque.backends.BluequeBackend"
    if any(options.get("BACKEND") == backend for options in getattr(settings, "TASKS", {}).values()):
        yield checks.Error(
            f"TASKS uses {backend}, but 'django_tasks' is not in INSTALLED_APPS: on Django {django.get_version()} "
            "the backend's own checks (queues no worker serves, Redis unreachable) never run.",
            hint="Add 'django_tasks' to INSTALLED_APPS (the Tasks API backport, until Django 6).",
            id="django_blueque.E018",
        )
