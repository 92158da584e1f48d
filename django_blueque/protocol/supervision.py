"""The skeleton of every long-running process (runners, scheduler, monitor, blueque_run).

* :class:`Supervision`: stop requests and sleeping. SIGTERM and SIGINT are
  counted (a second one asks for a harder stop) and, like SIGCHLD, wake
  :meth:`Supervision.wait` at once through a wakeup fd: the process sleeps in
  ``select`` rather than polling, and a signal handler only sets flags (it
  must not take locks or touch Redis).
* :class:`Backoff` and :meth:`Supervision.until_connected`: waiting for Redis.
* :func:`reap_exited` and :class:`Escalation`: a parent's children, reaped
  without blocking and stopped politely first, then with SIGKILL.
* :func:`run_child`: the body of a forked child.

The runners' options are :class:`~.runner.WorkerOptions`.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn, TypeVar

import redis.exceptions

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean Redis could not be reached (or did not answer in time), or is full: wait and
#: try again. A Redis at ``maxmemory`` with ``noeviction`` refuses writes (OOM) until memory is
#: freed; the refused command changed nothing (a script is refused at its first write, and each
#: script writes only after its checks), so trying it again is as safe as after an outage.
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.OutOfMemoryError)

#: Seconds between asking a child to stop and killing it with SIGKILL.
KILL_AFTER = 10.0

#: Longest sleep without a wakeup fd (signal handlers not installed): nothing
#: else tells the process that a child ended.
POLL_WITHOUT_SIGNALS = 0.05


def run_child(body: Callable[[], int]) -> NoReturn:
    """In a forked child: run ``body`` and leave with the status it returns (1 if it raised).

    ``os._exit`` skips the parent's cleanup handlers, which are not the
    child's to run; logs and output are flushed first.
    """
    status = 1
    try:
        status = body()
    except BaseException:
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def reap_exited() -> Iterator[tuple[int, int]]:
    """``(pid, wait status)`` of each child that has ended, without blocking."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no child left
            return
        if pid == 0:
            return
        yield pid, status


class Escalation:
    """Stopping children: each is sent one polite signal, then SIGKILL once ``kill_after`` has passed.

    Call :meth:`forget` when a child is reaped: its pid may be reused.
    """

    def __init__(self, kill_after: float = KILL_AFTER) -> None:
        self.kill_after = kill_after
        self._asked: dict[int, float] = {}

    def ask(self, pid: int, sig: int = signal.SIGTERM) -> bool:
        """Send ``sig`` unless already asked; True if sent now."""
        if pid in self._asked:
            return False
        self._asked[pid] = time.monotonic()
        os.kill(pid, sig)
        return True

    def asked(self, pid: int) -> bool:
        return pid in self._asked

    def kill(self, pid: int) -> None:
        self._asked.setdefault(pid, time.monotonic())
        os.kill(pid, signal.SIGKILL)

    def kill_overdue(self) -> None:
        """SIGKILL every child asked at least ``kill_after`` seconds ago (and not yet forgotten)."""
        now = time.monotonic()
        for pid, since in self._asked.items():
            if now - since >= self.kill_after:
                os.kill(pid, signal.SIGKILL)

    def forget(self, pid: int) -> bool:
        """A child was reaped; True if it had been asked to stop."""
        return self._asked.pop(pid, None) is not None


class Backoff:
    """The wait after each Redis error in a row, for every long-running loop.

    From 0.1 s, doubling up to ``cap``, with a log line per error and one when
    Redis answers again.
    """

    def __init__(self, cap: float, log: logging.Logger = logger) -> None:
        self.cap = cap
        self.delay = 0.0
        self.failures = 0
        self._log = log

    def failed(self, exc: BaseException) -> float:
        """An error: the seconds to wait before the next try."""
        self.failures += 1
        self.delay = min(self.delay * 2 or 0.1, self.cap)
        self._log.warning("Redis unavailable (%s); retrying in %.1fs", exc, self.delay)
        return self.delay

    def succeeded(self) -> None:
        if self.failures:
            self._log.warning("Redis answers again, after %d failed attempt(s)", self.failures)
        self.delay = 0.0
        self.failures = 0


