"""``manage.py blueque_monitor``: Django signals for finished tasks, and result retention."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_blueque import signals
from django_blueque.conf import get_settings
from django_blueque.connection import get_client
from django_blueque.protocol import Monitor, Task

from ._common import add_allow_unknown, add_log_format, configure_logging, known_queues, positive, queue_names

logger = logging.getLogger("django_blueque")


def completed(task: Task) -> None:
    _send(signals.task_completed, task, result=task.result or "")


def failed(task: Task) -> None:
    _send(signals.task_failed, task, error=task.error or "")


def retrying(task: Task, attempt: dict[str, Any]) -> None:
    _send(signals.task_retrying, task, error=str(attempt.get("error", "")), eta=attempt.get("retry_at"))


def _send(signal: Any, task: Task, **kwargs: Any) -> None:
    for receiver, response in signal.send_robust(sender=task.queue or "", task=task, **kwargs):
        if isinstance(response, Exception):
            logger.error("Receiver %r failed for task %s", receiver, task.id, exc_info=response)


class Command(BaseCommand):
    help = (
        "Send task_completed and task_failed for every finished task, once, and delete finished tasks "
        "after RESULT_TTL / FAILED_RESULT_TTL. Any number may run at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE", help="Only these queues (default: all in Redis).")
        parser.add_argument(
            "--interval", type=positive(float), default=0.5, help="Seconds between polls when idle (default: 0.5)."
        )
        add_allow_unknown(parser)
        add_log_format(parser)
        parser.add_argument("--burst", action="store_true", help="Report what has finished, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"], options["log_format"])
        config = get_settings()
        monitor = Monitor(
            get_client(),
            queue_names(options["queues"], known=known_queues(options)) or None,
            on_complete=completed,
            on_failed=failed,
            on_retrying=retrying,
            interval=options["interval"],
            result_ttl=config.result_ttl,
            failed_result_ttl=config.failed_result_ttl,
            listener_timeout=config.listener_timeout,
        )
        logger.info("Monitor %s serving %s", monitor.id, ", ".join(options["queues"]) or "every queue in Redis")
        monitor.run(burst=options["burst"])
