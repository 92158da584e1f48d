import os
import time
from typing import Any

import redis
from django.apps import AppConfig
from django.conf import settings

JOURNAL = "test_signals"
DELAY_ENV = "BLUEQUE_TEST_SIGNAL_DELAY"


def record(event: str) -> Any:
    def receive(sender: str, task: Any, **kwargs: Any) -> None:
        time.sleep(float(os.environ.get(DELAY_ENV, "0")))
        conn = redis.Redis.from_url(str(settings.BLUEQUE["REDIS_URL"]))
        conn.rpush(JOURNAL, f"{event} {sender} {task.id}")
        conn.close()

    return receive


class ReceiversConfig(AppConfig):
    name = "tests.workers.receivers"

    def ready(self) -> None:
        from django_blueque import signals

        # Kept on the class: signals hold receivers weakly.
        self.receivers = {"completed": record("completed"), "failed": record("failed"), "retrying": record("retrying")}
        signals.task_completed.connect(self.receivers["completed"])
        signals.task_failed.connect(self.receivers["failed"])
        signals.task_retrying.connect(self.receivers["retrying"])
