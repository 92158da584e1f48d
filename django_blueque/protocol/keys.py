"""The Blueque key schema: every Redis key the protocol reads or writes.

This module is the specification. Key names, Redis types and hash fields are
those of Blueque 1.0.1, so a task written by either implementation can be read
and run by the other. Keys added by django-blueque are marked *extension*;
Blueque 1.0.1 never reads them.

``blueque_queues`` (sorted set)
    Member: queue name. Score: number of listeners on the queue. Enqueueing
    adds 0 so a queue with tasks but no listener is still listed.

``blueque_pending_tasks_<queue>`` (list)
    Ids of tasks waiting to run. Producers ``LPUSH``; listeners move the
    right-hand end (the oldest task) to their reserved list.

``blueque_scheduled_tasks_<queue>`` (sorted set)
    Ids of tasks waiting for their ETA. Score: ETA, float epoch seconds.

``blueque_reserved_tasks_<queue>_<listener id>`` (list)
    Ids of tasks a listener has taken: reserved, then started. A task stays
    here until it completes or fails.

``blueque_started_tasks_<queue>`` (set)
    Members ``"<listener id> <pid> <task id>"``, one per running task. (The
    1.0 README says sorted set; 1.0.1 and every deployment use a set.)

``blueque_complete_tasks_<queue>`` / ``blueque_failed_tasks_<queue>`` (lists)
    Ids of finished tasks, newest on the left, until they are deleted.

``blueque_listeners_<queue>`` (set)
    Listener ids of the listeners on a queue: ``"<fqdn>_<pid>"`` (1.0.1's form,
    for listeners that do not beat), or ``"<fqdn>-<token>_<pid>"`` for the
    listeners of django-blueque's runners, where ``<token>`` is random per
    worker, so that ids stay unique where hosts share a name (``localhost``)
    or containers reuse pids. 1.0.1 parses both (``rsplit("_", 1)``) and, the
    host part not being its own, never claims the second kind. A listener's
    heartbeat adds it back if recovery removed it while it was silent.

``blueque_task_<task id>`` (hash)
    All the data of one task. Fields of 1.0: ``status`` (``scheduled``,
    ``pending``, ``reserved``, ``started``, ``complete``, ``failed``),
    ``queue``, ``parameters``, ``result``, ``error``, ``node`` (listener id),
    ``pid``, ``created``, ``updated``, ``eta`` (timestamps are float epoch
    seconds written as decimal strings) and ``reclaimed_node``, set when a
    listener takes over the task of a dead one. Extension fields:
    ``started_at`` (when the task last started), ``attempt`` (how many times
    it started; outcomes are written only by the latest attempt),
    ``process_token`` (tells a process from a later one with the same pid),
    ``recoveries`` (how many times its process was lost) and ``lost`` (how),
    ``exception`` (the dotted path of the exception class of a failure),
    ``traceback``, ``errors`` (JSON list of the errors of earlier attempts,
    for retried tasks), ``progress`` (0.0 to 1.0) with ``progress_message``, and
    for a periodic task's run, ``periodic`` (its name) and ``occurrence``.

``blueque_heartbeats`` (sorted set, *extension*)
    Member: listener id. Score: Redis server time (epoch seconds) of the
    listener's last heartbeat. A listener whose heartbeat is older than the
    listener timeout is dead, on whatever host it ran; an observer judges
    that by watching the score not change, on its own clock, for that long
    (see liveness.py). Listeners that never beat (Blueque 1.0.1's) are judged
    by 1.0.1's rule: same host, pid gone. Schedulers forget heartbeats older
    than a day of ids that no queue and no monitor set lists any more.

``blueque_listener_timeouts`` (hash, *extension*)
    Field: listener (or monitor) id. Value: the seconds of silence after which
    that listener is dead, as it was configured, so whoever judges it uses
    its own timeout. A listener with an entry here beats; one without (1.0.1's)
    is judged by 1.0.1's rule.

``blueque_task_heartbeats`` (sorted set, *extension*)
    Member: task id. Score: Redis server time of the last heartbeat from the
    process running the task (or its listener on its behalf). A started task
    whose listener is dead is left to finish while this stays fresh.

``blueque_periodic`` (hash, *extension*)
    State of the periodic tasks: field ``<name>`` holds the last occurrence
    (epoch seconds) that a scheduler handled, ``<name>:task`` the id of the
    task it enqueued. A script compares and sets it, so each occurrence is
    enqueued once however many schedulers run.

``blueque_reported_complete_<queue>`` / ``blueque_reported_failed_<queue>`` (sorted sets, *extension*)
    Finished tasks that a monitor has reported (sent its signal for), scored
    by when. A monitor takes ids from the complete and failed lists (oldest
    first), so those lists hold only what is still to be reported; the task
    stays readable here until its result expires and the hash is deleted.

``blueque_retrying_tasks_<queue>`` (list, *extension*)
    ``"<task id>:<attempt>"`` for each failed attempt of a task that was
    scheduled to run again, for monitors to report (``task_retrying``), like
    the complete and failed lists.

``blueque_monitors`` (set, *extension*)
    Ids of the monitors, ``monitor_<fqdn>_<pid>``; each beats in
    ``blueque_heartbeats``.

``blueque_monitoring_<monitor id>`` (list, *extension*)
    What a monitor is reporting right now, ``"<queue> <status> <task id>"``.
    If the monitor dies, another puts these back in the complete or failed
    lists, so they are reported again (at least once).

``blueque_channel_<queue>`` (pub/sub channel, *extension*)
    A message (the queue name, never a task id) is published whenever a task
    becomes pending, so listeners on several queues can sleep until there is
    work. A listener must still take the task with a list move, so only one
    listener runs it. Producers that do not publish (Blueque 1.0.1) are
    covered by a bounded poll.

The 1.0 README also describes ``blueque_tasks_<queue>``, a list of every task
in a queue. Blueque 1.0.1 never writes it and neither does django-blueque: it
would grow without bound and every figure it could give is derived from the
keys above.
"""

