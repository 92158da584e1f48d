"""Rules of the protocol that recovery relies on: an outcome is written only by
the run that owns the task, a finished or vanished task keeps no running
state, and names cannot break the space-separated ``started`` members."""

from __future__ import annotations

import time

import pytest
import redis
from redis import Redis

from django_blueque.protocol import Client, Task, keys


def _taken(client: Client) -> Task:
    client.get_queue("q").enqueue("params")
    task = client.get_listener("q").listen(timeout=1)
    assert task is not None
    return task


def reserved_ids(db: Redis) -> list[str]:
    found: list[str] = []
    for key in db.scan_iter("blueque_reserved_tasks_*"):
        found += [str(item) for item in db.lrange(key, 0, -1)]
    return found


def test_completing_a_task_deleted_meanwhile_leaves_no_running_state(client: Client, db: Redis) -> None:
    task = _taken(client)
    processor = client.get_processor(task)
    processor.start()
    assert db.zscore(keys.task_heartbeats(), task.id) is not None
    client.redis.delete(keys.task(task.id))
    assert processor.complete("x") is False
    assert {
        "task heartbeat": db.zscore(keys.task_heartbeats(), task.id),
        "ids in reserved lists": reserved_ids(db),
        "started members": sorted(db.smembers(keys.started("q"))),
        "complete list": db.lrange(keys.complete("q"), 0, -1),
    } == {"task heartbeat": None, "ids in reserved lists": [], "started members": [], "complete list": []}


def test_a_stale_attempt_cannot_record_over_a_task_another_listener_took(client: Client, db: Redis) -> None:
    client.get_queue("q").enqueue("params")
    listener = client.get_listener("q")
    task = listener.listen(timeout=1)
    assert task is not None
    stale = client.get_processor(task)
    stale.start()
    assert stale.attempt == 1
    # Its process is lost: the task goes back to pending, not started again yet.
    assert listener.give_back(task, lost="test") == "requeued"
    again = client.get_task(task.id)
    assert (again.status, again.fields.get("attempt")) == ("pending", "1")
    taken = client.get_listener("q", listener_id="other_1").listen(timeout=1)
    assert taken is not None and taken.id == task.id
    before = client.get_task(task.id)
    assert (before.status, before.node, before.fields.get("attempt")) == ("reserved", "other_1", "1")

    assert stale.complete("stale") is False

    after = client.get_task(task.id)
    assert {
        "status": after.status,
        "node": after.node,
        "result": after.result,
        "complete list": db.lrange(keys.complete("q"), 0, -1),
        "other_1's reserved list": db.lrange(keys.reserved("q", "other_1"), 0, -1),
    } == {
        "status": "reserved",
        "node": "other_1",
        "result": None,
        "complete list": [],
        "other_1's reserved list": [task.id],
    }


@pytest.mark.parametrize("failing", ["fail", "retry"])
def test_a_stale_attempt_cannot_fail_or_retry_a_task_another_listener_took(
    client: Client, db: Redis, failing: str
) -> None:
    # The same rule for the other outcomes: fail and retry are fenced like complete.
    client.get_queue("q").enqueue("params")
    listener = client.get_listener("q")
    task = listener.listen(timeout=1)
    assert task is not None
    stale = client.get_processor(task)
    stale.start()
    assert listener.give_back(task, lost="test") == "requeued"
    taken = client.get_listener("q", listener_id="other_1").listen(timeout=1)
    assert taken is not None and taken.id == task.id
    if failing == "fail":
        assert stale.fail("stale") is False
    else:
        assert stale.retry(0.0, "stale") is False
    after = client.get_task(task.id)
    assert (after.status, after.node, after.error) == ("reserved", "other_1", None)
    assert db.lrange(keys.failed("q"), 0, -1) == []
    assert db.zcard(keys.scheduled("q")) == 0


BAD_NAMES = ["", " a", "a b", "a\tb", "a\nb"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_queue_name_with_whitespace_is_refused(client: Client, db: Redis, name: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)queue name"):
        client.get_queue(name)
    with pytest.raises(ValueError, match=r"(?i)queue name"):
        client.get_listener(name)
    with pytest.raises(ValueError, match=r"(?i)queue name"):
        client.get_listener("q", name)
    # Nothing was registered under it.
    assert db.zscore(keys.queues(), name) is None


@pytest.mark.parametrize("task_id", ["a b", "a\tb", "a\nb", " a", "a "])
def test_a_task_id_with_whitespace_is_refused(client: Client, db: Redis, task_id: str) -> None:
    # "<listener> <pid> <task id>" members of the started set could not be split again.
    with pytest.raises(ValueError, match=r"(?i)task id"):
        client.get_queue("q").enqueue("x", task_id=task_id)
    assert db.llen(keys.pending("q")) == 0


def test_moving_due_tasks_writes_nothing_when_one_of_them_cannot_be_read(client: Client, db: Redis) -> None:
    # Redis does not roll back a script that errors: every read comes before the first write.
    queue = client.get_queue("q")
    first, second = (queue.schedule(name, eta=time.time() + 60) for name in ("first", "second"))
    db.delete(keys.task(second))
    db.set(keys.task(second), "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        queue.move_due([first, second], time.time() + 120)
    assert db.zcard(keys.scheduled("q")) == 2
    assert (client.get_task(first).status, db.llen(keys.pending("q"))) == ("scheduled", 0)


def test_a_periodic_occurrence_is_not_claimed_when_its_previous_run_cannot_be_read(client: Client, db: Redis) -> None:
    db.hset(keys.periodic(), "tick", 100)
    db.set(keys.task("previous"), "not a hash")
    script_keys = [keys.periodic(), keys.task("new"), keys.pending("q"), keys.queues(), keys.task("previous")]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.scripts.periodic(keys=script_keys, args=["tick", 200, "new", "q", "p", time.time(), "c", "1", "0"])
    assert db.hget(keys.periodic(), "tick") == "100"  # still due: a later tick runs it
