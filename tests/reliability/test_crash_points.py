"""Scenario 3: a crash between any two Redis calls.

Each operation of the protocol (enqueue, take, start, heartbeat, complete,
fail, retry, a fork-mode worker's take-start-finish and a prefork child's
finish-and-take-the-next, each with the listener's close, schedule and move
due tasks, a scheduler's tick, the recovery of a dead listener's tasks, a
monitor's report, a monitor putting back what a dead one was reporting) runs
in a forked child whose ``BLUEQUE_CRASH_AT`` (see
django_blueque/protocol/faults.py) makes it exit before, or after, its k-th
Redis call. By default every k of every operation
is tried, both sides; at full size, 1,000 random crash points per operation.

After each crash, every task id is in exactly one place (the pending list, a
reserved list, the scheduled set, the complete or failed list, a reported
set, or a monitor's list while it reports), and its hash agrees: its status,
its listener, and for a started task its one member of the started set.
Then the recovery a deployment runs (a recovery watch judging the dead
listener, a monitor putting back a dead monitor's tasks, a scheduler's tick,
a burst of the fork runner, a burst of a monitor) must bring every task to
complete or failed, reported, with nothing left in any reserved list,
started set, task heartbeat, monitor's list or retrying list.

The watches judge the dead by a clock the test moves (their ``clock``), so
nothing waits out a timeout: a verdict takes the same polls as in a
deployment, without the seconds between them.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from django_blueque.protocol import (
    COMPLETE,
    FAILED,
    Client,
    Every,
    Monitor,
    PeriodicTask,
    Scheduler,
    Task,
    faults,
    forking_runner,
    keys,
    liveness,
    work,
)
from django_blueque.protocol.errors import Retry
from django_blueque.protocol.listener import Listener
from django_blueque.protocol.liveness import Run, beat_interval
from django_blueque.protocol.monitor import RETRYING, source
from django_blueque.protocol.processes import process_token
from django_blueque.protocol.processor import Processor
from django_blueque.protocol.queue import new_task_id
from django_blueque.protocol.replies import string_or_none
from django_blueque.protocol.scripts import SOURCES
from tests.protocol.forked import run_forked
from tests.reliability.figures import Row, full_size, record
from tests.reliability.invariants import (
    QUEUE,
    problems_after_crash,
    problems_after_recovery,
)

#: The listeners' timeout: recovery judges by it (with a clock the test moves).
T = 1.0
#: The monitors' timeout: long, so that no monitor beats again within one operation, whatever the machine's speed.
MONITOR_T = 60.0
#: Far enough ahead that a scheduled task is never due on its own; the test moves it when it chooses.
ETA = time.time() + 3600
DUE = ETA + 1
POINTS_AT_FULL_SIZE = 1_000


class Clock:
    """A monotonic clock the test moves: a watch's verdict without waiting out the timeout."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Journal:
    """Each run of a task's code, one line per run, in a file (runs happen in forked processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def note(self, task: Task) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, f"{task.id}\n".encode())
        finally:
            os.close(descriptor)

    def runs(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for line in self.path.read_text().split():
            counts[line] += 1
        return counts

    def clear(self) -> None:
        self.path.write_text("")


@dataclass
class Scene:
    """What an operation's setup left: the task ids it concerns, and what its child needs."""

    ids: list[str]
    tasks: list[Task] = field(default_factory=list)
    listener: str = ""
    runs: list[Run] = field(default_factory=list)


@dataclass(frozen=True)
class Operation:
    name: str
    #: In the test process, without fault injection: the state the operation starts from.
    setup: Callable[[Client, Journal], Scene]
    #: In the child, on a client whose calls are counted.
    body: Callable[[Client, Scene, Journal], None]


# -- The tasks' code ----------------------------------------------------------------------------


def done(journal: Journal) -> Callable[[Task], str]:
    def callback(task: Task) -> str:
        journal.note(task)
        return "done"

    return callback


def broken(journal: Journal) -> Callable[[Task], str]:
    def callback(task: Task) -> str:
        journal.note(task)
        raise RuntimeError("broken")

    return callback


