"""``manage.py blueque_monitor``: django_blueque's signals, in this process."""

from __future__ import annotations

import json
from typing import Any

from django.core.management import call_command

from django_blueque import signals
from django_blueque.protocol import Client
from django_blueque.testing import run_pending_tasks
from tests.django import tasks as test_tasks


def test_completions_and_failures_are_signalled_with_their_queue_as_sender(blueque: Client) -> None:
    seen: list[tuple[str, str, str, Any]] = []

    def on_completed(sender: str, task: Any, result: str, **kwargs: Any) -> None:
        seen.append(("completed", sender, task.id, result))

    def on_failed(sender: str, task: Any, error: str, **kwargs: Any) -> None:
        seen.append(("failed", sender, task.id, (error, task.exception)))

    def broken(sender: str, **kwargs: Any) -> None:
        raise RuntimeError("a receiver with a bug")

    ok = test_tasks.calculate_meaning_of_life.enqueue()
    bad = test_tasks.failing_task_value_error.using(queue_name="other").enqueue()
    raw = blueque.get_queue("raw").enqueue("abc")
    run_pending_tasks()
    signals.task_completed.connect(broken)
    signals.task_completed.connect(on_completed)
    signals.task_failed.connect(on_failed)
    try:
        call_command("blueque_monitor", "--burst")
        call_command("blueque_monitor", "--burst")  # nothing is signalled twice
    finally:
        signals.task_completed.disconnect(broken)
        signals.task_completed.disconnect(on_completed)
        signals.task_failed.disconnect(on_failed)
    assert sorted(seen, key=str) == sorted(
        [
            ("completed", "default", ok.id, json.dumps(42)),
            ("completed", "raw", raw, "ABC"),
            ("failed", "other", bad.id, ("This Task failed due to ValueError", "builtins.ValueError")),
        ],
        key=str,
    )
