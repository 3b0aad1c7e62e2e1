"""Time a caller look-up by phone in a directory of 1,000,000 customers and 2,000,000 numbers.

Builds the directory with bulk inserts (``executemany`` on SQLite, ``COPY`` on PostgreSQL)
into a temporary SQLite file and into a throwaway schema on the PostgreSQL at
127.0.0.1:5432 (database ``test``), then times ``onerpa.directory.look_up_phone`` the way the
call flow runs it (a connection per call, from ``db.for_single_reads``) for random numbers,
against a baseline measured in the same process: the bare indexed ``SELECT`` on the driver.

    .venv/bin/python -m bench.lookup
    .venv/bin/python -m bench.lookup --customers 100000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from onerpa import db, directory

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
PHONES_PER_CUSTOMER = 2
WARM_UP = 1000


def phone(k: int) -> str:
    return f"+79{k:09d}"


def customers(n: int) -> Iterator[tuple[object, ...]]:
    for i in range(1, n + 1):
        yield (i, str(10_000_000 + i), f"ООО «Клиент {i}»", "Иванов Иван", f"c{i}@example.ru")


def phones(n: int) -> Iterator[tuple[object, ...]]:
    for k in range(n * PHONES_PER_CUSTOMER):
        yield (k + 1, k // PHONES_PER_CUSTOMER + 1, phone(k), "")


def licences(n: int) -> Iterator[tuple[object, ...]]:
    for i in range(1, n + 1):
        yield (i, i, str(70_000_000 + i), "OneRPA Studio", f"{2018 + i % 8}-03-{1 + i % 28:02d}")


def updates(n: int) -> Iterator[tuple[object, ...]]:
    for i in range(1, n + 1, 3):
        yield (i, i, f"2025-{1 + i % 12:02d}-15", 12)


def subscriptions(n: int) -> Iterator[tuple[object, ...]]:
    for i in range(5, n + 1, 5):
        yield (i, i, "OneRPA Cloud", "2024-01-01", None)


def refusals(n: int) -> Iterator[tuple[object, ...]]:
    for i in range(1000, n + 1, 1000):
        yield (i, i, "грубость", "bench")


TABLES: dict[str, tuple[str, Callable[[int], Iterator[tuple[object, ...]]]]] = {
    "customers": ("id, customer_number, organisation, contact_name, email", customers),
    "phone_numbers": ("id, customer_id, e164, label", phones),
    "licences": ("id, customer_id, licence_number, product, purchased_on", licences),
    "update_purchases": ("id, customer_id, purchased_on, months", updates),
    "subscriptions": ("id, customer_id, service, starts_on, ends_on", subscriptions),
    "refusals": ("id, customer_id, reason, set_by", refusals),
}
# Columns every row shares, with the value each backend is given.
CONSTANT = {"customers": "created_at", "refusals": "set_at"}
MOMENT = "2024-01-01 00:00:00.000000"


def fill_sqlite(engine: Engine, n: int) -> None:
    """Fill the migrated SQLite database with ``executemany``."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, (columns, rows) in TABLES.items():
            extra = CONSTANT.get(table)
            names = f"{columns}, {extra}" if extra else columns
            marks = ", ".join("?" * len(names.split(",")))
            data = ((*row, MOMENT) for row in rows(n)) if extra else rows(n)
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", data)
            raw.commit()
        cursor.execute("ANALYZE")
    finally:
        raw.close()


