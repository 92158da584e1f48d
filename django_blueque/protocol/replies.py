"""Reading Redis replies as ``str``, whatever the client decodes.

A client made by :class:`~django_blueque.protocol.Client` decodes replies
itself; one passed in (a django-redis connection pool, say) may return
``bytes``. These helpers give the rest of the core ``str`` either way, and
state the types redis-py's annotations cannot know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def string(reply: Any) -> str:
    # surrogateescape: bytes that are not UTF-8 survive as lone surrogates
    # instead of raising (the listener fails such a task; see listener.py).
    return reply.decode("utf-8", "surrogateescape") if isinstance(reply, bytes) else str(reply)


def string_or_none(reply: Any) -> str | None:
    return None if reply is None else string(reply)


def strings(reply: Iterable[Any]) -> list[str]:
    return [string(item) for item in reply]


def optional_strings(reply: Iterable[Any]) -> list[str | None]:
    return [string_or_none(item) for item in reply]


def string_set(reply: Iterable[Any]) -> set[str]:
    return {string(item) for item in reply}


def fields(reply: Mapping[Any, Any]) -> dict[str, str]:
    return {string(key): string(value) for key, value in reply.items()}


def flat_fields(reply: list[Any]) -> dict[str, str]:
    """A hash returned by a script as ``[field, value, field, value, ...]``."""
    items = strings(reply)
    return dict(zip(items[::2], items[1::2], strict=True))
