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
from django_blueque.protocol import STARTED, STATUSES, Beater, beaters

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


#: The roles of the processes that beat, as the table names them, and their key in the JSON.
ROLES = (("listener", "listeners"), ("scheduler", "schedulers"), ("monitor", "monitors"))


def processes(queues: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The listeners of ``queues``, the schedulers and the monitors, as their heartbeats show them."""
    fleet = beaters(get_client().redis, queues)

    def row(beater: Beater) -> dict[str, Any]:
        return {
            "id": beater.id,
            "host": beater.host,
            "pid": beater.pid,
            "queues": list(beater.queues),
            "beat_age": None if beater.beat_age is None else round(beater.beat_age, 3),
            # None: it never beats (a Blueque 1.0.1 listener), so its liveness cannot be told here.
            "alive": beater.alive,
            "state": beater.state,
            "tasks": list(beater.tasks),
        }

    return {
        "listeners": [row(b) for b in fleet.listeners],
        "schedulers": [row(b) for b in fleet.schedulers],
        "monitors": [row(b) for b in fleet.monitors],
    }


def processes_table(found: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for role, key in ROLES:
        for process in found[key]:
            beat = "never beat" if process["beat_age"] is None else f"beat {age(process['beat_age'])} ago"
            tasks = f"{len(process['tasks'])} task(s)" if role == "listener" else ""
            rows.append((role, process["id"], ", ".join(process["queues"]) or "-", beat, process["state"], tasks))
    if not rows:
        return "\n\nworkers, schedulers and monitors: none"
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    lines = ["", "", "workers, schedulers and monitors:"]
    lines += [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


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
    help = (
        "Show every Blueque queue with its task counts per state, listeners and oldest pending task, the "
        "running tasks, and the workers' listeners, schedulers and monitors with their heartbeats."
    )

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
                    found = processes(list(queues))
                except redis.RedisError as exc:
                    raise CommandError(f"Cannot read Blueque state from Redis: {exc}") from exc
                if options["json"]:
                    self.stdout.write(
                        json.dumps({"queues": queues, "running": tasks, "processes": found}, sort_keys=True)
                    )
                else:
                    if redraw:
                        self.stdout.write("\x1b[H\x1b[2J", ending="")  # clear the terminal
                    self.stdout.write(table(queues) + (running_table(tasks) if tasks else "") + processes_table(found))
                    if interval is not None and not redraw:
                        self.stdout.write("")  # a blank line between refreshes
                if interval is None:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
