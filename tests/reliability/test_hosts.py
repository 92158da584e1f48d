"""Scenario 12: workers on several hosts, two of which call themselves ``localhost``.

Each worker runs with its own ``BLUEQUE_HOSTNAME``: two ``localhost``, one
``box-b.example``. Besides, two listeners that never beat (Blueque 1.0.1's),
each holding a task, are dead: one named for ``box-b.example``, one for
``localhost``; a third names ``box-z.example``, a host with no worker. One
``localhost`` worker is killed with SIGKILL while it runs tasks.

Pass line: the killed worker's tasks run again elsewhere, judged by its
heartbeat, after the kill and never before; the other ``localhost`` worker's
tasks run once, untouched (no overlap, no extra run); the dead 1.0.1 listener
of ``box-b.example`` is recovered by the worker on that host, by its pid;
those named for ``localhost`` (a name many hosts share: the pid may be
another host's) and for ``box-z.example`` are judged by nobody here.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from django_blueque.protocol import Client, keys
from django_blueque.protocol.replies import string_set
from tests.reliability.figures import Row, full_size, record
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import Journal, T, cut_short, kill_group, tally, wait_for, wait_until_complete


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def held_by(client: Client, listener_id: str) -> str:
    """A reserved task in the list of a listener that never beats (1.0.1's), registered on the queue."""
    task_id = client.get_queue("default").enqueue('{"not": "run"}')
    redis = client.redis
    redis.sadd(keys.listeners("default"), listener_id)
    redis.lrem(keys.pending("default"), 1, task_id)
    redis.rpush(keys.reserved("default", listener_id), task_id)
    redis.hset(keys.task(task_id), mapping={"status": "reserved", "node": listener_id})
    return task_id


def workers(client: Client) -> list[str]:
    """The listeners of workers (they beat, and their ids carry a token), not 1.0.1's."""
    members = string_set(client.redis.smembers(keys.listeners("default")))
    return [member for member in members if member.startswith(("localhost-", "box-b.example-"))]


def test_hosts_that_share_a_name_are_judged_by_heartbeat_and_the_pid_rule_stays_on_its_host(
    blueque: Client, spawn: Spawn, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds = 5 if full_size() else 1
    started_at = time.monotonic()
    plain = {
        "box-b.example": held_by(blueque, f"box-b.example_{dead_pid()}"),
        "localhost": held_by(blueque, f"localhost_{dead_pid()}"),
        "box-z.example": held_by(blueque, f"box-z.example_{dead_pid()}"),
    }

    def start(host: str):  # type: ignore[no-untyped-def]
        monkeypatch.setenv("BLUEQUE_HOSTNAME", host)
        return spawn("default", "--concurrency", "2", max_recoveries=100)

    survivor, doomed, other = start("localhost"), start("localhost"), start("box-b.example")
    monkeypatch.delenv("BLUEQUE_HOSTNAME")
    wait_for(lambda: len(workers(blueque)) >= 3, 30, "the workers to register")
    ids: list[str] = []
    kills: list[float] = []
    for _ in range(rounds):
        batch = [recovery_tasks.run_for.enqueue(T * 2).id for _ in range(6)]
        ids += batch
        wait_for(lambda b=batch: sum(journal.started(t) for t in b) == 6, 30, "six tasks to start")  # type: ignore[misc]
        wait_for(lambda: all(run.parent for run in journal.runs()), 5, "the runs' processes to be seen")
        kills.append(kill_group(doomed))
        doomed = start("localhost")
        monkeypatch.delenv("BLUEQUE_HOSTNAME")
        wait_until_complete(blueque, batch, 6 * T + 30, journal)
    # The 1.0.1 listener of box-b.example: recovered by the worker on that host, and run.
    wait_for(lambda: blueque.get_task(plain["box-b.example"]).status == "failed", 30, "box-b's orphan to run")

    result = tally(journal, ids)
    killed, recovery = cut_short(journal)
    early = [run for run in journal.runs() if run.attempt > 1 and not any(kill <= run.start for kill in kills)]
    record(
        Row(
            scenario="12. hosts sharing a name (localhost), 1.0.1 listeners",
            tasks=len(ids),
            faults=len(kills),
            lost=len(result.lost),
            overlapping=len(result.overlapping),
            extra_runs=result.reruns,
            recovery=recovery,
            wall=time.monotonic() - started_at,
            note=f"{len(killed)} runs cut short by the kills; 1.0.1 listeners: box-b's recovered by pid, "
            "localhost's and box-z's judged by nobody",
        )
    )
    assert result.lost == [] and result.overlapping == [], result
    assert result.reruns <= len(killed), result
    assert killed, "the kill cut no run short: it tested nothing"
    assert early == [], f"runs again before any kill: {early}"
    on_survivor = [run for run in journal.runs() if run.parent == survivor.pid]
    assert on_survivor and all(len(journal.runs(run.task_id)) == 1 for run in on_survivor), "a live task ran twice"
    # box-b's orphan went back to pending (only the worker on box-b may judge it by its pid), and was run
    # (its payload is no Django task: it failed).
    assert blueque.get_task(plain["box-b.example"]).fields.get("releases") == "1"
    assert [blueque.get_task(plain[host]).status for host in ("localhost", "box-z.example")] == ["reserved"] * 2
    assert other.poll() is None and survivor.poll() is None
