"""Figures the slow tests print (run them with ``-s`` to see them); never asserted."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def milliseconds(seconds: Sequence[float]) -> str:
    """ "median, p99 (nearest rank: with under 100 values, the max) and max", in ms."""
    ordered = sorted(seconds)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return (
        f"median {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
