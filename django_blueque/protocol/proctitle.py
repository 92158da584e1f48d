"""Process titles, so ``ps`` and ``top`` show what a worker process is doing."""

from __future__ import annotations

import os

try:
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # optional: without it only the short name (comm) changes
    _setproctitle = None


_current: tuple[int, str] | None = None


def set_title(title: str) -> None:
    """Set this process's title (full with ``setproctitle`` installed, else its 15-character name).

    A title the process has already is not set again: a runner sets its own
    on every turn of its loop.
    """
    global _current
    if _current == (os.getpid(), title):
        return
    _current = (os.getpid(), title)
    if _setproctitle is not None:
        _setproctitle(title)
        return
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(title[:15])
    except OSError:
        pass
