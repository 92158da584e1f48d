"""``manage.py blueque_status`` on a queue with tasks in every state."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pytest_django import Settings as SettingsWrapper

from django_blueque.protocol import Client, Monitor, Scheduler


def every_state(blueque: Client) -> str:
    """Tasks in every state on "default"; returns the id of the started one, at 25%."""
    queue = blueque.get_queue("default")
    queue.schedule("s", eta=time.time() + 60)
    for i in range(6):
        queue.enqueue(str(i))
    listener = blueque.get_listener("default")
    for outcome in ("reserved", "started", "complete", "failed", "failed"):
        task = listener.listen(timeout=1)
        assert task is not None
        if outcome == "reserved":
            continue
        processor = blueque.get_processor(task)
        processor.start(os.getpid())
        if outcome == "started":
            started = task.id
            assert blueque.report_progress(started, 0.25, "a quarter")
        elif outcome == "complete":
            processor.complete("ok")
        elif outcome == "failed":
            processor.fail("no")
    return started


def status(*args: str) -> str:
    out = StringIO()
    call_command("blueque_status", *args, stdout=out)
    return out.getvalue()


def test_json_counts_every_state(blueque: Client) -> None:
    started = every_state(blueque)
    report = json.loads(status("--json"))
    [running] = report["running"]
    assert (running["id"], running["queue"], running["progress"], running["progress_message"]) == (
        started,
        "default",
        0.25,
        "a quarter",
    )
    default = report["queues"]["default"]
    assert {key: default[key] for key in default if key != "oldest_pending_age"} == {
        "pending": 1, "scheduled": 1, "reserved": 1, "started": 1, "complete": 1, "failed": 2, "listeners": 1,
    }  # fmt: skip
    assert 0 <= default["oldest_pending_age"] < 60
    # Configured queues show even before Redis knows them.
    assert report["queues"]["other"]["pending"] == 0
    assert report["queues"]["other"]["oldest_pending_age"] is None


def test_the_processes_that_beat_are_listed(blueque: Client) -> None:
    listener = blueque.get_listener("default", heartbeat=True, timeout=30)
    listener.beat()
    task = blueque.get_queue("default").enqueue("x")
    assert listener.listen(timeout=1) is not None
    scheduler = Scheduler(blueque, listener_timeout=30)
    scheduler.beat()
    monitor = Monitor(blueque, ["default"], on_complete=print, on_failed=print, listener_timeout=30)
    monitor.register()
    report = json.loads(status("--json"))["processes"]
    [worker] = report["listeners"]
    assert (worker["id"], worker["queues"], worker["tasks"]) == (listener.id, ["default"], [task])
    assert worker["alive"] is True and worker["state"] == "alive"
    assert 0 <= worker["beat_age"] < 30 and worker["pid"] == os.getpid()
    assert [found["id"] for found in report["schedulers"]] == [scheduler.id]
    assert [found["id"] for found in report["monitors"]] == [monitor.id]
    assert all(found["alive"] for found in (*report["schedulers"], *report["monitors"]))
    lines = status("default").splitlines()
    start = lines.index("workers, schedulers and monitors:")
    roles = [line.split()[:2] for line in lines[start + 1 :]]
    assert roles == [["listener", listener.id], ["scheduler", scheduler.id], ["monitor", monitor.id]]
    queues, beat, beat_age, ago, *rest = lines[start + 1].split()[2:]
    assert (queues, beat, ago, rest) == ("default", "beat", "ago", ["alive", "1", "task(s)"])
    assert beat_age.endswith("s")


def test_no_process_beating_is_said_plainly(blueque: Client) -> None:
    blueque.get_queue("default").enqueue("x")
    assert status("default").splitlines()[-1] == "workers, schedulers and monitors: none"
    assert json.loads(status("--json"))["processes"] == {"listeners": [], "schedulers": [], "monitors": []}


def test_table_and_queue_filter(blueque: Client) -> None:
    started = every_state(blueque)
    lines = status("default").splitlines()
    assert lines[0].split() == [
        "queue", "scheduled", "pending", "reserved", "started", "complete", "failed", "listeners", "oldest", "pending",
    ]  # fmt: skip
    assert lines[1].split()[:8] == ["default", "1", "1", "1", "1", "1", "2", "1"]
    assert lines[3] == "running tasks:"
    assert lines[4].split()[0] == started
    assert lines[4].endswith("25% a quarter")
    assert lines[6] == "workers, schedulers and monitors:"
    # every_state()'s listener never beats (as Blueque 1.0.1's): its liveness is unknown here.
    role, _, *rest = lines[7].split()
    assert (role, rest) == ("listener", ["default", "never", "beat", "unknown", "2", "task(s)"])
    assert len(lines) == 8


def test_unreachable_redis_is_a_command_error(settings: SettingsWrapper) -> None:
    settings.BLUEQUE = {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_KWARGS": {"socket_connect_timeout": 0.5}}
    with pytest.raises(CommandError, match="Cannot read Blueque state from Redis"):
        status()


def test_watch_needs_a_positive_interval(blueque: Client) -> None:
    with pytest.raises(CommandError, match="expected a number > 0"):
        status("--watch", "0")


def interruptible() -> None:
    """In the child: Ctrl-C raises KeyboardInterrupt, even when this suite runs with SIGINT ignored
    (a background job of a shell), which Python would otherwise pass on to the command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _watch_output(redis_url: str, *, terminal: bool) -> str:
    """What ``blueque_status --watch 0.1`` writes for its first two refreshes, to a pipe or to a terminal."""
    manage = Path(__file__).resolve().parents[2] / "testproject" / "manage.py"
    env = {**os.environ, "BLUEQUE_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
    leader, follower = pty.openpty() if terminal else os.pipe()
    process = subprocess.Popen(
        [sys.executable, str(manage), "blueque_status", "--watch", "0.1"],
        env=env,
        stdout=follower,
        preexec_fn=interruptible,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while seen.count(b"queue ") < 2 and time.monotonic() < deadline:
            chunk = os.read(leader, 65536)
            if not chunk:
                break
            seen += chunk
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
        os.close(leader)
    return seen.decode()


def test_watch_redraws_on_a_terminal_only(blueque: Client, redis_url: str) -> None:
    piped = _watch_output(redis_url, terminal=False)
    assert "\x1b" not in piped
    assert piped.count("queue ") >= 2, piped  # several refreshes, one after the other
    assert "\x1b[H\x1b[2J" in _watch_output(redis_url, terminal=True)


def test_watch_refreshes_until_interrupted(blueque: Client, redis_url: str) -> None:
    manage = Path(__file__).resolve().parents[2] / "testproject" / "manage.py"
    env = {**os.environ, "BLUEQUE_REDIS_URL": redis_url}
    process = subprocess.Popen(
        [sys.executable, str(manage), "blueque_status", "--json", "--watch", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        first = process.stdout.readline() if process.stdout else ""
        blueque.get_queue("default").enqueue("x")
        deadline = time.monotonic() + 10
        while True:
            line = process.stdout.readline() if process.stdout else ""
            if json.loads(line)["queues"]["default"]["pending"] == 1:
                break
            assert time.monotonic() < deadline
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        process.kill()
    assert json.loads(first)["queues"]["default"]["pending"] == 0
