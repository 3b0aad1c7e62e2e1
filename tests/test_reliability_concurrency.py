"""Two hundred callers at the same moment on one FastAGI server, on SQLite and PostgreSQL.

Every call gets a route, every call is stored exactly once, and "database is locked" never
reaches a caller: the recorder's single writer is the only one that writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from ivr.app import warm_up
from ivr.emulator import CallResult, EmulatedCall, in_thread
from onerpa.models import Call, CallEvent
from tests.flowkit import support_line
from tests.reliability_figures import Figures, call_refs, count_calls, missing_records

pytest_plugins = ["tests.reliability_figures"]

AREA = "concurrency"
CALLS = 200
MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
# Every kind of caller, by caller ID and by typed number, with what they should hear.
MIX = [
    ("+7 495 123-45-67", ["2"], "free_first_year"),
    ("+7 903 555-01-42", ["1"], "free_critical_bug"),
    ("+7 926 000-00-00", ["100101#", "3"], "free_first_year"),
    ("+7 846 555-63-07", [], "refused_etiquette"),
    ("", ["", "12#"], "unknown_caller"),
    ("+7 343 555-77-10", ["2"], "free_subscription"),
]


def _ring_at_once(
    barrier: threading.Barrier, call: EmulatedCall, address: tuple[str, int]
) -> CallResult:
    barrier.wait(timeout=30)
    return call.run_fastagi(address)


def test_200_simultaneous_calls_are_each_routed_and_recorded_once(
    engine: Engine, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    figures.backend(engine)
    caplog.set_level(logging.INFO)
    with support_line(engine, THURSDAY_11) as line:
        warm_up(line.services)  # as the server does before it listens (ivr/cli.py)
        barrier = threading.Barrier(CALLS)
        wanted = [MIX[n % len(MIX)] for n in range(CALLS)]
        started = time.monotonic()
        handles = [
            in_thread(_ring_at_once, barrier, EmulatedCall(caller=caller, keys=keys), line.address)
            for caller, keys, _ in wanted
        ]
        results: list[CallResult] = [handle.result(timeout=90) for handle in handles]
        elapsed = time.monotonic() - started
        assert line.services.recorder.flush(60)
    refs = call_refs(results)
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(Call))
        distinct = conn.scalar(select(func.count(func.distinct(Call.call_ref))))
        arrivals = conn.scalar(
            select(func.count()).select_from(CallEvent).where(CallEvent.kind == "arrived")
        )
        statuses = Counter(conn.scalars(select(Call.status)))
    decisions = Counter(r.variables.get("ONERPA_DECISION") for r in results)
    degraded = decisions.get("degraded", 0)
    print(f"\n{engine.dialect.name}: {CALLS} calls in {elapsed:.1f} s; {dict(decisions)}")

    assert all(r.variables.get("ONERPA_ROUTE") for r in results)
    assert len(set(refs)) == CALLS
    assert (stored, distinct, arrivals) == (CALLS, CALLS, CALLS)
    assert missing_records(engine, refs) == []
    assert "in_ivr" not in statuses  # every stored call got as far as its route
    for result, (_, _, decision) in zip(results, wanted, strict=True):
        # A caller may be let through unchecked when the machine is too busy for the
        # look-up budget; never with a wrong decision.
        assert result.variables["ONERPA_DECISION"] in (decision, "degraded")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "database is locked" in m]
    # Degraded calls, if any, are explained by the budget, not by a failing database.
    assert not [m for m in messages if "customer directory failed" in m]
    assert degraded <= CALLS // 10
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    count_calls(figures, AREA, results)
