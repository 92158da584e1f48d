import time

import pytest

from django_blueque.protocol import Client, QueueStats


def _every_state(client: Client) -> dict[str, list[str]]:
    queue = client.get_queue("q")
    ids: dict[str, list[str]] = {s: [] for s in ("scheduled", "pending", "reserved", "started", "complete", "failed")}
    ids["scheduled"] = [queue.schedule("s", eta=time.time() + 60 + i) for i in range(2)]
    running = [queue.enqueue(f"r{i}") for i in range(6)]
    listener = client.get_listener("q", listener_id="node_1")
    for i, task_id in enumerate(running):
        task = listener.listen(timeout=1)
        assert task is not None and task.id == task_id
        if i == 0:
            ids["reserved"].append(task_id)
            continue
        processor = client.get_processor(task)
        processor.start(100 + i)
        if i < 3:
            ids["started"].append(task_id)
        elif i < 5:
            processor.complete("ok")
            ids["complete"].insert(0, task_id)
        else:
            processor.fail("no")
            ids["failed"].insert(0, task_id)
    ids["pending"] = [queue.enqueue(f"p{i}") for i in range(3)]
    return ids


def test_queue_stats_counts_every_state(client: Client) -> None:
    _every_state(client)
    client.get_queue("empty").enqueue_due_tasks()  # not a known queue: nothing listed
    client.get_listener("idle.queue")
    assert client.queue_stats() == {
        "idle.queue": QueueStats("idle.queue", 0, 0, 0, 0, 0, 0, listeners=1),
        "q": QueueStats("q", pending=3, scheduled=2, reserved=1, started=2, complete=2, failed=1, listeners=1),
    }
    assert client.queue_stats(["q"])["q"].counts() == {
        "pending": 3, "scheduled": 2, "reserved": 1, "started": 2, "complete": 2, "failed": 1, "listeners": 1,
    }  # fmt: skip


def test_task_ids_pages_every_state(client: Client) -> None:
    ids = _every_state(client)
    for status, expected in ids.items():
        assert client.task_ids("q", status) == expected, status
    assert client.task_ids("q", "pending", offset=1, count=1) == ids["pending"][1:2]
    assert client.task_ids("q", "started", offset=1, count=5) == ids["started"][1:]
    assert client.task_ids("q", "pending", offset=10) == []


def test_task_ids_rejects_bad_arguments(client: Client) -> None:
    with pytest.raises(ValueError, match="Unknown status"):
        client.task_ids("q", "done")
    with pytest.raises(ValueError, match="offset"):
        client.task_ids("q", "pending", offset=-1)


def test_get_tasks_reads_many_in_order(client: Client) -> None:
    ids = [client.get_queue("q").enqueue(str(i)) for i in range(3)]
    tasks = client.get_tasks([ids[2], "missing", ids[0]])
    assert [t.parameters for t in tasks] == ["2", None, "0"]
    assert [t.exists for t in tasks] == [True, False, True]


def test_oldest_pending(client: Client) -> None:
    queue = client.get_queue("q")
    first = queue.enqueue("first")
    queue.enqueue("second")
    client.get_queue("scheduled.only").schedule("later", eta=time.time() + 60)
    oldest = client.oldest_pending(["q", "scheduled.only", "unknown"])
    assert oldest == {"q": client.get_task(first).created, "scheduled.only": None, "unknown": None}
