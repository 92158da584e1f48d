"""What the management commands share: option parsing and logging set-up."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_blueque.protocol.keys import validate_queue_name

LOG_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a number > 0 (a whole one for ``int``).

    It raises ``ArgumentTypeError``, which argparse turns into its one-line
    usage error (exit status 2); a ``CommandError`` raised there would escape
    Django's handling as a traceback.
    """
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} > 0, not {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what} > 0, not {text!r}")
        return value

    parse.__name__ = kind.__name__  # what argparse names in its messages
    return parse


#: The option that lets a command serve queues that BLUEQUE["QUEUES"] does not name.
ALLOW_UNKNOWN = "--allow-unknown-queues"


def add_allow_unknown(parser: CommandParser) -> None:
    parser.add_argument(
        ALLOW_UNKNOWN,
        action="store_true",
        help="Accept QUEUE names that BLUEQUE['QUEUES'] does not list (raw Blueque 1.0.1 queues, say); "
        "without it such a name is refused, since it is most often a typo.",
    )


def queue_names(names: list[str], *, known: Iterable[str] | None = None) -> list[str]:
    """The QUEUE arguments of a command, each checked by the protocol's rule, none twice.

    With ``known`` (the configured queues, unless the command was given
    ALLOW_UNKNOWN), a name that is not among them is refused with the list.
    """
    for name in names:
        try:
            validate_queue_name(name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if len(set(names)) != len(names):
        raise CommandError(f"A queue is listed twice: {' '.join(names)}")
    if known is not None:
        configured = sorted(known)
        unknown = [name for name in names if name not in configured]
        if unknown:
            raise CommandError(
                f"Unknown queue{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                f"BLUEQUE['QUEUES'] has {', '.join(configured) or 'none'}; "
                f"pass {ALLOW_UNKNOWN} to serve {'them' if len(unknown) > 1 else 'it'} anyway"
            )
    return names


def known_queues(options: dict[str, Any]) -> list[str] | None:
    """The queues a command's QUEUE arguments must be among, or None if it may serve any."""
    if options.get("allow_unknown_queues"):
        return None
    from django_blueque.conf import get_settings

    return list(get_settings().queues)


#: The loggers of Django's Tasks framework (Django 6, the backport): their RUNNING, SUCCESSFUL and
#: FAILED lines, from the signals a worker sends, belong in a worker's output too.
TASKS_LOGGERS = ("django.tasks", "django_tasks")
LOG_FORMATS = ("text", "json")


def add_log_format(parser: CommandParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text: a line per record; json: one JSON object per record, a task line's fields as keys (default: text).",
    )


def configure_logging(verbosity: int, log_format: str = "text") -> None:
    """Send django_blueque's log, and the Tasks framework's, to stderr at the level --verbosity asks.

    Loggers that LOGGING already gives a handler keep it; with ``json`` every
    handler of these loggers writes JSON.
    """
    from django_blueque.tasklog import JsonFormatter

    level = LOG_LEVELS.get(verbosity, logging.DEBUG)
    formatter = (
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    for name in ("django_blueque", *TASKS_LOGGERS):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not logger.handlers and not logging.getLogger().handlers:
            logger.addHandler(logging.StreamHandler())
            if name != "django_blueque":
                logger.propagate = False
            for handler in logger.handlers:
                handler.setFormatter(formatter)
        elif log_format == "json":
            for handler in logger.handlers:
                handler.setFormatter(formatter)
