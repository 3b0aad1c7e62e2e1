"""Imports point inward: the core imports neither the call flow nor the dashboard, and only
the command line (``onerpa_support``) joins them all; nothing imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("onerpa", "ivr", "dashboard", "onerpa_support")
# Which of the project's packages each package may import.
ALLOWED = {
    "onerpa": {"onerpa"},
    "ivr": {"onerpa", "ivr"},
    "dashboard": {"onerpa", "dashboard"},
    "onerpa_support": set(PACKAGES),
}


def imported(path: Path) -> set[str]:
    """Return the top-level packages of this project that the module ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_lies_inward(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported(path) - ALLOWED[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported(path) - ALLOWED[package]
    }
    assert wrong == {}


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from dashboard.users import x\n", encoding="utf-8")
    assert imported(module) == {"dashboard"}
