"""Shared by the worker benchmarks: a private Redis, Django set up for a producer, and
``manage.py blueque_worker`` processes started in their own process groups.

Nothing here touches a Redis or a database the developer runs: the Redis server is
started on a free port in a temporary directory, and the demo project's database is a
file in that directory.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANAGE = REPO_ROOT / "testproject" / "manage.py"
#: Seconds a process (redis-server, a worker) is given to exit before it is killed.
EXIT_TIMEOUT = 10.0


class BenchError(Exception):
    """The benchmark could not run, or something it waited for did not happen; the message says why."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.02) -> None:
    """Poll ``condition`` until it holds; BenchError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: with under 100 values, p99 is the max."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# --------------------------------------------------------------------------------------
# Redis.
# --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(url: str, timeout: float) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                return bool(client.ping())
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=EXIT_TIMEOUT)


@dataclass(frozen=True)
class Environment:
    """Where a benchmark runs: a private Redis and a scratch directory."""

    redis_url: str
    redis_version: str
    directory: Path


@contextmanager
def private_redis(server: str = "redis-server", prefix: str = "bench-") -> Iterator[Environment]:
    """A fresh redis-server on a free port (no persistence) and a scratch directory, removed at the end."""
    path = shutil.which(server)
    if path is None:
        raise BenchError(f"{server} not found: install Redis")
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):  # another process may take the port before redis-server does
            port = _free_port()
            argv = [path, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            argv += ["--dir", str(directory), "--logfile", "redis.log", "--daemonize", "no"]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            url = f"redis://127.0.0.1:{port}/0"
            if _ping(url, timeout=5.0):
                break
            _stop(proc)
            proc = None
        else:
            log_file = directory / "redis.log"
            tail = log_file.read_text(errors="replace").splitlines()[-5:] if log_file.exists() else []
            raise BenchError(f"could not start {server}: " + (" / ".join(tail) or "no log"))
        yield Environment(url, _redis_version(url), directory)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


def _redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


# --------------------------------------------------------------------------------------
# Django, for the producer side (this process).
# --------------------------------------------------------------------------------------


def worker_environment(env: Environment, listener_timeout: float | None = None) -> dict[str, str]:
    """The environment of the demo project's settings, for this process and the workers."""
    values = {
        "PYTHONPATH": str(REPO_ROOT),
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "BLUEQUE_REDIS_URL": env.redis_url,
        # Let --concurrency alone decide how many default tasks run at once.
        "BLUEQUE_DEFAULT_CONCURRENCY": "100",
        "DEMO_DATABASE": str(env.directory / "db.sqlite3"),
    }
    if listener_timeout is not None:
        values["BLUEQUE_LISTENER_TIMEOUT"] = repr(listener_timeout)
    return values


def setup_django(env: Environment, listener_timeout: float | None = None) -> None:
    """Set up the demo project in this process, pointed at ``env``'s Redis. Once per process."""
    os.environ.update(worker_environment(env, listener_timeout))
    for entry in (str(REPO_ROOT / "testproject"), str(REPO_ROOT)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    import django

    django.setup()


# --------------------------------------------------------------------------------------
# Workers.
# --------------------------------------------------------------------------------------


class Worker:
    """``manage.py blueque_worker ARGS`` (or another command) in its own process group, its output in a log file."""

    def __init__(
        self,
        env: Environment,
        name: str,
        args: Sequence[str],
        listener_timeout: float | None = None,
        *,
        command: str = "blueque_worker",
        extra_env: dict[str, str] | None = None,
    ):
        self.name = name
        self.log_path = env.directory / f"{name}.log"
        environ = {**os.environ, **worker_environment(env, listener_timeout), **(extra_env or {})}
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, str(MANAGE), command, *args],
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed whole, children included
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and any task process), then reap the worker."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.pid}) did not exit after SIGKILL")


@contextmanager
def workers() -> Iterator[list[Worker]]:
    """A list to add workers to; every one is killed at the end, whatever happens."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.kill()
        time.sleep(0.1)  # task processes of a killed group may outlive it for a moment


def install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit, so that every ``finally`` (killing workers, Redis) runs."""

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
