"""Head of line: a long task in one slot of a worker never holds up short tasks while another
slot is free, in fork mode (a forked process per task) and in prefork mode (long-lived
children, each a listener of its own).

One worker, ``blueque_worker default --concurrency 2``. A long task (``nap``) starts first and
holds one slot; then 20 no-op tasks are enqueued, one every 200 ms. Every one of them must
complete while the long task is still running. How long each took (enqueue -> start and
enqueue -> finish, from its hash) is printed, not asserted.
"""

from __future__ import annotations

import time

import pytest

from django_blueque.protocol import Client
from tests.slow.figures import milliseconds
from tests.workers import tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import queue_listeners, wait_for

pytestmark = pytest.mark.slow

SAMPLES, INTERVAL = 20, 0.2
#: Seconds the no-op tasks get to complete after the last is enqueued.
FINISH_TIMEOUT = 30.0
#: The long task outlasts the no-op tasks' time-out, so that its slot being their only way
#: through shows as a failure, not as a wait.
LONG_TASK_SECONDS = SAMPLES * INTERVAL + FINISH_TIMEOUT + 30


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_long_task_never_holds_up_short_ones_while_a_slot_is_free(
    blueque: Client, spawn_worker: Spawn, mode: str
) -> None:
    worker = spawn_worker("default", "--concurrency", "2", "--mode", mode)
    wait_for(lambda: queue_listeners(blueque) >= 1, 60, f"the {mode} worker to listen")
    long_id = tasks.nap.enqueue(LONG_TASK_SECONDS).id
    wait_for(lambda: blueque.get_task(long_id).status == "started", 30, "the long task to start")

    ids: list[str] = []
    begin = time.monotonic()
    for i in range(SAMPLES):
        time.sleep(max(0.0, begin + i * INTERVAL - time.monotonic()))
        ids.append(tasks.noop.enqueue().id)

    def statuses() -> list[str | None]:
        return [task.status for task in blueque.get_tasks(ids)]

    try:
        wait_for(lambda: statuses() == ["complete"] * SAMPLES, FINISH_TIMEOUT, f"the {SAMPLES} no-op tasks")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {statuses()}; the long task is {blueque.get_task(long_id).status}") from None
    # All done while the long task still holds its slot: none waited for it.
    assert blueque.get_task(long_id).status == "started"
    assert worker.poll() is None

    done = blueque.get_tasks(ids)
    finish = [(task.updated or 0.0) - (task.created or 0.0) for task in done]
    start = [(task.started_at or 0.0) - (task.created or 0.0) for task in done]
    print(f"\n{mode}: {SAMPLES} no-op tasks; enqueue -> start {milliseconds(start)}; -> finish {milliseconds(finish)}")
