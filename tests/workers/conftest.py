"""Real worker processes (``manage.py blueque_worker``) against the test Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pytest_django import Settings as SettingsWrapper

from django_blueque.connection import get_client
from django_blueque.protocol import Client
from tests.redis_server import RedisServer
from tests.tcp_proxy import TcpProxy
from tests.workers import recovery_tasks
from tests.workers.runs import LISTENER_TIMEOUT, Journal, wait_for
from tests.workers.schedulers import SpawnScheduler, kill

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "testproject" / "manage.py"
Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def blueque(redis_url: str, settings: SettingsWrapper) -> Client:
    settings.BLUEQUE = {
        **settings.BLUEQUE,
        "REDIS_URL": redis_url,
        "LISTENER_TIMEOUT": LISTENER_TIMEOUT,
        "MAX_RECOVERIES": 3,
    }
    return get_client()


@pytest.fixture
def spawn_worker(blueque: Client, redis_url: str, tmp_path: Path) -> Iterator[Spawn]:
    """Start ``manage.py blueque_worker ARGS`` (or another command) in its own process group.

    Every process started is killed at the end of the test.
    """
    processes: list[subprocess.Popen[str]] = []

    def spawn(
        *args: str,
        max_recoveries: int = 3,
        url: str | None = None,
        command: str = "blueque_worker",
        listener_timeout: float = LISTENER_TIMEOUT,
        settings_module: str = "tests.workers.receivers.settings",
        extra_path: Sequence[str] = (),
    ) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *extra_path]),
            "BLUEQUE_REDIS_URL": url or redis_url,
            "BLUEQUE_LISTENER_TIMEOUT": str(listener_timeout),
            "BLUEQUE_MAX_RECOVERIES": str(max_recoveries),
            # Let --concurrency alone decide how many default tasks run at once.
            "BLUEQUE_DEFAULT_CONCURRENCY": "100",
            # The demo project's settings, with an app that records signals.
            "DJANGO_SETTINGS_MODULE": settings_module,
            "DEMO_DATABASE": str(tmp_path / "db.sqlite3"),
        }
        log = open(tmp_path / f"worker-{len(processes)}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), command, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, to kill it whole
        )
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    # Children of a worker killed above may outlive it for a moment.
    time.sleep(0.1)


@pytest.fixture
def spawn_scheduler(redis_url: str, tmp_path: Path) -> Iterator[SpawnScheduler]:
    """Start ``manage.py blueque_scheduler`` with a settings module, in its own process group; all killed at the end.

    The n-th one started logs to ``tmp_path / f"scheduler-{n}.log"`` (see ``tests.workers.schedulers.Fleet``).
    """
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(settings_module: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")]),
            "DJANGO_SETTINGS_MODULE": settings_module,
            "BLUEQUE_REDIS_URL": redis_url,
            "DEMO_DATABASE": str(tmp_path / "db.sqlite3"),
        }
        with open(tmp_path / f"scheduler-{len(processes)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(MANAGE), "blueque_scheduler", "--interval", "0.25"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill it whole
            )
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        kill(process)


@pytest.fixture
def persistent_redis(tmp_path: Path, settings: SettingsWrapper, blueque: Client) -> Iterator[RedisServer]:
    # After the blueque fixture, so this server wins in the settings.
    server = RedisServer(tmp_path / "persistent", persistent=True)
    server.directory.mkdir()
    server.start()
    settings.BLUEQUE = {**settings.BLUEQUE, "REDIS_URL": server.url}
    yield server
    server.stop()


def events(client: Client, task_id: str) -> list[tuple[str, int, float]]:
    """What ``tests.workers.tasks`` recorded for a task: (event, pid, time) in order."""
    entries = []
    for line in client.redis.lrange(f"test_journal_{task_id}", 0, -1):
        event, pid, when = (line.decode() if isinstance(line, bytes) else line).split()
        entries.append((event, int(pid), float(when)))
    return entries


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    watched = Journal(tmp_path / "journal.log")
    watched.start()
    yield watched
    watched.stop()


@pytest.fixture
def spawn(spawn_worker: Spawn, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> Spawn:
    """``spawn_worker``, with the journal's path in the environment of what it starts."""

    def start(*args: str, **kwargs: object) -> subprocess.Popen[str]:
        monkeypatch.setenv(recovery_tasks.JOURNAL_ENV, str(journal.path))
        return spawn_worker(*args, **kwargs)

    return start


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(redis_url)
    with TcpProxy(parts.port or 6379, target_host=parts.hostname or "127.0.0.1") as running:
        yield running


__all__ = ["LISTENER_TIMEOUT", "Spawn", "events", "wait_for"]
