"""Process titles, so ``ps`` and ``top`` show what a worker process is doing."""

from __future__ import annotations

import os

try:
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # optional: without it only the short name (comm) changes
    _setproctitle = None


_current: tuple[int, str] | None = None
#: This process's ``/proc/self/comm``, open for writing: a worker sets a
#: title per task, and an open file costs one system call per title where
#: opening it each time costs three. By pid: a forked child must open its own.
_comm: tuple[int, int] | None = None


def set_title(title: str) -> None:
    """Set this process's title (full with ``setproctitle`` installed, else its 15-character name).

    A title the process has already is not set again: a runner sets its own
    on every turn of its loop.
    """
    global _current
    pid = os.getpid()
    if _current == (pid, title):
        return
    _current = (pid, title)
    if _setproctitle is not None:
        _setproctitle(title)
        return
    _set_comm(pid, title[:15])


def _set_comm(pid: int, name: str) -> None:
    global _comm
    try:
        if _comm is None or _comm[0] != pid:
            _comm = (pid, os.open("/proc/self/comm", os.O_WRONLY | os.O_CLOEXEC))
        os.write(_comm[1], name.encode(errors="replace"))  # procfs ignores the offset
    except OSError:
        pass
