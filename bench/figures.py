"""Time the call-centre figures for 30 days out of 1,000,000 calls over two years.

Builds the history with bulk inserts (``bench.calldata``) into a temporary SQLite file and a
throwaway PostgreSQL schema, then times ``onerpa.figures`` the way the dashboard calls it
(a fresh session per call) for 30-day windows at random places in the two years. Target:
``compute`` well under 300 ms.

    .venv/bin/python -m bench.figures
    .venv/bin/python -m bench.figures --calls 100000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bench.calldata import END, START, database, fill, percentile
from onerpa import db, figures
from onerpa.timing import Targets

TARGET_MS = 300.0
WINDOW = timedelta(days=30)
TZ = ZoneInfo("Europe/Moscow")


def operations(targets: Targets) -> dict[str, Callable[[Session, object, object], object]]:
    return {
        "compute": lambda s, a, b: figures.compute(s, a, b, targets=targets),
        "per_agent": lambda s, a, b: figures.per_agent(s, a, b, targets=targets),
        "per_decision": lambda s, a, b: figures.per_decision(s, a, b, targets=targets),
        "hourly": lambda s, a, b: figures.hourly(s, a, b, TZ),
        "consultation_histogram": lambda s, a, b: figures.consultation_histogram(s, a, b),
    }


def time_operation(engine: Engine, work: Callable[..., object], starts: list) -> list[float]:
    """Return the seconds ``work`` took for each window, one fresh session each."""
    sessions = db.session_factory(engine)
    timings = []
    for start in starts:
        began = time.perf_counter()
        with sessions() as session:
            work(session, start, start + WINDOW)
        timings.append(time.perf_counter() - began)
    return timings


def measure(backend: str, n: int, runs: int) -> None:
    with database(backend) as engine:
        began = time.perf_counter()
        fill(engine, n)
        print(f"{backend}: {n:,} calls built in {time.perf_counter() - began:.0f} s")
        rng = random.Random(7)
        span = (END - START - WINDOW).total_seconds()
        starts = [START + timedelta(seconds=rng.uniform(0, span)) for _ in range(runs)]
        with db.session_factory(engine)() as session:
            offered = figures.compute(session, starts[0], starts[0] + WINDOW, targets=Targets())
        print(f"  a 30-day window holds {offered.offered:,} calls")
        for name, work in operations(Targets()).items():
            time_operation(engine, work, starts[:2])  # warm the cache
            timings = time_operation(engine, work, starts)
            median, p99 = statistics.median(timings) * 1e3, percentile(timings, 0.99) * 1e3
            print(f"  {name:24} median {median:7.1f} ms   p99 {p99:7.1f} ms")
            if name == "compute":
                verdict = "met" if p99 < TARGET_MS else "NOT met"
                print(f"  {'':24} {TARGET_MS:g} ms target {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(f"python {platform.python_version()}, {platform.machine()}, {cpus} CPUs")
    for backend in ("sqlite", "postgresql"):
        if args.backend in (backend, "both"):
            measure(backend, args.calls, args.runs)


if __name__ == "__main__":
    main()
