"""Cron expressions (five fields) evaluated in a time zone.

``minute hour day-of-month month day-of-week``, each ``*``, a number, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma-separated list of those;
months and weekdays may be named (``jan``, ``mon``); Sunday is 0 or 7; also
``L`` (the last day of the month) and ``mon#2`` (the second Monday). As in
Vixie cron, when neither day field starts with ``*`` a day matches either.

Parsing and stepping are cronsim's (the parser of Healthchecks.io), chosen
over croniter because it has no dependencies, iterates backwards as well as
forwards (the scheduler asks for the latest occurrence at or before now), and
tests its behaviour across daylight-saving changes.

Times are wall-clock times in the given zone: an occurrence that falls in a
daylight-saving gap does not happen, and one in a repeated hour happens once,
the first time. cronsim follows Debian cron there instead (a time in the gap
runs at the first moment after it, a wildcard hour runs in both passes of a
repeated one), so :meth:`Cron.next` and :meth:`Cron.previous` skip the
occurrences whose wall time is not one of the expression's and the second
pass of a repeated hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice

from cronsim import CronSim, CronSimError

#: Occurrences looked at before giving up; only daylight-saving changes are skipped.
SEARCH_LIMIT = 10_000


class CronError(ValueError):
    """A malformed cron expression."""


@dataclass(frozen=True)
class Cron:
    """A checked cron expression; :meth:`parse` refuses a malformed one with :class:`CronError`."""

    expression: str

    @classmethod
    def parse(cls, expression: str) -> Cron:
        fields = expression.split()
        if len(fields) != 5:
            raise CronError(f"A cron expression has five fields, not {len(fields)}: {expression!r}")
        try:
            CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise CronError(f"Cannot read {expression!r}: {exc}") from None
        return cls(expression)

    def previous(self, moment: datetime, zone: tzinfo) -> datetime | None:
        """The latest occurrence at or before ``moment`` (aware), in UTC; None if there is none."""
        # cronsim steps back from strictly before its start, to whole seconds.
        start = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        return self._first(CronSim(self.expression, start.astimezone(zone), reverse=True))

    def next(self, moment: datetime, zone: tzinfo) -> datetime | None:
        """The earliest occurrence strictly after ``moment`` (aware), in UTC; None if there is none."""
        return self._first(CronSim(self.expression, moment.astimezone(zone)))

    @staticmethod
    def _first(occurrences: CronSim) -> datetime | None:
        for occurrence in islice(occurrences, SEARCH_LIMIT):
            # The second pass of a repeated hour (fold 1), or a time cronsim moved out of a gap.
            if (
                occurrence.fold == 0
                and occurrence.hour in occurrences.hours
                and occurrence.minute in occurrences.minutes
            ):
                return occurrence.astimezone(UTC)
        return None
