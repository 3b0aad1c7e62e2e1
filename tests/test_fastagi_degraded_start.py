"""The FastAGI server starts while its database is down, decides calls, and catches up later.

PostgreSQL is reached through ``tests.faultproxy.FaultProxy``, cut before the server starts:
a port that refuses connections, as a database that is down. The server must listen anyway,
decide calls degraded (hours and the production calendar still apply), say so in its health
check and metrics, and once the database is back check the schema, sweep what an earlier
run left behind and write the records it kept in memory.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, select, text

from ivr import health
from ivr.cli import start_fastagi
from ivr.emulator import EmulatedCall
from onerpa import db
from onerpa.models import Call
from onerpa.recorder import CallRecorder
from onerpa.settings import Settings
from tests.conftest import TEST_DATABASE_URL, migrated_database
from tests.faultproxy import FaultProxy
from tests.flowkit import Clock

CLI = Path(sys.executable).with_name("onerpa-support")
MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
UNITY_DAY_11 = datetime(2026, 11, 4, 11, 0, tzinfo=MSK)  # a Wednesday, a public holiday
ENTITLED = "+7 495 123-45-67"
DATABASE_UP = "onerpa_support_fastagi_database_up"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def postgres() -> Iterator[Engine]:
    """A migrated PostgreSQL schema of its own, reached directly (the test's view)."""
    if not TEST_DATABASE_URL:
        pytest.skip("needs the PostgreSQL named by TEST_DATABASE_URL")
    with migrated_database("postgresql", Path()) as engine:
        yield engine


@pytest.fixture
def empty_schema() -> Iterator[str]:
    """A PostgreSQL schema with no tables: a database the line has never used."""
    if not TEST_DATABASE_URL:
        pytest.skip("needs the PostgreSQL named by TEST_DATABASE_URL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(db.make_engine(TEST_DATABASE_URL).url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def search_path(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SHOW search_path")).scalar_one())


def url_through(proxy: FaultProxy, schema: str) -> str:
    """The database URL the line is given: the test database, through the proxy."""
    direct = db.make_engine(TEST_DATABASE_URL).url
    user = direct.username or "postgres"
    password = f":{quote(direct.password, safe='')}" if direct.password else ""
    options = quote(f"-csearch_path={schema}", safe="")
    return (
        f"postgresql://{user}{password}@{proxy.host}:{proxy.port}/{direct.database}"
        f"?options={options}"
    )


def stored(engine: Engine, refs: list[str]) -> dict[str, tuple[str | None, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Call.call_ref, Call.decision, Call.status).where(Call.call_ref.in_(refs))
        )
        return {ref: (decision, status) for ref, decision, status in rows}


