"""The Blueque protocol, wire-compatible with Blueque 1.0.1. No Django here.

See ``docs/protocol.md`` and :mod:`django_blueque.protocol.keys` for the spec.
What ``__all__`` lists is the public API: the Django glue imports nothing
else from this package, and a test holds it to that.
"""

from . import defaults, forking_runner, inline_runner, keys
from .client import Client
from .cron import Cron, CronError
from .errors import Cancelled, MalformedTask, NotReplicated, Retry, TaskNotOwned, WorkerLost
from .forking_runner import ForkingRunner
from .introspection import Beater, Fleet, QueueStats, beaters
from .listener import Listener
from .monitor import Monitor
from .operations import ACTIONS, Operations, Outcome
from .prefork_runner import PreforkRunner
from .processes import describe_status
from .processor import Processor
from .queue import Queue, new_task_id
from .runner import WorkerOptions
from .scheduler import RUN_ONCE, SKIP, Every, PeriodicTask, Scheduler
from .supervision import Supervision, reap_exited, run_child
from .task import COMPLETE, FAILED, PENDING, RESERVED, SCHEDULED, STARTED, STATUSES, Task
from .work import class_path

__all__ = [
    # Connection
    "Client",
    # Producing
    "Queue",
    "new_task_id",
    # Consuming
    "Listener",
    "Processor",
    "Retry",
    "NotReplicated",
    "ForkingRunner",
    "PreforkRunner",
    "WorkerOptions",
    "forking_runner",
    "inline_runner",
    "class_path",
    # Scheduling and reporting
    "Scheduler",
    "PeriodicTask",
    "Every",
    "Cron",
    "CronError",
    "RUN_ONCE",
    "SKIP",
    "Monitor",
    # Reading and operating
    "Task",
    "QueueStats",
    "Beater",
    "Fleet",
    "beaters",
    "Operations",
    "Outcome",
    "ACTIONS",
    "keys",
    # Errors a task may end with
    "Cancelled",
    "MalformedTask",
    "TaskNotOwned",
    "WorkerLost",
    # Processes
    "describe_status",
    "run_child",
    "reap_exited",
    "Supervision",
    # Defaults and limits
    "defaults",
    # Statuses
    "SCHEDULED",
    "PENDING",
    "RESERVED",
    "STARTED",
    "COMPLETE",
    "FAILED",
    "STATUSES",
]
