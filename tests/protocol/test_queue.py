import threading
import time

import pytest
from redis import Redis

from django_blueque.protocol import Client, NotReplicated, keys


def test_enqueue_writes_the_1_0_fields(client: Client, db: Redis) -> None:
    before = time.time()
    task_id = client.get_queue("q").enqueue("params")
    fields = db.hgetall(keys.task(task_id))
    assert fields["status"] == "pending"
    assert fields["queue"] == "q"
    assert fields["parameters"] == "params"
    assert before <= float(fields["created"]) == float(fields["updated"]) <= time.time()
    assert db.lrange(keys.pending("q"), 0, -1) == [task_id]
    assert db.zscore(keys.queues(), "q") == 0


def test_enqueue_keeps_fifo_order(client: Client) -> None:
    queue = client.get_queue("q")
    ids = [queue.enqueue(str(i)) for i in range(5)]
    assert client.task_ids("q", "pending") == ids


def test_enqueue_rejects_non_string_parameters(client: Client, db: Redis) -> None:
    with pytest.raises(TypeError, match="must be a string"):
        client.get_queue("q").enqueue({"a": 1})  # type: ignore[arg-type]
    assert db.dbsize() == 0


def test_extra_fields_do_not_override_the_protocols_own(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("params", extra={"status": "complete", "kind": "a", "weight": 1.5})
    fields = db.hgetall(keys.task(task_id))
    assert (fields["status"], fields["kind"], fields["weight"]) == ("pending", "a", "1.5")


def test_enqueue_many_adds_each_task_in_one_round_trip_in_order(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    first = queue.enqueue("before")
    db.config_resetstat()
    # More than one slice of the script's pushes (1,000 ids each).
    ids = queue.enqueue_many((f"task {i}" for i in range(2_500)), extra={"kind": "bulk"}, created=1_000.0)
    calls = {name: stats["calls"] for name, stats in db.info("commandstats").items()}
    assert calls["cmdstat_evalsha"] == 1 and "cmdstat_multi" not in calls
    assert calls["cmdstat_publish"] == 1
    assert len(set(ids)) == 2_500
    assert db.lrange(keys.pending("q"), 0, -1)[::-1] == [first, *ids]
    tasks = client.get_tasks([ids[0], ids[-1]])
    assert [t.parameters for t in tasks] == ["task 0", "task 2499"]
    assert all((t.status, t.queue, t.fields["kind"], t.created) == ("pending", "q", "bulk", 1_000.0) for t in tasks)
    # Taken in the order given.
    listener = client.get_listener("q")
    assert [listener.listen(timeout=0).id for _ in range(3)] == [first, ids[0], ids[1]]  # type: ignore[union-attr]


def test_enqueue_many_adds_all_or_nothing(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    assert queue.enqueue_many([]) == []
    with pytest.raises(TypeError, match="must be a string"):
        queue.enqueue_many(["fine", b"bytes"])  # type: ignore[list-item]
    assert db.dbsize() == 0


@pytest.mark.parametrize("name", ["", " padded", 3])
def test_bad_queue_names_are_refused(client: Client, name: object) -> None:
    with pytest.raises(ValueError, match="queue name"):
        client.get_queue(name)  # type: ignore[arg-type]


def test_schedule_in_the_future(client: Client, db: Redis) -> None:
    eta = time.time() + 60
    task_id = client.get_queue("q").schedule("later", eta=eta)
    task = client.get_task(task_id)
    assert task.status == "scheduled"
    assert task.eta == pytest.approx(eta)
    assert db.zscore(keys.scheduled("q"), task_id) == pytest.approx(eta)
    assert db.llen(keys.pending("q")) == 0


def test_schedule_in_the_past_enqueues_at_once(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").schedule("now", eta=time.time() - 1)
    assert client.get_task(task_id).status == "pending"
    assert db.zcard(keys.scheduled("q")) == 0


def test_enqueue_due_tasks_moves_only_due_ones(client: Client) -> None:
    queue = client.get_queue("q")
    now = time.time()
    due = [queue.schedule(str(i), eta=now + 10 + i) for i in range(3)]
    later = queue.schedule("later", eta=now + 100)
    assert queue.enqueue_due_tasks(now=now + 50) == 3
    assert client.task_ids("q", "pending") == due
    assert [t.status for t in client.get_tasks(due)] == ["pending"] * 3
    assert client.get_task(later).status == "scheduled"
    assert queue.enqueue_due_tasks(now=now + 50) == 0


def test_enqueue_due_tasks_is_exactly_once_across_concurrent_callers(client: Client, redis_url: str, db: Redis) -> None:
    queue = client.get_queue("q")
    now = time.time()
    ids = {queue.schedule(str(i), eta=now + 60) for i in range(2000)}
    moved: list[int] = []
    barrier = threading.Barrier(4)

    def scheduler() -> None:
        own = Client(redis_url)
        barrier.wait()
        moved.append(own.get_queue("q").enqueue_due_tasks(now=now + 61))
        own.close()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(moved) == 2000
    pending = db.lrange(keys.pending("q"), 0, -1)
    assert len(pending) == 2000 and set(pending) == ids


def test_enqueue_due_tasks_drops_ids_without_a_scheduled_task(client: Client, db: Redis) -> None:
    db.zadd(keys.scheduled("q"), {"ghost": 1.0})
    assert client.get_queue("q").enqueue_due_tasks() == 0
    assert db.zcard(keys.scheduled("q")) == 0
    assert db.llen(keys.pending("q")) == 0


def _finish(client: Client, task_id: str, outcome: str) -> None:
    task = client.get_listener("q").listen(timeout=1)
    assert task is not None and task.id == task_id
    processor = client.get_processor(task)
    processor.start(1)
    processor.complete("ok") if outcome == "complete" else processor.fail("boom")


@pytest.mark.parametrize("outcome", ["complete", "failed"])
def test_delete_finished_task(client: Client, outcome: str, db: Redis) -> None:
    queue = client.get_queue("q")
    task_id = queue.enqueue("x")
    _finish(client, task_id, outcome)
    queue.delete_task(client.get_task(task_id))
    assert not client.get_task(task_id).exists
    assert db.llen(f"blueque_{outcome}_tasks_q") == 0


def test_delete_refuses_unfinished_or_foreign_tasks(client: Client) -> None:
    task_id = client.get_queue("q").enqueue("x")
    with pytest.raises(ValueError, match="Cannot delete task"):
        client.get_queue("q").delete_task(client.get_task(task_id))
    with pytest.raises(ValueError, match="not in queue other"):
        client.get_queue("other").delete_task(client.get_task(task_id))
    assert client.get_task(task_id).status == "pending"


@pytest.mark.parametrize("scheduled", [False, True])
def test_waiting_for_replicas_that_do_not_answer_says_so_and_keeps_the_task(client: Client, scheduled: bool) -> None:
    queue = client.get_queue("q")
    started = time.monotonic()

    def add() -> str:
        if scheduled:
            return queue.schedule("x", eta=time.time() + 60, replicas=1, replica_timeout=0.2)
        return queue.enqueue("x", replicas=1, replica_timeout=0.2)

    with pytest.raises(NotReplicated, match="0 of 1 replica") as refused:
        add()
    assert time.monotonic() - started >= 0.2  # it waited
    assert (refused.value.acknowledged, refused.value.asked) == (0, 1)
    # On the primary all the same: it runs unless a failover loses it.
    assert client.get_task(refused.value.task_id).status == ("scheduled" if scheduled else "pending")
