"""The Blueque protocol, wire-compatible with Blueque 1.0.1. No Django here.

See ``docs/protocol.md`` and :mod:`django_blueque.protocol.keys` for the spec.
"""

from . import forking_runner, inline_runner, keys
from .client import Client
from .introspection import QueueStats
from .listener import Listener
from .processor import Processor
from .queue import Queue
from .task import COMPLETE, FAILED, PENDING, RESERVED, SCHEDULED, STARTED, STATUSES, Task

__all__ = [
    # Connection
    "Client",
    # Producing and consuming
    "Queue",
    "Listener",
    "Processor",
    "forking_runner",
    "inline_runner",
    # Reading
    "Task",
    "QueueStats",
    "keys",
    # Statuses
    "SCHEDULED",
    "PENDING",
    "RESERVED",
    "STARTED",
    "COMPLETE",
    "FAILED",
    "STATUSES",
]
