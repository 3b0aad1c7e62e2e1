"""Working hours: Moscow time on the Russian production calendar, whatever the server's zone."""

from __future__ import annotations

import os
import subprocess
import sys
import time as clock
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from onerpa.hours import (
    SupportCalendar,
    is_open,
    is_pre_holiday,
    is_working_day,
    line_status,
    next_opening,
    opening_on,
)

MSK = ZoneInfo("Europe/Moscow")
DEFAULT = SupportCalendar()


@pytest.fixture(autouse=True, params=["UTC", "America/New_York", "Asia/Kamchatka"])
def server_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run every test with the process in another time zone: answers must not change."""
    monkeypatch.setenv("TZ", request.param)
    clock.tzset()
    yield request.param
    monkeypatch.undo()
    clock.tzset()


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (msk(2024, 3, 4, 8, 59, 59), False),
        (msk(2024, 3, 4, 9, 0, 0), True),
        (msk(2024, 3, 4, 12, 0, 0), True),
        (msk(2024, 3, 4, 16, 59, 59), True),
        (msk(2024, 3, 4, 17, 0, 0), False),
        (msk(2024, 3, 4, 23, 0, 0), False),
        (msk(2024, 3, 9, 12, 0, 0), False),  # Saturday
        (msk(2024, 3, 10, 12, 0, 0), False),  # Sunday
    ],
)
def test_ordinary_weekday_is_open_from_nine_until_just_before_five(
    moment: datetime, expected: bool
) -> None:
    assert is_open(DEFAULT, moment) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 3, 4, 13, 59, 59, tzinfo=UTC), True),
        (datetime(2024, 3, 4, 14, 0, 0, tzinfo=UTC), False),
        (datetime(2024, 3, 4, 8, 59, 59, tzinfo=ZoneInfo("America/New_York")), True),
        (datetime(2024, 3, 4, 9, 0, 0, tzinfo=ZoneInfo("America/New_York")), False),
        (datetime(2024, 3, 4, 6, 0, 0, tzinfo=UTC), True),
    ],
)
def test_moments_in_other_zones_are_read_as_moscow_time(moment: datetime, expected: bool) -> None:
    assert is_open(DEFAULT, moment) is expected


def test_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        is_open(DEFAULT, datetime(2024, 3, 4, 12, 0))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (msk(2024, 11, 2, 9, 0, 0), True),
        (msk(2024, 11, 2, 15, 59, 59), True),
        (msk(2024, 11, 2, 16, 0, 0), False),  # also a pre-holiday day
        (msk(2024, 12, 28, 10, 0, 0), True),
        (msk(2024, 4, 27, 10, 0, 0), True),
    ],
)
def test_saturday_moved_to_a_working_day_is_open(moment: datetime, expected: bool) -> None:
    assert is_open(DEFAULT, moment) is expected


@pytest.mark.parametrize(
    "day",
    [
        date(2024, 1, 1),
        date(2024, 1, 8),
        date(2024, 2, 23),
        date(2024, 4, 29),  # transferred from Saturday 27 April
        date(2024, 12, 30),
        date(2024, 12, 31),
        date(2025, 1, 8),
        date(2025, 5, 2),
        date(2025, 11, 3),
        date(2026, 1, 9),
    ],
)
def test_public_holidays_and_transferred_days_off_are_closed(day: date) -> None:
    assert is_working_day(DEFAULT, day) is False
    assert opening_on(DEFAULT, day) is None


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (msk(2024, 2, 22, 15, 59, 59), True),
        (msk(2024, 2, 22, 16, 0, 0), False),
        (msk(2025, 2, 21, 16, 30, 0), True),  # 23 Feb 2025 is a Sunday: no shortening
        (msk(2025, 2, 21, 17, 0, 0), False),
    ],
)
def test_pre_holiday_day_closes_an_hour_early(moment: datetime, expected: bool) -> None:
    assert is_open(DEFAULT, moment) is expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2024, 2, 22), True),
        (date(2024, 3, 7), True),
        (date(2024, 5, 8), True),
        (date(2024, 6, 11), True),
        (date(2024, 11, 2), True),
        (date(2025, 2, 21), False),
        (date(2025, 3, 7), True),
        (date(2025, 4, 30), True),
        (date(2025, 5, 7), False),  # 8 May 2025 is a transferred day off, not a holiday
        (date(2025, 6, 11), True),
        (date(2025, 11, 1), True),
        (date(2024, 3, 6), False),
    ],
)
def test_pre_holiday_days_follow_the_production_calendar(day: date, expected: bool) -> None:
    assert is_pre_holiday(DEFAULT, day) is expected


def test_line_status_tells_when_an_open_line_closes() -> None:
    status = line_status(DEFAULT, msk(2024, 2, 22, 10, 0, 0))
    assert status.is_open is True
    assert status.closes_at == msk(2024, 2, 22, 16, 0, 0)
    assert status.next_opening is None


def test_line_status_tells_when_a_closed_line_opens() -> None:
    status = line_status(DEFAULT, msk(2024, 3, 4, 17, 0, 0))
    assert status.is_open is False
    assert status.closes_at is None
    assert status.next_opening == msk(2024, 3, 5, 9, 0, 0)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (msk(2024, 3, 4, 7, 30, 0), msk(2024, 3, 4, 9, 0, 0)),
        (msk(2024, 3, 4, 12, 0, 0), msk(2024, 3, 4, 12, 0, 0)),
        (msk(2024, 3, 1, 17, 0, 0), msk(2024, 3, 4, 9, 0, 0)),
        (msk(2024, 3, 7, 16, 0, 0), msk(2024, 3, 11, 9, 0, 0)),
        (msk(2024, 11, 1, 17, 0, 0), msk(2024, 11, 2, 9, 0, 0)),
        (msk(2024, 12, 28, 16, 0, 0), msk(2025, 1, 9, 9, 0, 0)),
        (msk(2025, 12, 30, 18, 0, 0), msk(2026, 1, 12, 9, 0, 0)),
        (datetime(2025, 12, 31, 21, 0, 0, tzinfo=UTC), msk(2026, 1, 12, 9, 0, 0)),
    ],
)
def test_next_opening_skips_evenings_weekends_and_holidays(
    moment: datetime, expected: datetime
) -> None:
    assert next_opening(DEFAULT, moment) == expected


def test_next_opening_is_none_when_the_line_never_opens() -> None:
    start = date(2024, 3, 4)
    closed = frozenset(start + timedelta(days=n) for n in range(500))
    never = SupportCalendar(weekly={day: None for day in range(7)}, extra_closed=closed)
    assert next_opening(never, msk(2024, 3, 4, 12, 0, 0)) is None


def test_moved_working_saturday_opens_with_default_hours_when_weekly_has_none() -> None:
    no_weekly_hours = SupportCalendar(weekly={day: None for day in range(7)})
    assert next_opening(no_weekly_hours, msk(2024, 3, 4, 12, 0, 0)) == msk(2024, 4, 27, 9, 0, 0)


def _weekly(**days: tuple[time, time] | None) -> dict[int, tuple[time, time] | None]:
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    base: dict[int, tuple[time, time] | None] = {
        i: ((time(9), time(17)) if i < 5 else None) for i in range(7)
    }
    base.update({names.index(name): hours for name, hours in days.items()})
    return base


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (msk(2024, 3, 9, 10, 0, 0), True),  # Saturday 10:00-14:00
        (msk(2024, 3, 9, 13, 59, 59), True),
        (msk(2024, 3, 9, 14, 0, 0), False),
        (msk(2024, 3, 8, 12, 0, 0), False),  # a Friday, but 8 March is a holiday
        (msk(2024, 3, 15, 12, 0, 0), False),  # Friday: closed by configuration
        (msk(2024, 3, 11, 8, 0, 0), True),  # Monday opens at 08:00
        (msk(2024, 3, 11, 7, 59, 59), False),
    ],
)
def test_hours_are_configurable_per_weekday(moment: datetime, expected: bool) -> None:
    calendar = SupportCalendar(
        weekly=_weekly(mon=(time(8), time(17)), fri=None, sat=(time(10), time(14)))
    )
    assert is_open(calendar, moment) is expected


def test_extra_closed_date_closes_an_ordinary_weekday() -> None:
    calendar = SupportCalendar(extra_closed=frozenset({date(2024, 3, 5)}))
    assert is_open(calendar, msk(2024, 3, 5, 12, 0, 0)) is False
    assert next_opening(calendar, msk(2024, 3, 4, 17, 0, 0)) == msk(2024, 3, 6, 9, 0, 0)


def test_extra_working_date_opens_a_sunday() -> None:
    calendar = SupportCalendar(extra_working=frozenset({date(2024, 3, 10)}))
    assert is_open(calendar, msk(2024, 3, 10, 12, 0, 0)) is True
    assert is_open(calendar, msk(2024, 3, 10, 17, 0, 0)) is False


def test_extra_working_date_opens_a_public_holiday() -> None:
    calendar = SupportCalendar(extra_working=frozenset({date(2025, 1, 3)}))
    assert is_open(calendar, msk(2025, 1, 3, 12, 0, 0)) is True


def test_extra_closed_wins_over_a_moved_working_saturday() -> None:
    calendar = SupportCalendar(extra_closed=frozenset({date(2024, 11, 2)}))
    assert is_working_day(calendar, date(2024, 11, 2)) is False


def test_extra_short_date_closes_an_hour_early() -> None:
    calendar = SupportCalendar(extra_short=frozenset({date(2024, 3, 5)}))
    assert opening_on(calendar, date(2024, 3, 5)) == (
        msk(2024, 3, 5, 9, 0, 0),
        msk(2024, 3, 5, 16, 0, 0),
    )


def test_pre_holiday_shortening_is_configurable() -> None:
    calendar = SupportCalendar(pre_holiday_shortening=timedelta(minutes=30))
    assert opening_on(calendar, date(2024, 2, 22)) == (
        msk(2024, 2, 22, 9, 0, 0),
        msk(2024, 2, 22, 16, 30, 0),
    )


def test_zero_shortening_keeps_full_hours_before_a_holiday() -> None:
    calendar = SupportCalendar(pre_holiday_shortening=timedelta(0))
    assert is_open(calendar, msk(2024, 2, 22, 16, 30, 0)) is True


def test_opening_times_carry_the_moscow_zone() -> None:
    window = opening_on(DEFAULT, date(2024, 3, 4))
    assert window is not None
    assert window[0].utcoffset() == timedelta(hours=3)
    assert window[0].astimezone(UTC) == datetime(2024, 3, 4, 6, 0, tzinfo=UTC)


_CHILD = """
from datetime import datetime, timezone
from onerpa.hours import SupportCalendar, line_status
s = line_status(SupportCalendar(), datetime(2024, 12, 28, 13, 0, tzinfo=timezone.utc))
print(s.is_open, s.next_opening.astimezone(timezone.utc).isoformat())
"""


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_a_process_started_in_another_zone_gives_the_same_answer(zone: str) -> None:
    env = {**os.environ, "TZ": zone}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False 2025-01-09T06:00:00+00:00"
