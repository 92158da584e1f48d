from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from django_blueque.protocol.cron import Cron, CronError

PARIS = ZoneInfo("Europe/Paris")


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, zone: ZoneInfo | None = None
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone or UTC)


@pytest.mark.parametrize(
    ("expression", "moment", "previous", "following"),
    [
        ("* * * * *", at(2026, 1, 1, 12, 30, 15), at(2026, 1, 1, 12, 30), at(2026, 1, 1, 12, 31)),
        ("*/15 * * * *", at(2026, 1, 1, 12, 31), at(2026, 1, 1, 12, 30), at(2026, 1, 1, 12, 45)),
        ("0 3 * * *", at(2026, 1, 1, 2, 59), at(2025, 12, 31, 3, 0), at(2026, 1, 1, 3, 0)),
        ("0 9 * * mon-fri", at(2026, 11, 28, 12, 0), at(2026, 11, 27, 9, 0), at(2026, 11, 30, 9, 0)),
        ("30 8 1 jan,jul *", at(2026, 3, 1), at(2026, 1, 1, 8, 30), at(2026, 7, 1, 8, 30)),
        ("0 0 29 2 *", at(2026, 3, 1), at(2024, 2, 29), at(2028, 2, 29)),
        # Both day fields restricted: either matches (the 13th, or any Friday).
        ("0 12 13 * 5", at(2026, 11, 14), at(2026, 11, 13, 12), at(2026, 11, 20, 12)),
        ("0 12 * * 7", at(2026, 11, 29, 13), at(2026, 11, 29, 12), at(2026, 12, 6, 12)),
    ],
)
def test_previous_and_next(expression: str, moment: datetime, previous: datetime, following: datetime) -> None:
    cron = Cron.parse(expression)
    assert cron.previous(moment, UTC) == previous
    assert cron.next(moment, UTC) == following


def test_an_exact_occurrence_is_its_own_previous() -> None:
    assert Cron.parse("0 * * * *").previous(at(2026, 1, 1, 5), UTC) == at(2026, 1, 1, 5)


def test_wall_clock_in_a_time_zone_across_daylight_saving() -> None:
    cron = Cron.parse("30 2 * * *")
    # 2026-03-29: clocks in Paris jump from 02:00 to 03:00; 02:30 does not exist that day.
    assert cron.next(at(2026, 3, 28, 3, 0, zone=PARIS), PARIS) == at(2026, 3, 30, 2, 30, zone=PARIS)
    daily_9 = Cron.parse("0 9 * * *")
    assert daily_9.next(at(2026, 1, 1, 0, 0), PARIS) == at(2026, 1, 1, 8, 0)  # 09:00 CET is 08:00 UTC


@pytest.mark.parametrize("bad", ["* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "x * * * *", "5-1 * * * *"])
def test_bad_expressions(bad: str) -> None:
    with pytest.raises(CronError):
        Cron.parse(bad)
