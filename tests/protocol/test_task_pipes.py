"""The pipes between a fork-mode worker and a task's process, both ends in this process."""

from __future__ import annotations

import os
import threading

from django_blueque.protocol.task_pipes import KEEPALIVE, RECORDED, REFUSE, ChildPipes, ParentPipes
from django_blueque.protocol.work import Outcome


def linked() -> tuple[ChildPipes, ParentPipes]:
    """Both ends, as the parent and the child hold them after a fork (nothing closed)."""
    parent = ChildPipes()
    child = ParentPipes(parent._control_read, parent._report_write)
    os.set_blocking(parent.control, False)
    os.set_blocking(parent.report, False)
    return parent, child


def test_keepalives_before_the_go_are_not_taken_for_it() -> None:
    # A start Redis did not take is retried after a heartbeat, whose
    # keepalive may then reach the child before its go.
    parent, child = linked()
    parent.send(KEEPALIVE)
    parent.send(KEEPALIVE)
    fields = {"queue": "q", "parameters": "x" * 100_000}  # more than a pipe holds
    waiting = threading.Thread(target=lambda: received.append(child.wait_for_go()))
    received: list[object] = []
    waiting.start()
    parent.go(3, "task-1", fields)
    waiting.join(10)
    assert received == [(3, "task-1", fields)]


def test_a_refusal_or_a_parent_gone_means_do_not_run() -> None:
    parent, child = linked()
    parent.send(KEEPALIVE + REFUSE)
    assert child.wait_for_go() is None
    parent, orphan = linked()
    os.close(parent.control)
    assert orphan.wait_for_go() is None


def test_an_outcome_goes_over_and_is_acknowledged() -> None:
    parent, child = linked()
    outcome = Outcome("fail", error="broken", exception="builtins.ValueError", traceback="Traceback ...\n" * 100)
    child.watch(30.0, lambda: None)
    parent.send(RECORDED)  # ahead of time: the child still reads it after reporting
    assert child.report(outcome, 5.0)
    assert parent.read_report() == outcome


def test_a_report_not_acknowledged_in_time_leaves_the_child_to_record_it() -> None:
    parent, child = linked()
    child.watch(30.0, lambda: None)
    assert not child.report(Outcome("complete", result="ok"), 0.05)
    assert parent.read_report() == Outcome("complete", result="ok")


def test_a_parent_gone_leaves_the_child_alone() -> None:
    parent, child = linked()
    alone: list[bool] = []
    child.watch(30.0, lambda: alone.append(True))
    os.close(parent.control)
    assert not child.report(Outcome("complete"), 5.0)
    assert alone == [True] and child.alone
    assert "gone" in child.alone_because


def test_a_malformed_report_is_no_outcome() -> None:
    parent, child = linked()
    os.write(child._report, b'{"kind": "explode"}\n')
    assert parent.read_report() is None
    assert parent.closed