def again(journal: Journal) -> Callable[[Task], str]:
    def callback(task: Task) -> str:
        journal.note(task)
        raise Retry(0.0)

    return callback


def ignore(*_: object) -> None:
    pass


# -- The operations -------------------------------------------------------------------------------


def enqueued(client: Client, count: int) -> list[str]:
    queue = client.get_queue(QUEUE)
    return [queue.enqueue("x") for _ in range(count)]


def taken(client: Client, count: int) -> Scene:
    """``count`` tasks reserved by a listener that beat once, then died (it never beats again)."""
    ids = enqueued(client, count)
    listener = client.get_listener(QUEUE, heartbeat=True, timeout=T)
    listener.beat()
    tasks = [listener.listen(timeout=0) for _ in ids]
    assert all(task is not None for task in tasks)
    return Scene(ids, tasks=[task for task in tasks if task is not None], listener=listener.id)


def started(client: Client, count: int) -> Scene:
    scene = taken(client, count)
    for task in scene.tasks:
        processor = client.get_processor(task)
        processor.start()
        assert processor.attempt is not None
        scene.runs.append(Run(task.id, os.getpid(), processor.attempt))
    return scene


def setup_enqueue(client: Client, journal: Journal) -> Scene:
    return Scene([new_task_id() for _ in range(3)])


def enqueue(client: Client, scene: Scene, journal: Journal) -> None:
    for task_id in scene.ids:
        client.get_queue(QUEUE).enqueue("x", task_id=task_id)


def setup_take(client: Client, journal: Journal) -> Scene:
    return Scene(enqueued(client, 2))


def take(client: Client, scene: Scene, journal: Journal) -> None:
    """What a worker's listener does: register, beat, then take a task, and another."""
    listener = client.get_listener(QUEUE, heartbeat=True, timeout=T)
    listener.beat()
    for _ in scene.ids:
        assert listener.listen(timeout=0) is not None


def run_taken(client: Client, listener: Listener, taken: tuple[str, str], journal: Journal) -> Processor | None:
    """Reserve and start a task ``take`` moved, for this process, as a runner does; None if not to run."""
    started = listener.start_taken(taken, os.getpid(), process_token(os.getpid()))
    if started is None:
        return None
    task, attempt = started
    processor = client.get_processor(task)
    processor.adopt(os.getpid(), attempt)
    return processor


def take_start_finish(client: Client, scene: Scene, journal: Journal) -> None:
    """A fork-mode worker's round trips: take, reserve and start in one script, record; then its close."""
    listener = client.get_listener(QUEUE, heartbeat=True, timeout=T)
    listener.beat()
    for _ in scene.ids:
        taken = listener.take(0)
        assert taken is not None
        processor = run_taken(client, listener, taken, journal)
        assert processor is not None
        work.record(processor, work.outcome_of(processor.task, done(journal), own_interrupts=False))
    forking_runner.close(listener)


def finish_and_take_next(client: Client, scene: Scene, journal: Journal) -> None:
    """A prefork child's round trips: each outcome's script takes the next task; then its close."""
    listener = client.get_listener(QUEUE, heartbeat=True, timeout=T)
    listener.beat()
    taken = listener.take(0)
    while taken is not None:
        processor = run_taken(client, listener, taken, journal)
        assert processor is not None
        then = listener.next_task()
        outcome = work.outcome_of(processor.task, done(journal), own_interrupts=False)
        work.record(processor, outcome, then=then, lost=listener.unsettle)
        taken = then.taken
    forking_runner.close(listener)


def setup_taken(client: Client, journal: Journal) -> Scene:
    return taken(client, 2)


def start(client: Client, scene: Scene, journal: Journal) -> None:
    for task in scene.tasks:
        client.get_processor(task).start()


def setup_started(client: Client, journal: Journal) -> Scene:
    return started(client, 2)


