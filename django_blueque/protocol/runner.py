"""What the two runners share: their options, their constructor, their counts and their stop.

:class:`WorkerOptions` is the one definition of how a worker runs (huey's
``ConsumerConfig`` is the model): :class:`~.forking_runner.ForkingRunner`,
:class:`~.prefork_runner.PreforkRunner`, ``forking_runner.run()`` and the
``blueque_worker`` command all take these names, and they are checked here,
once. :class:`Runner` is the part of a runner that does not depend on how
tasks get a process: it holds the options, counts what ran and what went
back to pending, says what a stop request does, and opens and closes the
process's :class:`~.supervision.Supervision`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .defaults import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_LISTENER_TIMEOUT,
    DEFAULT_LOST_REDIS,
    DEFAULT_MAX_RECOVERIES,
    DEFAULT_MAX_RELEASES,
    DEFAULT_MAX_TASKS_PER_CHILD,
    LOST_REDIS_CHOICES,
    LOST_REDIS_STOP,
    MIN_LISTENER_TIMEOUT,
)
from .liveness import beat_interval, reconnect_backoff_cap
from .supervision import Supervision
from .work import TaskCallback, stop_after_redis_lost

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    """How a worker runs. Invalid values raise ``ValueError`` when the options are made.

    ``queue_limits`` applies to the forking runner only; ``max_tasks_per_child``
    and ``max_memory_mb`` to the prefork runner only. A runner refuses an
    option of the other mode that is set to anything but its default.
    """

    #: Tasks run at once.
    concurrency: int = 1
    #: Longest single blocking call (seconds); see ``defaults.DEFAULT_BLOCK_TIMEOUT``.
    block_timeout: float = DEFAULT_BLOCK_TIMEOUT
    #: Seconds without a heartbeat after which this worker's listeners are dead.
    listener_timeout: float = DEFAULT_LISTENER_TIMEOUT
    #: Times a task may lose its process before it fails.
    max_recoveries: int = DEFAULT_MAX_RECOVERIES
    #: Times a task may be given back unfinished before it fails.
    max_releases: int = DEFAULT_MAX_RELEASES
    #: ``"continue"``: tasks run on while Redis is out of reach; ``"stop"``: they are stopped in time.
    lost_redis: str = DEFAULT_LOST_REDIS
    #: Seconds a stop waits for running tasks before putting them back in pending (None: no limit).
    grace: float | None = None
    #: Stop after this many tasks (None: never). In prefork mode, per child.
    max_tasks: int | None = None
    #: Fork mode: at most this many tasks of a queue at once (default: ``concurrency``).
    queue_limits: Mapping[str, int] = field(default_factory=dict)
    #: Prefork mode: a child leaves, and is replaced, after this many tasks.
    max_tasks_per_child: int = DEFAULT_MAX_TASKS_PER_CHILD
    #: Prefork mode: a child leaves, and is replaced, once its resident memory passes this (MiB).
    max_memory_mb: float | None = None

    def __post_init__(self) -> None:
        problems = [
            (self.concurrency < 1, f"concurrency must be at least 1, not {self.concurrency}"),
            (self.block_timeout <= 0, f"block_timeout must be above 0, not {self.block_timeout}"),
            (
                self.listener_timeout < MIN_LISTENER_TIMEOUT,
                f"listener_timeout must be at least {MIN_LISTENER_TIMEOUT:g}s, not {self.listener_timeout}",
            ),
            (self.max_recoveries < 0, f"max_recoveries must be at least 0, not {self.max_recoveries}"),
            (self.max_releases < 1, f"max_releases must be at least 1, not {self.max_releases}"),
            (
                self.lost_redis not in LOST_REDIS_CHOICES,
                f"lost_redis must be one of {LOST_REDIS_CHOICES}, not {self.lost_redis!r}",
            ),
            (self.grace is not None and not self.grace >= 0, f"grace must be at least 0, not {self.grace}"),
            (self.max_tasks is not None and self.max_tasks < 1, f"max_tasks must be at least 1, not {self.max_tasks}"),
            (
                any(limit < 1 for limit in self.queue_limits.values()),
                f"every queue limit must be at least 1, not {dict(self.queue_limits)}",
            ),
            (
                self.max_tasks_per_child < 1,
                f"max_tasks_per_child must be at least 1, not {self.max_tasks_per_child}",
            ),
            (
                self.max_memory_mb is not None and not self.max_memory_mb > 0,
                f"max_memory_mb must be above 0, not {self.max_memory_mb}",
            ),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)

    @property
    def beat_interval(self) -> float:
        """Seconds between heartbeats (and between looks at the other listeners)."""
        return beat_interval(self.listener_timeout)

    @property
    def block(self) -> float:
        """Longest blocking call: never so long that a heartbeat is late."""
        return min(self.block_timeout, self.beat_interval)

    @property
    def redis_lost_after(self) -> float | None:
        """With ``lost_redis="stop"``, seconds without a heartbeat after which running tasks are stopped."""
        return stop_after_redis_lost(self.listener_timeout) if self.lost_redis == LOST_REDIS_STOP else None

    @property
    def backoff_cap(self) -> float:
        """Longest wait between tries while Redis does not answer."""
        return reconnect_backoff_cap(self.listener_timeout)


#: The options each mode alone uses.
FORK_ONLY = frozenset({"queue_limits"})
PREFORK_ONLY = frozenset({"max_tasks_per_child", "max_memory_mb"})


class Runner:
    """The part of a runner that does not depend on how tasks get a process.

    ``options`` are :class:`WorkerOptions`' fields, as keywords. ``before_fork``
    runs in this process before each fork (Django closes its database
    connections there).
    """

    #: The options of the other mode, refused when set.
    other_mode_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        client: Client,
        queues: str | Sequence[str],
        task_callback: TaskCallback,
        concurrency: int = 1,
        *,
        before_fork: Callable[[], None] | None = None,
        **options: Any,
    ) -> None:
        self.options = WorkerOptions(concurrency=concurrency, **options)
        baseline = WorkerOptions()
        for name in sorted(self.other_mode_options):
            if getattr(self.options, name) != getattr(baseline, name):
                raise ValueError(f"{type(self).__name__} does not take {name}")
        self._client = client
        self._queues = (queues,) if isinstance(queues, str) else tuple(queues)
        self._callback = task_callback
        self._before_fork = before_fork
        self._supervision = Supervision()
        #: Tasks that ran here to an outcome, or whose process was lost.
        self.tasks_run = 0
        #: Tasks started here that went back to pending unfinished (a stop, Redis out of reach).
        self.tasks_released = 0
        self._announced = 0
        self._setup()

    def _setup(self) -> None:
        """The state of the runner's own mode, once the options are known."""

    def stop(self) -> None:
        """Stop taking tasks; :meth:`run` returns once the running ones are done. Signal-safe."""
        self._supervision.stop()

    def run(self, *, burst: bool = False, install_signal_handlers: bool = True) -> int:
        """Serve the queues until stopped; return how many tasks ran here (to an outcome, or lost).

        Tasks given back to pending unfinished (a stop) are not counted; see
        :attr:`tasks_released`. With ``burst``, return once no task is pending
        and none is running.
        """
        self._supervision.open(install_signal_handlers=install_signal_handlers)
        try:
            self._serve(burst)
        finally:
            self._supervision.close()
        if self._announced:
            logger.warning("Stopped: %d task(s) ran, %d went back to pending", self.tasks_run, self.tasks_released)
        return self.tasks_run

    def _serve(self, burst: bool) -> None:
        raise NotImplementedError

    def _new_stop_request(self) -> int:
        """How many stop signals there have been, if more than when last asked; else 0.

        For the loop to say at once what a stop request does (a signal handler
        must not log).
        """
        signals = self._supervision.signals
        if signals == self._announced:
            return 0
        self._announced = signals
        return signals

    def _grace_note(self) -> str:
        grace = self.options.grace
        return "" if grace is None else f"; after {grace:g}s they are stopped and go back to pending"
