"""``manage.py blueque_run``: worker, scheduler and monitor in one process tree."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from django_blueque.protocol import Client, keys
from tests.workers import tasks
from tests.workers.conftest import Spawn, wait_for
from tests.workers.receivers.apps import JOURNAL


def children_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_one_command_runs_scheduled_tasks_and_signals_them(
    blueque: Client, spawn_worker: Spawn, tmp_path: Path
) -> None:
    run = spawn_worker("--grace", "2", command="blueque_run")
    now = tasks.noop.enqueue()
    later = tasks.noop.using(run_after=timezone.now() + timedelta(seconds=1)).enqueue()
    wait_for(lambda: blueque.redis.llen(JOURNAL) == 2, 30, "both tasks to run and be signalled")
    entries = sorted(e.decode() if isinstance(e, bytes) else e for e in blueque.redis.lrange(JOURNAL, 0, -1))
    assert entries == sorted([f"completed default {now.id}", f"completed default {later.id}"])
    assert len(children_of(run.pid)) == 3

    # A child that dies is started again.
    worker_pid = min(children_of(run.pid))
    os.kill(worker_pid, signal.SIGKILL)
    wait_for(lambda: len(children_of(run.pid)) == 3 and worker_pid not in children_of(run.pid), 20, "a restart")
    killed = "killed by SIGKILL; restarting it in 1s"
    assert f"(process {worker_pid}) {killed}" in (tmp_path / "worker-0.log").read_text()

    # The killed worker's listener is found dead and removed by the others.
    def listener_pids() -> set[int]:
        members = blueque.redis.smembers(keys.listeners("default"))
        parsed = (keys.parse_listener_id(m.decode() if isinstance(m, bytes) else m) for m in members)
        return {found[1] for found in parsed if found is not None}

    wait_for(lambda: worker_pid not in listener_pids(), 20, "the dead listener to go")
    run.send_signal(signal.SIGTERM)
    assert run.wait(30) == 0
    assert blueque.queue_stats()["default"].listeners == 0


def test_the_monitor_stops_after_the_worker_so_the_last_tasks_are_signalled(
    blueque: Client, spawn_worker: Spawn
) -> None:
    run = spawn_worker(command="blueque_run")
    task_id = tasks.sleep.enqueue(2).id
    wait_for(lambda: blueque.get_task(task_id).status == "started", 20, "the task to start")
    run.send_signal(signal.SIGTERM)
    assert run.wait(30) == 0
    assert blueque.get_task(task_id).status == "complete"
    entries = [e.decode() if isinstance(e, bytes) else e for e in blueque.redis.lrange(JOURNAL, 0, -1)]
    assert entries == [f"completed default {task_id}"]


def own_groups(parent: int) -> list[int]:
    """The children of ``parent`` in a process group other than its own."""
    found = []
    for pid in children_of(parent):
        try:
            if os.getpgid(pid) != parent:
                found.append(pid)
        except ProcessLookupError:
            pass
    return found


def test_the_monitor_does_not_outlive_a_killed_blueque_run(blueque: Client, spawn_worker: Spawn) -> None:
    run = spawn_worker(command="blueque_run")
    # The monitor is the child in a process group of its own (once it has made it, just after the fork).
    wait_for(lambda: len(own_groups(run.pid)) == 1, 20, "the monitor in a group of its own")
    (monitor,) = own_groups(run.pid)
    os.killpg(run.pid, signal.SIGKILL)  # the parent and its group: not the monitor
    run.wait(10)

    def gone() -> bool:
        try:
            os.kill(monitor, 0)
        except ProcessLookupError:
            return True
        # A zombie until init reaps it counts as gone.
        try:
            return Path(f"/proc/{monitor}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_for(gone, 20, "the monitor to stop with its parent")


def test_log_format_json_reaches_all_three(blueque: Client, spawn_worker: Spawn, tmp_path: Path) -> None:
    run = spawn_worker("--log-format", "json", command="blueque_run")
    task_id = tasks.noop.enqueue().id
    wait_for(lambda: blueque.redis.llen(JOURNAL) == 1, 30, "the task to run and be signalled")
    run.send_signal(signal.SIGTERM)
    assert run.wait(30) == 0
    lines = [line for line in (tmp_path / "worker-0.log").read_text().splitlines() if line.strip()]
    # Every log line is JSON; the worker's summary on stdout is the one plain line.
    assert [line for line in lines if not line.startswith("{")] == ["Ran 1 task(s)."]
    messages = [json.loads(line)["message"] for line in lines if line.startswith("{")]
    assert any(m.startswith("Worker serving") for m in messages)
    assert any(m.startswith("Scheduler serving") for m in messages)
    assert any(m.startswith("Monitor ") and " serving " in m for m in messages)
    assert any(m.startswith(f"task finished id={task_id}") for m in messages)


def test_an_idle_blueque_run_stops_at_once(blueque: Client, spawn_worker: Spawn) -> None:
    # The monitor is stopped as soon as the worker is reaped, not at the supervising loop's next
    # pass a second later.
    run = spawn_worker(command="blueque_run")
    wait_for(lambda: len(children_of(run.pid)) == 3, 20, "the three processes")
    wait_for(lambda: blueque.queue_stats(["default"])["default"].listeners == 1, 20, "the worker to listen")
    run.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    assert run.wait(30) == 0
    assert time.monotonic() - asked < 0.9
