"""The skeleton of the long-running processes: backoff after Redis errors, and stopping children."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

import pytest

from django_blueque.protocol.supervision import Backoff, Escalation, Interrupted, Supervision, reap_exited


def test_the_wait_doubles_to_its_cap_and_a_line_says_when_redis_answers(caplog: pytest.LogCaptureFixture) -> None:
    backoff = Backoff(0.5)
    with caplog.at_level(logging.WARNING):
        waits = [backoff.failed(ConnectionError("refused")) for _ in range(5)]
        backoff.succeeded()
        backoff.succeeded()  # no second line: Redis answered all along
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert backoff.delay == 0.0 and backoff.failures == 0
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "Redis unavailable (refused); retrying in 0.1s"
    assert lines[5:] == ["Redis answers again, after 5 failed attempt(s)"]
    assert backoff.failed(ConnectionError("refused")) == 0.1  # a new outage starts afresh


def _child_that_ignores_sigterm() -> int:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.write(write, b"x")  # ready: SIGTERM is ignored from here on
        time.sleep(60)
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"x"
    os.close(read)
    return pid


def test_a_child_that_ignores_the_polite_signal_is_killed_once_overdue() -> None:
    pid = _child_that_ignores_sigterm()
    escalation = Escalation(kill_after=0.3)
    try:
        assert escalation.ask(pid) is True
        assert escalation.ask(pid) is False  # asked once only
        escalation.kill_overdue()  # too early: nothing happens
        time.sleep(0.1)
        assert list(reap_exited()) == []
        time.sleep(0.3)
        escalation.kill_overdue()
        deadline = time.monotonic() + 5
        ended: list[tuple[int, int]] = []
        while not ended and time.monotonic() < deadline:
            ended = list(reap_exited())
            time.sleep(0.01)
        ((reaped, status),) = ended
        assert reaped == pid and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert escalation.forget(pid) is True
        assert escalation.forget(pid) is False
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_past_grace_after_the_grace_period_or_a_second_signal() -> None:
    supervision = Supervision()
    assert not supervision.past_grace(0)  # not stopping
    supervision.stop()
    assert supervision.past_grace(0)
    assert not supervision.past_grace(None) and not supervision.past_grace(60)
    supervision.signals = 2
    assert supervision.past_grace(None) and supervision.past_grace(60)


def test_a_stop_requested_just_before_a_wait_begins_cuts_it_short_too() -> None:
    # The signal came after the loop last looked at `stopping` and before it
    # blocked for the next task: the wait must not run its whole length.
    supervision = Supervision()
    supervision.open()
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # handled now, outside any interruptible wait
        assert supervision.stopping
        began = time.monotonic()
        with pytest.raises(Interrupted), supervision.interruptible():
            time.sleep(5)
        assert time.monotonic() - began < 1
    finally:
        supervision.close()


def test_a_signal_inside_an_interruptible_wait_interrupts_it() -> None:
    supervision = Supervision()
    supervision.open()
    try:
        signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
        began = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Interrupted), supervision.interruptible():
            time.sleep(5)
        assert time.monotonic() - began < 1
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        supervision.close()
