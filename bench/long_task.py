"""Long-task check: a task that runs far longer than the listener timeout runs once, to the end.

Three workers (``manage.py blueque_worker default --concurrency 2``, fork mode) serve the
default queue with ``BLUEQUE_LISTENER_TIMEOUT=2``: a listener, or a task's process, whose
heartbeat is over 2 s old is presumed dead, and every worker looks for such listeners
about once a second. One task, ``bench.tasks.long_run``, sleeps for ``--minutes``; one
worker runs it, the two others stay idle beside it, recovering nothing, one hopes.

The task records "start" and "end" (with its pid) in the Redis list
``bench_journal_<task id>``. While it runs the script samples, about twice a second, the task's
status, attempt and node, and the age of every listener's and of the task's heartbeat
(on the Redis server's clock). At the end it checks:

* the task completed exactly once: status ``complete``, listed once in the complete list,
  its journal exactly one "start" then one "end", from the same process, and it never left
  ``started`` while it ran;
* its ``attempt`` field is "1";
* it has no ``recoveries`` field (nor ``lost`` or ``reclaimed_node``);
* the three workers are still alive;

and prints the elapsed time (enqueue -> complete, and start -> end from the journal), the
worker that ran it, and the oldest heartbeat seen. Worker log lines other than the
start-up line and "Task ... runs in process ..." are printed as notes (they would show any
recovery activity). Exit status 0 when every check holds, 1 otherwise.

A private ``redis-server`` (free port, no persistence) is started and stopped at the end;
the workers are killed (their whole process groups) whatever happens.

Run from the repository root (takes ``--minutes`` plus a few seconds)::

    .venv/bin/python bench/long_task.py [--minutes 10] [--json]
    .venv/bin/python bench/long_task.py --minutes 0.5      # a quick run
"""

from __future__ import annotations

import argparse
import json
import random
import re
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
    private_redis,
    setup_django,
    wait_for,
    workers,
)

WORKERS = 3
CONCURRENCY = 2
LISTENER_TIMEOUT = 2.0
#: Seconds the workers get to start (Django set-up, connecting, registering their listeners).
START_TIMEOUT = 60.0
#: Seconds the task gets to start once enqueued.
TASK_START_TIMEOUT = 30.0
#: Seconds between two samples of the task and the heartbeats, on average. Jittered
#: (uniform, +-50%) so the samples do not lock onto the heartbeats, which come at fixed
#: periods (a quarter of the listener timeout).
SAMPLE_EVERY = 0.5
#: Worker log lines that are expected; any other is printed as a note.
EXPECTED_LOG = re.compile(r"^(Worker serving .*|Task \S+ runs in process \d+|Ran \d+ task\(s\)\.)$")


@dataclass
class Check:
    name: str
    value: str
    ok: bool


@dataclass
class Observation:
    """What the sampling loop saw while the task ran."""

    states: list[str] = field(default_factory=list)  # distinct "status attempt=.. node=..", in order
    samples: int = 0
    max_listener_age: dict[str, float] = field(default_factory=dict)  # listener id -> oldest beat seen, s
    max_task_age: float = 0.0
    workers_dead: dict[str, float] = field(default_factory=dict)  # worker -> seconds into the run it was seen dead


def listener_ids() -> set[str]:
    from django_blueque.connection import get_client
    from django_blueque.protocol import keys

    return {str(x) for x in get_client().redis.smembers(keys.listeners("default"))}


def sample(task_id: str, observation: Observation) -> str | None:
    """Record the task's state and the heartbeat ages; return the task's status."""
    from django_blueque.connection import get_client
    from django_blueque.protocol import keys

    client = get_client()
    listeners = sorted(listener_ids())
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.task(task_id), ["status", "attempt", "node", "pid"])
        pipe.zscore(keys.task_heartbeats(), task_id)
        for listener in listeners:
            pipe.zscore(keys.heartbeats(), listener)
        pipe.time()
        replies = pipe.execute()
    (status, attempt, node, pid), task_beat, *beats, (seconds, micros) = replies
    now = int(seconds) + int(micros) / 1_000_000
    state = f"{status} attempt={attempt} node={node} pid={pid}"
    if not observation.states or observation.states[-1] != state:
        observation.states.append(state)
    if status == "started" and task_beat is not None:
        observation.max_task_age = max(observation.max_task_age, now - float(task_beat))
    for listener, beat in zip(listeners, beats, strict=True):
        if beat is not None:
            age = now - float(beat)
            observation.max_listener_age[listener] = max(observation.max_listener_age.get(listener, 0.0), age)
    observation.samples += 1
    return None if status is None else str(status)


