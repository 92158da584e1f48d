"""Fixtures of the protocol tests: a protocol client, and the published
blueque 1.0.1 package run beside django-blueque.

The interpreter comes from ``BLUEQUE_101_PYTHON`` or ``.venv-blueque101``
(``make test`` creates it). Without it these tests are skipped, except under
CI, where its absence is an error.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from django_blueque.protocol import Client

ROOT = Path(__file__).resolve().parents[2]
AGENT = Path(__file__).with_name("blueque101_agent.py")

Blueque101 = Callable[..., Any]


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


@pytest.fixture
def blueque101(redis_url: str) -> Blueque101:
    python = os.environ.get("BLUEQUE_101_PYTHON") or str(ROOT / ".venv-blueque101" / "bin" / "python")
    if not os.access(python, os.X_OK):
        reason = f"no interpreter with blueque 1.0.1 at {python}; run `make .venv-blueque101`"
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
