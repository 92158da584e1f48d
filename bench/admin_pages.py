"""The admin's pages with a queue of 1,000,000 pending tasks, against the same pages with 100.

Each page must cost a fixed number of Redis round trips and work proportional
to what it shows, never to the length of a queue; this measures it. Two
private Redis servers each get a queue ``work``: one with ``--small``
pending tasks (default 100), the other with ``--big`` (default 1,000,000),
each task a hash as ``Queue.enqueue`` writes it, plus a few complete and
failed ones.
Then, with Django's test client in this process (the demo project's
settings, a superuser logged in), it requests each page ``--rounds`` times,
alternating the two servers request by request so that machine noise hits
both alike, and prints the median time per page:

* the queues page;
* a queue's pending tab (its first page; deeper pages of the big queue are
  printed apart, since the small queue has none);
* a queue's failed tab;
* a task's page;
* the counts the queues page refreshes from.

The ratio big / small of each must stay under 2 (the acceptance bound);
the script exits 1 otherwise. Run from the repository root (about a minute,
most of it filling Redis)::

    .venv/bin/python bench/admin_pages.py
    .venv/bin/python bench/admin_pages.py --big 100000 --rounds 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import log, private_redis, setup_django

if TYPE_CHECKING:
    from django_blueque.protocol import Client

FILL_BATCH = 10_000
QUEUE = "work"


def fill(url: str, queue: str, count: int) -> list[str]:
    """``count`` pending tasks on ``queue``, written as Queue.enqueue writes them; returns a few of their ids."""
    import redis

    from django_blueque.protocol import keys

    conn = redis.Redis.from_url(url)
    now = time.time()
    sample: list[str] = []
    for start in range(0, count, FILL_BATCH):
        with conn.pipeline(transaction=False) as pipe:
            ids = [str(uuid.uuid4()) for _ in range(min(FILL_BATCH, count - start))]
            for task_id in ids:
                pipe.hset(
                    keys.task(task_id),
                    mapping={
                        "status": "pending",
                        "queue": queue,
                        "parameters": "x" * 40,
                        "created": now,
                        "updated": now,
                    },
                )
            pipe.lpush(keys.pending(queue), *ids)
            pipe.execute()
        sample = sample or ids[:5]
    conn.zincrby(keys.queues(), 0, queue)
    conn.close()
    return sample


def finished(client: Client, queue: str, count: int) -> str:
    """Run ``count`` of ``queue``'s pending tasks to an end, half complete, half failed; a failed one's id."""
    failed_id = ""
    listener = client.get_listener(queue)
    for i in range(count):
        taken = listener.listen(timeout=1)
        assert taken is not None
        processor = client.get_processor(taken)
        processor.start()
        if i % 2:
            processor.fail("no", exception="builtins.ValueError", traceback="Traceback ...")
            failed_id = taken.id
        else:
            processor.complete("ok")
    listener.close()
    return failed_id


def timed(get: Callable[[], int], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        status = get()
        samples.append(time.perf_counter() - started)
        assert status == 200, f"status {status}"
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with private_redis(prefix="bench-admin-small-") as small_env, private_redis(prefix="bench-admin-big-") as big_env:
        setup_django(small_env)
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.test import Client as WebClient
        from django.test import override_settings
        from django.urls import reverse

        from django_blueque.protocol import Client

        call_command("migrate", "--noinput", verbosity=0)
        web = WebClient(HTTP_HOST="127.0.0.1")  # one of the demo's ALLOWED_HOSTS
        web.force_login(User.objects.create_superuser("bench", "bench@example.com", "bench"))
        sizes = {"small": args.small, "big": args.big}
        urls = {"small": small_env.redis_url, "big": big_env.redis_url}
        paths: dict[str, dict[str, str]] = {}
        for size, url in urls.items():
            started = time.perf_counter()
            ids = fill(url, QUEUE, sizes[size])
            client = Client(url)
            failed_id = finished(client, QUEUE, 6)
            client.close()
            log(f"{size}: {sizes[size]:,} pending, filled in {time.perf_counter() - started:.1f}s")
            base = reverse("admin:django_blueque_queue", args=[QUEUE])
            paths[size] = {
                "queues page": reverse("admin:django_blueque_queue_changelist"),
                "counts": reverse("admin:django_blueque_counts"),
                "queue, pending, page 1": f"{base}?state=pending",
                "queue, failed": f"{base}?state=failed",
                "task": reverse("admin:django_blueque_task", args=[ids[0]]),
                "failed task": reverse("admin:django_blueque_task", args=[failed_id]),
            }

        def get(size: str, path: str) -> float:
            with override_settings(BLUEQUE={**settings.BLUEQUE, "REDIS_URL": urls[size]}):
                started = time.perf_counter()
                status = web.get(path).status_code
                elapsed = time.perf_counter() - started
            assert status == 200, f"{path} on {size}: status {status}"
            return elapsed

        for size in urls:
            for path in paths[size].values():
                for _ in range(3):
                    get(size, path)  # warm up: templates, imports, connections
        # Interleaved: the same request on either server, round by round.
        samples: dict[str, dict[str, list[float]]] = {name: {"small": [], "big": []} for name in paths["small"]}
        for _ in range(args.rounds):
            for name in samples:
                for size in urls:
                    samples[name][size].append(get(size, paths[size][name]))
        print(f"| page | {args.small:,} pending, ms | {args.big:,} pending, ms | ratio |")
        print("|---|---:|---:|---:|")
        worst = 0.0
        for name, by_size in samples.items():
            little, large = statistics.median(by_size["small"]), statistics.median(by_size["big"])
            ratio = large / little
            worst = max(worst, ratio)
            print(f"| {name} | {little * 1000:.1f} | {large * 1000:.1f} | {ratio:.2f} |")
        print(f"\nworst ratio {worst:.2f} (bound: 2)")
        base = reverse("admin:django_blueque_queue", args=[QUEUE])
        deep = {
            n: statistics.median(get("big", f"{base}?state=pending&page={n}") for _ in range(args.rounds))
            for n in (1, 100, 10_000)
        }
        shown = ", ".join(f"page {n:,}: {seconds * 1000:.1f} ms" for n, seconds in deep.items())
        print(f"deeper pages of the big queue's pending tab (LRANGE walks to the offset): {shown}")
        return 0 if worst < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
