"""The backend behaviour tests of two peer Tasks backends, re-stated for BluequeBackend.

Ported from django-tasks-rq's ``tests/tests.py`` (``RQBackendTestCase``,
``CompatTestCase``) and django-tasks-db's ``tests/tests.py``
(``DatabaseBackendTestCase``, ``DatabaseBackendWorkerTestCase``,
``CompatTestCase``), keeping their test names where they fit; a test both
peers have is ported once (the stricter of the two). Their worker step is ours: tasks
run through ``run_pending_tasks()``, the code a worker runs, in this
process; ``tests/workers/test_peer_backends.py`` ports the tests that need a
real ``manage.py blueque_worker`` process (and a few of these again, run by
one). A peer's direct write to its own storage (an RQ job's meta, a
``DBTaskResult`` row) becomes the same change to the Blueque task's hash.

Re-stated where our documented behaviour differs:

- ``test_invalid_task_path``: the peers refuse to read a result whose path
  names a callable that is not a ``Task`` (``SuspiciousOperation``); ours
  reads it with the stand-in docs/tasks.md describes for a task whose
  function is gone (it raises ``ImportError`` if called), and the worker
  fails it without calling the callable
  (``test_invalid_task_path_fails_in_the_worker``).
- ``test_complex_return_value``: ``TypeError`` as with the DB backend; the
  message is that of Django's ``normalize_json`` ("Unsupported type"), not of
  the database's JSON encoder.
- RQ ``test_rq_app_missing`` and DB ``test_database_backend_app_missing`` are
  ``test_app_missing``; RQ ``test_uses_rq_queues_for_queue_names`` is
  ``test_uses_blueque_queues_for_queue_names``; DB ``test_refresh_result``
  (an outcome written by another process) is ``test_refresh_result_written_elsewhere``.

Left out, and why:

- RQ ``test_enqueue_priority`` (in the peer's history): priority is not
  supported (``supports_priority = False``, documented); Django's
  ``validate_task`` refuses it, see ``test_priority_is_refused``.
- RQ ``test_complex_return_value``'s message: RQ-specific (RQ's
  ``UNSERIALIZABLE_RETURN_VALUE_PAYLOAD`` under ``Exception``); the DB
  variant (``TypeError``) is ported.
- RQ ``test_meaning_of_life_view``, ``test_get_result_from_different_request``
  (in the peer's history): views of the peer's own test project; reading a
  result from another process is ``test_get_result_in_another_process``.
- RQ ``test_wait_until_transaction_by_default``,
  ``test_task_specific_enqueue_on_commit`` (in the peer's history): the
  per-task ``enqueue_on_commit`` was removed from Django's Tasks API, and our
  default is off (documented); ``test_wait_until_transaction_commit`` and
  ``test_doesnt_wait_until_transaction_commit`` are ported.
- DB ``test_enqueue_task``'s ``assertNumQueries``, ``test_get_result``'s
  ``assertNumQueries``, ``test_index_scan_for_ready``,
  ``test_priority_range_check``, ``test_run_after_null_0016_migration``,
  ``test_worker_with_locked_rows``: DB-specific (SQL queries, indexes,
  constraints, migrations, row locks).
- DB ``test_custom_id_function``, ``test_unknown_id_function``,
  ``test_postgres_db_id_function``, ``test_postgres_id_function_expression``:
  DB-specific (the ``id_function`` option; our ids are always UUID4, checked
  in ``test_enqueue_task``).
- DB ``test_run_after_priority``: its priority ordering is not supported,
  nor is its ordering of ready tasks by ``run_after``: as in Blueque 1.0.1, a
  ``run_after`` already past enqueues the task at once, in enqueue order.
  The ``run_after`` ordering of tasks that become due is ported as
  ``test_run_after_order``.
- DB ``test_doesnt_process_different_backend``, ``test_unknown_backend``,
  ``test_incorrect_backend``: DB-specific (``db_worker --backend``; a
  Blueque worker serves queues, and runs each task with the backend alias it
  was enqueued with).
- DB ``test_negative_interval``, ``test_infinite_interval``,
  ``test_fractional_interval``, ``test_too_long_worker_id``,
  ``test_empty_worker_id``: DB-specific ``db_worker`` options (a Blueque
  worker blocks in Redis instead of polling, and names its listeners
  itself); ``test_negative_max_tasks`` is ported.
- DB ``test_process_all_queues_excluding_one_queue``,
  ``test_exclude_queues_requires_processing_all_queues``,
  ``test_excluding_unknown_queue_processes_selected_queues``: DB-specific
  (``--queue-name=*`` and ``--exclude-queues``); a worker serves the queues
  named, or all: ``test_process_all_queues``.
- DB ``test_verbose_logging``: DB-specific (``db_worker``'s own output
  lines); the Tasks framework's log lines are ported
  (``test_started_finished_logs``, ``test_failed_logs``).
- DB ``DatabaseTaskResultTestCase``, ``ConnectionExclusiveTranscationTestCase``,
  ``DatabaseBackendPruneTaskResultsTestCase``, ``DBTaskResultOrderingTestCase``,
  ``AdminTestCase``: DB-specific (row locking, SQLite transactions, the
  ``prune_db_task_results`` command, priority ordering of rows, its admin).
- DB ``DatabaseWorkerProcessTestCase``: ported in
  ``tests/workers/test_peer_backends.py``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from django_blueque import compat
from django_blueque.backends import BluequeBackend
from django_blueque.compat import (
    InvalidTaskError,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
)
from django_blueque.protocol import Client
from django_blueque.testing import run_pending_tasks
from tests.django import tasks as test_tasks
from tests.django.conftest import BACKEND

pytestmark = pytest.mark.usefixtures("blueque")

ROOT = Path(__file__).resolve().parents[2]

#: The logger of the Tasks framework's lifecycle lines (``Task id=... state=...``).
TASKS_LOGGER = "django_tasks" if compat.TASKS_APP else "django.tasks"

NOOP_TASKS = [test_tasks.noop_task, test_tasks.noop_task_async]


def default_backend() -> BluequeBackend:
    return cast(BluequeBackend, task_backends["default"])


@pytest.fixture
def enqueued_signals() -> Any:
    received: list[tuple[type, Any]] = []

    def capture(sender: type, task_result: Any, **kwargs: Any) -> None:
        received.append((sender, task_result))

    task_enqueued.connect(capture, dispatch_uid="peer_enqueue_signal", weak=False)
    yield received
    task_enqueued.disconnect(capture, dispatch_uid="peer_enqueue_signal")


def assert_ready(result: Any) -> None:
    """What a result reads before a worker ran it (both peers' ``test_enqueue_task``)."""
    assert result.status == TaskResultStatus.READY
    assert not result.is_finished
    assert result.started_at is None
    assert result.last_attempted_at is None
    assert result.finished_at is None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert result.attempts == 0


def assert_status(result: Any, status: TaskResultStatus) -> None:
    """``result.status == status``, without letting mypy take the status as fixed for later lines."""
    assert result.status == status


def assert_ran_in_order(result: Any) -> None:
    assert result.started_at is not None
    assert result.last_attempted_at is not None
    assert result.finished_at is not None
    assert result.started_at >= result.enqueued_at
    assert result.finished_at >= result.started_at


def enqueue_raw(blueque: Client, task_path: str, args: list[Any] | None = None) -> str:
    """A Blueque task naming ``task_path``, written without the backend (the peers' ``objects.create``)."""
    parameters = {"django_task": task_path, "args": args or [], "kwargs": {}, "backend": "default"}
    return blueque.get_queue("default").enqueue(json.dumps(parameters))


# RQBackendTestCase and DatabaseBackendTestCase


def test_using_correct_backend() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, BluequeBackend)
    assert backend.alias == "default"
    assert backend.options == {}


