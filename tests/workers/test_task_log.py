"""What a worker's log says of each task: a start and an end line, parseable, and Django's own task lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from django_blueque.protocol import Client
from tests.workers import tasks
from tests.workers.conftest import Spawn


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_a_line_per_task_start_and_end(blueque: Client, spawn_worker: Spawn, tmp_path: Path, mode: str) -> None:
    done = tasks.nap.enqueue(0.1)
    exit_id = tasks.exit_now.enqueue().id
    raw = blueque.get_queue("raw").enqueue("abc")
    assert spawn_worker("--burst", "--mode", mode, "--concurrency", "1").wait(60) == 0
    log = (tmp_path / "worker-0.log").read_text()
    common = f"id={done.id} task=tests.workers.tasks.nap queue=default attempt=1"
    assert f"task started {common}\n" in log
    [finished] = [line for line in log.splitlines() if f"task finished {common} duration=" in line]
    assert finished.endswith(" outcome=complete")
    assert f"task finished id={exit_id} task=tests.workers.tasks.exit_now queue=default attempt=1 duration=" in log
    assert "outcome=failed exception=builtins.SystemExit" in log
    assert f"task started id={raw} task=demo.work.reverse_text queue=raw attempt=1" in log
    # Django's Tasks framework's own lines, as its workers write them.
    assert f"Task id={done.id} path=tests.workers.tasks.nap state=RUNNING" in log
    assert f"Task id={done.id} path=tests.workers.tasks.nap state=SUCCESSFUL" in log


def test_verbosity_2_adds_the_arguments(blueque: Client, spawn_worker: Spawn, tmp_path: Path) -> None:
    done = tasks.nap.enqueue(0.25)
    assert spawn_worker("--burst", "-v", "2").wait(60) == 0
    [started] = [line for line in (tmp_path / "worker-0.log").read_text().splitlines() if "task started" in line]
    assert f"id={done.id}" in started and 'parameters="{\\"django_task\\":' in started and "[0.25]" in started


def test_json_log_lines_carry_the_fields(blueque: Client, spawn_worker: Spawn, tmp_path: Path) -> None:
    done = tasks.nap.enqueue(0.1)
    assert spawn_worker("--burst", "--log-format", "json").wait(60) == 0
    lines = [line for line in (tmp_path / "worker-0.log").read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    [finished] = [r for r in records if r.get("event") == "task_finished"]
    assert (finished["id"], finished["task"], finished["queue"], finished["attempt"], finished["outcome"]) == (
        done.id,
        "tests.workers.tasks.nap",
        "default",
        1,
        "complete",
    )
    assert finished["duration"] >= 0.1 and finished["logger"] == "django_blueque.tasks"
    assert any(r["logger"] in ("django_tasks", "django.tasks") and "state=SUCCESSFUL" in r["message"] for r in records)


@pytest.mark.parametrize(
    ("command", "says"), [("blueque_scheduler", "Scheduler serving"), ("blueque_monitor", "Monitor ")]
)
def test_the_scheduler_and_the_monitor_log_json_too(
    blueque: Client, spawn_worker: Spawn, tmp_path: Path, command: str, says: str
) -> None:
    assert spawn_worker("--burst", "--log-format", "json", command=command).wait(60) == 0
    lines = [line for line in (tmp_path / "worker-0.log").read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line: none is plain text
    assert any(r["message"].startswith(says) and r["logger"] == "django_blueque" for r in records)
