"""The fault-injecting TCP proxy of ``tests/tcp_proxy.py``, against the real test Redis."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.tcp_proxy import Chaos, TcpProxy
from tests.workers.runs import wait_for


@pytest.fixture
def direct(redis_url: str) -> Iterator[redis.Redis]:
    """A client that does not go through the proxy."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    yield conn
    conn.close()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(redis_url)
    with TcpProxy(parts.port or 6379, target_host=parts.hostname or "127.0.0.1") as running:
        yield running


def through(proxy: TcpProxy, socket_timeout: float | None = 0.5, retries: int = 0) -> redis.Redis:
    """A client of the proxy; by default it gives up fast and never retries on its own."""
    return redis.Redis(
        port=proxy.port,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), retries),
    )


def test_it_forwards_both_ways(proxy: TcpProxy, direct: redis.Redis) -> None:
    assert proxy.url == f"redis://127.0.0.1:{proxy.port}/0"
    conn = through(proxy)
    conn.set("k", "v" * 200_000)  # larger than one chunk
    assert direct.get("k") == "v" * 200_000
    assert conn.get("k") == "v" * 200_000
    assert proxy.connections == 1
    conn.close()


def test_a_cut_holds_every_byte_and_heal_delivers_them(proxy: TcpProxy, direct: redis.Redis) -> None:
    patient = through(proxy, socket_timeout=None)
    hasty = through(proxy)
    patient.ping()
    hasty.ping()
    proxy.cut()
    replies: list[int] = []
    sender = threading.Thread(target=lambda: replies.append(int(patient.incr("counter"))))
    sender.start()
    # The open connection: no reply, and the command has not reached Redis.
    with pytest.raises(redis.TimeoutError):
        hasty.set("late", "1")  # its connection is closed after the timeout
    # A new connection is accepted (TCP-wise), but nothing passes on it either.
    accepted = proxy.accepted
    with pytest.raises(redis.TimeoutError):
        through(proxy).ping()
    assert proxy.accepted == accepted + 1
    time.sleep(0.3)
    assert direct.get("counter") is None and direct.get("late") is None
    assert replies == [] and sender.is_alive()
    proxy.heal()
    sender.join(5)
    assert replies == [1]
    # Like a TCP stack, the proxy delivers what a client sent before it gave
    # up: that command runs after the heal, though its client saw a timeout.
    wait_for(lambda: direct.get("late") == "1", 5, "the command sent during the cut to run")
    assert patient.incr("counter") == 2
    assert hasty.get("late") == "1"  # a new connection; forwarding again
    patient.close()
    hasty.close()


def test_redis_answers_during_the_cut_are_delivered_at_heal(proxy: TcpProxy, direct: redis.Redis) -> None:
    waiting = through(proxy, socket_timeout=None)
    waiting.ping()
    popped: list[object] = []
    blocked = threading.Thread(target=lambda: popped.append(waiting.blpop(["list"], timeout=10)))
    blocked.start()
    wait_for(lambda: int(direct.info("clients")["blocked_clients"]) == 1, 5, "the BLPOP to block")
    proxy.cut()
    direct.rpush("list", "x")  # Redis replies at once, into the cut
    wait_for(lambda: direct.llen("list") == 0, 5, "Redis to hand the item to the blocked client")
    time.sleep(0.3)
    assert popped == []
    proxy.heal()
    blocked.join(5)
    assert [list(item) for item in popped] == [["list", "x"]]  # type: ignore[call-overload]
    waiting.close()


def test_a_dropped_reply_ran_in_redis_and_closes_that_connection(proxy: TcpProxy, direct: redis.Redis) -> None:
    direct.rpush("src", "a", "b")
    other = through(proxy)
    other.ping()
    conn = through(proxy)
    conn.ping()
    proxy.drop_next_reply(b"BLMOVE")
    with pytest.raises(redis.ConnectionError):
        conn.blmove("src", "dst", 1, "RIGHT", "LEFT")
    assert not proxy.drop_pending
    # The move happened: the client just never heard.
    assert direct.lrange("dst", 0, -1) == ["b"]
    assert other.ping()  # other connections are untouched
    assert conn.lrange("dst", 0, -1) == ["b"]  # and the client reconnects; one drop only
    other.close()
    conn.close()


