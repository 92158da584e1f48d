"""Signals sent by ``manage.py blueque_monitor`` as it sees tasks finish.

Each is sent once per finished task (at least once: a task a monitor was
reporting when it died is reported again by another), for tasks finished by
any Blueque client, Blueque 1.0.1's workers included. Receivers run in the
monitor process; an exception in one is logged and does not stop the others.

``task_completed``
    sender: the queue name (``str``), so ``connect(receiver, sender="video")``
    listens to one queue. kwargs: ``task`` (a read-only
    :class:`django_blueque.protocol.Task`: ``id``, ``queue``, ``parameters``,
    ``result``, ``fields``...), ``result`` (the result string; for a Django
    task, its return value as JSON).

``task_failed``
    sender: the queue name. kwargs: ``task``, ``error`` (the error message;
    the exception's class and traceback are ``task.exception`` and
    ``task.traceback``). Sent only for a final failure, not for one that will
    be retried.

``task_retrying``
    sender: the queue name. kwargs: ``task``, ``error`` (this attempt's
    message), ``eta`` (epoch seconds of the next attempt).
"""

from django.dispatch import Signal

task_completed = Signal()
task_failed = Signal()
task_retrying = Signal()
