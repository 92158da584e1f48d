"""Fixtures shared by every test: a real Redis server, never a mock.

By default a private ``redis-server`` starts for the session (see
``tests/redis_server.py``). With ``BLUEQUE_TEST_REDIS_URL`` set, that server
is used instead, but only if its database is empty when the session starts:
the suite flushes it between tests and will not flush data it did not write.
Without a Redis the tests that need one are skipped, except under CI (``CI``
set), where a missing Redis is an error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.redis_server import RedisServer


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | None]:
    """The private server, or ``None`` when ``BLUEQUE_TEST_REDIS_URL`` names another."""
    if os.environ.get("BLUEQUE_TEST_REDIS_URL"):
        yield None
        return
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError as exc:
        _unavailable(f"{exc}: install redis-server or set BLUEQUE_TEST_REDIS_URL")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _session_redis_url(redis_server: RedisServer | None) -> str:
    if redis_server is not None:
        return redis_server.url
    url = os.environ["BLUEQUE_TEST_REDIS_URL"]
    conn = redis.Redis.from_url(url)
    try:
        size = conn.dbsize()
    except redis.ConnectionError as exc:
        _unavailable(f"BLUEQUE_TEST_REDIS_URL={url} is unreachable: {exc}")
    finally:
        conn.close()
    if size:
        pytest.fail(
            f"BLUEQUE_TEST_REDIS_URL={url} holds {size} keys; the tests flush their database, give them an empty one"
        )
    return url


@pytest.fixture
def redis_url(_session_redis_url: str, redis_server: RedisServer | None) -> Iterator[str]:
    """The URL of an empty Redis database, flushed again after the test."""
    if redis_server is not None and (redis_server.process is None or redis_server.process.poll() is not None):
        redis_server.start()  # a fault test left it stopped
    conn = redis.Redis.from_url(_session_redis_url)
    conn.flushdb()
    yield _session_redis_url
    with contextlib.suppress(redis.ConnectionError):  # a fault test may have stopped it
        conn.flushdb()
    conn.close()


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
