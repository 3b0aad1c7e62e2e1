"""ONERPA_CONFIG_FILE: settings from a file of NAME=value lines, the environment winning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import config as dashboard_config
from onerpa.settings import (
    Settings,
    SettingsError,
    apply_config_file,
    read_config_file,
    with_config_file,
)

CLI = Path(sys.executable).with_name("onerpa-support")
SECRET = "k" * 40


def write(tmp_path: Path, text: str, mode: int = 0o640) -> Path:
    path = tmp_path / "onerpa.env"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_file_fills_what_the_environment_leaves_unset(tmp_path: Path) -> None:
    path = write(tmp_path, "ONERPA_FASTAGI_PORT=4600\nONERPA_SALES_EXTENSION=200\n")
    env = {"ONERPA_CONFIG_FILE": str(path), "ONERPA_SALES_EXTENSION": "300"}
    settings = Settings.from_env(env)
    assert settings.fastagi_port == 4600
    assert settings.sales_extension == "300"  # the environment wins


def test_blank_environment_value_counts_as_unset(tmp_path: Path) -> None:
    # Compose passes "NAME=" for a setting left out of .env; the file must still apply.
    path = write(tmp_path, "ONERPA_HOURS=mon-sun 08:00-20:00\n")
    env = {"ONERPA_CONFIG_FILE": str(path), "ONERPA_HOURS": "  "}
    assert Settings.from_env(env).calendar.weekly[6] is not None


def test_comments_quotes_and_export_are_read_like_systemd_and_compose(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# the support line\n"
        "\n"
        "ONERPA_HOURS='mon-fri 09:00-17:00; sat 10:00-14:00'\n"
        'ONERPA_SUPPORT_EMAIL="help@example.org"\n'
        "export ONERPA_QUEUE = support-2\n"
        "DATABASE_URL=postgresql://onerpa@db/onerpa\n",
    )
    assert read_config_file(path) == {
        "ONERPA_HOURS": "mon-fri 09:00-17:00; sat 10:00-14:00",
        "ONERPA_SUPPORT_EMAIL": "help@example.org",
        "ONERPA_QUEUE": "support-2",
        "DATABASE_URL": "postgresql://onerpa@db/onerpa",
    }


def test_without_the_variable_nothing_is_read() -> None:
    env = {"ONERPA_QUEUE": "q"}
    assert with_config_file(env) == env


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    env = {"ONERPA_CONFIG_FILE": str(tmp_path / "absent.env")}
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert err.value.name == "ONERPA_CONFIG_FILE"
    assert "absent.env" in str(err.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("ONERPA_QUEUE", "строка не вида NAME=value"),
        ("onerpa queue=x", "строка не вида NAME=value"),
        ("POSTGRES_PASSWORD=secret", "POSTGRES_PASSWORD — не настройка этой службы"),
        ("ONERPA_CONFIG_FILE=/etc/other.env", "ONERPA_CONFIG_FILE — не настройка"),
    ],
)
def test_bad_line_is_refused_with_its_number(tmp_path: Path, line: str, problem: str) -> None:
    path = write(tmp_path, f"# header\n{line}\n")
    with pytest.raises(SettingsError) as err:
        read_config_file(path)
    assert err.value.name == "ONERPA_CONFIG_FILE"
    assert f"{path}, строка 2: {problem}" in str(err.value)


def test_wrong_value_in_the_file_names_its_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "ONERPA_FASTAGI_PORT=forty\n")
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"ONERPA_CONFIG_FILE": str(path)})
    assert err.value.name == "ONERPA_FASTAGI_PORT"


def test_world_readable_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "ONERPA_QUEUE=q\n", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="onerpa.settings"):
        read_config_file(path)
    assert "может прочитать любой пользователь" in caplog.text


def test_dashboard_secret_key_can_come_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"ONERPA_SECRET_KEY={SECRET}\n")
    env = {"ONERPA_CONFIG_FILE": str(path)}
    apply_config_file(env)
    assert dashboard_config.load({}, env)["SECRET_KEY"] == SECRET


def test_dashboard_without_a_secret_key_refuses_to_start() -> None:
    with pytest.raises(SettingsError) as err:
        dashboard_config.load({}, {})
    assert err.value.name == "ONERPA_SECRET_KEY"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONERPA_")}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [str(CLI), *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_command_reads_the_database_url_from_the_file(tmp_path: Path) -> None:
    database = tmp_path / "from-file.sqlite3"
    path = write(tmp_path, f"ONERPA_DATABASE_URL=sqlite:///{database}\n")
    done = _cli("migrate", env={"ONERPA_CONFIG_FILE": str(path)})
    assert done.returncode == 0, done.stderr
    assert database.exists()


def test_command_with_a_broken_file_stops_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "ONERPA_FASTAGI_PORT 4573\n")
    done = _cli("migrate", env={"ONERPA_CONFIG_FILE": str(path)})
    assert done.returncode == 1
    assert "Ошибка настройки: ONERPA_CONFIG_FILE:" in done.stderr
    assert "строка 1: строка не вида NAME=value" in done.stderr
