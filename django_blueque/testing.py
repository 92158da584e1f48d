"""Helpers for testing projects that use django-blueque."""

from __future__ import annotations

from functools import partial

from .conf import get_settings
from .connection import get_client
from .execution import run_task
from .protocol import inline_runner


def run_pending_tasks(*queues: str, max_tasks: int | None = None) -> int:
    """Run the pending tasks of ``queues`` (default: every configured queue) in this process.

    Tasks run one after another, in the calling process and inside the test's
    database transaction, so what they do (database writes, signals) is
    visible to the test. Returns how many ran.
    """
    names = queues or tuple(get_settings().queues)
    return inline_runner.run(get_client(), names, partial(run_task, manage_connections=False), max_tasks=max_tasks)
