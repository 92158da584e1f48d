"""System checks for the ``BLUEQUE`` setting (ids ``django_blueque.E0xx``; see docs/settings.md).

The problems found in the setting itself are validation.py's; these add the
ones that need the project's code imported (handlers, SCHEDULE's tasks), and
:func:`check_redis_server` what the Redis server's own configuration risks.

The checks of a ``TASKS`` backend (unknown queue, unreachable Redis) run
through Django's Tasks framework, from ``BluequeBackend.check()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import django
import redis
from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from . import schedule
from .conf import DEFAULT_QUEUE, DEFAULT_REDIS_URL, get_settings
from .connection import get_client
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


def check_redis_server(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Iterable[checks.CheckMessage]:
    """Warn of a Redis that may lose tasks: one that evicts keys (W002), one without an append-only file (W003).

    One ``INFO`` round trip. Says nothing when the setting has problems (the
    errors say it) or Redis does not answer (W001, the backend's, says that).
    """
    if problems():
        return
    try:
        connection = get_client().redis
        info = connection.info()
    except redis.RedisError:
        return
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if int(info.get("maxmemory", 0)) and policy != "noeviction":
        yield checks.Warning(
            f"Redis may evict keys when it is full (maxmemory-policy {policy}): a task's hash, or the list that "
            "holds its id, could vanish"
            + (", and results before their RESULT_TTL." if policy.startswith("volatile") else "."),
            hint="Set maxmemory-policy noeviction: a full Redis then refuses new tasks (enqueue raises "
            "EnqueueError) instead of dropping old ones.",
            id="django_blueque.W002",
        )
    if not int(info.get("aof_enabled", 0)):
        yield checks.Warning(
            f"Redis keeps no append-only file (appendonly no){_snapshots(connection)}: if it crashes or restarts, "
            "tasks enqueued, taken or finished since the last snapshot are lost or run again.",
            hint="Run Redis with appendonly yes (appendfsync everysec risks one second of changes, always none). "
            "On a development machine, add this check's id to SILENCED_SYSTEM_CHECKS.",
            id="django_blueque.W003",
        )


def _snapshots(connection: redis.Redis) -> str:
    """What RDB snapshots the server takes, for W003's message ("" where CONFIG is not allowed)."""
    try:
        save = connection.config_get("save").get("save", "")
    except redis.RedisError:  # managed services often disable CONFIG
        return ""
    if isinstance(save, bytes):
        save = save.decode()
    return f", only RDB snapshots ({save})" if save else " and takes no snapshots"
