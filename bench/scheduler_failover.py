"""Scheduler fail-over check: several schedulers, one kill -9'd every few seconds, exactly once.

Three ``manage.py blueque_scheduler`` processes of the demo project run against a private
``redis-server`` (free port, temporary directory, no persistence). Every ``--kill-every``
seconds one of them, in turn, is killed with SIGKILL and at once started again. Two checks:

a. **scheduled tasks**: ``--tasks`` raw tasks (protocol core, no Django) are scheduled on
   the queue ``failover``, their ETAs spread evenly from now+2 s to now+2 s+``--seconds``;
   they are all written up front (a few threads, in ETA order). Once every ETA has passed
   and the scheduled set is empty, the schedulers are stopped and the script reads the
   pending list ``blueque_pending_tasks_failover`` and every task's hash: tasks moved
   (status ``pending``), duplicates in the pending list, tasks missing from it, and the
   lateness of each move, ``updated - eta`` (``updated`` is the clock of the scheduler that
   moved it, at the start of its round). Goal: exactly once (no duplicate, nothing missing,
   every task moved) and p99 lateness under 1 s.
b. **a periodic task**: ``bench/failover_settings.py`` adds to the demo settings a raw
   periodic task ``every-second`` (``EVERY: 1`` on the queue ``periodic``). The script
   waits until a scheduler has seen it (the hash ``blueque_periodic`` holds an
   occurrence), lets the schedulers run, with the kills, for ``--periodic-seconds``, stops
   them and counts the runs per occurrence from the ``occurrence`` field of the tasks in
   ``blueque_pending_tasks_periodic``. The occurrence current when a scheduler first saw
   the entry is only recorded, not run (a new entry starts at the next occurrence); it is
   read from the schedulers' logs ("occurrence ...: recorded"), not from the hash, which
   may already hold a later occurrence by the time the script first reads it. Goal: no
   occurrence run twice, no run of a recorded occurrence, and no gap: every whole second
   after the recorded one, up to one second before the schedulers were stopped, has a run.

Exit status 0 when both checks pass. Every process is started in its own process group and
killed at the end, whatever happens; every wait has a time-out.

Run from the repository root (about 100 s with the defaults)::

    .venv/bin/python bench/scheduler_failover.py
    .venv/bin/python bench/scheduler_failover.py --tasks 20000 --seconds 60 --kill-every 1
    .venv/bin/python bench/scheduler_failover.py --periodic-seconds 10 --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from bench.harness import (  # noqa: E402 - needs the repository root on sys.path
    EXIT_TIMEOUT,
    MANAGE,
    REPO_ROOT,
    BenchError,
    Environment,
    install_sigterm_handler,
    log,
    median,
    nearest_rank,
    private_redis,
    wait_for,
)
from django_blueque.protocol import Client, keys  # noqa: E402

SCHEDULERS = 3
#: The schedulers' --interval (the command's default).
INTERVAL = 0.25
QUEUE = "failover"
#: The first ETA is this many seconds after the tasks start being written.
LEAD = 2.0
#: Threads that write the scheduled tasks.
WRITERS = 4
#: The periodic entry of bench/failover_settings.py.
PERIODIC_NAME, PERIODIC_QUEUE, PERIODIC_EVERY = "every-second", "periodic", 1
#: Seconds the schedulers get to start (Django set-up, first log line).
START_TIMEOUT = 60.0
#: Seconds, after the last ETA, the scheduled tasks get to be moved.
MOVE_TIMEOUT = 30.0
#: An occurrence must have a run if it came at least this long before the schedulers were stopped.
SLACK = 1.0
#: Goal of check a.
P99_GOAL_MS = 1000.0
RECORDED = re.compile(rf"^Periodic task {re.escape(PERIODIC_NAME)}, occurrence ([0-9.]+): recorded$", re.M)
EXPECTED_LOG = ("Scheduler serving ", f"Periodic task {PERIODIC_NAME}, occurrence ")


class Schedulers:
    """``SCHEDULERS`` scheduler processes, each in its own process group, restarted after a kill."""

    def __init__(self, env: Environment, settings_module: str) -> None:
        self.env = env
        self.environ = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "testproject")]),
            "DJANGO_SETTINGS_MODULE": settings_module,
            "BLUEQUE_REDIS_URL": env.redis_url,
            "DEMO_DATABASE": str(env.directory / "db.sqlite3"),
        }
        self.settings_module = settings_module
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.started = 0
        self.kills = 0

    def _start(self) -> subprocess.Popen[bytes]:
        path = self.env.directory / f"scheduler-{self.settings_module}-{self.started}.log"
        self.logs.append(path)
        self.started += 1
        with open(path, "wb") as log_file:
            return subprocess.Popen(
                [sys.executable, str(MANAGE), "blueque_scheduler", "--interval", str(INTERVAL)],
                env=self.environ,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> None:
        self.processes = [self._start() for _ in range(SCHEDULERS)]
        first_logs = self.logs[-SCHEDULERS:]

        def ready() -> bool:
            for proc, path in zip(self.processes, first_logs, strict=True):
                if proc.poll() is not None:
                    raise BenchError(f"a scheduler exited with status {proc.returncode}:\n{tail(path)}")
            return all("Scheduler serving" in read(path) for path in first_logs)

        wait_for(ready, START_TIMEOUT, f"{SCHEDULERS} schedulers to start", poll=0.05)

    def kill_next(self) -> None:
        """SIGKILL the next scheduler in turn and start another in its place at once."""
        slot = self.kills % SCHEDULERS
        _kill(self.processes[slot])
        self.processes[slot] = self._start()
        self.kills += 1

    def stop(self) -> None:
        """SIGTERM every scheduler and wait for it (SIGKILL after a time-out)."""
        for proc in self.processes:
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"scheduler pid {proc.pid} ignored SIGTERM; killing it")
                _kill(proc)

    def kill_all(self) -> None:
        for proc in self.processes:
            _kill(proc)

    def notes(self) -> list[str]:
        """Log lines other than the start-up line and the periodic task's outcomes."""
        return [
            f"{path.name}: {line}"
            for path in self.logs
            for line in read(path).splitlines()
            if line.strip() and not line.startswith(EXPECTED_LOG)
        ]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        log(f"scheduler pid {proc.pid} did not exit after SIGKILL")


