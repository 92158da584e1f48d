"""Three real ``manage.py blueque_scheduler`` processes, one of them kill -9'd every 2 s (round
robin) and started again at once: every due task is moved to pending exactly once, and every
occurrence of a periodic task runs exactly once, with no gap. Behaviour only, no timings. The
checks are in ``tests/workers/schedulers.py``; ``tests/slow/test_scheduler_failover.py`` runs
them far longer."""

from __future__ import annotations

from pathlib import Path

from django_blueque.protocol import Client
from tests.workers.schedulers import PERIODIC_SETTINGS, Fleet, SpawnScheduler, move_scheduled, run_periodic


def test_scheduled_tasks_move_exactly_once_while_schedulers_are_killed(
    redis_url: str, spawn_scheduler: SpawnScheduler, tmp_path: Path
) -> None:
    client = Client(redis_url)
    fleet = Fleet(spawn_scheduler, "testproject.settings", tmp_path)
    # 600 tasks due over 6 s, from 1.5 s from now: three kills while they come due.
    move_scheduled(client, fleet, count=600, span=6, lead=1.5)
    assert fleet.kills >= 3
    client.close()


def test_a_periodic_task_runs_once_per_occurrence_while_schedulers_are_killed(
    redis_url: str, spawn_scheduler: SpawnScheduler, tmp_path: Path
) -> None:
    client = Client(redis_url)
    fleet = Fleet(spawn_scheduler, PERIODIC_SETTINGS, tmp_path)
    run_periodic(client, fleet, seconds=5.5)
    assert fleet.kills >= 2
    client.close()
