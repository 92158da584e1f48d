"""The ``BLUEQUE`` setting, read lazily into one typed object.

Nothing is read at import time: :func:`get_settings` builds the object on
first use and forgets it when Django's ``setting_changed`` signal reports a
change (``override_settings`` in tests). What can be wrong with the
setting is validation.py's; :func:`get_settings` refuses to build from a
setting that has any problem.

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

from django.core.exceptions import ImproperlyConfigured

from .protocol.defaults import (
    DEFAULT_FAILED_RESULT_TTL,
    DEFAULT_LISTENER_TIMEOUT,
    DEFAULT_LOST_REDIS,
    DEFAULT_MAX_RECOVERIES,
    DEFAULT_MAX_RELEASES,
    DEFAULT_RESULT_TTL,
)
from .validation import problems, raw_setting, sentinel_addresses

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "default"
#: Largest ``parameters`` of a Django task, in bytes of JSON: larger data belongs elsewhere
#: (a file, a row), with its reference in the task.
DEFAULT_MAX_PARAMETERS = 1024 * 1024


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
    lost_redis: str = DEFAULT_LOST_REDIS
    #: Seconds a reported complete (failed) task stays readable before deletion.
    result_ttl: float = DEFAULT_RESULT_TTL
    failed_result_ttl: float = DEFAULT_FAILED_RESULT_TTL
    #: Largest parameters a Django task may be enqueued with, in bytes.
    max_parameters: int = DEFAULT_MAX_PARAMETERS


@cache
def get_settings() -> BluequeSettings:
    """The validated ``BLUEQUE`` setting; raises ``ImproperlyConfigured`` if it has problems."""
    found = problems()
    if found:
        raise ImproperlyConfigured(f"{found[0].msg} {found[0].hint} ({found[0].id})")
    raw: dict[str, Any] = raw_setting()
    where = {"REDIS_URL", "CONNECTION", "SENTINELS"} & {key for key in raw if raw[key]}
    queues = raw.get("QUEUES") or {DEFAULT_QUEUE: {}}
    return BluequeSettings(
        redis_url=raw.get("REDIS_URL") or (None if where else DEFAULT_REDIS_URL),
        connection=raw.get("CONNECTION") or None,
        sentinels=sentinel_addresses(raw.get("SENTINELS")) or (),
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
        lost_redis=raw.get("LOST_REDIS", DEFAULT_LOST_REDIS),
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
