"""The reliability suite's figures: what every fault, load and hostile-input test counted.

A pytest plugin. Each reliability test module registers it (``pytest_plugins``) and feeds
the session-wide ``figures`` fixture: calls placed, faults injected, calls that ended in
silence, records lost, losses that were logged, calls the dialplan fallback carried, and
requests refused as expected. At the end of the run the table is printed; when every area
ran, on PostgreSQL too, and the run passed, it is also written to ``docs/reliability.md``.

What the columns mean:

- *silent*: a caller still on the line whom the server let go without a route, or a call
  that never ended. Must be 0.
- *lost*: a call the server took whose record is not in the database and whose loss was
  not logged. Must be 0.
- *lost, logged*: records not written but each logged with its call reference (the test
  that overflows the recorder's buffer while the database is down, and known bugs).
- *fallback*: calls that could not reach the FastAGI server (or whose server died under
  them); the dialplan's fallback sends them to the queue.
- *refused*: requests that had to be refused and were (addresses not allowed, pages without
  the right role or a CSRF token, throttled sign-ins, malformed input rejected cleanly).

PYTEST_DONT_REWRITE: the test modules import helpers from here before pytest registers it
as a plugin, too late to rewrite its asserts (it has none).
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from ivr.emulator import CallResult
from onerpa.models import Call

AREAS = {
    "db": "Database down, back, locked, slow",
    "restart": "FastAGI server restarted mid-call",
    "hangups": "Caller hangs up at every step",
    "concurrency": "200 simultaneous calls",
    "resources": "10,000 dropped + 1,000 idle connections",
    "fuzz": "Property-based fuzzing (AGI reader, phone parser)",
    "hostile": "Hostile caller IDs, foreign FastAGI peers",
    "dashboard": "Dashboard roles, CSRF, sessions, sign-in, headers",
}
HOW = {
    "db": "PostgreSQL behind a fault proxy that resets connections, refuses new ones and "
    "holds packets (5 s queries); tables locked by another transaction; SQLite held by "
    "`BEGIN EXCLUSIVE` past its busy timeout; the recorder's buffer overflowed on purpose. "
    "Callers get a route (`degraded` when the directory cannot answer) within the 1 s "
    "budget; records land when the database is back.",
    "restart": "the server dies with calls in their greeting and comes back on the same "
    "port; calls in the gap find the port closed; the start-up sweep marks the interrupted "
    "calls `lost` with no end time.",
    "hangups": "a hang-up at each of the 23 steps of the call flow (every prompt and "
    "input, before the answer, after the route): stored as abandoned at that step (after "
    "the route: the routed status kept), nothing logged as an error, the next caller served.",
    "concurrency": "200 callers released at once by a barrier, on SQLite and on "
    "PostgreSQL: 200 rows, 200 distinct references, every call routed.",
    "resources": "10,000 connections reset at once and 1,000 that never speak (1 s "
    "timeout): threads and memory back at their baseline.",
    "fuzz": "hypothesis on the reply parser, the AGI channel over a socket pair, the phone "
    "parser and the live server.",
    "hostile": "HTML, SQL, template syntax, control characters, bytes that are not UTF-8, "
    "NUL, 4 kB and 10 kB caller IDs through the server, the database, the dashboard and "
    "/metrics; FastAGI peers outside the allowed addresses.",
    "dashboard": "every route of the URL map by role and method, CSRF on every POST, "
    "session expiry, sign-in throttling, security headers on every page and error.",
}
REPORT = Path("docs") / "reliability.md"
MODULES = (
    "test_reliability_db.py",
    "test_reliability_restart.py",
    "test_reliability_hangups.py",
    "test_reliability_concurrency.py",
    "test_reliability_resources.py",
    "test_fuzz.py",
    "test_hostile_input.py",
    "test_dashboard_security.py",
)
_KEY = pytest.StashKey["Figures"]()


@dataclass
class Row:
    """The counts of one area."""

    calls: int = 0
    faults: int = 0
    silent: int = 0
    lost: int = 0
    lost_logged: int = 0
    fallback: int = 0
    refused: int = 0

    def add(self, other: Row) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


COLUMNS = (
    ("calls", "calls placed"),
    ("faults", "faults injected"),
    ("silent", "ended in silence"),
    ("lost", "records lost"),
    ("lost_logged", "lost, logged"),
    ("fallback", "carried by fallback"),
    ("refused", "refused as expected"),
)


class Figures:
    """Counts per area, fed by the tests; thread-safe."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.backends: set[str] = set()
        self.known_bugs: dict[str, str] = {}  # test id -> the reason of its strict xfail
        self._lock = threading.Lock()

    def add(self, area: str, **counts: int) -> None:
        """Add ``counts`` (Row field names) to ``area``."""
        if area not in AREAS:
            raise KeyError(f"unknown reliability area {area!r}")
        with self._lock:
            self.rows.setdefault(area, Row()).add(Row(**counts))

    def backend(self, engine: Engine) -> None:
        """Note that a database of ``engine``'s kind took part."""
        with self._lock:
            self.backends.add(engine.dialect.name)

    def total(self) -> Row:
        total = Row()
        for row in self.rows.values():
            total.add(row)
        return total

    def table(self) -> list[str]:
        """Return the summary as Markdown table lines."""
        head = "| area | " + " | ".join(label for _, label in COLUMNS) + " |"
        rule = "|---|" + "---:|" * len(COLUMNS)
        lines = [head, rule]
        for area, title in AREAS.items():
            row = self.rows.get(area)
            if row is not None:
                lines.append(_line(title, row))
        lines.append(_line("**total**", self.total()))
        return lines


