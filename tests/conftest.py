"""Fixtures shared by every test: a real Redis server, never a mock.

By default a private ``redis-server`` starts for the session (see
``tests/redis_server.py``). With ``BLUEQUE_TEST_REDIS_URL`` set, that server
is used instead, but only if its database is empty when the session starts:
the suite flushes it between tests and will not flush data it did not write.
Without a Redis the tests that need one are skipped, except under CI (``CI``
set), where a missing Redis is an error.

``blueque101`` runs the published blueque 1.0.1 package in a subprocess. Its
interpreter comes from ``BLUEQUE_101_PYTHON`` or ``.venv-blueque101`` (``make
test`` creates it); without it those tests skip, except under CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "tests" / "protocol" / "blueque101_agent.py"

Blueque101 = Callable[..., Any]


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
def named_host() -> Iterator[Callable[[str], str]]:
    """Give this host a name in listener ids for the test (``$BLUEQUE_HOSTNAME``).

    The pid rule of Blueque 1.0.1 needs a name that no other host shares; the
    machines tests run on often call themselves ``localhost``.
    """
    from django_blueque.protocol.identity import HOSTNAME_ENV, hostname

    before = os.environ.get(HOSTNAME_ENV)

    def name(value: str) -> str:
        os.environ[HOSTNAME_ENV] = value
        hostname.cache_clear()
        return value

    yield name
    if before is None:
        os.environ.pop(HOSTNAME_ENV, None)
    else:
        os.environ[HOSTNAME_ENV] = before
    hostname.cache_clear()


@pytest.fixture
def blueque101(redis_url: str) -> Blueque101:
    python = os.environ.get("BLUEQUE_101_PYTHON") or str(ROOT / ".venv-blueque101" / "bin" / "python")
    if not os.access(python, os.X_OK):
        reason = f"no interpreter with blueque 1.0.1 at {python}; run `make .venv-blueque101/.installed`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)

    def run(command: str, *args: object) -> Any:
        result = subprocess.run(
            [python, str(AGENT), command, redis_url, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run