def run(env: Environment, seconds: float) -> dict[str, Any]:
    from bench import tasks
    from django_blueque.connection import get_client
    from django_blueque.protocol import keys

    client = get_client()
    observation = Observation()
    report: dict[str, Any] = {"seconds": seconds, "listener_timeout": LISTENER_TIMEOUT}
    with workers() as started:
        for n in range(1, WORKERS + 1):
            args = ["default", "--concurrency", str(CONCURRENCY), "--mode", "fork", "-v", "1"]
            started.append(Worker(env, f"worker-{n}", args, listener_timeout=LISTENER_TIMEOUT))
        by_pid = {w.pid: w for w in started}
        try:
            wait_for(lambda: len(listener_ids()) >= WORKERS, START_TIMEOUT, f"{WORKERS} workers to listen")
            time.sleep(2 * LISTENER_TIMEOUT)  # a few heartbeats and recovery rounds before the task
            task_id = tasks.long_run.enqueue(seconds).id
            report["task_id"] = task_id
            log(f"task {task_id}: long_run({seconds:g}) enqueued; listener timeout {LISTENER_TIMEOUT:g} s")
            wait_for(lambda: client.get_task(task_id).status == "started", TASK_START_TIMEOUT, "the task to start")
            node = client.get_task(task_id).node or ""
            runner = by_pid.get(int(node.rpartition("_")[2])) if node.rpartition("_")[2].isdigit() else None
            report["run_by"] = f"{runner.name} (pid {runner.pid})" if runner else f"listener {node}"
            log(f"task started, run by {report['run_by']}; sampling about every {SAMPLE_EVERY:g} s")

            begin = time.monotonic()
            deadline = begin + seconds + max(60.0, seconds * 0.1)
            next_progress = begin + 60.0
            status = "started"
            while status not in ("complete", "failed"):
                now = time.monotonic()
                if now > deadline:
                    raise BenchError(f"the task did not finish within {deadline - begin:.0f} s (status {status!r})")
                status = sample(task_id, observation) or "gone"
                for w in started:
                    if not w.alive() and w.name not in observation.workers_dead:
                        observation.workers_dead[w.name] = now - begin
                        log(f"{w.name} (pid {w.pid}) exited after {now - begin:.0f} s:\n{w.tail()}")
                if now >= next_progress:
                    log(f"{(now - begin) / 60:.0f} min: {observation.states[-1]}")
                    next_progress += 60.0
                time.sleep(random.uniform(0.5, 1.5) * SAMPLE_EVERY)
            time.sleep(2 * LISTENER_TIMEOUT)  # recovery rounds after the end could still misbehave
            sample(task_id, observation)
            alive = [w.alive() for w in started]
        except BenchError:
            for w in started:
                log(f"{w.name} (pid {w.pid}) output (last lines):\n{w.tail()}")
            raise
        notes = [
            f"{w.name}: {line}"
            for w in started
            for line in w.output().splitlines()
            if line.strip() and not EXPECTED_LOG.match(line.strip())
        ]
        runs = {w.name: len(re.findall(r"^Task \S+ runs in process", w.output(), re.M)) for w in started}

    task = client.get_task(task_id)
    fields = dict(task.fields)
    journal = [str(line).split() for line in client.redis.lrange(tasks.journal_key(task_id), 0, -1)]
    in_complete = [str(x) for x in client.redis.lrange(keys.complete("default"), 0, -1)].count(task_id)
    events = [entry[0] for entry in journal]
    pids = {entry[1] for entry in journal}
    states = [s.split()[0] for s in observation.states]
    # Exactly two distinct (status, attempt, node, pid) states: started, then complete.
    clean_run = states == ["started", "complete"]

    checks = [
        Check(
            "completed exactly once",
            f"status {task.status}; {in_complete}x in complete list; journal {' '.join(events) or 'empty'}"
            f" (pid {', '.join(sorted(pids)) or '-'}); states seen: {' -> '.join(states)}",
            task.status == "complete"
            and in_complete == 1
            and events == ["start", "end"]
            and len(pids) == 1
            and clean_run,
        ),
        Check('attempt == "1"', repr(fields.get("attempt")), fields.get("attempt") == "1"),
        Check(
            'no "recoveries" field',
            "absent" if "recoveries" not in fields else repr(fields["recoveries"]),
            "recoveries" not in fields,
        ),
        Check(
            "no lost / reclaimed_node field",
            ", ".join(f"{k}={fields[k]!r}" for k in ("lost", "reclaimed_node") if k in fields) or "absent",
            "lost" not in fields and "reclaimed_node" not in fields,
        ),
        Check(f"{WORKERS} workers alive", f"{sum(alive)}/{WORKERS} alive", all(alive)),
    ]
    created, updated = task.created, task.updated
    elapsed = None if created is None or updated is None else updated - created
    run_seconds = float(journal[1][2]) - float(journal[0][2]) if events == ["start", "end"] else None
    report |= {
        "redis_version": env.redis_version,
        "status": task.status,
        "fields": {k: v for k, v in fields.items() if k not in ("parameters", "result")},
        "journal": [" ".join(entry) for entry in journal],
        "elapsed_enqueue_to_complete_seconds": elapsed,
        "run_seconds": run_seconds,
        "states_seen": observation.states,
        "samples": observation.samples,
        "max_task_heartbeat_age_seconds": observation.max_task_age,
        "max_listener_heartbeat_age_seconds": observation.max_listener_age,
        "workers_dead": observation.workers_dead,
        "tasks_run_per_worker": runs,
        "worker_log_notes": notes,
        "checks": [{"check": c.name, "value": c.value, "ok": c.ok} for c in checks],
        "passed": all(c.ok for c in checks),
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    print(
        f"Redis {report['redis_version']} (private redis-server); {WORKERS} workers on 'default'"
        f" (--concurrency {CONCURRENCY} each, fork mode); BLUEQUE_LISTENER_TIMEOUT={report['listener_timeout']:g}"
    )
    print(f"task {report['task_id']}: long_run({report['seconds']:g}), run by {report['run_by']}")
    width = max(len(c["check"]) for c in report["checks"])
    header = f"{'check':<{width}}  result  value"
    print(header)
    print("-" * max(len(header), 60))
    for c in report["checks"]:
        print(f"{c['check']:<{width}}  {'PASS' if c['ok'] else 'FAIL':<6}  {c['value']}")
    elapsed, run_seconds = report["elapsed_enqueue_to_complete_seconds"], report["run_seconds"]
    print(
        f"elapsed: enqueue -> complete {elapsed:.3f} s" if elapsed is not None else "elapsed: enqueue -> complete -",
        end="",
    )
    print(f"; start -> end (journal) {run_seconds:.3f} s" if run_seconds is not None else "")
    print(f"attempt: {report['fields'].get('attempt')!r}; recoveries: {report['fields'].get('recoveries', 'absent')!r}")
    listener_ages = report["max_listener_heartbeat_age_seconds"]
    oldest = max(listener_ages.values(), default=0.0)
    print(
        f"oldest heartbeat seen ({report['samples']} samples, timeout {report['listener_timeout']:g} s):"
        f" task {report['max_task_heartbeat_age_seconds']:.2f} s, listeners {oldest:.2f} s"
    )
    print("tasks run per worker: " + ", ".join(f"{k} {v}" for k, v in report["tasks_run_per_worker"].items()))
    notes = report["worker_log_notes"]
    print(f"worker log notes: {len(notes)}" + ("" if notes else " (none)"))
    for note in notes[:20]:
        print(f"  {note}")
    print("PASS" if report["passed"] else "FAIL")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the task runs (10)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be above 0")

    install_sigterm_handler()
    try:
        with private_redis(prefix="long-task-") as env:
            setup_django(env, listener_timeout=LISTENER_TIMEOUT)
            report = run(env, args.minutes * 60)
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
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
