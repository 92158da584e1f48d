"""``manage.py blueque_scheduler``: due tasks to pending, periodic tasks, orphan sweeps."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_blueque import schedule
from django_blueque.conf import get_settings
from django_blueque.connection import get_client
from django_blueque.protocol import Scheduler

from ._common import add_allow_unknown, add_log_format, configure_logging, known_queues, positive, queue_names


class Command(BaseCommand):
    help = (
        "Move due scheduled tasks to pending, enqueue the periodic tasks of BLUEQUE['SCHEDULE'] and recover "
        "the tasks of dead workers. Any number may run at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE", help="Only these queues (default: all in Redis).")
        parser.add_argument(
            "--interval", type=positive(float), default=0.25, help="Seconds between rounds (default 0.25)."
        )
        add_allow_unknown(parser)
        add_log_format(parser)
        parser.add_argument("--burst", action="store_true", help="Do one round, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"], options["log_format"])
        found = schedule.problems()
        if found:
            raise CommandError(f"{found[0].msg} ({found[0].id})")
        config = get_settings()
        scheduler = Scheduler(
            get_client(),
            queue_names(options["queues"], known=known_queues(options)) or None,
            periodic=schedule.periodic_tasks(),
            interval=options["interval"],
            listener_timeout=config.listener_timeout,
            max_recoveries=config.max_recoveries,
            max_releases=config.max_releases,
        )
        logging.getLogger("django_blueque").info(
            "Scheduler serving %s", ", ".join(options["queues"]) or "every queue in Redis"
        )
        scheduler.run(burst=options["burst"])
