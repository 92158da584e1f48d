"""How fast an idle listener picks up a task, and how much it costs Redis while it waits.

For the protocol core in ``django_blueque/protocol/`` this measures, on a real Redis:

* the latency from ``queue.enqueue(...)`` in a producer process to ``listener.listen()``
  returning in a listener process that was blocked waiting when the task arrived, for a
  listener on one queue (``get_listener("single")``, which blocks in ``BLMOVE``) and for a
  listener on three queues (``get_listener("multi1", "multi2", "multi3")``, which waits on
  pub/sub), the task going to the last of the three;
* the Redis commands per second such a listener costs while idle: the sum of ``calls`` in
  ``INFO commandstats`` over a quiet window, less the one ``INFO`` the script makes inside
  the window. Commands that Lua scripts run count too, as Redis counts them.

The same two figures are taken for the listener of the published ``blueque`` 1.0.1 package,
which polls with ``RPOPLPUSH`` once a second, so the table shows the ratio. Blueque 1.0.1
needs redis-py < 6, so its listener runs under the interpreter in ``$BLUEQUE_101_PYTHON``,
else ``.venv-blueque101/bin/python``; create it with::

    python3 -m venv .venv-blueque101 && .venv-blueque101/bin/pip install blueque==1.0.1

Without it that row is skipped. Tasks for both are enqueued with django_blueque (the same
keys on the wire; it also publishes, which 1.0.1 ignores).

Each listener runs in its own process, started from this file with ``--child``. The
producer stores ``repr(time.time())`` as the task's parameters just before enqueueing; the
listener takes ``time.time() - float(parameters)`` as soon as ``listen()`` returns, starts
and completes the task, and reports the figure on stdout as a JSON line. The producer waits
for that report and then 30-50 ms more (a random 0-1 s for 1.0.1) before the next task, so
the listener is idle when each task arrives. A few warm-up tasks are not counted.

By default a private ``redis-server`` is started on a free port in a temporary directory,
so no other client's commands are counted, and it is stopped at the end. With
``--redis-url`` an existing server is used instead: the database must be empty (it is
flushed at the end) and the command rates include every other client of that server.

Run from the repository root (takes about 80 s with the defaults)::

    .venv/bin/python bench/listen_latency.py [--samples 300] [--json] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BLUEQUE_101_PYTHON = REPO_ROOT / ".venv-blueque101" / "bin" / "python"
CREATE_BLUEQUE_101 = "python3 -m venv .venv-blueque101 && .venv-blueque101/bin/pip install blueque==1.0.1"

OURS = "ours"
BLUEQUE_101 = "blueque101"
#: The parameters of the task that tells a listener process to finish.
STOP = "stop"
#: Tasks sent before the counted ones (first connections, script loading, subscribing).
WARMUP_TASKS = 3
#: Seconds the listener process gets to start (imports, connecting, registering).
START_TIMEOUT = 30.0
#: Seconds to wait for one task to come back; far above either listener's worst case.
SAMPLE_TIMEOUT = 10.0
#: Seconds a listener process is given to exit before it is killed.
EXIT_TIMEOUT = 5.0
#: Pause after the last task before the idle window opens, so the listener is back waiting.
SETTLE_SECONDS = 0.5


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


# --------------------------------------------------------------------------------------
# Listener side: runs in a child process, possibly under the Blueque 1.0.1 interpreter,
# so it uses nothing but the standard library and the implementation it measures.
# --------------------------------------------------------------------------------------


def _emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _exit_with_parent() -> None:
    """End this process when the parent goes away (it holds our stdin, and never writes)."""

    def watch() -> None:
        sys.stdin.read()
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def child_main(impl: str, url: str, queue_names: Sequence[str], listen_timeout: float) -> int:
    """Listen until the STOP task, reporting each task's latency as a JSON line."""
    _exit_with_parent()
    close: Any = None
    if impl == OURS:
        sys.path.insert(0, str(REPO_ROOT))
        from django_blueque.protocol import Client

        client: Any = Client(url)
        listener: Any = client.get_listener(*queue_names)
        close = listener.close

        def listen() -> Any:
            return listener.listen(timeout=listen_timeout)

    else:
        blueque: Any = importlib.import_module("blueque")
        if len(queue_names) != 1:
            raise SystemExit("Blueque 1.0.1 listens on one queue only")
        client = blueque.Client(url)
        listener = client.get_listener(queue_names[0])

        def listen() -> Any:
            return listener.listen()  # no timeout in 1.0.1: the parent kills us if need be

    try:
        _emit("ready", pid=os.getpid())
        while True:
            task = listen()
            received = time.time()
            if task is None:
                _emit("timeout")
                return 1
            processor = client.get_processor(task)
            processor.start(os.getpid())
            processor.complete("done")
            if task.parameters == STOP:
                break
            _emit("sample", latency=received - float(task.parameters))
    except KeyboardInterrupt:
        return 130
    finally:
        if close is not None:
            close()
    _emit("done")
    return 0