def fill_postgres(engine: Engine, n: int) -> None:
    """Fill the migrated PostgreSQL schema with ``COPY``."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, (columns, rows) in TABLES.items():
            extra = CONSTANT.get(table)
            names = f"{columns}, {extra}" if extra else columns
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows(n):
                    copy.write_row((*row, MOMENT + "+00") if extra else row)
            # Only this schema's tables: a bare ANALYZE would queue behind locks elsewhere.
            cursor.execute(f"ANALYZE {table}")
            raw.commit()
    finally:
        raw.close()


def time_lookups(engine: Engine, numbers: list[str]) -> tuple[list[float], list[float]]:
    """Return the wall-clock and CPU seconds of each look-up, a connection each, as in a call.

    CPU time (this thread's) leaves out time spent waiting for a core, which on a shared
    machine is most of the tail; on PostgreSQL it also leaves out the server's work.
    """
    reads = db.for_single_reads(engine)
    wall, cpu = [], []
    for e164 in numbers:
        started, started_cpu = time.perf_counter(), time.thread_time()
        with reads.connect() as conn:
            card = directory.look_up_phone(conn, e164).card
        wall.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
        assert card is not None, e164
    return wall, cpu


def time_baseline(engine: Engine, numbers: list[str]) -> list[float]:
    """Return the seconds the bare indexed SELECT took on the driver for each number."""
    raw = engine.raw_connection()
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    query = f"SELECT customer_id FROM phone_numbers WHERE e164 = {mark}"
    try:
        cursor = raw.cursor()
        timings = []
        for e164 in numbers:
            started = time.perf_counter()
            cursor.execute(query, (e164,))
            found = cursor.fetchone()
            timings.append(time.perf_counter() - started)
            assert found is not None, e164
        raw.rollback()
        return timings
    finally:
        raw.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(engine: Engine, n: int, lookups: int, label: str) -> None:
    """Warm up, then print median and p99 of look-ups and of the baseline."""
    rng = random.Random(n)
    numbers = [phone(rng.randrange(n * PHONES_PER_CUSTOMER)) for _ in range(lookups)]
    time_lookups(engine, numbers[:WARM_UP])
    time_baseline(engine, numbers[:WARM_UP])
    (ours, ours_cpu), base = time_lookups(engine, numbers), time_baseline(engine, numbers)
    print(
        f"{label:10} look-up        {_figures(ours)}  ({lookups:,} look-ups, load "
        f"{os.getloadavg()[0]:.1f})\n"
        f"{'':10}   CPU time     {_figures(ours_cpu)}\n"
        f"{'':10} bare SELECT    {_figures(base)}  ratio "
        f"{statistics.median(ours) / statistics.median(base):.1f}x median, "
        f"{percentile(ours, 0.99) / percentile(base, 0.99):.1f}x p99",
        flush=True,
    )


def _figures(seconds: list[float]) -> str:
    median, p99 = statistics.median(seconds), percentile(seconds, 0.99)
    return f"median {median * 1e3:.3f} ms  p99 {p99 * 1e3:.3f} ms"


def run_sqlite(n: int, lookups: int) -> None:
    with tempfile.TemporaryDirectory(prefix="onerpa-bench-") as tmp:
        engine = db.make_engine(f"sqlite:///{Path(tmp) / 'directory.sqlite3'}")
        db.migrate(engine)
        started = time.perf_counter()
        fill_sqlite(engine, n)
        print(f"sqlite     built in {time.perf_counter() - started:.0f} s", flush=True)
        measure(engine, n, lookups, "sqlite")
        engine.dispose()


def run_postgres(n: int, lookups: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = db.make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # The service's engine settings (db.make_engine), plus this schema on the search path.
    options = {"options": f"-csearch_path={schema}", "connect_timeout": 3}
    engine = create_engine(
        admin.url, connect_args=options, pool_pre_ping=True, pool_size=10, max_overflow=20
    )
    try:
        db.migrate(engine)
        started = time.perf_counter()
        fill_postgres(engine, n)
        print(f"postgresql built in {time.perf_counter() - started:.0f} s", flush=True)
        measure(engine, n, lookups, "postgresql")
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(
        f"python {platform.python_version()}, {platform.machine()}, {cpus} CPUs; "
        f"{args.customers:,} customers, {args.customers * PHONES_PER_CUSTOMER:,} numbers"
    )
    if args.backend in ("sqlite", "both"):
        run_sqlite(args.customers, args.lookups)
    if args.backend in ("postgresql", "both"):
        run_postgres(args.customers, args.lookups)


if __name__ == "__main__":
    main()
