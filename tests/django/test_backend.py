"""BluequeBackend through Django's Tasks API, run by a real worker (in this
process, so signals and context are visible); after Django's
tests/tasks/test_immediate_backend.py, with the worker step made explicit."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from django_blueque.backends import BluequeBackend
from django_blueque.compat import (
    InvalidTaskError,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from django_blueque.protocol import Client
from django_blueque.testing import run_pending_tasks
from tests.conftest import Blueque101
from tests.django import tasks as test_tasks

pytestmark = pytest.mark.usefixtures("blueque")


def test_the_backend_is_configured() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, BluequeBackend)
    assert backend.queues == {"default", "other"}
    assert (backend.supports_defer, backend.supports_get_result, backend.supports_async_task) == (True, True, True)
    assert backend.supports_priority is False


@pytest.mark.parametrize("task", [test_tasks.noop_task, test_tasks.noop_task_async])
def test_enqueue_then_run(task: Any, blueque: Client) -> None:
    result = task.enqueue(1, two=3)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at is not None
    assert blueque.get_task(result.id).status == "pending"

    assert run_pending_tasks() == 1

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.started_at is not None
    assert result.finished_at is not None
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.return_value is None
    assert result.task.func == task.func
    assert (result.args, result.kwargs) == ([1], {"two": 3})
    assert result.attempts == 1
    assert result.worker_ids == [blueque.get_task(result.id).node]


def test_aenqueue_and_aget_result() -> None:
    async def scenario() -> Any:
        result = await test_tasks.calculate_meaning_of_life.aenqueue()
        assert result.status == TaskResultStatus.READY
        await sync_to_async(run_pending_tasks)()
        return await test_tasks.calculate_meaning_of_life.aget_result(result.id)

    assert async_to_sync(scenario)().return_value == 42


@pytest.mark.parametrize(
    ("task", "exception", "message"),
    [
        (test_tasks.failing_task_value_error, ValueError, "This Task failed due to ValueError"),
        (test_tasks.failing_task_system_exit, SystemExit, "This Task failed due to SystemExit"),
    ],
)
def test_a_failure_is_recorded_with_class_and_traceback(task: Any, exception: type, message: str) -> None:
    result = task.enqueue()
    run_pending_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert result.is_finished
    assert result.started_at is not None
    assert result.finished_at is not None
    assert result.errors[0].exception_class is exception
    assert result.errors[0].traceback.endswith(f"{exception.__name__}: {message}\n")


def test_complex_exception() -> None:
    result = test_tasks.complex_exception.enqueue()
    run_pending_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is ValueError
    assert "ValueError: This task failed" in result.errors[0].traceback


def test_a_return_value_json_cannot_hold_fails_the_task() -> None:
    result = test_tasks.complex_return_value.enqueue()
    run_pending_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback


def test_return_values_round_trip_as_json() -> None:
    result = test_tasks.echo.enqueue(1, "two", [3.5, None], flag=True, nested={"a": [1]})
    run_pending_tasks()
    result.refresh()
    assert result.return_value == {"args": [1, "two", [3.5, None]], "kwargs": {"flag": True, "nested": {"a": [1]}}}


def test_arguments_json_cannot_hold_are_refused_at_enqueue(blueque: Client) -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        test_tasks.echo.enqueue(object())
    assert blueque.queue_stats() == {}


def test_takes_context() -> None:
    result = test_tasks.get_task_id.enqueue()
    other = test_tasks.context_attempt.enqueue(7)
    run_pending_tasks()
    result.refresh()
    other.refresh()
    assert result.return_value == result.id
    context = other.return_value
    assert context is not None
    assert (context["attempt"], context["value"], len(context["worker_ids"])) == (1, 7, 1)


def test_signals_fire_in_order(blueque: Client) -> None:
    seen: list[tuple[str, str, str]] = []

    def recorder(name: str) -> Any:
        def receive(sender: type, task_result: Any, **kwargs: Any) -> None:
            assert sender is BluequeBackend
            seen.append((name, task_result.id, task_result.status))

        return receive

    names = {task_enqueued: "enqueued", task_started: "started", task_finished: "finished"}
    receivers = {signal: recorder(name) for signal, name in names.items()}
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        ok = test_tasks.noop_task.enqueue()
        bad = test_tasks.failing_task_value_error.enqueue()
        run_pending_tasks()
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert seen == [
        ("enqueued", ok.id, TaskResultStatus.READY),
        ("enqueued", bad.id, TaskResultStatus.READY),
        ("started", ok.id, TaskResultStatus.RUNNING),
        ("finished", ok.id, TaskResultStatus.SUCCESSFUL),
        ("started", bad.id, TaskResultStatus.RUNNING),
        ("finished", bad.id, TaskResultStatus.FAILED),
    ]


def test_run_after_goes_through_the_scheduled_set(blueque: Client) -> None:
    when = timezone.now() + timedelta(minutes=5)
    result = test_tasks.calculate_meaning_of_life.using(run_after=when).enqueue()
    task = blueque.get_task(result.id)
    assert task.status == "scheduled"
    assert task.eta == pytest.approx(when.timestamp())
    assert test_tasks.calculate_meaning_of_life.get_result(result.id).status == TaskResultStatus.READY
    assert run_pending_tasks() == 0
    blueque.get_queue("default").enqueue_due_tasks(now=when.timestamp() + 1)
    assert run_pending_tasks() == 1
    fetched = test_tasks.calculate_meaning_of_life.get_result(result.id)
    assert fetched.return_value == 42
    assert fetched.task.run_after == when


def test_statuses_map_to_django_statuses(blueque: Client) -> None:
    result = test_tasks.noop_task.enqueue()
    backend = task_backends["default"]
    assert backend.get_result(result.id).status == TaskResultStatus.READY
    listener = blueque.get_listener("default")
    taken = listener.listen(timeout=1)
    assert taken is not None
    assert backend.get_result(result.id).status == TaskResultStatus.READY  # reserved
    blueque.get_processor(taken).start(12345)
    running = backend.get_result(result.id)
    assert running.status == TaskResultStatus.RUNNING
    assert running.started_at is not None
    assert running.worker_ids == [listener.id]


def test_get_result_of_a_missing_or_foreign_task(blueque: Client) -> None:
    backend = task_backends["default"]
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("no-such-id")
    raw_id = blueque.get_queue("raw").enqueue("not a Django task")
    with pytest.raises(TaskResultDoesNotExist, match="not describe a Django task"):
        backend.get_result(raw_id)


def test_priority_is_refused_honestly() -> None:
    with pytest.raises(InvalidTaskError, match="priority"):
        test_tasks.noop_task.using(priority=10)


def test_validate_on_enqueue() -> None:
    with pytest.raises(InvalidTaskError, match="Queue 'unknown_queue' is not valid for backend"):
        test_tasks.noop_task.using(queue_name="unknown_queue").enqueue()


def test_tasks_run_on_their_queue(blueque: Client) -> None:
    result = test_tasks.noop_task.using(queue_name="other").enqueue()
    assert blueque.get_task(result.id).queue == "other"
    assert run_pending_tasks("default") == 0
    assert run_pending_tasks("other") == 1
    assert test_tasks.noop_task.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_the_worker_runs_only_task_objects(blueque: Client) -> None:
    queue = blueque.get_queue("default")
    bad = [
        queue.enqueue(json.dumps({"django_task": "tests.django.tasks.not_a_task", "args": [], "kwargs": {}})),
        queue.enqueue(json.dumps({"django_task": "os.system", "args": ["true"], "kwargs": {}})),
        queue.enqueue(json.dumps({"django_task": "no.such.module.task", "args": [], "kwargs": {}})),
        queue.enqueue("not JSON at all"),
    ]
    assert run_pending_tasks() == 4
    errors = [task.error or "" for task in blueque.get_tasks(bad)]
    assert [task.status for task in blueque.get_tasks(bad)] == ["failed"] * 4
    assert "is not a Django task" in errors[0]
    assert "is not a Django task" in errors[1]
    assert "Cannot import the task" in errors[2]
    assert "do not describe a Django task" in errors[3]


def test_progress_is_reported_from_inside_a_task(blueque: Client) -> None:
    result = test_tasks.with_progress.enqueue()
    run_pending_tasks()
    task = blueque.get_task(result.id)
    assert task.status == "complete"
    assert (task.progress, task.progress_message) == (0.5, "halfway")


def test_report_progress_outside_a_task_is_an_error() -> None:
    from django_blueque.progress import report_progress

    with pytest.raises(RuntimeError, match="outside a task"):
        report_progress(0.1)


def test_a_raw_handler_runs_a_task_enqueued_by_blueque_1_0_1(blueque: Client, blueque101: Blueque101) -> None:
    task_id = blueque101("enqueue", "raw", "from blueque 1.0.1")
    assert run_pending_tasks("raw") == 1
    read = blueque101("read", task_id)[task_id]
    assert (read["status"], read["result"]) == ("complete", "FROM BLUEQUE 1.0.1")


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit(blueque: Client, settings: SettingsWrapper) -> None:
    settings.TASKS = {
        "default": {"BACKEND": "django_blueque.backends.BluequeBackend", "OPTIONS": {"ENQUEUE_ON_COMMIT": True}}
    }
    with transaction.atomic():
        result = test_tasks.noop_task.enqueue()
        assert not blueque.get_task(result.id).exists
        assert result.enqueued_at is None
    assert blueque.get_task(result.id).status == "pending"
    assert result.enqueued_at is not None

    enqueued = []
    with pytest.raises(RuntimeError, match="roll back"), transaction.atomic():  # noqa: PT012
        enqueued.append(test_tasks.noop_task.enqueue())
        raise RuntimeError("roll back")
    assert not blueque.get_task(enqueued[0].id).exists


@pytest.mark.django_db(transaction=True)
def test_enqueues_at_once_by_default(blueque: Client) -> None:
    with transaction.atomic():
        result = test_tasks.noop_task.enqueue()
        assert blueque.get_task(result.id).status == "pending"


@pytest.mark.parametrize("later", [False, True], ids=["now", "run_after"])
def test_the_result_enqueue_returns_is_what_get_result_reads(later: bool) -> None:
    task = test_tasks.noop_task.using(run_after=timezone.now() + timedelta(hours=1)) if later else test_tasks.noop_task
    result = task.enqueue(1, two=3)
    again = test_tasks.noop_task.get_result(result.id)
    assert (again.enqueued_at, again.status, again.args, again.kwargs) == (
        result.enqueued_at,
        result.status,
        result.args,
        result.kwargs,
    )


def test_enqueue_with_redis_down_raises_enqueue_error(settings: SettingsWrapper) -> None:
    import redis

    from django_blueque import EnqueueError

    settings.BLUEQUE = {**settings.BLUEQUE, "REDIS_URL": "redis://127.0.0.1:1/0"}
    with pytest.raises(
        EnqueueError, match=r"Could not enqueue tests\.django\.tasks\.noop_task on queue 'default'"
    ) as info:
        test_tasks.noop_task.enqueue()
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    assert info.value.task_id  # the id it was given, for get_result() to tell once Redis is back


def test_enqueue_not_held_by_enough_replicas_raises_enqueue_error(settings: SettingsWrapper, blueque: Client) -> None:
    from django_blueque import EnqueueError
    from django_blueque.protocol import NotReplicated

    settings.TASKS = {
        "default": {
            "BACKEND": "django_blueque.backends.BluequeBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"REPLICAS": 1, "REPLICA_TIMEOUT": 0.1},
        }
    }
    # The test Redis has no replica: WAIT says 0 of 1.
    with pytest.raises(
        EnqueueError, match=r"0 of 1 replica\(s\) acknowledged it in time: a failover may lose it"
    ) as info:
        test_tasks.noop_task.enqueue()
    assert isinstance(info.value.__cause__, NotReplicated)
    assert blueque.get_task(info.value.task_id).status == "pending"  # on the primary all the same


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ([float("nan")], {}, "args[0] is nan"),
        ([], {"ratio": [1.0, float("inf")]}, "kwargs['ratio'][1] is inf"),
        ([{"deep": {"x": -float("inf")}}], {}, "args[0]['deep']['x'] is -inf"),
    ],
)
def test_arguments_that_json_cannot_hold_are_refused_by_name(
    args: list[Any], kwargs: dict[str, Any], where: str, blueque: Client
) -> None:
    with pytest.raises(ValueError, match=rf"Task argument {re.escape(where)}, which JSON cannot hold"):
        test_tasks.noop_task.enqueue(*args, **kwargs)
    assert blueque.queue_stats(["default"])["default"].pending == 0


def test_parameters_over_the_limit_are_refused(settings: SettingsWrapper, blueque: Client) -> None:
    settings.BLUEQUE = {**settings.BLUEQUE, "MAX_PARAMETERS": 300}
    test_tasks.noop_task.enqueue("x" * 100)
    with pytest.raises(ValueError, match=r"are [0-9,]+ bytes as JSON, over BLUEQUE\['MAX_PARAMETERS'\] \(300\)"):
        test_tasks.noop_task.enqueue("x" * 300)
    assert blueque.queue_stats(["default"])["default"].pending == 1


def test_a_failed_task_whose_function_is_gone_is_still_readable(blueque: Client) -> None:
    parameters = json.dumps({"django_task": "tests.django.tasks.renamed_since", "args": [1], "kwargs": {}})
    task_id = blueque.get_queue("default").enqueue(parameters)
    listener = blueque.get_listener("default")
    taken = listener.listen(timeout=1)
    assert taken is not None and taken.id == task_id
    processor = blueque.get_processor(taken)
    processor.start()
    processor.fail("Cannot import the task", exception="builtins.ImportError", traceback="Traceback ...")
    result = task_backends["default"].get_result(task_id)
    assert (result.status, result.task.name, result.task.module_path) == (
        TaskResultStatus.FAILED,
        "renamed_since",
        "tests.django.tasks.renamed_since",
    )
    assert result.args == [1] and result.errors[-1].exception_class_path == "builtins.ImportError"
    with pytest.raises(ImportError, match="no longer exists"):
        result.task.func()


def test_any_id_is_read_through_the_backend_not_another_task(blueque: Client) -> None:
    result = test_tasks.noop_task.enqueue()
    assert task_backends["default"].get_result(result.id).task.func == test_tasks.noop_task.func
    # Django's TaskResultMismatch, by design: a Task reads only its own results.
    with pytest.raises(Exception, match="does not match"):
        test_tasks.calculate_meaning_of_life.get_result(result.id)


@pytest.mark.parametrize("queues", [None, []], ids=["absent", "empty"])
def test_a_backend_without_queues_of_its_own_takes_the_blueque_queues(
    settings: SettingsWrapper, queues: list[str] | None
) -> None:
    backend_settings: dict[str, Any] = {"BACKEND": "django_blueque.backends.BluequeBackend"}
    if queues is not None:
        backend_settings["QUEUES"] = queues
    settings.TASKS = {"default": backend_settings}
    backend = task_backends["default"]
    assert backend.queues == {"default", "other"}  # not "raw": its HANDLER runs raw tasks
    with pytest.raises(InvalidTaskError):
        test_tasks.noop_task.using(queue_name="nobody-serves-it")
    settings.BLUEQUE = {**settings.BLUEQUE, "QUEUES": {"default": {}, "reports": {}}}
    assert task_backends["default"].queues == {"default", "reports"}


def test_reading_a_task_that_names_a_module_outside_the_project_imports_nothing(
    blueque: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    outside = Path(__file__).resolve().parents[1] / "reliability" / "outside"
    monkeypatch.syspath_prepend(str(outside))
    mark = tmp_path / "imported"
    monkeypatch.setenv("BLUEQUE_TEST_SNEAKY_MARK", str(mark))
    payload: dict[str, Any] = {"django_task": "sneaky.run", "args": [], "kwargs": {}, "backend": "default"}
    task_id = blueque.get_queue("default").enqueue(json.dumps(payload))
    result = task_backends["default"].get_result(task_id)  # described by a stand-in, as a task whose code is gone
    assert result.task.module_path == "sneaky.run"
    assert "sneaky" not in sys.modules and not mark.exists()


def test_the_project_is_its_installed_apps_its_settings_and_its_schedule(settings: SettingsWrapper) -> None:
    from django_blueque import payload

    settings.BLUEQUE = {**settings.BLUEQUE, "SCHEDULE": {"nightly": {"TASK": "elsewhere.jobs.cleanup", "EVERY": 60}}}
    packages = payload.project_packages()
    assert {"django", "django_blueque", "testproject", "elsewhere"} <= packages
    assert "sneaky" not in packages


def test_enqueue_many_enqueues_each_call_in_one_round_trip(blueque: Client) -> None:
    backend = task_backends["default"]
    assert isinstance(backend, BluequeBackend)
    seen: list[str] = []

    def on_enqueued(sender: object, task_result: Any, **kwargs: Any) -> None:
        seen.append(task_result.id)

    task_enqueued.connect(on_enqueued)
    try:
        blueque.redis.config_resetstat()
        results = backend.enqueue_many(test_tasks.echo, [((i,), {"n": i}) for i in range(3)])
        calls = {name: stats["calls"] for name, stats in blueque.redis.info("commandstats").items()}
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert calls["cmdstat_evalsha"] == 1
    assert seen == [result.id for result in results]
    assert all(result.enqueued_at is not None for result in results)
    assert run_pending_tasks() == 3
    for i, result in enumerate(results):
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == {"args": [i], "kwargs": {"n": i}}
    assert backend.enqueue_many(test_tasks.echo, []) == []


def test_enqueue_many_refuses_the_whole_batch_for_one_bad_call(blueque: Client) -> None:
    backend = task_backends["default"]
    assert isinstance(backend, BluequeBackend)
    with pytest.raises(TypeError, match="Unsupported type"):
        backend.enqueue_many(test_tasks.echo, [((1,), {}), ((object(),), {})])
    assert blueque.queue_stats() == {}


@pytest.mark.django_db(transaction=True)
def test_enqueue_many_on_commit(blueque: Client, settings: SettingsWrapper) -> None:
    settings.TASKS = {
        "default": {"BACKEND": "django_blueque.backends.BluequeBackend", "OPTIONS": {"ENQUEUE_ON_COMMIT": True}}
    }
    backend = task_backends["default"]
    assert isinstance(backend, BluequeBackend)
    with transaction.atomic():
        results = backend.enqueue_many(test_tasks.noop_task, [((), {}), ((), {})])
        assert not any(blueque.get_task(result.id).exists for result in results)
    assert [blueque.get_task(result.id).status for result in results] == ["pending", "pending"]