PREFIX = "blueque"


def _key(*parts: str) -> str:
    return "_".join((PREFIX, *parts))


def queues() -> str:
    """Sorted set of queue names, scored by listener count."""
    return _key("queues")


def pending(queue: str) -> str:
    """List of ids of the tasks waiting to run on ``queue``."""
    return _key("pending_tasks", queue)


def scheduled(queue: str) -> str:
    """Sorted set of ids of the tasks waiting for their ETA, scored by ETA."""
    return _key("scheduled_tasks", queue)


def reserved(queue: str, listener_id: str) -> str:
    """List of ids of the tasks that ``listener_id`` has taken from ``queue``."""
    return _key("reserved_tasks", queue, listener_id)


def started(queue: str) -> str:
    """Set of ``"<listener id> <pid> <task id>"`` for each running task."""
    return _key("started_tasks", queue)


def complete(queue: str) -> str:
    """List of ids of the tasks of ``queue`` that completed."""
    return _key("complete_tasks", queue)


def failed(queue: str) -> str:
    """List of ids of the tasks of ``queue`` that failed."""
    return _key("failed_tasks", queue)


def listeners(queue: str) -> str:
    """Set of the ids of the listeners on ``queue``."""
    return _key("listeners", queue)


def task(task_id: str) -> str:
    """Hash holding every field of one task."""
    return _key("task", task_id)


def heartbeats() -> str:
    """Sorted set of listener ids scored by their last heartbeat (extension)."""
    return _key("heartbeats")


def task_heartbeats() -> str:
    """Sorted set of running task ids scored by their last heartbeat (extension)."""
    return _key("task_heartbeats")


def periodic() -> str:
    """Hash of the periodic tasks' state: last occurrence run, and its task id (extension)."""
    return _key("periodic")


