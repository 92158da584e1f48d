"""Recovery of the tasks of dead listeners, rule by rule."""

import os
import subprocess

from redis import Redis

from django_blueque.protocol import Client, keys
from django_blueque.protocol.listener import hostname
from django_blueque.protocol.processes import process_token


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def held(client: Client, db: Redis, listener_id: str, status: str, *, pid: int | None = None, token: str = "") -> str:
    """A task in ``listener_id``'s reserved list, in ``status``."""
    task_id = client.get_queue("q").enqueue(status)
    db.sadd(keys.listeners("q"), listener_id)
    db.lmove(keys.pending("q"), keys.reserved("q", listener_id), "RIGHT", "LEFT")
    db.hset(keys.task(task_id), mapping={"status": status, "node": listener_id})
    if pid is not None:
        db.hset(keys.task(task_id), mapping={"pid": pid, "process_token": token})
        db.sadd(keys.started("q"), keys.started_member(listener_id, pid, task_id))
    return task_id


def test_a_silent_listeners_tasks(client: Client, db: Redis) -> None:
    gone = "far.example_1"
    db.zadd(keys.heartbeats(), {gone: 1.0})  # beat long ago
    reserved = held(client, db, gone, "reserved")
    lost = held(client, db, gone, "started", pid=1)
    db.zadd(keys.task_heartbeats(), {lost: 1.0})
    counts = client.recover(["q"], timeout=2)
    assert counts == {"released": 1, "requeued": 1, "listeners": 1}
    released, requeued = client.get_tasks([reserved, lost])
    assert (released.status, "recoveries" in released.fields) == ("pending", False)
    assert (requeued.status, requeued.fields["recoveries"], requeued.node) == ("pending", "1", None)
    assert "stopped answering" in requeued.fields["lost"]
    assert db.lrange(keys.pending("q"), 0, -1) == [reserved, lost]  # at the front, oldest first
    assert db.scard(keys.started("q")) == 0
    assert db.smembers(keys.listeners("q")) == set()


def test_a_started_task_whose_process_still_beats_is_left_alone(client: Client, db: Redis) -> None:
    gone = "far.example_1"
    db.zadd(keys.heartbeats(), {gone: 1.0})
    running = held(client, db, gone, "started", pid=1)
    db.zadd(keys.task_heartbeats(), {running: 1.0})  # as its start did, long ago
    client.beat(None, [running])  # and its process beats still
    assert client.recover(["q"], timeout=2) == {"running": 1}
    assert client.get_task(running).status == "started"
    assert db.smembers(keys.listeners("q")) == {gone}  # still holds a task


def test_a_live_listener_is_not_touched(client: Client, db: Redis) -> None:
    alive = "near.example_1"
    task_id = held(client, db, alive, "started", pid=1)
    client.beat(alive)
    assert client.recover(["q"], timeout=2) == {}
    assert client.get_task(task_id).status == "started"


def test_lost_too_often_fails_as_worker_lost(client: Client, db: Redis) -> None:
    gone = "far.example_1"
    db.zadd(keys.heartbeats(), {gone: 1.0})
    task_id = held(client, db, gone, "started", pid=1)
    db.hset(keys.task(task_id), "recoveries", 3)
    assert client.recover(["q"], timeout=2, max_recoveries=3)["failed"] == 1
    task = client.get_task(task_id)
    assert task.status == "failed"
    assert task.error == "Worker lost 4 times; last: listener far.example_1 stopped answering"
    assert task.exception == "django_blueque.protocol.errors.WorkerLost"
    assert db.lrange(keys.failed("q"), 0, -1) == [task_id]


def test_listeners_that_never_beat_are_judged_by_pid_and_process_start_time(client: Client, db: Redis) -> None:
    # Blueque 1.0.1's listeners: dead when on this host with their pid gone.
    old = f"{hostname()}_{dead_pid()}"
    mine = os.getpid()
    still_running = held(client, db, old, "started", pid=mine, token=process_token(mine))
    pid_reused = held(client, db, old, "started", pid=mine, token="a-process-that-is-gone")
    counts = client.recover(["q"], timeout=2)
    assert counts == {"running": 1, "requeued": 1}
    assert [t.status for t in client.get_tasks([still_running, pid_reused])] == ["started", "pending"]
    elsewhere = f"other.example_{dead_pid()}"
    held(client, db, elsewhere, "reserved")
    assert client.recover(["q"], timeout=2) == {"running": 1}  # another host's: never judged by pid here


def test_a_beat_just_after_a_task_finished_does_not_bring_it_back(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("x")
    listener = client.get_listener("q", heartbeat=True)
    task = listener.listen(timeout=1)
    assert task is not None
    processor = client.get_processor(task)
    processor.start()
    assert db.zscore(keys.task_heartbeats(), task_id) is not None
    processor.complete("done")
    listener.beat([task_id])  # the runner had not reaped the child yet
    assert db.zcard(keys.task_heartbeats()) == 0


def test_the_scheduler_forgets_heartbeats_of_listeners_long_gone(client: Client, db: Redis) -> None:
    from django_blueque.protocol.scheduler import Scheduler

    db.zadd(keys.heartbeats(), {"gone.example_1": 1.0})
    client.beat("here.example_2")
    Scheduler(client).tick()
    assert db.zrange(keys.heartbeats(), 0, -1) == ["here.example_2"]
