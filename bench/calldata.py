"""Build a call history for the timing benchmarks: N calls over two years, bulk-inserted.

The mix is a support line's: most calls answered (a few minutes of talk), some abandoned in
the queue or the IVR, some ended in the IVR by the rules, a few sent to sales; a handful
live at the end. One ``ended`` event per call fills ``call_events`` to the same size.
Databases are temporary: a SQLite file in a temporary directory, or a throwaway schema on
the PostgreSQL at 127.0.0.1:5432 (database ``test``).
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from onerpa import db

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
END = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
START = END - timedelta(days=730)
AGENTS = ("Agent 101", "Agent 102", "Agent 103")
IVR_DECISIONS = ("closed", "unknown_caller", "not_entitled", "refused_etiquette")
QUEUE_DECISIONS = ("free_first_year", "free_updates", "free_subscription", "free_critical_bug")
LIVE = (("in_ivr", 5), ("queued", 10), ("talking", 15))

CALL_COLUMNS = (
    "id, call_ref, uniqueid, linkedid, channel, callerid_raw, callerid_name, digits, "
    "explanation, step, status, degraded, server, decision, arrived_at, decided_at, "
    "queued_at, answered_at, agent, ended_at, ended_by"
)
EVENT_COLUMNS = "id, call_ref, kind, at, source, data"


def _stamp(moment: datetime | None, postgres: bool) -> str | None:
    if moment is None:
        return None
    text_ = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return text_ + "+00" if postgres else text_


def _call(i: int, arrived: datetime, rng: random.Random) -> dict[str, object]:
    """Return the fields of call ``i``: its outcome, decision and stamps."""
    r = rng.random()
    s = timedelta(seconds=1)
    call: dict[str, object] = {"arrived_at": arrived, "decision": None}
    if r < 0.05:
        call.update(status="abandoned_ivr", ended_at=arrived + rng.uniform(3, 40) * s)
        call["ended_by"] = "caller"
        return call
    decided = arrived + rng.uniform(10, 45) * s
    call["decided_at"] = decided
    if r < 0.12:
        call.update(status="ended_ivr", decision=rng.choice(IVR_DECISIONS))
        call.update(ended_at=decided + rng.uniform(5, 20) * s, ended_by="system")
        return call
    call["decision"] = rng.choice(QUEUE_DECISIONS)
    if r < 0.14:
        call.update(status="transferred", ended_at=decided + rng.uniform(30, 300) * s)
        return call
    call["queued_at"] = decided
    wait = min(rng.expovariate(1 / 40), 900) * s
    if r < 0.22:
        call.update(status="abandoned_queue", ended_at=decided + wait, ended_by="caller")
        return call
    answered = decided + wait
    talk = min(max(rng.gauss(220, 90), 20), 1800) * s
    call.update(status="completed", answered_at=answered, agent=AGENTS[i % len(AGENTS)])
    call.update(ended_at=answered + talk, ended_by=rng.choice(("caller", "agent")))
    return call


def calls(n: int, postgres: bool) -> Iterator[tuple[object, ...]]:
    """Yield ``n`` finished calls spread evenly over two years, then the live ones."""
    rng = random.Random(n)
    step = (END - START - timedelta(hours=2)) / max(n, 1)
    live = [status for status, count in LIVE for _ in range(count)]
    for i in range(1, n + len(live) + 1):
        call = _call(i, START + step * i, rng) if i <= n else _live(live[i - n - 1], rng)
        yield _row(i, call, postgres)


def _live(status: str, rng: random.Random) -> dict[str, object]:
    arrived = END - timedelta(seconds=rng.uniform(60, 600))
    call: dict[str, object] = {"arrived_at": arrived, "status": status, "decision": None}
    if status != "in_ivr":
        call.update(decided_at=arrived, queued_at=arrived, decision="free_updates")
    if status == "talking":
        call.update(answered_at=arrived + timedelta(seconds=20), agent=AGENTS[0])
    return call


def _row(i: int, call: dict[str, object], postgres: bool) -> tuple[object, ...]:
    uid = f"{1700000000 + i}.{i}"
    stamps = [
        _stamp(call.get(name), postgres)  # type: ignore[arg-type]
        for name in ("arrived_at", "decided_at", "queued_at", "answered_at")
    ]
    ended = _stamp(call.get("ended_at"), postgres)  # type: ignore[arg-type]
    return (
        i,
        str(uuid.UUID(int=i)),
        uid,
        uid,
        f"PJSIP/trunk-{i:08x}",
        "",
        "",
        "",
        "",
        "routed",
        call["status"],
        False,
        "agi-1",
        call.get("decision"),
        *stamps,
        call.get("agent"),
        ended,
        call.get("ended_by"),
    )


def events(n: int, postgres: bool) -> Iterator[tuple[object, ...]]:
    """Yield one ``ended`` event per finished call (ids 1..n)."""
    at = _stamp(END, postgres)
    for i in range(1, n + 1):
        yield (i, str(uuid.UUID(int=i)), "ended", at, "hook", '{"status":"completed"}')


def fill(engine: Engine, n: int) -> None:
    """Bulk-insert ``n`` calls and their events into the migrated database ``engine``."""
    postgres = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, columns, rows in (
            ("calls", CALL_COLUMNS, calls(n, postgres)),
            ("call_events", EVENT_COLUMNS, events(n, postgres)),
        ):
            if postgres:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns.split(",")))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            raw.commit()
        if postgres:
            cursor.execute("SELECT setval('call_events_id_seq', (SELECT max(id) FROM call_events))")
            cursor.execute("SELECT setval('calls_id_seq', (SELECT max(id) FROM calls))")
        # Only these tables: a database-wide ANALYZE would queue behind other schemas' locks.
        cursor.execute("ANALYZE calls, call_events" if postgres else "ANALYZE")
        raw.commit()
    finally:
        raw.close()


@contextlib.contextmanager
def database(backend: str) -> Iterator[Engine]:
    """Yield a migrated, empty database of ``backend``; drop it afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="onerpa-bench-") as tmp:
            engine = db.make_engine(f"sqlite:///{Path(tmp) / 'calls.sqlite3'}")
            db.migrate(engine)
            yield engine
            engine.dispose()
        return
    schema = f"bench_calls_{uuid.uuid4().hex[:10]}"
    admin = db.make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(admin.url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        db.migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def percentile(values: list[float], share: float) -> float:
    """Return the nearest-rank percentile ``share`` (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]
