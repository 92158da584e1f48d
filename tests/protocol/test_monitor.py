import threading
import time
from typing import Any

from redis import Redis

from django_blueque.protocol import Client, Task, inline_runner, keys
from django_blueque.protocol.monitor import Monitor
from tests.conftest import Blueque101


def finish(client: Client, outcomes: list[str], queue: str = "q") -> list[str]:
    """Run one task per outcome ("complete" or "failed"); return their ids."""
    ids = [client.get_queue(queue).enqueue(outcome) for outcome in outcomes]

    def run(task: Task) -> str:
        if task.parameters == "failed":
            raise RuntimeError("as asked")
        return "done"

    inline_runner.run(client, queue, run)
    return ids


def recorder() -> tuple[list[tuple[str, str]], dict[str, Any]]:
    seen: list[tuple[str, str]] = []
    hooks = {
        "on_complete": lambda task: seen.append(("complete", task.id)),
        "on_failed": lambda task: seen.append(("failed", task.id)),
    }
    return seen, hooks


def test_each_finished_task_is_reported_once_and_stays_readable(client: Client, db: Redis) -> None:
    ids = finish(client, ["complete", "failed", "complete"])
    seen, hooks = recorder()
    monitor = Monitor(client, **hooks)
    assert monitor.report() == 3
    assert sorted(seen) == sorted([("complete", ids[0]), ("failed", ids[1]), ("complete", ids[2])])
    assert monitor.report() == 0
    assert db.llen(keys.complete("q")) == db.llen(keys.failed("q")) == 0
    stats = client.queue_stats(["q"])["q"]
    assert (stats.complete, stats.failed) == (2, 1)
    assert set(client.task_ids("q", "complete")) == {ids[0], ids[2]}
    assert client.task_ids("q", "failed") == [ids[1]]
    assert all(task.exists for task in client.get_tasks(ids))


def test_pages_span_reported_and_unreported(client: Client) -> None:
    first = finish(client, ["complete"] * 3)
    _, hooks = recorder()
    Monitor(client, **hooks).report()
    newer = finish(client, ["complete"] * 2)
    assert client.task_ids("q", "complete", count=10) == [newer[1], newer[0], *reversed(first)]
    assert client.task_ids("q", "complete", offset=1, count=2) == [newer[0], first[2]]
    assert client.task_ids("q", "complete", offset=3, count=5) == [first[1], first[0]]


