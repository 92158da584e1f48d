"""The ``BLUEQUE`` setting, read lazily into one typed object.

Nothing is read at import time: :func:`get_settings` builds the object on
first use and forgets it when Django's ``setting_changed`` signal reports a
change (``override_settings`` in tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class BluequeSettings:
    redis_url: str


@cache
def get_settings() -> BluequeSettings:
    raw: dict[str, Any] = getattr(settings, "BLUEQUE", None) or {}
    return BluequeSettings(redis_url=raw.get("REDIS_URL", DEFAULT_REDIS_URL))


def clear(**kwargs: Any) -> None:
    """Receiver for ``setting_changed``: drop what was read from ``BLUEQUE``."""
    if kwargs.get("setting") == "BLUEQUE":
        get_settings.cache_clear()
        from . import connection

        connection.get_client.cache_clear()
