"""Three ``manage.py blueque_scheduler`` processes, one kill -9'd every 2 s (round robin) and
started again at once, for a minute or so each: 5,000 tasks due over 30 s are each moved to
pending exactly once, and a periodic task due every second runs once per occurrence, with no
gap, for 60 s. The same checks as ``tests/workers/test_scheduler_processes.py``, run long
enough for dozens of kills. The lateness of each move and run is printed, not asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from django_blueque.protocol import Client
from tests.slow.figures import milliseconds
from tests.workers.schedulers import PERIODIC_SETTINGS, Fleet, SpawnScheduler, move_scheduled, run_periodic

pytestmark = pytest.mark.slow

TASKS, SPAN = 5_000, 30.0
PERIODIC_SECONDS = 60.0


def show(what: str, lateness: list[float], fleet: Fleet) -> None:
    print(f"\n{what}: lateness {milliseconds(lateness)}; {fleet.kills} kills")


def test_thousands_of_scheduled_tasks_move_exactly_once_under_repeated_kills(
    redis_url: str, spawn_scheduler: SpawnScheduler, tmp_path: Path
) -> None:
    client = Client(redis_url)
    fleet = Fleet(spawn_scheduler, "testproject.settings", tmp_path)
    # Writing 5,000 takes a few seconds: none may be written after its ETA.
    lateness = move_scheduled(client, fleet, count=TASKS, span=SPAN, lead=8)
    assert fleet.kills >= SPAN / fleet.kill_every / 2
    show(f"{TASKS} scheduled tasks over {SPAN:g} s", lateness, fleet)
    client.close()


def test_a_periodic_task_runs_once_per_occurrence_for_a_minute_of_kills(
    redis_url: str, spawn_scheduler: SpawnScheduler, tmp_path: Path
) -> None:
    client = Client(redis_url)
    fleet = Fleet(spawn_scheduler, PERIODIC_SETTINGS, tmp_path)
    lateness = run_periodic(client, fleet, seconds=PERIODIC_SECONDS)
    assert fleet.kills >= PERIODIC_SECONDS / fleet.kill_every / 2
    show(f"{len(lateness)} periodic runs in {PERIODIC_SECONDS:g} s", lateness, fleet)
    client.close()
