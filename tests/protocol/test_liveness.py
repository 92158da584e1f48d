"""Recovery of the tasks of dead listeners, rule by rule.

Time is a fake monotonic clock, stepped as a real observer would watch; the
heartbeats are the server's, as real listeners write them.
"""

import os
import subprocess
from collections import Counter
from collections.abc import Callable

from redis import Redis

from django_blueque.protocol import Client, keys
from django_blueque.protocol.liveness import Recovery, Watch
from django_blueque.protocol.processes import process_token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recovery(client: Client, clock: Clock, timeout: float = 2.0, max_recoveries: int = 3) -> Recovery:
    return Recovery(client.redis, client.scripts, ["q"], timeout=timeout, max_recoveries=max_recoveries, clock=clock)


def watch_for(observer: Recovery, clock: Clock, seconds: float) -> Counter[str]:
    """Poll as a live observer does, every interval, for ``seconds``; return what was recovered."""
    counts = observer.poll()
    end = clock.now + seconds
    while clock.now < end:
        clock.now += observer.interval
        counts += observer.poll()
    return counts


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
    db.hset(keys.listener_timeouts(), gone, 2)
    clock = Clock()
    observer = recovery(client, clock)
    assert watch_for(observer, clock, 1.5) == {}  # not watched silent for its timeout yet
    counts = watch_for(observer, clock, 1.0)
    assert counts == {"released": 1, "requeued": 1, "listeners": 1}
    released, requeued = client.get_tasks([reserved, lost])
    assert (released.status, released.fields["releases"], "recoveries" in released.fields) == ("pending", "1", False)
    assert (requeued.status, requeued.fields["recoveries"], requeued.node) == ("pending", "1", None)
    assert "stopped answering" in requeued.fields["lost"]
    assert db.lrange(keys.pending("q"), 0, -1) == [reserved, lost]  # at the front, oldest first
    assert db.scard(keys.started("q")) == 0
    assert db.smembers(keys.listeners("q")) == set()


def test_a_started_task_whose_process_still_beats_is_left_alone(client: Client, db: Redis) -> None:
    gone = "far.example_1"
    db.zadd(keys.heartbeats(), {gone: 1.0})
    running = held(client, db, gone, "started", pid=1)
    db.zadd(keys.task_heartbeats(), {running: 1.0})  # as its start did
    clock = Clock()
    observer = recovery(client, clock)
    counts: Counter[str] = Counter()
    for _ in range(10):  # its process beats on while the listener is silent
        client.beat(None, [running])
        counts += watch_for(observer, clock, 0.5)
    assert counts["running"] > 0 and set(counts) == {"running"}
    assert client.get_task(running).status == "started"
    assert db.smembers(keys.listeners("q")) == {gone}  # still holds a task


def test_a_live_listener_is_not_touched(client: Client, db: Redis) -> None:
    alive = "near.example_1"
    task_id = held(client, db, alive, "started", pid=1)
    clock = Clock()
    observer = recovery(client, clock)
    for _ in range(10):
        client.beat(alive)
        assert watch_for(observer, clock, 0.5) == {}
    assert client.get_task(task_id).status == "started"


def test_lost_too_often_fails_as_worker_lost(client: Client, db: Redis) -> None:
    gone = "far.example_1"
    db.zadd(keys.heartbeats(), {gone: 1.0})
    task_id = held(client, db, gone, "started", pid=1)
    db.hset(keys.task(task_id), "recoveries", 3)
    clock = Clock()
    assert watch_for(recovery(client, clock, max_recoveries=3), clock, 3)["failed"] == 1
    task = client.get_task(task_id)
    assert task.status == "failed"
    assert task.error == "Worker lost 4 times; last: listener far.example_1 stopped answering"
    assert task.exception == "django_blueque.protocol.errors.WorkerLost"
    assert db.lrange(keys.failed("q"), 0, -1) == [task_id]


def test_listeners_that_never_beat_are_judged_by_pid_and_process_start_time(
    client: Client, db: Redis, named_host: Callable[[str], str]
) -> None:
    # Blueque 1.0.1's listeners: dead when on this host with their pid gone.
    old = f"{named_host('box-a.example')}_{dead_pid()}"
    mine = os.getpid()
    still_running = held(client, db, old, "started", pid=mine, token=process_token(mine))
    pid_reused = held(client, db, old, "started", pid=mine, token="a-process-that-is-gone")
    clock = Clock()
    observer = recovery(client, clock)
    assert observer.poll() == {"running": 1, "requeued": 1}  # no watching needed: the OS knows
    assert [t.status for t in client.get_tasks([still_running, pid_reused])] == ["started", "pending"]
    elsewhere = f"other.example_{dead_pid()}"
    held(client, db, elsewhere, "reserved")
    assert observer.poll() == {"running": 1}  # another host's: never judged by pid here


