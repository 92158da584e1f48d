"""The monitor: reports each finished task once, then keeps it for a while.

Blueque 1.0's monitors "poll complete/failed lists for things to report
back". This one takes ids from the oldest end of ``blueque_complete_tasks_<q>``
and ``blueque_failed_tasks_<q>`` into a list of its own, in a script, so
several monitors never take the same task; calls the hook for each; then
records it as reported (``blueque_reported_<status>_<q>``, scored by time).
A monitor that dies mid-report leaves ids in its own list, and any live
monitor puts them back to be reported again: at least once, with duplicates
only for what was in flight. Tasks finished by any Blueque client, Blueque
1.0.1's workers included, are reported.

Reported tasks stay readable for a time to live (one for complete tasks,
another for failed ones), then their hashes are deleted: 1.0's "Delete
Finished Task".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

from . import keys, liveness
from .defaults import DEFAULT_FAILED_RESULT_TTL, DEFAULT_LISTENER_TIMEOUT, DEFAULT_RESULT_TTL
from .identity import MONITOR, role_id
from .liveness import Watch, beat_interval, reconnect_backoff_cap
from .replies import string, string_set, strings
from .supervision import TRANSIENT, Backoff, Supervision
from .task import COMPLETE, FAILED, Task

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)


Hook = Callable[[Task], None]
#: Called with the task and the record of the attempt that failed (from its ``errors``).
RetryHook = Callable[[Task, dict[str, Any]], None]

#: Tasks sent back to be retried are reported too, from their own list.
RETRYING = "retrying"


def attempt_record(task: Task, attempt: str) -> dict[str, Any]:
    """The record, in the task's ``errors``, of a failed attempt that was retried."""
    try:
        records = json.loads(task.fields.get("errors") or "[]")
    except ValueError:
        records = []
    for record in records if isinstance(records, list) else []:
        if isinstance(record, dict) and str(record.get("attempt")) == attempt:
            return record
    return {"attempt": attempt, "error": task.error or ""}


def source(queue: str, status: str) -> str:
    """The list a monitor takes ``status`` tasks of ``queue`` from."""
    return {COMPLETE: keys.complete, FAILED: keys.failed, RETRYING: keys.retrying}[status](queue)


