"""The management commands as a user runs them: bad option values are argparse's one-line
usage errors (exit status 2, no traceback), and every option says what it does and its default."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import load_command_class

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "testproject" / "manage.py"
COMMANDS = ["blueque_worker", "blueque_monitor", "blueque_scheduler", "blueque_run", "blueque_status", "blueque_tasks"]
#: Django's own options of every command.
DJANGO_OPTIONS = {"help", "version", "verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color"}
DJANGO_OPTIONS |= {"skip_checks"}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["blueque_worker", "--concurrency", "0"], "argument --concurrency: expected a whole number > 0, not '0'"),
        (["blueque_worker", "--grace", "-1"], "argument --grace: expected a number > 0, not '-1'"),
        (["blueque_worker", "--max-tasks", "2.5"], "argument --max-tasks: expected a whole number > 0, not '2.5'"),
        (["blueque_monitor", "--interval", "abc"], "argument --interval: expected a number > 0, not 'abc'"),
        (["blueque_scheduler", "--interval", "inf"], "argument --interval: expected a number > 0, not 'inf'"),
        (["blueque_run", "--concurrency", "x"], "argument --concurrency: expected a whole number > 0, not 'x'"),
        (["blueque_status", "--watch", "0"], "argument --watch: expected a number > 0, not '0'"),
        (
            ["blueque_tasks", "retry", "--all", "--queue", "q", "--batch", "0"],
            "argument --batch: expected a whole number > 0, not '0'",
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_bad_option_value_is_a_one_line_usage_error(redis_url: str, args: list[str], error: str) -> None:
    done = subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), "BLUEQUE_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(f"error: {error}")
    assert done.stderr.startswith("usage: manage.py ")


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(f"{name} {label}", sub_action) for label, sub_action in _options(sub)]
        elif action.dest not in DJANGO_OPTIONS:
            found.append((action.option_strings[0] if action.option_strings else action.dest, action))
    return found


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_with_its_default(name: str) -> None:
    parser = load_command_class("django_blueque", name).create_parser("manage.py", name)
    for label, action in _options(parser):
        assert action.help, f"{name} {label} has no help"
        if action.default not in (None, False, argparse.SUPPRESS, []) and action.option_strings:
            assert "default" in action.help, f"{name} {label}: its help does not give its default"


def run(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), "BLUEQUE_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["blueque_worker", "blueque_monitor", "blueque_scheduler", "blueque_run"])
def test_a_queue_not_in_the_settings_is_refused_with_the_known_ones(redis_url: str, command: str) -> None:
    done = run(redis_url, command, "default", "reprots", "--burst" if command != "blueque_run" else "--mode=fork")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "CommandError: Unknown queue 'reprots': BLUEQUE['QUEUES'] has default, raw, slow; "
        "pass --allow-unknown-queues to serve it anyway"
    )


@pytest.mark.parametrize("command", ["blueque_worker", "blueque_monitor", "blueque_scheduler"])
def test_a_queue_not_in_the_settings_is_served_when_allowed(redis_url: str, command: str) -> None:
    done = run(redis_url, command, "legacy", "--allow-unknown-queues", "--burst")
    assert done.returncode == 0, done.stderr
