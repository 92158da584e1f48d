"""Django tasks used by the backend tests (after Django's own tests/tasks/tasks.py)."""

import time
from typing import Any

from django_blueque.compat import TaskContext, task
from django_blueque.progress import report_progress
from django_blueque.retry import Retry, retry


@task
def noop_task(*args: Any, **kwargs: Any) -> None:
    return None


@task
async def noop_task_async(*args: Any, **kwargs: Any) -> None:
    return None


@task
def calculate_meaning_of_life() -> int:
    return 42


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
def failing_task_value_error() -> None:
    raise ValueError("This Task failed due to ValueError")


@task
def failing_task_system_exit() -> None:
    raise SystemExit("This Task failed due to SystemExit")


@task
def complex_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task
def complex_return_value() -> object:
    return object()  # not JSON: the task fails with TypeError


@task(takes_context=True)
def get_task_id(context: TaskContext) -> str:
    return str(context.task_result.id)


@task(takes_context=True)
def context_attempt(context: TaskContext, value: int) -> dict[str, Any]:
    return {"attempt": context.attempt, "value": value, "worker_ids": context.task_result.worker_ids}


@task
def with_progress() -> str:
    report_progress(0.5, "halfway")
    return "done"


def not_a_task() -> str:
    return "a plain function must never run from Redis"


def shout(blueque_task: Any) -> str:
    """A raw Blueque handler."""
    return str(blueque_task.parameters).upper()


#: Attempts seen per task id, by the flaky tasks below (they run in this process).
ATTEMPTS: dict[str, int] = {}
#: What ``context.attempt`` said at each run, per task id.
CONTEXT_ATTEMPTS: dict[str, list[int]] = {}


@task(takes_context=True)
@retry(max_attempts=3, backoff=0, jitter=False, on=ValueError)
def flaky(context: TaskContext, succeed_on: int, error: str = "ValueError") -> int:
    attempt = ATTEMPTS[context.task_result.id] = ATTEMPTS.get(context.task_result.id, 0) + 1
    CONTEXT_ATTEMPTS.setdefault(context.task_result.id, []).append(context.attempt)
    if attempt < succeed_on:
        raise (ValueError if error == "ValueError" else TypeError)(f"attempt {attempt} failed")
    return attempt


def retry_raw(blueque_task: Any) -> str:
    """A raw handler asking for another attempt itself."""
    if blueque_task.fields.get("attempt") is None:
        raise Retry(0) from ConnectionError("feed unreachable")
    return "second time lucky"


# Tasks for tests/django/test_peer_backends.py (after django-tasks-rq's and django-tasks-db's tests/tasks.py).


@task
def failing_task_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("This Task failed due to KeyboardInterrupt")


@task
def exit_task() -> None:
    exit(1)


@task
def complex_return_value_lambda() -> object:
    return lambda: True  # neither JSON nor picklable: the task fails with TypeError


@task
def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


@task(takes_context=True)
def check_context(context: TaskContext, attempt: int) -> None:
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt


RETURNS_A_SET_RUNS: list[str] = []


@task(takes_context=True)
@retry(max_attempts=3, backoff=0, jitter=False)
def returns_a_set(context: TaskContext) -> Any:
    RETURNS_A_SET_RUNS.append(context.task_result.id)
    return {1, 2}  # not JSON: no attempt could store it, so none is retried


@task
def returns_nan() -> float:
    return float("nan")
