"""Types for Redis replies.

Every client of the core is made with ``decode_responses=True``, so replies
are ``str``; redis-py's annotations cannot know that and say ``bytes | str``.
These casts state it once instead of at every call.
"""

from __future__ import annotations

from typing import cast


def strings(reply: object) -> list[str]:
    return cast("list[str]", reply)


def string_set(reply: object) -> set[str]:
    return cast("set[str]", reply)


def string_or_none(reply: object) -> str | None:
    return cast("str | None", reply)


def fields(reply: object) -> dict[str, str]:
    return cast("dict[str, str]", reply)
