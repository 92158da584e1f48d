"""``BluequeBackend``: Django's Tasks API on Blueque.

::

    TASKS = {
        "default": {
            "BACKEND": "django_blueque.backends.BluequeBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"ENQUEUE_ON_COMMIT": False, "REPLICAS": 0, "REPLICA_TIMEOUT": 1.0},
        }
    }

``run_after`` maps to Blueque's scheduled set (a scheduler moves the task to
pending when it is due); results are read back from the task's hash by any
process. Priority is not supported: order tasks with queues instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import redis
from django.apps import apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from . import payload
from .compat import BaseTaskBackend, TaskResult, TaskResultDoesNotExist, TaskResultStatus, task_enqueued
from .conf import get_settings
from .connection import get_client
from .exceptions import EnqueueError
from .protocol import NotReplicated, new_task_id
from .results import as_datetime, to_task_result, update
from .validation import problems

if TYPE_CHECKING:
    from .compat import AnyTask, AnyTaskResult


class BluequeBackend(BaseTaskBackend):
    #: What ``TASKS[alias]["OPTIONS"]`` may hold; anything else is E030 (a typo of
    #: ENQUEUE_ON_COMMIT would otherwise push tasks before the commit, silently).
    KNOWN_OPTIONS = frozenset({"ENQUEUE_ON_COMMIT", "DATABASE", "REPLICAS", "REPLICA_TIMEOUT"})

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        # Without QUEUES of its own the backend takes those of BLUEQUE["QUEUES"] that have no
        # HANDLER (read when asked, so a change of settings shows), rather than Django's
        # "default" alone, or any name at all when QUEUES is empty: a task must not go to a
        # queue no worker serves.
        self._own_queues: set[str] | None = set(params["QUEUES"]) if params.get("QUEUES") else None
        super().__init__(alias, params)
        #: Push tasks enqueued inside ``transaction.atomic()`` only on commit.
        self.enqueue_on_commit = bool(self.options.get("ENQUEUE_ON_COMMIT", False))
        #: The database whose transactions ``ENQUEUE_ON_COMMIT`` follows.
        self.database = str(self.options.get("DATABASE", "default"))
        #: Replicas that must hold a task before enqueue() returns (Redis WAIT), and how long
        #: to wait for them; checked by E028 and E029.
        self.replicas: Any = self.options.get("REPLICAS", 0)
        self.replica_timeout: Any = self.options.get("REPLICA_TIMEOUT", 1.0)

    @property
    def queues(self) -> set[str]:
        if self._own_queues is not None:
            return self._own_queues
        try:
            # Queues with a HANDLER run raw Blueque tasks, not Django ones.
            return {name for name, queue in get_settings().queues.items() if queue.handler is None}
        except ImproperlyConfigured:
            return set()  # the settings' own checks say what is wrong

    @queues.setter
    def queues(self, value: set[str]) -> None:
        # BaseTaskBackend.__init__ sets it from QUEUES (or Django's default); ours decides.
        pass

    def enqueue(self, task: AnyTask, args: Any, kwargs: Any) -> AnyTaskResult:
        self.validate_task(task)
        result = self._new_result(task, args, kwargs)
        parameters = payload.encode(task, args, kwargs, self.alias, max_bytes=get_settings().max_parameters)

        def push() -> None:
            queue = get_client().get_queue(task.queue_name)
            # The time stored is the time reported, so get_result() reads what enqueue() returned.
            now = time.time()
            replicas, timeout = int(self.replicas), float(self.replica_timeout)
            with self._enqueue_errors(task, result.id):
                if task.run_after is not None:
                    eta = task.run_after.timestamp()
                    queue.schedule(
                        parameters, eta, task_id=result.id, created=now, replicas=replicas, replica_timeout=timeout
                    )
                else:
                    queue.enqueue(
                        parameters, task_id=result.id, created=now, replicas=replicas, replica_timeout=timeout
                    )
            self._enqueued(result, now)

        self._push(push)
        return result

    def enqueue_many(
        self, task: AnyTask, calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]]
    ) -> list[AnyTaskResult]:
        """Enqueue ``task`` once for each ``(args, kwargs)`` of ``calls``; one round trip for the batch.

        As ``task.enqueue()`` for each, atomic: every task is enqueued or
        none (``EnqueueError``). A task with ``run_after`` is scheduled one
        call at a time. Not part of Django's Tasks API: call it on the
        backend, ``task_backends[task.backend].enqueue_many(task, calls)``.
        """
        self.validate_task(task)
        calls = [(list(args), dict(kwargs)) for args, kwargs in calls]
        if task.run_after is not None:
            return [self.enqueue(task, args, kwargs) for args, kwargs in calls]
        max_bytes = get_settings().max_parameters
        batch = [
            (self._new_result(task, args, kwargs), payload.encode(task, args, kwargs, self.alias, max_bytes=max_bytes))
            for args, kwargs in calls
        ]
        if not batch:
            return []

        def push() -> None:
            queue = get_client().get_queue(task.queue_name)
            now = time.time()
            with self._enqueue_errors(task, batch[-1][0].id, many=len(batch)):
                queue.enqueue_many(
                    [parameters for _, parameters in batch],
                    task_ids=[result.id for result, _ in batch],
                    created=now,
                    replicas=int(self.replicas),
                    replica_timeout=float(self.replica_timeout),
                )
            for result, _ in batch:
                self._enqueued(result, now)

        self._push(push)
        return [result for result, _ in batch]

    def _new_result(self, task: AnyTask, args: Any, kwargs: Any) -> AnyTaskResult:
        result: AnyTaskResult = TaskResult(
            task=task,
            id=new_task_id(),
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        return result

    @contextmanager
    def _enqueue_errors(self, task: AnyTask, task_id: str, many: int = 0) -> Iterator[None]:
        """Redis errors and missing replica acknowledgements, as ``EnqueueError``."""
        what = f"{many} calls of {task.module_path}" if many else task.module_path
        try:
            yield
        except redis.RedisError as exc:
            message = f"Could not enqueue {what} on queue {task.queue_name!r}: {exc}"
            raise EnqueueError(message, task_id=task_id) from exc
        except NotReplicated as exc:
            message = f"{what} was enqueued on queue {task.queue_name!r}, but {exc}: a failover may lose it"
            raise EnqueueError(message, task_id=task_id) from exc

    def _enqueued(self, result: AnyTaskResult, now: float) -> None:
        update(result, enqueued_at=as_datetime(now))
        task_enqueued.send(type(self), task_result=result)

    def _push(self, push: Callable[[], None]) -> None:
        if self.enqueue_on_commit:
            # Outside a transaction on_commit runs push() at once.
            transaction.on_commit(push, using=self.database)
        else:
            push()

    def get_result(self, result_id: str) -> AnyTaskResult:
        blueque_task = get_client().get_task(result_id)
        if not blueque_task.exists:
            raise TaskResultDoesNotExist(result_id)
        try:
            return to_task_result(blueque_task, self.alias)
        except payload.NotADjangoTask as exc:
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from exc

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        if not apps.is_installed("django_blueque"):
            yield checks.Error(
                f"Backend {self.alias!r} is a BluequeBackend, but 'django_blueque' is not in INSTALLED_APPS.",
                hint="Add 'django_blueque' to INSTALLED_APPS: it brings the worker commands and the settings checks.",
                id="django_blueque.E020",
            )
            return
        unknown = sorted(set(self.options) - self.KNOWN_OPTIONS)
        if unknown:
            yield checks.Error(
                f"OPTIONS of backend {self.alias!r} has unknown key(s): {', '.join(map(repr, unknown))}.",
                hint=f"Known options: {', '.join(sorted(self.KNOWN_OPTIONS))}.",
                id="django_blueque.E030",
            )
        replicas, timeout = self.replicas, self.replica_timeout
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            yield checks.Error(
                f"OPTIONS['REPLICAS'] of backend {self.alias!r} is {replicas!r}, not a whole number >= 0.",
                hint="How many replicas must hold a task before enqueue() returns (0: do not wait).",
                id="django_blueque.E028",
            )
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
            yield checks.Error(
                f"OPTIONS['REPLICA_TIMEOUT'] of backend {self.alias!r} is {timeout!r}, not a number of seconds > 0.",
                hint="How long enqueue() waits for REPLICAS before it raises EnqueueError.",
                id="django_blueque.E029",
            )
        if problems():
            return  # the BLUEQUE setting itself is wrong: its own checks say how
        configured = get_settings().queues
        for name in sorted(self.queues):
            queue = configured.get(name)
            if queue is None:
                yield checks.Error(
                    f"Task queue {name!r} of backend {self.alias!r} is not in BLUEQUE['QUEUES'].",
                    hint=f"Add {name!r} to BLUEQUE['QUEUES'] so workers serve it, or remove it from TASKS.",
                    id="django_blueque.E010",
                )
            elif queue.handler is not None:
                yield checks.Error(
                    f"Task queue {name!r} of backend {self.alias!r} has a raw HANDLER.",
                    hint="A queue with a HANDLER runs Blueque tasks, not Django tasks: use another queue.",
                    id="django_blueque.E011",
                )
        try:
            get_client().redis.ping()
        except redis.RedisError as exc:
            yield checks.Warning(
                f"Redis does not answer for backend {self.alias!r}: {exc}",
                hint="Start Redis or fix BLUEQUE['REDIS_URL']; tasks cannot be enqueued until it answers.",
                id="django_blueque.W001",
            )
