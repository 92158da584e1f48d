"""Scenario 11: bad data, written to Redis by hand or handed to ``enqueue()``.

A worker serves a queue into which hashes are written that no producer of
ours writes: a task path naming a module outside the project (whose import
alone would run code), a plain function rather than a ``@task``, a pickle
(whose loading would run code), parameters that are not UTF-8, a counter that
is not a number. At ``enqueue()``, arguments that JSON cannot hold (NaN,
Infinity) and 100 MB of them.

Pass line: each bad task fails on its own with a clear error, without running
anything the project did not register (the sneaky module is never imported,
the pickle never loaded); each bad ``enqueue()`` is refused with a clear
error, and a larger ``MAX_PARAMETERS`` lets the large one through; the good
tasks enqueued between them complete; the worker keeps working.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import time
from pathlib import Path

import pytest
import redis
from pytest_django import Settings as SettingsWrapper

from django_blueque.protocol import Client, keys
from tests.reliability.figures import Row, record
from tests.workers import recovery_tasks
from tests.workers.conftest import Spawn
from tests.workers.runs import Journal, assert_clean, statuses, wait_for, wait_until_complete

OUTSIDE = Path(__file__).resolve().parent / "outside"


class Loaded:
    """A pickle that leaves a mark when loaded."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.mark}",))


def django_payload(path: str) -> str:
    return json.dumps({"django_task": path, "args": [], "kwargs": {}, "backend": "default", "run_after": None})


def test_bad_data_fails_alone_and_runs_nothing_unregistered(
    blueque: Client,
    spawn: Spawn,
    journal: Journal,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    settings: SettingsWrapper,
) -> None:
    started_at = time.monotonic()
    sneaky_mark, pickle_mark = tmp_path / "sneaky-imported", tmp_path / "unpickled"
    monkeypatch.setenv("BLUEQUE_TEST_SNEAKY_MARK", str(sneaky_mark))
    queue = blueque.get_queue("default")
    raw = redis.Redis.from_url(settings.BLUEQUE["REDIS_URL"])  # writes bytes as a faulty producer would
    bad = {
        "a module outside the project": queue.enqueue(django_payload("sneaky.run")),
        "a plain function": queue.enqueue(django_payload("os.getcwd")),
        "a pickle": queue.enqueue(base64.b64encode(pickle.dumps(Loaded(pickle_mark))).decode()),
        "a raw pickle": queue.enqueue("placeholder"),
        "parameters not UTF-8": queue.enqueue("placeholder"),
        "an attempt that is no number": queue.enqueue(django_payload("tests.workers.recovery_tasks.run_for")),
    }
    raw.hset(keys.task(bad["a raw pickle"]), "parameters", pickle.dumps(Loaded(pickle_mark)))
    raw.hset(keys.task(bad["parameters not UTF-8"]), "parameters", b"\xff\xfe not text")
    raw.hset(keys.task(bad["an attempt that is no number"]), "attempt", "many")
    good = [recovery_tasks.run_for.enqueue(0.05).id for _ in range(5)]

    refused = {}
    for name, args in (("NaN", [float("nan")]), ("Infinity", [float("inf")])):
        with pytest.raises(ValueError, match="which JSON cannot hold") as error:
            recovery_tasks.run_for.enqueue(*args)
        refused[name] = str(error.value)
    huge = "x" * 100_000_000
    with pytest.raises(ValueError, match=r"over BLUEQUE\['MAX_PARAMETERS'\]") as error:
        recovery_tasks.run_for.enqueue(huge)  # type: ignore[arg-type]  # refused before it could run
    refused["100 MB"] = str(error.value)
    settings.BLUEQUE = {**settings.BLUEQUE, "MAX_PARAMETERS": 200_000_000}
    accepted = recovery_tasks.run_for.enqueue(huge).id  # type: ignore[arg-type]  # a larger limit lets it through
    blueque.redis.delete(keys.task(accepted))
    blueque.redis.lrem(keys.pending("default"), 1, accepted)
    del huge

    # The sneaky module is importable by the worker: only the rule keeps it out.
    worker = spawn("default", "--concurrency", "2", "--mode", "prefork", extra_path=[str(OUTSIDE)])
    wait_for(lambda: set(statuses(blueque, list(bad.values()))) == {"failed"}, 60, "every bad task to fail")
    good += [recovery_tasks.run_for.enqueue(0.05).id for _ in range(5)]
    wait_until_complete(blueque, good, 60, journal)
    errors = {name: blueque.get_task(task_id).error or "" for name, task_id in bad.items()}
    record(
        Row(
            scenario="11. bad data in Redis and at enqueue",
            tasks=len(bad) + len(good),
            faults=len(bad) + len(refused),
            lost=sum(status != "complete" for status in statuses(blueque, good)),
            overlapping=0,
            extra_runs=0,
            wall=time.monotonic() - started_at,
            note=f"{len(bad)} bad tasks failed alone, {len(refused)} enqueues refused; nothing unregistered ran",
        )
    )
    assert not sneaky_mark.exists(), "a task path read from Redis imported a module outside the project"
    assert not pickle_mark.exists(), "a pickle read from Redis was loaded"
    assert "neither loaded nor part of the project" in errors["a module outside the project"]
    assert "is not a Django task" in errors["a plain function"]
    assert "do not describe a Django task" in errors["a pickle"]
    assert "not valid UTF-8" in errors["a raw pickle"] and "not valid UTF-8" in errors["parameters not UTF-8"]
    assert "attempt" in errors["an attempt that is no number"]
    assert worker.poll() is None
    assert_clean(blueque, good, journal)
    raw.close()
