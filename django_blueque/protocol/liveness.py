"""Heartbeats, and recovery of the tasks of dead listeners on any host.

A listener run by a django-blueque runner beats (``blueque_heartbeats``)
every quarter of the listener timeout, and every running task's process
beats too (``blueque_task_heartbeats``), on the Redis server's clock. Any
live worker, and the scheduler, call :func:`recover` now and then. For each
listener of the queues it serves that is dead (its heartbeat older than the
timeout; for a listener that never beats, Blueque 1.0.1's rule: same host,
pid gone), each task in its reserved list is:

- reserved but never started (or taken but never marked, see listener.py):
  put back in pending, at the front, not counted;
- started, and its process still beats (the listener died, its child did
  not): left alone, to finish and record its outcome itself; a process that
  never beats (Blueque 1.0.1's) is looked up by pid on its own host instead;
- started, and its process is gone: requeued with ``recoveries`` raised, or,
  past the maximum, failed with a "worker lost" error, so a task that kills
  its worker cannot take the fleet down one worker at a time.

Every step is one script that first checks the task is still in the dead
listener's list, so any number of workers can recover at once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import keys
from .listener import DEFAULT_LISTENER_TIMEOUT, DEFAULT_MAX_RECOVERIES, hostname, parse_listener_id
from .processes import pid_alive, process_alive
from .replies import optional_strings, string, string_set, strings
from .task import STARTED

if TYPE_CHECKING:
    from redis import Redis

    from .scripts import Scripts

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_LISTENER_TIMEOUT", "DEFAULT_MAX_RECOVERIES", "beat", "prune_heartbeats", "recover"]


def beat(redis: Redis, scripts: Scripts, listener_id: str | None, task_ids: Iterable[str] = ()) -> float:
    """Record a heartbeat for a listener and for tasks its processes run; returns server time."""
    now = scripts.beat(keys=[keys.heartbeats(), keys.task_heartbeats()], args=[listener_id or "", *task_ids])
    return float(string(now))


def recover(
    redis: Redis,
    scripts: Scripts,
    queues: Iterable[str],
    *,
    timeout: float = DEFAULT_LISTENER_TIMEOUT,
    max_recoveries: int = DEFAULT_MAX_RECOVERIES,
    exclude: Iterable[str] = (),
) -> Counter[str]:
    """Recover the tasks of dead listeners of ``queues``; count what happened to each task.

    The counter's keys: ``released`` (back to pending), ``requeued`` (lost,
    run again), ``failed`` (lost too often), ``running`` (left to finish),
    ``dropped`` (stray ids removed), ``listeners`` (dead listeners
    deregistered).
    """
    skip = set(exclude)
    counts: Counter[str] = Counter()
    for queue in queues:
        listeners = sorted(string_set(redis.smembers(keys.listeners(queue))) - skip)
        if not listeners:
            continue
        with redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(keys.heartbeats(), listeners)
            pipe.time()
            beats, (seconds, micros) = pipe.execute()
        now = int(seconds) + int(micros) / 1_000_000
        for listener_id, last_beat in zip(listeners, beats, strict=True):
            if last_beat is not None:
                if now - float(last_beat) <= timeout:
                    continue
            else:
                parsed = parse_listener_id(listener_id)
                if parsed is None or parsed[0] != hostname() or pid_alive(parsed[1]):
                    continue
            counts += recover_listener(
                redis, scripts, queue, listener_id, timeout=timeout, max_recoveries=max_recoveries
            )
    return counts


def recover_listener(
    redis: Redis,
    scripts: Scripts,
    queue: str,
    listener_id: str,
    *,
    timeout: float,
    max_recoveries: int,
    force: bool = False,
) -> Counter[str]:
    """Recover the tasks in one listener's reserved list (see :func:`recover`).

    ``force`` skips the check that the listener is still silent: a listener
    starting up uses it on a list left by an earlier process with its id.
    """
    counts: Counter[str] = Counter()
    reserved = keys.reserved(queue, listener_id)
    parsed = parse_listener_id(listener_id)
    on_this_host = parsed is not None and parsed[0] == hostname()
    for task_id in reversed(strings(redis.lrange(reserved, 0, -1))):
        status, pid, token = optional_strings(redis.hmget(keys.task(task_id), ["status", "pid", "process_token"]))
        # Processes that never beat (Blueque 1.0.1's): on their host, ask the OS.
        alive = status == STARTED and on_this_host and process_alive(pid, token)
        outcome = string(
            scripts.recover(
                keys=[
                    keys.task(task_id),
                    keys.pending(queue),
                    keys.failed(queue),
                    reserved,
                    keys.started(queue),
                    keys.task_heartbeats(),
                    keys.heartbeats(),
                ],
                args=[
                    task_id,
                    listener_id,
                    max_recoveries,
                    f"listener {listener_id} stopped answering",
                    time.time(),
                    keys.channel(queue),
                    timeout,
                    "1" if alive else "0",
                    "1" if force else "0",
                ],
            )
        )
        if outcome == "alive":
            return counts
        counts[outcome] += 1
        if outcome in ("released", "requeued", "failed"):
            logger.warning("Task %s of dead listener %s on queue %s: %s", task_id, listener_id, queue, outcome)
    if not force and scripts.deregister(
        keys=[keys.listeners(queue), keys.queues(), reserved], args=[listener_id, queue]
    ):
        counts["listeners"] += 1
        logger.warning("Deregistered dead listener %s from queue %s", listener_id, queue)
    return counts


def prune_heartbeats(redis: Redis, older_than: float) -> int:
    """Forget heartbeats older than ``older_than`` seconds (of listeners long gone)."""
    seconds, micros = redis.time()
    now = int(seconds) + int(micros) / 1_000_000
    return int(redis.zremrangebyscore(keys.heartbeats(), "-inf", now - older_than))
