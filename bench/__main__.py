"""Run one benchmark by name, or list them: ``python -m bench [NAME] [ARGS...]``."""

from __future__ import annotations

import runpy
import sys

BENCHMARKS = {
    "lookup": "caller look-up with 1M customers / 2M numbers (SQLite, PostgreSQL)",
    "importer": "CSV import of 100k and 1M rows: rows/s and peak memory",
    "fastagi": "FastAGI call set-ups vs classic AGI and a bare server; latency; 1,000 open calls",
    "scrape": "/metrics scrape time with 1M stored calls",
    "figures": "call-centre figures for 30 days out of 1M calls",
    "dashboard": "live board, figures page and phone search with 1M stored calls",
    "whatif": "what-if re-decision of 1M recorded calls: seconds, calls/s, peak RSS",
}


def main() -> int:
    """Run the named benchmark with the remaining arguments, or list them."""
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print("usage: python -m bench NAME [ARGS...]\n")
        for name, what in BENCHMARKS.items():
            print(f"  {name:10} {what}")
        return 2 if len(sys.argv) >= 2 else 0
    name = sys.argv[1]
    sys.argv = [f"bench.{name}", *sys.argv[2:]]
    runpy.run_module(f"bench.{name}", run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