def heartbeat(client: Client, scene: Scene, journal: Journal) -> None:
    """The runner's beat (its listener, and its children's runs), then a task process's own beat."""
    registries = [(keys.listeners(QUEUE), QUEUE)]
    liveness.beat(client.scripts, beater=scene.listener, owner=scene.listener, timeout=T, registries=registries)
    liveness.beat(client.scripts, beater=scene.listener, owner=scene.listener, timeout=T, runs=scene.runs)
    liveness.beat(client.scripts, beater=None, owner=scene.listener, runs=scene.runs[:1])


def complete(client: Client, scene: Scene, journal: Journal) -> None:
    for task in scene.tasks:
        work.perform(client, task, done(journal))


def fail(client: Client, scene: Scene, journal: Journal) -> None:
    for task in scene.tasks:
        work.perform(client, task, broken(journal))


def retry(client: Client, scene: Scene, journal: Journal) -> None:
    for task in scene.tasks:
        work.perform(client, task, again(journal))


def setup_schedule(client: Client, journal: Journal) -> Scene:
    return Scene([new_task_id() for _ in range(2)])


def schedule(client: Client, scene: Scene, journal: Journal) -> None:
    queue = client.get_queue(QUEUE)
    for task_id in scene.ids:
        queue.schedule("x", ETA, task_id=task_id)
    assert queue.enqueue_due_tasks(now=DUE) == len(scene.ids)


EVERY_MINUTE = PeriodicTask("every minute", QUEUE, lambda: "x", Every(60))


def setup_scheduled(client: Client, journal: Journal) -> Scene:
    """Two scheduled tasks, and a periodic task whose last occurrence was two minutes before they are due."""
    queue = client.get_queue(QUEUE)
    scene = Scene([queue.schedule("x", ETA) for _ in range(2)])
    assert Scheduler(client, periodic=[EVERY_MINUTE]).tick(now=DUE - 120).periodic == {"every minute": "recorded"}
    return scene


def scheduler_tick(client: Client, scene: Scene, journal: Journal) -> None:
    """Move the due tasks, and enqueue the periodic task's new occurrence."""
    report = Scheduler(client, periodic=[EVERY_MINUTE], listener_timeout=T).tick(now=DUE)
    assert (report.moved, report.periodic) == (len(scene.ids), {"every minute": "enqueued"})


def setup_dead_listener(client: Client, journal: Journal) -> Scene:
    """A dead listener holding a reserved task, a started one, and one taken but never marked reserved."""
    scene = taken(client, 2)
    processor = client.get_processor(scene.tasks[1])
    processor.start()
    unmarked = enqueued(client, 1)[0]
    assert client.redis.lmove(keys.pending(QUEUE), keys.reserved(QUEUE, scene.listener), "RIGHT", "LEFT") == unmarked
    scene.ids.append(unmarked)
    return scene


def watch_listeners(client: Client) -> None:
    """A recovery watch, polled until it has seen the listeners silent for their timeout, and acted."""
    clock = Clock()
    recovery = liveness.Recovery(client.redis, client.scripts, [QUEUE], timeout=T, clock=clock)
    for _ in range(round(T / beat_interval(T)) + 1):
        recovery.poll()
        clock.now += recovery.interval


def recover(client: Client, scene: Scene, journal: Journal) -> None:
    watch_listeners(client)


def setup_finished(client: Client, journal: Journal) -> Scene:
    """Two tasks complete, one failed, one sent back to be retried: what a monitor reports."""
    scene = taken(client, 4)
    for task, callback in zip(scene.tasks, (done, done, broken, again), strict=True):
        work.perform(client, task, callback(journal))
    return scene


def new_monitor(client: Client, clock: Callable[[], float] = time.monotonic) -> Monitor:
    return Monitor(
        client,
        [QUEUE],
        on_complete=ignore,
        on_failed=ignore,
        on_retrying=ignore,
        listener_timeout=MONITOR_T,
        clock=clock,
    )


def report(client: Client, scene: Scene, journal: Journal) -> None:
    monitor = new_monitor(client)
    monitor.register()
    assert monitor.tick() == len(scene.ids)


