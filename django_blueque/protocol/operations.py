"""What operators do to tasks: retry, requeue, cancel, run now, delete; forget a queue.

Each operation takes task ids and returns, for each, one word: what it did
(``retried``, ``requeued``, ``cancelled``, ``moved``, ``deleted``) or why it
did nothing (``gone``, ``not-failed``, ``alive``, ...). Each task is handled by
one script that acts only if the task is still where its status says (see
``lua/retry_failed.lua`` and its neighbours), so an operation is safe while workers, schedulers and
monitors run, and doing it twice does nothing the second time.

:meth:`Operations.each_in_state` feeds an operation every task of a queue in
one state, in batches of ``batch`` ids: no Redis call does more than a
batch's work, except that taking a pending task out of the pending list (to
cancel it) scans that list from its oldest end, and retrying or deleting a
task not yet reported by a monitor scans the finished list: the cost grows
with the task's distance from that end.

Requeueing a reserved or started task is recovery's step, for one task: it
is allowed only when the task's listener, and for a started task its
process, have not beaten for their timeout by the Redis server's clock (and
the server has been up that long, so a restart does not make everyone look
dead). ``force=True`` requeues a task that looks alive (stuck): its run, if
it still goes on, is stopped at its next heartbeat and cannot record an
outcome, but until then two runs may overlap.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import introspection, keys
from .defaults import DEFAULT_BATCH, DEFAULT_LISTENER_TIMEOUT, DEFAULT_MAX_RECOVERIES, DEFAULT_MAX_RELEASES
from .liveness import recover_task, timeout_of
from .replies import optional_strings, string, string_or_none
from .task import COMPLETE, FAILED, PENDING, RESERVED, SCHEDULED, STARTED

if TYPE_CHECKING:
    from .client import Client


@dataclass
class Outcome:
    """What an operation did to each task: ``{task id: word}``, in the order given."""

    action: str
    #: The word that means the operation was done (``"retried"`` for retry, ...).
    success: str
    results: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> list[str]:
        return [task_id for task_id, word in self.results.items() if word == self.success]

    @property
    def refused(self) -> dict[str, str]:
        """The ids the operation left alone, with the reason."""
        return {task_id: word for task_id, word in self.results.items() if word != self.success}

    def counts(self) -> Counter[str]:
        return Counter(self.results.values())

    def merge(self, other: Outcome) -> None:
        self.results.update(other.results)

    def __str__(self) -> str:
        counts = self.counts()
        parts = [f"{self.success} {counts.pop(self.success, 0)}"]
        parts += [f"{count} {word}" for word, count in sorted(counts.items())]
        return ", ".join(parts)


#: For each operation: the states it applies to, and the word of success.
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "retry": ((FAILED,), "retried"),
    "requeue": ((RESERVED, STARTED), "requeued"),
    "cancel": ((PENDING, SCHEDULED), "cancelled"),
    "run_now": ((SCHEDULED,), "moved"),
    "delete": ((COMPLETE, FAILED), "deleted"),
}


class Operations:
    """Operator actions on the tasks of one Blueque system. Made by :meth:`Client.operations`.

    ``listener_timeout`` is the timeout assumed for listeners that publish
    none; ``max_recoveries`` and ``max_releases`` bound requeues as they
    bound recovery.
    """

    def __init__(
        self,
        client: Client,
        *,
        listener_timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
    ) -> None:
        self.client = client
        self._redis = client.redis
        self._timeout = listener_timeout
        self._max_recoveries = max_recoveries
        self._max_releases = max_releases
        self._scripts = client.scripts

    # -- One task at a time, for each id given.

    def retry(self, task_ids: Sequence[str]) -> Outcome:
        """Put failed tasks back in pending for a new attempt (their errors are kept)."""
        now = time.time()

        def retry_one(task_id: str, queue: str) -> str:
            return string(
                self._scripts.retry_failed(
                    keys=[keys.task(task_id), keys.failed(queue), keys.reported(queue, FAILED), keys.pending(queue)],
                    args=[task_id, now, keys.channel(queue)],
                )
            )

        return self._each(Outcome("retry", "retried"), task_ids, retry_one)

    def cancel(self, task_ids: Sequence[str], reason: str = "Cancelled") -> Outcome:
        """Fail pending or scheduled tasks before they start, with error ``reason``."""
        now = time.time()

        def cancel_one(task_id: str, queue: str) -> str:
            return string(
                self._scripts.cancel(
                    keys=[keys.task(task_id), keys.scheduled(queue), keys.pending(queue), keys.failed(queue)],
                    args=[task_id, now, reason],
                )
            )

        return self._each(Outcome("cancel", "cancelled"), task_ids, cancel_one)

    def run_now(self, task_ids: Sequence[str]) -> Outcome:
        """Make scheduled tasks pending now, as if their time had come."""
        now = time.time()

        def move_one(task_id: str, queue: str) -> str:
            return "moved" if self.client.get_queue(queue).move_due([task_id], now) else "not-scheduled"

        return self._each(Outcome("run_now", "moved"), task_ids, move_one)

    def _each(self, outcome: Outcome, task_ids: Sequence[str], act: Callable[[str, str], str]) -> Outcome:
        """``act(task id, its queue)`` for each task that exists; one round trip to find the queues."""
        with self._redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hget(keys.task(task_id), "queue")
            queues = optional_strings(pipe.execute())
        for task_id, queue in zip(task_ids, queues, strict=True):
            outcome.results[task_id] = "gone" if queue is None else act(task_id, queue)
        return outcome

    def delete(self, task_ids: Sequence[str]) -> Outcome:
        """Delete finished (complete or failed) tasks: hash and id."""
        outcome = Outcome("delete", "deleted")
        for task_id, task in zip(task_ids, self.client.get_tasks(task_ids), strict=True):
            if not task.exists or task.queue is None:
                outcome.results[task_id] = "gone"
                continue
            if task.status not in (COMPLETE, FAILED):
                outcome.results[task_id] = "not-finished"
                continue
            finished = keys.complete(task.queue) if task.status == COMPLETE else keys.failed(task.queue)
            outcome.results[task_id] = string(
                self._scripts.delete_finished(
                    keys=[keys.task(task_id), finished, keys.reported(task.queue, task.status)],
                    args=[task_id, task.status],
                )
            )
        return outcome

    def requeue(self, task_ids: Sequence[str], *, force: bool = False) -> Outcome:
        """Put reserved or started tasks of dead listeners back in pending (see the module's doc).

        Refused with ``alive`` when the listener (or the task's process) beat
        within its timeout, ``unknown`` when its liveness cannot be told (a
        listener that never beats, or Redis up for less than the timeout);
        ``force`` skips both checks.
        """
        outcome = Outcome("requeue", "requeued")
        server_now, uptime = self._server_clock()
        for task_id, task in zip(task_ids, self.client.get_tasks(task_ids), strict=True):
            listener = task.fields.get("node")
            if not task.exists or task.queue is None:
                outcome.results[task_id] = "gone"
                continue
            if task.status not in (RESERVED, STARTED) or not listener:
                outcome.results[task_id] = "not-running"
                continue
            judged, task_judged = "*", ""
            if not force:
                verdict = self._judge(task_id, task.status, listener, server_now, uptime)
                if isinstance(verdict, str):
                    outcome.results[task_id] = verdict
                    continue
                judged, task_judged = verdict
            reason = "requeued by an operator" + (" (forced)" if force else "")
            word = recover_task(
                self.client.scripts,
                task.queue,
                listener,
                task_id,
                judged=judged,
                task_judged=task_judged,
                reason=reason,
                max_recoveries=self._max_recoveries,
                max_releases=self._max_releases,
            )
            # The recovery script's words: 'requeued' (lost) or 'released' (not started) both mean requeued.
            outcome.results[task_id] = "requeued" if word in ("requeued", "released") else word
        return outcome

    def _server_clock(self) -> tuple[float, float]:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.info("server")
            (seconds, micros), info = pipe.execute()
        return int(seconds) + int(micros) / 1_000_000, float(info.get("uptime_in_seconds", 0))

    def _judge(
        self, task_id: str, status: str, listener: str, server_now: float, uptime: float
    ) -> str | tuple[str, str]:
        """The heartbeats a dead listener (and its task) were judged by, or why it is not dead."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zscore(keys.heartbeats(), listener)
            pipe.hget(keys.listener_timeouts(), listener)
            pipe.zscore(keys.task_heartbeats(), task_id)
            beat, published, task_beat = pipe.execute()
        if beat is None or published is None:
            return "unknown"  # a listener that never beats: nothing to judge it by from here
        timeout = timeout_of(string_or_none(published), self._timeout)
        if server_now - float(beat) < timeout:
            return "alive"
        if status == STARTED and task_beat is not None and server_now - float(task_beat) < timeout:
            return "alive"
        if uptime < timeout:
            return "unknown"  # old heartbeats, but its workers may not have had the time to beat since a restart
        return repr(float(beat)), ("" if task_beat is None or status != STARTED else repr(float(task_beat)))

    def forget_queue(self, name: str) -> str:
        """Drop a queue name that has nothing left under it.

        Returns ``forgotten``, ``unknown`` (no such queue), or the first key
        of the queue that is not empty.
        """
        name = keys.validate_queue_name(name)
        queue_keys = [
            keys.pending(name),
            keys.scheduled(name),
            keys.started(name),
            keys.complete(name),
            keys.failed(name),
            keys.reported(name, COMPLETE),
            keys.reported(name, FAILED),
            keys.retrying(name),
            keys.listeners(name),
        ]
        return string(self._scripts.forget_queue(keys=[keys.queues(), *queue_keys], args=[name]))

    def run(self, action: str, task_ids: Sequence[str], *, force: bool = False) -> Outcome:
        """Run one of :data:`ACTIONS` by name on ``task_ids`` (``force`` is for requeue)."""
        if action not in ACTIONS:
            raise ValueError(f"Unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        if action == "requeue":
            return self.requeue(task_ids, force=force)
        method: Callable[[Sequence[str]], Outcome] = getattr(self, action)
        return method(task_ids)

    # -- Every task of a queue in a state.

    def in_state(
        self, queue: str, state: str, *, batch: int = DEFAULT_BATCH, older_than: float | None = None
    ) -> Iterator[list[str]]:
        """The ids of ``queue``'s tasks in ``state`` as they are now, batch by batch (reading only).

        ``older_than`` (epoch seconds) keeps the tasks last updated before then.
        """
        if batch < 1:
            raise ValueError("batch must be >= 1")
        offset = 0
        while True:
            page = introspection.task_ids(self._redis, queue, state, offset, batch)
            if not page:
                return
            offset += len(page)
            chosen = self._older(page, older_than)
            if chosen:
                yield chosen

    def apply_to_state(
        self,
        action: str,
        queue: str,
        state: str,
        *,
        batch: int = DEFAULT_BATCH,
        older_than: float | None = None,
        force: bool = False,
    ) -> Outcome:
        """Run ``action`` on every task of ``queue`` in ``state``, one batch at a time.

        Stops after as many ids as the state held at the start, so tasks that
        come back to the state meanwhile (a retried task that fails again at
        once) are not taken again; ids the action refused are paged past.
        """
        if action not in ACTIONS:
            raise ValueError(f"Unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        states, success = ACTIONS[action]
        if state not in states:
            raise ValueError(f"{action} applies to tasks that are {' or '.join(states)}, not {state!r}")
        if batch < 1:
            raise ValueError("batch must be >= 1")
        total = int(getattr(introspection.queue_stats(self._redis, [queue])[queue], state))
        outcome = Outcome(action, success)
        seen = offset = 0
        while seen < total:
            page = introspection.task_ids(self._redis, queue, state, offset, min(batch, total - seen))
            if not page:
                break
            seen += len(page)
            chosen = self._older(page, older_than)
            done = self.run(action, chosen, force=force) if chosen else Outcome(action, success)
            outcome.merge(done)
            # What the action took out of the state is gone from the pages; the rest is still there.
            offset += len(page) - len(done.done)
        return outcome

    def _older(self, task_ids: list[str], older_than: float | None) -> list[str]:
        if older_than is None:
            return task_ids
        return [task.id for task in self.client.get_tasks(task_ids) if (task.updated or 0.0) < older_than]


__all__ = ["ACTIONS", "DEFAULT_BATCH", "Operations", "Outcome"]
