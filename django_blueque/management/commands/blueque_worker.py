"""``manage.py blueque_worker``: run Django tasks and raw Blueque tasks, no prefetch, no time-outs."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from django_blueque.conf import get_settings
from django_blueque.connection import get_client
from django_blueque.execution import prepare, run_task
from django_blueque.protocol import ForkingRunner, PreforkRunner, defaults

from ._common import add_allow_unknown, add_log_format, configure_logging, known_queues, positive, queue_names


class Command(BaseCommand):
    help = (
        "Run a Blueque worker: take tasks from the queues, in the order given, only when a slot is free, "
        "and run each to completion however long it takes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "queues",
            nargs="*",
            metavar="QUEUE",
            help="Queues to serve, highest priority first (default: those of BLUEQUE['QUEUES']).",
        )
        parser.add_argument(
            "--concurrency", type=positive(int), help="Tasks run at once (default: the queues' CONCURRENCY summed)."
        )
        parser.add_argument(
            "--mode",
            choices=("fork", "prefork"),
            default="fork",
            help="fork: a new process per task; prefork: long-lived children, for many short tasks (default: fork).",
        )
        parser.add_argument("--burst", action="store_true", help="Run what is pending, then exit.")
        add_allow_unknown(parser)
        add_log_format(parser)
        parser.add_argument("--max-tasks", type=positive(int), help="Exit after this many tasks (default: never).")
        parser.add_argument(
            "--grace",
            type=positive(float),
            help="On SIGTERM, wait this long (seconds) for running tasks, then stop them and put them back in "
            "pending (default: wait for them however long they take).",
        )
        parser.add_argument(
            "--max-tasks-per-child",
            type=positive(int),
            default=defaults.DEFAULT_MAX_TASKS_PER_CHILD,
            help=f"prefork: replace a child after this many tasks (default: {defaults.DEFAULT_MAX_TASKS_PER_CHILD}).",
        )
        parser.add_argument(
            "--max-memory",
            type=positive(float),
            metavar="MIB",
            help="prefork: replace a child whose resident memory passes this (default: no limit).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"], options["log_format"])
        config = get_settings()
        queues = queue_names(options["queues"], known=known_queues(options)) or list(config.queues)
        limits = {name: config.queues[name].concurrency for name in queues if name in config.queues}
        concurrency = options["concurrency"] or sum(limits.get(name, 1) for name in queues)
        fork = options["mode"] == "fork"
        # WorkerOptions' fields, those of the other mode left at their defaults.
        worker_options: dict[str, Any] = {
            "listener_timeout": config.listener_timeout,
            "max_recoveries": config.max_recoveries,
            "max_releases": config.max_releases,
            "lost_redis": config.lost_redis,
            "grace": options["grace"],
            "max_tasks": options["max_tasks"],
        }
        runner: ForkingRunner | PreforkRunner
        if fork:
            runner = ForkingRunner(
                get_client(),
                queues,
                run_task,
                concurrency,
                before_fork=connections.close_all,
                prepare=prepare,
                queue_limits=limits,
                **worker_options,
            )
        else:
            runner = PreforkRunner(
                get_client(),
                queues,
                run_task,
                concurrency,
                before_fork=connections.close_all,
                max_tasks_per_child=options["max_tasks_per_child"],
                max_memory_mb=options["max_memory"],
                **worker_options,
            )
        logging.getLogger("django_blueque").info(
            "Worker serving %s with %d slot(s), %s mode", ", ".join(queues), concurrency, options["mode"]
        )
        ran = runner.run(burst=options["burst"])
        if options["verbosity"] >= 1:
            released = f"; {runner.tasks_released} went back to pending" if runner.tasks_released else ""
            self.stdout.write(f"Ran {ran} task(s){released}.")
