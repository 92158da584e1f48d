"""The scheduler: due scheduled tasks to pending, periodic tasks, orphan sweeps.

Any number of schedulers may run at once, for high availability: moving a
due task is a script that moves each task once (see ``Queue.move_due``), and
each occurrence of a periodic task is claimed by a compare-and-set script on
``blueque_periodic``. A scheduler also recovers the tasks of dead listeners on
every queue it serves (see :mod:`.liveness`), so orphans are found even where
no live worker serves a queue.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from . import keys, liveness
from .cron import Cron
from .defaults import (
    DEFAULT_LISTENER_TIMEOUT,
    DEFAULT_MAX_RECOVERIES,
    DEFAULT_MAX_RELEASES,
    DUE_BATCH,
    HEARTBEAT_MEMORY,
)
from .identity import SCHEDULER, role_id
from .liveness import beat_interval, prune_heartbeats, reconnect_backoff_cap
from .queue import new_task_id
from .replies import optional_strings, string, string_set, strings
from .supervision import TRANSIENT, Backoff, Supervision

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)


#: What to do about occurrences a scheduler missed (all schedulers were down).
RUN_ONCE, SKIP = "once", "skip"


@dataclass(frozen=True)
class Every:
    """An interval schedule: occurrences at whole multiples of ``seconds`` since the epoch."""

    seconds: float

    def previous(self, moment: datetime, zone: tzinfo) -> datetime | None:
        stamp = math.floor(moment.timestamp() / self.seconds) * self.seconds
        return datetime.fromtimestamp(stamp, tz=UTC)

    def next(self, moment: datetime, zone: tzinfo) -> datetime | None:
        stamp = (math.floor(moment.timestamp() / self.seconds) + 1) * self.seconds
        return datetime.fromtimestamp(stamp, tz=UTC)


@dataclass(frozen=True)
class PeriodicTask:
    """A task enqueued on a schedule. ``parameters`` builds the task's parameters for each run."""

    name: str
    queue: str
    parameters: Callable[[], str]
    schedule: Cron | Every
    zone: tzinfo = UTC
    #: Skip an occurrence while the previous run is still pending or running.
    skip_if_running: bool = False
    #: After downtime: RUN_ONCE runs the latest missed occurrence, SKIP waits for the next.
    missed: str = RUN_ONCE
    #: An occurrence this many seconds late counts as missed.
    grace: float = 60.0

    def latest(self, now: float) -> float | None:
        moment = self.schedule.previous(datetime.fromtimestamp(now, tz=UTC), self.zone)
        return None if moment is None else moment.timestamp()


@dataclass
class TickReport:
    """What one :meth:`Scheduler.tick` did: due tasks moved, and each periodic task's outcome."""

    moved: int = 0
    periodic: dict[str, str] = field(default_factory=dict)


