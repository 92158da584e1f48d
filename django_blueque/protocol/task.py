"""The read-only view of a task, built from its ``blueque_task_<id>`` hash."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

SCHEDULED = "scheduled"
PENDING = "pending"
RESERVED = "reserved"
STARTED = "started"
COMPLETE = "complete"
FAILED = "failed"

#: Every status, in the order a task moves through them.
STATUSES = (SCHEDULED, PENDING, RESERVED, STARTED, COMPLETE, FAILED)
FINISHED = (COMPLETE, FAILED)


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class Task:
    """A snapshot of one task's hash; it does not change when Redis does.

    Every field is optional because the hash is shared with other Blueque
    clients: a value that is missing or malformed reads as ``None`` rather
    than raising, and the raw strings stay available in :attr:`fields`.
    """

    __slots__ = ("_fields", "_id")

    def __init__(self, task_id: str, fields: Mapping[str, str]) -> None:
        self._id = task_id
        self._fields: Mapping[str, str] = MappingProxyType(dict(fields))

    def __repr__(self) -> str:
        return f"<Task {self._id} {self.status}>"

    @property
    def id(self) -> str:
        return self._id

    @property
    def fields(self) -> Mapping[str, str]:
        """Every field of the hash as stored, including other clients' extras."""
        return self._fields

    @property
    def exists(self) -> bool:
        """False when Redis held no hash for this id."""
        return bool(self._fields)

    @property
    def status(self) -> str | None:
        return self._fields.get("status")

    @property
    def queue(self) -> str | None:
        return self._fields.get("queue")

    @property
    def parameters(self) -> str | None:
        return self._fields.get("parameters")

    @property
    def result(self) -> str | None:
        return self._fields.get("result")

    @property
    def error(self) -> str | None:
        return self._fields.get("error")

    @property
    def node(self) -> str | None:
        """The id of the listener that took the task."""
        return self._fields.get("node")

    @property
    def reclaimed_node(self) -> str | None:
        return self._fields.get("reclaimed_node")

    @property
    def pid(self) -> int | None:
        return _int(self._fields.get("pid"))

    @property
    def created(self) -> float | None:
        return _float(self._fields.get("created"))

    @property
    def updated(self) -> float | None:
        return _float(self._fields.get("updated"))

    @property
    def eta(self) -> float | None:
        return _float(self._fields.get("eta"))

    @property
    def started_at(self) -> float | None:
        """When the task last started (extension field)."""
        return _float(self._fields.get("started_at"))

    @property
    def exception(self) -> str | None:
        """Dotted path of the exception class of a failure (extension field)."""
        return self._fields.get("exception")

    @property
    def progress(self) -> float | None:
        """How far a running task has got, 0.0 to 1.0 (extension field)."""
        return _float(self._fields.get("progress"))

    @property
    def progress_message(self) -> str | None:
        return self._fields.get("progress_message")

    @property
    def traceback(self) -> str | None:
        """Traceback of a failure (extension field)."""
        return self._fields.get("traceback")
