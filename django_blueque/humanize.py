"""How long ago, or how long, for people: the status command's and the admin's durations."""

from __future__ import annotations


def age(seconds: float | None) -> str:
    """``42s``, ``15m``, ``3.5h``, ``2.1d``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