def _line(title: str, row: Row) -> str:
    return f"| {title} | " + " | ".join(str(getattr(row, name)) for name, _ in COLUMNS) + " |"


# --- classifying what happened to calls ------------------------------------------------------


def outcome(result: CallResult, *, crashed: bool = False) -> str:
    """Say how a call ended for the caller: routed, hung_up, fallback or silent.

    ``crashed``: the test killed the server under this call, so an empty route is the
    dialplan's fallback at work rather than a server that let a caller go.
    """
    if result.variables.get("ONERPA_ROUTE"):
        return "routed"
    if result.hung_up:
        return "hung_up"
    if not result.connected or crashed:
        return "fallback"
    return "silent"


def count_calls(
    figures: Figures, area: str, results: Iterable[CallResult], *, crashed: bool = False
) -> dict[str, int]:
    """Count placed calls by outcome into ``area``; return the counts by outcome."""
    counts = {"routed": 0, "hung_up": 0, "fallback": 0, "silent": 0}
    for result in results:
        counts[outcome(result, crashed=crashed)] += 1
    figures.add(
        area,
        calls=sum(counts.values()),
        silent=counts["silent"],
        fallback=counts["fallback"],
    )
    return counts


def call_refs(results: Iterable[CallResult]) -> list[str]:
    """Return the call references the server gave the calls that reached it."""
    return [r.variables["ONERPA_CALL_ID"] for r in results if r.variables.get("ONERPA_CALL_ID")]


def missing_records(engine: Engine, refs: list[str]) -> list[str]:
    """Return the references in ``refs`` that have no stored call."""
    found: set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(refs), 500):
            chunk = refs[start : start + 500]
            found.update(conn.scalars(select(Call.call_ref).where(Call.call_ref.in_(chunk))))
    return [ref for ref in refs if ref not in found]


def stored_calls(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Call)) or 0)


# --- the plugin ----------------------------------------------------------------------------

