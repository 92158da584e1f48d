"""What can be wrong with the ``BLUEQUE`` setting: one check id per problem.

:func:`problems` reads the setting and touches neither Redis nor any import
of the project's code; the system checks (checks.py) report its problems, and
``conf.get_settings()`` refuses to build from a setting that has any. The
ids are listed, with what each means, in docs/settings.md; a test holds the
two lists together, and another that each id is raised in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from .protocol.defaults import LOST_REDIS_CHOICES, MIN_LISTENER_TIMEOUT
from .protocol.keys import validate_queue_name

KNOWN_KEYS = frozenset(
    {
        "REDIS_URL",
        "CONNECTION",
        "SENTINELS",
        "SENTINEL_SERVICE",
        "SENTINEL_KWARGS",
        "REDIS_KWARGS",
        "QUEUES",
        "LISTENER_TIMEOUT",
        "MAX_RECOVERIES",
        "SCHEDULE",
        "RESULT_TTL",
        "FAILED_RESULT_TTL",
        "LOST_REDIS",
        "MAX_RELEASES",
        "MAX_PARAMETERS",
    }
)
QUEUE_KEYS = frozenset({"CONCURRENCY", "HANDLER"})
URL_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Problem:
    id: str
    msg: str
    hint: str


def _number(minimum: float) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum


def _whole(minimum: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True)
class Rule:
    """A setting that holds one value: what it must be, and the check id when it is not."""

    key: str
    id: str
    valid: Callable[[Any], bool]
    must_be: str
    hint: str

    def problem(self, raw: dict[str, Any]) -> Problem | None:
        if self.key not in raw or self.valid(raw[self.key]):
            return None  # absent: the default, valid by construction
        return Problem(self.id, f"BLUEQUE['{self.key}'] must be {self.must_be}, not {raw[self.key]!r}.", self.hint)


RULES = (
    Rule(
        "LISTENER_TIMEOUT",
        "django_blueque.E012",
        _number(MIN_LISTENER_TIMEOUT),
        f"a number of seconds >= {MIN_LISTENER_TIMEOUT:g}",
        "Workers beat four times per timeout; a dead worker's tasks are recovered after it.",
    ),
    Rule(
        "MAX_RECOVERIES",
        "django_blueque.E013",
        _whole(0),
        "a whole number >= 0",
        "How many times a task whose worker died is run again before it fails.",
    ),
    Rule(
        "RESULT_TTL",
        "django_blueque.E015",
        _number(0),
        "a number of seconds >= 0",
        "How long a complete task stays readable after the monitor reports it.",
    ),
    Rule(
        "FAILED_RESULT_TTL",
        "django_blueque.E026",
        _number(0),
        "a number of seconds >= 0",
        "How long a failed task stays readable after the monitor reports it.",
    ),
    Rule(
        "MAX_RELEASES",
        "django_blueque.E016",
        _whole(1),
        "a whole number >= 1",
        "How many times a task may go back to pending unfinished (shutdowns, recoveries) before it fails.",
    ),
    Rule(
        "LOST_REDIS",
        "django_blueque.E017",
        lambda value: value in LOST_REDIS_CHOICES,
        f"one of {', '.join(map(repr, LOST_REDIS_CHOICES))}",
        "'continue' lets a worker cut off from Redis finish its tasks; 'stop' stops them (see docs/worker.md).",
    ),
    Rule(
        "MAX_PARAMETERS",
        "django_blueque.E019",
        _whole(1),
        "a whole number of bytes >= 1",
        "The largest arguments (as JSON) a Django task may be enqueued with.",
    ),
    Rule(
        "SENTINEL_KWARGS",
        "django_blueque.E021",
        lambda value: isinstance(value, dict),
        "a dict",
        "Keyword arguments for the connections to the sentinels.",
    ),
    Rule(
        "REDIS_KWARGS",
        "django_blueque.E027",
        lambda value: isinstance(value, dict),
        "a dict",
        "Keyword arguments for redis.Redis, for example {'socket_timeout': 5}.",
    ),
)


def raw_setting() -> Any:
    return getattr(settings, "BLUEQUE", {})


def problems() -> list[Problem]:
    """What is wrong with the ``BLUEQUE`` setting, without touching Redis or importing handlers."""
    raw = raw_setting()
    if not isinstance(raw, dict):
        return [Problem("django_blueque.E001", "The BLUEQUE setting must be a dict.", "See the settings reference.")]
    found = []
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        found.append(
            Problem(
                "django_blueque.E002",
                f"Unknown keys in BLUEQUE: {', '.join(map(repr, unknown))}.",
                f"Known keys: {', '.join(sorted(KNOWN_KEYS))}.",
            )
        )
    found += _redis_problems(raw)
    found += _queue_problems(raw.get("QUEUES", {}))
    found += [problem for rule in RULES if (problem := rule.problem(raw)) is not None]
    return found


def sentinel_addresses(value: Any) -> tuple[tuple[str, int], ...] | None:
    """``SENTINELS`` as ``(host, port)`` pairs, or None when it is not a non-empty list of them."""
    if not isinstance(value, list | tuple) or not value:
        return None
    addresses = []
    for item in value:
        if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)):
            return None
        if not isinstance(item[1], int) or isinstance(item[1], bool):
            return None
        addresses.append((item[0], item[1]))
    return tuple(addresses)


def _redis_problems(raw: dict[str, Any]) -> list[Problem]:
    given = [key for key in ("REDIS_URL", "CONNECTION", "SENTINELS") if raw.get(key)]
    if len(given) > 1:
        return [
            Problem(
                "django_blueque.E003",
                f"BLUEQUE sets {' and '.join(given)}; they are alternatives.",
                "Keep one: REDIS_URL, CONNECTION (a django-redis CACHES alias) or SENTINELS.",
            )
        ]
    found: list[Problem] = []
    url = raw.get("REDIS_URL")
    if url is not None and (not isinstance(url, str) or urlsplit(url).scheme not in URL_SCHEMES):
        found.append(
            Problem(
                "django_blueque.E004",
                f"BLUEQUE['REDIS_URL'] is not a Redis URL: {url!r}.",
                "Use redis://host:port/db, rediss://... for TLS, or unix:///path/to/socket.",
            )
        )
    alias = raw.get("CONNECTION")
    if alias is not None:
        cache_config = getattr(settings, "CACHES", {}).get(alias) if isinstance(alias, str) else None
        if not cache_config or not str(cache_config.get("BACKEND", "")).startswith("django_redis."):
            found.append(
                Problem(
                    "django_blueque.E005",
                    f"BLUEQUE['CONNECTION'] = {alias!r} is not a django-redis cache in CACHES.",
                    "Name a CACHES alias whose BACKEND is django_redis.cache.RedisCache, or use REDIS_URL.",
                )
            )
    sentinels = raw.get("SENTINELS")
    if sentinels is not None and not (sentinel_addresses(sentinels) and isinstance(raw.get("SENTINEL_SERVICE"), str)):
        found.append(
            Problem(
                "django_blueque.E006",
                "BLUEQUE['SENTINELS'] needs a list of (host, port) pairs and a SENTINEL_SERVICE name.",
                'For example: "SENTINELS": [("10.0.0.1", 26379)], "SENTINEL_SERVICE": "mymaster".',
            )
        )
    return found


def _queue_problems(queues: Any) -> list[Problem]:
    if not isinstance(queues, dict):
        return [
            Problem(
                "django_blueque.E007",
                "BLUEQUE['QUEUES'] must be a dict of queue name to options.",
                'For example: "QUEUES": {"default": {"CONCURRENCY": 4}}.',
            )
        ]
    found = []
    for name, options in queues.items():
        try:
            validate_queue_name(name)
        except ValueError as exc:
            found.append(Problem("django_blueque.E022", f"BLUEQUE['QUEUES']: {exc}", "Rename the queue."))
            continue
        if not isinstance(options, dict) or set(options) - QUEUE_KEYS:
            unknown = sorted(set(options) - QUEUE_KEYS) if isinstance(options, dict) else options
            found.append(
                Problem(
                    "django_blueque.E008",
                    f"BLUEQUE['QUEUES'][{name!r}] has unknown options: {unknown!r}.",
                    f"Known options: {', '.join(sorted(QUEUE_KEYS))}.",
                )
            )
            continue
        concurrency = options.get("CONCURRENCY", 1)
        if not _whole(1)(concurrency):
            found.append(
                Problem(
                    "django_blueque.E023",
                    f"BLUEQUE['QUEUES'][{name!r}]['CONCURRENCY'] must be a positive integer, not {concurrency!r}.",
                    "The number of tasks of this queue a worker runs at once.",
                )
            )
        handler = options.get("HANDLER")
        if handler is not None and not isinstance(handler, str):
            found.append(
                Problem(
                    "django_blueque.E009",
                    f"BLUEQUE['QUEUES'][{name!r}]['HANDLER'] must be a dotted path, not {handler!r}.",
                    "For example: 'myapp.work.transcode'.",
                )
            )
    return found
