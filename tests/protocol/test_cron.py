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
        # A day field that starts with "*" is unrestricted: both must match (odd days that are Fridays).
        ("0 12 */2 * 5", at(2026, 11, 14), at(2026, 11, 13, 12), at(2026, 11, 27, 12)),
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


def test_a_time_in_the_spring_gap_does_not_happen() -> None:
    # 2026-03-29: clocks in Paris jump from 02:00 to 03:00.
    assert Cron.parse("30 2 * * *").next(at(2026, 3, 29, 1, 0, zone=PARIS), PARIS) == at(2026, 3, 30, 2, 30, zone=PARIS)
    assert Cron.parse("30 2 * * *").previous(at(2026, 3, 29, 23, 0, zone=PARIS), PARIS) == at(
        2026, 3, 28, 2, 30, zone=PARIS
    )
    hourly = Cron.parse("0 * * * *")
    assert hourly.next(at(2026, 3, 29, 1, 30, zone=PARIS), PARIS) == at(2026, 3, 29, 1, 0)  # 03:00 CEST


def test_a_repeated_hour_happens_once() -> None:
    # 2026-10-25: clocks in Paris go back from 03:00 to 02:00; 02:00-02:59 comes twice.
    hourly = Cron.parse("0 * * * *")
    first_pass = at(2026, 10, 25, 0, 0)  # 02:00 CEST
    assert hourly.next(at(2026, 10, 24, 23, 30), PARIS) == first_pass
    assert hourly.next(first_pass, PARIS) == at(2026, 10, 25, 2, 0)  # 03:00 CET: not 02:00 CET
    assert hourly.previous(at(2026, 10, 25, 1, 30), PARIS) == first_pass  # in the second pass
    daily = Cron.parse("30 2 * * *")
    assert daily.next(at(2026, 10, 25, 0, 45), PARIS) == at(2026, 10, 26, 1, 30)  # the next day, 02:30 CET


def test_cronsims_extensions_are_accepted() -> None:
    assert Cron.parse("0 0 L * *").previous(at(2026, 3, 15), UTC) == at(2026, 2, 28)
    assert Cron.parse("0 9 * * mon#2").next(at(2026, 12, 1), UTC) == at(2026, 12, 14, 9, 0)


def test_a_previous_from_the_middle_of_a_second() -> None:
    assert Cron.parse("* * * * *").previous(at(2026, 1, 1, 12, 31).replace(microsecond=500), UTC) == at(
        2026, 1, 1, 12, 31
    )


@pytest.mark.parametrize(
    "bad",
    ["* * * *", "0 * * * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "x * * * *", "5-1 * * * *", "0 0 30 2 *"],
)
def test_bad_expressions(bad: str) -> None:
    with pytest.raises(CronError):
        Cron.parse(bad)