@pytest.mark.parametrize("task", NOOP_TASKS, ids=["sync", "async"])
def test_enqueue_task(task: Any, enqueued_signals: list[tuple[type, Any]]) -> None:
    result = task.enqueue(1, two=3)

    assert uuid.UUID(result.id).version == 4
    assert_ready(result)
    assert result.task == task
    assert result.args == [1]
    assert result.kwargs == {"two": 3}
    assert enqueued_signals == [(BluequeBackend, result)]


@pytest.mark.parametrize("task", NOOP_TASKS, ids=["sync", "async"])
def test_enqueue_task_async(task: Any, enqueued_signals: list[tuple[type, Any]]) -> None:
    result = async_to_sync(task.aenqueue)()

    assert uuid.UUID(result.id).version == 4
    assert_ready(result)
    assert result.task == task
    assert result.args == []
    assert result.kwargs == {}
    assert enqueued_signals == [(BluequeBackend, result)]


@pytest.mark.parametrize(
    ("task", "exception", "message"),
    [
        (test_tasks.failing_task_value_error, ValueError, "This Task failed due to ValueError"),
        (test_tasks.failing_task_system_exit, SystemExit, "This Task failed due to SystemExit"),
    ],
)
def test_catches_exception(task: Any, exception: type[BaseException], message: str) -> None:
    result = task.enqueue()

    assert run_pending_tasks() == 1
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert result.is_finished
    assert_ran_in_order(result)
    assert result.errors[0].exception_class is exception
    traceback = result.errors[0].traceback
    assert traceback and traceback.endswith(f"{exception.__name__}: {message}\n"), traceback
    assert result.task == task
    assert result.args == []
    assert result.kwargs == {}
    assert result.attempts == 1