class Monitor:
    """Reports each finished task of its queues once, through its hooks, and expires old results.

    ``queues=None`` serves every queue Redis knows. See the module's doc for the protocol.
    """

    def __init__(
        self,
        client: Client,
        queues: Sequence[str] | None = None,
        *,
        on_complete: Hook,
        on_failed: Hook,
        on_retrying: RetryHook | None = None,
        batch: int = 100,
        interval: float = 0.5,
        result_ttl: float = DEFAULT_RESULT_TTL,
        failed_result_ttl: float = DEFAULT_FAILED_RESULT_TTL,
        listener_timeout: float = DEFAULT_LISTENER_TIMEOUT,
        monitor_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._scripts = client.scripts
        self._queues = None if queues is None else list(queues)
        self._hooks = {COMPLETE: on_complete, FAILED: on_failed}
        self._on_retrying = on_retrying
        self._batch = batch
        self._interval = interval
        self._ttl = {COMPLETE: result_ttl, FAILED: failed_result_ttl}
        self._timeout = listener_timeout
        self.id = monitor_id or role_id(MONITOR)
        self._next_beat = self._next_sweep = self._next_watch = 0.0
        self._watch = Watch(max_gap=2.5 * beat_interval(listener_timeout), clock=clock)
        self._supervision = Supervision()
        self._check_own = True

    def queues(self) -> list[str]:
        return self._queues if self._queues is not None else self._client.queue_names()

    def register(self) -> None:
        """Join the monitor set, beating at once; the heartbeat rejoins it if a verdict took it out."""
        self.beat()

    def beat(self) -> None:
        liveness.beat_listed(self._client.scripts, keys.monitors(), self.id, self._timeout)
        self._next_beat = time.monotonic() + beat_interval(self._timeout)

    def _beat_if_due(self) -> None:
        if time.monotonic() >= self._next_beat:
            self.beat()

    def deregister(self) -> None:
        """Leave, once nothing is in flight (a failed report stays for others to restore)."""
        if self._client.redis.llen(keys.monitoring(self.id)) == 0:
            liveness.unlist(self._client.redis, keys.monitors(), self.id)

    def forget(self) -> None:
        """After a Redis error: what was seen of the other monitors no longer counts."""
        self._watch.forget()
        # A take whose reply was lost may have left ids in our list.
        self._check_own = True

    def report(self) -> int:
        """Report one batch per queue and status; return how many tasks were reported."""
        reported = self._report_own_leftovers() if self._check_own else 0
        for queue in self.queues():
            # Retries first: a task's last attempt can fail only after its earlier ones.
            for status in (RETRYING, COMPLETE, FAILED):
                reported += self._report_batch(queue, status)
        return reported

    def _report_own_leftovers(self) -> int:
        """Report what is in our own list: taken by a call whose reply was lost."""
        batches: dict[tuple[str, str], list[str]] = {}
        for entry in reversed(strings(self._client.redis.lrange(keys.monitoring(self.id), 0, -1))):
            queue, status, task_id = keys.parse_monitoring_entry(entry)
            batches.setdefault((queue, status), []).append(task_id)
        for (queue, status), ids in batches.items():
            self._dispatch(queue, status, ids)
        self._check_own = False
        return sum(map(len, batches.values()))

    def _report_batch(self, queue: str, status: str) -> int:
        ids = strings(
            self._scripts.monitor_take(
                keys=[source(queue, status), keys.monitoring(self.id)], args=[queue, status, self._batch]
            )
        )
        if ids:
            self._dispatch(queue, status, ids)
        return len(ids)

    def _dispatch(self, queue: str, status: str, ids: list[str]) -> None:
        task_ids = [keys.parse_retrying_entry(entry)[0] for entry in ids] if status == RETRYING else ids
        for entry, task in zip(ids, self._client.get_tasks(task_ids), strict=True):
            if not task.exists:
                continue  # deleted since it finished (1.0's Delete Finished Task)
            # A batch of slow receivers must not make this monitor look dead.
            self._beat_if_due()
            try:
                if status != RETRYING:
                    self._hooks[status](task)
                elif self._on_retrying is not None:
                    attempt = keys.parse_retrying_entry(entry)[1]
                    self._on_retrying(task, attempt_record(task, attempt))
            except Exception:
                # A failing hook must not stop the others, nor loop on one task.
                logger.exception("Reporting task %s (%s) failed", task.id, status)
        reported = keys.retrying(queue) if status == RETRYING else keys.reported(queue, status)
        self._scripts.monitor_ack(
            keys=[keys.monitoring(self.id), reported, keys.per_minute(queue, status)],
            args=[queue, status, time.time(), *ids],
        )

    def watch_monitors(self) -> dict[str, str]:
        """Watch the other monitors' heartbeats once; return those judged dead, with the beat judged."""
        redis = self._client.redis
        started = self._watch.now()
        with redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.monitors())
            pipe.hgetall(keys.listener_timeouts())
            pipe.info("server")
            members, timeouts, info = pipe.execute()
        others = sorted(string_set(members) - {self.id})
        beats: dict[Hashable, float | None] = (
            dict(zip(others, redis.zmscore(keys.heartbeats(), others), strict=True)) if others else {}
        )
        self._watch.observe(beats, str(info.get("run_id", "")), started)
        published = {string(name): string(value) for name, value in timeouts.items()}
        dead = {}
        for other in others:
            beat = beats[other]
            if self._watch.silent_for(other) >= liveness.timeout_of(published.get(other), self._timeout):
                dead[other] = "" if beat is None else repr(beat)
        return dead

    def restore_dead_monitors(self) -> int:
        """Put back what monitors judged dead were reporting; return how many tasks."""
        redis = self._client.redis
        restored = 0
        for other, judged in self.watch_monitors().items():
            count = 0
            for entry in reversed(strings(redis.lrange(keys.monitoring(other), 0, -1))):
                queue, status, task_id = keys.parse_monitoring_entry(entry)
                outcome = int(
                    self._scripts.monitor_restore(
                        keys=[keys.monitoring(other), source(queue, status), keys.heartbeats()],
                        args=[entry, task_id, other, judged],
                    )
                )
                if outcome < 0:
                    break
                count += outcome
            self._scripts.monitor_forget(
                keys=[keys.monitors(), keys.monitoring(other), keys.heartbeats(), keys.listener_timeouts()],
                args=[other, judged],
            )
            if count:
                logger.warning("Monitor %s is gone: %d task(s) it held will be reported again", other, count)
            restored += count
        return restored

    def expire(self, now: float | None = None) -> int:
        """Delete reported tasks past their time to live; return how many."""
        now = time.time() if now is None else now
        deleted = 0
        for queue in self.queues():
            for status in (COMPLETE, FAILED):
                while True:
                    ids = strings(
                        self._client.redis.zrangebyscore(
                            keys.reported(queue, status), "-inf", now - self._ttl[status], start=0, num=500
                        )
                    )
                    if not ids:
                        break
                    deleted += int(
                        self._scripts.monitor_expire(
                            keys=[keys.reported(queue, status), *map(keys.task, ids)], args=ids
                        )
                    )
        return deleted

    def tick(self) -> int:
        now = time.monotonic()
        self._beat_if_due()
        if now >= self._next_watch:
            self.restore_dead_monitors()
            self._next_watch = now + beat_interval(self._timeout)
        if now >= self._next_sweep:
            self.expire()
            self._next_sweep = now + self._timeout / 2
        return self.report()

    def stop(self) -> None:
        self._supervision.stop()

    def _report_what_is_left(self) -> None:
        """On a stop request: report what has finished so far, so a worker stopped just before is signalled.

        Bounded (a second signal, or a few rounds), so a stop is never put off
        for long by a steady stream of finishing tasks.
        """
        for _ in range(10):
            if self._supervision.signals >= 2:
                return
            try:
                if not self.report():
                    return
            except TRANSIENT as exc:
                logger.warning("Redis unavailable while stopping (%s); what is left is reported by others", exc)
                return

    def run(self, *, burst: bool = False, install_signal_handlers: bool = True) -> None:
        """Report until stopped (SIGTERM/SIGINT); with ``burst``, until nothing is left to report."""
        self._supervision.open(install_signal_handlers=install_signal_handlers)
        backoff = Backoff(reconnect_backoff_cap(self._timeout), logger)
        try:
            self._supervision.until_connected(
                self.register, "register the monitor", reconnect_backoff_cap(self._timeout)
            )
            while not self._supervision.stopping:
                try:
                    reported = self.tick()
                    backoff.succeeded()
                except TRANSIENT as exc:
                    self.forget()
                    backoff.failed(exc)
                    reported = 0
                if burst and not reported and not backoff.delay:
                    return
                if not reported:
                    # Never so long that the watch of the other monitors has a gap.
                    self._supervision.sleep(backoff.delay or min(self._interval, beat_interval(self._timeout)))
            self._report_what_is_left()
        finally:
            try:
                self.deregister()
            except TRANSIENT:
                logger.warning("Could not deregister monitor %s; others will clean up after it", self.id)
            self._supervision.close()
