"""Cron expressions (five fields) evaluated in a time zone.

``minute hour day-of-month month day-of-week``, each ``*``, a number, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma-separated list of those;
months and weekdays may be named (``jan``, ``mon``); Sunday is 0 or 7. As in
Vixie cron, when both day fields are restricted a day matches either.
Times are wall-clock times in the given zone: an occurrence that falls in a
daylight-saving gap does not happen, one in a repeated hour happens once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

MONTHS = dict(
    zip(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], range(1, 13), strict=True)
)
WEEKDAYS = dict(zip(["sun", "mon", "tue", "wed", "thu", "fri", "sat"], range(7), strict=True))
#: How far back or ahead to look for an occurrence before giving up.
SEARCH_DAYS = 366 * 8


class CronError(ValueError):
    """A malformed cron expression."""


def _field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    def number(token: str) -> int:
        return names[token] if token in names else int(token)

    values: set[int] = set()
    for part in text.lower().split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                first, last = body.split("-", 1)
                start, end = number(first), number(last)
            else:
                start = number(body)
                end = high if step_text else start
        except (ValueError, KeyError):
            raise CronError(f"Cannot read {part!r}") from None
        if step < 1 or not low <= start <= end <= high:
            raise CronError(f"{part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool
    expression: str

    @classmethod
    def parse(cls, expression: str) -> Cron:
        fields = expression.split()
        if len(fields) != 5:
            raise CronError(f"A cron expression has five fields, not {len(fields)}: {expression!r}")
        minute, hour, day, month, weekday = fields
        weekdays = _field(weekday, 0, 7, WEEKDAYS)
        return cls(
            minutes=_field(minute, 0, 59, {}),
            hours=_field(hour, 0, 23, {}),
            days=_field(day, 1, 31, {}),
            months=_field(month, 1, 12, MONTHS),
            weekdays=frozenset(d % 7 for d in weekdays),
            days_restricted=day != "*",
            weekdays_restricted=weekday != "*",
            expression=expression,
        )

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def _times_on(self, day: datetime, zone: tzinfo) -> list[datetime]:
        """The occurrences on one local calendar day, in order, in UTC."""
        found = []
        for hour in sorted(self.hours):
            for minute in sorted(self.minutes):
                local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                moment = local.astimezone(UTC)
                # A wall time in a daylight-saving gap does not come back from UTC unchanged.
                if moment.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
                    found.append(moment)
        return found

    def previous(self, moment: datetime, zone: tzinfo) -> datetime | None:
        """The latest occurrence at or before ``moment`` (aware), in UTC; None within the search window."""
        return self._search(moment, zone, step=-1)

    def next(self, moment: datetime, zone: tzinfo) -> datetime | None:
        """The earliest occurrence strictly after ``moment`` (aware), in UTC; None within the search window."""
        return self._search(moment, zone, step=1)

    def _search(self, moment: datetime, zone: tzinfo, step: int) -> datetime | None:
        """Walk local calendar days from ``moment``'s, backwards (``step`` -1) or forwards (1)."""
        moment = moment.astimezone(UTC)
        local = moment.astimezone(zone)
        day = datetime(local.year, local.month, local.day)
        for _ in range(SEARCH_DAYS):
            if self._day_matches(day):
                times = self._times_on(day, zone)
                if step < 0:
                    earlier = [t for t in times if t <= moment]
                    if earlier:
                        return earlier[-1]
                else:
                    later = [t for t in times if t > moment]
                    if later:
                        return later[0]
            day += timedelta(days=step)
        return None
