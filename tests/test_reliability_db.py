"""Database faults made real: down before a call, down mid-call, back, locked, slow.

PostgreSQL is reached through ``tests.faultproxy.FaultProxy``, so "down" is a port that
refuses connections and resets the open ones, and "slow" is every packet held back. On
SQLite a second connection really holds ``BEGIN EXCLUSIVE``. In every case the caller gets
a route within the decision budget, and every call's record is written once the database
answers again, or its loss is logged with the call reference.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, select, text

from ivr.emulator import CallResult, EmulatedCall, in_thread
from onerpa import db
from onerpa.models import Call
from onerpa.recorder import CallRecorder
from onerpa.settings import Settings, sqlite_path
from tests.conftest import TEST_DATABASE_URL, migrated_database
from tests.faultproxy import FaultProxy
from tests.flowkit import Line, support_line
from tests.reliability_figures import Figures, call_refs, count_calls, missing_records

pytest_plugins = ["tests.reliability_figures"]

AREA = "db"
MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
BUDGET = Settings().decision_budget.total_seconds()
SLACK = 1.5  # the other commands on a loaded 2-core box; still far below the 5 s faults
# Callers who need the directory: by caller ID (customer, stranger) and by typed number.
CALLERS = [
    ("+7 495 123-45-67", ["2"]),
    ("+7 903 555-01-42", ["1"]),
    ("+7 926 000-00-00", ["100101#", "2"]),
    ("", ["100101#", "2"]),
]


@pytest.fixture
def postgres() -> Iterator[Engine]:
    """A migrated PostgreSQL schema of its own, reached directly (the test's view)."""
    if not TEST_DATABASE_URL:
        pytest.skip("needs the PostgreSQL named by TEST_DATABASE_URL")
    with migrated_database("postgresql", Path()) as engine:
        yield engine


@pytest.fixture
def proxy(postgres: Engine) -> Iterator[FaultProxy]:
    url = postgres.url
    with FaultProxy((url.host or "127.0.0.1", url.port or 5432)) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def app_engine(postgres: Engine, proxy: FaultProxy) -> Iterator[Engine]:
    """The same schema as the line sees it: through the proxy, with production pool options."""
    with postgres.connect() as conn:
        search_path = conn.execute(text("SHOW search_path")).scalar_one()
    engine = create_engine(
        postgres.url.set(host=proxy.host, port=proxy.port),
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"options": f"-csearch_path={search_path}", "connect_timeout": 3},
    )
    yield engine
    engine.dispose()


def place(line: Line, caller: str, keys: list[str], **options: Any) -> tuple[CallResult, float]:
    """Place one call without waiting for its record; return it and how long it took."""
    started = time.monotonic()
    result = EmulatedCall(caller=caller, keys=keys, **options).run_fastagi(line.address)
    return result, time.monotonic() - started


def settle(line: Line) -> None:
    """Wait for look-ups still blocked on the database, so none outlives the test."""
    line.services.directory.close()


def assert_degraded_in_budget(result: CallResult, elapsed: float) -> None:
    assert result.variables["ONERPA_ROUTE"] == "queue"
    assert result.variables["ONERPA_DECISION"] == "degraded"
    assert result.prompts[-1] == "onerpa-connecting"
    assert elapsed < BUDGET + SLACK


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.postgres
def test_database_down_before_calls_routes_them_degraded_and_writes_them_when_back(
    postgres: Engine,
    proxy: FaultProxy,
    app_engine: Engine,
    figures: Figures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    figures.backend(postgres)
    with support_line(app_engine, THURSDAY_11) as line:
        proxy.cut()
        placed = [place(line, caller, keys) for caller, keys in CALLERS]
        time.sleep(1.0)  # the recorder tries, fails and keeps the records
        waiting = line.services.recorder.pending
        proxy.restore()
        assert line.services.recorder.flush(15), "records not written after the database came back"
        settle(line)
    results = [result for result, _ in placed]
    for result, elapsed in placed:
        assert_degraded_in_budget(result, elapsed)
    assert waiting == len(CALLERS)
    outage = [r.getMessage() for r in caplog.records if r.name == "onerpa.recorder"]
    assert sum("database unavailable" in line for line in outage) == 1, outage
    assert any("database available again" in line for line in outage)
    refs = call_refs(results)
    assert missing_records(postgres, refs) == []
    with postgres.connect() as conn:
        rows = conn.execute(select(Call.status, Call.degraded, Call.step)).all()
    assert sorted(rows) == [("queued", True, "routed")] * len(CALLERS)
    assert errors(caplog) == []
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, results)


