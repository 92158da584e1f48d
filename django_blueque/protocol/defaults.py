"""Every default and limit of the protocol, in one place.

The Django settings (``django_blueque.conf``) take their defaults from here,
and so do the classes of the protocol; docs/settings.md gives each one.
"""

from __future__ import annotations

#: Seconds without a heartbeat after which a listener is dead.
DEFAULT_LISTENER_TIMEOUT = 60.0
#: Shortest listener timeout allowed: beats, watching and reconnection are
#: paced in fractions of it.
MIN_LISTENER_TIMEOUT = 1.0
#: Times a task may lose its process before it fails.
DEFAULT_MAX_RECOVERIES = 3
#: Times a task may be given back unfinished before it fails.
DEFAULT_MAX_RELEASES = 20
#: Seconds a reported complete task stays readable before its hash is deleted.
DEFAULT_RESULT_TTL = 24 * 3600.0
#: Seconds a reported failed task stays readable before its hash is deleted.
DEFAULT_FAILED_RESULT_TTL = 7 * 24 * 3600.0
#: Longest single blocking call, in seconds: an idle listener on one queue
#: sends one BLMOVE per period (it is also kept under redis-py's socket
#: timeout, 5 s by default, and a runner's heartbeat interval). A worker's
#: stop does not wait for it: a stop request cuts the call short.
DEFAULT_BLOCK_TIMEOUT = 4.0
#: Longest wait, in seconds, of a listener on several queues between two
#: looks at their pending lists (one script): it wakes at once for tasks
#: whose producer publishes, and finds the others (Blueque 1.0.1's) within it.
POLL_PERIOD = 2.0
#: Ids read and acted on per round by :meth:`Operations.each_in_state`.
DEFAULT_BATCH = 100
#: Due tasks moved per script call by :meth:`Queue.enqueue_due_tasks`; bounds
#: how long one call holds Redis.
DUE_BATCH = 500
#: Seconds a dead listener's heartbeat is kept before it is forgotten.
HEARTBEAT_MEMORY = 24 * 3600.0
#: What a worker does with its running tasks when it cannot reach Redis:
#: let them run on, or stop them before another worker may take them over.
LOST_REDIS_CONTINUE, LOST_REDIS_STOP = "continue", "stop"
LOST_REDIS_CHOICES = (LOST_REDIS_CONTINUE, LOST_REDIS_STOP)
DEFAULT_LOST_REDIS = LOST_REDIS_CONTINUE
#: Tasks a prefork worker's child runs before it is replaced.
DEFAULT_MAX_TASKS_PER_CHILD = 1000
