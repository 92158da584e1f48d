"""Scenario 10: the protocol against a model of it.

Hypothesis drives random sequences of protocol steps on a real Redis:
enqueue, schedule, move due tasks, take, start, complete, fail, retry, a
listener crashing, a listener frozen (it misses a watch, then wakes), a
recovery watch (on a clock the test moves), and a watch that forgets what it
saw (an error, a Redis restart). A small model says where each task must be.
After every step the invariant of the crash sweep holds (each task id in
exactly one place, its hash agreeing) and every task is where the model says.

A failure prints the shortest sequence of steps that breaks it, and a
``@reproduce_failure`` line; ``pytest --hypothesis-seed=N`` replays a run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from django_blueque.protocol import Client, Listener, Processor, keys, liveness
from django_blueque.protocol.defaults import DEFAULT_MAX_RECOVERIES
from django_blueque.protocol.liveness import Run, beat_interval
from tests.reliability.figures import Row, full_size, record
from tests.reliability.invariants import QUEUE, problems_after_crash

T = 1.0
ETA = time.time() + 3600
SLOTS = 3


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Expected:
    """Where the model says a task is."""

    status: str
    holder: str | None = None
    recoveries: int = 0


@dataclass
class Tally:
    examples: int = 0
    steps: int = 0
    crashes: int = 0
    freezes: int = 0
    recovered: int = 0
    stale_refused: int = 0
    tasks: set[str] = field(default_factory=set)


def machine(url: str, tally: Tally) -> type[RuleBasedStateMachine]:
    class ProtocolModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.db = redis.Redis.from_url(url, decode_responses=True)
            self.db.flushdb()
            self.client = Client(url)
            self.queue = self.client.get_queue(QUEUE)
            self.clock = Clock()
            self.recovery = liveness.Recovery(
                self.client.redis, self.client.scripts, [QUEUE], timeout=T, clock=self.clock
            )
            self.listeners: dict[int, Listener] = {}
            self.frozen: set[int] = set()
            self.expected: dict[str, Expected] = {}
            self.runs: dict[str, Processor] = {}
            #: Runs whose task was taken over while their listener was frozen.
            self.stale: list[Processor] = []
            tally.examples += 1

        def teardown(self) -> None:
            self.client.close()
            self.db.close()

        def listener(self, slot: int) -> Listener:
            if slot not in self.listeners:
                self.listeners[slot] = self.client.get_listener(QUEUE, heartbeat=True, timeout=T)
            return self.listeners[slot]

        def held(self, status: str) -> list[str]:
            live = {listener.id for slot, listener in self.listeners.items() if slot not in self.frozen}
            # In the order the tasks were made, not by their random ids: a replay draws the same task.
            return [task_id for task_id, e in self.expected.items() if e.status == status and e.holder in live]

        def step(self) -> None:
            tally.steps += 1

        @rule()
        def enqueue(self) -> None:
            task_id = self.queue.enqueue("x")
            self.expected[task_id] = Expected("pending")
            tally.tasks.add(task_id)
            self.step()

        @rule()
        def schedule(self) -> None:
            task_id = self.queue.schedule("x", eta=ETA)
            self.expected[task_id] = Expected("scheduled")
            tally.tasks.add(task_id)
            self.step()

        @rule()
        def move_due(self) -> None:
            moved = self.queue.enqueue_due_tasks(now=ETA + 1)
            due = [e for e in self.expected.values() if e.status == "scheduled"]
            assert moved == len(due)
            for e in due:
                e.status = "pending"
            self.step()

        @rule(slot=st.integers(0, SLOTS - 1))
        def take(self, slot: int) -> None:
            if slot in self.frozen:
                return
            listener = self.listener(slot)
            task = listener.listen(timeout=0)
            pending = [task_id for task_id, e in self.expected.items() if e.status == "pending"]
            if not pending:
                assert task is None
                return
            assert task is not None and task.id in pending, (task, pending)
            self.expected[task.id] = Expected("reserved", listener.id, self.expected[task.id].recoveries)
            self.step()

        @precondition(lambda self: self.held("reserved"))
        @rule(data=st.data())
        def start(self, data: st.DataObject) -> None:
            task_id = data.draw(st.sampled_from(self.held("reserved")))
            processor = self.client.get_processor(self.client.get_task(task_id))
            processor.start(os.getpid())
            self.runs[task_id] = processor
            self.expected[task_id].status = "started"
            self.step()

        @precondition(lambda self: self.held("started"))
        @rule(data=st.data(), outcome=st.sampled_from(["complete", "failed", "retry"]))
        def finish(self, data: st.DataObject, outcome: str) -> None:
            task_id = data.draw(st.sampled_from(self.held("started")))
            processor = self.runs.pop(task_id)
            if outcome == "complete":
                assert processor.complete("done")
            elif outcome == "failed":
                assert processor.fail("broken")
            else:
                assert processor.retry(ETA, "again")
            self.expected[task_id] = Expected(
                "scheduled" if outcome == "retry" else outcome, None, self.expected[task_id].recoveries
            )
            self.step()

        @precondition(lambda self: len(self.listeners) > len(self.frozen))
        @rule(data=st.data())
        def crash(self, data: st.DataObject) -> None:
            """A listener dies with its processes: no more beats, its runs gone."""
            slot = data.draw(st.sampled_from(sorted(set(self.listeners) - self.frozen)))
            dead = self.listeners.pop(slot)
            for task_id in [t for t, e in self.expected.items() if e.holder == dead.id]:
                self.runs.pop(task_id, None)
            self.watch(dead=dead.id)
            tally.crashes += 1
            self.step()

        @precondition(lambda self: len(self.listeners) > len(self.frozen))
        @rule(data=st.data())
        def freeze_and_wake(self, data: st.DataObject) -> None:
            """A listener misses a whole watch (frozen), then beats again: its runs were taken over."""
            slot = data.draw(st.sampled_from(sorted(set(self.listeners) - self.frozen)))
            listener = self.listeners[slot]
            self.frozen.add(slot)
            mine = {t: p for t, p in self.runs.items() if self.expected[t].holder == listener.id}
            self.watch(dead=listener.id)
            self.frozen.discard(slot)
            taken = listener.beat([Run(t, os.getpid(), p.attempt or 0) for t, p in mine.items()])
            assert sorted(taken) == sorted(mine), (taken, mine)
            for task_id, processor in mine.items():
                del self.runs[task_id]
                self.stale.append(processor)
            tally.freezes += 1
            self.step()

        @precondition(lambda self: self.stale)
        @rule(outcome=st.sampled_from(["complete", "failed", "retry"]))
        def stale_outcome(self, outcome: str) -> None:
            """A run whose task was taken over tries to record an outcome: refused, nothing changes."""
            processor = self.stale.pop()
            if outcome == "complete":
                assert not processor.complete("late")
            elif outcome == "failed":
                assert not processor.fail("late")
            else:
                assert not processor.retry(ETA, "late")
            tally.stale_refused += 1
            self.step()

        @rule()
        def forget(self) -> None:
            """The watcher had an error or saw Redis restart: it judges nobody on what it saw before."""
            self.recovery.forget()
            self.step()

        def watch(self, dead: str) -> None:
            """Watch for a timeout and more, the live listeners beating; ``dead`` is silent, and recovered."""
            for _ in range(round(T / beat_interval(T)) + 2):
                for slot, listener in self.listeners.items():
                    if slot in self.frozen:
                        continue
                    runs = [
                        Run(t, os.getpid(), p.attempt or 0)
                        for t, p in self.runs.items()
                        if self.expected[t].holder == listener.id
                    ]
                    assert listener.beat(runs) == []
                self.recovery.poll()
                self.clock.now += self.recovery.interval
            for e in self.expected.values():
                if e.holder != dead:
                    continue
                if e.status == "started":
                    e.recoveries += 1
                    e.status = "failed" if e.recoveries > DEFAULT_MAX_RECOVERIES else "pending"
                elif e.status == "reserved":
                    e.status = "pending"
                e.holder = None
                tally.recovered += 1

        @invariant()
        def each_task_is_where_the_model_says(self) -> None:
            wrong = problems_after_crash(self.db, list(self.expected))
            assert wrong == {}, wrong
            for task_id, e in self.expected.items():
                fields = self.db.hmget(keys.task(task_id), ["status", "node"])
                assert fields[0] == e.status, (task_id, fields, e)
                if e.holder is not None:
                    assert fields[1] == e.holder, (task_id, fields, e)

    return ProtocolModel


def test_the_protocol_keeps_its_invariants_under_random_steps(redis_url: str) -> None:
    examples, steps = (500, 60) if full_size() else (40, 30)
    tally = Tally()
    started_at = time.monotonic()
    run_state_machine_as_test(
        machine(redis_url, tally),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
            # The short version is the same sequences every run (a stable make test); full size explores.
            derandomize=not full_size(),
        ),
    )
    record(
        Row(
            scenario="10. random steps against a model of the protocol",
            tasks=len(tally.tasks),
            faults=tally.crashes + tally.freezes,
            lost=0,
            overlapping=0,
            extra_runs=0,
            wall=time.monotonic() - started_at,
            note=f"{tally.examples} sequences, {tally.steps} steps; {tally.recovered} tasks recovered; "
            f"{tally.stale_refused} stale outcomes refused",
        )
    )
    assert tally.crashes and tally.freezes, f"no listener crashed or froze: the test tested little: {tally}"
