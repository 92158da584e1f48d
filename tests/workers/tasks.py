"""Tasks for the worker tests. Each records its runs in Redis (a list per
task id: "start <pid> <time>" and "end <pid> <time>"), so tests can check
that nothing ran twice at once, or at all when it should not have."""

from __future__ import annotations

import os
import signal
import time

import redis
from django.conf import settings

from django_blueque.compat import TaskContext, task
from django_blueque.protocol.errors import Retry


def _journal(context: TaskContext, event: str) -> None:
    conn = redis.Redis.from_url(str(settings.BLUEQUE["REDIS_URL"]))
    conn.rpush(f"test_journal_{context.task_result.id}", f"{event} {os.getpid()} {time.time()}")
    conn.close()


@task(takes_context=True)
def sleep(context: TaskContext, seconds: float) -> float:
    _journal(context, "start")
    time.sleep(seconds)
    _journal(context, "end")
    return seconds


@task(takes_context=True)
def kill_own_process(context: TaskContext) -> None:
    _journal(context, "start")
    os.kill(os.getpid(), signal.SIGKILL)


@task
def noop() -> None:
    return None


@task
def nap(seconds: float) -> float:
    """Sleeps without touching Redis (for tests where Redis goes away)."""
    time.sleep(seconds)
    return seconds


@task(takes_context=True)
def retry_after(context: TaskContext, delay: str) -> None:
    """Asks to run again after ``float(delay)`` seconds ("inf", "nan", "-1": delays JSON cannot carry as numbers)."""
    _journal(context, "start")
    raise Retry(float(delay))


@task(takes_context=True)
def interrupt(context: TaskContext) -> None:
    """Raises KeyboardInterrupt itself (what some libraries do on their own signals)."""
    _journal(context, "start")
    raise KeyboardInterrupt("the task's own")


@task(takes_context=True)
def exit_now(context: TaskContext) -> None:
    _journal(context, "start")
    raise SystemExit(3)


# For tests/workers/test_peer_backends.py (after django-tasks-rq's and django-tasks-db's tests/tasks.py).


@task
def calculate_meaning_of_life() -> int:
    return 42


@task
def failing_task_value_error() -> None:
    raise ValueError("This Task failed due to ValueError")


@task
def failing_task_system_exit() -> None:
    raise SystemExit("This Task failed due to SystemExit")


@task
def failing_task_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("This Task failed due to KeyboardInterrupt")


@task
def hang() -> None:
    """Does nothing for 5 minutes."""
    time.sleep(300)


@task(takes_context=True)
def get_task_id(context: TaskContext) -> str:
    return str(context.task_result.id)


@task(takes_context=True)
def check_context(context: TaskContext, attempt: int) -> dict[str, object]:
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt
    return {"attempt": context.attempt, "worker_ids": context.task_result.worker_ids}
