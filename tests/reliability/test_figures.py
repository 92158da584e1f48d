"""The table of figures that ``make reliability`` writes into docs/reliability.md."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from tests.reliability.figures import BEGIN, END, Row, nearest_rank, write


def test_the_table_replaces_what_stood_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "reliability.md"
    page.write_text(f"# Title\n\nBefore.\n\n{BEGIN}\nold figures\n{END}\n\nAfter.\n")
    report = tmp_path / "report.jsonl"
    rows = [
        Row("1. kills", 10_000, 42, 0, 0, 17, recovery=[2.0, 2.5, 3.0], wall=900.4, note="T = 2 s"),
        Row("7. outage", 60, 3, 0, 0, 0),
    ]
    report.write_text("".join(json.dumps(asdict(row)) + "\n" for row in rows))
    write(report, page)
    text = page.read_text()
    assert text.startswith("# Title\n\nBefore.\n\n") and text.endswith("\n\nAfter.\n")
    assert "old figures" not in text
    assert "| 1. kills | 10,000 | 42 | 0 | 0 | 17 | 2.50 | 3.00 | 900 | T = 2 s |" in text
    assert "| 7. outage | 60 | 3 | 0 | 0 | 0 | - | - | 0 |  |" in text
    write(tmp_path / "missing.jsonl", page)  # a run that recorded nothing says so
    assert "No scenario recorded figures" in page.read_text()


def test_nearest_rank() -> None:
    assert nearest_rank([3.0, 1.0, 2.0], 0.5) == 2.0
    assert nearest_rank([float(i) for i in range(1, 101)], 0.99) == 99.0