def test_complex_exception() -> None:
    result = test_tasks.complex_exception.enqueue()

    run_pending_tasks()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert_ran_in_order(result)
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert result._return_value is None
    assert result.errors[0].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in result.errors[0].traceback
    assert result.task == test_tasks.complex_exception
    assert (result.args, result.kwargs, result.attempts) == ([], {}, 1)


def test_complex_return_value() -> None:
    # DB's variant: the return value is refused as TypeError (the message is the JSON encoder's own).
    result = test_tasks.complex_return_value_lambda.enqueue()

    run_pending_tasks()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert_ran_in_order(result)
    assert result._return_value is None
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback


def test_get_result() -> None:
    result = default_backend().enqueue(test_tasks.noop_task, [], {})

    new_result = default_backend().get_result(result.id)

    assert result == new_result


def test_get_result_async() -> None:
    backend = default_backend()
    result = async_to_sync(backend.aenqueue)(test_tasks.noop_task, [], {})

    new_result = async_to_sync(backend.aget_result)(result.id)

    assert result == new_result


def test_refresh_result() -> None:
    result = default_backend().enqueue(test_tasks.calculate_meaning_of_life, (), {})

    run_pending_tasks()

    # The result in hand is not changed until refreshed.
    assert_status(result, TaskResultStatus.READY)
    assert not result.is_finished
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None, None, None)
    assert result.attempts == 0

    result.refresh()

    assert result.started_at is not None
    assert result.last_attempted_at is not None
    assert result.finished_at is not None
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 42
    assert result.attempts == 1


def test_refresh_result_async() -> None:
    result = async_to_sync(default_backend().aenqueue)(test_tasks.calculate_meaning_of_life, (), {})

    run_pending_tasks()

    assert_status(result, TaskResultStatus.READY)
    assert not result.is_finished
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None, None, None)
    assert result.attempts == 0

    async_to_sync(result.arefresh)()

    assert result.started_at is not None
    assert result.last_attempted_at is not None
    assert result.finished_at is not None
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 42
    assert result.attempts == 1


