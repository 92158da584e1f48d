"""The peer backends' tests that need a real worker process, re-stated for BluequeBackend.

Ported from django-tasks-db's ``tests/tests.py``
(``DatabaseWorkerProcessTestCase``: ``manage.py db_worker`` as a subprocess)
with ``manage.py blueque_worker``, and, run by such a worker rather than in
the test's process, the success, failure, context and ``SystemExit`` tests
of both peers' backend test cases (django-tasks-rq's ``RQBackendTestCase``
and django-tasks-db's ``DatabaseBackendWorkerTestCase``; the in-process
ports are in ``tests/django/test_peer_backends.py``).

Differences, by design (see docs/worker.md, *Stopping*):

- ``test_repeat_ctrl_c``: a second SIGINT puts the running task back in
  pending (Blueque never loses a task), where ``db_worker`` fails it with
  ``SystemExit``.
- ``test_kill``: as with ``db_worker``, the task still reads RUNNING right
  after its worker is killed; here it is recovered later (tests/workers/
  test_recovery.py), which the peer has as an open issue.
- ``test_multiple_workers``: the peer counts ids in ``db_worker``'s output;
  this checks each task ran exactly once from the tasks' own journal.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from django_blueque.compat import TaskResultStatus
from django_blueque.protocol import Client
from tests.workers import tasks as test_tasks
from tests.workers.conftest import Spawn, events, wait_for

#: How long a worker may take to exit once asked to (a Django start-up included for burst runs).
EXIT_TIMEOUT = 30


def assert_status(result: Any, status: TaskResultStatus) -> None:
    """``result.status == status``, without letting mypy take the status as fixed for later lines."""
    assert result.status == status


def assert_ran_in_order(result: Any) -> None:
    assert result.started_at is not None
    assert result.last_attempted_at is not None
    assert result.finished_at is not None
    assert result.enqueued_at <= result.started_at <= result.finished_at


def wait_until_running(result: Any, timeout: float = 20) -> None:
    def running() -> bool:
        result.refresh()
        return bool(result.status == TaskResultStatus.RUNNING)

    wait_for(running, timeout, f"task {result.id} to run")


def test_run_subprocess(blueque: Client, spawn_worker: Spawn) -> None:
    result = test_tasks.calculate_meaning_of_life.enqueue()

    process = spawn_worker("--burst")
    assert process.wait(EXIT_TIMEOUT) == 0

    assert_status(result, TaskResultStatus.READY)
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert_ran_in_order(result)
    assert result.attempts == 1
    assert result.worker_ids == [blueque.get_task(result.id).node]


def test_failing_task(spawn_worker: Spawn) -> None:
    # DB's test_failing_task and RQ's test_catches_exception, with a worker process.
    result = test_tasks.failing_task_value_error.enqueue()

    assert spawn_worker("--burst").wait(EXIT_TIMEOUT) == 0

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert_ran_in_order(result)
    assert result.errors[0].exception_class is ValueError
    traceback = result.errors[0].traceback
    assert traceback.endswith("ValueError: This Task failed due to ValueError\n"), traceback
    assert 'raise ValueError("This Task failed due to ValueError")' in traceback
    assert result.attempts == 1


def test_context(spawn_worker: Spawn) -> None:
    # Both peers' test_takes_context and test_context, with a worker process.
    task_id = test_tasks.get_task_id.enqueue()
    context = test_tasks.check_context.enqueue(1)

    assert spawn_worker("--burst").wait(EXIT_TIMEOUT) == 0

    task_id.refresh()
    context.refresh()
    assert task_id.return_value == task_id.id
    assert context.status == TaskResultStatus.SUCCESSFUL
    assert context.return_value == {"attempt": 1, "worker_ids": context.worker_ids}
    assert len(context.worker_ids) == 1


def test_interrupt_no_tasks(blueque: Client, spawn_worker: Spawn) -> None:
    process = spawn_worker()
    wait_for(lambda: blueque.queue_stats(["default"])["default"].listeners > 0, 20, "the worker to listen")

    process.terminate()

    # The peer's 0.5s, with room for a loaded machine: the worker stops within milliseconds of
    # the signal (its log says so), the rest is the interpreter's exit.
    assert process.wait(timeout=2) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_signals(blueque: Client, spawn_worker: Spawn, sig: signal.Signals) -> None:
    result = test_tasks.nap.enqueue(2)
    assert blueque.get_task(result.id).node is None

    process = spawn_worker()
    wait_until_running(result)
    assert result.worker_ids != []

    process.send_signal(sig)

    # The running task finishes, then the worker exits.
    assert process.wait(timeout=EXIT_TIMEOUT) == 0
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL


def test_repeat_ctrl_c(blueque: Client, spawn_worker: Spawn) -> None:
    result = test_tasks.hang.enqueue()

    process = spawn_worker()
    wait_until_running(result)
    worker_ids = result.worker_ids
    assert len(worker_ids) == 1

    process.send_signal(signal.SIGINT)
    time.sleep(0.5)

    assert process.poll() is None
    result.refresh()
    assert_status(result, TaskResultStatus.RUNNING)
    assert result.worker_ids == worker_ids

    process.send_signal(signal.SIGINT)

    assert process.wait(timeout=EXIT_TIMEOUT) == 0
    # The peer fails it with SystemExit; Blueque puts it back in pending (documented).
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert blueque.get_task(result.id).status == "pending"


def test_kill(blueque: Client, spawn_worker: Spawn) -> None:
    result = test_tasks.hang.enqueue()

    process = spawn_worker()
    wait_until_running(result)

    process.kill()

    assert process.wait(timeout=EXIT_TIMEOUT) == -signal.SIGKILL
    result.refresh()
    # Until recovery gives it to another worker.
    assert result.status == TaskResultStatus.RUNNING


@pytest.mark.parametrize(
    ("task", "exception"),
    [
        (test_tasks.failing_task_system_exit, SystemExit),
        (test_tasks.failing_task_keyboard_interrupt, KeyboardInterrupt),
    ],
    ids=["test_system_exit_task", "test_keyboard_interrupt_task"],
)
def test_exiting_task(spawn_worker: Spawn, task: Any, exception: type[BaseException]) -> None:
    # DB's test_system_exit_task and test_keyboard_interrupt_task.
    result = task.enqueue()

    assert spawn_worker("--burst").wait(timeout=EXIT_TIMEOUT) == 0

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is exception
    traceback = result.errors[0].traceback
    assert traceback.endswith(f"{exception.__name__}: This Task failed due to {exception.__name__}\n"), traceback


def test_multiple_workers(blueque: Client, spawn_worker: Spawn) -> None:
    results = [test_tasks.sleep.enqueue(0.1) for _ in range(10)]

    processes = [spawn_worker("--burst", "--concurrency", "1") for _ in range(3)]

    for process in processes:
        assert process.wait(timeout=EXIT_TIMEOUT) == 0

    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert [event for event, _, _ in events(blueque, result.id)] == ["start", "end"]
