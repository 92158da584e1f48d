"""The django-blueque admin's queue page at 100 and at a million pending tasks: time to render
(Django's test client, a superuser logged in) and the Redis work it costs (``INFO`` deltas).

Run by ``bench/side_by_side.py`` under ``.venv`` with the benchmark's environment
(``BENCH_REDIS_URL``, ``BENCH_DATABASE``, ``bench/`` on ``PYTHONPATH``); prints JSON.
The pending tasks are written by a Lua loop, as ``Queue.enqueue`` writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUEUE = "bench"
FILL_BATCH = 100_000
FILL = """
local prefix, queue, first, count, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
for i = first, first + count - 1 do
  local id = string.format('bench-%010d', i)
  redis.call('HSET', prefix .. id, 'status', 'pending', 'queue', queue, 'parameters',
             '{"args": ["x"], "kwargs": {}}', 'created', now, 'updated', now)
  redis.call('LPUSH', KEYS[1], id)
end
return count
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client as WebClient
    from django.urls import reverse

    from django_blueque.connection import get_client
    from django_blueque.protocol import keys

    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first()
    if user is None:
        user = user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    web = WebClient()
    web.force_login(user)
    conn = get_client().redis
    fill = conn.register_script(FILL)
    path = reverse("admin:django_blueque_queue", args=[QUEUE])

    def stats() -> tuple[int, int]:
        info: dict[str, Any] = conn.info("all")
        calls = sum(int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_"))
        return calls, int(info["total_reads_processed"])

    pages: dict[str, Any] = {}
    written = 0
    conn.zincrby(keys.queues(), 0, QUEUE)
    for size in (args.small, args.big):
        while written < size:
            count = min(FILL_BATCH, size - written)
            fill(keys=[keys.pending(QUEUE)], args=[keys.task(""), QUEUE, written, count, time.time()])
            written += count
        web.get(path)  # warm up: templates, scripts
        times, commands, reads = [], [], []
        for _ in range(args.renders):
            before = stats()
            begun = time.perf_counter()
            response = web.get(path)
            times.append((time.perf_counter() - begun) * 1000)
            after = stats()
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}")
            # The INFO that took ``before`` counts in ``after``; ``after``'s own read counts in it.
            commands.append(after[0] - before[0] - 1)
            reads.append(after[1] - before[1] - 1)
        pages[str(size)] = {
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "max_ms": max(times),
            "commands": statistics.median(commands),
            "round_trips": statistics.median(reads),
            "used_memory_mb": int(conn.info("memory")["used_memory"]) / 2**20,
        }
    print(json.dumps({"path": path, "renders": args.renders, "pages": pages}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