class Scheduler:
    """Moves due tasks to pending, enqueues periodic tasks and recovers dead listeners' tasks.

    ``queues=None`` serves every queue Redis knows. See the module's doc.
    """

    def __init__(
        self,
        client: Client,
        queues: Sequence[str] | None = None,
        *,
        periodic: Iterable[PeriodicTask] = (),
        interval: float = 0.25,
        listener_timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
        scheduler_id: str | None = None,
    ) -> None:
        self._client = client
        #: Beats in ``blueque_heartbeats`` and is listed in ``blueque_schedulers``, for the admin to show.
        self.id = scheduler_id or role_id(SCHEDULER)
        self._next_beat = 0.0
        self._queues = None if queues is None else list(queues)
        self._periodic = list(periodic)
        self._interval = interval
        self._timeout = listener_timeout
        self._max_recoveries = max_recoveries
        self._recovery = client.recovery(
            [], timeout=listener_timeout, max_recoveries=max_recoveries, max_releases=max_releases
        )
        self._next_prune = 0.0
        # The last occurrence known handled, per periodic task: saves a round trip per tick.
        self._handled: dict[str, float] = {}
        self._next_recovery = 0.0
        self._supervision = Supervision()

    def queues(self) -> list[str]:
        return self._queues if self._queues is not None else self._client.queue_names()

    def tick(self, now: float | None = None) -> TickReport:
        """Do one round: move due tasks, enqueue due periodic tasks, sweep orphans when due."""
        now = time.time() if now is None else now
        report = TickReport()
        if time.monotonic() >= self._next_beat:
            self.beat()
        queues = self.queues()
        report.moved = self._move_due(queues, now)
        for entry in self._periodic:
            outcome = self._run_periodic(entry, now)
            if outcome is not None:
                report.periodic[entry.name] = outcome
        if time.monotonic() >= self._next_recovery:
            self._recovery.queues = queues
            self._recovery.poll()
            self._next_recovery = time.monotonic() + self._recovery.interval
        if time.monotonic() >= self._next_prune:
            # Recovery deregisters a dead listener within the timeout; its
            # heartbeat is forgotten much later, once surely of no use.
            memory = max(HEARTBEAT_MEMORY, 10 * self._timeout)
            self._forget_dead_schedulers(memory)
            prune_heartbeats(self._client.redis, memory)
            self._next_prune = time.monotonic() + self._timeout
        return report

    def beat(self) -> None:
        """Heartbeat: others (the admin) can tell this scheduler runs; nothing is judged by it."""
        liveness.beat_listed(self._client.scripts, keys.schedulers(), self.id, self._timeout)
        self._next_beat = time.monotonic() + beat_interval(self._timeout)

    def deregister(self) -> None:
        liveness.unlist(self._client.redis, keys.schedulers(), self.id)

    def _forget_dead_schedulers(self, older_than: float) -> None:
        """Unlist schedulers silent for ``older_than`` seconds (killed ones cannot unlist themselves)."""
        redis = self._client.redis
        members = sorted(string_set(redis.smembers(keys.schedulers())) - {self.id})
        if not members:
            return
        seconds, _ = redis.time()
        stale = [
            member
            for member, beat in zip(members, redis.zmscore(keys.heartbeats(), members), strict=True)
            if beat is None or float(beat) < int(seconds) - older_than
        ]
        if stale:
            redis.srem(keys.schedulers(), *stale)

    def forget(self) -> None:
        """After a Redis error: what was seen of the listeners no longer counts."""
        self._recovery.forget()

    def _move_due(self, queues: list[str], now: float) -> int:
        moved = 0
        while queues:
            with self._client.redis.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.zrangebyscore(keys.scheduled(queue), "-inf", now, start=0, num=DUE_BATCH)
                due = [strings(reply) for reply in pipe.execute()]
            for queue, ids in zip(queues, due, strict=True):
                moved += self._client.get_queue(queue).move_due(ids, now)
            # A full batch may mean more are due in that queue.
            queues = [queue for queue, ids in zip(queues, due, strict=True) if len(ids) == DUE_BATCH]
        return moved

    def _run_periodic(self, entry: PeriodicTask, now: float) -> str | None:
        occurrence = entry.latest(now)
        if occurrence is None or occurrence <= self._handled.get(entry.name, -math.inf):
            return None
        last, previous_task = optional_strings(
            self._client.redis.hmget(keys.periodic(), [entry.name, f"{entry.name}:task"])
        )
        # Late past grace: missed. (First sight is decided by the script.)
        record_only = last is not None and entry.missed == SKIP and now - occurrence > entry.grace
        task_id = new_task_id()
        outcome = string(
            self._client.scripts.periodic(
                keys=[
                    keys.periodic(),
                    keys.task(task_id),
                    keys.pending(entry.queue),
                    keys.queues(),
                    keys.task(previous_task or ""),
                ],
                args=[
                    entry.name,
                    occurrence,
                    task_id,
                    entry.queue,
                    "" if record_only else entry.parameters(),
                    now,
                    keys.channel(entry.queue),
                    "1" if entry.skip_if_running else "0",
                    "1" if record_only else "0",
                ],
            )
        )
        self._handled[entry.name] = occurrence
        if outcome != "done":
            logger.info("Periodic task %s, occurrence %s: %s", entry.name, occurrence, outcome)
        return outcome

    def stop(self) -> None:
        self._supervision.stop()

    def run(self, *, burst: bool = False, install_signal_handlers: bool = True) -> None:
        """Tick every ``interval`` seconds until stopped (SIGTERM/SIGINT); with ``burst``, once."""
        self._supervision.open(install_signal_handlers=install_signal_handlers)
        backoff = Backoff(reconnect_backoff_cap(self._timeout), logger)
        try:
            while not self._supervision.stopping:
                try:
                    self.tick()
                    backoff.succeeded()
                except TRANSIENT as exc:
                    self.forget()
                    backoff.failed(exc)
                if burst:
                    return
                self._supervision.sleep(backoff.delay or self._interval)
        finally:
            try:
                self.deregister()
            except TRANSIENT:
                logger.warning("Could not deregister scheduler %s; it is forgotten once long silent", self.id)
            self._supervision.close()
