"""Running one task in the current process: start, call, then complete or fail."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

from .errors import Retry
from .liveness import Run
from .supervision import TRANSIENT
from .task import Task

if TYPE_CHECKING:
    from .client import Client
    from .processor import NextTask, Processor

logger = logging.getLogger(__name__)

TaskCallback = Callable[[Task], "str | None"]
T = TypeVar("T")

#: Redis errors worth waiting out: the server restarting or unreachable.
MAX_BACKOFF = 5.0


def result_string(result: object) -> str:
    """What a callback returned, as the string stored in ``result``."""
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    raise TypeError(f"A task callback must return a string or None, not {type(result).__name__}")


def error_string(exc: BaseException) -> str:
    """The ``error`` field for an exception: its message, as Blueque 1.0.1 stores it."""
    return str(exc) or type(exc).__name__


def class_path(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def with_retries(step: Callable[[], T], what: str) -> T:
    """Run a Redis step until it succeeds, waiting out connection trouble.

    Used for the writes that must not be lost (a task's start and outcome):
    the scripts behind them are idempotent, so a retry after a lost reply is
    safe.
    """
    delay = 0.1
    while True:
        try:
            return step()
        except TRANSIENT as exc:
            logger.warning("Redis unavailable while %s (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


#: Exit statuses of a task's process that stopped itself: its task was taken
#: over by another worker, or (LOST_REDIS="stop") Redis was out of reach.
EXIT_TAKEN_OVER, EXIT_REDIS_LOST = 4, 5


def stop_after_redis_lost(timeout: float) -> float:
    """With LOST_REDIS="stop": seconds without a successful heartbeat after which a
    worker stops its tasks. Observers judge a listener dead only after watching
    it silent for the whole timeout, from no earlier than its last beat was
    sent, so the stop comes a quarter of the timeout before any takeover."""
    return timeout * 0.75


class RedisWatchdog:
    """Calls ``on_lost`` (from a thread, every tenth of a second or so) while no
    heartbeat has succeeded for ``after`` seconds. The thread does not touch
    Redis, so a call hanging on a dead connection cannot delay it."""

    def __init__(self, after: float, on_lost: Callable[[], None]) -> None:
        self._after = after
        self._on_lost = on_lost
        self._last = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blueque-redis-watchdog", daemon=True)
        self._thread.start()

    def beat_sent(self, at: float) -> None:
        """A heartbeat sent at ``at`` (monotonic) succeeded."""
        self._last = max(self._last, at)

    @property
    def lost(self) -> bool:
        """No heartbeat has succeeded for ``after`` seconds."""
        return time.monotonic() - self._last >= self._after

    def _run(self) -> None:
        while not self._stopped.wait(min(0.1, self._after / 10)):
            if self.lost:
                self._on_lost()

    def stop(self) -> None:
        self._stopped.set()


@dataclass(frozen=True)
class Heartbeat:
    """How a worker's task process beats for its task.

    ``beat`` sends one heartbeat for the runs given and returns those taken
    over by another worker. A process whose task was taken over leaves at
    once (``EXIT_TAKEN_OVER``), so two runs overlap at most until the first
    heartbeat after a partition heals; with ``redis_lost_after`` (LOST_REDIS
    "stop") it also leaves (``EXIT_REDIS_LOST``) once no beat has succeeded
    for that long, before anyone may take its task over.
    """

    interval: float
    beat: Callable[[list[Run]], list[str]]
    redis_lost_after: float | None = None


def beat_once(heartbeat: Heartbeat, run: Run, watchdog: RedisWatchdog | None) -> bool:
    """Send one heartbeat for ``run``; whether another worker took it over.

    A beat that fails is logged and counts as not taken over: the next may
    succeed, and recovery tolerates a few missed. Only a beat that succeeded
    tells the watchdog.
    """
    sent = time.monotonic()
    try:
        taken = heartbeat.beat([run])
    except TRANSIENT as exc:
        logger.warning("Heartbeat for task %s failed (%s)", run.task_id, exc)
        return False
    except Exception:  # the same, but unexpected: with the traceback
        logger.warning("Heartbeat for task %s failed", run.task_id, exc_info=True)
        return False
    if watchdog is not None:
        watchdog.beat_sent(sent)
    return bool(taken)


class TaskHeartbeat:
    """Beats for one running task from a thread, until stopped.

    The thread keeps the task alive in other workers' eyes even if this
    process's listener dies; a task whose code holds the GIL for long can
    starve it, which is why the fork runner's main process beats for its
    children too.
    """

    def __init__(self, heartbeat: Heartbeat, run: Run, *, at_once: bool = False) -> None:
        self._heartbeat = heartbeat
        self._run_of = run
        self._at_once = at_once
        self._stopped = threading.Event()
        self._watchdog = (
            None
            if heartbeat.redis_lost_after is None
            else RedisWatchdog(heartbeat.redis_lost_after, lambda: self._leave(EXIT_REDIS_LOST))
        )
        self._thread = threading.Thread(target=self._run, name=f"blueque-heartbeat-{run.task_id}", daemon=True)
        self._thread.start()

    def _leave(self, status: int) -> None:
        leave(self._run_of, status)

    def _run(self) -> None:
        # With at_once, the first beat is sent now: another process beat for
        # the run until now, and may have stopped a while ago.
        wait = 0.0 if self._at_once else self._heartbeat.interval
        while not self._stopped.wait(wait):
            wait = self._heartbeat.interval
            if beat_once(self._heartbeat, self._run_of, self._watchdog) and not self._stopped.is_set():
                self._leave(EXIT_TAKEN_OVER)

    def stop(self) -> None:
        self._stopped.set()
        if self._watchdog is not None:
            self._watchdog.stop()


class RunBeater:
    """Beats for the run this process has in hand, from one thread that serves run after run.

    For a process that runs task after task (a prefork worker's child): a
    thread started once costs nothing per task, where a thread per task
    (:class:`TaskHeartbeat`) costs its start. The thread wakes every
    ``interval`` and beats for the run in hand, if any, so a run's first beat
    comes at most ``interval`` after its start, as with a thread of its own.
    The process leaves as :class:`Heartbeat` says, only for the run still in
    hand: a run that ended meanwhile is not this process's business any more.
    """

    def __init__(self, heartbeat: Heartbeat) -> None:
        self._heartbeat = heartbeat
        self._lock = threading.Lock()
        self._run: Run | None = None
        self._stopped = threading.Event()
        self._watchdog = (
            None
            if heartbeat.redis_lost_after is None
            else RedisWatchdog(heartbeat.redis_lost_after, lambda: self._leave_if_in_hand(None, EXIT_REDIS_LOST))
        )
        self._thread = threading.Thread(target=self._beat_forever, name="blueque-heartbeat", daemon=True)
        self._thread.start()

    def begin(self, run: Run) -> None:
        """A run starts (its start was just recorded: Redis answered)."""
        with self._lock:
            self._run = run
            if self._watchdog is not None:
                self._watchdog.beat_sent(time.monotonic())

    def end(self) -> None:
        """The run in hand is over: its outcome is about to be recorded."""
        with self._lock:
            self._run = None

    def _leave_if_in_hand(self, run: Run | None, status: int) -> None:
        """Leave with ``status`` if ``run`` (any run, for None) is still in hand."""
        with self._lock:
            if self._run is None or (run is not None and self._run is not run) or self._stopped.is_set():
                return
            # The watchdog judged before taking the lock: a run begun meanwhile, after a long idle
            # spell, has reset its clock. Judge again.
            if status == EXIT_REDIS_LOST and self._watchdog is not None and not self._watchdog.lost:
                return
            leave(self._run, status)

    def _beat_forever(self) -> None:
        while not self._stopped.wait(self._heartbeat.interval):
            run = self._run
            if run is not None and beat_once(self._heartbeat, run, self._watchdog):
                self._leave_if_in_hand(run, EXIT_TAKEN_OVER)

    def stop(self) -> None:
        self._stopped.set()
        if self._watchdog is not None:
            self._watchdog.stop()


def leave(run: Run, status: int) -> None:
    """End this process at once, as :class:`Heartbeat` says: its run was taken over, or Redis is out of reach."""
    reason = "another worker took it over" if status == EXIT_TAKEN_OVER else "Redis is out of reach"
    logger.warning("Stopping task %s: %s", run.task_id, reason)
    logging.shutdown()
    os._exit(status)


@dataclass(frozen=True)
class Outcome:
    """What running a task's callback came to, before it is recorded.

    ``kind`` is ``"complete"`` (with ``result``), ``"fail"`` or ``"retry"``
    (with ``error``, ``exception``, ``traceback``, and for a retry ``eta``,
    epoch seconds). Plain strings and a number, so a fork-mode task process
    can hand it to its parent as JSON.
    """

    kind: str
    result: str = ""
    error: str = ""
    exception: str = ""
    traceback: str = ""
    eta: float = 0.0

    KINDS = ("complete", "fail", "retry")

    @classmethod
    def of_exception(cls, kind: str, exc: BaseException, *, eta: float = 0.0) -> Outcome:
        return cls(
            kind,
            error=error_string(exc),
            exception=class_path(exc),
            traceback="".join(traceback.format_exception(exc)),
            eta=eta,
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Outcome:
        """The outcome a task process sent; ``ValueError`` if it is not one."""
        fields = json.loads(data)
        if not isinstance(fields, dict) or fields.get("kind") not in cls.KINDS:
            raise ValueError("not a task outcome")
        return cls(**fields)


def outcome_of(task: Task, callback: TaskCallback, *, own_interrupts: bool) -> Outcome:
    """Call ``callback(task)`` and say what it came to; nothing is recorded.

    Any exception fails the task, ``SystemExit`` included. A
    ``KeyboardInterrupt`` does too where ``own_interrupts`` says it can only
    be the task's own (a worker's task processes ignore SIGINT); otherwise
    (Ctrl-C at an inline run) it propagates.
    """
    try:
        return Outcome("complete", result=result_string(callback(task)))
    except KeyboardInterrupt as interrupt:
        if not own_interrupts:
            raise
        return Outcome.of_exception("fail", interrupt)
    except Retry as retry:
        return Outcome.of_exception("retry", retry.__cause__ or retry, eta=time.time() + retry.delay)
    except BaseException as exc:
        return Outcome.of_exception("fail", exc)


def write_outcome(processor: Processor, outcome: Outcome, *, then: NextTask | None = None) -> bool:
    """Record a started task's outcome: one fenced, idempotent round trip.

    Returns False if a newer attempt owns the task (nothing was recorded).
    Redis errors are raised as they are. With ``then``, a complete or failed
    outcome takes the next task in the same round trip (a retry does not).
    """
    if outcome.kind == "complete":
        return processor.complete(outcome.result, then=then)
    details = {"exception": outcome.exception, "traceback": outcome.traceback}
    if outcome.kind == "retry":
        return processor.retry(outcome.eta, outcome.error, **details)
    return processor.fail(outcome.error, **details, then=then)


def log_outcome(task_id: str, outcome: Outcome, recorded: bool) -> None:
    if outcome.kind == "retry":
        logger.info("Task %s will run again in %.1fs: %s", task_id, outcome.eta - time.time(), outcome.error)
    elif outcome.kind == "fail":
        logger.info("Task %s failed: %s", task_id, outcome.error)
    if not recorded:
        logger.warning("Task %s: a newer attempt owns it, so this run's outcome was not recorded", task_id)


def record(
    processor: Processor, outcome: Outcome, *, then: NextTask | None = None, lost: Callable[[], None] = lambda: None
) -> bool:
    """Record a started task's outcome, waiting out Redis outages; True if it completed.

    With ``then``, the first try takes the next task too (see
    :func:`write_outcome`). A try after a lost reply takes nothing, as the
    first may have moved a task already: ``lost`` is called then (the
    listener looks in its own lists before it takes another).
    """
    task_id = processor.task.id
    tries = 0

    def write() -> bool:
        nonlocal tries
        tries += 1
        if tries == 2:
            lost()
        return write_outcome(processor, outcome, then=then if tries == 1 else None)

    recorded = with_retries(write, f"recording task {task_id}'s outcome")
    log_outcome(task_id, outcome, recorded)
    return outcome.kind == "complete"


def perform(client: Client, task: Task, callback: TaskCallback, *, beating: RunBeater | None = None) -> bool:
    """Run a reserved task here and record the outcome; True if it completed.

    Any exception from ``callback`` fails the task, with its message, class
    and traceback, ``SystemExit`` included. With ``beating`` its thread beats
    for the task while it runs, and ends this process if the task is taken
    over (see :class:`Heartbeat`): for a worker's task processes only, which
    ignore SIGINT, so a ``KeyboardInterrupt`` there is the task's own and
    fails it too. Without, a ``KeyboardInterrupt`` (Ctrl-C at an inline run)
    propagates, leaving the task started for recovery to find. Raises
    ``TaskNotOwned`` (and runs nothing)
    if the task was handed to another listener meanwhile. The start and the
    outcome are retried while Redis is unreachable, so an outcome produced
    during an outage is stored once Redis is back.
    """
    processor = client.get_processor(task)
    with_retries(processor.start, f"starting task {task.id}")
    return run_started(processor, callback, beating=beating)


def run_started(processor: Processor, callback: TaskCallback, *, beating: RunBeater | None = None) -> bool:
    """Run a task this process has started, as :func:`perform` does once the start is recorded."""
    return record(processor, run_to_outcome(processor, callback, beating))


def run_to_outcome(processor: Processor, callback: TaskCallback, beating: RunBeater | None) -> Outcome:
    """Run a started task's callback, with ``beating`` beating for it; what it came to, not recorded yet."""
    task = processor.task
    assert processor.attempt is not None
    if beating is not None:
        beating.begin(Run(task.id, os.getpid(), processor.attempt))
    try:
        return outcome_of(task, callback, own_interrupts=beating is not None)
    finally:
        if beating is not None:
            beating.end()
