"""The fault-injection hook (protocol/faults.py): off unless asked for, and exact when on."""

from __future__ import annotations

import os

import pytest
import redis

from django_blueque.protocol import Client, faults, keys
from django_blueque.protocol.scripts import SOURCES
from tests.protocol.forked import run_forked


def test_without_the_variable_the_client_is_not_wrapped(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    client = Client(redis_url)
    shared = Client(redis=redis.Redis.from_url(redis_url))
    for blueque in (client, shared):
        assert not faults.armed(blueque.redis)
        assert "execute_command" not in vars(blueque.redis)
        assert "pipeline" not in vars(blueque.redis)
        assert type(blueque.redis).execute_command is redis.Redis.execute_command
        blueque.close()


@pytest.mark.parametrize("value", ["", "before", "before:0", "after:x", "random:2:1", "random:0.5", "never:3", "7"])
def test_a_value_that_cannot_be_read_is_an_error(redis_url: str, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    if not value:
        monkeypatch.delenv(faults.ENV, raising=False)
        assert not faults.armed(Client(redis_url).redis)  # unset or empty: off
        return
    monkeypatch.setenv(faults.ENV, value)
    with pytest.raises(ValueError, match=faults.ENV):
        Client(redis_url)


def _load_scripts(db: redis.Redis) -> None:
    for source in SOURCES.values():
        db.script_load(source)


def test_every_round_trip_counts_once(redis_url: str, db: redis.Redis) -> None:
    _load_scripts(db)
    read, write = os.pipe()

    def count() -> None:
        client = Client(redis_url)
        assert faults.armed(client.redis)
        counts = [faults.calls()]
        client.redis.set("a", "1")  # a command
        counts.append(faults.calls())
        with client.redis.pipeline(transaction=True) as pipe:  # a MULTI block
            pipe.set("b", "1")
            pipe.set("c", "1")
            pipe.execute()
        counts.append(faults.calls())
        with client.redis.pipeline(transaction=False) as pipe:  # nothing to send
            pipe.execute()
        counts.append(faults.calls())
        client.scripts.progress(keys=[keys.task("t")], args=[0.5, "", 0])  # EVALSHA
        counts.append(faults.calls())
        Client(redis_url).redis.get("a")  # every client of the process
        counts.append(faults.calls())
        os.write(write, " ".join(map(str, counts)).encode())

    assert run_forked(count, crash_at="never") == 0
    os.close(write)
    assert os.read(read, 100).decode() == "0 1 2 2 3 4"
    os.close(read)


@pytest.mark.parametrize(("side", "ran"), [("before", ["1"]), ("after", ["1", "2"])])
def test_the_process_exits_before_or_after_the_chosen_call(
    redis_url: str, db: redis.Redis, side: str, ran: list[str]
) -> None:
    def three_calls() -> None:
        client = Client(redis_url)
        for value in ("1", "2", "3"):
            client.redis.rpush("calls", value)

    assert run_forked(three_calls, crash_at=f"{side}:2") == faults.CRASH_EXIT
    assert db.lrange("calls", 0, -1) == ran  # "after": the call ran, its reply was never used


def test_a_seed_replays_a_random_crash(redis_url: str, db: redis.Redis) -> None:
    def many_calls() -> None:
        client = Client(redis_url)
        for _ in range(1000):
            client.redis.incr("calls")

    crashed_at = []
    for _ in range(2):
        db.delete("calls")
        assert run_forked(many_calls, crash_at="random:0.05:7") == faults.CRASH_EXIT
        crashed_at.append(db.get("calls"))
    assert crashed_at[0] == crashed_at[1]


def test_a_forked_child_counts_from_zero(redis_url: str, db: redis.Redis) -> None:
    def parent() -> None:
        client = Client(redis_url)
        client.redis.rpush("calls", "parent")  # call 1 of the parent

        def child() -> None:
            client.redis.rpush("calls", "child 1")
            client.redis.rpush("calls", "child 2")  # call 2 of the child: it exits after it

        code = run_forked(child, crash_at=os.environ[faults.ENV])
        client.redis.rpush("calls", f"child exit {code}")

    assert run_forked(parent, crash_at="after:2") == faults.CRASH_EXIT  # the parent's call 2
    assert db.lrange("calls", 0, -1) == ["parent", "child 1", "child 2", f"child exit {faults.CRASH_EXIT}"]
