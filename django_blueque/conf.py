"""The ``BLUEQUE`` setting, read lazily into one typed object.

Nothing is read at import time: :func:`get_settings` builds the object on
first use and forgets it when Django's ``setting_changed`` signal reports a
change (``override_settings`` in tests). :func:`problems` lists what is wrong
with the setting; the system checks report those problems and
:func:`get_settings` refuses to build from a setting that has any.

Example::

    BLUEQUE = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",  # or "CONNECTION", or "SENTINELS"
        "QUEUES": {
            "default": {"CONCURRENCY": 4},
            "video": {"CONCURRENCY": 2, "HANDLER": "myapp.work.transcode"},
        },
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .protocol.keys import validate_queue_name
from .protocol.liveness import (
    DEFAULT_LISTENER_TIMEOUT,
    DEFAULT_MAX_RECOVERIES,
    DEFAULT_MAX_RELEASES,
    MIN_LISTENER_TIMEOUT,
)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "default"

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
#: What a worker that cannot reach Redis does with its running tasks (see docs/worker.md).
LOST_REDIS_CHOICES = ("continue", "stop")
DEFAULT_RESULT_TTL = 24 * 3600.0
#: Largest ``parameters`` of a Django task, in bytes of JSON: larger data belongs elsewhere
#: (a file, a row), with its reference in the task.
DEFAULT_MAX_PARAMETERS = 1024 * 1024
DEFAULT_FAILED_RESULT_TTL = 7 * 24 * 3600.0
QUEUE_KEYS = frozenset({"CONCURRENCY", "HANDLER"})
URL_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class QueueSettings:
    name: str
    concurrency: int = 1
    #: Dotted path of a raw Blueque handler: ``handler(task) -> str | None``.
    handler: str | None = None


@dataclass(frozen=True)
class BluequeSettings:
    #: Where Redis is: exactly one of these three is set.
    redis_url: str | None = None
    connection: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_service: str | None = None
    sentinel_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Extra keyword arguments for ``redis.Redis`` (with a URL or Sentinel).
    redis_kwargs: dict[str, Any] = field(default_factory=dict)
    queues: dict[str, QueueSettings] = field(default_factory=dict)
    #: Seconds without a heartbeat after which a worker's listener is dead.
    listener_timeout: float = DEFAULT_LISTENER_TIMEOUT
    #: Times a task may lose its process (be recovered) before it fails.
    max_recoveries: int = DEFAULT_MAX_RECOVERIES
    #: Times a task may be given back unfinished (shutdowns, recoveries) before it fails.
    max_releases: int = DEFAULT_MAX_RELEASES
    #: "continue": a worker cut off from Redis lets its tasks run on; "stop": it stops
    #: them before anyone may recover them, so no task ever runs twice at once.
    lost_redis: str = "continue"
    #: Seconds a reported complete (failed) task stays readable before deletion.
    result_ttl: float = DEFAULT_RESULT_TTL
    failed_result_ttl: float = DEFAULT_FAILED_RESULT_TTL
    #: Largest parameters a Django task may be enqueued with, in bytes.
    max_parameters: int = DEFAULT_MAX_PARAMETERS


@dataclass(frozen=True)
class Problem:
    id: str
    msg: str
    hint: str


def _raw() -> Any:
    return getattr(settings, "BLUEQUE", {})


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
    if sentinels is not None and not (_sentinel_addresses(sentinels) and isinstance(raw.get("SENTINEL_SERVICE"), str)):
        found.append(
            Problem(
                "django_blueque.E006",
                "BLUEQUE['SENTINELS'] needs a list of (host, port) pairs and a SENTINEL_SERVICE name.",
                'For example: "SENTINELS": [("10.0.0.1", 26379)], "SENTINEL_SERVICE": "mymaster".',
            )
        )
    for key in ("SENTINEL_KWARGS", "REDIS_KWARGS"):
        if not isinstance(raw.get(key, {}), dict):
            found.append(Problem("django_blueque.E002", f"BLUEQUE['{key}'] must be a dict.", "Give keyword arguments."))
    return found


def _sentinel_addresses(value: Any) -> tuple[tuple[str, int], ...] | None:
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
        except ValueError:
            found.append(
                Problem(
                    "django_blueque.E007",
                    f"Queue name {name!r} in BLUEQUE['QUEUES'] is not valid.",
                    "Use a non-empty string without whitespace.",
                )
            )
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
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            found.append(
                Problem(
                    "django_blueque.E008",
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


def problems() -> list[Problem]:
    """What is wrong with the ``BLUEQUE`` setting, without touching Redis or importing handlers."""
    raw = _raw()
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
    found += _liveness_problems(raw)
    return found


def _liveness_problems(raw: dict[str, Any]) -> list[Problem]:
    found = []
    timeout = raw.get("LISTENER_TIMEOUT", DEFAULT_LISTENER_TIMEOUT)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout < MIN_LISTENER_TIMEOUT:
        found.append(
            Problem(
                "django_blueque.E012",
                f"BLUEQUE['LISTENER_TIMEOUT'] must be a number of seconds >= {MIN_LISTENER_TIMEOUT:g}, "
                f"not {timeout!r}.",
                "Workers beat four times per timeout; a dead worker's tasks are recovered after it.",
            )
        )
    for key, default in (("RESULT_TTL", DEFAULT_RESULT_TTL), ("FAILED_RESULT_TTL", DEFAULT_FAILED_RESULT_TTL)):
        ttl = raw.get(key, default)
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl < 0:
            found.append(
                Problem(
                    "django_blueque.E015",
                    f"BLUEQUE['{key}'] must be a number of seconds >= 0, not {ttl!r}.",
                    "How long a finished task stays readable after the monitor reports it.",
                )
            )
    releases = raw.get("MAX_RELEASES", DEFAULT_MAX_RELEASES)
    if not isinstance(releases, int) or isinstance(releases, bool) or releases < 1:
        found.append(
            Problem(
                "django_blueque.E016",
                f"BLUEQUE['MAX_RELEASES'] must be a whole number >= 1, not {releases!r}.",
                "How many times a task may go back to pending unfinished (shutdowns, recoveries) before it fails.",
            )
        )
    lost_redis = raw.get("LOST_REDIS", "continue")
    if lost_redis not in LOST_REDIS_CHOICES:
        found.append(
            Problem(
                "django_blueque.E017",
                f"BLUEQUE['LOST_REDIS'] must be one of {', '.join(map(repr, LOST_REDIS_CHOICES))}, not {lost_redis!r}.",
                "'continue' lets a worker cut off from Redis finish its tasks; 'stop' stops them (see docs/worker.md).",
            )
        )
    max_parameters = raw.get("MAX_PARAMETERS", DEFAULT_MAX_PARAMETERS)
    if not isinstance(max_parameters, int) or isinstance(max_parameters, bool) or max_parameters < 1:
        found.append(
            Problem(
                "django_blueque.E019",
                f"BLUEQUE['MAX_PARAMETERS'] must be a whole number of bytes >= 1, not {max_parameters!r}.",
                "The largest arguments (as JSON) a Django task may be enqueued with.",
            )
        )
    recoveries = raw.get("MAX_RECOVERIES", DEFAULT_MAX_RECOVERIES)
    if not isinstance(recoveries, int) or isinstance(recoveries, bool) or recoveries < 0:
        found.append(
            Problem(
                "django_blueque.E013",
                f"BLUEQUE['MAX_RECOVERIES'] must be a whole number >= 0, not {recoveries!r}.",
                "How many times a task whose worker died is run again before it fails.",
            )
        )
    return found


@cache
def get_settings() -> BluequeSettings:
    """The validated ``BLUEQUE`` setting; raises ``ImproperlyConfigured`` if it has problems."""
    found = problems()
    if found:
        raise ImproperlyConfigured(f"{found[0].msg} {found[0].hint} ({found[0].id})")
    raw: dict[str, Any] = _raw()
    where = {"REDIS_URL", "CONNECTION", "SENTINELS"} & {key for key in raw if raw[key]}
    queues = raw.get("QUEUES") or {DEFAULT_QUEUE: {}}
    return BluequeSettings(
        redis_url=raw.get("REDIS_URL") or (None if where else DEFAULT_REDIS_URL),
        connection=raw.get("CONNECTION") or None,
        sentinels=_sentinel_addresses(raw.get("SENTINELS")) or (),
        sentinel_service=raw.get("SENTINEL_SERVICE"),
        sentinel_kwargs=dict(raw.get("SENTINEL_KWARGS", {})),
        redis_kwargs=dict(raw.get("REDIS_KWARGS", {})),
        queues={
            name: QueueSettings(name, options.get("CONCURRENCY", 1), options.get("HANDLER"))
            for name, options in queues.items()
        },
        listener_timeout=float(raw.get("LISTENER_TIMEOUT", DEFAULT_LISTENER_TIMEOUT)),
        max_recoveries=int(raw.get("MAX_RECOVERIES", DEFAULT_MAX_RECOVERIES)),
        max_releases=int(raw.get("MAX_RELEASES", DEFAULT_MAX_RELEASES)),
        lost_redis=raw.get("LOST_REDIS", "continue"),
        result_ttl=float(raw.get("RESULT_TTL", DEFAULT_RESULT_TTL)),
        failed_result_ttl=float(raw.get("FAILED_RESULT_TTL", DEFAULT_FAILED_RESULT_TTL)),
        max_parameters=int(raw.get("MAX_PARAMETERS", DEFAULT_MAX_PARAMETERS)),
    )


def clear(**kwargs: Any) -> None:
    """Receiver for ``setting_changed``: forget what was read from the settings."""
    if kwargs.get("setting") in ("BLUEQUE", "CACHES"):
        get_settings.cache_clear()
        from . import connection

        connection.get_client.cache_clear()
