"""When the support line is open: Moscow hours on the Russian production calendar.

Pure: every answer is computed from the calendar and the moment passed in. The server's
own time zone never matters; naive datetimes are refused rather than guessed at.

A day is open when it is a working day of the Russian production calendar (the ``holidays``
package: public holidays, transferred days off, Saturdays moved to working days) or of the
configured overrides. A pre-holiday day closes one hour early (Labour Code art. 95): a working
day followed by a public holiday, or a weekend day moved to a working day whose run of days
off that follows holds a public holiday. ``extra_short`` adds days the rule misses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

MOSCOW = "Europe/Moscow"
_SUBSTITUTED = "Day off"  # the package's en_US name for a transferred day off
_SEARCH_DAYS = 400
_LOAD_LOCK = threading.Lock()

Hours = tuple[time, time]


def _weekdays(hours: Hours) -> dict[int, Hours | None]:
    return {day: (hours if day < 5 else None) for day in range(7)}


@dataclass(frozen=True)
class SupportCalendar:
    """The line's hours: per-weekday opening times plus the production calendar."""

    timezone: str = MOSCOW
    default_hours: Hours = (time(9), time(17))
    weekly: Mapping[int, Hours | None] = field(
        default_factory=lambda: _weekdays((time(9), time(17)))
    )
    pre_holiday_shortening: timedelta = timedelta(hours=1)
    extra_closed: frozenset[date] = frozenset()
    extra_working: frozenset[date] = frozenset()
    extra_short: frozenset[date] = frozenset()
    country: str = "RU"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class LineStatus:
    """Whether the line is open at a moment, and when that changes."""

    is_open: bool
    closes_at: datetime | None
    next_opening: datetime | None


def opening_on(calendar: SupportCalendar, day: date) -> tuple[datetime, datetime] | None:
    """Return the local opening and closing moments on ``day``, or None if closed all day."""
    hours = _hours_on(calendar, day)
    if hours is None:
        return None
    opens, closes = hours
    zone = calendar.zone
    start = datetime.combine(day, opens, zone)
    end = datetime.combine(day, closes, zone)
    if is_pre_holiday(calendar, day):
        end -= calendar.pre_holiday_shortening
    return (start, end) if end > start else None


def line_status(calendar: SupportCalendar, at: datetime) -> LineStatus:
    """Tell whether the line is open at ``at`` and when it next closes or opens."""
    local = _localize(calendar, at)
    today = opening_on(calendar, local.date())
    if today is not None and today[0] <= local < today[1]:
        return LineStatus(True, today[1], None)
    return LineStatus(False, None, next_opening(calendar, at))


def is_open(calendar: SupportCalendar, at: datetime) -> bool:
    """Return True when the line takes calls at ``at`` (closing time itself is closed)."""
    return line_status(calendar, at).is_open


def next_opening(calendar: SupportCalendar, at: datetime) -> datetime | None:
    """Return the first opening moment at or after ``at`` (None if none within a year)."""
    local = _localize(calendar, at)
    for offset in range(_SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        window = opening_on(calendar, day)
        if window is None:
            continue
        if local < window[0]:
            return window[0]
        if local < window[1]:
            return local
    return None


def closed_early(calendar: SupportCalendar, at: datetime) -> datetime | None:
    """Return when a short pre-holiday day closed, if ``at`` falls after it on that day."""
    local = _localize(calendar, at)
    today = opening_on(calendar, local.date())
    if today is None or local < today[1] or not is_pre_holiday(calendar, local.date()):
        return None
    return today[1]


def is_working_day(calendar: SupportCalendar, day: date) -> bool:
    """Return True when ``day`` is a working day of the line."""
    return _hours_on(calendar, day) is not None


def is_pre_holiday(calendar: SupportCalendar, day: date) -> bool:
    """Return True when ``day`` is a shortened pre-holiday working day."""
    if day in calendar.extra_short:
        return True
    if calendar.pre_holiday_shortening <= timedelta(0) or day in calendar.extra_closed:
        return False
    production = _production_calendar(calendar.country, day.year)
    tomorrow = day + timedelta(days=1)
    if _is_public_holiday(production, tomorrow):
        return production.is_working_day(day) or day in calendar.extra_working
    if day in _weekend_workdays(production, day.year):
        return any(_is_public_holiday(production, d) for d in _days_off_after(production, day))
    return False


def _hours_on(calendar: SupportCalendar, day: date) -> Hours | None:
    if day in calendar.extra_closed:
        return None
    weekly = calendar.weekly.get(day.weekday())
    if day in calendar.extra_working:
        return weekly or calendar.default_hours
    production = _production_calendar(calendar.country, day.year)
    if day in production:
        return None
    if day in _weekend_workdays(production, day.year):
        return weekly or calendar.default_hours
    return weekly


def _localize(calendar: SupportCalendar, at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a moment must carry its time zone; naive datetimes are ambiguous")
    return at.astimezone(calendar.zone)


def _is_public_holiday(production: holidays.HolidayBase, day: date) -> bool:
    names = production.get_list(day)
    return any(not name.startswith(_SUBSTITUTED) for name in names)


def _days_off_after(production: holidays.HolidayBase, day: date) -> Iterable[date]:
    current = day + timedelta(days=1)
    while not production.is_working_day(current):
        yield current
        current += timedelta(days=1)


def _weekend_workdays(production: holidays.HolidayBase, year: int) -> frozenset[date]:
    return frozenset(getattr(production, "weekend_workdays", ()))


def _production_calendar(country: str, year: int) -> holidays.HolidayBase:
    """Return the country's calendar with ``year`` and its neighbours loaded.

    The package fills years lazily on first access, which is not safe from many FastAGI
    threads at once; years are loaded here, under a lock, before anyone reads them.
    """
    production = _calendar_for(country)
    wanted = {year - 1, year, year + 1}
    if not wanted <= production.years:
        with _LOAD_LOCK:
            for missing in sorted(wanted - production.years):
                production.get(date(missing, 1, 1))
    return production


_CALENDARS: dict[str, holidays.HolidayBase] = {}


def _calendar_for(country: str) -> holidays.HolidayBase:
    # Built once, under the lock: calls arriving together on a cold server would each
    # build it otherwise (tens of milliseconds apiece).
    production = _CALENDARS.get(country)
    if production is None:
        with _LOAD_LOCK:
            production = _CALENDARS.get(country)
            if production is None:
                production = holidays.country_holidays(country, language="en_US")
                _CALENDARS[country] = production
    return production


def warm_up(calendar: SupportCalendar, at: date) -> None:
    """Load the production calendar around ``at`` before the first caller needs it."""
    _production_calendar(calendar.country, at.year)