_RUN: list[Figures] = []  # this run's figures, for hooks that are not given the config


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEY] = Figures()
    _RUN[:] = [config.stash[_KEY]]


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Figures:
    """The run's reliability figures."""
    return request.config.stash[_KEY]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note the strict xfails of the reliability modules: bugs known and not fixed yet."""
    reason = getattr(report, "wasxfail", "")
    if _RUN and reason and report.skipped and _is_ours(report.nodeid):
        _RUN[0].known_bugs[report.nodeid] = reason


def _is_ours(nodeid: str) -> bool:
    path = nodeid.split("::", 1)[0]
    return any(path.endswith(name) for name in MODULES)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    collected = config.stash.get(_KEY, None)
    if collected is None or not collected.rows:
        return
    terminalreporter.section("reliability figures")
    for line in collected.table():
        terminalreporter.write_line(line)
    for nodeid in sorted(collected.known_bugs):
        terminalreporter.write_line(f"known bug (xfail): {nodeid}")
    reason = _not_reportable(collected, exitstatus)
    if not reason and not os.environ.get("ONERPA_RECORD_FIGURES"):
        reason = "set ONERPA_RECORD_FIGURES=1 to record them"
    if reason:
        terminalreporter.write_line(f"{REPORT} not updated ({reason})")
        return
    path = config.rootpath / REPORT
    path.write_text(report(collected), encoding="utf-8")
    terminalreporter.write_line(f"written to {REPORT}")


def _not_reportable(collected: Figures, exitstatus: int) -> str:
    """Say why this run's figures must not replace the published ones ("" if they may)."""
    missing = [area for area in AREAS if area not in collected.rows]
    if missing:
        return f"areas not run: {', '.join(missing)}"
    if "postgresql" not in collected.backends:
        return "PostgreSQL not in this run: set TEST_DATABASE_URL"
    if exitstatus != 0:
        return "the run did not pass"
    return ""


def report(collected: Figures) -> str:
    """Return docs/reliability.md for ``collected``."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    backends = ", ".join(sorted(collected.backends)) or "none"
    return "\n".join(
        [
            "# Reliability figures",
            "",
            "Written by the test suite (`tests/test_reliability_*.py`, `tests/test_fuzz.py`,",
            "`tests/test_hostile_input.py`, `tests/test_dashboard_security.py`) at the end of",
            "every passing run that includes all of them and PostgreSQL, when asked to",
            "(`ONERPA_RECORD_FIGURES=1 make test` with `TEST_DATABASE_URL` set). Every run",
            "prints the table.",
            "",
            f"Latest run: {stamp}; Python {platform.python_version()}; databases: {backends}.",
            "",
            *collected.table(),
            "",
            "What the columns mean:",
            "",
            "- **ended in silence**: a caller still on the line whom the server let go without",
            "  a route, or a call that never ended. Must be 0.",
            "- **records lost**: a call the server took that has no stored record and whose",
            "  loss was not logged. Must be 0.",
            "- **lost, logged**: records not written, but each logged with its call",
            "  reference: the test that overflows the recorder's buffer while the database is",
            "  down, and any known bug listed below.",
            "- **carried by fallback**: calls that could not reach the FastAGI server, or whose",
            "  server was killed under them; the dialplan (`asterisk/extensions.conf`,",
            "  `[onerpa-fallback]`) sends them to the queue when `ONERPA_ROUTE` is empty.",
            "- **refused as expected**: FastAGI peers not allowed, dashboard requests without",
            "  the right role, sign-in or CSRF token, throttled sign-ins, and malformed AGI",
            "  input rejected with a typed error.",
            "",
            "What each area does:",
            "",
            *[f"- **{AREAS[area]}**: {text}" for area, text in HOW.items()],
            "",
            *_known_bugs(collected),
        ]
    )


def _known_bugs(collected: Figures) -> list[str]:
    if not collected.known_bugs:
        return ["Known bugs: none (no strict xfail in these tests).", ""]
    lines = [
        "## Known bugs",
        "",
        "Tests left in place, marked as expected to fail (strict) until the code is fixed;",
        "their calls are in the figures above.",
        "",
    ]
    for nodeid, reason in sorted(collected.known_bugs.items()):
        lines += [f"- `{nodeid}`: {reason}"]
    return [*lines, ""]
