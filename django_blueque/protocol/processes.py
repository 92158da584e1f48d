"""Processes on this host: is one still running (by pid, and by start time against pid reuse), and how one ended."""

from __future__ import annotations

import os
import signal


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_token(pid: int) -> str:
    """What tells process ``pid`` from a later process given the same pid.

    On Linux, its start time in clock ticks since boot (from ``/proc``); ``""``
    where that cannot be read.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name (field 2) may hold spaces: count from its end.
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def process_alive(pid: str | None, token: str | None) -> bool:
    """Whether the process that started a task still runs on this host (pid and token agree)."""
    if not pid or not pid.isdigit() or not pid_alive(int(pid)):
        return False
    return not token or process_token(int(pid)) == token


def describe_status(status: int) -> str:
    """A wait status (from ``os.waitpid``) for people: ``exited with status 1``, ``killed by SIGKILL``."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else f"signal {number}"
        return f"killed by {name}"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    return f"ended with wait status {status}"