def test_two_monitors_report_each_task_once(client: Client, redis_url: str) -> None:
    ids = finish(client, ["complete", "failed"] * 300)
    seen: list[str] = []
    lock = threading.Lock()

    def note(task: Task) -> None:
        with lock:
            seen.append(task.id)

    def run(name: str) -> None:
        own = Client(redis_url)
        monitor = Monitor(own, on_complete=note, on_failed=note, batch=20, monitor_id=name)
        while monitor.report():
            pass

    threads = [threading.Thread(target=run, args=(f"m{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(seen) == sorted(ids)


def test_what_a_dead_monitor_held_is_reported_again(client: Client, db: Redis) -> None:
    ids = finish(client, ["complete"] * 5)
    dead = Monitor(client, on_complete=lambda task: None, on_failed=lambda task: None, batch=3, monitor_id="m_dead")
    dead.register()
    # It takes a batch and dies before recording it as reported.
    client.scripts.monitor_take(keys=[keys.complete("q"), keys.monitoring("m_dead")], args=["q", "complete", 3])
    db.zadd(keys.heartbeats(), {"m_dead": 1.0})
    db.hset(keys.listener_timeouts(), "m_dead", 2)
    seen, hooks = recorder()
    now = [0.0]
    alive = Monitor(client, listener_timeout=2, clock=lambda: now[0], **hooks)
    restored = []
    for _ in range(6):  # watched silent for 2 s, then judged dead
        restored.append(alive.restore_dead_monitors())
        now[0] += 0.5
    assert restored == [0, 0, 0, 0, 3, 0]
    while alive.report():
        pass
    assert sorted(task_id for _, task_id in seen) == sorted(ids)
    assert db.smembers(keys.monitors()) == {alive.id}  # the dead one is gone; the live one beat


def test_a_live_monitors_work_is_left_alone(client: Client, db: Redis) -> None:
    finish(client, ["complete"] * 2)
    busy = Monitor(client, on_complete=lambda task: None, on_failed=lambda task: None, monitor_id="m_busy")
    busy.register()
    client.scripts.monitor_take(keys=[keys.complete("q"), keys.monitoring("m_busy")], args=["q", "complete", 2])
    _, hooks = recorder()
    now = [0.0]
    observer = Monitor(client, listener_timeout=2, clock=lambda: now[0], **hooks)
    for _ in range(10):
        busy.beat()
        assert observer.restore_dead_monitors() == 0
        now[0] += 0.5
    assert db.llen(keys.monitoring("m_busy")) == 2


def test_a_slow_monitor_written_off_is_whole_again_when_it_beats(client: Client, db: Redis) -> None:
    slow = Monitor(client, on_complete=lambda task: None, on_failed=lambda task: None, monitor_id="m_slow")
    slow.register()
    db.hset(keys.listener_timeouts(), "m_slow", 2)
    _, hooks = recorder()
    now = [0.0]
    observer = Monitor(client, listener_timeout=2, clock=lambda: now[0], **hooks)
    for _ in range(6):
        observer.restore_dead_monitors()
        now[0] += 0.5
    assert "m_slow" not in db.smembers(keys.monitors())  # written off while its receivers ran
    slow.beat()
    assert "m_slow" in db.smembers(keys.monitors())


def test_a_failing_hook_does_not_stop_the_others(client: Client) -> None:
    ids = finish(client, ["complete"] * 3)
    seen: list[str] = []

    def flaky(task: Task) -> None:
        seen.append(task.id)
        if task.id == ids[1]:
            raise ValueError("receiver bug")

    Monitor(client, on_complete=flaky, on_failed=flaky).report()
    assert sorted(seen) == sorted(ids)


def test_results_expire_after_their_time_to_live(client: Client, db: Redis) -> None:
    ok, bad = finish(client, ["complete", "failed"])
    _, hooks = recorder()
    monitor = Monitor(client, result_ttl=10, failed_result_ttl=100, **hooks)
    monitor.report()
    now = time.time()
    assert monitor.expire(now) == 0
    assert monitor.expire(now + 50) == 1
    assert (client.get_task(ok).exists, client.get_task(bad).exists) == (False, True)
    assert monitor.expire(now + 500) == 1
    assert db.keys("blueque_task_*") == []
    assert client.queue_stats(["q"])["q"].complete == 0


def test_tasks_finished_by_blueque_1_0_1_are_reported(client: Client, blueque101: Blueque101) -> None:
    task_id = client.get_queue("q").enqueue("x")
    blueque101("complete", "q")
    seen, hooks = recorder()
    Monitor(client, **hooks).report()
    assert seen == [("complete", task_id)]


def test_a_monitor_reports_what_a_lost_reply_left_in_its_own_list(client: Client, db: Redis) -> None:
    ids = finish(client, ["complete"] * 2)
    seen, hooks = recorder()
    monitor = Monitor(client, monitor_id="m_self", **hooks)
    # A take whose reply never came back: the ids are in the monitor's own list.
    client.scripts.monitor_take(keys=[keys.complete("q"), keys.monitoring("m_self")], args=["q", "complete", 2])
    monitor._check_own = True
    assert monitor.report() == 2
    assert sorted(task_id for _, task_id in seen) == sorted(ids)
    assert db.llen(keys.monitoring("m_self")) == 0
    assert db.zcard(keys.reported("q", "complete")) == 2


def test_reports_are_counted_per_minute_in_a_ring_of_an_hour(client: Client, db: Redis) -> None:
    finish(client, ["complete", "complete", "failed"])
    Monitor(client, on_complete=lambda task: None, on_failed=lambda task: None).report()
    counts = client.per_minute("q")
    assert (counts["complete"][-1], counts["failed"][-1]) == (2, 1)
    assert sum(counts["complete"]) == 2 and len(counts["complete"]) == 60
    minute = int(db.time()[0]) // 60
    ring = keys.per_minute("q", "complete")
    db.hset(ring, str((minute - 1) % 60), f"{minute - 1}:5")
    assert client.per_minute("q")["complete"][-2:] == [5, 2]
    # The slot of this minute, last written an hour ago: not counted, and reset by the next report.
    db.hset(ring, str(minute % 60), f"{minute - 60}:7")
    assert client.per_minute("q")["complete"][-1] == 0
    finish(client, ["complete"])
    Monitor(client, on_complete=lambda task: None, on_failed=lambda task: None).report()
    if int(db.time()[0]) // 60 == minute:  # not across a minute's turn
        assert client.per_minute("q")["complete"][-1] == 1
    assert len(db.hkeys(ring)) <= 60
