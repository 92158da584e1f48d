"""What recovery's watch costs: one poll of ``Recovery`` (the watch every worker and
scheduler runs every quarter of the shortest listener timeout), by fleet size.

For each size (listeners registered on one queue, each with a heartbeat and a
published timeout; running tasks, each with a task heartbeat) it measures, over
``--polls`` polls of an observer that judges nobody dead (every heartbeat is
fresh):

* **Redis time per poll**, in ms: the sum of ``usec`` over ``INFO commandstats``
  (reset before), divided by the polls; the CPU one poll costs the server;
* **client time per poll**, in ms: the median wall time of ``poll()`` in this
  process (two round trips, and reading what they return);
* **Redis load per poller**, in percent of one core, with the default 60 s
  timeout (a poll every 15 s): what each worker's main process adds.

A private ``redis-server`` (free port, no persistence; ``tests/redis_server.py``)
is started and stopped at the end. Run from the repository root (about 10 s)::

    .venv/bin/python bench/recovery_cost.py
    .venv/bin/python bench/recovery_cost.py --sizes 10:100 100:1000 --polls 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from django_blueque.protocol import Client, keys
from django_blueque.protocol.defaults import DEFAULT_LISTENER_TIMEOUT
from django_blueque.protocol.liveness import beat_interval
from tests.redis_server import RedisServer


def fill(client: Client, listeners: int, running: int) -> None:
    """Register ``listeners`` listeners and ``running`` task heartbeats, all fresh."""
    now = time.time()
    with client.redis.pipeline(transaction=False) as pipe:
        for i in range(listeners):
            listener = keys.listener_id(f"bench-host-{i:05d}-0123456789abcdef", 10_000 + i)
            pipe.sadd(keys.listeners("default"), listener)
            pipe.zadd(keys.heartbeats(), {listener: now})
            pipe.hset(keys.listener_timeouts(), listener, DEFAULT_LISTENER_TIMEOUT)
        for j in range(running):
            pipe.zadd(keys.task_heartbeats(), {f"{j:032x}": now})
        pipe.execute()


def measure(client: Client, listeners: int, running: int, polls: int) -> dict[str, float]:
    client.redis.flushdb()
    fill(client, listeners, running)
    recovery = client.recovery(["default"], timeout=DEFAULT_LISTENER_TIMEOUT)
    recovery.poll()  # the first poll starts the watch
    client.redis.config_resetstat()
    walls = []
    for _ in range(polls):
        started = time.perf_counter()
        counts = recovery.poll()
        walls.append(time.perf_counter() - started)
        assert not counts, f"the observer recovered something: {counts}"
    stats = client.redis.info("commandstats")
    redis_ms = sum(entry["usec"] for entry in stats.values()) / polls / 1000
    # config_resetstat and info themselves are not counted: INFO is not in its own stats yet.
    every = beat_interval(DEFAULT_LISTENER_TIMEOUT)
    return {
        "redis_ms": redis_ms,
        "client_ms": statistics.median(walls) * 1000,
        "load_percent": redis_ms / 1000 / every * 100,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=["10:100", "100:1000", "1000:10000"],
        metavar="LISTENERS:RUNNING",
        help="fleet sizes to measure (default: 10:100 100:1000 1000:10000)",
    )
    parser.add_argument("--polls", type=int, default=20, help="polls per size (default 20)")
    args = parser.parse_args()
    sizes = [tuple(int(part) for part in size.split(":")) for size in args.sizes]
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as directory, RedisServer(Path(directory)) as server:
        client = Client(server.url)
        version = client.redis.info("server")["redis_version"]
        print(
            f"redis {version}, {args.polls} polls per size, a poll every {beat_interval(60):.0f}s at T=60",
            file=sys.stderr,
        )
        print("| listeners | running tasks | Redis ms per poll | client ms per poll | Redis load per poller |")
        print("|---:|---:|---:|---:|---:|")
        for listeners, running in sizes:
            figures = measure(client, listeners, running, args.polls)
            print(
                f"| {listeners:,} | {running:,} | {figures['redis_ms']:.2f} | {figures['client_ms']:.1f} "
                f"| {figures['load_percent']:.3f}% |"
            )
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