def setup_dead_monitor(client: Client, journal: Journal) -> Scene:
    """What a monitor reports, taken by one that died before it reported any."""
    scene = setup_finished(client, journal)
    dead = new_monitor(client)
    dead.register()
    for status in (RETRYING, COMPLETE, FAILED):
        client.scripts.monitor_take(keys=[source(QUEUE, status), keys.monitoring(dead.id)], args=[QUEUE, status, 100])
    return scene


def watch_monitors(client: Client) -> None:
    """A monitor's watch of the others, polled until it has seen them silent for their timeout, and acted."""
    clock = Clock()
    restorer = new_monitor(client, clock)
    for _ in range(round(MONITOR_T / beat_interval(MONITOR_T)) + 1):
        restorer.restore_dead_monitors()
        clock.now += beat_interval(MONITOR_T)


def restore(client: Client, scene: Scene, journal: Journal) -> None:
    watch_monitors(client)


OPERATIONS = [
    Operation("enqueue", setup_enqueue, enqueue),
    Operation("take", setup_take, take),
    Operation("start", setup_taken, start),
    Operation("take, start and finish", setup_take, take_start_finish),
    Operation("finish and take the next", setup_take, finish_and_take_next),
    Operation("heartbeat", setup_started, heartbeat),
    Operation("complete", setup_taken, complete),
    Operation("fail", setup_taken, fail),
    Operation("retry", setup_taken, retry),
    Operation("schedule", setup_schedule, schedule),
    Operation("scheduler tick", setup_scheduled, scheduler_tick),
    Operation("recovery", setup_dead_listener, recover),
    Operation("monitor report", setup_finished, report),
    Operation("monitor restore", setup_dead_monitor, restore),
]


# -- What a deployment does next ------------------------------------------------------------------


def recover_everything(redis_url: str, journal: Journal) -> None:
    """A worker's recovery watch, a monitor's watch of the others, a scheduler, a worker, a monitor.

    In a child of its own, so that the wait for it is bounded whatever happens.
    """

    def deployment() -> None:
        client = Client(redis_url)
        watch_listeners(client)
        watch_monitors(client)
        Scheduler(client, listener_timeout=T).tick(now=DUE)
        forking_runner.run(client, QUEUE, done(journal), 4, burst=True, listener_timeout=T)
        new_monitor(client).run(burst=True)

    assert run_forked(deployment, timeout=60) == 0, "the recovery failed"


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client that decodes replies, to look at what Redis holds."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


# -- The sweep ------------------------------------------------------------------------------------


@dataclass
class Tally:
    tasks: int = 0
    crashes: int = 0
    extra_runs: int = 0
    #: Task ids found in no place, in several, with a hash that disagrees, or stuck after recovery.
    lost: int = 0
    #: Per operation: crash point -> what was wrong.
    wrong: dict[str, dict[str, str]] = field(default_factory=dict)


def expected_runs(db: redis.Redis, task_id: str) -> int:
    """How many runs a task should have had: one, and one more per retry it asked for."""
    errors = string_or_none(db.hget(keys.task(task_id), "errors"))
    return 1 + (len(json.loads(errors)) if errors else 0)


def run_once(
    redis_url: str, db: redis.Redis, journal: Journal, operation: Operation, crash_at: str, tally: Tally
) -> int:
    """Set up, run the operation with ``crash_at``, check, recover, check; return the child's exit code."""
    db.flushdb()
    journal.clear()
    client = Client(redis_url)
    try:
        scene = operation.setup(client, journal)
        code = run_forked(lambda: operation.body(Client(redis_url), scene, journal), crash_at=crash_at)
        wrong = {task_id: f"after the crash: {what}" for task_id, what in problems_after_crash(db, scene.ids).items()}
        recover_everything(redis_url, journal)
        for task_id, what in problems_after_recovery(db, scene.ids).items():
            wrong.setdefault(task_id, f"after recovery: {what}")
        runs = journal.runs()
        tally.extra_runs += sum(
            max(0, runs[task_id] - expected_runs(db, task_id)) for task_id in scene.ids if runs.get(task_id)
        )
    finally:
        client.close()
    tally.tasks += len(scene.ids)
    if code == faults.CRASH_EXIT:
        tally.crashes += 1
    tally.lost += len(wrong)
    if wrong:
        tally.wrong.setdefault(operation.name, {})[crash_at] = "; ".join(f"{k}: {v}" for k, v in wrong.items())
    return code


