"""Long-running commands started before Redis is there (in containers it often
comes up after the workers): they wait for it, a log line per attempt, and then
work as if it had been there all along."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django import Settings as SettingsWrapper

from django_blueque.connection import get_client
from django_blueque.protocol import Client, keys
from tests.redis_server import RedisServer
from tests.workers import tasks
from tests.workers.conftest import Spawn, wait_for


@pytest.fixture
def late_redis(tmp_path: Path, blueque: Client, settings: SettingsWrapper) -> Iterator[RedisServer]:
    """A Redis server not started yet; the settings (so the tasks' producer) point at it."""
    server = RedisServer(tmp_path / "late")
    server.directory.mkdir()
    settings.BLUEQUE = {**settings.BLUEQUE, "REDIS_URL": server.url}
    yield server
    server.stop()


def log(tmp_path: Path) -> str:
    return (tmp_path / "worker-0.log").read_text()


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_worker_started_before_redis_waits_then_runs_tasks(
    late_redis: RedisServer, spawn_worker: Spawn, tmp_path: Path, mode: str
) -> None:
    worker = spawn_worker("default", "--concurrency", "1", "--mode", mode, url=late_redis.url)
    what = "register the worker" if mode == "fork" else "start"
    wait_for(lambda: f"Waiting for Redis to {what} (attempt 3:" in log(tmp_path), 20, "three attempts")
    assert worker.poll() is None, log(tmp_path)
    assert "Traceback" not in log(tmp_path)
    late_redis.start()
    result = tasks.noop.enqueue()
    client = get_client()
    wait_for(lambda: client.get_task(result.id).status == "complete", 20, "the task to run once Redis is up")
    assert f"Redis answers: done waiting to {what}, after " in log(tmp_path)
    assert "Traceback" not in log(tmp_path)


def test_a_monitor_started_before_redis_waits_then_registers(
    late_redis: RedisServer, spawn_worker: Spawn, tmp_path: Path
) -> None:
    monitor = spawn_worker("--interval", "0.1", command="blueque_monitor", url=late_redis.url)
    wait_for(lambda: "Waiting for Redis to register the monitor (attempt 3:" in log(tmp_path), 20, "three attempts")
    assert monitor.poll() is None and "Traceback" not in log(tmp_path)
    late_redis.start()
    client = get_client()
    wait_for(lambda: len(client.redis.smembers(keys.monitors())) == 1, 20, "the monitor to register")
    wait_for(lambda: "Redis answers: done waiting to register the monitor" in log(tmp_path), 10, "the line")
    assert "Traceback" not in log(tmp_path)


def test_a_worker_waiting_for_redis_stops_at_sigterm(
    late_redis: RedisServer, spawn_worker: Spawn, tmp_path: Path
) -> None:
    import signal

    worker = spawn_worker("default", url=late_redis.url)
    wait_for(lambda: "Waiting for Redis" in log(tmp_path), 20, "a first attempt")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert "Traceback" not in log(tmp_path)