class Interrupted(BaseException):
    """A stop request cut short the blocking call under :meth:`Supervision.interruptible`.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that no ``except
    Exception`` on the way swallows it; redis-py drops a connection whose
    reply it was waiting for when one passes.
    """


class Supervision:
    """Stop requests (signals, :meth:`stop`) and interruptible sleeps of one long-running process."""

    def __init__(self) -> None:
        self._interruptible = False
        self.signals = 0
        #: Signals received so far, by number.
        self.received: dict[int, int] = {}
        self.stopping_since: float | None = None
        self._read = self._write = -1
        self._installed = False
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1

    @property
    def stopping(self) -> bool:
        return self.stopping_since is not None

    def past_grace(self, grace: float | None) -> bool:
        """Stopping, and either a second signal came or ``grace`` seconds (if any) have passed."""
        if self.stopping_since is None:
            return False
        if self.signals >= 2:
            return True
        return grace is not None and time.monotonic() - self.stopping_since >= grace

    def stop(self) -> None:
        """Ask the process to stop. Signal-safe."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        self.received[signum] = self.received.get(signum, 0) + 1
        self.stop()
        self.interrupt()

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Let a stop request cut short the blocking call inside: it raises :class:`Interrupted` there.

        For waiting for the next task, so that an idle worker stops at once
        however long it blocks. The exception may come at any point inside,
        before or after the call's reply: what the call did is unknown (see
        :meth:`~.listener.Listener.unsettle`).

        A stop requested before the call began (the signal came after the
        caller last looked at :attr:`stopping`) raises at once, before the
        call: it would otherwise block for its whole length.
        """
        self._interruptible = True
        if self.stopping:  # after setting the flag: a signal from here on raises in the handler
            self._interruptible = False
            raise Interrupted
        try:
            yield
        finally:
            self._interruptible = False

    def interrupt(self) -> None:
        """From a stop request's signal handler: raise :class:`Interrupted` inside :meth:`interruptible`."""
        if self._interruptible:
            self._interruptible = False
            raise Interrupted

    def open(self, *, install_signal_handlers: bool = True) -> None:
        """Create the wakeup fd and, if asked, handle SIGTERM, SIGINT and SIGCHLD."""
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._installed = install_signal_handlers
        if install_signal_handlers:
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
            # A handler of its own, so a child's exit also writes to the wakeup fd.
            self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
            self._previous_wakeup = signal.set_wakeup_fd(self._write)

    def close(self) -> None:
        """Restore the previous signal handlers and close the wakeup fd."""
        if self._installed:
            signal.set_wakeup_fd(self._previous_wakeup)
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1

    def in_child(self) -> None:
        """In a forked child: let go of the parent's wakeup fd and signal handlers."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # Ctrl-C in a terminal reaches the whole group: the parent decides.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1

    def wait(self, timeout: float, also: Sequence[int] = ()) -> None:
        """Sleep until a signal arrives, one of the fds ``also`` can be read, or ``timeout`` seconds pass."""
        if not self._installed:
            timeout = min(timeout, POLL_WITHOUT_SIGNALS)
        select.select([self._read, *also], [], [], max(timeout, 0.0))
        try:
            while os.read(self._read, 512):
                pass
        except BlockingIOError:
            pass

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            self.wait(min(left, 1.0))

    def until_connected(self, step: Callable[[], T], what: str, max_backoff: float) -> T | None:
        """Run ``step`` until Redis answers; None if asked to stop first.

        For a process starting while Redis is not there yet (in containers it
        often comes up after the workers): one log line per failed attempt,
        the wait doubling from 0.1 s up to ``max_backoff``.
        """
        delay, attempt = 0.1, 0
        while not self.stopping:
            try:
                done = step()
            except TRANSIENT as exc:
                attempt += 1
                logger.warning("Waiting for Redis to %s (attempt %d: %s); next try in %.1fs", what, attempt, exc, delay)
                self.sleep(delay)
                delay = min(delay * 2, max_backoff)
                continue
            if attempt:
                logger.warning("Redis answers: done waiting to %s, after %d failed attempt(s)", what, attempt)
            return done
        return None
