"""System checks for the ``BLUEQUE`` setting (ids ``django_blueque.E0xx``; see docs/settings.md).

The checks of a ``TASKS`` backend (unknown queue, unreachable Redis) run
through Django's Tasks framework, from ``BluequeBackend.check()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.utils.module_loading import import_string

from . import schedule
from .conf import get_settings, problems


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Iterable[checks.CheckMessage]:
    found = problems()
    yield from (checks.Error(problem.msg, hint=problem.hint, id=problem.id) for problem in found)
    if found:
        return
    yield from (checks.Error(p.msg, hint=p.hint, id=p.id) for p in schedule.problems())
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
                id="django_blueque.E009",
            )
