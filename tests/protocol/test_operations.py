"""Operator actions on tasks (protocol/operations.py): each leaves every task in
exactly one known place, refuses what it must not do, and does nothing twice."""

from __future__ import annotations

import json
import time

import pytest
from redis import Redis

from django_blueque.protocol import Client, Task, keys
from django_blueque.protocol.liveness import Run
from django_blueque.protocol.monitor import Monitor


def places(db: Redis, task_id: str, queue: str = "q") -> list[str]:
    """Every list and set of ``queue`` that holds ``task_id``."""
    found = []
    for name, key in [
        ("pending", keys.pending(queue)),
        ("complete", keys.complete(queue)),
        ("failed", keys.failed(queue)),
    ]:
        found += [name] * db.lrange(key, 0, -1).count(task_id)
    for name, key in [
        ("scheduled", keys.scheduled(queue)),
        ("reported complete", keys.reported(queue, "complete")),
        ("reported failed", keys.reported(queue, "failed")),
    ]:
        if db.zscore(key, task_id) is not None:
            found.append(name)
    for key in db.scan_iter("blueque_reserved_tasks_*"):
        found += ["reserved list"] * db.lrange(key, 0, -1).count(task_id)
    return found


def failed_task(client: Client, error: str = "boom") -> str:
    task_id = client.get_queue("q").enqueue("p")
    task = client.get_listener("q").listen(timeout=1)
    assert task is not None and task.id == task_id
    processor = client.get_processor(task)
    processor.start()
    assert processor.fail(error, exception="builtins.ValueError", traceback="Traceback: boom")
    return task_id


def run_once(client: Client, outcome: str = "done") -> Task:
    """Take the next task of "q" and complete it."""
    task = client.get_listener("q").listen(timeout=1)
    assert task is not None
    processor = client.get_processor(task)
    processor.start()
    assert processor.complete(outcome)
    return client.get_task(task.id)


# -- retry


def test_retry_puts_a_failed_task_back_for_a_new_attempt_keeping_its_errors(client: Client, db: Redis) -> None:
    task_id = failed_task(client)
    db.hset(keys.task(task_id), mapping={"recoveries": 2, "lost": "killed"})
    outcome = client.operations().retry([task_id])
    assert outcome.results == {task_id: "retried"} and outcome.done == [task_id]
    assert places(db, task_id) == ["pending"]
    task = client.get_task(task_id)
    assert task.status == "pending"
    assert [(e["attempt"], e["error"], e["exception"]) for e in json.loads(task.fields["errors"])] == [
        (1, "boom", "builtins.ValueError")
    ]
    assert not {"error", "exception", "traceback", "recoveries", "lost", "node", "pid"} & set(task.fields)
    finished = run_once(client)
    assert (finished.status, finished.fields["attempt"]) == ("complete", "2")


def test_retry_finds_a_failed_task_a_monitor_has_reported(client: Client, db: Redis) -> None:
    task_id = failed_task(client)
    Monitor(client, on_complete=lambda task: None, on_failed=lambda task: None).report()
    assert places(db, task_id) == ["reported failed"]
    assert client.operations().retry([task_id]).results == {task_id: "retried"}
    assert places(db, task_id) == ["pending"]


def test_retry_refuses_what_is_not_failed_and_does_nothing_twice(client: Client, db: Redis) -> None:
    task_id = failed_task(client)
    pending_id = client.get_queue("q").enqueue("p")
    operations = client.operations()
    assert operations.retry([task_id, pending_id, "no-such-task"]).results == {
        task_id: "retried",
        pending_id: "not-failed",
        "no-such-task": "gone",
    }
    assert operations.retry([task_id]).results == {task_id: "not-failed"}
    assert places(db, task_id) == ["pending"] and places(db, pending_id) == ["pending"]


def test_retry_waits_while_a_monitor_is_reporting_the_failure(client: Client, db: Redis) -> None:
    task_id = failed_task(client)
    # What a monitor's take does: the id leaves the failed list for the monitor's own list.
    db.lrem(keys.failed("q"), 1, task_id)
    db.lpush(keys.monitoring("m"), keys.monitoring_entry("q", "failed", task_id))
    assert client.operations().retry([task_id]).results == {task_id: "in-flight"}
    assert client.get_task(task_id).status == "failed"


# -- cancel and run now


