"""What a person sees when a command cannot start: one Russian line naming what to change."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from onerpa_support.cli import main
from tests.promptkit import prompts_rendered_for

CLI = Path(sys.executable).with_name("onerpa-support")
PORT_SETTINGS = (
    "ONERPA_FASTAGI_PORT",
    "ONERPA_DASHBOARD_PORT",
    "ONERPA_METRICS_PORT",
    "ONERPA_FASTAGI_METRICS_PORT",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on, as a dashboard left running would."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The process environment, cleaned of our settings, with free ports and a fresh database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONERPA_")}
    env.pop("DATABASE_URL", None)
    env["ONERPA_DATABASE_URL"] = f"sqlite:///{tmp_path / 'support.sqlite3'}"
    env["ONERPA_SECRET_KEY"] = "k" * 40
    env.update({name: str(_free_port()) for name in PORT_SETTINGS})
    env.update(settings)
    return env


def _cli(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "setting", ["ONERPA_FASTAGI_PORT", "ONERPA_DASHBOARD_PORT", "ONERPA_FASTAGI_METRICS_PORT"]
)
def test_run_on_a_busy_port_names_the_port_and_its_setting(
    tmp_path: Path, busy_port: int, setting: str
) -> None:
    done = _cli(tmp_path, "run", env=_env(tmp_path, **{setting: str(busy_port)}))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Порт {busy_port} на 127.0.0.1 занят: задайте другой в {setting}"
    ]
    assert not (tmp_path / "support.sqlite3").exists()  # stopped before starting anything


def test_run_lists_every_busy_port_at_once(tmp_path: Path, busy_port: int) -> None:
    with socket.socket() as second:
        second.bind(("127.0.0.1", 0))
        second.listen()
        other = second.getsockname()[1]
        env = _env(tmp_path, ONERPA_DASHBOARD_PORT=str(busy_port), ONERPA_METRICS_PORT=str(other))
        done = _cli(tmp_path, "run", env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Порт {busy_port} на 127.0.0.1 занят: задайте другой в ONERPA_DASHBOARD_PORT",
        f"Порт {other} на 127.0.0.1 занят: задайте другой в ONERPA_METRICS_PORT",
    ]


def test_run_port_option_overrides_the_setting_and_is_named(
    tmp_path: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["run", "--metrics-port", str(busy_port)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Порт {busy_port} на 127.0.0.1 занят: задайте другой параметром --metrics-port\n"
    )


def test_one_port_for_two_servers_is_refused_before_starting(tmp_path: Path) -> None:
    port = str(_free_port())
    env = _env(tmp_path, ONERPA_DASHBOARD_PORT=port, ONERPA_METRICS_PORT=port)
    done = _cli(tmp_path, "run", env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Порт {port} указан дважды: в ONERPA_DASHBOARD_PORT и в ONERPA_METRICS_PORT"
    ]


def test_run_help_lists_the_port_options() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for setting in PORT_SETTINGS:
        option = "--" + setting.removeprefix("ONERPA_").lower().replace("_", "-")
        assert option in result.output
        assert setting in result.output


def test_fastagi_on_a_busy_port_names_its_setting(tmp_path: Path, busy_port: int) -> None:
    done = _cli(tmp_path, "fastagi", env=_env(tmp_path, ONERPA_FASTAGI_PORT=str(busy_port)))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Порт {busy_port} на 127.0.0.1 занят: задайте другой в ONERPA_FASTAGI_PORT"
    ]


def test_dashboard_on_a_busy_port_names_the_option_that_chose_it(
    tmp_path: Path, busy_port: int
) -> None:
    done = _cli(tmp_path, "dashboard", "--port", str(busy_port), env=_env(tmp_path))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Порт {busy_port} на 127.0.0.1 занят: задайте другой параметром --port"
    ]


def test_database_in_a_missing_folder_is_refused_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo' / 'support.sqlite3'}"
    done = _cli(tmp_path, "sweep", env=_env(tmp_path, ONERPA_DATABASE_URL=url))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Ошибка настройки: ONERPA_DATABASE_URL: папки {tmp_path / 'typo'} нет: "
        "исправьте путь к файлу базы данных или создайте её"
    ]
    assert not (tmp_path / "typo").exists()


def test_wrong_setting_is_one_line_in_russian(tmp_path: Path) -> None:
    done = _cli(tmp_path, "sweep", env=_env(tmp_path, ONERPA_FASTAGI_PORT="forty"))
    assert done.returncode == 1
    assert done.stderr == "Ошибка настройки: ONERPA_FASTAGI_PORT: 'forty' — не целое число\n"


def test_migrations_are_quiet_unless_verbose(tmp_path: Path) -> None:
    env = _env(tmp_path)
    first = _cli(tmp_path, "sweep", env=env)
    again = _cli(tmp_path, "sweep", env=env)
    assert first.returncode == 0, first.stderr
    assert "alembic" not in first.stderr + again.stderr
    assert "база данных создана" in first.stderr
    assert again.stderr == ""
    tmp_verbose = tmp_path / "verbose"
    tmp_verbose.mkdir()
    verbose = _cli(tmp_verbose, "--verbose", "sweep", env=_env(tmp_verbose))
    assert "Running upgrade" in verbose.stderr  # the step-by-step account, when asked for


@pytest.mark.parametrize("command", ["fastagi", "run"])
def test_server_will_not_say_an_address_the_settings_no_longer_give(
    tmp_path: Path, command: str
) -> None:
    done = _cli(tmp_path, command, env=_env(tmp_path, ONERPA_SUPPORT_EMAIL="help@onerpa.ru"))
    assert done.returncode == 1
    assert done.stderr.startswith("Голосовые подсказки не готовы: голосовые подсказки ")
    assert "не для текущего значения ONERPA_SUPPORT_EMAIL" in done.stderr
    assert "onerpa-support prompts" in done.stderr
    assert not (tmp_path / "support.sqlite3").exists()  # stopped before starting anything


def test_server_will_not_say_hours_the_settings_no_longer_give(tmp_path: Path) -> None:
    done = _cli(tmp_path, "fastagi", env=_env(tmp_path, ONERPA_HOURS="mon-fri 10:00-18:00"))
    assert done.returncode == 1
    assert "onerpa-hours записаны не для текущего значения ONERPA_HOURS" in done.stderr


def test_prompts_rendered_for_the_settings_let_the_server_start(
    tmp_path: Path, busy_port: int
) -> None:
    settings = {"ONERPA_SUPPORT_EMAIL": "help@onerpa.ru"}
    folder = prompts_rendered_for(tmp_path / "sounds", settings)
    env = _env(
        tmp_path, **settings, ONERPA_PROMPTS_DIR=str(folder), ONERPA_FASTAGI_PORT=str(busy_port)
    )
    done = _cli(tmp_path, "fastagi", env=env)
    # Past the prompts check: it stops at the next one, the busy port.
    assert done.stderr.splitlines() == [
        f"Порт {busy_port} на 127.0.0.1 занят: задайте другой в ONERPA_FASTAGI_PORT"
    ]


def test_a_prompts_folder_without_prompts_is_named(tmp_path: Path) -> None:
    done = _cli(tmp_path, "fastagi", env=_env(tmp_path, ONERPA_PROMPTS_DIR=str(tmp_path)))
    assert done.returncode == 1
    assert "укажите в ONERPA_PROMPTS_DIR папку asterisk/sounds" in done.stderr


def test_metrics_on_a_busy_port_names_the_port_and_its_setting(
    tmp_path: Path, busy_port: int
) -> None:
    done = _cli(tmp_path, "metrics", env=_env(tmp_path, ONERPA_METRICS_PORT=str(busy_port)))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Порт {busy_port} на 127.0.0.1 занят: задайте другой в ONERPA_METRICS_PORT"
    ]
