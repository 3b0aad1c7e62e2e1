"""Every code the line can store has a Russian label, found by reading the code that writes it.

The codes are collected from the source (enums, constants and the literal arguments of the
calls that write them), so a new step, event or audit action without a label fails here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard import labels
from ivr.dialplan import Topic
from ivr.routes import call as call_route
from onerpa.callstatus import CallStatus
from onerpa.entitlement import Reason
from onerpa.metrics import EVENT_KINDS
from onerpa.models import Call
from onerpa.staff import Role, WrapTopic

ROOT = Path(__file__).resolve().parent.parent
CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


def _trees(*packages: str) -> Iterator[ast.AST]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield ast.parse(path.read_text(encoding="utf-8"), str(path))


def _text(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def ivr_steps() -> set[str]:
    """Return the steps the call flow records: ``reached("…")`` and ``step = "…"``."""
    found = {Call.__table__.c.step.default.arg}
    for tree in _trees("ivr"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node) == "reached" and node.args:
                found.add(_text(node.args[0]))
            if isinstance(node, ast.Call):
                found.update(_text(k.value) for k in node.keywords if k.arg == "step")
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "step" for t in node.targets
            ):
                found.add(_text(node.value))
    return found - {None}


def event_kinds() -> set[str]:
    """Return the kinds ``onerpa.recorder.transitions`` gives the events it appends."""
    found = set(EVENT_KINDS)
    tree = ast.parse((ROOT / "onerpa" / "recorder.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called(node) == "Transition" and node.args:
            found.add(_text(node.args[0]))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "kind" for t in node.targets
        ):
            found.update(_text(n) for n in ast.walk(node.value))
        if isinstance(node, ast.For) and isinstance(node.target, ast.Tuple):
            names = [getattr(n, "id", None) for n in node.target.elts]
            if "kind" in names and isinstance(node.iter, ast.Tuple):
                at = names.index("kind")
                found.update(_text(item.elts[at]) for item in node.iter.elts)
    return found - {None}


def audit_codes() -> tuple[set[str], set[str]]:
    """Return the actions and target types passed to ``audit(…)`` anywhere in the code."""
    actions, targets = set(), set()
    for tree in _trees("dashboard", "onerpa", "ivr"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node) == "audit" and len(node.args) >= 4:
                actions.add(_text(node.args[2]))
                targets.add(_text(node.args[3]))
    return actions - {None}, targets - {None}


def test_the_code_lists_are_found() -> None:
    # Guards the readers above: if they found nothing, the tests below would prove nothing.
    assert {"greeting", "identify", "routed", "arrived"} <= ivr_steps()
    assert {"arrived", "decided", "queued", "answered", "ended", "swept"} <= event_kinds()
    actions, targets = audit_codes()
    assert {"user.create", "refusal.set", "wrapup.record"} <= actions
    assert {"user", "customer", "call"} <= targets


@pytest.mark.parametrize(
    ("table", "codes"),
    [
        pytest.param(labels.IVR_STEPS, ivr_steps(), id="ivr steps"),
        pytest.param(labels.CALL_EVENTS, event_kinds(), id="call events"),
        pytest.param(labels.AUDIT_ACTIONS, audit_codes()[0], id="audit actions"),
        pytest.param(labels.AUDIT_TARGETS, audit_codes()[1], id="audit targets"),
        pytest.param(labels.ROLES, {str(r) for r in Role}, id="roles"),
        pytest.param(
            labels.DECISIONS,
            {str(r) for r in Reason} | {call_route.DECISION_CLOSED, call_route.DECISION_DEGRADED},
            id="decisions",
        ),
        pytest.param(labels.STATUSES, {str(s) for s in CallStatus}, id="statuses"),
        pytest.param(
            labels.TOPICS, {str(t) for t in Topic} | {str(t) for t in WrapTopic}, id="topics"
        ),
    ],
)
def test_every_code_has_a_russian_label(table: dict[str, str], codes: set[str]) -> None:
    assert sorted(codes - table.keys()) == []
    assert [label for label in table.values() if not CYRILLIC.search(label)] == []


def test_steps_events_and_audit_read_in_russian() -> None:
    assert labels.step_label("enter_number") == "ввод номера клиента"
    assert labels.event_label("decided", '{"decision":"not_entitled"}') == (
        "решение принято: Не положено"
    )
    assert labels.event_label("ended", "{broken") == "завершён"
    assert labels.audit_details("user.create", "ivanov (agent) PJSIP/101") == (
        "«ivanov», агент, телефон PJSIP/101"
    )
    assert labels.audit_details("refusal.set", "refusal 3 until lifted: грубил") == (
        "№ 3 до снятия: грубил"
    )
    # Text that does not read as the writer wrote it is shown as stored, never dropped.
    assert labels.audit_details("refusal.set", "что-то иное") == "что-то иное"


@pytest.mark.parametrize("placeholder", ["unknown", "Unknown", "anonymous", " UNKNOWN "])
def test_asterisk_placeholders_are_not_a_callers_name(placeholder: str) -> None:
    assert labels.caller_name(placeholder) == ""
    assert labels.caller_number(None, placeholder) == ""
    assert labels.caller_name("ROMASHKA") == "ROMASHKA"
    assert labels.caller_number(None, "101") == "101"
