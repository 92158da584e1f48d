import os

from django_blueque.protocol import Client, Task, inline_runner


def test_runs_pending_tasks_here_in_priority_order(client: Client) -> None:
    seen: list[tuple[str | None, int]] = []

    def record(task: Task) -> str:
        seen.append((task.parameters, os.getpid()))
        return "ok"

    client.get_queue("low").enqueue("low")
    client.get_queue("high").enqueue("high 1")
    client.get_queue("high").enqueue("high 2")
    assert inline_runner.run(client, ["high", "low"], record) == 3
    assert seen == [("high 1", os.getpid()), ("high 2", os.getpid()), ("low", os.getpid())]
    assert client.queue_stats()["high"].complete == 2
    assert client.queue_stats()["low"].listeners == 0


def test_max_tasks_and_failures(client: Client) -> None:
    def explode(task: Task) -> str:
        raise ValueError(f"bad {task.parameters}")

    ids = [client.get_queue("q").enqueue(str(i)) for i in range(3)]
    assert inline_runner.run(client, "q", explode, max_tasks=2) == 2
    first, second, third = client.get_tasks(ids)
    assert (first.status, first.error, first.exception) == ("failed", "bad 0", "builtins.ValueError")
    assert second.status == "failed"
    assert third.status == "pending"


def test_start_records_when_the_task_started(client: Client) -> None:
    task_id = client.get_queue("q").enqueue("x", task_id="chosen-id")
    assert task_id == "chosen-id"
    inline_runner.run(client, "q", lambda task: "done")
    task = client.get_task("chosen-id")
    assert task.started_at is not None
    assert task.created is not None
    assert task.updated is not None
    assert task.created <= task.started_at <= task.updated
