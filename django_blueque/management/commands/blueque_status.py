"""``manage.py blueque_status``: what every queue holds, from Redis, in a few round trips."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_blueque.conf import get_settings
from django_blueque.connection import get_client
from django_blueque.humanize import age
from django_blueque.protocol import STARTED, STATUSES

from ._common import positive

COLUMNS = (*STATUSES, "listeners")


def collect(queues: list[str]) -> dict[str, dict[str, Any]]:
    """Counts per state, listeners and the oldest pending task's age, per queue."""
    client = get_client()
    names = queues or sorted(set(client.queue_names()) | set(get_settings().queues))
    stats = client.queue_stats(names)
    oldest = client.oldest_pending(names)
    now = time.time()
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        created = oldest[name]
        age = None if created is None else round(max(now - created, 0.0), 3)
        rows[name] = {**stats[name].counts(), "oldest_pending_age": age}
    return rows


def running(queues: list[str], per_queue: int = 20) -> list[dict[str, Any]]:
    """The started tasks of ``queues`` (up to ``per_queue`` each) with their progress."""
    client = get_client()
    ids = [task_id for name in queues for task_id in client.task_ids(name, STARTED, count=per_queue)]
    now = time.time()
    return [
        {
            "id": task.id,
            "queue": task.queue,
            "node": task.node,
            "progress": task.progress,
            "progress_message": task.progress_message,
            "running_for": None if task.started_at is None else round(max(now - task.started_at, 0.0), 3),
        }
        for task in client.get_tasks(ids)
        if task.status == STARTED
    ]


def running_table(tasks: list[dict[str, Any]]) -> str:
    lines = ["", "", "running tasks:"]  # a blank line after the queue table
    for task in tasks:
        progress = "" if task["progress"] is None else f"{task['progress'] * 100:.0f}% {task['progress_message'] or ''}"
        lines.append(f"  {task['id']}  {task['queue']}  {age(task['running_for'])}  {progress}".rstrip())
    return "\n".join(lines)


def table(queues: dict[str, dict[str, Any]]) -> str:
    headers = ("queue", *COLUMNS, "oldest pending")
    rows = [
        (name, *(str(row[column]) for column in COLUMNS), age(row["oldest_pending_age"]))
        for name, row in queues.items()
    ]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in (headers, *rows)
    ]
    if not rows:
        lines.append("(no queues)")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Show every Blueque queue with its task counts per state, listeners and oldest pending task."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE", help="Only these queues (default: all).")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
        parser.add_argument(
            "--watch",
            nargs="?",
            type=positive(float),
            const=2.0,
            metavar="SECONDS",
            help="Refresh every SECONDS (default 2) until interrupted.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["watch"]
        # Redraw in place on a terminal only: in a file or a pipe, the control codes would be noise.
        redraw = interval is not None and self.stdout.isatty()
        try:
            while True:
                try:
                    queues = collect(options["queues"])
                    tasks = running([name for name, row in queues.items() if row[STARTED]])
                except redis.RedisError as exc:
                    raise CommandError(f"Cannot read Blueque state from Redis: {exc}") from exc
                if options["json"]:
                    self.stdout.write(json.dumps({"queues": queues, "running": tasks}, sort_keys=True))
                else:
                    if redraw:
                        self.stdout.write("\x1b[H\x1b[2J", ending="")  # clear the terminal
                    self.stdout.write(table(queues) + (running_table(tasks) if tasks else ""))
                    if interval is not None and not redraw:
                        self.stdout.write("")  # a blank line between refreshes
                if interval is None:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
