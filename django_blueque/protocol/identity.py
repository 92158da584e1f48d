"""Who a process is: the host name, and the node names in listener and monitor ids.

Blueque 1.0.1 names a listener ``"<fqdn>_<pid>"`` and judges one dead when
it names this host and its pid is gone. Listeners that keep no heartbeat use
that form, so 1.0.1 and django-blueque can judge each other's. The listeners
of django-blueque's runners beat instead, and take a node name that adds a
random token to the host name: ``socket.getfqdn()`` is ``localhost`` on many
hosts, and containers reuse pids, so ``"<fqdn>_<pid>"`` alone could name two
live processes at once.
"""

from __future__ import annotations

import os
import secrets
import socket
from functools import cache

from . import keys


@cache
def hostname() -> str:
    """This host's name, as in listener ids (``socket.getfqdn()``, as in 1.0.1)."""
    return socket.getfqdn()


def unique_node() -> str:
    """A node name for the listeners of one worker: ``"<fqdn>-<random token>"``."""
    return f"{hostname()}-{secrets.token_hex(4)}"


def plain_listener_id(pid: int) -> str:
    """The 1.0.1 form of a listener id for process ``pid`` on this host."""
    return keys.listener_id(hostname(), pid)


def beating_listener_id(node: str | None = None, pid: int | None = None) -> str:
    """The id of a listener that keeps a heartbeat: ``"<fqdn>-<token>_<pid>"`` (``node`` given: ``"<node>_<pid>"``)."""
    return keys.listener_id(node or unique_node(), os.getpid() if pid is None else pid)


#: The roles of the processes that beat but serve no queue, as the first part of their ids.
MONITOR, SCHEDULER = "monitor", "scheduler"


def role_id(role: str, pid: int | None = None) -> str:
    """The id of a monitor or scheduler: ``"<role>_<fqdn>-<token>_<pid>"``."""
    return keys.listener_id(f"{role}_{unique_node()}", os.getpid() if pid is None else pid)


def parse_role_id(role: str, member: str) -> tuple[str, int] | None:
    """``(host, pid)`` of an id made by :func:`role_id` (host: the fqdn and token), or None.

    An id given by hand without the role's prefix is read as a listener id.
    """
    return keys.parse_listener_id(member.removeprefix(f"{role}_"))
