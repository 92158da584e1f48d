"""Every Lua script of the protocol: the inventory and its one registry.

Each script is a file in ``lua/``, named as its attribute on :class:`Scripts`,
whose header states its KEYS, ARGV, what it returns and the invariant it
keeps. ``lua/prelude.lua`` (shared functions, the server clock among them) is
put before each. Every key a script touches is passed in ``KEYS``, as Redis
asks; a test runs each script under ``MONITOR`` and checks it. Where the keys
cannot be known before a step runs (taking a task: its id is only known once
it has been moved) the step is split in two, and the gap is repaired by
recovery; see :mod:`django_blueque.protocol.listener`.

Heartbeats use the Redis server's clock (``TIME``), and are compared only
with themselves: an observer judges a listener by watching its heartbeat not
change (see liveness.py), never by comparing clocks. Outcomes are fenced by
the ``attempt`` and ``node`` fields: a process that was presumed dead and
whose task was given to another cannot overwrite what the newer attempt
records. Redis does not roll back a script that fails half-way, so each
script does all its reads and checks before its first write, and a task
whose counters are malformed is failed with a clear error rather than left
between states.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

#: Every script, by name: the file ``lua/<name>.lua`` and the attribute of :class:`Scripts`.
NAMES = (
    # Listeners: taking, running and finishing tasks.
    "take_first",
    "reserve",
    "start",
    "reserve_start",
    "progress",
    "finish",
    "retry",
    "give_back",
    # Liveness: registries, heartbeats, recovery.
    "register",
    "beat",
    "recover",
    "reclaim",
    "deregister",
    # Producers and schedulers.
    "enqueue",
    "enqueue_due",
    "periodic",
    # Monitors.
    "monitor_take",
    "monitor_ack",
    "monitor_restore",
    "monitor_forget",
    "monitor_expire",
    # Operators (operations.py).
    "retry_failed",
    "cancel",
    "delete_finished",
    "forget_queue",
)

_LUA = resources.files(__package__).joinpath("lua")


def _read(name: str) -> str:
    return _LUA.joinpath(f"{name}.lua").read_text(encoding="utf-8")


PRELUDE = _read("prelude")

#: The text Redis runs for each script: the prelude, then the script.
SOURCES = {name: PRELUDE + "\n" + _read(name) for name in NAMES}


class Scripts:
    """Every script registered on one Redis client (EVALSHA, loaded on demand)."""

    take_first: Script
    reserve: Script
    start: Script
    reserve_start: Script
    progress: Script
    finish: Script
    retry: Script
    give_back: Script
    register: Script
    beat: Script
    recover: Script
    reclaim: Script
    deregister: Script
    enqueue: Script
    enqueue_due: Script
    periodic: Script
    monitor_take: Script
    monitor_ack: Script
    monitor_restore: Script
    monitor_forget: Script
    monitor_expire: Script
    retry_failed: Script
    cancel: Script
    delete_finished: Script
    forget_queue: Script

    def __init__(self, redis: Redis) -> None:
        for name, source in SOURCES.items():
            setattr(self, name, redis.register_script(source))