def retrying(queue: str) -> str:
    """List of ids of tasks sent back to be retried, for monitors to report (extension)."""
    return _key("retrying_tasks", queue)


def reported(queue: str, status: str) -> str:
    """Sorted set of finished tasks a monitor has reported, scored by when (extension)."""
    return _key("reported", status, queue)


def per_minute(queue: str, status: str) -> str:
    """Hash of how many tasks monitors reported per minute, the last hour (extension).

    Field ``<minute of the hour, 0-59>``, value ``"<minutes since the epoch>:<count>"``
    (Redis server time): a ring of 60 slots, so the hash never grows.
    """
    return _key("per_minute", status, queue)


def monitors() -> str:
    """Set of the ids of running monitors (extension)."""
    return _key("monitors")


def schedulers() -> str:
    """Set of the ids of running schedulers, which beat in :func:`heartbeats` (extension)."""
    return _key("schedulers")


def monitoring(monitor_id: str) -> str:
    """List of ``"<queue> <status> <task id>"`` a monitor is reporting right now (extension)."""
    return _key("monitoring", monitor_id)


def listener_timeouts() -> str:
    """Hash of listener (and monitor) id to its own timeout in seconds (extension)."""
    return _key("listener_timeouts")


def channel(queue: str) -> str:
    """Pub/sub channel announcing new pending tasks on ``queue`` (extension)."""
    return _key("channel", queue)


# Names and composite values. Every value that two places write and read has
# one encoding function and one parsing function here.


def validate_queue_name(name: str) -> str:
    """Return ``name`` if it can name a queue, else raise ``ValueError``.

    A queue name is a non-empty string without whitespace: it is part of key
    names and of the space-separated entries below.
    """
    if not isinstance(name, str) or not name or any(char.isspace() for char in name):
        raise ValueError(f"A queue name must be a non-empty string without whitespace, not {name!r}")
    return name


def validate_task_id(task_id: str) -> str:
    """Return ``task_id`` if it can name a task (non-empty, no whitespace), else raise ``ValueError``."""
    if not isinstance(task_id, str) or not task_id or any(char.isspace() for char in task_id):
        raise ValueError(f"A task id must be a non-empty string without whitespace, not {task_id!r}")
    return task_id


def listener_id(node: str, pid: int) -> str:
    """A listener id, ``"<node>_<pid>"`` (Blueque 1.0.1's form, whatever the node name)."""
    return f"{node}_{pid}"


def parse_listener_id(listener: str) -> tuple[str, int] | None:
    """Split ``"<node>_<pid>"`` as Blueque 1.0.1 does; ``None`` for an id of another form."""
    node, _, pid = listener.rpartition("_")
    if not node or not pid.isdigit():
        return None
    return node, int(pid)


def started_member(listener: str, pid: int | str, task_id: str) -> str:
    """The member of :func:`started` that stands for one running task."""
    return f"{listener} {pid} {task_id}"


def parse_started_member(member: str) -> tuple[str, str, str]:
    """Split a :func:`started` member into ``(listener id, pid, task id)``."""
    listener, pid, task_id = member.rsplit(" ", 2)
    return listener, pid, task_id


def monitoring_entry(queue: str, status: str, task_id: str) -> str:
    """An entry of :func:`monitoring`: ``"<queue> <status> <task id>"``."""
    return f"{queue} {status} {task_id}"


def parse_monitoring_entry(entry: str) -> tuple[str, str, str]:
    """Split a :func:`monitoring` entry into ``(queue, status, task id)``."""
    queue, status, task_id = entry.split(" ", 2)
    return queue, status, task_id


def retrying_entry(task_id: str, attempt: int | str) -> str:
    """An entry of :func:`retrying`: ``"<task id>:<attempt>"``."""
    return f"{task_id}:{attempt}"


def parse_retrying_entry(entry: str) -> tuple[str, str]:
    """Split a :func:`retrying` entry into ``(task id, attempt)``."""
    task_id, _, attempt = entry.rpartition(":")
    return task_id, attempt
