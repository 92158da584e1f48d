"""Producing tasks: enqueue, schedule, move due tasks, delete finished tasks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from . import keys
from .defaults import DUE_BATCH
from .errors import NotReplicated
from .keys import validate_queue_name, validate_task_id
from .replies import strings
from .task import COMPLETE, FAILED, SCHEDULED, Task

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

    from .scripts import Scripts


def new_task_id() -> str:
    return str(uuid.uuid4())


class Queue:
    """One named queue. Made by :meth:`Client.get_queue`."""

    def __init__(self, name: str, redis: Redis, scripts: Scripts) -> None:
        self._name = validate_queue_name(name)
        self._redis = redis
        self._scripts = scripts

    def __repr__(self) -> str:
        return f"<Queue {self._name}>"

    @property
    def name(self) -> str:
        return self._name

    def _new_task(
        self,
        pipe: Pipeline,
        status: str,
        parameters: str,
        extra: dict[str, str | float] | None,
        task_id: str | None,
        created: float | None,
    ) -> str:
        if not isinstance(parameters, str):
            raise TypeError(f"Task parameters must be a string, not {type(parameters).__name__}")
        task_id = new_task_id() if task_id is None else validate_task_id(task_id)
        now = time.time() if created is None else float(created)
        fields: dict[str, str | float] = dict(extra or {})
        fields.update(status=status, queue=self._name, parameters=parameters, created=now, updated=now)
        pipe.hset(keys.task(task_id), mapping=fields)  # type: ignore[arg-type]
        # Adding 0 lists a queue that has tasks but no listener yet.
        pipe.zincrby(keys.queues(), 0, self._name)
        return task_id

    def enqueue(
        self,
        parameters: str,
        *,
        extra: dict[str, str | float] | None = None,
        task_id: str | None = None,
        created: float | None = None,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> str:
        """Add a pending task and return its id. One round trip (a script), atomic.

        ``parameters`` is an opaque string handed to the task's runner;
        ``extra`` holds additional hash fields for clients that know them;
        ``task_id`` (default: a new UUID4) lets a caller know the id before
        the task exists, e.g. to enqueue when a transaction commits;
        ``created`` (epoch seconds, default now) is the time recorded, for a
        caller that reports it too. Redis errors (``redis.ConnectionError``
        when it cannot be reached) are raised as they are.

        With ``replicas``, one more round trip waits (Redis ``WAIT``, at most
        ``replica_timeout`` seconds) until that many replicas have the task,
        so that a failover to one of them cannot lose it; :class:`NotReplicated`
        says when fewer did.
        """
        task_id = new_task_id() if task_id is None else validate_task_id(task_id)
        self._add_pending([(task_id, parameters)], extra, created)
        self._wait_for_replicas(task_id, replicas, replica_timeout)
        return task_id

    def enqueue_many(
        self,
        parameters: Iterable[str],
        *,
        task_ids: Sequence[str] | None = None,
        extra: dict[str, str | float] | None = None,
        created: float | None = None,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> list[str]:
        """Add a pending task for each parameters string; return their ids, in order.

        One round trip for the whole batch, atomic: every task is added, or
        none (a Redis error is raised as it is). The tasks are taken in the
        order given, as if enqueued one by one. ``task_ids`` (default: new
        UUID4s) gives their ids, one per task; ``extra``, ``created``,
        ``replicas`` and ``replica_timeout`` apply to each, as for
        :meth:`enqueue`; an empty batch sends nothing.
        """
        strings = list(parameters)
        if task_ids is None:
            ids = [new_task_id() for _ in strings]
        elif len(task_ids) != len(strings):
            raise ValueError(f"{len(task_ids)} task ids for {len(strings)} tasks")
        else:
            ids = [validate_task_id(task_id) for task_id in task_ids]
        batch = list(zip(ids, strings, strict=True))
        if not batch:
            return []
        self._add_pending(batch, extra, created)
        self._wait_for_replicas(batch[-1][0], replicas, replica_timeout)
        return [task_id for task_id, _ in batch]

    def _add_pending(
        self, batch: list[tuple[str, str]], extra: dict[str, str | float] | None, created: float | None
    ) -> None:
        """Write pending tasks, ``(id, parameters)`` each: one script, one round trip."""
        for _, parameters in batch:
            if not isinstance(parameters, str):
                raise TypeError(f"Task parameters must be a string, not {type(parameters).__name__}")
        now = time.time() if created is None else float(created)
        extra_fields = [item for pair in (extra or {}).items() for item in pair]
        self._scripts.enqueue(
            keys=[keys.queues(), keys.pending(self._name), *(keys.task(task_id) for task_id, _ in batch)],
            args=[
                self._name,
                keys.channel(self._name),
                now,
                len(extra or {}),
                *extra_fields,
                *(item for pair in batch for item in pair),
            ],
        )

    def _wait_for_replicas(self, task_id: str, replicas: int, timeout: float) -> None:
        if replicas <= 0:
            return
        # WAIT cannot be part of the transaction (inside MULTI it would not wait).
        acknowledged = int(self._redis.wait(replicas, max(1, round(timeout * 1000))))
        if acknowledged < replicas:
            raise NotReplicated(task_id, acknowledged, replicas)

    def schedule(
        self,
        parameters: str,
        eta: float,
        *,
        extra: dict[str, str | float] | None = None,
        task_id: str | None = None,
        created: float | None = None,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> str:
        """Add a task that becomes pending at ``eta`` (epoch seconds); return its id.

        As in Blueque 1.0.1, an ETA in the past enqueues the task at once.
        ``replicas`` and ``replica_timeout`` as for :meth:`enqueue`.
        """
        eta = float(eta)
        if eta < time.time():
            return self.enqueue(
                parameters,
                extra=extra,
                task_id=task_id,
                created=created,
                replicas=replicas,
                replica_timeout=replica_timeout,
            )
        with self._redis.pipeline(transaction=True) as pipe:
            task_id = self._new_task(pipe, SCHEDULED, parameters, {**(extra or {}), "eta": eta}, task_id, created)
            pipe.zadd(keys.scheduled(self._name), {task_id: eta})
            pipe.execute()
        self._wait_for_replicas(task_id, replicas, replica_timeout)
        return task_id

    def enqueue_due_tasks(self, now: float | None = None) -> int:
        """Move every scheduled task whose ETA has passed to pending.

        Safe to call from any number of processes at once: each task is moved
        by exactly one caller. Returns how many tasks this call moved.
        """
        now = time.time() if now is None else now
        moved = 0
        while True:
            due = strings(self._redis.zrangebyscore(keys.scheduled(self._name), "-inf", now, start=0, num=DUE_BATCH))
            moved += self.move_due(due, now)
            if len(due) < DUE_BATCH:
                return moved

    def move_due(self, task_ids: list[str], now: float) -> int:
        """Move these scheduled tasks (read as due at ``now``) to pending, exactly once; return how many."""
        if not task_ids:
            return 0
        return int(
            self._scripts.enqueue_due(
                keys=[keys.scheduled(self._name), keys.pending(self._name), *map(keys.task, task_ids)],
                args=[now, keys.channel(self._name), *task_ids],
            )
        )

    def delete_task(self, task: Task) -> None:
        """Delete a finished task: its hash and its place in the finished list."""
        if task.queue != self._name:
            raise ValueError(f"Task {task.id} is not in queue {self._name}")
        if task.status == COMPLETE:
            finished_key = keys.complete(self._name)
        elif task.status == FAILED:
            finished_key = keys.failed(self._name)
        else:
            raise ValueError(f"Cannot delete task {task.id} with status {task.status}")
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.task(task.id))
            pipe.lrem(finished_key, 1, task.id)
            pipe.execute()
