"""``manage.py blueque_worker`` as a real process: what it runs, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_blueque.compat import TaskResultStatus
from django_blueque.protocol import Client
from tests.workers import tasks
from tests.workers.conftest import Spawn, events, wait_for


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_burst_runs_django_and_raw_tasks_then_exits(
    blueque: Client, spawn_worker: Spawn, mode: str, tmp_path: Path
) -> None:
    results = [tasks.sleep.enqueue(0) for _ in range(6)]
    raw = blueque.get_queue("raw").enqueue("abc")
    worker = spawn_worker("--burst", "--mode", mode, "--concurrency", "3")
    assert worker.wait(60) == 0
    # Both modes count the same thing: the tasks that ran.
    assert (tmp_path / "worker-0.log").read_text().rstrip().endswith("Ran 7 task(s).")
    assert [tasks.sleep.get_result(r.id).status for r in results] == [TaskResultStatus.SUCCESSFUL] * 6
    assert blueque.get_task(raw).result == "cba"
    stats = blueque.queue_stats()
    assert sum(s.reserved + s.started + s.pending for s in stats.values()) == 0
    assert sum(s.listeners for s in stats.values()) == 0
    assert not blueque.redis.zcard("blueque_heartbeats")


def test_no_prefetch_a_busy_worker_leaves_the_next_task_pending(blueque: Client, spawn_worker: Spawn) -> None:
    first = tasks.sleep.enqueue(3)
    second = tasks.noop.enqueue()
    spawn_worker("default", "--concurrency", "1")
    wait_for(lambda: blueque.get_task(first.id).status == "started", 20, "the first task to start")
    # One slot, busy: the second task is not taken (not reserved) while the first runs.
    assert blueque.get_task(second.id).status == "pending"
    wait_for(lambda: blueque.get_task(second.id).status == "complete", 20, "the second task to run")


def test_queues_are_served_in_the_order_given(blueque: Client, spawn_worker: Spawn) -> None:
    low = tasks.sleep.using(queue_name="slow").enqueue(0)
    high = tasks.sleep.enqueue(0)
    assert spawn_worker("default", "slow", "--burst", "--concurrency", "1").wait(60) == 0
    assert (blueque.get_task(high.id).updated or 0) < (blueque.get_task(low.id).updated or 0)


def test_queue_concurrency_caps_a_queue(blueque: Client, spawn_worker: Spawn) -> None:
    # testproject's "slow" queue has CONCURRENCY 2; the worker has 4 slots.
    slow = [tasks.sleep.using(queue_name="slow").enqueue(1.5) for _ in range(4)]
    spawn_worker("slow", "default", "--concurrency", "4")
    wait_for(lambda: blueque.queue_stats(["slow"])["slow"].started == 2, 20, "two slow tasks to start")
    assert blueque.queue_stats(["slow"])["slow"].pending == 2
    wait_for(lambda: all(blueque.get_task(r.id).status == "complete" for r in slow), 30, "all slow tasks")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "expected a whole number > 0, not '0'"),
        (["--grace", "-1"], "expected a number > 0, not '-1'"),
        (["--max-tasks", "many"], "expected a whole number > 0, not 'many'"),
        (["default", "default"], "listed twice"),
    ],
)
def test_bad_arguments_are_command_errors(blueque: Client, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("blueque_worker", *args)


def test_max_tasks(blueque: Client, spawn_worker: Spawn) -> None:
    results = [tasks.noop.enqueue() for _ in range(3)]
    assert spawn_worker("default", "--max-tasks", "2", "--concurrency", "1").wait(60) == 0
    assert [blueque.get_task(r.id).status for r in results] == ["complete", "complete", "pending"]


@pytest.mark.parametrize("mode", ["fork", "prefork"])
@pytest.mark.parametrize(("name", "exception"), [("interrupt", "KeyboardInterrupt"), ("exit_now", "SystemExit")])
def test_a_task_raising_keyboardinterrupt_or_systemexit_fails_once(
    blueque: Client, spawn_worker: Spawn, mode: str, name: str, exception: str
) -> None:
    result = getattr(tasks, name).enqueue()
    assert spawn_worker("--burst", "--mode", mode).wait(60) == 0
    task = blueque.get_task(result.id)
    assert (task.status, task.exception, task.fields.get("attempt")) == ("failed", f"builtins.{exception}", "1")
    assert "recoveries" not in task.fields and "releases" not in task.fields
    assert f"raise {exception}" in (task.traceback or "")
    assert [event for event, _, _ in events(blueque, result.id)] == ["start"]
    assert getattr(tasks, name).get_result(result.id).status == TaskResultStatus.FAILED
