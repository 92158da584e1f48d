"""``BLUEQUE["SCHEDULE"]``: periodic tasks, read into the protocol scheduler's entries.

::

    BLUEQUE = {
        "SCHEDULE": {
            "nightly-report": {"TASK": "myapp.tasks.make_report", "KWARGS": {"kind": "daily"}, "CRON": "0 3 * * *"},
            "poll-feeds": {"TASK": "myapp.tasks.poll", "EVERY": 60, "SKIP_IF_RUNNING": True},
            "legacy": {"QUEUE": "video", "PARAMETERS": "{...}", "EVERY": 300, "MISSED": "skip"},
        }
    }

``TASK`` names a Django task (run on its own queue and backend); ``QUEUE``
with ``PARAMETERS`` enqueues a raw Blueque task. ``CRON`` (five fields, in
``settings.TIME_ZONE``) or ``EVERY`` (seconds, at whole multiples since the
epoch). ``SKIP_IF_RUNNING`` skips an occurrence while the previous run is
pending or running. ``MISSED``: after all schedulers were down, ``"once"``
(the default) runs the latest missed occurrence once, ``"skip"`` waits for
the next one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from . import payload
from .protocol import RUN_ONCE, SKIP, Cron, CronError, Every, PeriodicTask
from .validation import Problem

ENTRY_KEYS = frozenset({"TASK", "QUEUE", "PARAMETERS", "ARGS", "KWARGS", "CRON", "EVERY", "SKIP_IF_RUNNING", "MISSED"})


def _raw() -> Any:
    blueque = getattr(settings, "BLUEQUE", None)
    return blueque.get("SCHEDULE", {}) if isinstance(blueque, dict) else {}


def _entry_problem(name: str, entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "must be a dict"
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        return f"has unknown keys {unknown!r}"
    if ("TASK" in entry) == ("QUEUE" in entry):
        return "needs either TASK (a Django task) or QUEUE with PARAMETERS (a raw task)"
    if "QUEUE" in entry and not isinstance(entry.get("PARAMETERS"), str):
        return "needs PARAMETERS, a string, with QUEUE"
    if ("CRON" in entry) == ("EVERY" in entry):
        return "needs either CRON or EVERY"
    if "CRON" in entry:
        try:
            Cron.parse(str(entry["CRON"]))
        except CronError as exc:
            return f"has a bad CRON: {exc}"
    every = entry.get("EVERY", 1)
    if not isinstance(every, int | float) or isinstance(every, bool) or every <= 0:
        return "needs EVERY to be a positive number of seconds"
    if entry.get("MISSED", RUN_ONCE) not in (RUN_ONCE, SKIP):
        return f"needs MISSED to be {RUN_ONCE!r} or {SKIP!r}"
    if not isinstance(entry.get("ARGS", []), list) or not isinstance(entry.get("KWARGS", {}), dict):
        return "needs ARGS to be a list and KWARGS a dict"
    try:
        json.dumps([entry.get("ARGS", []), entry.get("KWARGS", {})])
    except (TypeError, ValueError):
        return "has ARGS or KWARGS that JSON cannot hold"
    if "TASK" in entry:
        try:
            payload.resolve(str(entry["TASK"]))
        except payload.NotADjangoTask as exc:
            return f"has a bad TASK: {exc}"
    return None


def problems() -> list[Problem]:
    """What is wrong with ``BLUEQUE["SCHEDULE"]`` (imports the tasks it names)."""
    raw = _raw()
    if not isinstance(raw, dict):
        return [Problem("django_blueque.E025", "BLUEQUE['SCHEDULE'] must be a dict.", "Name each periodic task.")]
    found = []
    for name, entry in raw.items():
        reason = _entry_problem(str(name), entry)
        if reason is not None:
            found.append(
                Problem(
                    "django_blueque.E014",
                    f"Periodic task {name!r} in BLUEQUE['SCHEDULE'] {reason}.",
                    "See the SCHEDULE section of docs/settings.md.",
                )
            )
    return found


def periodic_tasks() -> list[PeriodicTask]:
    """The scheduler's entries for ``BLUEQUE["SCHEDULE"]`` (checked by :func:`problems` first)."""
    try:
        zone = ZoneInfo(settings.TIME_ZONE or "UTC")
    except ZoneInfoNotFoundError:
        zone = ZoneInfo("UTC")
    entries = []
    for name, entry in _raw().items():
        schedule = Cron.parse(entry["CRON"]) if "CRON" in entry else Every(float(entry["EVERY"]))
        build: Callable[[], str]
        if "TASK" in entry:
            task = payload.resolve(entry["TASK"])
            queue = task.queue_name
            args, kwargs = list(entry.get("ARGS", [])), dict(entry.get("KWARGS", {}))
            build = partial(payload.encode, task, args, kwargs, task.backend)
        else:
            queue = entry["QUEUE"]
            build = partial(str, entry["PARAMETERS"])
        entries.append(
            PeriodicTask(
                name=str(name),
                queue=queue,
                parameters=build,
                schedule=schedule,
                zone=zone,
                skip_if_running=bool(entry.get("SKIP_IF_RUNNING", False)),
                missed=entry.get("MISSED", RUN_ONCE),
            )
        )
    return entries
