"""Memory soak: under a steady load of short tasks with a short RESULT_TTL, does Redis memory level off?

One ``manage.py blueque_run --concurrency 4`` (a worker in fork mode, a scheduler and a
monitor, in one process tree) of the demo project serves a private ``redis-server``, with
``BLUEQUE_RESULT_TTL`` and ``BLUEQUE_FAILED_RESULT_TTL`` set to ``--ttl``. For ``--minutes``
the script enqueues ``--rate`` tasks a second on a fixed schedule (monotonic clock):
``bench.tasks.noop``, and every ``--fail-every``-th task a raw task naming a Django task that
does not exist (``bench.tasks.no_such_task``), which the worker fails with "Cannot import
the task". The monitor reports each finished task and deletes its hash once it is older
than the TTL; it looks for such hashes every ``LISTENER_TIMEOUT / 2`` seconds
(``--listener-timeout``, default 10: every 5 s).

About four times a second it reads Redis's ``used_memory``, ``DBSIZE``, the number of task
hashes (``blueque_task_<id>``), the pending list, the tasks in flight (reserved lists), the
complete and failed lists (awaiting a report), the reported sets and the task heartbeat
set, and counts the tasks finished so far by reading the status of every outstanding task
(before its hash expires). Every ``--sample-every`` seconds a reading goes into the table.

The verdict is drawn from the readings (about four a second, at jittered times) of the
second half of the run, not from the table's samples: the expiry sweeps make memory and the
number of hashes a sawtooth (period about LISTENER_TIMEOUT / 2), which samples at a fixed
period alias into a slow wave that can pass for a trend. Its checks:

* **memory levels off**: the least-squares slope of ``used_memory`` (a moving average over
  one sweep period, which takes out most of the sawtooth) is below 1% of its mean per
  minute;
* **task hashes bounded**: their count never exceeds ``rate x (TTL + sweep period + 10 s)``
  (what is kept for the TTL, plus what waits for the next sweep, plus some slack);
* **task hashes not growing**: their slope (averaged likewise) is below 1% of their mean
  per minute.

PASS when all three hold; exit status 0 then, 1 otherwise. It also prints the mean memory
over each half, the largest DBSIZE, the tasks enqueued, completed and failed, the backlog
(pending + in flight) when enqueueing stopped, and, as notes, log lines of ``blueque_run``
other than the expected ones (start-up, "Task ... runs in process ...", and the expected
failure of the raw task). After the run it waits (at most 60 s) for the backlog to drain,
so that every task's outcome is counted.

Run from the repository root (takes ``--minutes`` plus about 10 s)::

    .venv/bin/python bench/memory_soak.py [--minutes 10] [--rate 50] [--ttl 30] [--fail-every 10]
                                          [--sample-every 10] [--listener-timeout 10] [--json]
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from bench.harness import (  # noqa: E402 - needs the repository root on sys.path
    EXIT_TIMEOUT,
    BenchError,
    Environment,
    Worker,
    install_sigterm_handler,
    log,
    private_redis,
    setup_django,
    wait_for,
)

QUEUE = "default"
CONCURRENCY = 4
#: The Django task the failing raw tasks name: it does not exist, so the worker fails them.
MISSING_TASK = "bench.tasks.no_such_task"
#: Seconds blueque_run gets to start (Django set-up, connecting, registering worker and monitor).
START_TIMEOUT = 60.0
#: Seconds the backlog gets to drain once enqueueing stops.
DRAIN_TIMEOUT = 60.0
#: Seconds between two readings (the outstanding tasks' statuses, memory, key counts), on
#: average; jittered (uniform, +-50%). The verdict fits its trends to these, not to the
#: coarser samples of the table: the monitor's expiry sweeps make the number of task hashes,
#: and memory, a sawtooth (period about LISTENER_TIMEOUT / 2), which samples at a fixed
#: period alias into a slow wave that can pass for a trend.
READ_EVERY = 0.25
#: A trend below this fraction of the mean per minute counts as level.
SLOPE_LIMIT = 0.01
#: Seconds added to TTL + sweep period in the bound on task hashes.
HASH_SLACK = 10.0
MIB = 1024 * 1024
#: blueque_run log lines that are expected; any other is printed as a note.
EXPECTED_LOG = re.compile(
    r"^(blueque_run: \w+ started \(process \d+\)"
    r"|Worker serving .*|Monitor \S+ serving .*|Scheduler serving .*"
    r"|Task \S+ runs in process \d+"
    rf"|Task \S+ failed: Cannot import the task '{re.escape(MISSING_TASK)}'.*"
    r"|Ran \d+ task\(s\)\.)$"
)


@dataclass
class Sample:
    elapsed: float  # seconds since enqueueing began
    used_memory: int  # bytes
    used_memory_rss: int  # bytes
    dbsize: int
    task_hashes: int
    pending: int
    in_flight: int  # in the worker's reserved lists (reserved or started)
    complete_list: int  # complete, not yet reported
    failed_list: int  # failed, not yet reported
    reported_complete: int
    reported_failed: int
    task_heartbeats: int
    enqueued: int
    finished: int

    @property
    def used_mib(self) -> float:
        return self.used_memory / MIB


@dataclass
class Reading:
    """What the verdict needs of a sample."""

    elapsed: float
    used_memory: int
    dbsize: int
    task_hashes: int

    @property
    def used_mib(self) -> float:
        return self.used_memory / MIB


@dataclass
class Tally:
    """The outcome of every task enqueued, read from the task hashes before they expire."""

    outstanding: dict[str, bool] = field(default_factory=dict)  # task id -> meant to fail
    enqueued: int = 0
    enqueued_failing: int = 0
    completed: int = 0
    failed: int = 0
    vanished: int = 0  # hash gone before a finished status was seen
    unexpected: list[str] = field(default_factory=list)  # "<id>: <what>" of noops that failed and the like

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.vanished

    def add(self, task_id: str, failing: bool) -> None:
        self.outstanding[task_id] = failing
        self.enqueued += 1
        self.enqueued_failing += failing

    def poll(self, redis: Any) -> None:
        """Read the status of every outstanding task; count those that finished."""
        from django_blueque.protocol import keys

        if not self.outstanding:
            return
        ids = list(self.outstanding)
        with redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(keys.task(task_id), ["status", "error"])
            replies = pipe.execute()
        for task_id, (status, error) in zip(ids, replies, strict=True):
            if status not in ("complete", "failed", None):
                continue
            failing = self.outstanding.pop(task_id)
            if status is None:
                self.vanished += 1
                continue
            if status == "complete":
                self.completed += 1
            else:
                self.failed += 1
            if (status == "failed") != failing:
                what = "meant to fail" if failing else "a noop"
                self.unexpected.append(f"{task_id} ({what}): {status} {error or ''}".rstrip())


class BluequeRun(Worker):
    """``manage.py blueque_run`` in its own process group, its output in a log file."""

    def __init__(self, env: Environment, ttl: float, listener_timeout: float) -> None:
        super().__init__(
            env,
            "blueque_run",
            [QUEUE, "--concurrency", str(CONCURRENCY), "-v", "1"],
            listener_timeout,
            command="blueque_run",
            extra_env={"BLUEQUE_RESULT_TTL": repr(ttl), "BLUEQUE_FAILED_RESULT_TTL": repr(ttl)},
        )
        self.stopped_in_time: bool | None = None

    def stop(self) -> None:
        """SIGTERM (passed on to the worker, scheduler and monitor), then SIGKILL the whole group."""
        if self.alive():
            with suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=EXIT_TIMEOUT)
                self.stopped_in_time = True
            except subprocess.TimeoutExpired:
                self.stopped_in_time = False
        self.kill()


def take_sample(redis: Any, elapsed: float, tally: Tally) -> Sample:
    from django_blueque.protocol import keys

    listeners = sorted(str(x) for x in redis.smembers(keys.listeners(QUEUE)))
    with redis.pipeline(transaction=False) as pipe:
        pipe.info("memory")
        pipe.dbsize()
        pipe.llen(keys.pending(QUEUE))
        pipe.llen(keys.complete(QUEUE))
        pipe.llen(keys.failed(QUEUE))
        pipe.zcard(keys.reported(QUEUE, "complete"))
        pipe.zcard(keys.reported(QUEUE, "failed"))
        pipe.zcard(keys.task_heartbeats())
        for listener in listeners:
            pipe.llen(keys.reserved(QUEUE, listener))
        memory, dbsize, pending, complete, failed, rep_complete, rep_failed, beats, *reserved = pipe.execute()
    prefix, not_a_task = keys.task(""), keys.task_heartbeats()
    hashes = sum(1 for key in redis.scan_iter(match=f"{prefix}*", count=1000) if key != not_a_task)
    return Sample(
        elapsed=elapsed,
        used_memory=int(memory["used_memory"]),
        used_memory_rss=int(memory["used_memory_rss"]),
        dbsize=int(dbsize),
        task_hashes=hashes,
        pending=int(pending),
        in_flight=sum(int(n) for n in reserved),
        complete_list=int(complete),
        failed_list=int(failed),
        reported_complete=int(rep_complete),
        reported_failed=int(rep_failed),
        task_heartbeats=int(beats),
        enqueued=tally.enqueued,
        finished=tally.finished,
    )


def enqueue(failing: bool) -> str:
    from bench import tasks
    from django_blueque.connection import get_client

    if failing:
        parameters = json.dumps({"django_task": MISSING_TASK, "args": [], "kwargs": {}})
        return get_client().get_queue(QUEUE).enqueue(parameters)
    return str(tasks.noop.enqueue().id)


def soak(env: Environment, args: argparse.Namespace) -> dict[str, Any]:
    from django_blueque.connection import get_client
    from django_blueque.protocol import keys

    redis = get_client().redis
    duration = args.minutes * 60
    tally = Tally()
    samples: list[Sample] = []  # every --sample-every seconds, for the table
    readings: list[Sample] = []  # every READ_EVERY seconds, for the verdict
    runner = BluequeRun(env, args.ttl, args.listener_timeout)
    try:
        try:
            wait_for(
                lambda: redis.scard(keys.listeners(QUEUE)) >= 1 and redis.scard(keys.monitors()) >= 1,
                START_TIMEOUT,
                "blueque_run's worker and monitor to start",
                poll=0.1,
            )
        except BenchError:
            log(f"blueque_run output (last lines):\n{runner.tail()}")
            raise
        log(
            f"soaking for {duration:g} s: {args.rate:g} tasks/s"
            + (f", one in {args.fail_every} failing" if args.fail_every else "")
            + f"; RESULT_TTL {args.ttl:g} s; a sample every {args.sample_every:g} s"
        )
        begin = time.monotonic()
        end = begin + duration
        next_sample = next_reading = begin
        next_progress = begin + 60.0
        while True:
            now = time.monotonic()
            if now >= next_reading or now >= next_sample or now >= end:
                tally.poll(redis)
                reading = take_sample(redis, now - begin, tally)
                readings.append(reading)
                next_reading = now + READ_EVERY * random.uniform(0.5, 1.5)
                if now >= next_sample or now >= end:
                    samples.append(reading)
                    next_sample += args.sample_every
                if now >= end:
                    break
                if not runner.alive():
                    raise BenchError(f"blueque_run exited:\n{runner.tail()}")
            if now >= next_progress:
                log(
                    f"{(now - begin) / 60:.0f} min: used_memory {reading.used_mib:.2f} MiB,"
                    f" {reading.task_hashes} task hashes, {reading.pending} pending, {tally.enqueued} enqueued,"
                    f" {tally.finished} finished"
                )
                next_progress += 60.0
            due = begin + tally.enqueued / args.rate
            if now >= due:
                n = tally.enqueued + 1
                failing = bool(args.fail_every) and n % args.fail_every == 0
                tally.add(enqueue(failing), failing)
                continue
            time.sleep(max(0.0, min(due, next_sample, next_reading, end) - time.monotonic()))
        enqueue_seconds = time.monotonic() - begin
        last = samples[-1]
        backlog = last.pending + last.in_flight

        drain_begin = time.monotonic()
        while tally.outstanding and time.monotonic() - drain_begin < DRAIN_TIMEOUT:
            time.sleep(0.5)
            tally.poll(redis)
        drain_seconds = time.monotonic() - drain_begin
        after_drain = take_sample(redis, time.monotonic() - begin, tally)
        alive_at_end = runner.alive()
    finally:
        runner.stop()
    output = runner.output()
    notes = [line for line in output.splitlines() if line.strip() and not EXPECTED_LOG.match(line.strip())]
    return {
        "redis_version": env.redis_version,
        "minutes": args.minutes,
        "rate": args.rate,
        "ttl": args.ttl,
        "fail_every": args.fail_every,
        "sample_every": args.sample_every,
        "listener_timeout": args.listener_timeout,
        "concurrency": CONCURRENCY,
        "enqueue_seconds": enqueue_seconds,
        "enqueued": tally.enqueued,
        "enqueued_failing": tally.enqueued_failing,
        "completed": tally.completed,
        "failed": tally.failed,
        "vanished": tally.vanished,
        "unexpected_outcomes": tally.unexpected,
        "backlog_at_end": backlog,
        "drain_seconds": drain_seconds,
        "unfinished_after_drain": len(tally.outstanding),
        "blueque_run_alive_at_end": alive_at_end,
        "blueque_run_stopped_on_sigterm": runner.stopped_in_time,
        "tasks_run_logged": len(re.findall(r"^Task \S+ runs in process", output, re.M)),
        "log_notes": notes,
        "after_drain": asdict(after_drain),
        "samples": [asdict(s) for s in samples],
        # Compact: [seconds, used_memory, dbsize, task hashes] each.
        "readings": [[round(s.elapsed, 3), s.used_memory, s.dbsize, s.task_hashes] for s in readings],
    }


def moving_average(points: Sequence[tuple[float, float]], window: float) -> list[tuple[float, float]]:
    """Each (seconds, value) point whose ``window`` around it lies within the points, averaged over it.

    With ``window`` the period of the expiry sweeps, the sawtooth they make averages out, and
    what is left is the trend; fewer than three points left: the points unchanged.
    """
    times = [x for x, _ in points]
    averaged = []
    for x, _ in points:
        if x - window / 2 < times[0] or x + window / 2 > times[-1]:
            continue
        inside = points[bisect.bisect_left(times, x - window / 2) : bisect.bisect_right(times, x + window / 2)]
        averaged.append((x, statistics.fmean(y for _, y in inside)))
    return averaged if len(averaged) >= 3 else list(points)


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    xs = [x / 60 for x, _ in points]
    ys = [y for _, y in points]
    if len(set(xs)) < 2:
        return 0.0
    return float(statistics.linear_regression(xs, ys).slope)


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """The figures and the checks, over the second half of the run."""
    readings = [Reading(*r) for r in report["readings"]]
    half = report["enqueue_seconds"] / 2
    first = [s for s in readings if s.elapsed < half]
    second = [s for s in readings if s.elapsed >= half]
    if len(second) < 3:
        raise BenchError(f"only {len(second)} reading(s) in the second half: run longer")
    rate = report["enqueued"] / report["enqueue_seconds"]
    sweep = report["listener_timeout"] / 2
    mem_mean_first = statistics.fmean(s.used_mib for s in first) if first else float("nan")
    mem_mean_second = statistics.fmean(s.used_mib for s in second)
    mem_slope = slope_per_minute(moving_average([(s.elapsed, s.used_mib) for s in second], sweep))
    hashes_mean = statistics.fmean(s.task_hashes for s in second)
    hashes_slope = slope_per_minute(moving_average([(s.elapsed, s.task_hashes) for s in second], sweep))
    hashes_max = max(s.task_hashes for s in second)
    hashes_bound = rate * (report["ttl"] + sweep + HASH_SLACK)
    checks = [
        {
            "check": "memory levels off",
            "value": f"slope {mem_slope:+.4f} MiB/min over the second half ({sweep:g} s moving average);"
            f" limit {SLOPE_LIMIT:.0%} of its mean {mem_mean_second:.2f} MiB = {SLOPE_LIMIT * mem_mean_second:.4f}",
            "ok": mem_slope < SLOPE_LIMIT * mem_mean_second,
        },
        {
            "check": "task hashes bounded",
            "value": f"max {hashes_max} in the second half; bound {hashes_bound:.0f}"
            f" = {rate:.1f}/s x ({report['ttl']:g} s TTL + {sweep:g} s sweep + {HASH_SLACK:g} s)",
            "ok": hashes_max <= hashes_bound,
        },
        {
            "check": "task hashes not growing",
            "value": f"slope {hashes_slope:+.1f}/min (same); limit {SLOPE_LIMIT:.0%} of their mean {hashes_mean:.0f}"
            f" = {SLOPE_LIMIT * hashes_mean:.1f}",
            "ok": hashes_slope < SLOPE_LIMIT * hashes_mean,
        },
    ]
    return {
        "achieved_rate": rate,
        "used_memory_mean_first_half_mib": mem_mean_first,
        "used_memory_mean_second_half_mib": mem_mean_second,
        "used_memory_slope_mib_per_min": mem_slope,
        "used_memory_max_mib": max(s.used_mib for s in readings),
        "dbsize_max": max(s.dbsize for s in readings),
        "task_hashes_max_second_half": hashes_max,
        "task_hashes_bound": hashes_bound,
        "task_hashes_slope_per_min": hashes_slope,
        "checks": checks,
        "passed": all(c["ok"] for c in checks),
    }


def table(samples: Sequence[dict[str, Any]]) -> str:
    columns = [
        ("time s", "elapsed", "{:.0f}"),
        ("used MiB", "used_memory", "{:.3f}"),
        ("dbsize", "dbsize", "{}"),
        ("hashes", "task_hashes", "{}"),
        ("pending", "pending", "{}"),
        ("running", "in_flight", "{}"),
        ("complete", "complete_list", "{}"),
        ("failed", "failed_list", "{}"),
        ("rep.cmpl", "reported_complete", "{}"),
        ("rep.fail", "reported_failed", "{}"),
        ("t.beats", "task_heartbeats", "{}"),
        ("enqueued", "enqueued", "{}"),
        ("finished", "finished", "{}"),
    ]
    header = " ".join(f"{title:>8}" for title, _, _ in columns)
    lines = [header, "-" * len(header)]
    for s in samples:
        values = dict(s, used_memory=s["used_memory"] / MIB)
        lines.append(" ".join(f"{fmt.format(values[key]):>8}" for _, key, fmt in columns))
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    v = report["verdict"]
    print(
        f"Redis {report['redis_version']} (private redis-server); blueque_run {QUEUE} --concurrency"
        f" {report['concurrency']} (fork mode); {report['minutes']:g} min at {report['rate']:g} tasks/s"
        + (f", 1 in {report['fail_every']} failing" if report["fail_every"] else "")
        + f"; RESULT_TTL = FAILED_RESULT_TTL = {report['ttl']:g} s; LISTENER_TIMEOUT {report['listener_timeout']:g} s"
        f" (expiry sweep every {report['listener_timeout'] / 2:g} s)"
    )
    print(table(report["samples"]))
    print(
        f"used_memory: mean {v['used_memory_mean_first_half_mib']:.3f} MiB (first half),"
        f" {v['used_memory_mean_second_half_mib']:.3f} MiB (second half), max {v['used_memory_max_mib']:.3f} MiB;"
        f" slope over the second half {v['used_memory_slope_mib_per_min']:+.4f} MiB/min"
    )
    print(
        f"max DBSIZE {v['dbsize_max']}; task hashes: max {v['task_hashes_max_second_half']} in the second half,"
        f" slope {v['task_hashes_slope_per_min']:+.1f}/min"
    )
    print(
        f"enqueued {report['enqueued']} in {report['enqueue_seconds']:.1f} s ({v['achieved_rate']:.2f}/s,"
        f" {report['enqueued_failing']} meant to fail); completed {report['completed']}, failed {report['failed']}"
        + (f", finished but unseen {report['vanished']}" if report["vanished"] else "")
        + f"; backlog when enqueueing stopped {report['backlog_at_end']} (pending + running),"
        f" drained in {report['drain_seconds']:.1f} s"
        + (f", {report['unfinished_after_drain']} still unfinished" if report["unfinished_after_drain"] else "")
    )
    drained = report["after_drain"]
    print(
        f"after the drain: {drained['task_hashes']} task hashes, {drained['pending'] + drained['in_flight']}"
        f" pending or running, {drained['task_heartbeats']} members in blueque_task_heartbeats"
    )
    unexpected = report["unexpected_outcomes"]
    if unexpected:
        print(f"unexpected outcomes: {len(unexpected)}")
        for line in unexpected[:10]:
            print(f"  {line}")
    print(
        f"blueque_run: alive at the end {'yes' if report['blueque_run_alive_at_end'] else 'NO'};"
        f" stopped on SIGTERM within {EXIT_TIMEOUT:g} s {'yes' if report['blueque_run_stopped_on_sigterm'] else 'no'};"
        f" 'runs in process' lines {report['tasks_run_logged']}"
    )
    notes = report["log_notes"]
    print(f"blueque_run log notes: {len(notes)}" + ("" if notes else " (none)"))
    for note in notes[:20]:
        print(f"  {note}")
    width = max(len(c["check"]) for c in v["checks"])
    for c in v["checks"]:
        print(f"{c['check']:<{width}}  {'PASS' if c['ok'] else 'FAIL':<4}  {c['value']}")
    print("PASS" if v["passed"] else "FAIL")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to enqueue (10)")
    parser.add_argument("--rate", type=float, default=50.0, help="tasks enqueued per second (50)")
    parser.add_argument("--ttl", type=float, default=30.0, help="RESULT_TTL and FAILED_RESULT_TTL, seconds (30)")
    parser.add_argument("--fail-every", type=int, default=10, help="one task in N fails; 0 for none (10)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between two samples (10)")
    parser.add_argument(
        "--listener-timeout", type=float, default=10.0, help="BLUEQUE_LISTENER_TIMEOUT; expiry sweeps at half (10)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures and samples as JSON")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.ttl <= 0 or args.sample_every <= 0 or args.listener_timeout <= 0:
        parser.error("--minutes, --rate, --ttl, --sample-every and --listener-timeout must be above 0")
    if args.fail_every < 0:
        parser.error("--fail-every must be 0 or more")

    install_sigterm_handler()
    try:
        with private_redis(prefix="memory-soak-") as env:
            setup_django(env, listener_timeout=args.listener_timeout)
            report = soak(env, args)
        report["verdict"] = verdict(report)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0 if report["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
