"""docs/configuration.md against the code: every setting listed, defaults and examples true."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from dashboard import config as dashboard_config
from onerpa.settings import CONFIG_FILE, Settings

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
READERS = (ROOT / "onerpa" / "settings.py", ROOT / "dashboard" / "config.py")
SECRET = {"ONERPA_SECRET_KEY": "s" * 48}
_ROW = re.compile(r"^\| `(?P<name>[A-Z_]+)` \| (?P<default>[^|]+?) \| (?P<example>[^|]+?) \|")
_LITERAL = re.compile(r"^`([^`]+)`$")


class Row(NamedTuple):
    name: str
    default: str | None  # None: not a literal value ("(none)", "(none: required)")
    example: str | None


def documented() -> dict[str, Row]:
    """Return the rows of the reference tables, by variable name."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            default, example = (_literal(match[key]) for key in ("default", "example"))
            rows[match["name"]] = Row(match["name"], default, example)
    return rows


def _literal(cell: str) -> str | None:
    match = _LITERAL.match(cell.strip())
    return match[1] if match else None


def read_by_code() -> set[str]:
    """Return every variable name the settings readers mention."""
    names: set[str] = set()
    for path in READERS:
        names |= set(re.findall(r'"((?:ONERPA_[A-Z_]+)|DATABASE_URL)"', path.read_text()))
    return names


def configured(env: dict[str, str]) -> tuple[Settings, dict[str, Any]]:
    """Return what the service and the dashboard make of ``env``."""
    return Settings.from_env(env), dashboard_config.load({}, {**SECRET, **env})


def changed_fields(env: dict[str, str]) -> set[str]:
    settings, _ = configured(env)
    default = Settings.from_env({})
    return {
        f.name
        for f in dataclasses.fields(Settings)
        if getattr(settings, f.name) != getattr(default, f.name)
    }


ROWS = documented()
PROBED = [row for row in ROWS.values() if row.name != CONFIG_FILE]


def test_the_tables_were_read() -> None:
    assert len(ROWS) > 30
    assert {"ONERPA_DATABASE_URL", "ONERPA_FASTAGI_ALLOWED", "ONERPA_SECRET_KEY"} <= set(ROWS)


def test_every_variable_the_code_reads_is_documented_and_no_other() -> None:
    assert read_by_code() == set(ROWS)


def test_every_settings_field_is_set_by_a_documented_variable() -> None:
    covered: set[str] = set()
    for row in PROBED:
        if row.example is not None:
            covered |= changed_fields({row.name: row.example})
    assert covered == {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize("row", [r for r in PROBED if r.default is not None], ids=lambda r: r.name)
def test_documented_default_is_the_default(row: Row) -> None:
    assert row.default is not None
    assert configured({row.name: row.default}) == configured({})


@pytest.mark.parametrize("row", [r for r in PROBED if r.example is not None], ids=lambda r: r.name)
def test_documented_example_is_accepted_and_changes_the_setting(row: Row) -> None:
    assert row.example is not None
    assert configured({row.name: row.example}) != configured({})


def test_rows_without_a_literal_default_are_the_optional_and_the_secret() -> None:
    without = {row.name for row in ROWS.values() if row.default is None}
    assert without == {
        CONFIG_FILE,
        "ONERPA_CLOSED_DATES",
        "ONERPA_WORKING_DATES",
        "ONERPA_SHORT_DATES",
        "ONERPA_SALES_EXTENSION",
        "ONERPA_SECRET_KEY",
        "ONERPA_PROMPTS_DIR",
        "ONERPA_AMI_SECRET",
        "ONERPA_SMTP_HOST",
        "ONERPA_SMTP_USERNAME",
        "ONERPA_SMTP_PASSWORD",
        "ONERPA_SMTP_FROM",
    }
    assert Settings.from_env({}).sales_extension == ""
    assert Settings.from_env({}).calendar.extra_closed == frozenset()
