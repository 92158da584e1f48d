"""The protocol client configured from Django settings."""

from __future__ import annotations

from functools import cache

from .conf import get_settings
from .protocol import Client


@cache
def get_client() -> Client:
    """The shared :class:`~django_blueque.protocol.Client` (no connection until first use)."""
    return Client(get_settings().redis_url)
