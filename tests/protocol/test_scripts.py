"""The Lua scripts: each names in KEYS every key it touches, and each header states its contract.

The key check runs the protocol through every script on a real Redis while a
``MONITOR`` connection records what the server executes: each ``EVALSHA``
from a client, then the commands its script ran (``[0 lua]``). Redis itself
says which arguments of those commands are keys (``COMMAND GETKEYS``), so the
check knows nothing of the scripts' text.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources

import redis
from redis import Redis

from django_blueque.protocol import Client, keys
from django_blueque.protocol.identity import hostname
from django_blueque.protocol.monitor import Monitor
from django_blueque.protocol.scheduler import Every, PeriodicTask, Scheduler
from django_blueque.protocol.scripts import NAMES, PRELUDE, SOURCES

LUA = resources.files("django_blueque.protocol").joinpath("lua")
SHA_TO_NAME = {hashlib.sha1(source.encode()).hexdigest(): name for name, source in SOURCES.items()}
END = "end-of-workload"


@dataclass
class ScriptCall:
    name: str
    keys: set[bytes]
    commands: list[list[bytes]] = field(default_factory=list)


_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b'"': b'"', b"\\": b"\\"}


def _unquote(text: bytes) -> bytes:
    """Undo the quoting of MONITOR's lines (Redis's sdscatrepr)."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i : i + 1] == b"\\":
            nxt = text[i + 1 : i + 2]
            if nxt == b"x":
                out += bytes([int(text[i + 2 : i + 4], 16)])
                i += 4
                continue
            out += _ESCAPES.get(nxt, nxt)
            i += 2
            continue
        out += text[i : i + 1]
        i += 1
    return bytes(out)


def parse_monitor_line(line: bytes) -> tuple[bool, list[bytes]]:
    """``(run by a script, [command, arg, ...])`` of one MONITOR line."""
    header, _, rest = line.partition(b"] ")
    return header.endswith(b" lua"), [_unquote(arg) for arg in _QUOTED.findall(rest)]


@contextmanager
def recorded_script_calls(redis_url: str) -> Iterator[list[ScriptCall]]:
    """The script calls Redis executes inside the block, with the commands each ran."""
    connection = redis.Redis.from_url(redis_url).connection_pool.make_connection()
    connection.connect()  # type: ignore[no-untyped-call, unused-ignore]
    connection.send_command("MONITOR")  # type: ignore[no-untyped-call, unused-ignore]
    assert connection.read_response() in (b"OK", "OK")
    calls: list[ScriptCall] = []
    yield calls
    redis.Redis.from_url(redis_url).echo(END)
    current: ScriptCall | None = None
    while True:
        reply = connection.read_response(timeout=10)
        line = reply if isinstance(reply, bytes) else str(reply).encode()
        by_script, command = parse_monitor_line(line)
        if not command:
            continue
        verb = command[0].lower()
        if by_script:
            if current is not None:
                current.commands.append(command)
            continue
        if verb == b"echo" and command[1:] == [END.encode()]:
            break
        current = None
        if verb == b"evalsha" and command[1].decode() in SHA_TO_NAME:
            count = int(command[2])
            current = ScriptCall(SHA_TO_NAME[command[1].decode()], set(command[3 : 3 + count]))
            calls.append(current)
    connection.disconnect()  # type: ignore[no-untyped-call, unused-ignore]


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def run_every_script(client: Client) -> None:
    """Take the protocol through each of its scripts at least once."""
    queue = client.get_queue("q")
    # A listener on two queues takes with take_first; each task ends another way.
    listener = client.get_listener("q", "other", heartbeat=True, timeout=2)
    ids = [queue.enqueue(f"task {i}") for i in range(5)]
    tasks = [listener.listen(timeout=0) for _ in ids]
    assert all(task is not None for task in tasks)
    first, second, third, fourth, fifth = (client.get_processor(task) for task in tasks if task is not None)
    first.start()
    client.report_progress(first.task.id, 0.5, "half way")
    listener.beat([first.task.id])
    first.complete("done")
    second.start()
    second.fail("it broke", exception="builtins.RuntimeError")
    third.start()
    third.retry(time.time() - 1, "again", exception="builtins.RuntimeError")
    listener.give_back(fourth.task)
    fifth.start()
    client.operations().requeue([fifth.task.id], force=True)
    # A fork-mode worker takes a task, then reserves and starts it at once for its child.
    taken = listener.take(0)
    assert taken is not None and listener.start_taken(taken, os.getpid(), "token") is not None
    # A scheduler moves the retried task back; a periodic task is claimed, then enqueued.
    periodic = PeriodicTask("tick", "q", parameters=lambda: "tick", schedule=Every(1))
    scheduler = Scheduler(client, ["q"], periodic=[periodic])
    scheduler.tick()
    scheduler.tick(now=time.time() + 2)
    scheduler.deregister()
    # A dead listener of this host: another takes its task over.
    dead = client.get_listener("q", listener_id=f"{hostname()}_{dead_pid()}")
    assert dead.listen(timeout=0) is not None
    assert client.get_listener("q").claim_orphan() is not None
    listener.close()
    # A dead monitor's entries are put back and it is forgotten; the rest is reported, then expired.
    gone = Monitor(client, on_complete=lambda task: None, on_failed=lambda task: None, monitor_id="m_gone")
    gone.register()
    client.scripts.monitor_take(keys=[keys.complete("q"), keys.monitoring("m_gone")], args=["q", "complete", 1])
    client.redis.zadd(keys.heartbeats(), {"m_gone": 1.0})
    client.redis.hset(keys.listener_timeouts(), "m_gone", 2)
    now = [0.0]
    monitor = Monitor(
        client, on_complete=lambda task: None, on_failed=lambda task: None, listener_timeout=2, clock=lambda: now[0]
    )
    for _ in range(6):
        monitor.restore_dead_monitors()
        now[0] += 0.5
    while monitor.report():
        pass
    # An operator retries the failure, cancels a pending task, deletes a
    # finished one and forgets an empty queue.
    operations = client.operations()
    assert operations.retry([second.task.id]).done == [second.task.id]
    assert operations.cancel([queue.enqueue("to cancel")]).done
    assert operations.delete([first.task.id]).done == [first.task.id]
    client.redis.zadd(keys.queues(), {"empty": 0})
    assert operations.forget_queue("empty") == "forgotten"
    monitor.report()
    assert monitor.expire(now=time.time() + 30 * 24 * 3600)


