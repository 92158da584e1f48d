"""Automatic retries: a policy on a task function, applied by the worker.

::

    from django_blueque.retry import retry

    @task
    @retry(max_attempts=5, backoff=10, on=(ConnectionError, TimeoutError))
    def fetch_feed(url): ...

When the function raises one of ``on`` and fewer than ``max_attempts``
attempts have run, the task goes back to Blueque's scheduled set, due after
``backoff * factor ** (attempt - 1)`` seconds (at most ``max_backoff``; with
``jitter``, a random half to all of that), and a scheduler moves it to
pending when it is due. Each attempt's error is kept (``TaskResult.errors``).
Monitors send ``task_retrying`` for each retry and ``task_failed`` only for
the final failure. A raw queue's ``HANDLER`` takes the same decorator, and any
task may also ``raise Retry(delay) from exc`` itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .protocol import Retry

__all__ = ["Retry", "RetryPolicy", "policy_of", "retry"]

F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "blueque_retry"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 3600.0
    jitter: bool = True
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.backoff < 0 or self.factor < 1 or self.max_backoff < 0:
            raise ValueError("backoff and max_backoff must be >= 0 and factor >= 1")
        if not self.on or not all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in self.on):
            raise ValueError("on must name exception classes")

    def applies(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt number ``attempt``, which raised ``exc``, is followed by another."""
        return attempt < self.max_attempts and isinstance(exc, self.on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt``."""
        delay = min(self.backoff * self.factor ** (attempt - 1), self.max_backoff)
        return delay * random.uniform(0.5, 1.0) if self.jitter else delay


def retry(
    max_attempts: int = 3,
    *,
    backoff: float = 1.0,
    factor: float = 2.0,
    max_backoff: float = 3600.0,
    jitter: bool = True,
    on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,),
) -> Callable[[F], F]:
    """Give a task function (under ``@task``) or a raw handler a retry policy."""
    policy = RetryPolicy(
        max_attempts=max_attempts,
        backoff=backoff,
        factor=factor,
        max_backoff=max_backoff,
        jitter=jitter,
        on=on if isinstance(on, tuple) else (on,),
    )

    def decorate(function: F) -> F:
        setattr(function, ATTRIBUTE, policy)
        return function

    return decorate


def policy_of(function: Any) -> RetryPolicy | None:
    policy = getattr(function, ATTRIBUTE, None)
    return policy if isinstance(policy, RetryPolicy) else None


def retry_or_raise(function: Any, exc: BaseException, attempt: int) -> None:
    """Raise :class:`Retry` from ``exc`` if ``function``'s policy calls for another attempt."""
    policy = policy_of(function)
    if policy is not None and policy.applies(exc, attempt):
        raise Retry(policy.delay(attempt)) from exc