def count_calls(redis_url: str, db: redis.Redis, journal: Journal, operation: Operation) -> int:
    """How many Redis calls the operation makes, counted in a child that does not crash."""
    db.flushdb()
    client = Client(redis_url)
    read, write = os.pipe()
    try:
        scene = operation.setup(client, journal)

        def counted() -> None:
            operation.body(Client(redis_url), scene, journal)
            os.write(write, str(faults.calls()).encode())

        assert run_forked(counted, crash_at="never") == 0, f"{operation.name} failed without a crash"
    finally:
        client.close()
        os.close(write)
    calls = int(os.read(read, 20))
    os.close(read)
    return calls


def test_a_crash_between_any_two_redis_calls_leaves_each_task_in_one_state_and_recovery_finishes_it(
    redis_url: str, redis_db: redis.Redis, tmp_path: Path
) -> None:
    db = redis_db
    started_at = time.monotonic()
    for text in SOURCES.values():
        db.script_load(text)  # or a script's first call would cost a failed EVALSHA and a SCRIPT LOAD
    journal = Journal(tmp_path / "runs")
    tally = Tally()
    rng = random.Random(3)
    calls = {}
    for operation in OPERATIONS:
        calls[operation.name] = count = count_calls(redis_url, db, journal, operation)
        assert count > 0
        # No crash: the operation makes exactly that many calls, and ends well.
        assert run_once(redis_url, db, journal, operation, f"before:{count + 1}", tally) == 0, operation.name
        if full_size():
            points = [(rng.choice(("before", "after")), rng.randint(1, count)) for _ in range(POINTS_AT_FULL_SIZE)]
        else:
            points = [(side, k) for k in range(1, count + 1) for side in ("before", "after")]
        for side, k in points:
            code = run_once(redis_url, db, journal, operation, f"{side}:{k}", tally)
            assert code == faults.CRASH_EXIT, f"{operation.name}, {side}:{k}: the child exited with {code}"
    record(
        Row(
            scenario="3. a crash between any two Redis calls",
            tasks=tally.tasks,
            faults=tally.crashes,
            lost=tally.lost,
            overlapping=0,
            extra_runs=tally.extra_runs,
            wall=time.monotonic() - started_at,
            note=f"{len(OPERATIONS)} operations, {sum(calls.values())} crash points: "
            + ", ".join(f"{name} {count}" for name, count in calls.items()),
        )
    )
    assert not tally.wrong, "\n".join(
        f"{name}, {point}: {what}" for name, found in tally.wrong.items() for point, what in list(found.items())[:5]
    )


def test_the_census_sees_a_task_lost_in_two_places_or_disagreeing(redis_url: str, redis_db: redis.Redis) -> None:
    """The check above has teeth: each way a split write could go wrong is reported."""
    db = redis_db
    for task_id, status in (("nowhere", "pending"), ("twice", "pending"), ("wrong", "pending"), ("ghost", "started")):
        db.hset(keys.task(task_id), mapping={"status": status, "queue": QUEUE})
    db.lpush(keys.pending(QUEUE), "twice")
    db.lpush(keys.complete(QUEUE), "twice", "wrong")
    db.sadd(keys.started(QUEUE), keys.started_member("gone", 1, "ghost"))
    db.lpush(keys.reserved(QUEUE, "gone"), "ghost")
    assert sorted(problems_after_crash(db, [])) == ["ghost", "nowhere", "twice", "wrong"]
    db.hset(keys.task("waiting"), mapping={"status": "pending", "queue": QUEUE})
    db.lpush(keys.pending(QUEUE), "waiting")
    assert "waiting" not in problems_after_crash(db, [])
    assert "stuck" in problems_after_recovery(db, [])["waiting"]
