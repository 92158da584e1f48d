"""Heartbeats, and recovery of the tasks of dead listeners on any host.

A listener run by a django-blueque runner beats (``blueque_heartbeats``)
four times per its listener timeout, which it publishes beside the beat
(``blueque_listener_timeouts``), and every running task's process beats too
(``blueque_task_heartbeats``). The score of a beat is the Redis server's
time, but nobody compares it with a clock: an observer (every worker, the
scheduler) watches the scores and judges a listener dead only when it has
itself seen the score stay the same, on its own monotonic clock, for that
listener's own timeout (:class:`Watch`). After any Redis error, a restart of
Redis (its ``run_id`` changes) or a gap in its own watching (the observer was
frozen, or slow), the observer forgets what it saw and starts watching
afresh, so a Redis outage, or a pause of the observer, is never taken for
the death of others.

For each listener judged dead, each task in its reserved list is:

- reserved but never started (or taken but never marked, see listener.py):
  put back in pending, at the front, counted in ``releases``;
- started, and its process still beats (the listener died, its child did
  not): left alone, to finish and record its outcome itself; a process that
  never beats (Blueque 1.0.1's) is looked up by pid on its own host instead;
- started, and its process is judged dead the same way: requeued with
  ``recoveries`` raised, or, past the maximum, failed with a "worker lost"
  error, so a task that kills its worker cannot take the fleet down one
  worker at a time.

Each step is one script that first checks that the heartbeats it was judged
by have not changed and that the task is still in the dead listener's list,
so a listener that beats again is whole again, and any number of observers
can recover at once. A listener's own heartbeat puts it back in its queues'
listener sets if a verdict took it out.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from . import keys
from .defaults import DEFAULT_LISTENER_TIMEOUT, DEFAULT_MAX_RECOVERIES, DEFAULT_MAX_RELEASES, MIN_LISTENER_TIMEOUT
from .identity import local_pid
from .processes import pid_alive, process_alive
from .replies import optional_strings, string, string_set, strings
from .task import STARTED

if TYPE_CHECKING:
    from redis import Redis

    from .scripts import Scripts

logger = logging.getLogger(__name__)


def beat_interval(timeout: float) -> float:
    """How often a listener with this timeout beats (and an observer watches)."""
    return timeout / 4


def reconnect_backoff_cap(timeout: float, cap: float = 5.0) -> float:
    """Longest wait between reconnection attempts: well under the listener timeout."""
    return min(cap, timeout / 8)


class Run(NamedTuple):
    """A task run that a heartbeat vouches for: the beat tells whether it is still ours."""

    task_id: str
    pid: int | None
    attempt: int


def beat(
    scripts: Scripts,
    *,
    beater: str | None,
    owner: str = "",
    timeout: float = DEFAULT_LISTENER_TIMEOUT,
    registries: Sequence[tuple[str, str]] = (),
    runs: Iterable[Run | str] = (),
) -> tuple[float, list[str]]:
    """Beat for ``beater`` (a listener or monitor id; ``None``: tasks only) and for ``runs``.

    ``registries`` are ``(set key, queue name or "")`` pairs the beater is put
    back in if a verdict took it out. A :class:`Run` is beaten only while the
    task is still that run of ``owner``'s; a bare task id always. Returns the
    server time and the ids of the runs taken over by another worker.
    """
    script_keys = [keys.heartbeats(), keys.task_heartbeats(), keys.listener_timeouts(), keys.queues()]
    script_keys += [key for key, _ in registries]
    args: list[str | int | float] = [beater or "", owner, timeout, len(registries), *(queue for _, queue in registries)]
    for run in runs:
        if isinstance(run, str):
            script_keys.append(keys.task(run))
            args += [run, "", ""]
        else:
            script_keys.append(keys.task(run.task_id))
            args += [run.task_id, "" if run.pid is None else run.pid, run.attempt]
    reply = strings(scripts.beat(keys=script_keys, args=args))
    return float(reply[0]), reply[1:]


def beat_listed(scripts: Scripts, registry: str, beater: str, timeout: float) -> None:
    """Beat for a process listed in one set of its kind (a monitor or a scheduler), rejoining it if needed."""
    beat(scripts, beater=beater, owner=beater, timeout=timeout, registries=[(registry, "")])


def unlist(redis: Redis, registry: str, beater: str) -> None:
    """Take a process that beats out of its set, with its heartbeat and published timeout, at once."""
    with redis.pipeline(transaction=True) as pipe:
        pipe.srem(registry, beater)
        pipe.zrem(keys.heartbeats(), beater)
        pipe.hdel(keys.listener_timeouts(), beater)
        pipe.execute()


class Watch:
    """What one process has seen of the others' heartbeats, timed on its own monotonic clock.

    :meth:`observe` records each heartbeat value and when it was first seen;
    :meth:`silent_for` says how long a value has been seen unchanged. The
    record starts afresh (:meth:`forget`) after an error, when Redis is a
    different server process (restarted), or when two observations are more
    than ``max_gap`` apart: only what was watched continuously counts.
    """

    def __init__(self, max_gap: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_gap = max_gap
        self._clock = clock
        self._seen: dict[Hashable, tuple[float | None, float]] = {}
        self._server: str | None = None
        self._last: float | None = None

    def now(self) -> float:
        return self._clock()

    def forget(self) -> None:
        """Start watching afresh (call after any Redis error)."""
        self._seen.clear()
        self._last = None

    def observe(self, values: Mapping[Hashable, float | None], server: str, started: float) -> None:
        """Record ``values`` read by an observation that began at ``started`` and just ended."""
        ended = self._clock()
        gap = started - self._last if self._last is not None else None
        if server != self._server or gap is None or gap > self.max_gap or ended - started > self.max_gap:
            self._seen.clear()
            self._server = server
        self._last = ended
        for member, value in values.items():
            seen = self._seen.get(member)
            if seen is None or seen[0] != value:
                # Written no later than now: counting from now never overstates a silence.
                self._seen[member] = (value, ended)
        for member in set(self._seen) - set(values):
            del self._seen[member]

    def silent_for(self, member: Hashable) -> float:
        """Seconds ``member``'s value has been seen unchanged (0 if never seen)."""
        seen = self._seen.get(member)
        return 0.0 if seen is None or self._last is None else self._last - seen[1]


