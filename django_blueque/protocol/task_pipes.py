"""The two pipes between a fork-mode worker and each process it forks for a task.

The worker's main process does its children's Redis work: it starts each
task with its child's pid, beats for it, and records the outcome the child
sends back. So a child needs no Redis connection of its own; a new
connection after a fork (connect, ``HELLO``, ``CLIENT SETINFO``) costs more
than the fork itself.

- control, parent to child: ``g`` and a line of JSON, run this task (its
  start is recorded; the JSON holds the attempt, the task's id and its
  fields, as a child is forked before its task is known), ``n`` do not run
  it (it is no longer this worker's, or the worker is stopping), ``b`` after
  each heartbeat that succeeded, ``r`` the outcome is recorded.
- report, child to parent: the outcome, one line of JSON.

A child is left to itself when its parent stops answering: the control pipe
closes (the parent died), no ``b`` comes for two heartbeat intervals (the
parent is frozen, or cut off from Redis), or no ``r`` comes soon after the
report (the parent is waiting for the next task in ``BLMOVE``, which it
cannot leave early). The child then beats for its task over its own
connection and records its outcome itself. Both writes are fenced and
idempotent: a parent and a child that both record an outcome store it once,
and neither writes over a newer attempt.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import threading
import time
from collections.abc import Callable, Mapping

from .work import Outcome

GO, REFUSE, KEEPALIVE, RECORDED = b"g", b"n", b"b", b"r"


def _read_available(fd: int) -> tuple[bytes, bool]:
    """What can be read from a non-blocking ``fd`` now, and whether it is closed."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


class ChildPipes:
    """The parent's ends of one child's pipes."""

    def __init__(self) -> None:
        self._control_read, self.control = os.pipe()
        self.report, self._report_write = os.pipe()
        self._received = b""
        self.outcome: Outcome | None = None
        #: The report was malformed, or the pipe closed before a whole one came.
        self.closed = False

    def in_parent(self) -> None:
        """After the fork, in the parent: keep our ends, non-blocking."""
        os.close(self._control_read)
        os.close(self._report_write)
        os.set_blocking(self.control, False)
        os.set_blocking(self.report, False)

    def in_child(self) -> ParentPipes:
        """After the fork, in the child: its ends."""
        os.close(self.control)
        os.close(self.report)
        return ParentPipes(self._control_read, self._report_write)

    def child_ends(self) -> tuple[int, int]:
        """The child's ends, for a fork server to hand to the process it forks (then :meth:`in_parent`)."""
        return self._control_read, self._report_write

    def discard(self) -> None:
        """Close every end held here: a process that has the child's ends reads the control pipe's end."""
        self.close()
        for fd in (self._control_read, self._report_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """Close our ends (in the parent once the child is gone; in a sibling at once)."""
        for fd in (self.control, self.report):
            with contextlib.suppress(OSError):  # closed already
                os.close(fd)

    def send(self, message: bytes) -> None:
        # The child may be gone, or not reading: it acts alone then.
        with contextlib.suppress(BrokenPipeError, BlockingIOError):
            os.write(self.control, message)

    def go(self, attempt: int, task_id: str, fields: Mapping[str, str]) -> None:
        """Let the child run this task; blocking if the task's fields fill the pipe."""
        message = GO + json.dumps({"attempt": attempt, "id": task_id, "fields": dict(fields)}).encode() + b"\n"
        try:
            with contextlib.suppress(BlockingIOError):  # the usual case: it all fits in the pipe
                message = message[os.write(self.control, message) :]
            if message:
                os.set_blocking(self.control, True)
                try:
                    while message:
                        message = message[os.write(self.control, message) :]
                finally:
                    os.set_blocking(self.control, False)
        except BrokenPipeError:  # the child is gone; reaping it gives the task back
            pass

    def read_report(self) -> Outcome | None:
        """The child's outcome once all of it has come; reads what is there without blocking."""
        if self.outcome is not None or self.closed:
            return self.outcome
        data, eof = _read_available(self.report)
        self._received += data
        line, newline, _ = self._received.partition(b"\n")
        if newline:
            try:
                self.outcome = Outcome.from_json(line)
            except (ValueError, TypeError):
                self.closed = True
        elif eof:
            self.closed = True
        return self.outcome


class ParentPipes:
    """A child's ends of its pipes, and the watch that tells when it is on its own."""

    def __init__(self, control: int, report: int) -> None:
        self._control = control
        self._report = report
        self._alone = threading.Event()
        self._recorded = threading.Event()
        self.alone_because = ""
        #: The watch's thread, and what :meth:`watch` hands it: until then
        #: the control pipe is :meth:`wait_for_go`'s alone.
        self._watcher: threading.Thread | None = None
        self._handed = threading.Event()
        self._watch_with: tuple[float, Callable[[], None]] = (0.0, lambda: None)

    def prepare_watch(self) -> None:
        """Start the watch's thread now, idle until :meth:`watch`: in a process just forked, a
        thread's start costs a millisecond or more, better spent before its task is known."""
        self._watcher = threading.Thread(target=self._watch_when_handed, name="blueque-parent-watch", daemon=True)
        self._watcher.start()

    def wait_for_go(self) -> tuple[int, str, dict[str, str]] | None:
        """Block until the parent says: ``(attempt, task id, its fields)``, or None: do not run."""
        received = b""
        while True:
            chunk = os.read(self._control, 65536)
            if not chunk:  # the parent is gone
                return None
            # Keepalives may come first, when a start is retried after a heartbeat.
            received = (received + chunk).lstrip(KEEPALIVE)
            if received.startswith(REFUSE):
                return None
            if b"\n" in received:
                go = json.loads(received[len(GO) : received.index(b"\n")])
                return int(go["attempt"]), str(go["id"]), go["fields"]

    @property
    def alone(self) -> bool:
        return self._alone.is_set()

    def watch(self, silence: float, on_alone: Callable[[], None]) -> None:
        """Watch the control pipe from a thread; call ``on_alone`` once the parent stops answering."""
        self._watch_with = (silence, on_alone)
        if self._watcher is None:
            self.prepare_watch()
        self._handed.set()

    def _watch_when_handed(self) -> None:
        self._handed.wait()
        silence, on_alone = self._watch_with
        last = time.monotonic()
        while True:
            readable, _, _ = select.select([self._control], [], [], max(silence - (time.monotonic() - last), 0))
            if readable:
                data = os.read(self._control, 4096)
                if not data:
                    self._leave_alone("its worker's main process is gone", on_alone)
                    return
                if RECORDED in data:
                    self._recorded.set()
                    return
                last = time.monotonic()
            elif time.monotonic() - last >= silence:
                self._leave_alone(f"no word from its worker's main process for {silence:.1f}s", on_alone)
                return

    def _leave_alone(self, because: str, on_alone: Callable[[], None]) -> None:
        self.alone_because = because
        self._alone.set()
        self._recorded.set()  # wakes a child waiting for its parent to record
        on_alone()

    def report(self, outcome: Outcome, wait: float) -> bool:
        """Send the outcome; True if the parent recorded it within ``wait`` seconds."""
        data = outcome.to_json() + b"\n"
        try:
            while data:
                data = data[os.write(self._report, data) :]
        except BrokenPipeError:
            return False
        self._recorded.wait(wait)
        return self._recorded.is_set() and not self._alone.is_set()
