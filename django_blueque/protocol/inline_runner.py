"""Run pending tasks in the current process, one after another, then return.

For tests and scripts: what a task does (signals, database writes, mocks)
happens in the caller's process, where it can be observed. Production
workers use :mod:`~django_blueque.protocol.forking_runner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .work import TaskCallback, perform

if TYPE_CHECKING:
    from .client import Client


def run(client: Client, queues: str | Sequence[str], callback: TaskCallback, *, max_tasks: int | None = None) -> int:
    """Run the pending tasks of ``queues`` (in priority order) until none is left; return how many ran."""
    names = (queues,) if isinstance(queues, str) else tuple(queues)
    ran = 0
    with client.get_listener(*names) as listener:
        while max_tasks is None or ran < max_tasks:
            task = listener.listen(timeout=0)
            if task is None:
                break
            perform(client, task, callback)
            ran += 1
    return ran
