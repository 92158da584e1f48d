"""The entry point: a connection to Redis and the objects built on it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import faults, introspection, keys, liveness, operations
from .defaults import DEFAULT_BLOCK_TIMEOUT, DEFAULT_LISTENER_TIMEOUT, DEFAULT_MAX_RECOVERIES, DEFAULT_MAX_RELEASES
from .listener import Listener
from .processor import Processor
from .queue import Queue
from .replies import fields
from .scripts import Scripts
from .task import Task


class Client:
    """A connection to a Blueque system.

    ``Client("redis://host:port/db")`` as in Blueque 1.0.1, or
    ``Client(hostname="localhost", port=6379, db=0)``, or
    ``Client(redis=existing_client)`` to share a ``redis.Redis`` and its
    connection pool (decoding responses or not). Extra keyword arguments go
    to ``redis.Redis``. No connection is opened until the first command.

    Commands are never resent by redis-py on its own: a move from one list to
    another whose reply was lost would move a second task when resent, while
    the first stayed behind. The protocol retries what is safe to retry
    itself. A client built here has redis-py's retries turned off; one passed
    in must have them off too (``retry=Retry(NoBackoff(), 0)``, the default
    of a client made from a URL), or ``ValueError`` is raised. Replies are
    decoded with ``surrogateescape``, so a field that is not UTF-8 cannot
    crash a reader; the listener fails such a task instead of running it.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        hostname: str | None = None,
        port: int = 6379,
        db: int = 0,
        redis: redis_py.Redis | None = None,
        **redis_kwargs: Any,
    ) -> None:
        if sum(x is not None for x in (url, hostname, redis)) != 1:
            raise TypeError("Client needs exactly one of: a URL, hostname=..., or redis=...")
        if redis is not None:
            self._redis = redis
        else:
            options: dict[str, Any] = {"decode_responses": True, "encoding_errors": "surrogateescape"}
            options.update(redis_kwargs)
            options.setdefault("retry", Retry(NoBackoff(), 0))
            if url is not None:
                self._redis = redis_py.Redis.from_url(url, **options)
            else:
                self._redis = redis_py.Redis(host=hostname or "localhost", port=port, db=db, **options)
        resends = self._redis.get_retry()
        if resends is not None and resends.get_retries() > 0:
            raise ValueError(
                "This redis client resends commands after a connection error, which can move a task twice; "
                "give it retry=Retry(NoBackoff(), 0)"
            )
        # Fault injection, for tests only (see faults.py): unless BLUEQUE_CRASH_AT is
        # set, as in production, nothing is wrapped and no call costs anything more.
        plan = faults.from_environment()
        if plan is not None:
            faults.arm(self._redis, plan)
        self._scripts = Scripts(self._redis)

    @property
    def redis(self) -> redis_py.Redis:
        """The underlying redis-py client (responses decoded to ``str``)."""
        return self._redis

    def close_inherited_connections(self) -> None:
        """In a process just forked: close this process's copies of its parent's connections.

        Nothing is sent: the parent's connections stay open, and this process
        makes its own when it needs one. A copy left open would keep the
        parent's connection alive after the parent dies, and with it a
        blocking command the parent was waiting in: Redis would still hand
        that ``BLMOVE`` the next task pushed on the queue, into the dead
        parent's list, where it would wait for recovery instead of going to
        a live worker.
        """
        pool = self._redis.connection_pool
        for name in ("_available_connections", "_in_use_connections", "_connections"):
            for connection in list(getattr(pool, name, ())):
                sock = getattr(connection, "_sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    @property
    def scripts(self) -> Scripts:
        """The protocol's Lua scripts, registered on :attr:`redis`."""
        return self._scripts

    def close(self) -> None:
        self._redis.close()

    def get_queue(self, name: str) -> Queue:
        return Queue(name, self._redis, self._scripts)

    def get_task(self, task_id: str) -> Task:
        """A snapshot of one task; ``task.exists`` is False if Redis has no such task."""
        return Task(task_id, fields(self._redis.hgetall(keys.task(task_id))))

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Snapshots of many tasks, in one round trip."""
        ids = list(task_ids)
        with self._redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(keys.task(task_id))
            return [Task(task_id, fields(reply)) for task_id, reply in zip(ids, pipe.execute(), strict=True)]

    def get_listener(
        self,
        queue_name: str,
        *more_queue_names: str,
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        listener_id: str | None = None,
        heartbeat: bool = False,
        timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
    ) -> Listener:
        """A listener on one queue or, served in the order given, several.

        ``heartbeat``: the caller will call :meth:`Listener.beat` four times
        per ``timeout``, so other hosts can tell when it dies (runners do). A
        listener without one is judged as Blueque 1.0.1 judges listeners:
        same host, pid gone.
        """
        return Listener(
            self._redis,
            self._scripts,
            (queue_name, *more_queue_names),
            block_timeout=block_timeout,
            listener_id=listener_id,
            heartbeat=heartbeat,
            timeout=timeout,
            max_recoveries=max_recoveries,
            max_releases=max_releases,
        )

    def recovery(
        self,
        queues: Sequence[str],
        *,
        timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
        exclude: Sequence[str] = (),
    ) -> liveness.Recovery:
        """A watch over the listeners of ``queues`` that recovers the tasks of dead ones; see :mod:`.liveness`.

        Call its ``poll()`` every ``interval`` seconds, and ``forget()`` after
        a Redis error: a listener is judged dead only once this process has
        watched its heartbeat stand still for the listener's own timeout.
        """
        return liveness.Recovery(
            self._redis,
            self._scripts,
            queues,
            timeout=timeout,
            max_recoveries=max_recoveries,
            max_releases=max_releases,
            exclude=exclude,
        )

    def operations(
        self,
        *,
        listener_timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
    ) -> operations.Operations:
        """Operator actions (retry, requeue, cancel, run now, delete, forget a queue); see :mod:`.operations`."""
        return operations.Operations(
            self,
            listener_timeout=listener_timeout,
            max_recoveries=max_recoveries,
            max_releases=max_releases,
        )

    def beat(self, listener_id: str | None, task_ids: Sequence[str] = ()) -> float:
        """Record heartbeats for a listener and tasks; returns the server time."""
        return liveness.beat(self._scripts, beater=listener_id, owner=listener_id or "", runs=task_ids)[0]

    def get_processor(self, task: Task) -> Processor:
        return Processor(self._scripts, task)

    def report_progress(self, task_id: str, fraction: float, message: str = "") -> bool:
        """Record how far a running task has got (0.0 to 1.0) and a short message.

        Kept in the extension fields ``progress`` and ``progress_message``.
        Returns False, recording nothing, if the task is not running.
        """
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"Progress must be between 0 and 1, not {fraction}")
        recorded = self._scripts.progress(keys=[keys.task(task_id)], args=[fraction, str(message)[:200], time.time()])
        return bool(recorded)

    def queue_names(self) -> list[str]:
        return introspection.queue_names(self._redis)

    def queue_stats(self, names: Sequence[str] | None = None) -> dict[str, introspection.QueueStats]:
        return introspection.queue_stats(self._redis, names)

    def oldest_pending(self, names: Sequence[str]) -> dict[str, float | None]:
        return introspection.oldest_pending(self._redis, names)

    def per_minute(self, queue: str) -> dict[str, list[int]]:
        return introspection.per_minute(self._redis, queue)

    def task_ids(self, queue: str, status: str, offset: int = 0, count: int = 50) -> list[str]:
        return introspection.task_ids(self._redis, queue, status, offset, count)
