"""The three ways to reach Redis: a URL, a django-redis cache's pool, Sentinel."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pytest_django import Settings as SettingsWrapper

from django_blueque.compat import TaskResultStatus
from django_blueque.connection import get_client
from django_blueque.testing import run_pending_tasks
from tests.django import tasks as test_tasks
from tests.django.conftest import BACKEND
from tests.redis_server import RedisServer, free_port

TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default"]}}


def _round_trip() -> None:
    result = test_tasks.calculate_meaning_of_life.enqueue()
    assert run_pending_tasks("default") == 1
    fetched = test_tasks.calculate_meaning_of_life.get_result(result.id)
    assert (fetched.status, fetched.return_value) == (TaskResultStatus.SUCCESSFUL, 42)


def test_redis_url_with_extra_client_options(settings: SettingsWrapper, redis_url: str) -> None:
    settings.BLUEQUE = {"REDIS_URL": redis_url, "REDIS_KWARGS": {"socket_timeout": 3, "client_name": "blueque"}}
    settings.TASKS = TASKS
    kwargs = get_client().redis.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["client_name"]) == (3, "blueque")
    _round_trip()


def test_connection_shares_a_django_redis_pool(settings: SettingsWrapper, redis_url: str) -> None:
    from django_redis import get_redis_connection

    settings.CACHES = {
        **settings.CACHES,
        "redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url},
    }
    settings.BLUEQUE = {"CONNECTION": "redis"}
    settings.TASKS = TASKS
    assert get_client().redis.connection_pool is get_redis_connection("redis").connection_pool
    _round_trip()


@pytest.fixture
def sentinel(redis_server: RedisServer | None, tmp_path: Path) -> Iterator[int]:
    """A real redis-sentinel watching the private test server as ``mymaster``."""
    if redis_server is None:
        pytest.skip("needs the private test server to point a sentinel at")
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nsentinel monitor mymaster 127.0.0.1 {redis_server.port} 1\n"
    )
    process = subprocess.Popen(
        [redis_server.binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    probe = redis.Redis(port=port, decode_responses=True, socket_connect_timeout=0.2)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if probe.sentinel_get_master_addr_by_name("mymaster"):
                    break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "redis-sentinel did not start"
            time.sleep(0.05)
        yield port
    finally:
        probe.close()
        process.terminate()
        process.wait(10)


def test_sentinel_finds_the_master(settings: SettingsWrapper, redis_url: str, sentinel: int) -> None:
    settings.BLUEQUE = {"SENTINELS": [("127.0.0.1", sentinel)], "SENTINEL_SERVICE": "mymaster"}
    settings.TASKS = TASKS
    _round_trip()
    # The task went to the server Sentinel named: the private test server.
    assert redis.Redis.from_url(redis_url).exists("blueque_queues") == 1