def test_refresh_result_written_elsewhere(blueque: Client) -> None:
    # DB's test_refresh_result: the outcome is written to storage by someone else (here, as a worker would).
    result = default_backend().enqueue(test_tasks.calculate_meaning_of_life, (), {})
    listener = blueque.get_listener("default")
    taken = listener.listen(timeout=1)
    assert taken is not None
    processor = blueque.get_processor(taken)
    processor.start()
    processor.complete("42")

    assert_status(result, TaskResultStatus.READY)
    assert result.attempts == 0

    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 42
    assert result.worker_ids == [listener.id]
    assert result.attempts == 1


@pytest.mark.parametrize("result_id", [str(uuid.uuid4()), "123"], ids=["missing", "invalid_uuid"])
def test_get_missing_result(result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_backend().get_result(result_id)


@pytest.mark.parametrize("result_id", [str(uuid.uuid4()), "123"], ids=["missing", "invalid_uuid"])
def test_async_get_missing_result(result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(default_backend().aget_result)(result_id)


def test_invalid_task_path(blueque: Client) -> None:
    # The peers refuse to read a task whose path names a callable that is not a Task
    # (SuspiciousOperation); ours reads it with a stand-in that never calls that callable.
    task_id = enqueue_raw(blueque, "subprocess.check_output", [["exit", "1"]])

    result = default_backend().get_result(task_id)

    assert result.task.module_path == "subprocess.check_output"
    assert result.args == [["exit", "1"]]
    with pytest.raises(ImportError):
        result.task.func(["exit", "1"])


def test_missing_task_path(blueque: Client) -> None:
    task_id = enqueue_raw(blueque, "missing.func")

    result = default_backend().get_result(task_id)

    with pytest.raises(ImportError):
        result.task.func()


@pytest.mark.parametrize(
    ("task_path", "expected_task_name"),
    [
        ("tests.django.tasks.noop_task", "noop_task"),
        ("tests.django.tasks.task_not_found", "task_not_found"),
        ("tests.django.tasks.module_not_found.module_not_found", "module_not_found"),
        ("unexpected_function", "unexpected_function"),
    ],
)
def test_task_name(blueque: Client, task_path: str, expected_task_name: str) -> None:
    task_id = enqueue_raw(blueque, task_path)

    assert default_backend().get_result(task_id).task.name == expected_task_name


def test_check() -> None:
    errors = list(default_backend().check())

    assert errors == []


def test_app_missing(settings: SettingsWrapper) -> None:
    # RQ's test_rq_app_missing, DB's test_database_backend_app_missing.
    settings.INSTALLED_APPS = []

    errors = list(default_backend().check())

    assert len(errors) == 1
    assert "django_blueque" in (errors[0].hint or "")


def test_unknown_queue_name(settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["queue-2"]}}

    errors = list(default_backend().check())

    assert len(errors) == 1
    assert "Add 'queue-2' to BLUEQUE['QUEUES']" in (errors[0].hint or "")


def test_uses_blueque_queues_for_queue_names(settings: SettingsWrapper) -> None:
    # RQ's test_uses_rq_queues_for_queue_names: queues without a HANDLER.
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": []}}

    assert default_backend().queues == {"default", "other"}


def test_queue_isolation(blueque: Client) -> None:
    default_task = test_tasks.noop_task.enqueue()
    other_task = test_tasks.noop_task.using(queue_name="other").enqueue()

    default_backend().get_result(default_task.id)
    default_backend().get_result(other_task.id)

    assert blueque.task_ids("default", "pending") == [default_task.id]
    assert blueque.task_ids("other", "pending") == [other_task.id]


def test_enqueue_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=TASKS_LOGGER):
        result = test_tasks.noop_task.enqueue()

    lines = [record.getMessage() for record in caplog.records if record.name == TASKS_LOGGER]
    assert len(lines) == 1
    assert "enqueued" in lines[0]
    assert result.id in lines[0]