def test_each_script_names_in_keys_every_key_it_touches(redis_url: str, named_host: Callable[[str], str]) -> None:
    named_host("box-a.example")  # the pid rule, which claim_orphan's script needs, wants a name of its own
    client = Client(redis_url)
    with recorded_script_calls(redis_url) as calls:
        run_every_script(client)
    client.close()
    assert {call.name for call in calls} == set(NAMES), "the workload must run every script"
    inspector = Redis.from_url(redis_url)
    with inspector.pipeline(transaction=False) as pipe:
        commands = [(call, command) for call in calls for command in call.commands]
        for _, command in commands:
            pipe.command_getkeys(*command)
        replies = pipe.execute(raise_on_error=False)
    undeclared = []
    for (call, command), reply in zip(commands, replies, strict=True):
        replied = [] if isinstance(reply, redis.ResponseError) else reply  # no key arguments (TIME, PUBLISH)
        # redis-py decodes the reply of COMMAND GETKEYS; the keys here are UTF-8.
        touched = {key if isinstance(key, bytes) else key.encode() for key in replied}
        if touched - call.keys:
            undeclared.append(f"{call.name}: {command[0].decode()} {sorted(touched - call.keys)}")
    assert sum(len(call.commands) for call in calls) > 100
    assert not undeclared


def test_the_monitor_line_parser_reads_quoted_arguments() -> None:
    line = rb'1796520433.479012 [0 lua] "LPUSH" "k" "q complete \"x\"\\\xff\n"'
    assert parse_monitor_line(line) == (True, [b"LPUSH", b"k", b'q complete "x"\\\xff\n'])


def _declared(header: str, kind: str) -> set[int] | None:
    """The indices of ``kind`` (KEYS or ARGV) a header declares; None for an open range."""
    indices: set[int] = set()
    for first, last in re.findall(rf"-- +{kind}\[(\d+)(?:\.\.(\w*))?\]", header):
        if last and not last.isdigit():
            return None
        indices.update(range(int(first), int(last or first) + 1))
    return indices


def test_each_script_file_states_its_keys_arguments_returns_and_invariant() -> None:
    files = {path.name for path in LUA.iterdir() if path.name.endswith(".lua")}
    assert files == {f"{name}.lua" for name in NAMES} | {"prelude.lua"}
    assert "KEYS" not in PRELUDE.replace("in KEYS", ""), "the prelude touches keys only through its arguments"
    for name in NAMES:
        text = LUA.joinpath(f"{name}.lua").read_text(encoding="utf-8")
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("--"))
        assert header.startswith(f"-- {name}: "), name
        for word in ("KEYS[", "Returns", "Keeps"):
            assert f"-- {word}" in header or f"--  {word}" in header or re.search(rf"-- +{re.escape(word)}", header), (
                name,
                word,
            )
        body = text[len(header) :]
        for kind in ("KEYS", "ARGV"):
            declared = _declared(header, kind)
            used = {int(index) for index in re.findall(rf"{kind}\[(\d+)\]", body)}
            if declared is not None:
                assert used <= declared, (name, kind, used - declared)
