"""The figures of the reliability suite: one row per scenario, and docs/reliability.md's table.

Each scenario calls :func:`record` with what it measured. The row is printed
(``pytest -s`` shows it) and, when ``BLUEQUE_RELIABILITY_REPORT`` names a
file, appended to it as a JSON line. ``make reliability`` runs the suite at
full size with that file set, then ``python -m tests.reliability.figures
REPORT docs/reliability.md`` writes the table between the markers of the
page, with the machine it ran on.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPORT_ENV = "BLUEQUE_RELIABILITY_REPORT"
#: ``full`` runs each scenario at the size docs/reliability.md gives; otherwise a short version.
SIZE_ENV = "BLUEQUE_RELIABILITY"
BEGIN, END = "<!-- figures: begin -->", "<!-- figures: end -->"


def full_size() -> bool:
    return os.environ.get(SIZE_ENV) == "full"


def nearest_rank(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Row:
    scenario: str
    tasks: int
    faults: int
    lost: int
    overlapping: int
    extra_runs: int
    #: Seconds from each fault to the start of the run that took over, where a run was cut short.
    recovery: list[float] = field(default_factory=list)
    wall: float = 0.0
    #: What else the scenario wants said, in a few words.
    note: str = ""

    def cells(self) -> list[str]:
        def seconds(value: float) -> str:
            return "-" if math.isnan(value) else f"{value:.2f}"

        return [
            self.scenario,
            f"{self.tasks:,}",
            f"{self.faults:,}",
            str(self.lost),
            str(self.overlapping),
            str(self.extra_runs),
            seconds(nearest_rank(self.recovery, 0.5)),
            seconds(nearest_rank(self.recovery, 0.99)),
            f"{self.wall:.0f}",
            self.note,
        ]


HEADER = [
    "scenario",
    "tasks",
    "faults",
    "lost",
    "overlapping runs",
    "extra runs",
    "recovery median s",
    "recovery p99 s",
    "wall s",
    "note",
]


def record(row: Row) -> None:
    cells = dict(zip(HEADER, row.cells(), strict=True))
    print("reliability: " + "; ".join(f"{name} {value}" for name, value in cells.items() if value))
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a") as report:
            report.write(json.dumps(asdict(row)) + "\n")


def number(row: Row) -> int:
    """The scenario's number, for the table's order."""
    head = row.scenario.partition(".")[0]
    return int(head) if head.isdigit() else 0


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in sorted(rows, key=number)]
    return "\n".join(lines)


def machine() -> str:
    try:
        said = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=True).stdout
        version = said.split("v=", 1)[1].split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        version = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        measured = f" (django-blueque at {commit.stdout.strip()})"
    except (OSError, subprocess.CalledProcessError):
        measured = ""
    return (
        f"Measured {time.strftime('%Y-%m-%d')}{measured} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPU(s), Python {platform.python_version()}, Redis {version}."
    )


def write(report: Path, page: Path) -> None:
    lines = report.read_text().splitlines() if report.exists() else []
    rows = [Row(**json.loads(line)) for line in lines if line.strip()]
    text = page.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    figures = table(rows) if rows else "No scenario recorded figures: see the output of `make reliability`."
    block = f"{BEGIN}\n{machine()}\n\n{figures}\n{END}"
    page.write_text(head + block + tail)


if __name__ == "__main__":
    write(Path(sys.argv[1]), Path(sys.argv[2]))