def timeout_of(published: str | None, default: float) -> float:
    """A listener's timeout as published in ``blueque_listener_timeouts``, or ``default``."""
    try:
        value = float(published) if published else default
    except ValueError:
        return default
    return value if value > 0 else default


class Recovery:
    """Watches the listeners of some queues and recovers the tasks of those it judges dead.

    Call :meth:`poll` every :func:`beat_interval` of the shortest timeout
    in play, and :meth:`forget` after any Redis error. Each poll costs two
    round trips, plus the recovery of what is dead.
    """

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        queues: Sequence[str],
        *,
        timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
        exclude: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self.queues = list(queues)
        self._timeout = timeout
        self._max_recoveries = max_recoveries
        self._max_releases = max_releases
        self._exclude = set(exclude)
        self.interval = beat_interval(timeout)
        self.watch = Watch(max_gap=2.5 * self.interval, clock=clock)
        self._timeouts: dict[str, str] = {}
        self._task_beats: dict[str, float] = {}

    def forget(self) -> None:
        self.watch.forget()

    def poll(self) -> Counter[str]:
        """Watch once; recover the tasks of the listeners judged dead; count what happened.

        The counter's keys: ``released`` (back to pending), ``requeued`` (lost,
        run again), ``failed`` (given back or lost too often), ``rejected``
        (malformed), ``running`` (left to finish), ``dropped`` (stray ids
        removed), ``gone`` (taken out of the list by someone else meanwhile),
        ``listeners`` (dead listeners deregistered).
        """
        started = self.watch.now()
        with self._redis.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.smembers(keys.listeners(queue))
            pipe.zrange(keys.task_heartbeats(), 0, -1, withscores=True)
            pipe.hgetall(keys.listener_timeouts())
            pipe.info("server")
            *members, task_beats, timeouts, info = pipe.execute()
        listeners = {
            queue: sorted(string_set(found) - self._exclude) for queue, found in zip(self.queues, members, strict=True)
        }
        everyone = sorted(set().union(*listeners.values()))
        beats = dict(zip(everyone, self._redis.zmscore(keys.heartbeats(), everyone), strict=True)) if everyone else {}
        self._task_beats = {string(task_id): float(score) for task_id, score in task_beats}
        self._timeouts = {string(k): string(v) for k, v in timeouts.items()}
        values: dict[Hashable, float | None] = {("listener", name): beat for name, beat in beats.items()}
        values.update((("task", task_id), score) for task_id, score in self._task_beats.items())
        self.watch.observe(values, str(info.get("run_id", "")), started)
        # Watch at the pace of the shortest timeout in play, or a gap would
        # make the watch start afresh before it could judge that listener.
        shortest = min([self._timeout, *(self.timeout_of(name) for name in everyone)])
        self.interval = beat_interval(max(shortest, MIN_LISTENER_TIMEOUT))
        self.watch.max_gap = 2.5 * self.interval
        counts: Counter[str] = Counter()
        for queue, names in listeners.items():
            for name in names:
                judged = self._judge(name, beats.get(name))
                if judged is not None:
                    counts += self.recover_listener(queue, name, judged)
        return counts

    def timeout_of(self, listener: str) -> float:
        return timeout_of(self._timeouts.get(listener), self._timeout)

    def _judge(self, listener: str, beat: float | None) -> str | None:
        """The heartbeat a dead listener was judged by ('' for none), or None while it lives."""
        if beat is None and listener not in self._timeouts:
            # A listener that never beats (Blueque 1.0.1's): 1.0.1's rule.
            pid = local_pid(listener)
            if pid is None or pid_alive(pid):
                return None
            return ""
        if self.watch.silent_for(("listener", listener)) < self.timeout_of(listener):
            return None
        return "" if beat is None else repr(beat)

    def recover_listener(self, queue: str, listener: str, judged: str = "*") -> Counter[str]:
        """Recover the tasks in one listener's reserved list, judged dead by heartbeat ``judged``.

        ``judged="*"`` skips the checks that it is still silent: a listener
        starting up uses it on a list left by an earlier process with its id.
        """
        counts: Counter[str] = Counter()
        reserved = keys.reserved(queue, listener)
        on_this_host = local_pid(listener) is not None
        timeout = self.timeout_of(listener)
        for task_id in reversed(strings(self._redis.lrange(reserved, 0, -1))):
            status, pid, token = optional_strings(
                self._redis.hmget(keys.task(task_id), ["status", "pid", "process_token"])
            )
            task_judged = ""
            if status == STARTED and judged != "*":
                task_beat = self._task_beats.get(task_id)
                if task_beat is not None:
                    if self.watch.silent_for(("task", task_id)) < timeout:
                        counts["running"] += 1
                        continue
                    task_judged = repr(task_beat)
                elif on_this_host and process_alive(pid, token):
                    # A process that never beats (Blueque 1.0.1's): ask the OS.
                    counts["running"] += 1
                    continue
            outcome = recover_task(
                self._scripts,
                queue,
                listener,
                task_id,
                judged=judged,
                task_judged=task_judged,
                reason=f"listener {listener} stopped answering",
                max_recoveries=self._max_recoveries,
                max_releases=self._max_releases,
            )
            if outcome == "alive":
                return counts
            counts[outcome] += 1
            if outcome not in ("gone", "running"):
                logger.warning("Task %s of dead listener %s on queue %s: %s", task_id, listener, queue, outcome)
        if judged != "*" and self._deregister_dead(queue, listener, reserved, judged):
            counts["listeners"] += 1
            logger.warning("Deregistered dead listener %s from queue %s", listener, queue)
        return counts

    def _deregister_dead(self, queue: str, listener: str, reserved: str, judged: str) -> bool:
        # With the other queues' sets: a dead listener listed on none of them loses its
        # heartbeat and timeout too. One more round trip, for a dead listener only.
        queues = strings(self._redis.zrange(keys.queues(), 0, -1))
        others = [keys.listeners(name) for name in queues if name != queue]
        script_keys = [keys.listeners(queue), keys.queues(), reserved, keys.heartbeats(), keys.listener_timeouts()]
        return bool(self._scripts.deregister(keys=[*script_keys, *others], args=[listener, queue, judged]))


