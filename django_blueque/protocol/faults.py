"""Fault injection, for tests only: make this process exit between two Redis calls.

Off, and free, unless the environment variable ``BLUEQUE_CRASH_AT`` is set
when a :class:`~.client.Client` is made. Then every Redis call the client
makes is counted, and the process exits with ``os._exit(CRASH_EXIT)`` at the
chosen one, with nothing flushed or cleaned up, as a crash would leave it.
Never set it in production: its whole purpose is to kill the process. A
value that cannot be read is an error (``ValueError`` from ``Client()``),
never silently ignored. Values:

``before:N``
    exit just before the Nth Redis call of this process is sent;
``after:N``
    exit just after the Nth call has run in Redis and its reply has been
    read, before anything uses the reply;
``random:P:SEED``
    at each call, with probability ``P``, exit before or after it; the
    choices come from ``random.Random(SEED)``, so a seed replays a crash;
``never``
    count the calls and never exit (:func:`calls` says how many so far), so
    a test can learn how many calls an operation makes, then sweep them.

A call is one round trip: a command, a script's ``EVALSHA``, or a whole
pipeline or ``MULTI``/``EXEC`` block (an empty pipeline sends nothing and is
not counted). Calls are counted per process, over every client it makes; a
forked child starts counting from zero (and from ``Random(SEED)`` again).
What a pub/sub connection reads (a listener on several queues waiting for
news) is not counted. A script that Redis does not have yet costs a failed
``EVALSHA`` and a ``SCRIPT LOAD`` more, so a test that counts calls loads
the scripts first.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

ENV = "BLUEQUE_CRASH_AT"
#: The exit status of a process that fault injection ended.
CRASH_EXIT = 86
BEFORE, AFTER, RANDOM, NEVER = "before", "after", "random", "never"

T = TypeVar("T")
#: Set on a redis-py client whose calls are counted: the plan that counts them.
_MARK = "_blueque_crash_plan"


@dataclass
class Plan:
    """Where this process exits: parsed from ``BLUEQUE_CRASH_AT``, and its count of calls so far."""

    text: str
    side: str
    at: int = 0
    probability: float = 0.0
    seed: int = 0
    calls: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def parse(cls, text: str) -> Plan:
        kind, _, rest = text.strip().partition(":")
        try:
            if kind in (BEFORE, AFTER) and int(rest) >= 1:
                return cls(text, kind, at=int(rest))
            if kind == RANDOM:
                chance, _, seed = rest.partition(":")
                if 0.0 <= float(chance) <= 1.0:
                    return cls(text, RANDOM, probability=float(chance), seed=int(seed))
            if kind == NEVER and not rest:
                return cls(text, NEVER)
        except ValueError:
            pass
        raise ValueError(f"{ENV}={text!r} is not before:N, after:N (N >= 1), random:P:SEED (0 <= P <= 1) or never")

    def restart(self) -> None:
        """Count from zero again, as a new process does (a forked child)."""
        self.calls = 0
        self._random = random.Random(self.seed)

    def call(self, run: Callable[[], T]) -> T:
        """Count one Redis call, and run it unless this is where the process exits."""
        self.calls += 1
        side = self._side()
        if side == BEFORE:
            crash(self.calls, side)
        try:
            return run()
        finally:
            if side == AFTER:
                crash(self.calls, side)

    def _side(self) -> str | None:
        if self.side == RANDOM:
            if self._random.random() < self.probability:
                return self._random.choice((BEFORE, AFTER))
            return None
        if self.side in (BEFORE, AFTER) and self.calls == self.at:
            return self.side
        return None


def crash(call: int, side: str) -> None:
    """Exit now, as a crash would: no cleanup, no flushing."""
    os.write(2, f"{ENV}: process {os.getpid()} exits {side} Redis call {call}\n".encode())
    os._exit(CRASH_EXIT)


_plan: Plan | None = None


def _restart_in_child() -> None:
    if _plan is not None:
        _plan.restart()


def from_environment() -> Plan | None:
    """The plan ``BLUEQUE_CRASH_AT`` asks for, shared by every client of this process; None when unset."""
    global _plan
    text = os.environ.get(ENV)
    if not text:
        return None
    if _plan is None or _plan.text != text:
        plan = Plan.parse(text)
        if _plan is None:
            os.register_at_fork(after_in_child=_restart_in_child)
        _plan = plan
    return _plan


def calls() -> int:
    """The Redis calls counted in this process so far (0 when fault injection is off)."""
    return 0 if _plan is None else _plan.calls


def armed(redis: Redis) -> bool:
    """Whether this redis-py client's calls are counted."""
    return _MARK in vars(redis)


def arm(redis: Redis, plan: Plan) -> None:
    """Count every call of ``redis`` (commands, scripts, pipelines) against ``plan``."""
    if armed(redis):
        return
    # redis-py leaves these untyped.
    execute_command: Callable[..., Any] = redis.execute_command
    pipeline = redis.pipeline

    def counted_execute_command(*args: Any, **options: Any) -> Any:
        return plan.call(lambda: execute_command(*args, **options))

    def counted_pipeline(transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = pipeline(transaction, shard_hint)
        execute: Callable[[bool], list[Any]] = pipe.execute

        def counted_execute(raise_on_error: bool = True) -> list[Any]:
            if not pipe.command_stack:
                return execute(raise_on_error)
            return plan.call(lambda: execute(raise_on_error))

        setattr(pipe, "execute", counted_execute)  # noqa: B010 (mypy: cannot assign to a method)
        return pipe

    setattr(redis, "execute_command", counted_execute_command)  # noqa: B010
    setattr(redis, "pipeline", counted_pipeline)  # noqa: B010
    setattr(redis, _MARK, plan)