def test_under_a_host_name_many_hosts_share_the_pid_rule_judges_nobody(
    client: Client, db: Redis, named_host: Callable[[str], str]
) -> None:
    # Two hosts that both call themselves localhost: a pid gone here may run there.
    silent = f"{named_host('localhost')}_{dead_pid()}"
    mine = os.getpid()
    task_id = held(client, db, silent, "started", pid=dead_pid())
    beating = held(client, db, f"localhost-0a1b2c3d_{mine}", "started", pid=mine, token=process_token(mine))
    db.zadd(keys.heartbeats(), {"localhost-0a1b2c3d_" + str(mine): 1.0})
    clock = Clock()
    # The one that never beats is left alone; the one that beat is judged by its heartbeat, and
    # its task, with no heartbeat of its own, is not kept alive by a pid that may be another host's.
    assert watch_for(recovery(client, clock), clock, 3) == {"requeued": 1, "listeners": 1}
    assert [t.status for t in client.get_tasks([task_id, beating])] == ["started", "pending"]


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

    db.zadd(keys.heartbeats(), {"gone.example_1": 1.0, "unrecovered.example_3": 1.0})
    db.hset(keys.listener_timeouts(), mapping={"gone.example_1": 60, "unrecovered.example_3": 60})
    client.get_queue("q").enqueue("x")
    db.sadd(keys.listeners("q"), "unrecovered.example_3")  # never recovered: still listed
    client.beat("here.example_2")
    scheduler = Scheduler(client, ["other"], scheduler_id="scheduler_here.example_4")
    scheduler.tick()
    assert db.zrange(keys.heartbeats(), 0, -1) == [
        "unrecovered.example_3",
        "here.example_2",
        "scheduler_here.example_4",  # its own: it beats
    ]
    assert sorted(db.hkeys(keys.listener_timeouts())) == [
        "here.example_2",
        "scheduler_here.example_4",
        "unrecovered.example_3",
    ]


def test_a_scheduler_is_listed_while_it_runs_and_a_long_silent_one_is_forgotten(client: Client, db: Redis) -> None:
    from django_blueque.protocol.scheduler import Scheduler

    db.sadd(keys.schedulers(), "scheduler_dead.example_1")
    db.zadd(keys.heartbeats(), {"scheduler_dead.example_1": 1.0})
    scheduler = Scheduler(client, ["q"], scheduler_id="scheduler_live.example_2")
    scheduler.tick()
    assert db.smembers(keys.schedulers()) == {"scheduler_live.example_2"}
    assert db.zscore(keys.heartbeats(), "scheduler_dead.example_1") is None
    scheduler.run(burst=True, install_signal_handlers=False)
    assert db.smembers(keys.schedulers()) == set()
    assert db.zscore(keys.heartbeats(), "scheduler_live.example_2") is None


def test_an_observer_judges_nobody_on_what_it_saw_before_an_error_a_gap_or_a_restart(client: Client, db: Redis) -> None:
    gone = "far.example_1"
    db.zadd(keys.heartbeats(), {gone: 1.0})
    db.hset(keys.listener_timeouts(), gone, 2)
    held(client, db, gone, "reserved")
    clock = Clock()
    observer = recovery(client, clock)
    assert watch_for(observer, clock, 1.5) == {}
    observer.forget()  # a Redis error: everything seen so far no longer counts
    assert watch_for(observer, clock, 1.5) == {}
    clock.now += 5  # the observer was frozen: a gap in its watch
    assert watch_for(observer, clock, 1.5) == {}
    assert watch_for(observer, clock, 1.0) == {"released": 1, "listeners": 1}


def test_a_watch_forgets_when_the_server_is_another_process() -> None:
    clock = Clock()
    watch = Watch(max_gap=1.0, clock=clock)
    watch.observe({"a": 1.0}, "run-1", clock.now)
    clock.now += 0.5
    watch.observe({"a": 1.0}, "run-1", clock.now)
    assert watch.silent_for("a") == 0.5
    clock.now += 0.5
    watch.observe({"a": 1.0}, "run-2", clock.now)  # Redis restarted (from its AOF, say)
    assert watch.silent_for("a") == 0.0


def test_each_listener_is_judged_by_its_own_timeout(client: Client, db: Redis) -> None:
    quick, slow = "quick.example_1", "slow.example_2"
    db.zadd(keys.heartbeats(), {quick: 1.0, slow: 1.0})
    db.hset(keys.listener_timeouts(), mapping={quick: 2, slow: 60})
    quick_task, slow_task = held(client, db, quick, "reserved"), held(client, db, slow, "reserved")
    clock = Clock()
    observer = recovery(client, clock, timeout=10.0)  # the observer's own timeout is neither
    assert observer.interval == 2.5
    watch_for(observer, clock, 0.1)
    assert observer.interval == 0.5  # it watches at the pace of the shortest timeout in play
    assert watch_for(observer, clock, 3) == {"released": 1, "listeners": 1}
    assert [t.status for t in client.get_tasks([quick_task, slow_task])] == ["pending", "reserved"]