def read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(read(path).splitlines()[-lines:])


@contextmanager
def schedulers(env: Environment, settings_module: str) -> Iterator[Schedulers]:
    """Started schedulers; every one is killed at the end, whatever happens."""
    group = Schedulers(env, settings_module)
    try:
        group.start()
        yield group
    finally:
        group.kill_all()


def kill_until(group: Schedulers, kill_every: float, done: Callable[[], bool], deadline: float, what: str) -> None:
    """Kill a scheduler every ``kill_every`` seconds (never if 0) until ``done()``; BenchError after ``deadline``."""
    next_kill = time.monotonic() + kill_every
    while not done():
        now = time.monotonic()
        if now > deadline:
            raise BenchError(f"timed out waiting for {what}")
        if kill_every > 0 and now >= next_kill:
            group.kill_next()
            next_kill += kill_every
        time.sleep(0.01)


def lateness_figures(values_ms: Sequence[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"median_ms": None, "p99_ms": None, "max_ms": None}
    return {"median_ms": median(values_ms), "p99_ms": nearest_rank(values_ms, 0.99), "max_ms": max(values_ms)}


# --------------------------------------------------------------------------------------
# a. Scheduled tasks.
# --------------------------------------------------------------------------------------


def write_scheduled(client: Client, etas: Sequence[float]) -> list[str]:
    """Schedule one task per ETA, with ``WRITERS`` threads that each take every WRITERS-th ETA (in order)."""
    queue = client.get_queue(QUEUE)
    ids: list[str] = [""] * len(etas)

    def write(first: int) -> None:
        for i in range(first, len(etas), WRITERS):
            ids[i] = queue.schedule(f"task {i}", eta=etas[i])

    with ThreadPoolExecutor(WRITERS) as pool:
        for future in [pool.submit(write, n) for n in range(WRITERS)]:
            future.result()
    return ids


def check_scheduled(env: Environment, tasks: int, seconds: float, kill_every: float) -> dict[str, Any]:
    client = Client(env.redis_url)
    client.redis.flushdb()
    with schedulers(env, "testproject.settings") as group:
        base = time.time()
        etas = [base + LEAD + (seconds * i / (tasks - 1) if tasks > 1 else 0.0) for i in range(tasks)]
        ids = write_scheduled(client, etas)
        written_in = time.time() - base
        log(f"a. {tasks} tasks scheduled in {written_in:.2f} s; ETAs {LEAD:g} to {LEAD + seconds:g} s from the start")
        scheduled_key = keys.scheduled(QUEUE)

        def all_moved() -> bool:
            return time.time() > etas[-1] and client.redis.zcard(scheduled_key) == 0

        deadline = time.monotonic() + (etas[-1] - time.time()) + MOVE_TIMEOUT
        try:
            kill_until(group, kill_every, all_moved, deadline, "every scheduled task to be moved")
        except BenchError:
            for path in group.logs[-SCHEDULERS:]:
                log(f"{path.name} (last lines):\n{tail(path)}")
            raise
        group.stop()
        kills = group.kills
        notes = group.notes()

    pending = [str(x) for x in client.redis.lrange(keys.pending(QUEUE), 0, -1)]
    counts = Counter(pending)
    wanted = set(ids)
    tasks_read = client.get_tasks(ids)
    statuses = Counter(task.status for task in tasks_read)
    # A task written after its ETA is enqueued at once by Queue.schedule (no "eta" field): not a scheduler's move.
    written_late = sum(1 for task in tasks_read if task.eta is None)
    lateness = [
        (task.updated - task.eta) * 1000
        for task in tasks_read
        if task.status == "pending" and task.updated is not None and task.eta is not None
    ]
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missing = len(wanted - counts.keys())
    unknown = len(counts.keys() - wanted)
    moved = statuses.get("pending", 0)
    figures = lateness_figures(lateness)
    exactly_once = (
        duplicates == 0 and missing == 0 and unknown == 0 and moved == tasks and len(pending) == tasks
    ) and written_late == 0
    p99 = figures["p99_ms"]
    fast = p99 is not None and p99 < P99_GOAL_MS
    client.close()
    return {
        "tasks": tasks,
        "seconds": seconds,
        "kill_every": kill_every,
        "written_in_seconds": written_in,
        "written_after_eta": written_late,
        "scheduled": len(wanted),
        "moved": moved,
        "statuses": dict(statuses),
        "pending_list_length": len(pending),
        "duplicates": duplicates,
        "missing": missing,
        "unknown_in_pending": unknown,
        "lateness": figures,
        "negative_lateness": sum(1 for value in lateness if value < 0),
        "kills": kills,
        "scheduler_processes": group.started,
        "scheduler_log_notes": notes,
        "exactly_once": exactly_once,
        "p99_under_1s": fast,
        "passed": exactly_once and fast,
    }


# --------------------------------------------------------------------------------------
# b. A periodic task.
# --------------------------------------------------------------------------------------


def check_periodic(env: Environment, periodic_seconds: float, kill_every: float) -> dict[str, Any]:
    client = Client(env.redis_url)
    client.redis.flushdb()
    with schedulers(env, "bench.failover_settings") as group:
        wait_for(
            lambda: client.redis.hexists(keys.periodic(), PERIODIC_NAME),
            10 * PERIODIC_EVERY + 10,
            f"a scheduler to see {PERIODIC_NAME!r}",
        )
        log(f"b. {PERIODIC_NAME!r} seen by a scheduler; running for {periodic_seconds:g} s")
        end = time.monotonic() + periodic_seconds
        kill_until(group, kill_every, lambda: time.monotonic() >= end, end + 5, "the periodic window")
        stopped_at = time.time()
        group.stop()
        kills = group.kills
        notes = group.notes()
        recorded = sorted(round(float(match)) for path in group.logs for match in RECORDED.findall(read(path)))
    if not recorded:
        raise BenchError(f"no scheduler logged the first sight of {PERIODIC_NAME!r} ('occurrence ...: recorded')")

    last_claimed = client.redis.hget(keys.periodic(), PERIODIC_NAME)
    pending = [str(x) for x in client.redis.lrange(keys.pending(PERIODIC_QUEUE), 0, -1)]
    runs = client.get_tasks(pending)
    # Every task hash of a periodic run, listed in the pending list or not.
    hashes = 0
    for key in client.redis.scan_iter(match=keys.task("*"), count=1000):
        if client.redis.hget(key, "periodic") == PERIODIC_NAME:
            hashes += 1
    occurrences = [round(float(task.fields["occurrence"])) for task in runs if "occurrence" in task.fields]
    per_occurrence = Counter(occurrences)
    start = max(recorded) + PERIODIC_EVERY
    stop = math.floor(stopped_at - SLACK)
    window = list(range(start, stop + 1, PERIODIC_EVERY))
    gaps = [o for o in window if o not in per_occurrence]
    duplicates = {o: n for o, n in per_occurrence.items() if n > 1}
    early = sorted(o for o in per_occurrence if o < start)
    late = sorted(o for o in per_occurrence if o > stop)
    lateness = [
        (task.created - float(task.fields["occurrence"])) * 1000
        for task in runs
        if task.created is not None and "occurrence" in task.fields
    ]
    consistent = hashes == len(pending) == len(set(pending)) == len(occurrences)
    recorded_run = [o for o in recorded if o in per_occurrence]
    passed = not gaps and not duplicates and not early and not recorded_run and consistent and bool(window)
    client.close()
    return {
        "periodic_seconds": periodic_seconds,
        "kill_every": kill_every,
        "recorded_occurrences": recorded,
        "recorded_and_run": recorded_run,
        "last_claimed_occurrence": None if last_claimed is None else float(last_claimed),
        "window": [start, stop],
        "occurrences_in_window": len(window),
        "covered": sum(1 for o in window if o in per_occurrence),
        "runs": len(occurrences),
        "run_hashes": hashes,
        "pending_list_length": len(pending),
        "duplicates": sum(n - 1 for n in duplicates.values()),
        "duplicated_occurrences": sorted(duplicates),
        "gaps": len(gaps),
        "gap_occurrences": gaps,
        "runs_before_window": early,
        "runs_after_window": late,
        "lateness": lateness_figures(lateness),
        "kills": kills,
        "scheduler_processes": group.started,
        "scheduler_log_notes": notes,
        "passed": passed,
    }


# --------------------------------------------------------------------------------------
# Output.
# --------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def print_report(report: dict[str, Any]) -> None:
    a, b = report["scheduled"], report["periodic"]
    print(
        f"Redis {report['redis_version']} (private redis-server); {SCHEDULERS} blueque_scheduler processes"
        f" (--interval {INTERVAL:g}), one kill -9'd every {report['kill_every']:g} s (round robin), restarted at once"
    )
    print()
    print(
        f"a. scheduled tasks: {a['tasks']} over {a['seconds']:g} s"
        f" (ETAs now+{LEAD:g} s .. now+{LEAD + a['seconds']:g} s),"
        f" written in {a['written_in_seconds']:.2f} s ({a['written_after_eta']} after their ETA)"
    )
    print(f"   scheduled            {a['scheduled']}")
    print(
        f"   moved                {a['moved']}  (statuses: {', '.join(f'{k} {v}' for k, v in a['statuses'].items())})"
    )
    print(f"   pending list         {a['pending_list_length']} ids")
    print(f"   duplicates           {a['duplicates']}")
    print(f"   missing              {a['missing']}")
    late = a["lateness"]
    print(
        f"   lateness             median {_ms(late['median_ms'])}, p99 {_ms(late['p99_ms'])}, max {_ms(late['max_ms'])}"
        f" (updated - eta; {a['negative_lateness']} negative)"
    )
    print(f"   kills                {a['kills']} ({a['scheduler_processes']} scheduler processes in all)")
    verdict = "PASS" if a["passed"] else "FAIL"
    print(
        f"   {verdict}: exactly once {'yes' if a['exactly_once'] else 'NO'},"
        f" p99 lateness under 1 s {'yes' if a['p99_under_1s'] else 'NO'}"
    )
    print()
    window = b["window"]
    print(
        f"b. periodic task {PERIODIC_NAME!r} (every {PERIODIC_EVERY} s) for {b['periodic_seconds']:g} s;"
        f" first sight: occurrence {', '.join(map(str, b['recorded_occurrences']))} recorded, not run (by design)"
    )
    print(
        f"   window               occurrences {window[0]} .. {window[1]}"
        f" ({b['occurrences_in_window']}; up to {SLACK:g} s before the stop)"
    )
    print(f"   covered              {b['covered']} / {b['occurrences_in_window']}")
    print(
        f"   runs                 {b['runs']} (task hashes {b['run_hashes']}, pending list {b['pending_list_length']});"
        f" {len(b['runs_after_window'])} after the window, {len(b['runs_before_window'])} before it"
    )
    print(f"   recorded and run     {len(b['recorded_and_run'])}")
    print(
        f"   duplicates           {b['duplicates']}"
        + (f" (occurrences {b['duplicated_occurrences']})" if b["duplicates"] else "")
    )
    print(f"   gaps                 {b['gaps']}" + (f" (occurrences {b['gap_occurrences']})" if b["gaps"] else ""))
    late = b["lateness"]
    print(
        f"   lateness             median {_ms(late['median_ms'])}, p99 {_ms(late['p99_ms'])}, max {_ms(late['max_ms'])}"
        " (created - occurrence)"
    )
    print(f"   kills                {b['kills']} ({b['scheduler_processes']} scheduler processes in all)")
    print(f"   {'PASS' if b['passed'] else 'FAIL'}: no duplicate occurrence, no gap")
    notes = a["scheduler_log_notes"] + b["scheduler_log_notes"]
    print()
    print(f"scheduler log notes: {len(notes)}" + ("" if notes else " (none)"))
    for note in notes[:20]:
        print(f"  {note}")
    print("PASS" if report["passed"] else "FAIL")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=5000, help="scheduled tasks in check a (5000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds the ETAs of check a span (30)")
    parser.add_argument(
        "--kill-every", type=float, default=2.0, help="seconds between two kill -9 of a scheduler; 0: none (2)"
    )
    parser.add_argument("--periodic-seconds", type=float, default=60.0, help="how long check b runs (60)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.seconds < 0 or args.kill_every < 0 or args.periodic_seconds <= 0:
        parser.error("--tasks must be at least 1, --seconds and --kill-every at least 0, --periodic-seconds above 0")

    install_sigterm_handler()
    started = time.monotonic()
    try:
        with private_redis(prefix="scheduler-failover-") as env:
            scheduled = check_scheduled(env, args.tasks, args.seconds, args.kill_every)
            periodic = check_periodic(env, args.periodic_seconds, args.kill_every)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    report = {
        "redis_version": env.redis_version,
        "kill_every": args.kill_every,
        "run_seconds": time.monotonic() - started,
        "scheduled": scheduled,
        "periodic": periodic,
        "passed": scheduled["passed"] and periodic["passed"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