def test_started_finished_logs(caplog: pytest.LogCaptureFixture) -> None:
    result = test_tasks.noop_task.enqueue()

    with caplog.at_level(logging.DEBUG, logger=TASKS_LOGGER):
        run_pending_tasks()

    lines = [record.getMessage() for record in caplog.records if record.name == TASKS_LOGGER]
    assert len(lines) == 2
    assert "state=RUNNING" in lines[0]
    assert result.id in lines[0]
    assert "state=SUCCESSFUL" in lines[1]
    assert result.id in lines[1]


def test_failed_logs(caplog: pytest.LogCaptureFixture) -> None:
    result = test_tasks.failing_task_value_error.enqueue()

    with caplog.at_level(logging.DEBUG, logger=TASKS_LOGGER):
        run_pending_tasks()

    records = [record for record in caplog.records if record.name == TASKS_LOGGER]
    assert len(records) == 2
    assert "state=RUNNING" in records[0].getMessage()
    assert result.id in records[0].getMessage()
    assert "state=FAILED" in records[1].getMessage()
    assert result.id in records[1].getMessage()
    assert records[1].levelno == logging.ERROR


def test_takes_context() -> None:
    result = test_tasks.get_task_id.enqueue()

    run_pending_tasks()
    result.refresh()

    assert result.return_value == result.id


def test_context() -> None:
    result = test_tasks.check_context.enqueue(1)

    run_pending_tasks()
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL


def test_exception_classes_pop_empty_list_bug(blueque: Client) -> None:
    # RQ loses the exception class from the job's meta; ours is the hash's "exception" field.
    result = test_tasks.failing_task_value_error.enqueue()
    run_pending_tasks()
    assert blueque.get_task(result.id).exception == "builtins.ValueError"

    blueque.redis.hdel(f"blueque_task_{result.id}", "exception")

    task_result = default_backend().get_result(result.id)
    assert task_result.status == TaskResultStatus.FAILED
    assert task_result.task == test_tasks.failing_task_value_error
    assert isinstance(task_result.errors, list)
    assert task_result.errors[0].exception_class_path == "builtins.Exception"
    assert "ValueError: This Task failed due to ValueError" in task_result.errors[0].traceback


def test_validate_on_enqueue(settings: SettingsWrapper) -> None:
    configured = settings.TASKS
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["unknown_queue"]}}
    task_with_custom_queue_name = test_tasks.noop_task.using(queue_name="unknown_queue")
    settings.TASKS = configured

    with pytest.raises(InvalidTaskError, match="Queue 'unknown_queue' is not valid for backend"):
        task_with_custom_queue_name.enqueue()


def test_validate_on_aenqueue(settings: SettingsWrapper) -> None:
    configured = settings.TASKS
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["unknown_queue"]}}
    task_with_custom_queue_name = test_tasks.noop_task.using(queue_name="unknown_queue")
    settings.TASKS = configured

    with pytest.raises(InvalidTaskError, match="Queue 'unknown_queue' is not valid for backend"):
        async_to_sync(task_with_custom_queue_name.aenqueue)()


def test_priority_is_refused() -> None:
    # In place of RQ's test_enqueue_priority: priority is not supported.
    assert default_backend().supports_priority is False
    with pytest.raises(InvalidTaskError, match="priority"):
        test_tasks.noop_task.using(priority=100)


@pytest.mark.django_db(transaction=True)
def test_wait_until_transaction_commit(blueque: Client, settings: SettingsWrapper) -> None:
    # From the RQ backend's history, with our ENQUEUE_ON_COMMIT option.
    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": {"ENQUEUE_ON_COMMIT": True}}}
    assert default_backend().enqueue_on_commit

    with transaction.atomic():
        result = test_tasks.noop_task.enqueue()
        assert result.enqueued_at is None
        assert blueque.queue_stats(["default"])["default"].pending == 0
    assert blueque.queue_stats(["default"])["default"].pending == 1

    result.refresh()
    assert result.enqueued_at is not None


