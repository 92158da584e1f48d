"""Read-only views of queues for dashboards and the command line.

Every function costs a fixed number of round trips and work proportional to
what it returns (a page of ids, a row per queue), never to the length of a
queue. Reserved and started tasks are the exception that proves the rule:
they are found through the listeners' reserved lists, so the work is
proportional to the number of tasks running, which the workers' slots bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NamedTuple

from . import keys
from .defaults import DEFAULT_LISTENER_TIMEOUT
from .identity import MONITOR, SCHEDULER, parse_role_id
from .liveness import timeout_of
from .replies import optional_strings, string, string_set, strings
from .task import COMPLETE, FAILED, PENDING, RESERVED, SCHEDULED, STARTED, STATUSES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redis import Redis


@dataclass(frozen=True)
class QueueStats:
    """How many tasks a queue holds in each state, and how many listeners it has."""

    name: str
    pending: int
    scheduled: int
    reserved: int
    started: int
    complete: int
    failed: int
    listeners: int

    def counts(self) -> dict[str, int]:
        """The figures without the name, e.g. for JSON."""
        figures = asdict(self)
        del figures["name"]
        return figures


def queue_names(redis: Redis) -> list[str]:
    """Every queue Redis knows of (``blueque_queues``), sorted by name."""
    return sorted(strings(redis.zrange(keys.queues(), 0, -1)))


def queue_stats(redis: Redis, names: Iterable[str] | None = None) -> dict[str, QueueStats]:
    """Counts per state for the given queues (default: all). Three round trips."""
    names = queue_names(redis) if names is None else list(names)
    with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(keys.pending(name))
            pipe.zcard(keys.scheduled(name))
            pipe.scard(keys.started(name))
            pipe.llen(keys.complete(name))
            pipe.llen(keys.failed(name))
            pipe.smembers(keys.listeners(name))
            pipe.zcard(keys.reported(name, COMPLETE))
            pipe.zcard(keys.reported(name, FAILED))
        replies = pipe.execute()
    rows = [replies[i : i + 8] for i in range(0, len(replies), 8)]
    with redis.pipeline(transaction=False) as pipe:
        for name, row in zip(names, rows, strict=True):
            for listener_id in string_set(row[5]):
                pipe.llen(keys.reserved(name, listener_id))
        taken = iter(pipe.execute())
    stats = {}
    for name, (pending, scheduled, started, complete, failed, listeners, reported_complete, reported_failed) in zip(
        names, rows, strict=True
    ):
        # A reserved list holds a task from the moment it is taken until it
        # finishes, so it counts started tasks too.
        in_reserved_lists = sum(next(taken) for _ in listeners)
        stats[name] = QueueStats(
            name=name,
            pending=pending,
            scheduled=scheduled,
            reserved=max(in_reserved_lists - started, 0),
            started=started,
            # Finished tasks are in the list until a monitor reports them, then in the set.
            complete=complete + reported_complete,
            failed=failed + reported_failed,
            listeners=len(listeners),
        )
    return stats


def oldest_pending(redis: Redis, names: Iterable[str]) -> dict[str, float | None]:
    """When the next task to run on each queue was created (epoch seconds), or None. Two round trips."""
    names = list(names)
    with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.lindex(keys.pending(name), -1)
        heads = optional_strings(pipe.execute())
    with redis.pipeline(transaction=False) as pipe:
        for task_id in heads:
            if task_id is not None:
                pipe.hget(keys.task(task_id), "created")
        created = iter(optional_strings(pipe.execute()))
    oldest: dict[str, float | None] = {}
    for name, task_id in zip(names, heads, strict=True):
        value = next(created) if task_id is not None else None
        try:
            oldest[name] = float(value) if value is not None else None
        except ValueError:
            oldest[name] = None
    return oldest


def task_ids(redis: Redis, queue: str, status: str, offset: int = 0, count: int = 50) -> list[str]:
    """One page of the ids of ``queue``'s tasks in ``status``.

    Order: pending and scheduled tasks in the order they will run; complete
    and failed tasks newest first; reserved and started tasks by listener.
    """
    if status not in STATUSES:
        raise ValueError(f"Unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    if offset < 0 or count < 1:
        raise ValueError("offset must be >= 0 and count >= 1")
    last = offset + count - 1
    if status == PENDING:
        # The oldest task, next to run, is at the right-hand end.
        return list(reversed(strings(redis.lrange(keys.pending(queue), -1 - last, -1 - offset))))
    if status == SCHEDULED:
        return strings(redis.zrange(keys.scheduled(queue), offset, last))
    if status in (COMPLETE, FAILED):
        # Not yet reported (the list, newest first), then reported (newest first).
        key = keys.complete(queue) if status == COMPLETE else keys.failed(queue)
        ids = strings(redis.lrange(key, offset, last))
        if len(ids) == count:
            return ids
        skip = max(offset - int(redis.llen(key)), 0) if not ids else 0
        more = redis.zrevrange(keys.reported(queue, status), skip, skip + count - len(ids) - 1)
        return ids + strings(more)
    return _running_ids(redis, queue, status)[offset : last + 1]


def _running_ids(redis: Redis, queue: str, status: str) -> list[str]:
    listeners = sorted(string_set(redis.smembers(keys.listeners(queue))))
    with redis.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.started(queue))
        for listener_id in listeners:
            pipe.lrange(keys.reserved(queue, listener_id), 0, -1)
        started_members, *lists = pipe.execute()
    started = {keys.parse_started_member(member)[2] for member in string_set(started_members)}
    in_lists = [task_id for ids in lists for task_id in reversed(strings(ids))]
    if status == STARTED:
        return [task_id for task_id in in_lists if task_id in started]
    assert status == RESERVED
    return [task_id for task_id in in_lists if task_id not in started]


def per_minute(redis: Redis, queue: str) -> dict[str, list[int]]:
    """Tasks reported complete and failed in each of the last 60 minutes, oldest first.

    Counted by monitors as they report (:func:`keys.per_minute`), by the Redis
    server's clock; the last entry is the current minute so far. One round trip.
    """
    with redis.pipeline(transaction=False) as pipe:
        pipe.time()
        for status in (COMPLETE, FAILED):
            pipe.hgetall(keys.per_minute(queue, status))
        (seconds, _), *rings = pipe.execute()
    now = int(seconds) // 60
    counts: dict[str, list[int]] = {}
    for status, ring in zip((COMPLETE, FAILED), rings, strict=True):
        minutes = [0] * 60
        for value in ring.values():
            at, _, count = (value.decode() if isinstance(value, bytes) else value).partition(":")
            try:
                age = now - int(at)
                if 0 <= age < 60:
                    minutes[59 - age] = int(count)
            except ValueError:
                continue  # not ours: left alone
        counts[status] = minutes
    return counts


@dataclass(frozen=True)
class Beater:
    """A listener or monitor, as its heartbeat shows it (by the Redis server's clock)."""

    id: str
    #: The queues it listens on (none for a monitor).
    queues: tuple[str, ...]
    host: str | None
    pid: int | None
    #: Seconds since its last heartbeat; None if it never beat (Blueque 1.0.1's listeners).
    beat_age: float | None
    timeout: float
    #: Ids of the tasks in its reserved lists (reserved or started).
    tasks: tuple[str, ...]

    @property
    def alive(self) -> bool | None:
        """Whether it beat within its timeout; None when it never beats (its liveness cannot be told here)."""
        return None if self.beat_age is None else self.beat_age < self.timeout

    @property
    def state(self) -> str:
        """:attr:`alive` in a word: ``alive``, ``dead`` or ``unknown``."""
        return {True: "alive", False: "dead", None: "unknown"}[self.alive]


class Fleet(NamedTuple):
    """Every process that beats: the listeners of some queues, the monitors, the schedulers."""

    listeners: list[Beater]
    monitors: list[Beater]
    schedulers: list[Beater]


def beaters(redis: Redis, queues: Iterable[str]) -> Fleet:
    """The listeners of ``queues``, the monitors and the schedulers, with their heartbeats. Two round trips.

    The work grows with the number of listeners and of the tasks they hold
    (which their slots bound), not with the length of any queue.
    """
    names = list(queues)
    with redis.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.hgetall(keys.listener_timeouts())
        pipe.smembers(keys.monitors())
        pipe.smembers(keys.schedulers())
        for name in names:
            pipe.smembers(keys.listeners(name))
        (seconds, micros), published, monitor_ids, scheduler_ids, *members = pipe.execute()
    now = int(seconds) + int(micros) / 1_000_000
    timeouts = {string(name): string(value) for name, value in published.items()}
    queues_of: dict[str, list[str]] = {}
    for name, found in zip(names, members, strict=True):
        for listener in sorted(string_set(found)):
            queues_of.setdefault(listener, []).append(name)
    monitors = sorted(string_set(monitor_ids))
    schedulers = sorted(string_set(scheduler_ids))
    everyone = [*queues_of, *monitors, *schedulers]
    if not everyone:
        return Fleet([], [], [])
    with redis.pipeline(transaction=False) as pipe:
        pipe.zmscore(keys.heartbeats(), everyone)
        for listener, served in queues_of.items():
            for name in served:
                pipe.lrange(keys.reserved(name, listener), 0, -1)
        beats, *held = pipe.execute()
    scores = dict(zip(everyone, beats, strict=True))
    lists = iter(held)

    def beater(member: str, served: list[str], role: str = "") -> Beater:
        parsed = parse_role_id(role, member) if role else keys.parse_listener_id(member)
        score = scores.get(member)
        tasks = tuple(task_id for _ in served for task_id in reversed(strings(next(lists))))
        return Beater(
            id=member,
            queues=tuple(served),
            host=None if parsed is None else parsed[0],
            pid=None if parsed is None else parsed[1],
            beat_age=None if score is None else max(now - float(score), 0.0),
            timeout=timeout_of(timeouts.get(member), DEFAULT_LISTENER_TIMEOUT),
            tasks=tasks,
        )

    listeners = [beater(member, served) for member, served in queues_of.items()]
    return Fleet(
        listeners,
        [beater(member, [], MONITOR) for member in monitors],
        [beater(member, [], SCHEDULER) for member in schedulers],
    )
