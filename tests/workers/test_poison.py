"""Poisoned tasks on real worker processes: hashes no producer of ours writes
(parameters that are not UTF-8, counters that are not numbers) and a retry
delay no schedule can hold. Each must fail on its own, as
``django_blueque.protocol.errors.MalformedTask``, without running its code,
while the worker goes on with the tasks beside it and leaves nothing in a
reserved list or the started set.

Poisoned hashes are written by hand with a client that does not decode, as a
faulty producer in another language (or a hand edit) would write them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from django_blueque.protocol import Client
from tests.workers import tasks
from tests.workers.conftest import LISTENER_TIMEOUT, Spawn, events, wait_for

MALFORMED = "django_blueque.protocol.errors.MalformedTask"
#: Longest a --burst worker may take over 20 no-op tasks and one poisoned one.
BURST_TIMEOUT = 20.0
NORMAL = 20
MODES = ["fork", "prefork"]


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    """A client that does not decode, to write and read bytes that are not UTF-8."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def poison(conn: redis.Redis, queue: str, parameters: bytes, **extra: str | bytes) -> str:
    """Write a pending task by hand, as a producer that skips our checks would."""
    task_id = str(uuid.uuid4())
    now = time.time()
    fields: dict[str, str | bytes | float] = {
        "status": "pending",
        "queue": queue,
        "parameters": parameters,
        "created": now,
        "updated": now,
        **extra,
    }
    conn.hset(f"blueque_task_{task_id}", mapping=fields)  # type: ignore[arg-type]
    conn.zincrby("blueque_queues", 0, queue)
    conn.lpush(f"blueque_pending_tasks_{queue}", task_id)
    return task_id


def sleep_parameters(conn: redis.Redis) -> bytes:
    """A valid payload of the journaled task ``tests.workers.tasks.sleep(0.1)``.

    Enqueued normally to get it, then removed again so only the poisoned copy runs.
    """
    template = tasks.sleep.enqueue(0.1).id
    parameters = conn.hget(f"blueque_task_{template}", "parameters")
    assert isinstance(parameters, bytes)
    conn.lrem("blueque_pending_tasks_default", 1, template)
    conn.delete(f"blueque_task_{template}")
    return parameters


def text(value: bytes | str | None) -> str | None:
    """A reply of the client that does not decode, as text (bytes that are not UTF-8 replaced)."""
    if value is None or isinstance(value, str):
        return value
    return value.decode(errors="replace")


def reserved_ids(conn: redis.Redis) -> list[str]:
    found: list[str] = []
    for key in conn.scan_iter("blueque_reserved_tasks_*"):
        found += [str(text(item)) for item in conn.lrange(key, 0, -1)]
    return found


def outcome(conn: redis.Redis, task_id: str, queue: str) -> dict[str, object]:
    """Where the poisoned task ended, read without decoding its (maybe not UTF-8) fields."""
    fields = conn.hgetall(f"blueque_task_{task_id}")
    return {
        "status": text(fields.get(b"status")),
        "exception": text(fields.get(b"exception")),
        "in the failed list": task_id.encode() in conn.lrange(f"blueque_failed_tasks_{queue}", 0, -1),
        "ids in reserved lists": reserved_ids(conn),
        "started members": sorted(str(text(item)) for item in conn.smembers(f"blueque_started_tasks_{queue}")),
        "task heartbeat": conn.zscore("blueque_task_heartbeats", task_id),
    }


FAILED_CLEANLY = {
    "status": "failed",
    "exception": MALFORMED,
    "in the failed list": True,
    "ids in reserved lists": [],
    "started members": [],
    "task heartbeat": None,
}


def error_of(conn: redis.Redis, task_id: str) -> str:
    return text(conn.hget(f"blueque_task_{task_id}", "error")) or ""


def finish_burst(worker: subprocess.Popen[str], timeout: float = BURST_TIMEOUT) -> int | None:
    """The exit status of a --burst worker, or None if it was still running after ``timeout`` (then killed)."""
    try:
        return worker.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        return None


def show_log(tmp_path: Path, index: int, lines: int = 20) -> list[str]:
    """Print the end of worker ``index``'s log (shown when the test fails); return every line.

    Traceback frames (indented lines) are left out of what is printed.
    """
    every = (tmp_path / f"worker-{index}.log").read_text(errors="replace").splitlines()
    messages = [line for line in every if line and not line[0].isspace()]
    print(f"worker-{index}.log, {len(every)} lines; last {lines} unindented:", *messages[-lines:], sep="\n  ")
    return every


