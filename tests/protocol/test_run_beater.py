"""The heartbeat thread a prefork child keeps for the run it has in hand."""

from __future__ import annotations

import threading
import time

from django_blueque.protocol.liveness import Run
from django_blueque.protocol.work import EXIT_REDIS_LOST, EXIT_TAKEN_OVER, Heartbeat, RunBeater

from .forked import run_forked

INTERVAL = 0.05


def test_it_beats_for_the_run_in_hand_only() -> None:
    beats: list[list[Run]] = []

    def beat(runs: list[Run]) -> list[str]:
        beats.append(runs)
        return []

    beating = RunBeater(Heartbeat(INTERVAL, beat))
    try:
        time.sleep(3 * INTERVAL)
        assert beats == []  # no run in hand: nothing to vouch for
        run = Run("t1", 1234, 1)
        beating.begin(run)
        time.sleep(3 * INTERVAL)
        beating.end()
        seen = len(beats)
        time.sleep(3 * INTERVAL)
    finally:
        beating.stop()
    assert seen >= 2
    assert all(runs == [run] for runs in beats)
    assert len(beats) <= seen + 1  # at most a beat already under way when the run ended


def test_a_run_taken_over_ends_the_process() -> None:
    def body() -> None:
        beating = RunBeater(Heartbeat(INTERVAL, lambda runs: [run.task_id for run in runs]))
        beating.begin(Run("t1", 1234, 1))
        time.sleep(20 * INTERVAL)

    assert run_forked(body) == EXIT_TAKEN_OVER


def test_a_run_that_ended_before_the_beat_came_back_is_left_alone() -> None:
    """The beat said the run was taken over, but the process has moved on to another task meanwhile."""

    def body() -> None:
        beating: RunBeater

        def beat(runs: list[Run]) -> list[str]:
            beating.end()  # the task ends while its beat is on the wire
            beating.begin(Run("t2", 1234, 1))
            return [run.task_id for run in runs]

        beating = RunBeater(Heartbeat(INTERVAL, beat))
        beating.begin(Run("t1", 1234, 1))
        time.sleep(3 * INTERVAL)
        beating.stop()

    assert run_forked(body) == 0


def test_with_redis_lost_after_a_run_without_a_beat_for_that_long_ends_the_process() -> None:
    def body() -> None:
        silent = threading.Event()

        def beat(runs: list[Run]) -> list[str]:
            silent.wait()  # a call hanging on a dead connection
            return []

        beating = RunBeater(Heartbeat(INTERVAL, beat, redis_lost_after=4 * INTERVAL))
        time.sleep(8 * INTERVAL)  # idle past the limit: not a lost run
        beating.begin(Run("t1", 1234, 1))
        time.sleep(20 * INTERVAL)

    assert run_forked(body) == EXIT_REDIS_LOST


def test_idle_past_the_redis_lost_limit_the_process_stays() -> None:
    def body() -> None:
        beating = RunBeater(Heartbeat(INTERVAL, lambda runs: [], redis_lost_after=2 * INTERVAL))
        time.sleep(10 * INTERVAL)
        beating.stop()

    assert run_forked(body) == 0


def test_a_run_begun_after_a_long_idle_spell_outlives_the_watchdogs_stale_verdict() -> None:
    """The watchdog judged "lost" while idle, and acts just after a run began (its clock reset): no exit."""

    def body() -> None:
        beating = RunBeater(Heartbeat(INTERVAL, lambda runs: [], redis_lost_after=2 * INTERVAL))
        time.sleep(4 * INTERVAL)  # idle past the limit
        beating.begin(Run("t1", 1234, 1))
        beating._leave_if_in_hand(None, EXIT_REDIS_LOST)  # the watchdog's call, judged before the begin
        beating.stop()

    assert run_forked(body) == 0
