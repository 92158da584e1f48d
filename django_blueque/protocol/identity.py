"""Who a process is: the host name, and the node names in listener and monitor ids.

Blueque 1.0.1 names a listener ``"<fqdn>_<pid>"`` and judges one dead when
it names this host and its pid is gone. Listeners that keep no heartbeat use
that form, so 1.0.1 and django-blueque can judge each other's. The listeners
of django-blueque's runners beat instead, and take a node name that adds a
random token to the host name: ``socket.getfqdn()`` is ``localhost`` on many
hosts, and containers reuse pids, so ``"<fqdn>_<pid>"`` alone could name two
live processes at once.

The pid rule applies only to an id that names this host by a name no other
host shares (:func:`local_pid`): under a name like ``localhost`` the pid may
be another host's, so such a listener is never judged by pid, here or
anywhere. ``$BLUEQUE_HOSTNAME`` gives this host a name of its own in ids.
"""

from __future__ import annotations

import os
import secrets
import socket
from functools import cache

from . import keys

#: Read for this host's name in ids, instead of ``socket.getfqdn()``.
HOSTNAME_ENV = "BLUEQUE_HOSTNAME"

#: Names that many hosts give themselves: an id naming one does not say which host it is on.
SHARED_HOSTNAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "localhost4",
        "localhost4.localdomain4",
        "localhost6",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ip6-loopback",
    }
)


@cache
def hostname() -> str:
    """This host's name in listener ids: ``$BLUEQUE_HOSTNAME``, else ``socket.getfqdn()`` (as in 1.0.1)."""
    name = os.environ.get(HOSTNAME_ENV, "").strip() or socket.getfqdn()
    if any(character.isspace() for character in name):
        raise ValueError(f"{HOSTNAME_ENV} may not contain whitespace: {name!r}")
    return name


def local_pid(listener_id: str) -> int | None:
    """The pid of a listener id that names this host, so that this host's OS can tell whether it runs.

    None for another host's id, a malformed one, or when this host's name is
    one that many hosts share (``localhost``): the pid could be another
    host's, and judging by it could recover a live listener's tasks.
    """
    parsed = keys.parse_listener_id(listener_id)
    if parsed is None or parsed[0] != hostname() or parsed[0].lower() in SHARED_HOSTNAMES:
        return None
    return parsed[1]


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
