from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from demo.work import QUEUE, reverse_text
from django_blueque.connection import get_client
from django_blueque.protocol import forking_runner


class Command(BaseCommand):
    help = "Run the demo's tasks (one forked process per task)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument("--burst", action="store_true", help="Run what is pending, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        ran = forking_runner.run(
            get_client(),
            QUEUE,
            reverse_text,
            options["concurrency"],
            burst=options["burst"],
            before_fork=connections.close_all,
        )
        self.stdout.write(f"Ran {ran} task(s).")
