"""What the management commands share: option parsing and logging set-up."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import CommandError

from django_blueque.protocol.keys import validate_queue_name

LOG_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise CommandError(f"Expected a number, not {text!r}") from None
        if value <= 0:
            raise CommandError(f"Expected a positive number, not {text!r}")
        return value

    return parse


def queue_names(names: list[str]) -> list[str]:
    """The QUEUE arguments of a command, each checked by the protocol's rule, none twice."""
    for name in names:
        try:
            validate_queue_name(name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if len(set(names)) != len(names):
        raise CommandError(f"A queue is listed twice: {' '.join(names)}")
    return names


def configure_logging(verbosity: int) -> None:
    """Send django_blueque's log to stderr at the level --verbosity asks, unless LOGGING already does."""
    logger = logging.getLogger("django_blueque")
    logger.setLevel(LOG_LEVELS.get(verbosity, logging.DEBUG))
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
