import threading
import time

from redis import Redis

from django_blueque.protocol import Client, keys
from django_blueque.protocol.cron import Cron
from django_blueque.protocol.scheduler import RUN_ONCE, SKIP, Every, PeriodicTask, Scheduler


def test_tick_moves_due_tasks_of_every_known_queue(client: Client) -> None:
    now = time.time()
    due = [client.get_queue(q).schedule(q, eta=now + 1) for q in ("a", "b")]
    later = client.get_queue("a").schedule("later", eta=now + 100)
    report = Scheduler(client).tick(now=now + 2)
    assert report.moved == 2
    assert [t.status for t in client.get_tasks([*due, later])] == ["pending", "pending", "scheduled"]


def test_only_the_queues_given(client: Client) -> None:
    now = time.time()
    a, b = (client.get_queue(q).schedule(q, eta=now + 1) for q in ("a", "b"))
    Scheduler(client, ["b"]).tick(now=now + 2)
    assert [t.status for t in client.get_tasks([a, b])] == ["scheduled", "pending"]


def test_many_schedulers_move_each_task_once(client: Client, redis_url: str, db: Redis) -> None:
    now = time.time()
    # Far enough ahead that writing them all cannot outlast the ETA (which would enqueue at once).
    ids = {client.get_queue("q").schedule(str(i), eta=now + 60) for i in range(3000)}
    moved: list[int] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        own = Client(redis_url)
        barrier.wait()
        moved.append(Scheduler(own).tick(now=now + 61).moved)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(moved) == 3000
    pending = db.lrange(keys.pending("q"), 0, -1)
    assert len(pending) == 3000
    assert set(pending) == ids


def every_second(name: str = "tick", **options: object) -> PeriodicTask:
    return PeriodicTask(name, "periodic", lambda: f"run of {name}", Every(1), **options)  # type: ignore[arg-type]


def test_periodic_starts_at_the_next_occurrence_and_runs_each_once(client: Client, db: Redis) -> None:
    entry = every_second()
    first, second = Scheduler(client, periodic=[entry]), Scheduler(client, periodic=[entry])
    t0 = float(int(time.time()))
    assert first.tick(now=t0 + 0.5).periodic == {"tick": "recorded"}  # first sight: nothing runs
    assert second.tick(now=t0 + 0.6).periodic == {"tick": "done"}
    assert first.tick(now=t0 + 1.1).periodic == {"tick": "enqueued"}
    assert second.tick(now=t0 + 1.2).periodic == {"tick": "done"}
    assert first.tick(now=t0 + 1.3).periodic == {}  # known handled: no round trip
    assert second.tick(now=t0 + 2.0).periodic == {"tick": "enqueued"}
    [newest, oldest] = [client.get_task(str(i)) for i in db.lrange(keys.pending("periodic"), 0, -1)]
    assert oldest.parameters == "run of tick"
    assert oldest.fields["periodic"] == "tick"
    assert db.hget(keys.periodic(), "tick:task") == newest.id


def test_skip_if_running(client: Client, db: Redis) -> None:
    entry = every_second(skip_if_running=True)
    scheduler = Scheduler(client, periodic=[entry])
    t0 = float(int(time.time()))
    scheduler.tick(now=t0)
    assert scheduler.tick(now=t0 + 1).periodic == {"tick": "enqueued"}
    assert scheduler.tick(now=t0 + 2).periodic == {"tick": "skipped"}  # the first run is still pending
    listener = client.get_listener("periodic")
    task = listener.listen(timeout=1)
    assert task is not None
    processor = client.get_processor(task)
    processor.start()
    processor.complete("")
    assert scheduler.tick(now=t0 + 3).periodic == {"tick": "enqueued"}


def test_missed_occurrences(client: Client) -> None:
    def every_minute(name: str, missed: str) -> PeriodicTask:
        return PeriodicTask(name, "periodic", lambda: name, Cron.parse("* * * * *"), missed=missed, grace=5)

    entries = [every_minute("once", RUN_ONCE), every_minute("skip", SKIP)]
    now = time.time()
    base = now - now % 60
    Scheduler(client, periodic=entries).tick(now=base + 1)  # first sight
    # Every scheduler was down for two minutes; one comes back 10 s after an occurrence.
    assert Scheduler(client, periodic=entries).tick(now=base + 130).periodic == {"once": "enqueued", "skip": "recorded"}
    assert Scheduler(client, periodic=entries).tick(now=base + 181).periodic == {"once": "enqueued", "skip": "enqueued"}


def test_the_scheduler_sweeps_orphans(client: Client, db: Redis) -> None:
    task_id = client.get_queue("q").enqueue("x")
    db.zadd(keys.heartbeats(), {"gone.example_1": 1.0})
    db.sadd(keys.listeners("q"), "gone.example_1")
    db.lmove(keys.pending("q"), keys.reserved("q", "gone.example_1"), "RIGHT", "LEFT")
    db.hset(keys.task(task_id), mapping={"status": "reserved", "node": "gone.example_1"})
    scheduler = Scheduler(client, listener_timeout=2)
    began = time.monotonic()
    while client.get_task(task_id).status != "pending" and time.monotonic() - began < 5:
        scheduler.tick()
        time.sleep(0.05)
    # Once it has itself watched the listener silent for its timeout, not before.
    assert client.get_task(task_id).status == "pending"
    assert time.monotonic() - began >= 2
    assert db.smembers(keys.listeners("q")) == set()