def test_a_listener_judged_dead_that_beats_again_is_whole_again(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    listener = client.get_listener("q", heartbeat=True, timeout=2)
    clock = Clock()
    observer = recovery(client, clock)
    assert watch_for(observer, clock, 3) == {"listeners": 1}  # silent, holding nothing
    assert listener.id not in db.smembers(keys.listeners("q"))
    listener.beat()  # it wakes up
    assert listener.id in db.smembers(keys.listeners("q"))
    assert db.zscore(keys.queues(), "q") == 1
    queue.enqueue("x")
    task = listener.listen(timeout=1)
    assert task is not None
    client.get_processor(task).start()
    assert watch_for(observer, clock, 3)["requeued"] == 1  # it dies: its later task is recovered
    assert client.get_task(task.id).status == "pending"


def test_a_verdict_is_void_if_the_listener_beats_before_it_is_carried_out(client: Client, db: Redis) -> None:
    listener = client.get_listener("q", heartbeat=True, timeout=2)
    client.get_queue("q").enqueue("x")
    task = listener.listen(timeout=1)
    assert task is not None
    clock = Clock()
    observer = recovery(client, clock)
    assert watch_for(observer, clock, 1.4) == {}
    judged = repr(db.zscore(keys.heartbeats(), listener.id))
    listener.beat()  # between the observer's poll and its recovery
    assert observer.recover_listener("q", listener.id, judged) == {}
    assert client.get_task(task.id).status == "reserved"
    assert listener.id in db.smembers(keys.listeners("q"))


def test_a_beat_tells_a_run_taken_over_from_one_that_just_finished(client: Client, db: Redis) -> None:
    from django_blueque.protocol.liveness import Run

    queue = client.get_queue("q")
    listener = client.get_listener("q", heartbeat=True, timeout=2)
    finished_id, taken_id = queue.enqueue("a"), queue.enqueue("b")
    finished, taken = listener.listen(timeout=1), listener.listen(timeout=1)
    assert finished is not None and taken is not None
    for task in (finished, taken):
        client.get_processor(task).start(pid=os.getpid())
    assert listener.beat([Run(finished_id, os.getpid(), 1), Run(taken_id, os.getpid(), 1)]) == []
    client.get_processor(client.get_task(finished_id)).complete("done")  # finished, not reaped yet
    assert listener.give_back(client.get_task(taken_id), lost="cut off") == "requeued"  # as recovery does
    assert listener.beat([Run(finished_id, os.getpid(), 1), Run(taken_id, os.getpid(), 1)]) == [taken_id]


def test_a_beat_lets_the_run_of_a_deleted_task_end(client: Client, db: Redis) -> None:
    # Deleted, or lost with Redis's data: no other worker can run it, so
    # stopping the run would only waste its work; its outcome cleans up.
    from django_blueque.protocol.liveness import Run

    listener = client.get_listener("q", heartbeat=True, timeout=2)
    task_id = client.get_queue("q").enqueue("a")
    task = listener.listen(timeout=1)
    assert task is not None
    processor = client.get_processor(task)
    processor.start(pid=os.getpid())
    db.delete(keys.task(task_id))
    assert listener.beat([Run(task_id, os.getpid(), 1)]) == []
    assert not processor.complete("done")
    assert db.zscore(keys.task_heartbeats(), task_id) is None
    assert not db.exists(keys.task(task_id))
    assert db.lrange(keys.reserved("q", listener.id), 0, -1) == []


def test_a_dead_listener_listed_nowhere_leaves_no_heartbeat_behind(client: Client, db: Redis) -> None:
    """Its heartbeat and timeout would otherwise stay forever, one pair per dead worker (and the admin
    would list it among the workers for good)."""
    listener = client.get_listener("q", "r", heartbeat=True, timeout=2)
    clock = Clock()
    only_q = recovery(client, clock)
    assert watch_for(only_q, clock, 3) == {"listeners": 1}
    # Still a listener of r, which this observer does not watch: its heartbeat stays.
    assert db.zscore(keys.heartbeats(), listener.id) is not None
    assert db.hget(keys.listener_timeouts(), listener.id) is not None
    both = Recovery(client.redis, client.scripts, ["q", "r"], timeout=2, max_recoveries=3, clock=clock)
    assert watch_for(both, clock, 3) == {"listeners": 1}
    assert db.smembers(keys.listeners("q")) == db.smembers(keys.listeners("r")) == set()
    assert db.zscore(keys.heartbeats(), listener.id) is None
    assert db.hget(keys.listener_timeouts(), listener.id) is None
    listener.beat()  # it was only frozen: whole again
    assert listener.id in db.smembers(keys.listeners("q")) and listener.id in db.smembers(keys.listeners("r"))
    assert db.zscore(keys.heartbeats(), listener.id) is not None
    assert db.hget(keys.listener_timeouts(), listener.id) == "2"
