"""What the two runners share: their options, and what ``run()`` counts."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from redis import Redis

from django_blueque.protocol import Client, ForkingRunner, PreforkRunner, Task, WorkerOptions, forking_runner, keys
from django_blueque.protocol.supervision import Interrupted


def echo(task: Task) -> str:
    return (task.parameters or "").upper()


def die_on_request(task: Task) -> str:
    if task.parameters == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return task.parameters or ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1, not 0"),
        ({"listener_timeout": 0.5}, "listener_timeout must be at least 1s, not 0.5"),
        ({"block_timeout": 0}, "block_timeout must be above 0, not 0"),
        ({"max_recoveries": -1}, "max_recoveries must be at least 0, not -1"),
        ({"max_releases": 0}, "max_releases must be at least 1, not 0"),
        ({"lost_redis": "panic"}, "lost_redis must be one of ('continue', 'stop'), not 'panic'"),
        ({"grace": -1.0}, "grace must be at least 0, not -1.0"),
        ({"grace": float("nan")}, "grace must be at least 0, not nan"),
        ({"max_tasks": 0}, "max_tasks must be at least 1, not 0"),
        ({"queue_limits": {"q": 0}}, "every queue limit must be at least 1, not {'q': 0}"),
        ({"max_tasks_per_child": 0}, "max_tasks_per_child must be at least 1, not 0"),
        ({"max_memory_mb": 0}, "max_memory_mb must be above 0, not 0"),
    ],
)
def test_bad_options_are_refused_by_both_runners_alike(options: dict[str, Any], message: str) -> None:
    pattern = "^" + re.escape(message) + "$"
    with pytest.raises(ValueError, match=pattern):
        WorkerOptions(**options)
    for runner in (ForkingRunner, PreforkRunner):
        if not runner.other_mode_options & options.keys():
            with pytest.raises(ValueError, match=pattern):
                runner(Client("redis://127.0.0.1:1"), "q", echo, **options)


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="timeout_forever"):
        ForkingRunner(Client("redis://127.0.0.1:1"), "q", echo, timeout_forever=True)


@pytest.mark.parametrize(
    ("runner", "option"),
    [
        (ForkingRunner, {"max_memory_mb": 100.0}),
        (ForkingRunner, {"max_tasks_per_child": 5}),
        (PreforkRunner, {"queue_limits": {"q": 1}}),
    ],
)
def test_an_option_of_the_other_mode_is_refused(
    runner: type[ForkingRunner | PreforkRunner], option: dict[str, Any]
) -> None:
    (name,) = option
    with pytest.raises(ValueError, match=f"^{runner.__name__} does not take {name}$"):
        runner(Client("redis://127.0.0.1:1"), "q", echo, **option)


def test_forking_run_takes_every_option_the_class_takes() -> None:
    names = {field.name for field in dataclasses.fields(WorkerOptions)} - {"concurrency"}
    run = inspect.signature(forking_runner.run).parameters
    runner = inspect.signature(ForkingRunner).parameters
    # Both take the class's own keywords by name and WorkerOptions through **options.
    assert {"before_fork", "prepare"} <= run.keys() & runner.keys()
    assert run["options"].kind is inspect.Parameter.VAR_KEYWORD
    assert not names & run.keys()  # one definition: WorkerOptions, not a copy in the signature


def test_forking_run_passes_queue_limits_and_prepare(client: Client) -> None:
    ids = [client.get_queue("q").enqueue(str(i)) for i in range(3)]
    prepared: list[str] = []
    ran = forking_runner.run(
        client, "q", echo, 2, burst=True, prepare=lambda task: prepared.append(task.id), queue_limits={"q": 1}
    )
    assert ran == 3
    assert prepared == ids


@pytest.mark.parametrize("runner", [ForkingRunner, PreforkRunner])
def test_both_runners_count_the_tasks_that_ran_lost_ones_included(
    client: Client, runner: type[ForkingRunner | PreforkRunner]
) -> None:
    queue = client.get_queue("q")
    ids = [queue.enqueue(str(i)) for i in range(5)]
    dying = queue.enqueue("die")
    worker = runner(client, "q", die_on_request, 2, max_recoveries=1)
    # Five tasks to an outcome, and the dying one twice: its first loss, then its failure.
    assert worker.run(burst=True) == 7
    assert (worker.tasks_run, worker.tasks_released) == (7, 0)
    assert [t.status for t in client.get_tasks(ids)] == ["complete"] * 5
    assert client.get_task(dying).status == "failed"


IDLE_RUNNER = textwrap.dedent(
    """
    import sys
    from django_blueque.protocol import Client, ForkingRunner, PreforkRunner

    runner = {"fork": ForkingRunner, "prefork": PreforkRunner}[sys.argv[2]]
    # A minute's block, far past any wait for a stop (no socket timeout to keep it under).
    client = Client(sys.argv[1], socket_timeout=None)
    runner(client, "q", lambda task: "", 2, block_timeout=60, listener_timeout=240).run()
    """
)


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_an_idle_runner_stops_at_once_however_long_it_blocks(client: Client, redis_url: str, mode: str) -> None:
    process = subprocess.Popen([sys.executable, "-c", IDLE_RUNNER, redis_url, mode])
    try:
        deadline = time.monotonic() + 20
        while client.queue_stats(["q"])["q"].listeners < (1 if mode == "fork" else 2):
            assert time.monotonic() < deadline, "the runner did not start listening"
            time.sleep(0.05)
        time.sleep(0.5)  # blocked in BLMOVE by now
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert process.wait(20) == 0
        assert time.monotonic() - stopped < 5
    finally:
        process.kill()
    assert client.queue_stats(["q"])["q"].listeners == 0
    # And it took no task on its way out.
    task_id = client.get_queue("q").enqueue("after")
    assert client.get_task(task_id).status == "pending"


def test_a_prefork_childs_stop_signal_just_before_its_wait_cuts_the_wait_short(client: Client) -> None:
    # The SIGTERM came after the child's loop last looked for a stop and before it began
    # to wait for a task: the wait must not block for its whole length.
    runner = PreforkRunner(client, "q", lambda task: None)
    runner._on_child_signal(signal.SIGTERM, None)
    with pytest.raises(Interrupted), runner._supervision.interruptible():
        time.sleep(5)


def test_a_take_cut_short_by_a_stop_gives_its_task_back(client: Client, db: Redis) -> None:
    """The stop may cut a take short after its move: the id is in the listener's list, unknown to
    the runner. Closing the listener gives it back to pending, first in line."""
    queue = client.get_queue("q")
    first, second = queue.enqueue("first"), queue.enqueue("second")
    listener = client.get_listener("q", heartbeat=True)
    assert listener.take(0) == ("q", first)
    listener.unsettle()  # what the runner does when Interrupted comes
    forking_runner.close(listener)
    assert db.lrange(keys.reserved("q", listener.id), 0, -1) == []
    assert client.get_task(first).status == "pending"
    assert client.get_listener("q").listen(timeout=1).id == first  # type: ignore[union-attr]
    assert client.get_task(second).status == "pending"
    assert listener.id not in db.smembers(keys.listeners("q"))
