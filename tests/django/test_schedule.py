"""BLUEQUE["SCHEDULE"], its check (E014) and ``manage.py blueque_scheduler``."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from django_blueque import payload, schedule
from django_blueque.checks import check_settings
from django_blueque.compat import TaskResultStatus
from django_blueque.protocol import Client
from django_blueque.protocol.cron import Cron
from django_blueque.protocol.scheduler import SKIP, Every
from django_blueque.testing import run_pending_tasks
from tests.django import tasks as test_tasks

ECHO = "tests.django.tasks.echo"


def with_schedule(settings: SettingsWrapper, entries: Any) -> None:
    settings.BLUEQUE = {**settings.BLUEQUE, "SCHEDULE": entries}


@pytest.mark.parametrize(
    "entry",
    [
        "not a dict",
        {"TASK": ECHO},
        {"TASK": ECHO, "CRON": "* * * * *", "EVERY": 5},
        {"TASK": ECHO, "QUEUE": "raw", "PARAMETERS": "x", "EVERY": 5},
        {"QUEUE": "raw", "EVERY": 5},
        {"TASK": ECHO, "CRON": "61 * * * *"},
        {"TASK": ECHO, "EVERY": 0},
        {"TASK": ECHO, "EVERY": 5, "MISSED": "all"},
        {"TASK": ECHO, "EVERY": 5, "ARGS": {"a": 1}},
        {"TASK": ECHO, "EVERY": 5, "ARGS": [object()]},
        {"TASK": "tests.django.tasks.not_a_task", "EVERY": 5},
        {"TASK": ECHO, "EVERY": 5, "EVRY": 5},
    ],
)
def test_bad_entries_are_e014(blueque: Client, settings: SettingsWrapper, entry: Any) -> None:
    with_schedule(settings, {"job": entry})
    assert [message.id for message in check_settings()] == ["django_blueque.E014"]
    with pytest.raises(CommandError, match="E014"):
        call_command("blueque_scheduler", "--burst")


def test_entries_become_periodic_tasks(blueque: Client, settings: SettingsWrapper) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    with_schedule(
        settings,
        {
            "report": {"TASK": ECHO, "ARGS": [1], "KWARGS": {"k": "v"}, "CRON": "0 3 * * mon", "SKIP_IF_RUNNING": True},
            "raw": {"QUEUE": "raw", "PARAMETERS": "hello", "EVERY": 30, "MISSED": "skip"},
        },
    )
    assert schedule.problems() == []
    report, raw = schedule.periodic_tasks()
    assert (report.name, report.queue, report.skip_if_running, str(report.zone)) == (
        "report",
        "default",
        True,
        "Europe/Paris",
    )
    assert report.schedule == Cron.parse("0 3 * * mon")
    data = payload.decode(report.parameters())
    assert (data.task_path, data.args, data.kwargs) == (ECHO, [1], {"k": "v"})
    assert (raw.queue, raw.parameters(), raw.schedule, raw.missed) == ("raw", "hello", Every(30.0), SKIP)


def test_the_scheduler_command_moves_due_tasks(blueque: Client) -> None:
    result = test_tasks.calculate_meaning_of_life.using(run_after=timezone.now() + timedelta(seconds=0.2)).enqueue()
    time.sleep(0.3)
    assert run_pending_tasks() == 0
    call_command("blueque_scheduler", "--burst")
    assert run_pending_tasks() == 1
    assert test_tasks.calculate_meaning_of_life.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_the_scheduler_command_runs_periodic_tasks(blueque: Client, settings: SettingsWrapper) -> None:
    with_schedule(settings, {"echo": {"TASK": ECHO, "ARGS": ["tick"], "EVERY": 0.2}})
    call_command("blueque_scheduler", "--burst")  # first sight: from the next occurrence on
    time.sleep(0.25)
    call_command("blueque_scheduler", "--burst")
    [task_id] = blueque.task_ids("default", "pending")
    assert json.loads(blueque.get_task(task_id).parameters or "")["args"] == ["tick"]
    assert run_pending_tasks() == 1
    assert test_tasks.echo.get_result(task_id).return_value == {"args": ["tick"], "kwargs": {}}


def test_an_interval_of_zero_is_refused(blueque: Client) -> None:
    with pytest.raises(CommandError, match="expected a number > 0"):
        call_command("blueque_scheduler", "--interval", "0")
