"""The demo's receivers of django_blueque's signals: they keep the last few in Redis for the page to show.

A real project would send an email, update a model or call a webhook here.
They run in the monitor process (``blueque_monitor``, or ``blueque_run``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.dispatch import receiver

from django_blueque.connection import get_client
from django_blueque.signals import task_completed, task_failed, task_retrying

SIGNALS_KEY = "demo_signals"
KEEP = 20


def _keep(signal: str, sender: str, task: Any, detail: str) -> None:
    entry = json.dumps({"signal": signal, "queue": sender, "id": task.id, "detail": detail[:200], "at": time.time()})
    with get_client().redis.pipeline(transaction=True) as pipe:
        pipe.lpush(SIGNALS_KEY, entry)
        pipe.ltrim(SIGNALS_KEY, 0, KEEP - 1)
        pipe.execute()


@receiver(task_completed)
def on_completed(sender: str, task: Any, result: str, **kwargs: Any) -> None:
    _keep("task_completed", sender, task, result)


@receiver(task_failed)
def on_failed(sender: str, task: Any, error: str, **kwargs: Any) -> None:
    _keep("task_failed", sender, task, error)


@receiver(task_retrying)
def on_retrying(sender: str, task: Any, error: str, **kwargs: Any) -> None:
    _keep("task_retrying", sender, task, error)


def recent() -> list[dict[str, Any]]:
    """The signals received lately, newest first."""
    return [json.loads(entry) for entry in get_client().redis.lrange(SIGNALS_KEY, 0, -1)]