@pytest.mark.postgres
def test_server_starts_without_its_database_decides_calls_and_writes_them_once_it_is_back(
    postgres: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    server_name = f"{socket.gethostname()}:{port}"
    # A call an earlier run of this server left in the IVR: the start-up sweep's work.
    left_behind = str(uuid.uuid4())
    earlier = CallRecorder(postgres)
    earlier.record(left_behind, arrived_at=THURSDAY_11, server=server_name, status="in_ivr")
    earlier.close()
    upstream = postgres.url
    with FaultProxy((upstream.host or "127.0.0.1", upstream.port or 5432)) as proxy:
        proxy.cut()
        settings = replace(Settings(), database_url=url_through(proxy, search_path(postgres)))
        clock = Clock(THURSDAY_11)
        running = start_fastagi(settings, ("127.0.0.1", port), clock=clock, retry_delay=0.2)
        try:
            start_line = capfd.readouterr().err
            registry = running.registry
            down_probe = health.probe(("127.0.0.1", port), 5)
            down_gauge = registry.get_sample_value(DATABASE_UP)

            in_hours = EmulatedCall(caller=ENTITLED, keys=["2"]).run_fastagi(("127.0.0.1", port))
            clock.now = UNITY_DAY_11
            holiday = EmulatedCall(caller=ENTITLED, keys=["2"]).run_fastagi(("127.0.0.1", port))
            refs = [r.variables["ONERPA_CALL_ID"] for r in (in_hours, holiday)]
            assert stored(postgres, [*refs, left_behind]) == {left_behind: (None, "in_ivr")}

            proxy.restore()
            assert wait_until(lambda: running.database.up, timeout=60)
            assert running.services.recorder.flush(10)
            up_probe = health.probe(("127.0.0.1", port), 5)
            up_gauge = registry.get_sample_value(DATABASE_UP)
        finally:
            running.stop()

    assert "недоступна" in start_line and "FastAGI запускается без неё" in start_line
    assert (down_probe.ok, down_probe.database, down_gauge) == (True, "down", 0.0)
    assert in_hours.variables["ONERPA_ROUTE"] == "queue"
    assert in_hours.variables["ONERPA_DECISION"] == "degraded"
    assert holiday.variables["ONERPA_ROUTE"] == "closed"  # the production calendar, no database
    assert (up_probe.ok, up_probe.database, up_gauge) == (True, "up", 1.0)
    records = stored(postgres, [*refs, left_behind])
    assert records[refs[0]][0] == "degraded"
    assert records[refs[1]][0] == "closed"
    assert records[left_behind][1] == "lost"  # swept once the database was back
    assert "lost" not in (records[refs[0]][1], records[refs[1]][1])  # not this run's calls


@pytest.mark.postgres
@pytest.mark.slow
def test_fastagi_command_keeps_serving_on_a_database_never_used_and_writes_when_it_comes(
    empty_schema: str, tmp_path: Path
) -> None:
    direct = db.make_engine(TEST_DATABASE_URL).url
    today = datetime.now(MSK).date()
    with FaultProxy((direct.host or "127.0.0.1", direct.port or 5432)) as proxy:
        proxy.cut()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONERPA_")}
        env.pop("NOTIFY_SOCKET", None)
        port = free_port()
        env.update(
            ONERPA_DATABASE_URL=url_through(proxy, empty_schema),
            ONERPA_SECRET_KEY="k" * 40,
            ONERPA_FASTAGI_PORT=str(port),
            ONERPA_FASTAGI_METRICS_PORT="0",
            ONERPA_CLOSED_DATES=closed_days(today),  # closed whatever the hour of the test
        )
        log = tmp_path / "fastagi.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([str(CLI), "fastagi"], env=env, stdout=out, stderr=out)
        try:
            assert wait_until(lambda: health.probe(("127.0.0.1", port), 2).ok, timeout=60), (
                log.read_text()
            )
            down = _health(env)
            call = EmulatedCall(caller=ENTITLED, keys=["2"]).run_fastagi(("127.0.0.1", port))
            proxy.restore()
            assert wait_until(lambda: health.probe(("127.0.0.1", port), 2).database == "up", 60)
            up = _health(env)
            engine = create_engine(
                direct, connect_args={"options": f"-csearch_path={empty_schema}"}
            )
            ref = call.variables["ONERPA_CALL_ID"]
            assert wait_until(lambda: ref in stored(engine, [ref]), timeout=30)
            record = stored(engine, [ref])[ref]
            engine.dispose()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    output = log.read_text()
    assert code == 0, output
    assert "FastAGI запускается без неё" in output
    assert (down.returncode, up.returncode) == (0, 0)
    assert "база данных недоступна: звонки решаются упрощённо" in down.stdout
    assert "база данных доступна" in up.stdout
    assert call.variables["ONERPA_ROUTE"] == "closed"
    assert record[0] == "closed"


def test_server_starts_on_a_locked_sqlite_database_and_writes_once_it_is_free(
    tmp_path: Path,
) -> None:
    # Another process holds the file with BEGIN EXCLUSIVE: SQLite's way of being away.
    path = tmp_path / "support.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    settings = replace(Settings(), database_url=f"sqlite:///{path}")
    port = free_port()
    running = start_fastagi(settings, ("127.0.0.1", port), clock=Clock(THURSDAY_11))
    try:
        assert not running.database.up
        call = EmulatedCall(caller=ENTITLED, keys=["2"]).run_fastagi(("127.0.0.1", port))
        holder.rollback()
        holder.close()
        assert wait_until(lambda: running.database.up, timeout=60)
        assert running.services.recorder.flush(10)
    finally:
        running.stop()
    assert call.variables["ONERPA_DECISION"] == "degraded"
    engine = db.make_engine(f"sqlite:///{path}")
    ref = call.variables["ONERPA_CALL_ID"]
    assert stored(engine, [ref])[ref][0] == "degraded"  # a database created after the call
    engine.dispose()


def test_a_schema_newer_than_the_program_stops_the_start(tmp_path: Path) -> None:
    # Not a database that is away: waiting will not help, and writing to it could do harm.
    engine = db.make_engine(f"sqlite:///{tmp_path / 'support.sqlite3'}")
    db.migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONERPA_")}
    env.update(
        ONERPA_DATABASE_URL=f"sqlite:///{tmp_path / 'support.sqlite3'}",
        ONERPA_SECRET_KEY="k" * 40,
        ONERPA_FASTAGI_PORT=str(free_port()),
        ONERPA_FASTAGI_METRICS_PORT="0",
    )
    done = subprocess.run(
        [str(CLI), "fastagi"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Схема базы данных ")
    assert "новее этой версии onerpa-support" in done.stderr
    assert "обновите onerpa-support" in done.stderr


def closed_days(today: date) -> str:
    """Today and the days either side: the test may straddle midnight in Moscow."""
    days = [today.fromordinal(today.toordinal() + d) for d in (-1, 0, 1)]
    return ",".join(day.isoformat() for day in days)


def _health(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "fastagi-health", "--timeout", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