def completed(client: Client, ids: list[str]) -> int:
    return Counter(task.status for task in client.get_tasks(ids))["complete"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("queue", ["raw", "default"])
def test_parameters_that_are_not_utf8_fail_the_task_not_the_worker(
    blueque: Client, conn: redis.Redis, spawn_worker: Spawn, tmp_path: Path, queue: str, mode: str
) -> None:
    normal = [tasks.noop.enqueue().id for _ in range(NORMAL // 2)]
    raw_normal = [blueque.get_queue("raw").enqueue("abc") for _ in range(3)]
    poisoned = poison(conn, queue, b"\xff\xfe\x00")
    normal += [tasks.noop.enqueue().id for _ in range(NORMAL // 2)]
    worker = spawn_worker("raw", "default", "--concurrency", "4", "--mode", mode, "--burst")
    status = finish_burst(worker)
    show_log(tmp_path, 0)
    assert {
        "worker exit": status,
        "normal tasks complete": completed(blueque, normal),
        "raw tasks complete": completed(blueque, raw_normal),
        **outcome(conn, poisoned, queue),
    } == {"worker exit": 0, "normal tasks complete": NORMAL, "raw tasks complete": 3, **FAILED_CLEANLY}
    error = error_of(conn, poisoned)
    assert "not valid UTF-8" in error and "parameters" in error, error
    # The handler never ran: nothing was recorded as a result.
    assert conn.hget(f"blueque_task_{poisoned}", "result") is None
    assert [task.result for task in blueque.get_tasks(raw_normal)] == ["cba"] * 3


@pytest.mark.parametrize("mode", MODES)
def test_an_attempt_that_is_not_a_number_fails_the_task_once(
    blueque: Client, conn: redis.Redis, spawn_worker: Spawn, tmp_path: Path, mode: str
) -> None:
    parameters = sleep_parameters(conn)
    normal = [tasks.noop.enqueue().id for _ in range(NORMAL // 2)]
    poisoned = poison(conn, "default", parameters, attempt="abc")
    normal += [tasks.noop.enqueue().id for _ in range(NORMAL // 2)]
    worker = spawn_worker("default", "--concurrency", "4", "--mode", mode, "--burst")
    status = finish_burst(worker)
    mentions = [line for line in show_log(tmp_path, 0) if poisoned in line]
    assert {
        "worker exit": status,
        "normal tasks complete": completed(blueque, normal),
        **outcome(conn, poisoned, "default"),
    } == {"worker exit": 0, "normal tasks complete": NORMAL, **FAILED_CLEANLY}
    error = error_of(conn, poisoned)
    assert "attempt" in error and "whole number" in error, error
    assert events(blueque, poisoned) == []
    # Failed once, not taken, forked for and given back over and over.
    assert len(mentions) < 10, f"{len(mentions)} log lines name the task; the first: {mentions[:5]}"


@pytest.mark.parametrize("mode", MODES)
def test_recoveries_that_are_not_a_number_fail_the_task_when_its_worker_dies(
    blueque: Client, conn: redis.Redis, spawn_worker: Spawn, tmp_path: Path, mode: str
) -> None:
    poisoned = tasks.sleep.enqueue(30).id
    doomed = spawn_worker("default", "--concurrency", "1", "--mode", mode)
    wait_for(lambda: bool(events(blueque, poisoned)), 20, "the task to start")
    wait_for(lambda: blueque.get_task(poisoned).status == "started", 5, "the task to be marked started")
    conn.hset(f"blueque_task_{poisoned}", "recoveries", "x")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(10)
    normal = [tasks.noop.enqueue().id for _ in range(NORMAL)]
    # Recovery is the fork-mode worker's (a prefork worker does not recover other listeners).
    rescuer = spawn_worker("default", "--concurrency", "4")

    def settled() -> bool:
        done = outcome(conn, poisoned, "default")["status"] == "failed" and completed(blueque, normal) == NORMAL
        return done or rescuer.poll() is not None

    try:
        wait_for(settled, LISTENER_TIMEOUT + 15, "the lost task to fail and the others to complete")
    except AssertionError as exc:
        print(exc)
    time.sleep(0.5)  # a worker that crashes on the poisoned task does it at once
    show_log(tmp_path, 1)
    assert {
        "rescuer running": rescuer.poll() is None,
        "normal tasks complete": completed(blueque, normal),
        **outcome(conn, poisoned, "default"),
    } == {"rescuer running": True, "normal tasks complete": NORMAL, **FAILED_CLEANLY}
    error = error_of(conn, poisoned)
    assert "recoveries" in error, error
    # It ran once, in the killed worker, and was not run again.
    assert [event for event, _, _ in events(blueque, poisoned)] == ["start"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("delay", ["inf", "nan", "-1.0"])
def test_a_retry_delay_that_is_not_a_finite_positive_number_fails_the_task(
    blueque: Client, conn: redis.Redis, spawn_worker: Spawn, tmp_path: Path, delay: str, mode: str
) -> None:
    normal = [tasks.noop.enqueue().id for _ in range(NORMAL // 2)]
    poisoned = tasks.retry_after.enqueue(delay).id
    normal += [tasks.noop.enqueue().id for _ in range(NORMAL // 2)]
    worker = spawn_worker("default", "--concurrency", "4", "--mode", mode, "--burst")
    status = finish_burst(worker)
    show_log(tmp_path, 0)
    assert {
        "worker exit": status,
        "normal tasks complete": completed(blueque, normal),
        **outcome(conn, poisoned, "default"),
    } == {
        "worker exit": 0,
        "normal tasks complete": NORMAL,
        # The task's own error: Retry refuses the delay, inside the task.
        **{**FAILED_CLEANLY, "exception": "builtins.ValueError"},
    }
    error = error_of(conn, poisoned)
    assert re.search(r"finite|delay", error, re.IGNORECASE), error
    # Ran once: not retried, not run again as a lost task.
    assert [event for event, _, _ in events(blueque, poisoned)] == ["start"]
