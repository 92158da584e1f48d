"""Fixtures of the protocol tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from django_blueque.protocol import Client


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client that decodes replies, to look at what Redis holds."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


@pytest.fixture(params=["decoded", "bytes"])
def client(redis_url: str, request: pytest.FixtureRequest) -> Iterator[Client]:
    """A protocol client; every test runs twice, once on a redis-py client that
    returns bytes (a shared django-redis pool, say)."""
    if request.param == "decoded":
        blueque = Client(redis_url)
    else:
        blueque = Client(redis=redis.Redis.from_url(redis_url, decode_responses=False))
    yield blueque
    blueque.close()
