import os
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from redis import Redis

from django_blueque.protocol import Client, keys
from django_blueque.protocol.listener import hostname, parse_listener_id
from tests.redis_server import RedisServer


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_listener_registers_and_deregisters(client: Client, db: Redis) -> None:
    listener = client.get_listener("q")
    assert listener.id == f"{hostname()}_{os.getpid()}"
    assert db.smembers(keys.listeners("q")) == {listener.id}
    assert db.zscore(keys.queues(), "q") == 1
    client.get_listener("q")  # the same process again: counted once
    assert db.zscore(keys.queues(), "q") == 1
    listener.close()
    assert db.scard(keys.listeners("q")) == 0
    assert db.zscore(keys.queues(), "q") == 0


def test_close_keeps_a_listener_that_holds_tasks_findable(client: Client, db: Redis) -> None:
    client.get_queue("q").enqueue("x")
    listener = client.get_listener("q")
    assert listener.listen(timeout=1) is not None
    listener.close()
    assert db.smembers(keys.listeners("q")) == {listener.id}


def test_listen_takes_the_oldest_task_and_marks_it_reserved(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    first, second = queue.enqueue("1"), queue.enqueue("2")
    listener = client.get_listener("q")
    task = listener.listen(timeout=1)
    assert task is not None and task.id == first
    assert (task.status, task.node, task.parameters) == ("reserved", listener.id, "1")
    assert client.get_task(first).status == "reserved"
    assert db.lrange(keys.reserved("q", listener.id), 0, -1) == [first]
    assert db.lrange(keys.pending("q"), 0, -1) == [second]


@pytest.mark.parametrize("queues", [("q",), ("a", "b", "q")])
def test_listen_times_out_with_none(client: Client, queues: tuple[str, ...]) -> None:
    listener = client.get_listener(*queues, block_timeout=0.2)
    started = time.monotonic()
    assert listener.listen(timeout=0.5) is None
    assert 0.4 < time.monotonic() - started < 3


@pytest.mark.parametrize("queues", [("q",), ("a", "b", "q")])
def test_a_blocked_listener_wakes_when_a_task_arrives(client: Client, queues: tuple[str, ...]) -> None:
    # With a 20 s block period, waking early proves the listener is woken by
    # the task rather than finding it on its next poll.
    listener = client.get_listener(*queues, block_timeout=20)
    enqueued: list[float] = []

    def produce() -> None:
        time.sleep(0.3)
        enqueued.append(time.monotonic())
        client.get_queue("q").enqueue("wake")

    producer = threading.Thread(target=produce)
    producer.start()
    task = listener.listen(timeout=10)
    # The listener can have the task before the producer has read its reply:
    # wait for it, or the fixture closes the client under it.
    producer.join(5)
    assert task is not None and task.parameters == "wake"
    assert time.monotonic() - enqueued[0] < 2


def test_several_queues_are_served_in_the_order_given(client: Client, db: Redis) -> None:
    low = client.get_queue("low").enqueue("low")
    high = client.get_queue("high").enqueue("high")
    listener = client.get_listener("high", "low")
    taken = [listener.listen(timeout=1), listener.listen(timeout=1)]
    assert [t.id for t in taken if t] == [high, low]
    assert db.llen(keys.reserved("high", listener.id)) == 1
    assert db.llen(keys.reserved("low", listener.id)) == 1


def test_several_queues_find_tasks_of_producers_that_do_not_publish(client: Client, db: Redis) -> None:
    # Blueque 1.0.1 producers push without publishing: the bounded poll finds them.
    listener = client.get_listener("a", "b", block_timeout=0.3)
    db.hset(keys.task("foreign"), mapping={"status": "pending", "queue": "b", "parameters": "p"})
    db.lpush(keys.pending("b"), "foreign")
    task = listener.listen(timeout=5)
    assert task is not None and task.id == "foreign"


def test_listen_drops_ids_that_are_not_pending_tasks(client: Client, db: Redis) -> None:
    finished = client.get_queue("q").enqueue("x")
    db.hset(keys.task(finished), "status", "complete")
    db.lpush(keys.pending("q"), "no-such-task")
    good = client.get_queue("q").enqueue("good")
    listener = client.get_listener("q")
    task = listener.listen(timeout=1)
    assert task is not None and task.id == good
    assert db.lrange(keys.reserved("q", listener.id), 0, -1) == [good]
    assert client.get_task(finished).status == "complete"
    assert not client.get_task("no-such-task").exists


def test_listen_resumes_a_task_whose_move_was_not_followed_by_the_status_update(client: Client, db: Redis) -> None:
    # A listener that lost its connection between the move and the status
    # update left the task in its reserved list, still "pending".
    task_id = client.get_queue("q").enqueue("x")
    db.lmove(keys.pending("q"), keys.reserved("q", "node_1"), "RIGHT", "LEFT")
    task = client.get_listener("q", listener_id="node_1").listen(timeout=0)
    assert task is not None and task.id == task_id and task.status == "reserved"


def _orphan(client: Client, listener_id: str, status: str, pid: int | None = None) -> str:
    task_id = client.get_queue("q").enqueue(status)
    client.redis.sadd(keys.listeners("q"), listener_id)
    client.redis.lmove(keys.pending("q"), keys.reserved("q", listener_id), "RIGHT", "LEFT")
    client.redis.hset(keys.task(task_id), mapping={"status": status, "node": listener_id})
    if pid is not None:
        client.redis.hset(keys.task(task_id), "pid", pid)
        client.redis.sadd(keys.started("q"), keys.started_member(listener_id, pid, task_id))
    return task_id


def test_claim_orphan_takes_over_the_tasks_of_a_dead_listener(
    client: Client, db: Redis, named_host: Callable[[str], str]
) -> None:
    dead = f"{named_host('box-a.example')}_{dead_pid()}"
    gap = _orphan(client, dead, "pending")
    reserved = _orphan(client, dead, "reserved")
    crashed = _orphan(client, dead, "started", pid=dead_pid())
    still_running = _orphan(client, dead, "started", pid=os.getpid())
    listener = client.get_listener("q")

    claimed = []
    while (task := listener.claim_orphan()) is not None:
        claimed.append(task)
    assert [t.id for t in claimed] == [gap, reserved, crashed]
    for task in claimed:
        assert (task.status, task.node, task.reclaimed_node, task.pid) == ("reserved", listener.id, listener.id, None)
    assert db.lrange(keys.reserved("q", dead), 0, -1) == [still_running]
    assert db.smembers(keys.started("q")) == {f"{dead} {os.getpid()} {still_running}"}
    # The dead listener still holds a running task, so it stays registered.
    assert dead in db.smembers(keys.listeners("q"))


def test_claim_orphan_deregisters_a_dead_listener_with_nothing_left(
    client: Client, db: Redis, named_host: Callable[[str], str]
) -> None:
    dead = f"{named_host('box-a.example')}_{dead_pid()}"
    db.sadd(keys.listeners("q"), dead)
    db.zincrby(keys.queues(), 1, "q")
    listener = client.get_listener("q")
    assert listener.claim_orphan() is None
    assert db.smembers(keys.listeners("q")) == {listener.id}
    assert db.zscore(keys.queues(), "q") == 1


def test_claim_orphan_leaves_live_and_foreign_listeners_alone(client: Client, named_host: Callable[[str], str]) -> None:
    alive = _orphan(client, f"{named_host('box-a.example')}_{os.getppid()}", "reserved")
    elsewhere = _orphan(client, f"other-host.example_{dead_pid()}", "reserved")
    odd = _orphan(client, "not-a-blueque-id", "reserved")
    assert client.get_listener("q").claim_orphan() is None
    assert [t.status for t in client.get_tasks([alive, elsewhere, odd])] == ["reserved"] * 3


@pytest.mark.parametrize("shared", ["localhost", "localhost.localdomain", "LOCALHOST"])
def test_under_a_host_name_many_hosts_share_no_listener_is_judged_by_pid(
    client: Client, named_host: Callable[[str], str], shared: str
) -> None:
    # Its pid could be another host's: the listener may be alive there.
    task_id = _orphan(client, f"{named_host(shared)}_{dead_pid()}", "reserved")
    assert client.get_listener("q").claim_orphan() is None
    assert client.get_task(task_id).status == "reserved"


def test_parse_listener_id() -> None:
    assert parse_listener_id("host_name.example_42") == ("host_name.example", 42)
    assert parse_listener_id("nopid") is None
    assert parse_listener_id("host_x") is None


def _commands_sent(db: Redis) -> int:
    stats = db.info("commandstats")
    return sum(int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info")


@pytest.mark.parametrize(("queues", "per_poll"), [(("q",), 1), (("a", "b", "q"), 2)])
def test_an_idle_listener_sends_one_poll_per_block_period(
    client: Client, db: Redis, queues: tuple[str, ...], per_poll: int, redis_server: RedisServer | None
) -> None:
    # The private test server serves this test alone, so INFO counts only our
    # commands. A poll is one BLMOVE, or one script running one EXISTS.
    if redis_server is None:
        pytest.skip("counts commands, so needs the private test server")
    listener = client.get_listener(*queues, block_timeout=0.5)
    listener.listen(timeout=0.1)  # connect, subscribe, resume check
    before = _commands_sent(db)
    assert listener.listen(timeout=2.0) is None
    polls = (_commands_sent(db) - before) / per_poll
    assert 3 <= polls <= 6, polls


def test_marking_a_taken_task_again_keeps_it(client: Client, db: Redis) -> None:
    # A listener whose status update's reply was lost does it again on its next
    # listen(); the second update must keep the task, not drop it as foreign.
    task_id = client.get_queue("q").enqueue("x")
    listener = client.get_listener("q")
    db.lmove(keys.pending("q"), keys.reserved("q", listener.id), "RIGHT", "LEFT")
    first = listener._reserve("q", task_id)
    again = listener._reserve("q", task_id)
    assert first is not None
    assert again is not None
    assert again.status == "reserved"
    assert db.lrange(keys.reserved("q", listener.id), 0, -1) == [task_id]
    # Another listener's reservation is still not ours to take.
    other = client.get_listener("q", listener_id="other.example_1")
    assert other._reserve("q", task_id) is None


def test_a_taken_task_never_marked_reserved_is_given_back_by_its_owner(client: Client, db: Redis) -> None:
    # A prefork child killed between the move and the reserve script: its
    # parent gives back what it left, although the hash names no node.
    task_id = client.get_queue("q").enqueue("x")
    child = client.get_listener("q", heartbeat=True)
    db.lmove(keys.pending("q"), keys.reserved("q", child.id), "RIGHT", "LEFT")
    assert child.give_back(client.get_task(task_id), lost="killed") == "requeued"
    assert db.lrange(keys.pending("q"), 0, -1) == [task_id]
    assert db.llen(keys.reserved("q", child.id)) == 0
    assert child.close() is True
    assert db.zscore(keys.heartbeats(), child.id) is None


def test_the_reserve_script_does_nothing_for_an_id_recovered_meanwhile(client: Client, db: Redis) -> None:
    # A listener paused between the move and the reserve, whose id was
    # recovered meanwhile and taken by another listener.
    task_id = client.get_queue("q").enqueue("x")
    paused = client.get_listener("q", heartbeat=True)
    db.lmove(keys.pending("q"), keys.reserved("q", paused.id), "RIGHT", "LEFT")
    db.lmove(keys.reserved("q", paused.id), keys.pending("q"), "LEFT", "RIGHT")  # as recovery does
    other = client.get_listener("q", heartbeat=True)
    assert other.listen(timeout=1) is not None
    assert paused._reserve("q", task_id) is None
    task = client.get_task(task_id)
    assert (task.status, task.node) == ("reserved", other.id)
    assert db.lrange(keys.reserved("q", other.id), 0, -1) == [task_id]


def test_a_live_listener_gives_back_what_its_lists_hold_but_it_does_not_run(client: Client, db: Redis) -> None:
    # Redis lost writes (a failover to a replica that had not received them):
    # a live listener's list holds tasks whose runs are over, their outcomes gone.
    queue = client.get_queue("q")
    listener = client.get_listener("q", heartbeat=True)
    ids = [queue.enqueue(name) for name in ("running", "started, outcome lost", "reserved, never started")]
    running, lost, reserved = (listener.listen(timeout=1) for _ in ids)
    assert running is not None and lost is not None and reserved is not None
    client.get_processor(running).start()
    client.get_processor(lost).start()
    taken_unmarked = queue.enqueue("taken, never marked reserved")
    db.lmove(keys.pending("q"), keys.reserved("q", listener.id), "RIGHT", "LEFT")
    assert listener.give_back_strays(running=[running.id]) == {"requeued": 1, "released": 2}
    assert client.get_task(running.id).status == "started"
    assert db.lrange(keys.reserved("q", listener.id), 0, -1) == [running.id]
    assert sorted(db.lrange(keys.pending("q"), 0, -1)) == sorted([lost.id, reserved.id, taken_unmarked])
    again = client.get_task(lost.id)
    assert (again.status, again.fields.get("recoveries")) == ("pending", "1")
    assert "not running it" in (again.fields.get("lost") or "")
    assert [m for m in db.smembers(keys.started("q")) if lost.id in m] == []
    assert listener.give_back_strays(running=[running.id]) == {}  # nothing else: one round trip, no writes


def test_a_stray_of_another_listener_is_only_dropped_from_our_list(client: Client, db: Redis) -> None:
    queue = client.get_queue("q")
    listener = client.get_listener("q", heartbeat=True)
    task_id = queue.enqueue("x")
    other = client.get_listener("q", heartbeat=True)
    task = other.listen(timeout=1)
    assert task is not None and task.id == task_id
    db.rpush(keys.reserved("q", listener.id), task_id)
    assert listener.give_back_strays(running=[]) == {"not-ours": 1}
    assert db.llen(keys.reserved("q", listener.id)) == 0
    assert client.get_task(task_id).status == "reserved"
    assert db.lrange(keys.reserved("q", other.id), 0, -1) == [task_id]
