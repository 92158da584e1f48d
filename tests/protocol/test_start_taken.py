"""Taking a task, then reserving and starting it in one step (fork mode's path).

``Listener.take`` moves an id into the listener's reserved list;
``Listener.start_taken`` reserves and starts it for a process at once
(``reserve_start.lua``), leaving what ``listen()`` then ``Processor.start``
leave, so that Blueque 1.0.1 readers see a task its own listener started.
"""

from __future__ import annotations

from redis import Redis

from django_blueque.protocol import Client, keys
from django_blueque.protocol.processes import process_token


def test_start_taken_leaves_what_reserve_then_start_leave(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    task_id = queue.enqueue("params", extra={"kind": "a"})
    other = queue.enqueue("other")
    listener = client.get_listener("q", heartbeat=True)
    taken = listener.take(1)
    assert taken == ("q", task_id)
    started = listener.start_taken(taken, 4242, "token-1")
    assert started is not None
    task, attempt = started
    assert attempt == 1
    stored = client.get_task(task_id)
    # The task's code is given the task as reserved, as listen() returns it.
    assert (task.status, task.node, task.fields.get("attempt"), task.pid) == ("reserved", listener.id, None, None)
    start_fields = {"status": "started", "attempt": "1", "pid": "4242", "process_token": "token-1"}
    assert {**task.fields, **start_fields, "started_at": task.fields["updated"]} == dict(stored.fields)
    assert (stored.status, stored.node, stored.pid, stored.parameters) == ("started", listener.id, 4242, "params")
    assert (stored.fields["attempt"], stored.fields["process_token"], stored.fields["kind"]) == ("1", "token-1", "a")
    assert db.lrange(keys.reserved("q", listener.id), 0, -1) == [task_id]
    assert db.smembers(keys.started("q")) == {f"{listener.id} 4242 {task_id}"}
    assert db.zscore(keys.task_heartbeats(), task_id) is not None
    assert db.lrange(keys.pending("q"), 0, -1) == [other]
    # Its outcome is recorded as for any started task.
    processor = client.get_processor(task)
    processor.adopt(4242, attempt)
    assert processor.complete("done")
    assert client.get_task(task_id).status == "complete"
    assert db.scard(keys.started("q")) == 0


def test_a_retry_after_a_lost_reply_gets_the_same_answer(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("x")
    listener = client.get_listener("q", heartbeat=True)
    taken = listener.take(1)
    assert taken is not None
    first = listener.start_taken(taken, 4242, process_token(4242))
    again = listener.start_taken(taken, 4242, process_token(4242))
    assert first is not None and again is not None
    assert first[1] == again[1] == 1
    assert again[0].status == "reserved" and again[0].fields["attempt"] == "0"
    assert client.get_task(task_id).fields["attempt"] == "1"
    # Another process of the same listener may not start it again.
    assert listener.start_taken(taken, 4343, "") is None
    assert client.get_task(task_id).pid == 4242


def test_an_id_recovered_meanwhile_is_not_started(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("x")
    paused = client.get_listener("q", heartbeat=True)
    taken = paused.take(1)
    assert taken is not None
    db.lmove(keys.reserved("q", paused.id), keys.pending("q"), "LEFT", "RIGHT")  # as recovery does
    other = client.get_listener("q", heartbeat=True)
    assert other.listen(timeout=1) is not None
    assert paused.start_taken(taken, 4242, "") is None
    task = client.get_task(task_id)
    assert (task.status, task.node, task.pid) == ("reserved", other.id, None)


def test_an_id_that_is_not_a_pending_task_is_dropped(client: Client, db: Redis) -> None:
    finished = client.get_queue("q").enqueue("x")
    db.hset(keys.task(finished), "status", "complete")
    listener = client.get_listener("q", heartbeat=True)
    taken = listener.take(1)
    assert taken == ("q", finished)
    assert listener.start_taken(taken, 4242, "") is None
    assert db.llen(keys.reserved("q", listener.id)) == 0
    assert client.get_task(finished).status == "complete"


def test_malformed_counters_fail_the_task_without_running_it(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("x")
    db.hset(keys.task(task_id), "recoveries", "many")
    listener = client.get_listener("q", heartbeat=True)
    taken = listener.take(1)
    assert taken is not None
    assert listener.start_taken(taken, 4242, "") is None
    task = client.get_task(task_id)
    assert task.status == "failed"
    assert "recoveries field is not a whole number" in (task.error or "")
    assert db.lrange(keys.failed("q"), 0, -1) == [task_id]
    assert db.llen(keys.reserved("q", listener.id)) == 0


def test_fields_that_are_not_utf8_fail_the_task_without_running_it(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("x")
    db.hset(keys.task(task_id), "parameters", b"\xff\xfe")
    listener = client.get_listener("q", heartbeat=True)
    taken = listener.take(1)
    assert taken is not None
    assert listener.start_taken(taken, 4242, "") is None
    task = client.get_task(task_id)
    assert task.status == "failed"
    assert "not valid UTF-8" in (task.error or "")
    assert db.scard(keys.started("q")) == 0
    assert db.llen(keys.reserved("q", listener.id)) == 0


def test_take_times_out_with_none(client: Client) -> None:
    listener = client.get_listener("q", heartbeat=True)
    assert listener.take(0) is None
    assert listener.take(0.1) is None
