"""Process titles, so ``ps`` and ``top`` show what a worker process is doing."""

from __future__ import annotations

try:
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # optional: without it only the short name (comm) changes
    _setproctitle = None


def set_title(title: str) -> None:
    """Set this process's title (full with ``setproctitle`` installed, else its 15-character name)."""
    if _setproctitle is not None:
        _setproctitle(title)
        return
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(title[:15])
    except OSError:
        pass
