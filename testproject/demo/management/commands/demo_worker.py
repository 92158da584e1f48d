from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from django_blueque.conf import get_settings
from django_blueque.connection import get_client
from django_blueque.execution import run_task
from django_blueque.protocol import forking_runner


class Command(BaseCommand):
    help = "Run the demo's tasks, one forked process per task, on every configured queue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=4)
        parser.add_argument("--burst", action="store_true", help="Run what is pending, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        ran = forking_runner.run(
            get_client(),
            list(get_settings().queues),
            run_task,
            options["concurrency"],
            burst=options["burst"],
            before_fork=connections.close_all,
        )
        self.stdout.write(f"Ran {ran} task(s).")
