"""``manage.py blueque_tasks``: inspect tasks, and retry, requeue, cancel, run now or delete them.

The operations are the protocol's (``django_blueque.protocol.operations``),
as the admin uses them: each on the task ids given, or with ``--all`` on
every task of ``--queue`` in ``--state``, in batches.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_blueque.conf import get_settings
from django_blueque.connection import get_client
from django_blueque.protocol import ACTIONS, Client, Operations, Outcome, Task
from django_blueque.protocol.defaults import DEFAULT_BATCH

from ._common import configure_logging, positive, queue_names

#: Command-line names of the operations (``run-now`` for ``run_now``).
VERBS = {action.replace("_", "-"): action for action in ACTIONS}

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def older_than(text: str) -> float:
    """``--older-than``: a duration back from now (``7d``, ``12h``, ``30m``, ``90s``) or an ISO date or time."""
    match = _DURATION.match(text)
    if match:
        return time.time() - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"Expected a duration such as 7d, 12h, 30m or 90s, or an ISO date such as 2026-11-01, not {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as a person typing a date means it
    return when.timestamp()


def described(task: Task) -> dict[str, Any]:
    """A task's fields for ``show``, parameters and errors decoded when they are JSON."""
    shown: dict[str, Any] = {"id": task.id, "exists": task.exists}
    for name, value in sorted(task.fields.items()):
        shown[name] = value
        if name in ("parameters", "errors", "result"):
            with contextlib.suppress(ValueError):  # shown as the text it is
                shown[name] = json.loads(value)
    return shown


class Command(BaseCommand):
    help = (
        "Show tasks, or retry, requeue, cancel, run now or delete them: the task ids given, "
        "or with --all every task of --queue in --state."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="verb", required=True, metavar="ACTION")
        show = actions.add_parser("show", help="Print tasks' fields.")
        show.add_argument("ids", nargs="+", metavar="TASK_ID", help="The tasks to show.")
        show.add_argument("--json", action="store_true", help="One JSON object per task, one per line.")
        states_help = {verb: " or ".join(ACTIONS[action][0]) for verb, action in VERBS.items()}
        for verb, action in VERBS.items():
            states, _ = ACTIONS[action]
            sub = actions.add_parser(verb, help=f"{verb.capitalize()} {states_help[verb]} tasks.")
            sub.add_argument("ids", nargs="*", metavar="TASK_ID", help="The tasks to act on.")
            sub.add_argument("--queue", help="With --all: the queue.")
            sub.add_argument(
                "--state", choices=states, default=states[0], help=f"With --all: the state (default: {states[0]})."
            )
            sub.add_argument("--all", action="store_true", help="Every task of --queue in --state.")
            sub.add_argument("--dry-run", action="store_true", help="Say what would be done; change nothing.")
            sub.add_argument(
                "--batch",
                type=positive(int),
                default=DEFAULT_BATCH,
                help=f"With --all: tasks per round (default: {DEFAULT_BATCH}).",
            )
            if action == "requeue":
                sub.add_argument(
                    "--force",
                    action="store_true",
                    help="Requeue even if the task's worker looks alive (a stuck task). Its run is stopped at its "
                    "next heartbeat; until then two runs may overlap.",
                )
            if action == "delete":
                sub.add_argument(
                    "--older-than",
                    type=str,
                    metavar="WHEN",
                    help="With --all: only tasks finished before WHEN (7d, 12h, 30m, 90s, or an ISO date).",
                )
        forget = actions.add_parser("forget-queue", help="Drop a queue name that has no tasks and no listeners.")
        forget.add_argument("queue", help="The queue name to forget.")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"])
        config = get_settings()
        client = get_client()
        operations = client.operations(
            listener_timeout=config.listener_timeout,
            max_recoveries=config.max_recoveries,
            max_releases=config.max_releases,
        )
        verb = options["verb"]
        if verb == "show":
            self.show(client.get_tasks(options["ids"]), as_json=options["json"])
            return
        if verb == "forget-queue":
            (name,) = queue_names([options["queue"]])
            word = operations.forget_queue(name)
            if word == "unknown":
                raise CommandError(f"There is no queue {name!r}")
            if word != "forgotten":
                raise CommandError(f"Queue {name!r} is not empty: {word} holds something")
            self.stdout.write(f"Forgot queue {name}.")
            return
        self.act(client, operations, VERBS[verb], options)

    def show(self, tasks: list[Task], *, as_json: bool) -> None:
        for task in tasks:
            shown = described(task)
            if as_json:
                self.stdout.write(json.dumps(shown, sort_keys=True))
                continue
            if not task.exists:
                self.stdout.write(f"{task.id}: no such task\n")
                continue
            self.stdout.write(task.id)
            for name, value in shown.items():
                if name in ("id", "exists"):
                    continue
                text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
                self.stdout.write(f"  {name}: " + text.replace("\n", "\n    "))
            self.stdout.write("")

    def act(self, client: Client, operations: Operations, action: str, options: dict[str, Any]) -> None:
        ids: list[str] = options["ids"]
        if options["all"] == bool(ids):
            raise CommandError("Give task ids, or --all with --queue (and --state), not both")
        when = older_than(options["older_than"]) if options.get("older_than") else None
        if when is not None and not options["all"]:
            raise CommandError("--older-than goes with --all")
        force = bool(options.get("force"))
        if options["all"]:
            if not options["queue"]:
                raise CommandError("--all needs --queue")
            (queue,) = queue_names([options["queue"]])
            state = options["state"]
            if options["dry_run"]:
                found = [task_id for page in operations.in_state(queue, state, older_than=when) for task_id in page]
                self.stdout.write(f"Would {action.replace('_', ' ')} {len(found)} {state} task(s) of queue {queue}:")
                for task_id in found:
                    self.stdout.write(f"  {task_id}")
                return
            outcome = operations.apply_to_state(
                action, queue, state, batch=options["batch"], older_than=when, force=force
            )
        else:
            if options["dry_run"]:
                self.report_dry_run(action, client.get_tasks(ids))
                return
            outcome = operations.run(action, ids, force=force)
        self.report(outcome)

    def report_dry_run(self, action: str, tasks: list[Task]) -> None:
        """Which of the tasks given the action applies to, by their status now."""
        states, _ = ACTIONS[action]
        verb = action.replace("_", " ")
        applies = [task for task in tasks if task.status in states]
        self.stdout.write(f"Would {verb} {len(applies)} of {len(tasks)} task(s):")
        for task in tasks:
            status = task.status if task.exists else "no such task"
            note = f"would {verb}" if task in applies else "left alone"
            if action == "requeue" and task in applies:
                note += " if its worker is dead (or with --force)"
            self.stdout.write(f"  {task.id}: {status}, {note}")

    def report(self, outcome: Outcome) -> None:
        self.stdout.write(f"{outcome}.")
        for task_id, word in outcome.refused.items():
            self.stdout.write(f"  {task_id}: {word}")
        if outcome.refused:
            raise CommandError(f"{len(outcome.refused)} task(s) left alone (see above)")
