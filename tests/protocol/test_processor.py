import pytest
import redis.exceptions
from redis import Redis

from django_blueque.protocol import Client, Task, keys
from django_blueque.protocol.listener import Listener
from django_blueque.protocol.processor import NextTask, Processor
from django_blueque.protocol.work import Outcome, record


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


def _started(client: Client, listener_id: str, *queues: str) -> tuple[Processor, Listener]:
    """A task taken and started by a listener on ``queues`` (the first has it)."""
    listener = client.get_listener(*queues, listener_id=listener_id)
    task = listener.listen(timeout=1)
    assert task is not None
    processor = client.get_processor(task)
    processor.start(4242)
    return processor, listener


@pytest.mark.parametrize("outcome", ["complete", "failed"])
def test_an_outcome_takes_the_next_task_in_its_round_trip(client: Client, db: Redis, outcome: str) -> None:
    """From the first of the listener's queues that has one, as its take does; moved, still pending."""
    client.get_queue("high").enqueue("now")
    low = client.get_queue("low").enqueue("next")
    processor, listener = _started(client, "node.example_7", "high", "low")
    then = listener.next_task()
    recorded = processor.complete("done", then=then) if outcome == "complete" else processor.fail("no", then=then)
    assert recorded
    assert client.get_task(processor.task.id).status == outcome
    assert then.taken == ("low", low)
    assert db.lrange(keys.reserved("low", "node.example_7"), 0, -1) == [low]
    assert client.get_task(low).status == "pending"  # started by the next script
    started = listener.start_taken(then.taken, 4243, "")
    assert started is not None and started[0].parameters == "next"


def test_an_outcome_with_nothing_pending_takes_nothing(client: Client, db: Redis) -> None:
    client.get_queue("q").enqueue("only")
    processor, listener = _started(client, "node.example_7", "q")
    then = listener.next_task()
    assert processor.complete("done", then=then)
    assert then.taken is None
    assert db.llen(keys.reserved("q", "node.example_7")) == 0


def test_an_outcome_not_ours_any_more_still_takes_the_next_task(client: Client, db: Redis) -> None:
    """The process is free either way."""
    queue = client.get_queue("q")
    queue.enqueue("taken over")
    following = queue.enqueue("next")
    processor, listener = _started(client, "node.example_7", "q")
    db.hset(keys.task(processor.task.id), mapping={"attempt": "2", "node": "elsewhere"})  # a newer attempt's
    then = listener.next_task()
    assert not processor.complete("late", then=then)
    assert then.taken == ("q", following)


def test_a_retried_outcome_takes_nothing_and_the_listener_finds_what_the_first_try_took(
    client: Client, db: Redis
) -> None:
    """The first try's reply was lost after it had run: :func:`record` retries without the take, and the
    listener, told so, starts the task the first try moved instead of taking another."""
    queue = client.get_queue("q")
    queue.enqueue("first")
    second, third = queue.enqueue("second"), queue.enqueue("third")
    processor, listener = _started(client, "node.example_7", "q")
    lost_reply = listener.next_task()
    assert processor.complete("done", then=lost_reply)  # ran; its caller never heard
    listener.unsettle()  # what record() does before its second try
    assert processor.complete("done")  # the retry: the same answer, nothing more taken
    assert db.lrange(keys.reserved("q", "node.example_7"), 0, -1) == [second]
    resumed = listener.listen(timeout=1)
    assert resumed is not None and resumed.id == second
    assert db.lrange(keys.pending("q"), 0, -1) == [third]


def test_record_takes_on_its_first_try_only(client: Client, db: Redis) -> None:
    """After a failed first try, the next ones pass no take, and ``lost`` is called once."""
    queue = client.get_queue("q")
    queue.enqueue("first")
    following = queue.enqueue("next")
    processor, listener = _started(client, "node.example_7", "q")
    calls: list[str] = []
    complete = processor.complete

    def failing_once(result: str, *, then: NextTask | None = None) -> bool:
        calls.append("take" if then is not None else "plain")
        if len(calls) == 1:
            raise redis.exceptions.ConnectionError("the connection broke before the script was sent")
        return complete(result, then=then)

    processor.complete = failing_once  # type: ignore[method-assign]
    lost: list[bool] = []
    then = listener.next_task()
    record(processor, Outcome("complete", result="done"), then=then, lost=lambda: lost.append(True))
    assert calls == ["take", "plain"]
    assert lost == [True]
    assert then.taken is None
    assert client.get_task(processor.task.id).status == "complete"
    assert db.lrange(keys.pending("q"), 0, -1) == [following]
