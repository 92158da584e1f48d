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
