"""``manage.py blueque_tasks``: the protocol's operations for operators without a browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_blueque.protocol import Client, keys
from tests.django.test_status import every_state

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "testproject" / "manage.py"


def tasks(*args: str) -> str:
    out = StringIO()
    call_command("blueque_tasks", *args, stdout=out)
    return out.getvalue()


def failed(blueque: Client, count: int, queue: str = "default") -> list[str]:
    ids = []
    listener = blueque.get_listener(queue)
    for i in range(count):
        blueque.get_queue(queue).enqueue(json.dumps({"n": i}))
        task = listener.listen(timeout=1)
        assert task is not None
        processor = blueque.get_processor(task)
        processor.start(os.getpid())
        processor.fail(f"error {i}", exception="builtins.ValueError", traceback="Traceback ...")
        ids.append(task.id)
    return ids


def test_show_prints_every_field_and_json_parameters(blueque: Client) -> None:
    (task_id,) = failed(blueque, 1)
    text = tasks("show", task_id)
    assert text.startswith(task_id)
    assert "  status: failed" in text and "  error: error 0" in text
    assert '  parameters: {\n      "n": 0\n    }' in text
    shown = json.loads(tasks("show", "--json", task_id))
    assert (shown["id"], shown["status"], shown["parameters"]) == (task_id, "failed", {"n": 0})
    assert json.loads(tasks("show", "--json", "nope")) == {"id": "nope", "exists": False}
    assert "nope: no such task" in tasks("show", "nope")


def test_retry_given_ids_and_report_what_was_left_alone(blueque: Client) -> None:
    ids = failed(blueque, 2)
    pending = blueque.get_queue("default").enqueue("p")
    with pytest.raises(CommandError, match=r"1 task\(s\) left alone"):
        tasks("retry", *ids, pending)
    assert [task.status for task in blueque.get_tasks(ids)] == ["pending", "pending"]
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("blueque_tasks", "retry", pending, stdout=out)
    assert out.getvalue() == f"retried 0, 1 not-failed.\n  {pending}: not-failed\n"


def test_retry_all_failed_of_a_queue_with_a_dry_run_first(blueque: Client) -> None:
    ids = failed(blueque, 5)
    dry = tasks("retry", "--all", "--queue", "default", "--dry-run")
    assert dry.splitlines()[0] == "Would retry 5 failed task(s) of queue default:"
    assert [task.status for task in blueque.get_tasks(ids)] == ["failed"] * 5
    assert tasks("retry", "--all", "--queue", "default", "--batch", "2") == "retried 5.\n"
    assert [task.status for task in blueque.get_tasks(ids)] == ["pending"] * 5


def test_a_dry_run_on_ids_says_which_the_action_applies_to(blueque: Client) -> None:
    (failed_id,) = failed(blueque, 1)
    pending = blueque.get_queue("default").enqueue("p")
    text = tasks("retry", "--dry-run", failed_id, pending, "nope")
    assert text.splitlines() == [
        "Would retry 1 of 3 task(s):",
        f"  {failed_id}: failed, would retry",
        f"  {pending}: pending, left alone",
        "  nope: no such task, left alone",
    ]
    assert blueque.get_task(failed_id).status == "failed"


def test_cancel_run_now_requeue_and_delete(blueque: Client) -> None:
    queue = blueque.get_queue("default")
    scheduled = queue.schedule("later", eta=2e9)
    cancelled = queue.schedule("never", eta=2e9)
    assert tasks("run-now", scheduled) == "moved 1.\n"
    assert blueque.get_task(scheduled).status == "pending"
    assert tasks("cancel", "--all", "--queue", "default", "--state", "scheduled") == "cancelled 1.\n"
    assert (blueque.get_task(cancelled).status, blueque.get_task(cancelled).error) == ("failed", "Cancelled")
    reserved = blueque.get_listener("default").listen(timeout=1)
    assert reserved is not None and reserved.id == scheduled
    # A listener without a heartbeat cannot be judged from here; --force requeues it.
    with pytest.raises(CommandError):
        tasks("requeue", scheduled)
    assert tasks("requeue", "--force", scheduled) == "requeued 1.\n"
    assert tasks("delete", cancelled) == "deleted 1.\n"
    assert not blueque.get_task(cancelled).exists


def test_delete_all_finished_older_than(blueque: Client) -> None:
    ids = failed(blueque, 3)
    blueque.redis.hset(keys.task(ids[0]), "updated", 1_000_000_000.0)  # 2001
    assert tasks("delete", "--all", "--queue", "default", "--state", "failed", "--older-than", "2020-01-01") == (
        "deleted 1.\n"
    )
    assert [task.exists for task in blueque.get_tasks(ids)] == [False, True, True]
    assert tasks("delete", "--all", "--queue", "default", "--state", "failed", "--older-than", "7d") == "deleted 0.\n"


def test_forget_queue(blueque: Client) -> None:
    blueque.get_queue("typo").enqueue("x")
    with pytest.raises(CommandError, match="Queue 'typo' is not empty: blueque_pending_tasks_typo holds something"):
        tasks("forget-queue", "typo")
    blueque.redis.delete(keys.pending("typo"))
    assert tasks("forget-queue", "typo") == "Forgot queue typo.\n"
    with pytest.raises(CommandError, match="There is no queue 'typo'"):
        tasks("forget-queue", "typo")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retry"], "Give task ids, or --all with --queue"),
        (["retry", "x", "--all", "--queue", "default"], "Give task ids, or --all with --queue"),
        (["retry", "--all"], "--all needs --queue"),
        (["retry", "--all", "--queue", "a b"], "without whitespace"),
        (["delete", "x", "--older-than", "7d"], "--older-than goes with --all"),
        (["delete", "--all", "--queue", "default", "--older-than", "soon"], "Expected a duration"),
    ],
)
def test_bad_input_is_a_clear_error(blueque: Client, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        tasks(*args)


def test_a_state_the_action_does_not_apply_to_is_a_usage_error(blueque: Client, redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(MANAGE), "blueque_tasks", "retry", "--all", "--state", "pending"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "BLUEQUE_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "argument --state: invalid choice: 'pending'" in done.stderr  # the wording after it varies by Python
    assert "Traceback" not in done.stderr


def test_every_state_can_be_shown(blueque: Client) -> None:
    started = every_state(blueque)
    assert "  status: started" in tasks("show", started)
