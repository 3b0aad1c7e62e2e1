"""Settings: built from the environment, and every wrong value names its setting."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from onerpa.settings import DEFAULT_DATABASE_URL, Settings, SettingsError, sqlite_path


def test_empty_environment_gives_the_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.fastagi_port == 4573
    assert settings.allowed_peers == ("127.0.0.1", "::1")
    assert settings.calendar.timezone == "Europe/Moscow"
    assert settings.calendar.weekly[0] == (time(9), time(17))
    assert settings.calendar.weekly[5] is None
    assert settings.calendar.pre_holiday_shortening == timedelta(hours=1)
    assert settings.consultation_limit == timedelta(minutes=5)


def test_blank_values_count_as_unset() -> None:
    assert Settings.from_env({"ONERPA_FASTAGI_PORT": "  "}).fastagi_port == 4573


def test_database_url_comes_from_the_platform_variable() -> None:
    env = {"DATABASE_URL": "postgres://u@db:5432/support"}
    assert Settings.from_env(env).database_url == "postgresql://u@db:5432/support"


def test_onerpa_database_url_wins_over_the_platform_variable() -> None:
    env = {"DATABASE_URL": "postgresql://a/b", "ONERPA_DATABASE_URL": "sqlite:///x.sqlite3"}
    assert Settings.from_env(env).database_url == "sqlite:///x.sqlite3"


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "ONERPA_FASTAGI_HOST": "0.0.0.0",
            "ONERPA_FASTAGI_PORT": "4600",
            "ONERPA_FASTAGI_ALLOWED": "10.0.0.0/8, 192.168.1.5",
            "ONERPA_SALES_EXTENSION": "200",
            "ONERPA_DECISION_BUDGET_SECONDS": "0.5",
            "ONERPA_DIGITS_TRIES": "3",
            "ONERPA_CLOSED_DATES": "2025-12-31, 2026-01-12",
            "ONERPA_WORKING_DATES": "2025-01-03",
            "ONERPA_SHORT_DATES": "2025-12-30",
            "ONERPA_PRE_HOLIDAY_SHORTENING_MINUTES": "0",
            "ONERPA_TIMEZONE": "Europe/Samara",
        }
    )
    assert settings.fastagi_port == 4600
    assert settings.allowed_peers == ("10.0.0.0/8", "192.168.1.5")
    assert settings.sales_extension == "200"
    assert settings.decision_budget == timedelta(milliseconds=500)
    assert settings.digits_tries == 3
    assert settings.calendar.extra_closed == frozenset({date(2025, 12, 31), date(2026, 1, 12)})
    assert settings.calendar.extra_working == frozenset({date(2025, 1, 3)})
    assert settings.calendar.extra_short == frozenset({date(2025, 12, 30)})
    assert settings.calendar.pre_holiday_shortening == timedelta(0)
    assert settings.calendar.timezone == "Europe/Samara"


def test_hours_are_set_per_weekday() -> None:
    env = {"ONERPA_HOURS": "mon-thu 08:00-16:00; fri 9:00-15:30; sat 10:00-14:00; sun closed"}
    weekly = Settings.from_env(env).calendar.weekly
    assert weekly == {
        0: (time(8), time(16)),
        1: (time(8), time(16)),
        2: (time(8), time(16)),
        3: (time(8), time(16)),
        4: (time(9), time(15, 30)),
        5: (time(10), time(14)),
        6: None,
    }


def test_hours_can_close_a_weekday() -> None:
    weekly = Settings.from_env({"ONERPA_HOURS": "fri closed"}).calendar.weekly
    assert weekly[4] is None
    assert weekly[3] == (time(9), time(17))


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ONERPA_DATABASE_URL": "mysql://x/y"}, "ONERPA_DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"ONERPA_FASTAGI_PORT": "abc"}, "ONERPA_FASTAGI_PORT"),
        ({"ONERPA_FASTAGI_PORT": "0"}, "ONERPA_FASTAGI_PORT"),
        ({"ONERPA_FASTAGI_PORT": "70000"}, "ONERPA_FASTAGI_PORT"),
        ({"ONERPA_FASTAGI_ALLOWED": "127.0.0.1, 999.1.1.1"}, "ONERPA_FASTAGI_ALLOWED"),
        ({"ONERPA_SALES_EXTENSION": "2 00"}, "ONERPA_SALES_EXTENSION"),
        ({"ONERPA_DECISION_BUDGET_SECONDS": "-1"}, "ONERPA_DECISION_BUDGET_SECONDS"),
        ({"ONERPA_DECISION_BUDGET_SECONDS": "soon"}, "ONERPA_DECISION_BUDGET_SECONDS"),
        ({"ONERPA_WAIT_TARGET_SECONDS": "0"}, "ONERPA_WAIT_TARGET_SECONDS"),
        ({"ONERPA_DIGITS_TIMEOUT_SECONDS": "86400"}, "ONERPA_DIGITS_TIMEOUT_SECONDS"),
        ({"ONERPA_DIGITS_TRIES": "9"}, "ONERPA_DIGITS_TRIES"),
        ({"ONERPA_LOOKUP_WORKERS": "-1"}, "ONERPA_LOOKUP_WORKERS"),
        ({"ONERPA_LOOKUP_WORKERS": "1000"}, "ONERPA_LOOKUP_WORKERS"),
        ({"ONERPA_DIGITS_TRIES": "2.5"}, "ONERPA_DIGITS_TRIES"),
        ({"ONERPA_CONSULTATION_LIMIT_SECONDS": "five"}, "ONERPA_CONSULTATION_LIMIT_SECONDS"),
        ({"ONERPA_CONSULTATION_TARGET_SECONDS": "300"}, "ONERPA_CONSULTATION_TARGET_SECONDS"),
        ({"ONERPA_CLOSED_DATES": "2025-12-31, 2025-13-01"}, "ONERPA_CLOSED_DATES"),
        ({"ONERPA_WORKING_DATES": "31.12.2025"}, "ONERPA_WORKING_DATES"),
        ({"ONERPA_SHORT_DATES": "tomorrow"}, "ONERPA_SHORT_DATES"),
        ({"ONERPA_TIMEZONE": "Mars/Olympus_Mons"}, "ONERPA_TIMEZONE"),
        ({"ONERPA_TIMEZONE": "../../etc/passwd"}, "ONERPA_TIMEZONE"),
        (
            {"ONERPA_PRE_HOLIDAY_SHORTENING_MINUTES": "-5"},
            "ONERPA_PRE_HOLIDAY_SHORTENING_MINUTES",
        ),
        ({"ONERPA_HOURS": "mon-fri 9-17"}, "ONERPA_HOURS"),
        ({"ONERPA_HOURS": "xyz 09:00-17:00"}, "ONERPA_HOURS"),
        ({"ONERPA_HOURS": "fri-mon 09:00-17:00"}, "ONERPA_HOURS"),
        ({"ONERPA_HOURS": "mon 17:00-09:00"}, "ONERPA_HOURS"),
        ({"ONERPA_HOURS": "mon 25:00-26:00"}, "ONERPA_HOURS"),
        ({"ONERPA_HOURS": "mon-fri 09:00-17:00; mon 10:00-12:00"}, "ONERPA_HOURS"),
        ({"ONERPA_DATABASE_URL": "sqlite:////nonexistent/dir/x.sqlite3"}, "ONERPA_DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:///no-such-folder/x.sqlite3"}, "DATABASE_URL"),
    ],
)
def test_wrong_value_names_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.name == name
    assert str(caught.value).startswith(f"{name}: ")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/support.sqlite3", Path("var/support.sqlite3")),
        ("sqlite:////srv/support.sqlite3", Path("/srv/support.sqlite3")),
        ("sqlite:///:memory:", None),
        ("sqlite:///", None),
        ("postgresql://localhost/x", None),
    ],
)
def test_sqlite_path_finds_the_database_file(url: str, expected: Path | None) -> None:
    assert sqlite_path(url) == expected


@pytest.mark.parametrize(
    ("hours", "day", "first", "second"),
    [
        (
            "mon-fri 09:00-17:00; mon 10:00-12:00",
            "«понедельник» (mon)",
            "mon-fri 09:00-17:00",
            "mon 10:00-12:00",
        ),
        ("sat closed; fri-sun 10:00-14:00", "«суббота» (sat)", "sat closed", "fri-sun 10:00-14:00"),
    ],
)
def test_hours_naming_a_day_twice_say_which_day_and_items(
    hours: str, day: str, first: str, second: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ONERPA_HOURS": hours})
    assert str(caught.value) == (
        f"ONERPA_HOURS: день {day} указан дважды: в {first!r} и в {second!r}"
    )


def test_database_in_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo' / 'support.sqlite3'}"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ONERPA_DATABASE_URL": url})
    assert f"папки {tmp_path / 'typo'} нет" in str(caught.value)


def test_messages_are_in_russian() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ONERPA_FASTAGI_PORT": "70000"})
    assert str(caught.value) == "ONERPA_FASTAGI_PORT: должно быть от 1 до 65535"