def recover_task(
    scripts: Scripts,
    queue: str,
    listener: str,
    task_id: str,
    *,
    judged: str,
    task_judged: str,
    reason: str,
    max_recoveries: int,
    max_releases: int,
) -> str:
    """Give back one task of a listener judged dead by heartbeat ``judged`` (its run's by ``task_judged``).

    The script's word: ``released``, ``requeued``, ``failed``, ``rejected``,
    ``dropped``, ``gone`` (no longer in the listener's list), ``alive`` (the
    listener beat since) or ``running`` (the run beat since). ``judged="*"``
    skips both heartbeat checks.
    """
    return string(
        scripts.recover(
            keys=[
                keys.task(task_id),
                keys.pending(queue),
                keys.failed(queue),
                keys.reserved(queue, listener),
                keys.started(queue),
                keys.task_heartbeats(),
                keys.heartbeats(),
            ],
            args=[
                task_id,
                listener,
                max_recoveries,
                max_releases,
                reason,
                time.time(),
                keys.channel(queue),
                judged,
                task_judged,
            ],
        )
    )


def prune_heartbeats(redis: Redis, older_than: float) -> int:
    """Forget heartbeats older than ``older_than`` seconds of ids nothing lists any more.

    A listener still in a queue's listener set, or a monitor or scheduler
    still in its set, keeps its heartbeat however old: recovery may still
    need to judge it (and the admin shows it).
    """
    seconds, micros = redis.time()
    now = int(seconds) + int(micros) / 1_000_000
    old = strings(redis.zrangebyscore(keys.heartbeats(), "-inf", now - older_than, start=0, num=1000))
    if not old:
        return 0
    queues = strings(redis.zrange(keys.queues(), 0, -1))
    with redis.pipeline(transaction=False) as pipe:
        for member in old:
            pipe.sismember(keys.monitors(), member)
            pipe.sismember(keys.schedulers(), member)
            for queue in queues:
                pipe.sismember(keys.listeners(queue), member)
        listed = pipe.execute()
    width = len(queues) + 2
    gone = [member for i, member in enumerate(old) if not any(listed[i * width : (i + 1) * width])]
    if not gone:
        return 0
    with redis.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.heartbeats(), *gone)
        pipe.hdel(keys.listener_timeouts(), *gone)
        removed, _ = pipe.execute()
    return int(removed)
