"""Head-of-line check: does a long task hold up short ones on a worker with a free slot?

One worker (``manage.py blueque_worker default --concurrency 2``) serves the default
queue. A long task (``nap(20)``) is enqueued first and the script waits until it has
started, so one slot is busy for the whole check and the other is free. Then ``--samples``
no-op tasks are enqueued, one every ``--interval`` seconds (on a fixed schedule, not
waiting for each other). For each no-op task, once all are finished, it reads from the
task's hash:

* enqueue -> finish: ``updated - created`` of the complete task (``created`` is stamped
  by the producer at enqueue, ``updated`` by the task's process when it completes; both
  on this machine's clock);
* enqueue -> start: ``started_at - created``.

Goal: every no-op task finishes within 50 ms of being enqueued (PASS/FAIL per mode). The
long task must still be running when the last no-op task finishes, or the check did not
test what it claims (FAIL too). The same is done with ``--mode fork`` (a forked process
per task) and ``--mode prefork`` (long-lived children, each a listener of its own).

A private ``redis-server`` (free port, no persistence) is started for the run and
stopped at the end; each mode starts on an empty database. Exit status 0 when every mode
passes, 1 otherwise.

Run from the repository root (about 30 s)::

    .venv/bin/python bench/head_of_line.py [--samples 20] [--interval 0.2] [--mode both] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from bench.harness import (  # noqa: E402 - needs the repository root on sys.path
    BenchError,
    Environment,
    Worker,
    install_sigterm_handler,
    log,
    median,
    nearest_rank,
    private_redis,
    setup_django,
    wait_for,
    workers,
)

#: The goal: each no-op task finishes within this many ms of being enqueued.
GOAL_MS = 50.0
#: Seconds the long task runs (at least; longer if the no-op tasks need longer to enqueue).
LONG_TASK_SECONDS = 20.0
#: Seconds a worker gets to start (Django set-up, connecting, registering its listeners).
START_TIMEOUT = 60.0
#: Seconds the long task gets to start once enqueued.
LONG_START_TIMEOUT = 30.0
#: Seconds the no-op tasks get to finish after the last one was enqueued.
FINISH_TIMEOUT = 30.0
FINISHED = ("complete", "failed")


@dataclass
class ModeResult:
    mode: str
    long_task_seconds: float
    finish_ms: list[float] = field(default_factory=list)
    start_ms: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "<id>: <error>" of no-op tasks that did not complete
    long_task_running_at_end: bool = False
    long_task_status: str | None = None

    @property
    def within_goal(self) -> int:
        return sum(1 for ms in self.finish_ms if ms <= GOAL_MS)

    @property
    def passed(self) -> bool:
        return (
            bool(self.finish_ms)
            and not self.failed
            and self.within_goal == len(self.finish_ms)
            and self.long_task_running_at_end
        )

    def as_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "mode": self.mode,
            "samples": len(self.finish_ms),
            "failed": self.failed,
            "long_task_seconds": self.long_task_seconds,
            "long_task_running_at_end": self.long_task_running_at_end,
            "long_task_status_at_end": self.long_task_status,
            "goal_ms": GOAL_MS,
            "within_goal": self.within_goal,
            "passed": self.passed,
            "finish_ms": self.finish_ms,
            "start_ms": self.start_ms,
        }
        if self.finish_ms:
            figures |= {
                "finish_median_ms": median(self.finish_ms),
                "finish_p99_ms": nearest_rank(self.finish_ms, 0.99),
                "finish_max_ms": max(self.finish_ms),
                "start_median_ms": median(self.start_ms),
                "start_max_ms": max(self.start_ms),
            }
        return figures


def listener_count(queue: str) -> int:
    from django_blueque.connection import get_client
    from django_blueque.protocol import keys

    return int(get_client().redis.scard(keys.listeners(queue)))


def measure(env: Environment, mode: str, samples: int, interval: float) -> ModeResult:
    """Run one worker in ``mode``: the long task, then the no-op tasks; read their timings."""
    from bench import tasks
    from django_blueque.connection import get_client

    client = get_client()
    client.redis.flushall()
    long_seconds = max(LONG_TASK_SECONDS, samples * interval + 10.0)
    result = ModeResult(mode, long_seconds)
    with workers() as started:
        worker = Worker(env, f"worker-{mode}", ["default", "--concurrency", "2", "--mode", mode, "-v", "1"])
        started.append(worker)
        # Fork mode: the worker's own listener; prefork: one per child.
        expected = 1 if mode == "fork" else 2
        try:
            wait_for(lambda: listener_count("default") >= expected, START_TIMEOUT, f"the {mode} worker to listen")
            long_id = tasks.nap.enqueue(long_seconds).id
            wait_for(lambda: client.get_task(long_id).status == "started", LONG_START_TIMEOUT, "the long task")
            time.sleep(0.2)  # let the runner (or the other prefork child) get back to listening
            log(f"{mode}: long task {long_id} started; {samples} no-op tasks, one every {interval * 1000:g} ms")
            ids: list[str] = []
            begin = time.monotonic()
            for i in range(samples):
                delay = begin + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ids.append(tasks.noop.enqueue().id)

            def all_finished() -> bool:
                return all(t.status in FINISHED for t in client.get_tasks(ids))

            wait_for(all_finished, FINISH_TIMEOUT, f"the {samples} no-op tasks to finish", poll=0.05)
            long_task = client.get_task(long_id)
            result.long_task_status = long_task.status
            result.long_task_running_at_end = long_task.status == "started"
            if not worker.alive():
                raise BenchError(f"the {mode} worker exited:\n{worker.tail()}")
        except BenchError:
            log(f"{worker.name} output (last lines):\n{worker.tail()}")
            raise
    for t in client.get_tasks(ids):
        if t.status != "complete":
            result.failed.append(f"{t.id}: {t.status} {t.error or ''}".rstrip())
            continue
        created, updated, started_at = t.created, t.updated, t.started_at
        if created is None or updated is None or started_at is None:
            result.failed.append(f"{t.id}: missing created/updated/started_at")
            continue
        result.finish_ms.append((updated - created) * 1000)
        result.start_ms.append((started_at - created) * 1000)
    return result


def table(results: Sequence[ModeResult]) -> str:
    header = (
        f"{'mode':<8} {'no-ops':>6} | {'finish median':>13} {'p99':>8} {'max':>8} |"
        f" {'start median':>12} {'max':>8} | {'<= 50 ms':>8} {'goal':>5}"
    )
    lines = [
        f"{'':<8} {'':>6} | {'enqueue -> finish, ms':^31} | {'enqueue -> start, ms':^21} |",
        header,
        "-" * len(header),
    ]
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        if not r.finish_ms:
            dashes = f"{'-':>13} {'-':>8} {'-':>8} | {'-':>12} {'-':>8} | {'-':>8}"
            lines.append(f"{r.mode:<8} {0:>6} | {dashes} {verdict:>5}")
            continue
        lines.append(
            f"{r.mode:<8} {len(r.finish_ms):>6} | {median(r.finish_ms):>13.1f} {nearest_rank(r.finish_ms, 0.99):>8.1f}"
            f" {max(r.finish_ms):>8.1f} | {median(r.start_ms):>12.1f} {max(r.start_ms):>8.1f} |"
            f" {f'{r.within_goal}/{len(r.finish_ms)}':>8} {verdict:>5}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=20, help="no-op tasks per mode (20)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between two no-op tasks (0.2)")
    parser.add_argument("--mode", choices=("fork", "prefork", "both"), default="both", help="worker mode(s) (both)")
    parser.add_argument("--json", action="store_true", help="print the figures and raw samples as JSON")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.interval < 0:
        parser.error("--samples must be at least 1 and --interval not negative")
    modes = ["fork", "prefork"] if args.mode == "both" else [args.mode]

    install_sigterm_handler()
    begun = time.monotonic()
    try:
        with private_redis(prefix="head-of-line-") as env:
            setup_django(env)
            results = [measure(env, mode, args.samples, args.interval) for mode in modes]
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    elapsed = time.monotonic() - begun
    passed = all(r.passed for r in results)

    if args.json:
        figures = {
            "redis_version": env.redis_version,
            "elapsed_seconds": elapsed,
            "interval_seconds": args.interval,
            "goal_ms": GOAL_MS,
            "passed": passed,
            "results": [r.as_json() for r in results],
        }
        print(json.dumps(figures, indent=2))
        return 0 if passed else 1

    long_seconds = results[0].long_task_seconds
    print(
        f"Redis {env.redis_version} (private redis-server); 1 worker on 'default', --concurrency 2;"
        f" nap({long_seconds:g}) started first, then {args.samples} noop() one every {args.interval * 1000:g} ms;"
        f" {elapsed:.0f} s run"
    )
    print(table(results))
    print(f"goal: every no-op task finishes within {GOAL_MS:g} ms of being enqueued")
    for r in results:
        reasons = []
        if r.within_goal < len(r.finish_ms):
            reasons.append(f"{len(r.finish_ms) - r.within_goal} no-op task(s) over {GOAL_MS:g} ms")
        if r.failed:
            reasons.append(f"{len(r.failed)} no-op task(s) did not complete: " + "; ".join(r.failed[:3]))
        if not r.long_task_running_at_end:
            reasons.append(f"the long task was {r.long_task_status!r}, not running, when the no-ops finished")
        verdict = "PASS" if r.passed else "FAIL: " + "; ".join(reasons)
        print(f"  {r.mode}: {verdict}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
