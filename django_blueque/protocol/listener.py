"""Taking tasks: blocking listen, one or several queues, and orphan recovery.

Taking a task is two steps, as in Blueque 1.0: an atomic list move from
pending to the listener's reserved list (``BLMOVE``, the same on the wire as
1.0's ``RPOPLPUSH``), then a script that marks the task ``reserved``. They
cannot be one script because the task's key is only known once its id has
been moved, and Redis wants every key a script touches named up front. A
listener that dies between the two leaves a task in its reserved list whose
status still says ``pending``; :meth:`Listener.claim_orphan` takes such a task
over like any other reserved one, and a listener that lost its connection
mid-move finds it in its own list (:meth:`Listener.listen` checks first).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from . import keys, liveness
from .defaults import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_LISTENER_TIMEOUT,
    DEFAULT_MAX_RECOVERIES,
    DEFAULT_MAX_RELEASES,
    POLL_PERIOD,
)
from .identity import beating_listener_id, hostname, local_pid, plain_listener_id
from .keys import parse_listener_id, validate_queue_name
from .liveness import Run
from .processes import pid_alive, process_alive
from .processor import NextTask
from .replies import fields, flat_fields, optional_strings, string, string_or_none, string_set, strings
from .supervision import TRANSIENT
from .task import PENDING, STARTED, Task

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import PubSub

    from .scripts import Scripts

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK_TIMEOUT",
    "DEFAULT_LISTENER_TIMEOUT",
    "DEFAULT_MAX_RECOVERIES",
    "DEFAULT_MAX_RELEASES",
    "Listener",
    "hostname",
    "parse_listener_id",
]


def undecodable_fields(task: Task) -> list[str]:
    """The fields of a task that are not valid UTF-8 (read with ``surrogateescape``)."""
    bad = []
    for name, value in task.fields.items():
        try:
            value.encode()
        except UnicodeEncodeError:
            bad.append(name)
    return bad


def _block_timeout(redis: Redis, wanted: float) -> float:
    # A blocking call must return before the client's socket timeout fires,
    # or redis-py reports a timeout error (redis-py 8 defaults to 5 s).
    socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
    if socket_timeout:
        wanted = min(wanted, float(socket_timeout) - 0.5)
    return max(wanted, 0.1)


class Listener:
    """Takes tasks from one or more queues for one process. Made by :meth:`Client.get_listener`.

    Creating a listener registers it in each queue's listener set, as 1.0.1
    does; :meth:`close` removes it again once it holds no task. A listener
    with ``heartbeat`` must call :meth:`beat` every
    :func:`~.liveness.beat_interval` of its ``timeout``, which it publishes so
    that others judge it by it; its id then carries a random token
    (see identity.py).
    """

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        queue_names: Sequence[str],
        *,
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        listener_id: str | None = None,
        heartbeat: bool = False,
        timeout: float = DEFAULT_LISTENER_TIMEOUT,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
    ) -> None:
        if not queue_names:
            raise ValueError("A listener needs at least one queue")
        self._queues = tuple(validate_queue_name(name) for name in queue_names)
        if len(set(self._queues)) != len(self._queues):
            raise ValueError(f"Queue listed twice: {', '.join(self._queues)}")
        self._redis = redis
        self._scripts = scripts
        self._block = _block_timeout(redis, block_timeout)
        if listener_id is None:
            listener_id = beating_listener_id() if heartbeat else plain_listener_id(os.getpid())
        self._id = listener_id
        self._pubsub: PubSub | None = None
        # Set when a move may have happened without our seeing its reply.
        self._check_own_lists = True
        # A task taken whose status update may not have happened.
        self._unmarked: tuple[str, str] | None = None
        self._heartbeat = heartbeat
        self.timeout = timeout
        self.max_recoveries = max_recoveries
        self.max_releases = max_releases
        for queue in self._queues:
            scripts.register(
                keys=[keys.listeners(queue), keys.queues(), keys.heartbeats(), keys.listener_timeouts()],
                args=[self._id, queue, timeout if heartbeat else ""],
            )

    def __repr__(self) -> str:
        return f"<Listener {self._id} on {', '.join(self._queues)}>"

    @property
    def id(self) -> str:
        return self._id

    @property
    def queues(self) -> tuple[str, ...]:
        return self._queues

    @property
    def heartbeat(self) -> bool:
        """Whether this listener keeps a heartbeat (runners do; see liveness.py)."""
        return self._heartbeat

    def listen(self, timeout: float | None = None, queues: Sequence[str] | None = None) -> Task | None:
        """Take the next task and mark it reserved; block until there is one.

        With ``timeout`` (seconds), return ``None`` if no task came in that
        time. Queues are tried in the order given; ``queues`` narrows them to
        some of this listener's (a runner whose slots for a queue are full).
        One queue blocks in Redis (``BLMOVE``); several wait on the queues'
        pub/sub channels, polling every block period for producers that do
        not publish.
        """
        serving = self._queues if queues is None else tuple(q for q in self._queues if q in queues)
        if not serving:
            raise ValueError(f"None of {queues!r} is a queue of {self!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._unmarked is not None:
            # Taken, but the reply of the status update was lost: try it again.
            task = self._reserve(*self._unmarked)
            self._unmarked = None
            if task is not None:
                return task
        if self._check_own_lists:
            task = self._resume_own()
            if task is not None:
                return task
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            wait = self._block if remaining is None else min(self._block, max(remaining, 0.0))
            taken = None
            try:
                taken = self._take(serving, wait)
                task = None if taken is None else self._reserve(*taken)
            except TRANSIENT:
                # The move may have happened with its reply lost: look in our
                # lists next time. Or the task was taken and its status update
                # may or may not have happened: redo it (it is idempotent).
                self._check_own_lists = True
                self._unmarked = taken
                self._close_pubsub()
                raise
            if task is not None:
                return task
            if taken is not None:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def unsettle(self) -> None:
        """Say that a take or listen was cut short at an unknown point (see :class:`~.supervision.Interrupted`).

        A task may have been moved into this listener's lists, or reserved
        there, without the caller knowing: :meth:`listen` looks there first,
        and a caller that stops gives it back (:meth:`give_back_strays`).
        """
        self._check_own_lists = True
        self._close_pubsub()

    @property
    def settled(self) -> bool:
        """No reply was lost since the last look at this listener's own lists.

        Only then may a caller :meth:`take` ids and start them itself;
        otherwise :meth:`listen` first repairs what a lost reply left behind.
        """
        return self._unmarked is None and not self._check_own_lists

    def take(self, timeout: float, queues: Sequence[str] | None = None) -> tuple[str, str] | None:
        """Move the next task id into this listener's reserved list: ``(queue, id)``, or None after ``timeout``.

        For a runner that starts the task at once with :meth:`start_taken`
        (one round trip fewer than :meth:`listen`, then ``start``). Call it
        only while :attr:`settled`; an id taken and never started is put back
        by recovery, as after a lost reply.
        """
        serving = self._queues if queues is None else tuple(q for q in self._queues if q in queues)
        if not serving:
            raise ValueError(f"None of {queues!r} is a queue of {self!r}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                taken = self._take(serving, min(self._block, max(deadline - time.monotonic(), 0.0)))
            except TRANSIENT:
                self._check_own_lists = True  # the move may have happened with its reply lost
                self._close_pubsub()
                raise
            if taken is not None or time.monotonic() >= deadline:
                return taken

    def next_task(self) -> NextTask:
        """What to pass as ``then`` to an outcome's write so that it takes the next task of this
        listener's queues in the same round trip (one round trip fewer than :meth:`take`), without
        blocking. As with :meth:`take`: only while :attr:`settled`; start the task taken with
        :meth:`start_taken`."""
        return NextTask(self._queues, self._id)

    def start_taken(self, taken: tuple[str, str], pid: int, token: str) -> tuple[Task, int] | None:
        """Reserve and start a task :meth:`take` moved, for process ``pid``: the task and its attempt.

        The task is given as :meth:`listen` returns it, reserved and not yet
        started, the snapshot a task's code is handed.

        One round trip (``reserve_start.lua``); None when the task is not to
        run (dropped, failed as malformed, or recovered from this listener
        meanwhile; logged as :meth:`listen` does). A retry after a lost
        reply is safe: the same ``pid`` gets the same answer.
        """
        queue, task_id = taken
        reply = strings(
            self._scripts.reserve_start(
                keys=[
                    keys.task(task_id),
                    keys.reserved(queue, self._id),
                    keys.failed(queue),
                    keys.started(queue),
                    keys.task_heartbeats(),
                ],
                args=[task_id, self._id, pid, token, time.time()],
            )
        )
        if reply[0] != STARTED:
            self._refused(queue, task_id, reply)
            return None
        task = self._decodable(queue, Task(task_id, flat_fields(reply[2:])))
        return None if task is None else (task, int(reply[1]))

    def _refused(self, queue: str, task_id: str, reply: list[str]) -> None:
        """Log why a task taken is not to run (the script's answer)."""
        outcome = reply[0]
        if outcome == "dropped":
            logger.warning("Dropped task id %s from queue %s: its status is %r, not pending", task_id, queue, reply[1])
        elif outcome == "rejected":
            logger.error("Task %s of queue %s failed without running: Malformed task: %s", task_id, queue, reply[1])
        elif outcome == "gone":
            logger.warning("Task %s was recovered from this listener before it was marked reserved", task_id)

    def _take(self, serving: tuple[str, ...], wait: float) -> tuple[str, str] | None:
        """Move one id to our reserved list; ``(queue, id)`` or ``None`` after ``wait``."""
        if len(serving) == 1:
            queue = serving[0]
            src, dst = keys.pending(queue), keys.reserved(queue, self._id)
            if wait <= 0:
                task_id = string_or_none(self._redis.lmove(src, dst, "RIGHT", "LEFT"))
            else:
                # Redis takes a float timeout; redis-py's annotation says int.
                task_id = string_or_none(self._redis.blmove(src, dst, wait, "RIGHT", "LEFT"))  # type: ignore[arg-type]
            return None if task_id is None else (queue, task_id)
        pubsub = self._subscribe()
        taken = self._take_first(serving)
        if taken is not None or wait <= 0:
            return taken
        # After a quiet period the caller's next call polls again: one poll per
        # period for producers that do not publish.
        return self._take_first(serving) if self._wait_for_message(pubsub, min(wait, POLL_PERIOD)) else None

    @staticmethod
    def _wait_for_message(pubsub: PubSub, wait: float) -> bool:
        """Wait up to ``wait`` seconds for a new-task message; drain any others."""
        deadline = time.monotonic() + wait
        while (remaining := deadline - time.monotonic()) > 0:
            # Subscribe confirmations arrive here too; they are not news.
            message = pubsub.get_message(ignore_subscribe_messages=False, timeout=remaining)
            if message is not None and message["type"] == "message":
                while pubsub.get_message(ignore_subscribe_messages=True, timeout=0) is not None:
                    pass
                return True
        return False

    def _take_first(self, serving: tuple[str, ...]) -> tuple[str, str] | None:
        script_keys = [keys.pending(queue) for queue in serving]
        script_keys += [keys.reserved(queue, self._id) for queue in serving]
        found = self._scripts.take_first(keys=script_keys)
        if not found:
            return None
        index, task_id = strings(found)
        return serving[int(index)], task_id

    def _subscribe(self) -> PubSub:
        if self._pubsub is None:
            pubsub = self._redis.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
            pubsub.subscribe(*(keys.channel(queue) for queue in self._queues))
            self._pubsub = pubsub
        return self._pubsub

    def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            finally:
                self._pubsub = None

    def _reserve(self, queue: str, task_id: str) -> Task | None:
        reply = strings(
            self._scripts.reserve(
                keys=[keys.task(task_id), keys.reserved(queue, self._id), keys.failed(queue)],
                args=[task_id, self._id, time.time()],
            )
        )
        if reply[0] != "reserved":
            self._refused(queue, task_id, reply)
            return None
        return self._decodable(queue, Task(task_id, flat_fields(reply[1:])))

    def _decodable(self, queue: str, task: Task) -> Task | None:
        """The task, or None once it is failed because some field is not UTF-8."""
        bad = undecodable_fields(task)
        if bad:
            reason = f"its {', '.join(bad)} field{'s are' if len(bad) > 1 else ' is'} not valid UTF-8"
            self.give_back(task, reject=reason)
            logger.error("Task %s of queue %s failed without running: Malformed task: %s", task.id, queue, reason)
            return None
        return task

    def _resume_own(self) -> Task | None:
        """Reserve a task left in our own list by a move whose reply was lost."""
        for queue in self._queues:
            for task_id in reversed(strings(self._redis.lrange(keys.reserved(queue, self._id), 0, -1))):
                if string_or_none(self._redis.hget(keys.task(task_id), "status")) == PENDING:
                    task = self._reserve(queue, task_id)
                    if task is not None:
                        return task
        self._check_own_lists = False
        return None

    def claim_orphan(self) -> Task | None:
        """Take over one task of a dead listener on this host, or return ``None``.

        A listener is dead when its id names this host and a pid that no
        longer runs (Blueque 1.0.1's rule; not under a host name that many
        hosts share, see :func:`~.identity.local_pid`). Its reserved tasks, and started
        tasks whose process is gone, move to this listener as reserved tasks
        for the caller to run; a started task whose process still runs is left
        to finish. A dead listener that holds nothing more is deregistered.
        """
        for queue in self._queues:
            for other in sorted(string_set(self._redis.smembers(keys.listeners(queue)))):
                pid = local_pid(other)
                if other == self._id or pid is None or pid_alive(pid):
                    continue
                task = self._reclaim_from(queue, other)
                if task is not None:
                    return task
        return None

    def _reclaim_from(self, queue: str, dead_id: str) -> Task | None:
        dead_list = keys.reserved(queue, dead_id)
        # Oldest first; the list is bounded by what the dead listener ran.
        for task_id in reversed(strings(self._redis.lrange(dead_list, 0, -1))):
            status, pid, token = optional_strings(
                self._redis.hmget(keys.task(task_id), ["status", "pid", "process_token"])
            )
            started_member = ""
            if status == STARTED and pid:
                if process_alive(pid, token):
                    continue  # its process outlived the listener and will finish it
                started_member = keys.started_member(dead_id, pid, task_id)
            taken = self._scripts.reclaim(
                keys=[dead_list, keys.reserved(queue, self._id), keys.task(task_id), keys.started(queue)],
                args=[task_id, self._id, time.time(), started_member],
            )
            if taken == 1:
                logger.info("Listener %s took over task %s of dead listener %s", self._id, task_id, dead_id)
                return Task(task_id, fields(self._redis.hgetall(keys.task(task_id))))
        self._deregister(queue, dead_id)
        return None

    def _deregister(self, queue: str, listener_id: str) -> bool:
        return bool(
            self._scripts.deregister(
                keys=[
                    keys.listeners(queue),
                    keys.queues(),
                    keys.reserved(queue, listener_id),
                    keys.heartbeats(),
                    keys.listener_timeouts(),
                ],
                args=[listener_id, queue, "*"],
            )
        )

    def beat(self, runs: Iterable[Run | str] = ()) -> list[str]:
        """Record this listener's heartbeat, and one for each task run its processes have.

        Puts the listener back in its queues' listener sets if recovery took
        it out while it was silent. Returns the ids of the runs that are no
        longer ours (another worker took the task over): stop them.
        """
        _, taken = liveness.beat(
            self._scripts,
            beater=self._id,
            owner=self._id,
            timeout=self.timeout,
            registries=[(keys.listeners(queue), queue) for queue in self._queues],
            runs=runs,
        )
        return taken

    def give_back_strays(self, running: Iterable[str]) -> Counter[str]:
        """Give back the tasks in this listener's own lists that it does not run; count the outcomes.

        A live listener's lists hold only the tasks its processes run. Redis
        can put others there by losing writes: a failover to a replica that
        had not received them, or a restart from an older file. Such a task's
        run is over and its outcome lost: a started one counts as lost (run
        again, up to ``max_recoveries``), any other goes back to pending.
        ``running`` must name every task a process of this listener may still
        be running. One round trip when there is nothing to give back.
        """
        mine = set(running)
        with self._redis.pipeline(transaction=False) as pipe:
            for queue in self._queues:
                pipe.lrange(keys.reserved(queue, self._id), 0, -1)
            held = [strings(found) for found in pipe.execute()]
        counts: Counter[str] = Counter()
        for queue, task_ids in zip(self._queues, held, strict=True):
            for task_id in task_ids:
                if task_id in mine:
                    continue
                status = string_or_none(self._redis.hget(keys.task(task_id), "status"))
                reason = f"listener {self._id} held it but was not running it (Redis lost its outcome)"
                outcome = self.give_back(Task(task_id, {"queue": queue}), lost=reason if status == STARTED else None)
                if outcome == "not-ours":
                    # Another listener's task (the lost writes moved it on): not ours to keep listing.
                    self._redis.lrem(keys.reserved(queue, self._id), 1, task_id)
                logger.warning("Task %s in the list of %s, which does not run it: %s", task_id, self._id, outcome)
                counts[outcome] += 1
        return counts

    def give_back(
        self, task: Task, *, lost: str | None = None, attempt: int | None = None, reject: str | None = None
    ) -> str:
        """Return a task of ours whose run ended without an outcome.

        Without ``lost`` the task is released to pending (a shutdown), counted
        in ``releases``. With ``lost`` (how its process died) it counts as a
        recovery. Past ``max_recoveries`` (``max_releases``) it fails instead.
        With ``reject`` (why it cannot run) it fails at once as malformed.
        ``attempt`` is the attempt the run started (or would have); returns
        what happened (see liveness.py), ``not-ours`` if another run owns it.
        """
        queue = task.queue or ""
        mode = "reject" if reject is not None else "release" if lost is None else "lost"
        return string(
            self._scripts.give_back(
                keys=[
                    keys.task(task.id),
                    keys.pending(queue),
                    keys.failed(queue),
                    keys.reserved(queue, self._id),
                    keys.started(queue),
                    keys.task_heartbeats(),
                ],
                args=[
                    task.id,
                    self._id,
                    mode,
                    self.max_recoveries,
                    self.max_releases,
                    reject or lost or "released by its worker",
                    time.time(),
                    keys.channel(queue),
                    "" if attempt is None else attempt,
                ],
            )
        )

    def close(self) -> bool:
        """Deregister from every queue on which this listener holds no task; True if from all."""
        self._close_pubsub()
        deregistered = [self._deregister(queue, self._id) for queue in self._queues]
        if all(deregistered):
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(keys.heartbeats(), self._id)
                pipe.hdel(keys.listener_timeouts(), self._id)
                pipe.execute()
        return all(deregistered)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
