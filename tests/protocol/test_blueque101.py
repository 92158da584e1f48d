"""Wire compatibility with the published blueque 1.0.1, in both directions."""

from __future__ import annotations

import os
import time

import pytest
from redis import Redis

from django_blueque.protocol import Client, Task, forking_runner, keys
from django_blueque.protocol.identity import hostname
from tests.conftest import Blueque101


def shout(task: Task) -> str:
    return (task.parameters or "").upper()


def test_a_task_enqueued_by_1_0_1_is_run_by_django_blueque(client: Client, blueque101: Blueque101) -> None:
    task_id = blueque101("enqueue", "q", "from 1.0.1")
    assert forking_runner.run(client, "q", shout, 2, burst=True) == 1
    read = blueque101("read", task_id)[task_id]
    assert read["status"] == "complete"
    assert read["result"] == "FROM 1.0.1"
    # A runner's listener id: "<fqdn>-<token>_<pid>", which 1.0.1 parses (and never claims).
    node, pid = read["node"].rsplit("_", 1)
    assert node.startswith(hostname() + "-") and pid == str(os.getpid())


def test_a_task_enqueued_by_django_blueque_is_run_by_1_0_1(client: Client, blueque101: Blueque101) -> None:
    task_id = client.get_queue("q").enqueue("from django-blueque")
    assert blueque101("complete", "q") == task_id
    task = client.get_task(task_id)
    assert (task.status, task.result) == ("complete", "1.0.1 did from django-blueque")
    assert client.queue_stats(["q"])["q"].counts() == {
        "pending": 0, "scheduled": 0, "reserved": 0, "started": 0, "complete": 1, "failed": 0, "listeners": 0,
    }  # fmt: skip


def test_a_failure_recorded_by_1_0_1_reads_as_failed(client: Client, blueque101: Blueque101) -> None:
    task_id = client.get_queue("q").enqueue("x")
    blueque101("fail", "q")
    task = client.get_task(task_id)
    assert (task.status, task.error) == ("failed", "1.0.1 failed x")
    assert client.task_ids("q", "failed") == [task_id]


def _task_in_every_state(client: Client) -> list[str]:
    queue = client.get_queue("q")
    ids = [queue.schedule("scheduled", eta=time.time() + 600)]
    for outcome in ("reserved", "started", "complete", "failed"):
        queue.enqueue(outcome)
    listener = client.get_listener("q")
    for outcome in ("reserved", "started", "complete", "failed"):
        task = listener.listen(timeout=1)
        assert task is not None
        ids.append(task.id)
        if outcome == "reserved":
            continue
        processor = client.get_processor(task)
        processor.start(os.getpid())
        if outcome == "complete":
            processor.complete("done")
        elif outcome == "failed":
            processor.fail("broken")
    ids.insert(1, queue.enqueue("pending"))
    return ids


def test_1_0_1_reads_every_field_django_blueque_writes(client: Client, blueque101: Blueque101) -> None:
    ids = _task_in_every_state(client)
    read = blueque101("read", *ids)
    for task in client.get_tasks(ids):
        theirs = read[task.id]
        assert set(theirs["all_fields"]) == set(task.fields)
        assert theirs["status"] == task.status
        assert theirs["parameters"] == task.parameters
        assert theirs["result"] == task.result and theirs["error"] == task.error
        assert theirs["node"] == task.node and theirs["pid"] == task.pid
        assert theirs["created"] == pytest.approx(task.created) and theirs["updated"] == pytest.approx(task.updated)
    assert [read[i]["status"] for i in ids] == ["scheduled", "pending", "reserved", "started", "complete", "failed"]


def test_scheduled_tasks_move_across_implementations(client: Client, blueque101: Blueque101) -> None:
    # ETAs far enough ahead that starting 1.0.1's interpreter cannot outlast them.
    eta = time.time() + 3
    ours = client.get_queue("q").schedule("ours", eta=eta)
    theirs = blueque101("schedule", "q", "theirs", eta)
    assert client.get_task(theirs).status == "scheduled"
    time.sleep(max(eta - time.time(), 0) + 0.1)
    blueque101("enqueue_due", "q")
    assert client.get_queue("q").enqueue_due_tasks() == 0
    assert set(client.task_ids("q", "pending")) == {ours, theirs}
    assert {t.status for t in client.get_tasks([ours, theirs])} == {"pending"}


def test_1_0_1_scheduler_leaves_nothing_for_ours_to_move_twice(
    client: Client, blueque101: Blueque101, db: Redis
) -> None:
    eta = time.time() + 3
    theirs = blueque101("schedule", "q", "theirs", eta)
    assert client.get_task(theirs).status == "scheduled"
    time.sleep(max(eta - time.time(), 0) + 0.1)
    assert client.get_queue("q").enqueue_due_tasks() == 1
    blueque101("enqueue_due", "q")
    assert db.lrange(keys.pending("q"), 0, -1) == [theirs]


def test_1_0_1_claim_orphan_understands_our_listener_ids(client: Client, blueque101: Blueque101, db: Redis) -> None:
    ours = client.get_listener("q")  # a live listener of ours, in this process
    client.get_queue("q").enqueue("x")
    assert ours.listen(timeout=1) is not None
    assert blueque101("claim_orphan", "q") is None
    assert ours.id in db.smembers(keys.listeners("q"))
    assert client.task_ids("q", "reserved") != []
