"""Automatic retries: through the scheduled set, every attempt's error kept, signals."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.management import call_command
from pytest_django import Settings as SettingsWrapper

from django_blueque import signals
from django_blueque.compat import TaskResultStatus
from django_blueque.protocol import Client
from django_blueque.retry import RetryPolicy, retry
from django_blueque.testing import run_pending_tasks
from tests.django import tasks as test_tasks


def run_until_done(blueque: Client, rounds: int = 10) -> int:
    """Run pending tasks, then move retries due to pending, until none is left; return tasks run."""
    ran = 0
    for _ in range(rounds):
        ran += run_pending_tasks()
        if not any(blueque.get_queue(name).enqueue_due_tasks(now=time.time() + 1) for name in ("default", "raw")):
            return ran
    raise AssertionError("still retrying")


def test_a_flaky_task_succeeds_on_a_later_attempt(blueque: Client) -> None:
    result = test_tasks.flaky.enqueue(succeed_on=3)
    assert run_pending_tasks() == 1
    waiting = test_tasks.flaky.get_result(result.id)
    assert waiting.status == TaskResultStatus.READY
    assert blueque.get_task(result.id).status == "scheduled"
    assert [e.exception_class for e in waiting.errors] == [ValueError]
    assert run_until_done(blueque) == 2
    done = test_tasks.flaky.get_result(result.id)
    assert (done.status, done.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert [e.traceback.splitlines()[-1] for e in done.errors] == [
        "ValueError: attempt 1 failed",
        "ValueError: attempt 2 failed",
    ]
    assert blueque.get_task(result.id).fields["attempt"] == "3"


def test_each_attempt_is_counted_as_django_counts_them(blueque: Client) -> None:
    result = test_tasks.flaky.enqueue(succeed_on=3)
    run_until_done(blueque)
    # TaskContext.attempt and TaskResult.attempts are len(worker_ids) in Django: one entry per attempt.
    assert test_tasks.CONTEXT_ATTEMPTS[result.id] == [1, 2, 3]
    done = test_tasks.flaky.get_result(result.id)
    assert done.attempts == 3
    assert done.worker_ids[-1] == blueque.get_task(result.id).node


def test_the_last_allowed_attempt_fails_for_good(blueque: Client) -> None:
    result = test_tasks.flaky.enqueue(succeed_on=10)
    assert run_until_done(blueque) == 3
    failed = test_tasks.flaky.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    assert [e.traceback.splitlines()[-1] for e in failed.errors] == [
        f"ValueError: attempt {n} failed" for n in (1, 2, 3)
    ]


def test_exceptions_outside_the_policy_are_not_retried(blueque: Client) -> None:
    result = test_tasks.flaky.enqueue(succeed_on=3, error="TypeError")
    assert run_until_done(blueque) == 1
    assert test_tasks.flaky.get_result(result.id).status == TaskResultStatus.FAILED


def test_a_raw_handler_can_ask_for_a_retry(blueque: Client, settings: SettingsWrapper) -> None:
    settings.BLUEQUE = {
        **settings.BLUEQUE,
        "QUEUES": {**settings.BLUEQUE["QUEUES"], "raw": {"HANDLER": "tests.django.tasks.retry_raw"}},
    }
    task_id = blueque.get_queue("raw").enqueue("feed")
    assert run_until_done(blueque) == 2
    task = blueque.get_task(task_id)
    assert (task.status, task.result, task.exception) == ("complete", "second time lucky", "builtins.ConnectionError")


def test_monitors_signal_retries_and_only_the_final_failure(blueque: Client) -> None:
    seen: list[tuple[str, str]] = []

    def on_retrying(sender: str, task: Any, error: str, eta: float, **kwargs: Any) -> None:
        seen.append(("retrying", error))

    def on_failed(sender: str, task: Any, error: str, **kwargs: Any) -> None:
        seen.append(("failed", error))

    signals.task_retrying.connect(on_retrying)
    signals.task_failed.connect(on_failed)
    try:
        test_tasks.flaky.enqueue(succeed_on=10)
        run_until_done(blueque)
        call_command("blueque_monitor", "--burst")
    finally:
        signals.task_retrying.disconnect(on_retrying)
        signals.task_failed.disconnect(on_failed)
    assert seen == [("retrying", "attempt 1 failed"), ("retrying", "attempt 2 failed"), ("failed", "attempt 3 failed")]


def test_backoff_grows_with_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, backoff=10, factor=3, max_backoff=100, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [10, 30, 90, 100]
    jittered = RetryPolicy(max_attempts=5, backoff=10)
    assert all(5 <= jittered.delay(1) <= 10 for _ in range(50))


@pytest.mark.parametrize("options", [{"max_attempts": 0}, {"backoff": -1}, {"factor": 0.5}, {"on": (int,)}, {"on": ()}])
def test_bad_policies_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|on"):
        retry(**options)


def test_a_return_value_json_cannot_hold_fails_at_once_without_a_retry(blueque: Client) -> None:
    """Retrying would run the work again only to fail the same way."""
    result = test_tasks.returns_a_set.enqueue()
    run_until_done(blueque)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert test_tasks.RETURNS_A_SET_RUNS.count(result.id) == 1
    assert "TypeError" in result.errors[-1].traceback
    assert "returns_a_set returned a value JSON cannot hold" in result.errors[-1].traceback


def test_a_return_value_of_nan_fails_the_task(blueque: Client) -> None:
    """NaN is not JSON: other clients could not read the result (arguments are refused alike)."""
    result = test_tasks.returns_nan.enqueue()
    run_until_done(blueque)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert "ValueError" in result.errors[-1].traceback