def test_cancel_fails_pending_and_scheduled_tasks_before_they_start(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    pending_id, scheduled_id = queue.enqueue("a"), queue.schedule("b", eta=2e9)
    outcome = client.operations().cancel([pending_id, scheduled_id])
    assert outcome.results == {pending_id: "cancelled", scheduled_id: "cancelled"}
    for task_id in (pending_id, scheduled_id):
        task = client.get_task(task_id)
        assert (task.status, task.error, task.exception) == (
            "failed",
            "Cancelled",
            "django_blueque.protocol.errors.Cancelled",
        )
        assert places(db, task_id) == ["failed"]
    assert client.get_listener("q").listen(timeout=0.2) is None


def test_cancel_is_too_late_once_a_listener_took_the_task(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    reserved_id, taken_id = queue.enqueue("a"), queue.enqueue("b")
    listener = client.get_listener("q")
    assert listener.listen(timeout=1) is not None  # reserved
    # Taken, not yet marked reserved (the move alone).
    db.lmove(keys.pending("q"), keys.reserved("q", listener.id), "RIGHT", "LEFT")
    assert client.operations().cancel([reserved_id, taken_id]).results == {
        reserved_id: "not-waiting",
        taken_id: "taken",
    }
    assert places(db, taken_id) == ["reserved list"] and client.get_task(taken_id).status == "pending"


def test_run_now_makes_a_scheduled_task_pending(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    scheduled_id, pending_id = queue.schedule("a", eta=2e9), queue.enqueue("b")
    assert client.operations().run_now([scheduled_id, pending_id]).results == {
        scheduled_id: "moved",
        pending_id: "not-scheduled",
    }
    assert places(db, scheduled_id) == ["pending"] and client.get_task(scheduled_id).status == "pending"


# -- delete and forget


def test_delete_removes_finished_tasks_wherever_they_are_listed(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    queue.enqueue("a")
    complete_id = run_once(client).id
    failed_id = failed_task(client)
    Monitor(client, on_complete=lambda task: None, on_failed=lambda task: None).report()
    queue.enqueue("c")
    unreported_id = run_once(client).id
    pending_id = queue.enqueue("d")
    outcome = client.operations().delete([complete_id, failed_id, unreported_id, pending_id, "nope"])
    assert outcome.results == {
        complete_id: "deleted",
        failed_id: "deleted",
        unreported_id: "deleted",
        pending_id: "not-finished",
        "nope": "gone",
    }
    for task_id in (complete_id, failed_id, unreported_id):
        assert places(db, task_id) == [] and not db.exists(keys.task(task_id))
    assert places(db, pending_id) == ["pending"]


def test_forget_queue_only_when_nothing_is_left_under_it(client: Client, db: Redis) -> None:
    operations = client.operations()
    assert operations.forget_queue("typo") == "unknown"
    task_id = client.get_queue("typo").enqueue("a")
    assert operations.forget_queue("typo") == keys.pending("typo")
    db.delete(keys.pending("typo"), keys.task(task_id))
    listener = client.get_listener("typo")
    assert operations.forget_queue("typo") == keys.listeners("typo")
    listener.close()
    assert operations.forget_queue("typo") == "forgotten"
    assert "typo" not in client.queue_names()
    with pytest.raises(ValueError, match="whitespace"):
        operations.forget_queue("a b")


# -- requeue


def _age_heartbeats(db: Redis, *members: str, seconds: float = 100.0, key: str | None = None) -> None:
    """Make heartbeats ``seconds`` old; first let the server be up for longer than the 2 s timeouts used here."""
    while int(db.info("server")["uptime_in_seconds"]) < 3:
        time.sleep(0.1)
    now = float(db.time()[0])
    for member in members:
        db.zadd(key or keys.heartbeats(), {member: now - seconds})


def test_requeue_takes_back_the_task_of_a_dead_listener_only(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    task_id = queue.enqueue("a")
    listener = client.get_listener("q", heartbeat=True, timeout=2)
    listener.beat()
    task = listener.listen(timeout=1)
    assert task is not None
    operations = client.operations()
    assert operations.requeue([task_id]).results == {task_id: "alive"}
    _age_heartbeats(db, listener.id)
    assert operations.requeue([task_id]).results == {task_id: "requeued"}
    assert places(db, task_id) == ["pending"] and client.get_task(task_id).status == "pending"
    assert operations.requeue([task_id]).results == {task_id: "not-running"}


def test_requeue_leaves_a_started_task_whose_process_still_beats(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("a")
    listener = client.get_listener("q", heartbeat=True, timeout=2)
    task = listener.listen(timeout=1)
    assert task is not None
    processor = client.get_processor(task)
    processor.start(pid=4242)
    listener.beat([Run(task_id, 4242, 1)])
    _age_heartbeats(db, listener.id)  # the listener looks dead, its task's process does not
    operations = client.operations()
    assert operations.requeue([task_id]).results == {task_id: "alive"}
    _age_heartbeats(db, task_id, key=keys.task_heartbeats())
    assert operations.requeue([task_id]).results == {task_id: "requeued"}
    requeued = client.get_task(task_id)
    assert (requeued.status, requeued.fields["recoveries"]) == ("pending", "1")
    assert places(db, task_id) == ["pending"]
    assert not processor.complete("late"), "the old run's outcome must not land"


def test_requeue_cannot_judge_what_never_beats_or_a_server_just_started(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    plain_id, long_id = queue.enqueue("a"), queue.enqueue("b")
    assert client.get_listener("q").listen(timeout=1) is not None  # no heartbeat (Blueque 1.0.1's kind)
    patient = client.get_listener("q", heartbeat=True, timeout=10**6)  # longer than the server has been up
    patient.beat()
    assert patient.listen(timeout=1) is not None
    # Older than its timeout (as after a restart of a server that was down for long), but
    # since the restart its worker has not had its timeout's time to beat.
    _age_heartbeats(db, patient.id, seconds=2 * 10**6)
    operations = client.operations()
    assert operations.requeue([plain_id, long_id]).results == {plain_id: "unknown", long_id: "unknown"}
    assert operations.requeue([plain_id, long_id], force=True).results == {plain_id: "requeued", long_id: "requeued"}
    assert places(db, plain_id) == ["pending"] and places(db, long_id) == ["pending"]


def test_a_forced_requeue_stops_the_live_run_at_its_next_beat(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("a")
    listener = client.get_listener("q", heartbeat=True, timeout=2)
    task = listener.listen(timeout=1)
    assert task is not None
    client.get_processor(task).start(pid=4242)
    assert client.operations().requeue([task_id], force=True).results == {task_id: "requeued"}
    assert listener.beat([Run(task_id, 4242, 1)]) == [task_id]


# -- every task of a queue in a state


def test_every_failed_task_of_a_queue_retried_in_batches(client: Client, db: Redis) -> None:
    ids = [failed_task(client, f"e{i}") for i in range(25)]
    outcome = client.operations().apply_to_state("retry", "q", "failed", batch=10)
    assert sorted(outcome.done) == sorted(ids)
    assert db.llen(keys.failed("q")) == 0 and db.llen(keys.pending("q")) == 25


def test_every_pending_task_cancelled_and_a_dry_run_changes_nothing(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    ids = [queue.enqueue(str(i)) for i in range(230)]
    operations = client.operations()
    pages = list(operations.in_state("q", "pending", batch=100))
    assert [len(page) for page in pages] == [100, 100, 30]
    assert [task_id for page in pages for task_id in page] == ids  # oldest first: the order they will run
    assert db.llen(keys.pending("q")) == 230
    outcome = operations.apply_to_state("cancel", "q", "pending", batch=100)
    assert outcome.counts() == {"cancelled": 230}
    assert db.llen(keys.pending("q")) == 0 and db.llen(keys.failed("q")) == 230


def test_deleting_finished_tasks_older_than_a_date_keeps_the_newer(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    for _ in range(6):
        queue.enqueue("a")
    ids = [run_once(client).id for _ in range(6)]
    for task_id in ids[:4]:
        db.hset(keys.task(task_id), "updated", 1000.0)
    outcome = client.operations().apply_to_state("delete", "q", "complete", batch=2, older_than=2000.0)
    assert sorted(outcome.done) == sorted(ids[:4])
    assert sorted(db.lrange(keys.complete("q"), 0, -1)) == sorted(ids[4:])


def test_an_action_applies_only_to_its_states(client: Client) -> None:
    operations = client.operations()
    with pytest.raises(ValueError, match="retry applies to tasks that are failed, not 'pending'"):
        operations.apply_to_state("retry", "q", "pending")
    with pytest.raises(ValueError, match="Unknown action"):
        operations.apply_to_state("explode", "q", "pending")