def test_redis_py_by_default_sends_the_command_again_after_a_lost_reply(proxy: TcpProxy, direct: redis.Redis) -> None:
    # What tests/workers/test_recovery.py relies on: a client built with
    # redis-py's defaults retries on a connection error, so a lost BLMOVE
    # reply means a second BLMOVE, and two ids moved for one returned.
    direct.rpush("src", "a", "b")
    conn = redis.Redis(port=proxy.port, decode_responses=True)
    conn.ping()
    proxy.drop_next_reply(b"BLMOVE")
    assert conn.blmove("src", "dst", 1, "RIGHT", "LEFT") == "a"
    assert direct.lrange("dst", 0, -1) == ["a", "b"]
    conn.close()


def test_a_held_command_reaches_redis_at_release_and_its_client_waits(proxy: TcpProxy, direct: redis.Redis) -> None:
    held = through(proxy, socket_timeout=None)
    other = through(proxy)
    held.ping()
    other.ping()
    proxy.hold_next(b"INCR")
    replies: list[int] = []
    sender = threading.Thread(target=lambda: replies.append(int(held.incr("counter"))))
    sender.start()
    wait_for(lambda: proxy.holding, 5, "the INCR to be held")
    assert not proxy.hold_pending
    time.sleep(0.3)
    assert direct.get("counter") is None and replies == [] and sender.is_alive()
    assert other.incr("other") == 1  # other connections pass
    direct.set("counter", 41)
    proxy.release()
    sender.join(5)
    assert replies == [42] and not proxy.holding
    assert held.incr("counter") == 43  # one command only
    held.close()
    other.close()


def test_reset_all_closes_every_connection(proxy: TcpProxy, direct: redis.Redis) -> None:
    idle = [through(proxy) for _ in range(2)]
    for conn in idle:
        conn.ping()
    busy = through(proxy, socket_timeout=None)
    errors: list[BaseException] = []

    def wait_in_blpop() -> None:
        try:
            busy.blpop(["nothing"], timeout=10)
        except redis.ConnectionError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait_in_blpop)
    waiter.start()
    wait_for(lambda: int(direct.info("clients")["blocked_clients"]) == 1, 5, "the BLPOP to block")
    assert proxy.connections == 3
    accepted = proxy.accepted
    proxy.reset_all()
    waiter.join(5)
    assert len(errors) == 1  # a command in flight fails
    wait_for(lambda: proxy.connections == 0, 5, "the connections to close")
    # redis-py notices that an idle connection was closed before it uses it
    # again, and reconnects without an error.
    for conn in idle:
        assert conn.ping()
        conn.close()
    assert proxy.accepted == accepted + 2
    busy.close()


def test_stop_closes_the_port(redis_url: str) -> None:
    proxy = TcpProxy(urlsplit(redis_url).port or 6379).start()
    conn = through(proxy)
    conn.ping()
    proxy.stop()
    with pytest.raises(redis.ConnectionError):
        conn.ping()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", proxy.port), timeout=1):
        pass
    conn.close()


def test_chaos_loses_replies_cuts_commands_midway_and_delays_them(proxy: TcpProxy, direct: redis.Redis) -> None:
    def connected() -> redis.Redis:
        conn = through(proxy)
        conn.ping()  # the handshake done before the chaos starts: the next chunk is the command
        return conn

    conn = connected()
    proxy.chaos(Chaos(drop_reply=1.0))
    with pytest.raises(redis.ConnectionError):
        conn.set("ran", "1")
    assert direct.get("ran") == "1"  # it ran; the reply was lost
    proxy.chaos(None)
    conn = connected()
    proxy.chaos(Chaos(cut_midway=1.0))
    with pytest.raises(redis.ConnectionError):
        conn.set("cut", "1")
    assert direct.get("cut") is None  # half a command: Redis dropped it with the connection
    proxy.chaos(None)
    conn = connected()
    delays = Chaos(delay=1.0, longest_delay=0.2, seed=7)
    proxy.chaos(delays)
    assert conn.set("late", "1")
    assert direct.get("late") == "1"
    assert delays.injected == {"drop_reply": 0, "cut_midway": 0, "delay": 1}
    proxy.chaos(None)
    conn.close()