@pytest.mark.django_db(transaction=True)
def test_doesnt_wait_until_transaction_commit(blueque: Client, settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": {"BACKEND": BACKEND}}
    assert not default_backend().enqueue_on_commit

    with transaction.atomic():
        result = test_tasks.noop_task.enqueue()
        assert result.enqueued_at is not None
        # Another process (a worker) sees it before the transaction commits.
        assert blueque.queue_stats(["default"])["default"].pending == 1
    assert blueque.queue_stats(["default"])["default"].pending == 1


@pytest.mark.parametrize("use_tz", [True, False])
def test_run_after_tz(settings: SettingsWrapper, use_tz: bool) -> None:
    settings.USE_TZ = use_tz

    result = test_tasks.noop_task.enqueue()

    assert default_backend().get_result(result.id).task.run_after is None


def test_get_result_in_another_process(blueque: Client, redis_url: str) -> None:
    # In place of RQ's test_get_result_from_different_request: any process reads a result.
    result = test_tasks.calculate_meaning_of_life.enqueue()
    run_pending_tasks()
    script = (
        "import django; django.setup(); "
        "from django_blueque.compat import task_backends; "
        f"r = task_backends['default'].get_result({result.id!r}); print(r.status, r.return_value)"
    )
    env = {
        **os.environ,
        "BLUEQUE_REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SUCCESSFUL", "42"]


# DatabaseBackendWorkerTestCase (its worker: run_pending_tasks, which runs what blueque_worker runs)


def test_run_enqueued_task(blueque: Client) -> None:
    result = test_tasks.noop_task.enqueue()
    assert blueque.queue_stats(["default"])["default"].pending == 1
    assert_status(result, TaskResultStatus.READY)

    assert run_pending_tasks() == 1

    assert_status(result, TaskResultStatus.READY)
    assert result.attempts == 0
    result.refresh()
    assert_ran_in_order(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 1
    assert blueque.queue_stats(["default"])["default"].pending == 0


def test_batch_processes_all_tasks(blueque: Client) -> None:
    results = [test_tasks.noop_task.enqueue() for _ in range(3)]
    results.append(test_tasks.failing_task_value_error.enqueue())
    assert blueque.queue_stats(["default"])["default"].pending == 4

    assert run_pending_tasks() == 4

    stats = blueque.queue_stats(["default"])["default"]
    assert (stats.pending, stats.complete, stats.failed) == (0, 3, 1)
    assert Counter(default_backend().get_result(r.id).status for r in results) == {
        TaskResultStatus.SUCCESSFUL: 3,
        TaskResultStatus.FAILED: 1,
    }


def test_no_tasks() -> None:
    assert run_pending_tasks() == 0


def test_doesnt_process_different_queue(blueque: Client) -> None:
    result = test_tasks.noop_task.using(queue_name="other").enqueue()

    assert run_pending_tasks("default") == 0
    assert blueque.queue_stats(["other"])["other"].pending == 1

    assert run_pending_tasks(result.task.queue_name) == 1
    assert blueque.queue_stats(["other"])["other"].pending == 0


def test_process_all_queues(blueque: Client) -> None:
    # DB's --queue-name=*: a worker given no queue serves every configured queue.
    result = test_tasks.noop_task.using(queue_name="other").enqueue()

    assert run_pending_tasks("default") == 0
    assert run_pending_tasks() == 1

    assert default_backend().get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_failing_task() -> None:
    result = test_tasks.failing_task_value_error.enqueue()

    run_pending_tasks()

    assert_status(result, TaskResultStatus.READY)
    result.refresh()
    assert_ran_in_order(result)
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert result.errors[0].exception_class is ValueError
    traceback = result.errors[0].traceback
    assert traceback.endswith("ValueError: This Task failed due to ValueError\n"), traceback


def test_run_after(blueque: Client) -> None:
    when = timezone.now() + timedelta(hours=10)
    result = test_tasks.noop_task.using(run_after=when).enqueue()

    stats = blueque.queue_stats(["default"])["default"]
    assert (stats.scheduled, stats.pending) == (1, 0)

    assert run_pending_tasks() == 0
    assert default_backend().get_result(result.id).status == TaskResultStatus.READY

    # The scheduler's round once it is due (DB: the row's run_after set to now).
    blueque.get_queue("default").enqueue_due_tasks(now=when.timestamp())
    assert blueque.queue_stats(["default"])["default"].pending == 1

    assert run_pending_tasks() == 1
    assert default_backend().get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_run_after_order(blueque: Client) -> None:
    # DB's test_run_after_priority without priority: tasks whose run_after has passed are
    # ready at once; due tasks run earliest run_after first; tasks not due yet wait.
    now = timezone.now()
    past = test_tasks.noop_task.using(run_after=now - timedelta(hours=2)).enqueue()
    far_future = test_tasks.noop_task.using(run_after=now + timedelta(hours=10)).enqueue()
    later = test_tasks.noop_task.using(run_after=now + timedelta(hours=3)).enqueue()
    sooner = test_tasks.noop_task.using(run_after=now + timedelta(hours=2)).enqueue()
    assert blueque.task_ids("default", "pending") == [past.id]

    # The scheduler's round three hours on.
    blueque.get_queue("default").enqueue_due_tasks(now=(now + timedelta(hours=3)).timestamp())

    assert run_pending_tasks() == 3
    # The complete list, newest first.
    assert blueque.task_ids("default", "complete") == [later.id, sooner.id, past.id]
    assert default_backend().get_result(far_future.id).status == TaskResultStatus.READY


def test_invalid_task_path_fails_in_the_worker(blueque: Client) -> None:
    # DB's worker test_invalid_task_path: it fails, and subprocess.check_output is never called.
    task_id = enqueue_raw(blueque, "subprocess.check_output", [["exit", "1"]])

    run_pending_tasks()

    assert default_backend().get_result(task_id).status == TaskResultStatus.FAILED


def test_missing_task_path_fails_in_the_worker(blueque: Client) -> None:
    task_id = enqueue_raw(blueque, "missing.func")

    run_pending_tasks()

    assert default_backend().get_result(task_id).status == TaskResultStatus.FAILED


def test_worker_doesnt_exit() -> None:
    result = test_tasks.exit_task.enqueue()
    after = test_tasks.noop_task.enqueue()

    assert run_pending_tasks() == 2

    result.refresh()
    after.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is SystemExit
    assert after.status == TaskResultStatus.SUCCESSFUL


def test_max_tasks() -> None:
    results = [test_tasks.noop_task.enqueue() for _ in range(5)]

    assert run_pending_tasks(max_tasks=2) == 2

    for result in results:
        result.refresh()
    statuses = Counter(result.status for result in results)
    assert statuses[TaskResultStatus.SUCCESSFUL] == 2
    assert statuses[TaskResultStatus.READY] == 3


def test_negative_max_tasks() -> None:
    with pytest.raises(CommandError, match="expected a whole number > 0"):
        call_command("blueque_worker", "--max-tasks", "-1")


def test_worker_takes_context() -> None:
    # DB's DatabaseBackendWorkerTestCase.test_takes_context and test_context, with the attempt and worker id.
    result = test_tasks.context_attempt.enqueue(7)

    run_pending_tasks()
    result.refresh()

    assert result.return_value == {"attempt": 1, "value": 7, "worker_ids": result.worker_ids}
    assert len(result.worker_ids) == 1


def test_task_import_string(blueque: Client) -> None:
    task_id = enqueue_raw(blueque, "tests.django.tasks.some_test")

    run_pending_tasks()

    result = default_backend().get_result(task_id)
    assert result.status == TaskResultStatus.FAILED
    assert "ImportError" in result.errors[0].traceback


# CompatTestCase (both peers)


def test_compat_has_django_task() -> None:
    base = importlib.import_module("django_tasks.base" if compat.TASKS_APP else "django.tasks.base")
    assert compat.Task is base.Task
    assert isinstance(test_tasks.noop_task, base.Task)
