"""Time ``onerpa-support import`` on generated files and show its memory stays flat.

Generates CSV files of 100,000 and 1,000,000 rows, imports each into an empty database
(a temporary SQLite file, and a throwaway schema on PostgreSQL when it answers), then
imports the same file again. Each import runs in a child process of its own (the schema
migrated beforehand) so its peak resident memory belongs to that import alone.

    .venv/bin/python -m bench.importer                 # 100k and 1M rows, both backends
    .venv/bin/python -m bench.importer --rows 20000 --backend sqlite
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from onerpa import db
from onerpa.importer import COLUMNS, import_file

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ORGANISATIONS = ("ООО «{}»", "АО «{}»", "ИП {}", "ПАО «{}»", "ООО НПП «{}»")
WORDS = ("Вектор", "Альфа", "Северсталь", "ТехноСервис", "Ромашка", "Гранит", "Сибирь", "Волга")
NAMES = ("Смирнова Анна Викторовна", "Кузнецов Игорь Петрович", "Орлов Дмитрий Сергеевич")
PRODUCTS = ("OneRPA Studio", "OneRPA Orchestrator", "OneRPA Robot")


def phone(serial: int, style: int) -> str:
    """Return a distinct valid Russian mobile number for ``serial``, written in some style."""
    code, rest = 900 + serial % 100, f"{serial // 100:07d}"
    digits = f"{code}{rest}"
    return (
        f"8 ({code}) {rest[:3]}-{rest[3:5]}-{rest[5:]}",
        f"+7 {code} {rest[:3]} {rest[3:5]} {rest[5:]}",
        f"7{digits}",
        f"8{digits}",
    )[style % 4]


def record(i: int, rng: random.Random) -> list[str]:
    """Return row ``i`` of a believable export: 1-2 numbers, a licence, some extras."""
    phones = [phone(2 * i, i)] + ([phone(2 * i + 1, i + 1)] if i % 2 else [])
    bought = f"{2018 + i % 8}-{1 + i % 12:02d}-{1 + i % 28:02d}"
    updates = (f"2025-{1 + i % 12:02d}-15", "12") if i % 3 == 0 else ("", "")
    sub = ("OneRPA Cloud", "2024-01-01", "", "") if i % 5 == 0 else ("", "", "", "")
    if i % 10 == 5:
        sub = ("OneRPA Cloud", "2023-06-01", "2025-05-31", "2025-03-01T10:00:00+03:00")
    organisation = rng.choice(ORGANISATIONS).format(f"{rng.choice(WORDS)}-{i}")
    return [
        str(10_000_000 + i),
        organisation,
        rng.choice(NAMES),
        f"client{i}@example.ru",
        ", ".join(phones),
        rng.choice(PRODUCTS),
        str(70_000_000 + i),
        bought,
        *updates,
        *sub,
    ]


def generate(path: Path, rows: int) -> None:
    """Write a CSV file of ``rows`` customers (streamed: the generator is flat too)."""
    rng = random.Random(rows)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(COLUMNS)
        writer.writerows(record(i, rng) for i in range(rows))


def child(csv_path: str, url: str, schema: str) -> None:
    """Import ``csv_path`` twice into ``url`` and print timings and peak memory as JSON."""
    engine = _engine(url, schema)
    baseline_kb = peak_rss_kb()
    started = time.perf_counter()
    first = import_file(engine, csv_path, progress=False)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = import_file(engine, csv_path, progress=False)
    again_s = time.perf_counter() - started
    peak_kb = peak_rss_kb()
    print(
        json.dumps(
            {
                "rows": first.rows,
                "bad": first.bad_rows,
                "first_s": first_s,
                "again_s": again_s,
                "again_changes": sum(again.changes.values()),
                "baseline_mb": baseline_kb / 1024,
                "peak_mb": peak_kb / 1024,
            }
        )
    )


def peak_rss_kb() -> int:
    """Return this process's peak resident memory in KiB.

    ``VmHWM`` rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` over from the parent
    across fork and exec, so a child would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _engine(url: str, schema: str) -> Engine:
    if not schema:
        return db.make_engine(url)
    return create_engine(
        db.make_engine(url).url, connect_args={"options": f"-csearch_path={schema}"}
    )


def run_one(csv_path: Path, backend: str, workdir: Path) -> dict[str, float]:
    """Import ``csv_path`` in a fresh child process into an empty database on ``backend``."""
    schema = ""
    url = f"sqlite:///{workdir / f'import-{uuid.uuid4().hex[:8]}.sqlite3'}"
    if backend == "postgresql":
        schema, url = f"bench_{uuid.uuid4().hex[:10]}", POSTGRES_URL
        _admin(f'CREATE SCHEMA "{schema}"')
    try:
        # Migrate here, not in the child: Alembic's own peak would hide the import's.
        engine = _engine(url, schema)
        db.migrate(engine)
        engine.dispose()
        command = [sys.executable, "-m", "bench.importer", "--child", str(csv_path), url, schema]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if schema:
            _admin(f'DROP SCHEMA "{schema}" CASCADE')


def _admin(statement: str) -> None:
    engine = db.make_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


def postgres_answers() -> bool:
    try:
        _admin("SELECT 1")
    except Exception:  # any failure means: skip PostgreSQL
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--child", nargs=3, metavar=("CSV", "URL", "SCHEMA"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and not postgres_answers():
        print(f"PostgreSQL at {POSTGRES_URL} does not answer; SQLite only")
        backends.remove("postgresql")
    print(f"python {platform.python_version()}, {platform.machine()}, {_cpus()} CPUs")
    with tempfile.TemporaryDirectory(prefix="onerpa-bench-") as tmp:
        workdir = Path(tmp)
        for rows in args.rows:
            path = workdir / f"customers-{rows}.csv"
            generate(path, rows)
            size_mb = path.stat().st_size / 1e6
            for backend in backends:
                report(rows, size_mb, backend, run_one(path, backend, workdir))


def report(rows: int, size_mb: float, backend: str, figures: dict[str, float]) -> None:
    print(
        f"{backend:10} {rows:>9,} rows ({size_mb:.0f} MB): "
        f"import {figures['first_s']:.1f} s = {rows / figures['first_s']:,.0f} rows/s; "
        f"re-import {figures['again_s']:.1f} s ({figures['again_changes']:.0f} changes); "
        f"peak RSS {figures['peak_mb']:.0f} MB (before import {figures['baseline_mb']:.0f} MB)",
        flush=True,
    )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
