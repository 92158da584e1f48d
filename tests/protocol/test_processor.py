import pytest
from redis import Redis

from django_blueque.protocol import Client, Task, keys


def _taken(client: Client) -> Task:
    client.get_queue("q").enqueue("params")
    task = client.get_listener("q", listener_id="node.example_7").listen(timeout=1)
    assert task is not None
    return task


def test_start_marks_started_and_returns_parameters(client: Client, db: Redis) -> None:
    task = _taken(client)
    assert client.get_processor(task).start(4242) == "params"
    current = client.get_task(task.id)
    assert (current.status, current.pid, current.node) == ("started", 4242, "node.example_7")
    assert db.smembers(keys.started("q")) == {f"node.example_7 4242 {task.id}"}


@pytest.mark.parametrize(("outcome", "field"), [("complete", "result"), ("failed", "error")])
def test_finishing_moves_the_task_and_clears_running_state(client: Client, outcome: str, field: str, db: Redis) -> None:
    task = _taken(client)
    processor = client.get_processor(task)
    processor.start(4242)
    processor.complete("the result") if outcome == "complete" else processor.fail("the error")
    current = client.get_task(task.id)
    assert current.status == outcome
    assert current.fields[field] == ("the result" if outcome == "complete" else "the error")
    assert db.lrange(f"blueque_{outcome}_tasks_q", 0, -1) == [task.id]
    assert db.llen(keys.reserved("q", "node.example_7")) == 0
    assert db.scard(keys.started("q")) == 0


def test_results_must_be_strings(client: Client) -> None:
    task = _taken(client)
    with pytest.raises(TypeError, match="must be a string"):
        client.get_processor(task).complete(42)  # type: ignore[arg-type]
    assert client.get_task(task.id).status == "reserved"


def test_a_task_not_taken_by_a_listener_has_no_processor(client: Client) -> None:
    task_id = client.get_queue("q").enqueue("params")
    with pytest.raises(ValueError, match="not been taken"):
        client.get_processor(client.get_task(task_id))
