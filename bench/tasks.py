"""Django tasks for the worker benchmarks (``head_of_line.py``, ``long_task.py``).

The worker imports this module by its path (``bench.tasks``), so it must run with the
repository root on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import time

import redis
from django.conf import settings

from django_blueque.compat import TaskContext, task


def journal_key(task_id: str) -> str:
    """The Redis list where :func:`long_run` records its starts and ends."""
    return f"bench_journal_{task_id}"


def _journal(context: TaskContext, event: str) -> None:
    conn = redis.Redis.from_url(str(settings.BLUEQUE["REDIS_URL"]))
    try:
        conn.rpush(journal_key(context.task_result.id), f"{event} {os.getpid()} {time.time()!r}")
    finally:
        conn.close()


@task
def noop() -> None:
    return None


@task
def nap(seconds: float) -> float:
    """Sleeps without touching Redis."""
    time.sleep(seconds)
    return seconds


@task(takes_context=True)
def long_run(context: TaskContext, seconds: float) -> float:
    """Sleeps for ``seconds``, recording "start" and "end" (with pid and time) in its journal."""
    _journal(context, "start")
    time.sleep(seconds)
    _journal(context, "end")
    return seconds