@pytest.mark.postgres
def test_database_going_down_mid_call_still_routes_the_caller_and_keeps_what_was_said(
    postgres: Engine,
    proxy: FaultProxy,
    app_engine: Engine,
    figures: Figures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    figures.backend(postgres)
    with support_line(app_engine, THURSDAY_11) as line:
        # A stranger's number: the caller-ID look-up works, then the caller is asked to type
        # the customer number, and the database goes while the prompt plays.
        call = EmulatedCall(caller="+7 926 000-00-00", keys=["100101#", "2"], speed=0.2)
        handle = in_thread(call.run_fastagi, line.address)
        assert _wait_for_step(postgres, "enter_number", timeout=5), "the call never got there"
        proxy.cut()
        result = handle.result(timeout=10)
        proxy.restore()
        assert line.services.recorder.flush(15)
        settle(line)
    assert result.variables["ONERPA_ROUTE"] == "queue"
    assert result.variables["ONERPA_DECISION"] == "degraded"
    [ref] = call_refs([result])
    with postgres.connect() as conn:
        row = conn.execute(select(Call).where(Call.call_ref == ref)).one()
    assert (row.status, row.degraded, row.digits) == ("queued", True, "100101")
    assert row.customer_id is None  # typed, but never checked: the directory was gone
    assert errors(caplog) == []
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, [result])


@pytest.mark.postgres
def test_buffer_overflow_while_the_database_is_down_logs_every_lost_call(
    postgres: Engine,
    proxy: FaultProxy,
    app_engine: Engine,
    figures: Figures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    figures.backend(postgres)
    with support_line(app_engine, THURSDAY_11) as line:
        line.services.recorder.close()
        line.services.recorder = CallRecorder(app_engine, max_pending=3, retry_delay=0.1)
        proxy.cut()
        results = [place(line, "+7 495 123-45-67", ["2"])[0] for _ in range(8)]
        proxy.restore()
        assert line.services.recorder.flush(15)
        lost_count = line.services.recorder.lost
        settle(line)
    refs = call_refs(results)
    missing = missing_records(postgres, refs)
    logged = {
        ref
        for ref in refs
        for r in caplog.records
        if r.levelno == logging.ERROR and "buffer full" in r.getMessage() and ref in r.getMessage()
    }
    assert len(refs) == 8 and len(missing) == 5  # three calls fit in the buffer
    assert set(missing) == logged  # each lost call is named in the log: no silent drop
    assert lost_count >= 5
    assert all(r.variables["ONERPA_ROUTE"] == "queue" for r in results)
    figures.add(AREA, faults=1, lost=len(set(missing) - logged), lost_logged=len(logged))
    count_calls(figures, AREA, results)


@pytest.mark.postgres
def test_locked_tables_keep_the_budget_and_records_land_after_the_lock(
    postgres: Engine,
    app_engine: Engine,
    figures: Figures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    figures.backend(postgres)
    with support_line(app_engine, THURSDAY_11) as line:
        with postgres.connect() as holder:
            holder.execute(text("LOCK TABLE phone_numbers, calls IN ACCESS EXCLUSIVE MODE"))
            placed = [place(line, caller, keys) for caller, keys in CALLERS[:2]]
            holder.rollback()  # the lock goes with the transaction
        assert line.services.recorder.flush(15)
        settle(line)
    results = [result for result, _ in placed]
    for result, elapsed in placed:
        assert_degraded_in_budget(result, elapsed)
    assert missing_records(postgres, call_refs(results)) == []
    assert errors(caplog) == []
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, results)


@pytest.mark.slow
@pytest.mark.postgres
def test_five_second_queries_keep_the_budget_and_records_land_when_fast_again(
    postgres: Engine,
    proxy: FaultProxy,
    app_engine: Engine,
    figures: Figures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    figures.backend(postgres)
    with support_line(app_engine, THURSDAY_11) as line:
        proxy.delay(2.5)  # each way: every query's round trip takes 5 s
        placed = [place(line, caller, keys) for caller, keys in CALLERS[:2]]
        proxy.delay(0)
        assert line.services.recorder.flush(20)
        settle(line)
    results = [result for result, _ in placed]
    for result, elapsed in placed:
        assert_degraded_in_budget(result, elapsed)
    assert missing_records(postgres, call_refs(results)) == []
    assert errors(caplog) == []
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, results)


@pytest.mark.slow
def test_sqlite_lock_held_past_the_busy_timeout_delays_records_but_never_a_caller(
    engine: Engine, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("a file lock is SQLite's fault")
    figures.backend(engine)
    path = sqlite_path(str(engine.url))
    assert path is not None
    with support_line(engine, THURSDAY_11) as line:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(db.SQLITE_BUSY_TIMEOUT_MS / 1000 + 1.0, holder.rollback)
        release.start()
        try:
            placed = [place(line, caller, keys) for caller, keys in CALLERS]
            stuck = line.services.recorder.pending
        finally:
            release.join()
            holder.close()
        assert line.services.recorder.flush(15)
        settle(line)
    results = [result for result, _ in placed]
    for result, elapsed in placed:
        # WAL readers are not blocked by a writer's lock: the look-ups answer, so the
        # callers get their real decision; only the recorder waits.
        assert result.variables["ONERPA_ROUTE"] == "queue"
        assert result.variables["ONERPA_DECISION"] != "degraded"
        assert elapsed < BUDGET + SLACK
    assert stuck > 0
    assert missing_records(engine, call_refs(results)) == []
    locked = [r for r in caplog.records if "database is locked" in r.getMessage()]
    assert locked and all(r.name == "onerpa.recorder" for r in locked)  # never the call flow
    assert errors(caplog) == []
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, results)


def _wait_for_step(engine: Engine, step: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.scalar(select(Call.id).where(Call.step == step)) is not None:
                return True
        time.sleep(0.02)
    return False
