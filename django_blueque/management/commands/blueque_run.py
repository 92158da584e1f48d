"""``manage.py blueque_run``: a worker, a scheduler and a monitor in one process tree.

For small deployments and development. Each runs in a forked child; one that
dies is started again (after a pause that grows to 30 s while it keeps
dying). SIGTERM is passed on to the worker and the scheduler (a second one
too); SIGINT (Ctrl-C) is not passed on, since a terminal sends it to the
whole process group already. The monitor runs in a process group of its own,
out of Ctrl-C's reach, and is stopped only once the worker has exited, so the
tasks the worker finished while stopping are signalled. The command returns
when all have stopped.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from django_blueque.protocol import Supervision, describe_status, reap_exited, run_child

from ._common import (
    ALLOW_UNKNOWN,
    add_allow_unknown,
    add_log_format,
    configure_logging,
    known_queues,
    positive,
    queue_names,
)

#: prctl(2) option: the signal sent to this process when its parent dies.
PR_SET_PDEATHSIG = 1

logger = logging.getLogger("django_blueque")

#: Seconds before a child that died is started again, doubling while it keeps dying.
FIRST_PAUSE, LONGEST_PAUSE = 1.0, 30.0


def stop_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM to this process when its parent dies (Linux).

    The monitor runs in a process group of its own, so a kill of blueque_run's
    group (kill -9 of the whole tree) would otherwise leave it running alone.
    """
    try:
        # The symbols already loaded: looking libc up by name would start a subprocess.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        logger.debug("Cannot ask to be stopped with the parent on this system")
        return
    if os.getppid() != parent:  # it died before the call: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


class Command(BaseCommand):
    help = "Run a Blueque worker, scheduler and monitor together, restarting any that dies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "queues",
            nargs="*",
            metavar="QUEUE",
            help="Queues for the worker, highest priority first (default: those of BLUEQUE['QUEUES']).",
        )
        add_allow_unknown(parser)
        add_log_format(parser)
        parser.add_argument(
            "--concurrency", type=positive(int), help="The worker's slots (default: the queues' CONCURRENCY summed)."
        )
        parser.add_argument(
            "--mode", choices=("fork", "prefork"), default="fork", help="The worker's mode (default: fork)."
        )
        parser.add_argument(
            "--grace",
            type=positive(float),
            help="The worker's grace period on SIGTERM, in seconds (default: wait for running tasks).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"], options["log_format"])
        worker = [
            "blueque_worker",
            *queue_names(options["queues"], known=known_queues(options)),
            "--mode",
            options["mode"],
        ]
        if options["allow_unknown_queues"]:
            worker.append(ALLOW_UNKNOWN)
        if options["concurrency"]:
            worker += ["--concurrency", str(options["concurrency"])]
        if options["grace"]:
            worker += ["--grace", str(options["grace"])]
        verbosity = ["--verbosity", str(options["verbosity"])]
        if options["log_format"] != "text":
            worker += ["--log-format", options["log_format"]]
        self.roles = {
            "worker": [*worker, *verbosity],
            "scheduler": ["blueque_scheduler", *verbosity],
            "monitor": ["blueque_monitor", *verbosity],
        }
        self.children: dict[int, str] = {}
        self.monitor_stopped = False
        self.supervision = Supervision()
        self.supervision.open()
        try:
            for role in self.roles:
                self.start(role)
            self.supervise()
        finally:
            self.supervision.close()

    def pass_sigterm_on(self, passed: int) -> int:
        """Send the worker and the scheduler each SIGTERM received since ``passed``; the count so far.

        SIGINT is not passed on: a terminal sends it to the whole group already.
        """
        received = self.supervision.received.get(signal.SIGTERM, 0)
        for _ in range(received - passed):
            for pid, role in self.children.items():
                if role != "monitor":
                    os.kill(pid, signal.SIGTERM)
        return received

    def stop_the_monitor_after_the_worker(self) -> None:
        roles = set(self.children.values())
        if self.supervision.stopping and "worker" not in roles and "monitor" in roles and not self.monitor_stopped:
            self.monitor_stopped = True
            for pid, role in self.children.items():
                if role == "monitor":
                    os.kill(pid, signal.SIGTERM)

    def start(self, role: str) -> None:
        connections.close_all()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            self.supervision.in_child()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if role == "monitor":
                os.setpgid(0, 0)  # out of the terminal's Ctrl-C: stopped after the worker
                stop_with_parent(parent)

            def body() -> int:
                call_command(*self.roles[role])
                return 0

            run_child(body)
        self.children[pid] = role
        logger.info("blueque_run: %s started (process %d)", role, pid)

    def supervise(self) -> None:
        pauses = dict.fromkeys(self.roles, FIRST_PAUSE)
        restart_at: dict[str, float] = {}
        passed = 0
        while self.children or (restart_at and not self.supervision.stopping):
            passed = self.pass_sigterm_on(passed)
            for pid, status in reap_exited():
                role = self.children.pop(pid, None)
                if role is None or self.supervision.stopping:
                    continue
                logger.error(
                    "blueque_run: the %s (process %d) %s; restarting it in %gs",
                    role,
                    pid,
                    describe_status(status),
                    pauses[role],
                )
                restart_at[role] = time.monotonic() + pauses[role]
                pauses[role] = min(pauses[role] * 2, LONGEST_PAUSE)
            # After the reaping: the worker's end just seen tells the monitor now, not a pass later.
            self.stop_the_monitor_after_the_worker()
            now = time.monotonic()
            for role, when in list(restart_at.items()):
                if self.supervision.stopping:
                    restart_at.clear()
                elif when <= now:
                    del restart_at[role]
                    self.start(role)
            next_restart = min(restart_at.values(), default=now + 1.0)
            if self.children or restart_at:  # else the last child was just reaped: done, no wait
                self.supervision.wait(min(next_restart - now, 1.0))
