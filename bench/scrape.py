"""Time a /metrics scrape of the database collector with 1,000,000 calls stored.

A scrape is ``generate_latest`` on the registry the ``metrics`` command serves: the
collector reads the events after the last one it saw and counts the live calls. The
baseline, in the same process, is the same collector over a database of 100 calls; the
cost of an empty registry is printed too. Then the same with ten new events written
between scrapes (a busy line).

    .venv/bin/python -m bench.scrape
    .venv/bin/python -m bench.scrape --calls 100000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, insert

from bench.calldata import END, database, fill, percentile
from onerpa.metrics import DatabaseCollector
from onerpa.models import CallEvent
from onerpa.timing import Targets

WARM_UP = 50
TARGET_MS = 10.0


def timed(scrape: Callable[[], bytes], runs: int, before: Callable[[], None]) -> list[float]:
    """Return the seconds each of ``runs`` scrapes took (``before`` runs untimed)."""
    timings = []
    for _ in range(runs):
        before()
        started = time.perf_counter()
        scrape()
        timings.append(time.perf_counter() - started)
    return timings


def collector_registry(engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry()
    DatabaseCollector(engine, Targets(), registry=registry, clock=lambda: END)
    return registry


def new_events(engine: Engine, count: int) -> Callable[[], None]:
    """Return a function that writes ``count`` call events, as a busy line would."""
    row = {"kind": "answered", "at": END, "source": "hook", "data": ""}

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(insert(CallEvent), [{**row, "call_ref": str(uuid.uuid4())}] * count)

    return write


def line(label: str, timings: list[float]) -> str:
    median, p99 = statistics.median(timings) * 1e3, percentile(timings, 0.99) * 1e3
    return f"  {label:42} median {median:7.3f} ms   p99 {p99:7.3f} ms"


def measure(backend: str, n: int, runs: int) -> None:
    def idle() -> None:
        return None

    with database(backend) as small, database(backend) as large:
        fill(small, 100)
        started = time.perf_counter()
        fill(large, n)
        print(f"{backend}: {n:,} calls built in {time.perf_counter() - started:.0f} s")
        empty = CollectorRegistry()
        registries = {"100": collector_registry(small), "big": collector_registry(large)}
        for registry in (empty, *registries.values()):
            timed(lambda r=registry: generate_latest(r), WARM_UP, idle)
        base = timed(lambda: generate_latest(registries["100"]), runs, idle)
        ours = timed(lambda: generate_latest(registries["big"]), runs, idle)
        busy = timed(lambda: generate_latest(registries["big"]), runs, new_events(large, 10))
        print(line("empty registry", timed(lambda: generate_latest(empty), runs, idle)))
        print(line("collector, 100 calls (baseline)", base))
        print(line(f"collector, {n:,} calls", ours))
        print(line(f"collector, {n:,} calls, 10 new events", busy))
        ratio = statistics.median(ours) / statistics.median(base)
        verdict = "met" if percentile(ours, 0.99) * 1e3 < TARGET_MS else "NOT met"
        print(f"  ratio to baseline {ratio:.2f}x (median); {TARGET_MS:g} ms target {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(f"python {platform.python_version()}, {platform.machine()}, {cpus} CPUs")
    for backend in ("sqlite", "postgresql"):
        if args.backend in (backend, "both"):
            measure(backend, args.calls, args.scrapes)


if __name__ == "__main__":
    main()