# --------------------------------------------------------------------------------------
# Producer side.
# --------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ListenerProcess:
    """A listener child process and the JSON lines it reports."""

    def __init__(self, python: str, impl: str, url: str, queue_names: Sequence[str], listen_timeout: float) -> None:
        argv = [python, str(Path(__file__).resolve()), "--child", impl, "--redis-url", url]
        argv += ["--listen-timeout", str(listen_timeout), *queue_names]
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the child ourselves
        )
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                message = json.loads(line)
            except ValueError:
                log(f"listener process: {line.rstrip()}")
                continue
            self._messages.put(message)
        self._messages.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next report, which must be ``event``, within ``timeout`` seconds."""
        try:
            message = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"no {event!r} from the listener process within {timeout:g} s") from None
        if message is None:
            code = self._proc.wait(timeout=EXIT_TIMEOUT)
            raise BenchError(f"the listener process exited (status {code}) before reporting {event!r}")
        if message.get("event") != event:
            raise BenchError(f"expected {event!r} from the listener process, got {message!r}")
        return message

    def wait(self, timeout: float) -> int:
        return self._proc.wait(timeout=timeout)

    def close(self) -> None:
        """Make sure the process is gone: close its stdin (it then exits), else kill it."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=EXIT_TIMEOUT)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


@dataclass
class Result:
    """The figures for one kind of listener."""

    name: str
    latencies_ms: list[float] = field(default_factory=list)
    idle_seconds: float = 0.0
    idle_commands: dict[str, int] = field(default_factory=dict)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)  # nearest rank: with under 100 samples, the max
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms)

    @property
    def idle_commands_per_second(self) -> float:
        return sum(self.idle_commands.values()) / self.idle_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "samples": len(self.latencies_ms),
            "median_ms": self.median_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "idle_seconds": self.idle_seconds,
            "idle_commands": self.idle_commands,
            "idle_commands_per_second": self.idle_commands_per_second,
            "latencies_ms": self.latencies_ms,
        }


def command_calls(redis: Any) -> dict[str, int]:
    """``calls`` per command since the server started (one INFO call, not counted in itself)."""
    stats = redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(figures["calls"]) for name, figures in stats.items()}


def measure(
    name: str,
    impl: str,
    python: str,
    url: str,
    queue_names: Sequence[str],
    samples: int,
    delay: tuple[float, float],
    idle_seconds: float,
) -> Result:
    """Run one listener process: latency samples, then an idle window, then stop it."""
    sys.path.insert(0, str(REPO_ROOT))
    from django_blueque.protocol import Client

    producer = Client(url)
    target = producer.get_queue(queue_names[-1])
    result = Result(name)
    # The listener's own bound on one listen() call, which spans the idle window.
    listen_timeout = START_TIMEOUT + SETTLE_SECONDS + idle_seconds + SAMPLE_TIMEOUT
    listener = ListenerProcess(python, impl, url, queue_names, listen_timeout)
    try:
        listener.expect("ready", START_TIMEOUT)
        log(f"{name}: {WARMUP_TASKS} warm-up + {samples} tasks, then {idle_seconds:g} s idle")
        for i in range(WARMUP_TASKS + samples):
            time.sleep(random.uniform(*delay))
            target.enqueue(repr(time.time()))
            latency = float(listener.expect("sample", SAMPLE_TIMEOUT)["latency"])
            if i >= WARMUP_TASKS:
                result.latencies_ms.append(latency * 1000)

        time.sleep(SETTLE_SECONDS)
        before = command_calls(producer.redis)
        started = time.monotonic()
        time.sleep(idle_seconds)
        after = command_calls(producer.redis)
        result.idle_seconds = time.monotonic() - started
        after["info"] = after.get("info", 0) - 1  # the INFO that took ``before``
        delta = {cmd: calls - before.get(cmd, 0) for cmd, calls in after.items()}
        result.idle_commands = {cmd: calls for cmd, calls in sorted(delta.items()) if calls}

        target.enqueue(STOP)
        listener.expect("done", SAMPLE_TIMEOUT)
        listener.wait(EXIT_TIMEOUT)
    finally:
        listener.close()
        producer.close()
    return result


# --------------------------------------------------------------------------------------
# Redis.
# --------------------------------------------------------------------------------------


@contextmanager
def started_server(server: str) -> Iterator[str]:
    """A fresh ``server`` (redis-server) on a free port, without persistence, started as the tests
    start theirs (``tests/redis_server.py``); yields its URL."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="listen-latency-") as directory:
        try:
            redis_server = RedisServer(Path(directory), server)
            redis_server.start()
        except (FileNotFoundError, RuntimeError) as exc:
            raise BenchError(f"{exc}; install Redis or pass --redis-url") from None
        try:
            yield redis_server.url
        finally:
            redis_server.stop()


@contextmanager
def existing_redis(url: str) -> Iterator[str]:
    """A server given by URL: its database must be empty; it is flushed afterwards."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        try:
            size = client.dbsize()
        except redis.exceptions.RedisError as exc:
            raise BenchError(f"cannot reach {url}: {exc}") from exc
        if size:
            raise BenchError(f"the database at {url} holds {size} key(s); give an empty one (e.g. another /db)")
        log(f"warning: {url} is shared: the command rates include every other client's commands")
        try:
            yield url
        finally:
            client.flushdb()
    finally:
        client.close()


def redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


# --------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------


def blueque_101_python(given: str | None) -> str | None:
    """The interpreter that has blueque 1.0.1, or None (after saying how to get one)."""
    python = given or os.environ.get("BLUEQUE_101_PYTHON") or str(DEFAULT_BLUEQUE_101_PYTHON)
    problem = None
    if not Path(python).exists():
        problem = f"{python} does not exist"
    else:
        check = "import blueque, importlib.metadata as m; print(m.version('blueque'))"
        try:
            done = subprocess.run([python, "-c", check], check=False, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = f"{python} does not run: {exc}"
        else:
            version = done.stdout.strip()
            if done.returncode:
                problem = f"{python} cannot import blueque"
            elif version != "1.0.1":
                problem = f"{python} has blueque {version}, not 1.0.1"
    if problem is None:
        return python
    log(f"skipping blueque 1.0.1: {problem}. Create its virtualenv from the repository root with:")
    log(f"    {CREATE_BLUEQUE_101}")
    log("or point BLUEQUE_101_PYTHON at an interpreter that has it.")
    return None


def table(results: Sequence[Result]) -> str:
    header = f"{'listener':<36} {'samples':>7} {'median ms':>10} {'p99 ms':>9} {'max ms':>9} {'idle cmds/s':>12}"
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.name:<36} {len(r.latencies_ms):>7} {r.median_ms:>10.3f} {r.p99_ms:>9.3f}"
            f" {r.max_ms:>9.3f} {r.idle_commands_per_second:>12.2f}"
        )
    return "\n".join(lines)


def ratios(results: Sequence[Result]) -> dict[str, float]:
    old = next((r for r in results if r.name.startswith("blueque 1.0.1")), None)
    if old is None:
        return {}
    return {r.name: old.median_ms / r.median_ms for r in results if r is not old}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=300, help="counted tasks per listener of ours (300)")
    parser.add_argument("--samples-101", type=int, default=20, help="counted tasks for blueque 1.0.1 (20)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="quiet window per listener (10)")
    parser.add_argument("--redis-url", help="use this server (empty db) instead of a private redis-server")
    parser.add_argument("--redis-server", default="redis-server", help="the redis-server to start (on PATH)")
    parser.add_argument("--blueque-101-python", help="interpreter with blueque 1.0.1 (else $BLUEQUE_101_PYTHON)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--child", choices=[OURS, BLUEQUE_101], help=argparse.SUPPRESS)
    parser.add_argument("--listen-timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("queues", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        return child_main(args.child, args.redis_url, args.queues, args.listen_timeout)
    if args.samples < 1 or args.samples_101 < 1 or args.idle_seconds <= 0:
        parser.error("--samples and --samples-101 must be at least 1, --idle-seconds above 0")

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # so that every finally runs

    signal.signal(signal.SIGTERM, on_sigterm)
    old_python = blueque_101_python(args.blueque_101_python)
    begun = time.monotonic()
    try:
        server = existing_redis(args.redis_url) if args.redis_url else started_server(args.redis_server)
        with server as url:
            version = redis_version(url)
            ours = (args.samples, (0.030, 0.050), args.idle_seconds)
            results = [
                measure("ours, 1 queue (BLMOVE)", OURS, sys.executable, url, ["single"], *ours),
                measure("ours, 3 queues (pub/sub)", OURS, sys.executable, url, ["multi1", "multi2", "multi3"], *ours),
            ]
            if old_python is not None:
                results.append(
                    measure(
                        "blueque 1.0.1, 1 queue (1 s poll)",
                        BLUEQUE_101,
                        old_python,
                        url,
                        ["blueque101"],
                        args.samples_101,
                        (0.0, 1.0),
                        args.idle_seconds,
                    )
                )
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    elapsed = time.monotonic() - begun

    where = args.redis_url or "private redis-server"
    if args.json:
        figures = {
            "redis": {"version": version, "server": where},
            "elapsed_seconds": elapsed,
            "results": [r.as_json() for r in results],
            "median_ratio_blueque_101_over": ratios(results),
        }
        print(json.dumps(figures, indent=2))
        return 0
    print(f"Redis {version} ({where}); enqueue -> listen() latency of an idle listener; {elapsed:.0f} s run")
    print(table(results))
    found = ratios(results)
    if found:
        print("median latency, blueque 1.0.1 / ours: " + "; ".join(f"{x:.0f}x vs {n}" for n, x in found.items()))
    else:
        print(f"blueque 1.0.1: skipped (create it with: {CREATE_BLUEQUE_101})")
    print("idle commands (incl. those run by Lua scripts):")
    for r in results:
        counted = ", ".join(f"{cmd} {calls}" for cmd, calls in r.idle_commands.items()) or "none"
        print(f"  {r.name}: {counted} in {r.idle_seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
