"""The manual's reference pages against the code: every setting, backend option, command option and signal.

A setting, option or signal added without its line in docs/ fails here, and so
does a line left behind for one that is gone. The check ids have their own
test in test_checks.py.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import BaseCommand
from django.dispatch import Signal

from django_blueque import signals
from django_blueque.backends import BluequeBackend
from django_blueque.protocol import Client
from django_blueque.validation import KNOWN_KEYS, QUEUE_KEYS
from tests.django import tasks as test_tasks
from tests.django.test_retry import run_until_done

DOCS = Path(__file__).resolve().parents[2] / "docs"
COMMANDS = ["blueque_worker", "blueque_scheduler", "blueque_monitor", "blueque_run", "blueque_status", "blueque_tasks"]


def table_keys(text: str, header: str) -> list[str]:
    """The first column's code spans of the Markdown table that starts with ``header``."""
    rows = text[text.index(header) :].split("\n\n", 1)[0].splitlines()[2:]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]


def section(text: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next heading of that level."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_every_setting_is_documented_once_with_its_type() -> None:
    keys = table_keys((DOCS / "settings.md").read_text(), "| Key | Type | Default | Meaning |")
    assert len(keys) == len(set(keys))
    queue_options = {key for key in keys if key.startswith("QUEUES[name]")}
    assert set(keys) - queue_options == set(KNOWN_KEYS)
    assert queue_options == {f'QUEUES[name]["{option}"]' for option in QUEUE_KEYS}


def test_every_backend_option_is_documented_once() -> None:
    options = table_keys((DOCS / "settings.md").read_text(), "| Option | Type | Default | Meaning |")
    assert sorted(options) == sorted(BluequeBackend.KNOWN_OPTIONS)


def own_options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Each command line option the app adds (Django's own are documented once, at the top), by subparser."""
    django_own = {
        option for action in BaseCommand().create_parser("manage.py", "x")._actions for option in action.option_strings
    }
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                yield from own_options(subparser)
        for option in action.option_strings:
            if option not in django_own:
                yield option, parser


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_option_is_documented_in_its_section(name: str) -> None:
    parser = load_command_class("django_blueque", name).create_parser("manage.py", name)
    text = section((DOCS / "commands.md").read_text(), f"`{name}`")
    in_code = {option for option, _ in own_options(parser)}
    documented = set(re.findall(r"^\| `(--[a-z-]+)", text, re.M))
    assert documented == in_code, f"docs/commands.md, section {name}"
    synopsis = text.split("```")[1]
    for option in in_code:
        assert re.search(rf"{re.escape(option)}\b", synopsis), f"{option} is missing from {name}'s synopsis"


def test_the_commands_page_has_a_section_for_each_command_and_no_other() -> None:
    headings = re.findall(r"^## `(blueque_[a-z_]+)`$", (DOCS / "commands.md").read_text(), re.M)
    assert headings == COMMANDS


def test_every_signal_is_documented_with_its_arguments() -> None:
    in_code = {name for name, value in vars(signals).items() if isinstance(value, Signal)}
    text = (DOCS / "signals.md").read_text()
    assert set(re.findall(r"^## `(task_[a-z]+)`$", text, re.M)) == in_code
    summary = table_keys(text, "| Signal | Sender | Keyword arguments | Sent when |")
    assert sorted(summary) == sorted(in_code)
    for name in in_code:
        documented_kwargs = re.findall(r"^- `([a-z_]+)`:", section(text, f"`{name}`"), re.M)
        assert documented_kwargs and "task" in documented_kwargs, name


def test_the_signals_send_the_documented_arguments(blueque: Client) -> None:
    sent: dict[str, set[str]] = {}

    def receiver(signal: Signal, sender: str, **kwargs: Any) -> None:
        name = next(name for name, value in vars(signals).items() if value is signal)
        sent.setdefault(name, set()).update(kwargs)

    test_tasks.flaky.enqueue(succeed_on=2)  # retried once, then completes
    test_tasks.flaky.enqueue(succeed_on=10)  # retried, then fails for good
    run_until_done(blueque)
    connected = [signal for signal in vars(signals).values() if isinstance(signal, Signal)]
    for signal in connected:
        signal.connect(receiver)
    try:
        call_command("blueque_monitor", "--burst")
    finally:
        for signal in connected:
            signal.disconnect(receiver)
    text = (DOCS / "signals.md").read_text()
    documented = {name: set(re.findall(r"^- `([a-z_]+)`:", section(text, f"`{name}`"), re.M)) for name in sent}
    assert set(sent) == {"task_completed", "task_failed", "task_retrying"}
    assert sent == documented
